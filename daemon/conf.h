/*
 * conf.h: ticketd's configuration, a JSON file read with jansson. The
 * loader checks every key, type and range and refuses unknown keys, naming
 * the key's path (events[1].tiers.vip) and, for syntax errors, the file,
 * line and column. A config that loads is complete: every default is filled
 * in and every seller core resolved, so the daemon never starts half
 * configured. Nothing here touches the network or the state dir; a loaded
 * config is immutable and may be read from any thread.
 */
#ifndef TICKETD_CONF_H
#define TICKETD_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "ledger.h"
#include "log.h"
#include "seller.h"

#define CONF_MAX_BYTES (1u << 20)  /* largest config file */
#define CONF_MAX_LISTEN 16         /* listen addresses */
#define CONF_MAX_EVENTS 1024
#define CONF_NAME_MAX 256          /* event display name, bytes */
#define CONF_ADDR_MAX 64           /* "addr:port" as written, bytes */
#define CONF_PATH_MAX 4095         /* state_dir, admin_token_file, -s; bytes */
#define CONF_MAX_TICKETS 1000000000000LL /* per tier */
#define CONF_MAX_TTL_S 31536000    /* idempotency_ttl_s, one year */

/* Loader flags. */
#define CONF_ALLOW_UNSAFE 0x1u     /* accept cores flagged SELLER_CORE_UNSAFE */

enum conf_payment_mode {
	CONF_PAYMENT_ASYNC = 0,    /* the wait completes from a timer; no worker waits */
	CONF_PAYMENT_BLOCKING = 1, /* the worker sleeps latency_ms, as in
	                             the Go ticket-seller article */
};

struct conf_listen {
	char text[CONF_ADDR_MAX];  /* as written: "127.0.0.1:8080", "[::1]:0" */
	struct sockaddr_storage addr;
	socklen_t addrlen;
};

struct conf_event {
	char *id;                    /* [A-Za-z0-9_-]{1,64}, unique */
	char *name;                  /* display name; defaults to id */
	char *seller;                /* the event's own core name, or NULL */
	const struct seller_core *core; /* resolved: own core or the global one */
	int64_t capacity[SELLER_NPOOLS]; /* tickets per tier, 0..CONF_MAX_TICKETS */
	int has_vip;                 /* tiers.vip present */
	char *vip_code;              /* required with a vip tier, else NULL */
};

struct conf {
	char *path;                  /* the file it was read from */
	struct conf_listen *listen;
	size_t nlisten;              /* 1..CONF_MAX_LISTEN */
	unsigned io_threads;         /* event loops, 1..64 */
	unsigned workers;            /* worker threads, 0..1024; 0: the loops reserve */
	unsigned queue_depth;        /* worker queue slots, 1..1000000 */
	char *seller;                /* default core name */
	const struct seller_core *core;
	struct {
		unsigned latency_ms;     /* 0..60000 */
		double decline_rate;     /* 0..1 */
		enum conf_payment_mode mode;
	} payment;
	struct {
		size_t max_body_bytes;   /* 64..1 MiB */
		size_t max_header_bytes; /* 1 KiB..1 MiB, request line and headers */
		unsigned max_quantity;   /* 1..SELLER_MAX_QUANTITY */
		unsigned request_timeout_ms; /* 100..3600000: a whole request must
					      * arrive, and its reply be written,
					      * within this of its first byte */
		unsigned idle_timeout_ms;    /* 100..3600000: keep-alive wait for
					      * the next request's first byte */
		size_t max_url_bytes;    /* 16..1 MiB, the request target; 414 */
		unsigned max_connections;    /* 1..1000000 */
		unsigned drain_timeout_ms;   /* 0..600000, shutdown grace */
	} limits;
	char *state_dir;             /* relative paths are relative to the cwd */
	struct {
		enum ledger_sync sync;   /* "full" (default) or "off" */
		int64_t max_db_bytes;    /* 0 = no cap; else commits past it fail (503) */
	} ledger;
	int64_t idempotency_ttl_s;   /* Idempotency-Key lifetime, 1..CONF_MAX_TTL_S */
	char *admin_token_file;      /* operator token file, or NULL (then
				      * $CREDENTIALS_DIRECTORY/admin-token) */
	struct {
		int enabled;             /* GET /metrics and the counting; default 1 */
	} metrics;
	enum log_level log_level;
	struct conf_event *events;
	size_t nevents;              /* 1..CONF_MAX_EVENTS */
};

/* Reads and checks path. Returns 0 and *out (free with conf_free), or a
 * negative errno with one line in err: "FILE:LINE:COL: text" for a syntax
 * error, "FILE: key.path: problem" for a bad key, or "FILE: strerror". */
int conf_load(const char *path, unsigned flags, struct conf **out,
		char *err, size_t errlen);
/* The same from a buffer; name stands for the file in messages. */
int conf_load_buffer(const char *buf, size_t len, const char *name,
		       unsigned flags, struct conf **out, char *err, size_t errlen);
void conf_free(struct conf *c);

/* Parses "a.b.c.d:port" or "[v6]:port" (numeric, port 0..65535) into out.
 * Returns 0 or -EINVAL. */
int conf_parse_listen(const char *s, struct conf_listen *out);
/* Replaces the listen list with the single address s; 0 or -EINVAL/-ENOMEM. */
int conf_set_listen(struct conf *c, const char *s);
/* Replaces state_dir (the --state-dir override), held to the state_dir
 * key's rules: 1 to CONF_PATH_MAX bytes, no control characters. Returns 0,
 * or -EINVAL/-ENOMEM with the problem in err ("must be 1 to 4095 bytes
 * long, got 0"; the caller names the option) and state_dir unchanged. */
int conf_set_state_dir(struct conf *c, const char *dir, char *err, size_t errlen);
/* Makes every event use core name (the --seller override); 0, or -EINVAL
 * with the reason in err for an unknown or (without CONF_ALLOW_UNSAFE)
 * unsafe core. */
int conf_set_seller(struct conf *c, const char *name, unsigned flags,
		      char *err, size_t errlen);

const char *conf_payment_mode_name(enum conf_payment_mode m);
/* Finds an event by id; NULL if none. */
const struct conf_event *conf_find_event(const struct conf *c, const char *id);
/* Prints a human summary (what -t shows). */
void conf_summary(const struct conf *c, FILE *f);

#endif /* TICKETD_CONF_H */
