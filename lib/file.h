/*
 * file.h: reading the small files an operator puts beside the daemon (the
 * admin token, the state dir's epoch file) with a bound and without ever
 * blocking on one that is not a regular file.
 */
#ifndef TICKETD_FILE_H
#define TICKETD_FILE_H

#include <stddef.h>
#include <sys/types.h>

/* Reads the regular file path (relative to dirfd, or AT_FDCWD) into buf, NUL
 * terminated. It is opened without blocking, so a FIFO or a device is
 * refused, never waited on. Returns its length (at most len - 1), or -errno:
 * -ENOENT missing, -EISDIR a directory, -EINVAL another kind of file, -EFBIG
 * len bytes or longer. */
ssize_t file_read_small(int dirfd, const char *path, char *buf, size_t len);

#endif /* TICKETD_FILE_H */
