/*
 * admin.c: the operator token (see admin.h). Its digest is written once at
 * start-up and read-only after, so any loop may check a header against it
 * without a lock. The refund the token allows is a job's work (work.c).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "file.h"
#include "ledger.h"
#include "log.h"

struct admin {
	int enabled;                              /* a token is configured */
	unsigned char digest[LEDGER_HASH_LEN];    /* SHA-256 of the token */
};

/* Reads the token file at path into buf (NUL-terminated, trailing
 * whitespace stripped; see file_read_small). Returns its length (0:
 * blank), or -errno. */
static ssize_t read_token(const char *path, char *buf, size_t len)
{
	ssize_t n = file_read_small(AT_FDCWD, path, buf, len);

	while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t' || buf[n - 1] == '\r' ||
			 buf[n - 1] == '\n'))
		buf[--n] = '\0';
	return n;
}

/* Reads and checks the token at path into a (a->enabled once it holds
 * one). A blank file counts as no token. 0, or -errno with err. */
static int load_token(struct admin *a, const char *path, char *err, size_t errlen)
{
	char tok[ADMIN_TOKEN_MAX + 2];
	ssize_t n = read_token(path, tok, sizeof(tok) - 1);
	int rc = 0;

	if (n < 0) {
		rc = (int)n;
		snprintf(err, errlen, "admin token %s: %s", path, n == -EFBIG ?
			 "longer than 4096 bytes" : n == -EINVAL ? "not a regular file" :
			 strerror((int)-n));
		goto out;
	}
	for (ssize_t i = 0; i < n; i++)
		if ((unsigned char)tok[i] < 0x21 || (unsigned char)tok[i] > 0x7e) {
			rc = -EINVAL;
			snprintf(err, errlen, "admin token %s: may hold only visible ASCII "
				 "characters (byte %zd is not)", path, i + 1);
			goto out;
		}
	if (n > 0) {
		ledger_hash(tok, (size_t)n, a->digest);
		a->enabled = 1;
	}
out:
	explicit_bzero(tok, sizeof(tok));
	return rc;
}

int admin_open(const struct conf *c, struct admin **out, char *err, size_t errlen)
{
	const char *creds = getenv("CREDENTIALS_DIRECTORY");
	struct admin *a = calloc(1, sizeof(*a));
	char cred[4200];
	int rc;

	if (!a) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	/* systemd's credential first: it is how systemd hands a service its
	 * secrets. A missing or blank one (the unit's SetCredential= default)
	 * leaves the choice to admin_token_file. */
	cred[0] = '\0';
	if (creds && *creds)
		snprintf(cred, sizeof(cred), "%s/%s", creds, ADMIN_TOKEN_FILE);
	if (cred[0]) {
		rc = load_token(a, cred, err, errlen);
		if (rc < 0 && rc != -ENOENT)
			goto fail;
		if (a->enabled) {
			log_notice("operator routes on: admin token from the systemd "
				   "credential %s%s", cred, c->admin_token_file ?
				   " (admin_token_file is not read)" : "");
			goto done;
		}
	}
	if (c->admin_token_file) {
		if ((rc = load_token(a, c->admin_token_file, err, errlen)) < 0)
			goto fail;
		if (a->enabled)
			log_notice("operator routes on: admin token from admin_token_file %s",
				   c->admin_token_file);
		else
			log_warn("operator routes are off: the admin token file %s is blank",
				 c->admin_token_file);
		goto done;
	}
	log_notice("operator routes are off: no admin token (%s%s%s, and no "
		   "admin_token_file in the configuration)", cred[0] ? "" : "no ",
		   cred[0] ? cred : "$CREDENTIALS_DIRECTORY/" ADMIN_TOKEN_FILE,
		   cred[0] ? " is missing or blank" : "");
done:
	*out = a;
	return 0;
fail:
	free(a);
	return rc;
}

void admin_close(struct admin *a)
{
	if (a)
		explicit_bzero(a, sizeof(*a));
	free(a);
}

/* Fills err with status and code; returns -EACCES. */
static int refuse(struct request_error *err, int status, const char *code, const char *msg)
{
	err->status = status;
	err->code = code;
	snprintf(err->message, sizeof(err->message), "%s", msg);
	return -EACCES;
}

int admin_authorize(const struct admin *a, const char *authorization,
		    struct request_error *err)
{
	unsigned char d[LEDGER_HASH_LEN], diff = 0;
	const char *tok;

	if (!a || !a->enabled)
		return refuse(err, 403, "admin_disabled", "operator routes are off: no "
			      "admin token is configured (admin_token_file, or the "
			      "admin-token credential)");
	if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
		return refuse(err, 401, "unauthorized",
			      "this route needs Authorization: Bearer <admin token>");
	tok = authorization + 7;
	while (*tok == ' ')
		tok++;
	/* Digests have a fixed length: the compare takes the same time
	 * whatever the token sent, and whatever its length. */
	ledger_hash(tok, strlen(tok), d);
	for (size_t i = 0; i < sizeof(d); i++)
		diff |= (unsigned char)(d[i] ^ a->digest[i]);
	if (diff)
		return refuse(err, 401, "unauthorized", "wrong admin token");
	return 0;
}
