/*
 * answer.h: replies built away from the event loops. A worker (or the ledger
 * thread, in a done callback) that knows the whole reply of a job builds it
 * here, its body written by reply.c into a malloc'd string: an ORDER read from
 * the ledger, an idempotent replay, a refund, or one of their errors. The
 * loop that owns the connection then writes it with answer_write, which is
 * the only function here that touches evhttp. What crosses threads is the
 * struct answer inside the job, handed over with the job itself.
 */
#ifndef TICKETD_ANSWER_H
#define TICKETD_ANSWER_H

#include <stddef.h>
#include <stdint.h>

#include "ledger.h"
#include "seller.h"

struct evhttp_request;

/* Extra headers a reply carries. */
#define ANSWER_LOCATION    0x1u  /* Location: /v1/orders/<order> */
#define ANSWER_REPLAYED    0x2u  /* Idempotent-Replayed: true */
#define ANSWER_RETRY_AFTER 0x4u  /* Retry-After: 1 */
#define ANSWER_AUTH        0x8u  /* WWW-Authenticate: Bearer */

struct answer {
	int status;          /* HTTP status; 0 = nothing built */
	char *body;          /* malloc'd JSON; NULL: see answer_write */
	size_t len;
	unsigned flags;      /* ANSWER_* */
	char order[LEDGER_ID_MAX + 1]; /* for ANSWER_LOCATION */
};

/* Sets a an error reply {"error":code,"message":...}; a 503 gets
 * Retry-After. Returns status. */
__attribute__((format(printf, 4, 5)))
int answer_error(struct answer *a, int status, const char *code, const char *fmt, ...);

/* Sets a to the 409 sold_out reply (reply_sold_out) of a purchase of
 * quantity tier tickets. Returns 409. */
int answer_sold_out(struct answer *a, enum seller_pool tier, unsigned quantity,
		    int64_t available);

/* Sets a to an ORDER reply with status: o as stored, its tickets, and state
 * (ledger state, or forced to state_override when >= 0). 0 or -ENOMEM. */
int answer_order(struct answer *a, int status, const struct ledger_order *o,
		 int state_override);

/* Takes body (malloc'd, NUL-terminated) as the reply; a copies nothing. */
void answer_take(struct answer *a, int status, char *body, unsigned flags,
		 const char *order);

/* Builds the ORDER JSON of a just-confirmed order without reading the
 * ledger: tickets "<id>-1".."<id>-<quantity>", state "confirmed". Returns a
 * malloc'd string or NULL. */
char *answer_order_json(const char *id, const char *event, const char *pool,
			unsigned quantity, const char *buyer);

/* Frees what a holds and clears it. */
void answer_clear(struct answer *a);

/* Loop side: writes a's body and headers into req's reply, frees the body,
 * and returns the status to send. */
int answer_write(struct answer *a, struct evhttp_request *req);

#endif /* TICKETD_ANSWER_H */
