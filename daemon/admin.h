/*
 * admin.h: the operator's token. At start-up admin_open
 * reads the token from systemd's $CREDENTIALS_DIRECTORY/admin-token, or,
 * when that is missing or blank, from the file named by admin_token_file,
 * logs (notice) which it used or that there is none, and keeps only its SHA-256
 * digest. Every operator request must carry "Authorization: Bearer
 * <token>"; the check (on the loop, no I/O) compares digests in constant
 * time. With no token configured the operator routes answer 403: there is
 * no unauthenticated fallback. The refund the token allows is a job's
 * work (work.c).
 */
#ifndef TICKETD_ADMIN_H
#define TICKETD_ADMIN_H

#include <stddef.h>

#include "conf.h"
#include "request.h"

#define ADMIN_TOKEN_FILE "admin-token"   /* name inside $CREDENTIALS_DIRECTORY */
#define ADMIN_TOKEN_MAX 4096             /* bytes */

struct admin;

/* Loads the token (trailing whitespace stripped; a blank file means no
 * token): the credential wins over admin_token_file. An admin_token_file
 * that can't be read (when the credential gave no token), a credential
 * that exists but can't be read, or a token that holds anything but
 * visible ASCII, is an error: -errno with err. With neither, operator
 * routes are off. */
int admin_open(const struct conf *c, struct admin **out, char *err, size_t errlen);
void admin_close(struct admin *a);

/* Checks an Authorization header value (NULL if absent): 0 if it carries
 * the token; else -EACCES with err filled: 401 (missing or wrong token) or
 * 403 (no token configured). */
int admin_authorize(const struct admin *a, const char *authorization,
		    struct request_error *err);

#endif /* TICKETD_ADMIN_H */
