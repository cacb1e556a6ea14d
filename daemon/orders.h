/*
 * orders.h: confirmed orders, refunds and idempotency records, kept in the
 * durable ledger (lib/ledger.h) behind a narrow asynchronous interface.
 *
 * orders_commit(), orders_remember() and orders_refund() hand a request to
 * the ledger thread and answer later through the request's done callback,
 * which runs on the ledger thread once its batch is durable (or failed). A
 * purchase is confirmed, and its 201 sent, only from done(status 0); on a
 * negative status nothing was stored and the caller gives the tickets back.
 * Holding (ledger_hold), the reads (ledger_get_order, ledger_idem_lookup)
 * and the counters (ledger_stats) are the ledger's own: callers use
 * ledger.h on orders_ledger(). The reads run in the calling thread and may
 * block on the disk: call them on a worker, never on an event loop.
 *
 * Order ids are "<boot epoch>-<sequence>": the ledger bumps the epoch
 * durably at every start, above the floor kept in the state dir's epoch
 * file, and the sequence is a process-wide atomic counter, so ids are
 * unique for the daemon's whole life, restarts and restored backups of
 * ledger.db included. Ticket
 * n (1-based) of an order is "<order id>-<n>".
 */
#ifndef TICKETD_ORDERS_H
#define TICKETD_ORDERS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "conf.h"
#include "ledger.h"
#include "request.h"
#include "seller.h"

#define ORDERS_ID_MAX 48          /* order id incl. NUL: 20 + 1 + 20 digits */
#define ORDERS_EPOCH_FILE "epoch" /* in the state dir: the highest boot epoch used */

struct orders_options {
	const char *state_dir;       /* created if missing */
	const struct conf *conf;     /* its events and capacities: a ledger that
				      * sold more than one allows now, or sold
				      * tickets of an event it lacks, is refused
				      * and left untouched */
	enum ledger_sync sync;
	int64_t idempotency_ttl_s;   /* 0 = the ledger's default */
	int64_t max_db_bytes;        /* 0 = no cap */
	unsigned readers;            /* read connections; 0 = the ledger's default */
	void (*batch_begin)(void *arg); /* around each batch's done()s, on the */
	void (*batch_end)(void *arg);   /*   ledger thread; may be NULL */
};

struct order {
	char id[ORDERS_ID_MAX];             /* from orders_next_id */
	char event[REQUEST_ID_MAX + 1];
	enum seller_pool tier;              /* the tier asked for */
	enum seller_pool pool;              /* the pool the tickets came from */
	unsigned quantity;                  /* 1..SELLER_MAX_QUANTITY */
	char buyer[REQUEST_BUYER_MAX + 1];  /* UTF-8 */
};

struct orders_commit;
/* status: 0 = durably done, or -errno (nothing was stored; for a refund
 * also -ENOENT: no such order, -EALREADY: refunded before). Runs exactly
 * once per request, on the ledger thread (or in the caller, at once, if the
 * ledger refused the request); it must be quick: hand the job to its event
 * loop and return. */
typedef void (*orders_done_fn)(struct orders_commit *c, int status);

/* One request; the caller embeds it in its job and keeps it (and what its
 * pointers point to) alive until done runs. */
struct orders_commit {
	struct order order;          /* orders_commit: the order, id included */
	struct ledger_idem_in idem;  /* key NULL: none; else the reply to replay */
	orders_done_fn done;         /* required */
	struct ledger_req req;       /* the ledger's; after a refund's done(0),
				      * req.refunded says what to give back */
};

struct orders;

/* Checks, creating nothing, that dir could serve orders_open: every part
 * of it that exists is a directory, and the deepest one is writable by
 * this process (so the rest, or the ledger, can be made in it). 0, or
 * -errno with err ("state_dir DIR: cannot create it: ..."). */
int orders_check_dir(const char *dir, char *err, size_t errlen);
/* Opens the ledger under opt->state_dir (creating the directory) with a
 * boot epoch above the one in the state dir's epoch file (the floor that a
 * ledger.db restored from a backup cannot go below; an older ticketd's
 * file is carried over the same way), writes the new epoch back to that
 * file durably, and reads what was sold, refusing (before anything is
 * written) a capacity of opt->conf now below it. Returns 0, or -errno with
 * the cause in err. */
int orders_open(const struct orders_options *opt, struct orders **out,
		char *err, size_t errlen);
/* Answers every request still queued, logs the ledger's figures (batch
 * sizes, commit times) and closes it. */
void orders_close(struct orders *o);
/* The open ledger (ledger.h), for what orders adds nothing to: holding,
 * reads, counters, the boot epoch. Valid until orders_close. */
struct ledger *orders_ledger(const struct orders *o);

/* Tickets sold of (event, pool) as the ledger had them at open: a
 * catalog_sold_fn (arg: the struct orders). */
int64_t orders_sold(void *arg, const char *event, enum seller_pool pool);

/* Writes a new order id into buf (at least ORDERS_ID_MAX bytes). */
void orders_next_id(struct orders *o, char *buf, size_t len);
/* Records c->order (its id from orders_next_id) and, if c->idem.key is set,
 * its idempotency record, in one transaction. */
void orders_commit(struct orders *o, struct orders_commit *c);
/* Stores c->idem (key required): a reply that sold nothing, so that a retry
 * with the same key gets it again. */
void orders_remember(struct orders *o, struct orders_commit *c);
/* Marks order id refunded (id must stay valid until done). */
void orders_refund(struct orders *o, struct orders_commit *c, const char *id);

/* ticketd --audit: checks the ledger in c->state_dir offline against c's
 * capacities, printing the figures to out and problems to errf. Returns
 * the exit status: 0 if everything holds, 1 if not or if it can't be read. */
int orders_audit(const struct conf *c, FILE *out, FILE *errf);

#endif /* TICKETD_ORDERS_H */
