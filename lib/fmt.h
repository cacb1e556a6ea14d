/*
 * fmt.h: decimal formatting for the hot paths (reply headers and bodies,
 * ticket codes, the metrics text), where printf's format parsing shows in
 * the profile.
 */
#ifndef TICKETD_FMT_H
#define TICKETD_FMT_H

#include <stddef.h>
#include <stdint.h>

#define FMT_U64_LEN 21 /* UINT64_MAX's 20 digits and a NUL */

/* Writes v in decimal and a NUL into buf (at least FMT_U64_LEN bytes);
 * returns the number of digits. */
size_t fmt_u64(char *buf, uint64_t v);

#endif /* TICKETD_FMT_H */
