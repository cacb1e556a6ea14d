/*
 * purchase.c: the purchase path, run by the workers (or, with "workers": 0,
 * by the loops; and a loop tries a purchase that the seller's sold-out hint
 * says will be refused itself: purchase_refuse_sold_out). The core's reserve
 * and release are the only calls that take an inventory lock; the ledger
 * reads, the payment wait and the commit run after it, with nothing held.
 * A purchase is confirmed only in the ledger's done (its batch is durable);
 * a failed commit releases the tickets and answers 503. With an
 * Idempotency-Key the first request of a key holds it in the in-flight set
 * (idem.c) until its reply is final, and its reply is stored with the order
 * (or, when it sold nothing, on its own) so a retry gets it back. Results go
 * back to the owning loop through loop_job_done(); nothing here touches
 * evhttp.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "handoff.h"
#include "loop.h"
#include "log.h"
#include "metrics.h"
#include "purchase.h"

/* Gives a job's reserved tickets back; logs if the core refuses (a bug). */
static void release(struct job *j)
{
	int rc = seller_release(j->ev->seller, j->from, j->in.quantity);

	if (rc < 0)
		log_err("event %s: releasing %u %s tickets failed: %s", j->ev->id,
			j->in.quantity, seller_pool_name(j->from), strerror(-rc));
}

void purchase_done(struct job *j, enum job_result result, int error)
{
	assert(j->state == JOB_QUEUED || j->state == JOB_PAYING);
	idem_end(j->env->idem, &j->idem);
	j->result = result;
	j->error = error;
	j->state = JOB_DONE;
	loop_job_done(j);
}

/* The ledger stored (or failed to store) a reply that sold nothing; the
 * reply is the same either way. Ledger thread. */
static void remembered(struct orders_commit *c, int status)
{
	struct job *j = job_of_commit(c);

	if (status < 0 && status != -EEXIST)
		log_debug("Idempotency-Key %s: reply %d not stored: %s", j->idem.key,
			  j->reply.status, strerror(-status));
	purchase_done(j, j->result, 0);
}

/* Stores j->reply (a purchase that sold nothing: result says which) under
 * j's key, then replies with it. */
static void remember(struct job *j, enum job_result result)
{
	struct orders_commit *c = &j->commit;

	j->result = result;
	if (!j->reply.body) {
		purchase_done(j, JOB_FAILED, -ENOMEM); /* not stored */
		return;
	}
	c->idem.key = j->idem.key;
	memcpy(c->idem.req_hash, j->idem.hash, sizeof(c->idem.req_hash));
	c->idem.status = j->reply.status;
	c->idem.body = j->reply.body;
	c->done = remembered;
	orders_remember(j->env->orders, c);
}

/* orders_commit's answer, on the ledger thread: the batch is durable, or
 * it failed and nothing of it was stored. */
static void committed(struct orders_commit *c, int status)
{
	struct job *j = job_of_commit(c);

	if (status < 0) {
		release(j);
		answer_clear(&j->reply);
		if (status == -EEXIST)
			log_err("order %s: its id or its Idempotency-Key is already in "
				"the ledger", c->order.id);
		purchase_done(j, JOB_UNAVAILABLE, status);
		return;
	}
	purchase_done(j, JOB_CREATED, 0); /* keyed: j->reply holds the 201 */
}

/* Decides the payment of a reserved job and confirms or releases it. The
 * caller must not touch j afterwards. */
static void purchase_settle(struct job *j)
{
	struct orders_commit *c = &j->commit;
	struct order *o = &c->order;

	metrics_payment(j->times.paying);
	if (payment_declined(&j->plan)) {
		release(j);
		if (!j->idem.key[0]) {
			purchase_done(j, JOB_DECLINED, 0);
			return;
		}
		answer_error(&j->reply, 402, "payment_declined",
			     "the payment was declined; no tickets were sold");
		remember(j, JOB_DECLINED);
		return;
	}
	orders_next_id(j->env->orders, o->id, sizeof(o->id));
	memcpy(o->event, j->ev->id, j->ev->id_len + 1);
	o->tier = j->in.tier;
	o->pool = j->from;
	o->quantity = j->in.quantity;
	memcpy(o->buyer, j->in.buyer, j->in.buyer_len + 1);
	memset(&c->idem, 0, sizeof(c->idem));
	if (j->idem.key[0]) {
		/* The 201 a retry gets back commits with the order. */
		char *body = answer_order_json(o->id, o->event, seller_pool_name(o->pool),
					       o->quantity, o->buyer);

		if (!body) {
			release(j);
			purchase_done(j, JOB_UNAVAILABLE, -ENOMEM);
			return;
		}
		answer_take(&j->reply, 201, body, ANSWER_LOCATION, o->id);
		c->idem.key = j->idem.key;
		memcpy(c->idem.req_hash, j->idem.hash, sizeof(c->idem.req_hash));
		c->idem.status = 201;
		c->idem.body = body;
	}
	c->done = committed;
	orders_commit(j->env->orders, c);
}

/* The end of the loop iteration in which payment timers fired: their
 * commits go to the ledger (arg: the ledger). */
static void settled(void *ledger)
{
	ledger_release(ledger);
}

/* On j's loop: its async payment is over. The commits of every payment
 * timer that fires in one loop iteration go to the ledger as one batch:
 * the first holds this thread's submissions and has the loop call settled
 * after the iteration's other timers (they were all made active before the
 * first ran). */
static void pay_timer(struct job *j)
{
	assert(j->state == JOB_PAYING);
	if (loop_defer(j->loop, settled, j->env->ledger))
		ledger_hold(j->env->ledger);
	purchase_settle(j); /* ends in loop_job_done, maybe at once */
}

/* The largest quantity a buyer of tier could get right now. */
static int64_t buyable(struct seller *s, enum seller_pool tier)
{
	struct seller_snapshot snap;
	int64_t n;

	seller_snapshot(s, &snap);
	n = snap.available[SELLER_GENERAL];
	if (tier == SELLER_VIP && snap.available[SELLER_VIP] > n)
		n = snap.available[SELLER_VIP];
	return n;
}

/* The Idempotency-Key's checks before anything is sold. Returns 1 if the
 * job was answered (in flight, replay, 422, ledger error), 0 to go on
 * holding the key. */
static int idempotent(struct job *j)
{
	struct ledger_idem *rec = NULL;
	unsigned flags;
	char *body;
	int rc;

	idem_digest(j->ev, &j->in, j->idem.hash);
	if (idem_begin(j->env->idem, &j->idem) < 0) {
		answer_error(&j->reply, 409, "in_progress", "a request with this "
			     "Idempotency-Key is still in progress; retry later");
		purchase_done(j, JOB_REPLY, 0);
		return 1;
	}
	rc = ledger_idem_lookup(j->env->ledger, j->idem.key, &rec);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0) {
		answer_error(&j->reply, 503, "unavailable", "the ledger cannot be read (%s)",
			     strerror(-rc));
	} else if (memcmp(rec->req_hash, j->idem.hash, sizeof(j->idem.hash)) != 0) {
		answer_error(&j->reply, 422, "idempotency_key_reused", "this "
			     "Idempotency-Key was used for a different purchase");
	} else {
		body = rec->body ? strdup(rec->body) : NULL;
		flags = ANSWER_REPLAYED | (rec->order_id ? ANSWER_LOCATION : 0);
		if (body)
			answer_take(&j->reply, rec->status, body, flags, rec->order_id);
		else
			answer_error(&j->reply, 500, "internal_error",
				     "the stored reply of this Idempotency-Key is lost");
	}
	free(rec);
	purchase_done(j, JOB_REPLY, 0);
	return 1;
}

void purchase_run(struct job *j, uint64_t now)
{
	int rc;

	if (j->idem.key[0] && idempotent(j))
		return;
	if (j->reserved) { /* on its loop, by purchase_refuse_sold_out */
		j->reserved = 0;
		rc = SELLER_OK;
		j->times.paying = now;
	} else {
		rc = seller_reserve(j->ev->seller, j->in.tier, j->in.quantity, &j->from);
		j->times.paying = metrics_reserve(j->ev->core, now);
	}
	if (rc == SELLER_SOLD_OUT) {
		j->available = buyable(j->ev->seller, j->in.tier);
		if (!j->idem.key[0]) {
			purchase_done(j, JOB_SOLD_OUT, 0);
			return;
		}
		answer_sold_out(&j->reply, j->in.tier, j->in.quantity, j->available);
		remember(j, JOB_SOLD_OUT);
		return;
	}
	if (rc < 0) {
		purchase_done(j, JOB_FAILED, rc);
		return;
	}
	payment_plan(j->env->payment, &j->plan);
	if (j->plan.latency_ms == 0) {
		purchase_settle(j);
	} else if (j->plan.mode == CONF_PAYMENT_BLOCKING) {
		/* Replies and commits held by this worker go out first. */
		handoff_flush();
		ledger_flush(j->env->ledger);
		payment_sleep(&j->plan);
		purchase_settle(j);
	} else {
		/* The loop calls pay_timer when the payment is over. The key
		 * (if any) stays held: the purchase is in flight. */
		assert(j->state == JOB_QUEUED);
		j->state = JOB_PAYING;
		loop_job_after(j, j->plan.latency_ms, pay_timer);
	}
}

/* The flash sale is 90% sold-out replies; with a pool each one would cross
 * to a worker and back only to fail its reserve. The seller's lock-free
 * sold-out hint (set by an earlier refusal, cleared when tickets come back)
 * picks the candidates; it may be stale, so the reserve decides. A reserve
 * that succeeds after all is kept (j->reserved): the job goes to the pool
 * holding its tickets and run() skips its own reserve. Giving them back
 * here instead would make a worker's reserve of the same last tickets, in
 * that instant, refuse a buyer while nothing was sold. No queue wait is
 * recorded for a refused job: it never waited in the pool's queue. */
int purchase_refuse_sold_out(struct job *j)
{
	uint64_t t0;
	int rc;

	j->reserved = 0;
	if (j->kind != JOB_PURCHASE || j->idem.key[0] ||
	    !seller_sold_out_hint(j->ev->seller, j->in.tier, j->in.quantity))
		return 0;
	t0 = metrics_now();
	rc = seller_reserve(j->ev->seller, j->in.tier, j->in.quantity, &j->from);
	if (rc != SELLER_SOLD_OUT) {
		if (rc == SELLER_OK) {
			metrics_reserve(j->ev->core, t0);
			j->reserved = 1;
			/* Stale: without this, every purchase it covers would
			 * keep taking this detour until tickets next come back. */
			seller_forget_hint(j->ev->seller);
		}
		return 0;
	}
	j->times.paying = metrics_reserve(j->ev->core, t0);
	j->available = buyable(j->ev->seller, j->in.tier);
	return 1;
}

void purchase_unreserve(struct job *j)
{
	if (j->reserved) {
		j->reserved = 0;
		release(j);
	}
}
