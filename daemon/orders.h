/*
 * orders.h: confirmed orders, behind a narrow asynchronous interface.
 *
 * orders_commit() takes a paid order and answers later through the order's
 * done callback, which may run on any thread (today: at once, in the
 * caller's thread, from an in-memory store; with the SQLite ledger: on the
 * ledger thread after the batch is durable). A purchase is confirmed, and
 * its 201 sent, only from done(status 0); on a negative status the caller
 * gives the tickets back. orders_find() answers a lookup in the calling
 * thread and may block (it runs on a worker, never on an event loop).
 *
 * Order ids are "<boot epoch>-<sequence>": the epoch is persisted in
 * state_dir and bumped at every start, the sequence is a process-wide atomic
 * counter, so ids are unique for the daemon's whole life, restarts included.
 * Ticket n (1-based) of an order is "<order id>-<n>".
 */
#ifndef TICKETD_ORDERS_H
#define TICKETD_ORDERS_H

#include <stddef.h>
#include <stdint.h>

#include "request.h"
#include "seller.h"

#define ORDERS_ID_MAX 48          /* order id incl. NUL: 20 + 1 + 20 digits */
#define ORDERS_CODE_MAX 64        /* ticket code incl. NUL */
#define ORDERS_EPOCH_FILE "epoch" /* inside state_dir */

struct order {
	char id[ORDERS_ID_MAX];             /* set by orders_commit */
	char event[REQUEST_ID_MAX + 1];
	enum seller_pool tier;              /* the tier asked for */
	enum seller_pool pool;              /* the pool the tickets came from */
	unsigned quantity;                  /* 1..SELLER_MAX_QUANTITY */
	char buyer[REQUEST_BUYER_MAX + 1];  /* UTF-8 */
	int64_t created_ms;                 /* unix time, set by orders_commit */
};

struct orders_commit;
/* status: 0 = durably confirmed, or -errno (nothing was stored). Runs
 * exactly once per commit, on any thread; it must be quick (hand the job to
 * its event loop and return). */
typedef void (*orders_done_fn)(struct orders_commit *c, int status);

/* One commit request; the caller embeds it in its job and keeps it alive
 * until done runs. */
struct orders_commit {
	struct order order;      /* caller fills all but id and created_ms */
	orders_done_fn done;     /* required */
	struct orders_commit *next; /* private to the store (batching) */
};

struct orders;

/* Opens the store under state_dir: creates the directory if missing and
 * bumps the boot epoch durably (write, fsync, rename, fsync of the dir).
 * Returns 0, or -errno with the cause in err. */
int orders_open(const char *state_dir, struct orders **out, char *err, size_t errlen);
void orders_close(struct orders *o);
uint64_t orders_epoch(const struct orders *o);

/* Assigns c->order an id and records it; c->done(c, status) follows, maybe
 * before orders_commit returns. The caller must not touch c after the call
 * except from done. */
void orders_commit(struct orders *o, struct orders_commit *c);

/* Copies order id[0..len) into *out: 0, -ENOENT, or -errno. */
int orders_find(struct orders *o, const char *id, size_t len, struct order *out);

/* Writes ticket n (1-based) of order id: its length, or -ENAMETOOLONG. */
int orders_ticket_code(const char *order_id, unsigned n, char *buf, size_t len);

#endif /* TICKETD_ORDERS_H */
