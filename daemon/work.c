/*
 * work.c: what a job does off its loop (see work.h), on a worker, on the
 * reads pool, or (with "workers": 0) on the loop itself. A purchase goes
 * to purchase.c; an order lookup and a refund are here. A refund crosses
 * threads like a purchase: loop (auth) -> worker (read, build the reply,
 * submit) -> ledger thread (durable; tickets back to stock) -> loop (reply).
 * Every path ends in purchase_done, which hands the job back.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "answer.h"
#include "catalog.h"
#include "job.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "purchase.h"
#include "work.h"

/* Reads order j->order_id from the ledger into *o (free() it). Returns 0,
 * or 1 when j was already answered: 404 for no such order, 503 when the
 * ledger cannot be read. */
static int find_order(struct job *j, struct ledger_order **o)
{
	int rc = ledger_get_order(j->env->ledger, j->order_id, o);

	if (rc == -ENOENT) {
		purchase_done(j, JOB_NOT_FOUND, 0);
		return 1;
	}
	if (rc < 0) {
		answer_error(&j->reply, 503, "unavailable", "the ledger cannot be read (%s)",
			     strerror(-rc));
		purchase_done(j, JOB_REPLY, 0);
		return 1;
	}
	return 0;
}

/* GET /v1/orders/{id}: the order as the ledger has it. */
static void order_lookup(struct job *j)
{
	struct ledger_order *o = NULL;
	int rc;

	if (find_order(j, &o))
		return;
	rc = answer_order(&j->reply, 200, o, -1);
	free(o);
	purchase_done(j, rc < 0 ? JOB_FAILED : JOB_REPLY, rc);
}

/* The refund's done, on the ledger thread: durable now, so the tickets go
 * back to stock, then the reply (built before) goes to the loop. */
static void refunded(struct orders_commit *c, int status)
{
	struct job *j = job_of_commit(c);
	const struct ledger_req *r = &c->req;
	struct catalog_event *ev;
	int rc;

	if (status == 0) {
		/* The event may be off sale (a reload dropped it after this
		 * order sold): its seller still takes the tickets back, so a
		 * later reload that puts it on sale again starts right. */
		ev = catalog_find_any(j->env->catalog, r->refunded.event,
				      strlen(r->refunded.event));
		rc = ev ? seller_release(ev->seller, r->refunded.pool, r->refunded.quantity)
			: -ENOENT;
		if (rc < 0)
			log_err("refund of order %s: %u %s tickets of %s could not go back on "
				"sale: %s", j->order_id, r->refunded.quantity,
				seller_pool_name(r->refunded.pool), r->refunded.event,
				strerror(-rc));
		else
			log_notice("order %s refunded: %u %s tickets of %s back on sale",
				   j->order_id, r->refunded.quantity,
				   seller_pool_name(r->refunded.pool), r->refunded.event);
		if (ev)
			metrics_refund(ev, r->refunded.pool, r->refunded.quantity);
		purchase_done(j, JOB_REPLY, 0);
		return;
	}
	answer_clear(&j->reply);
	if (status == -ENOENT) {
		purchase_done(j, JOB_NOT_FOUND, 0);
		return;
	}
	if (status == -EALREADY)
		answer_error(&j->reply, 409, "already_refunded",
			     "order %s was refunded before", j->order_id);
	else
		answer_error(&j->reply, 503, "unavailable", "the refund could not be "
			     "recorded (%s); nothing changed", strerror(-status));
	purchase_done(j, JOB_REPLY, 0);
}

/* POST /v1/orders/{id}/refund: reads the order, has the ledger mark it
 * refunded; the tickets go back to stock in the ledger's done. */
static void refund(struct job *j)
{
	struct ledger_order *o = NULL;
	int rc;

	if (find_order(j, &o))
		return;
	if (o->state == LEDGER_REFUNDED) {
		free(o);
		answer_error(&j->reply, 409, "already_refunded",
			     "order %s was refunded before", j->order_id);
		purchase_done(j, JOB_REPLY, 0);
		return;
	}
	/* The reply is the order as it will be once the refund is durable. */
	rc = answer_order(&j->reply, 200, o, LEDGER_REFUNDED);
	free(o);
	if (rc < 0) {
		purchase_done(j, JOB_FAILED, rc);
		return;
	}
	j->commit.done = refunded;
	orders_refund(j->env->orders, &j->commit, j->order_id);
}

/* Everything a job does off the loop, on whatever thread runs it. */
static void run(struct job *j)
{
	uint64_t now = metrics_queue_wait(j->times.queued);

	assert(j->state == JOB_QUEUED);
	if (j->kind == JOB_ORDER)
		order_lookup(j);
	else if (j->kind == JOB_REFUND)
		refund(j);
	else
		purchase_run(j, now);
}

/* True if j reads the ledger (the disk) before it can go on. */
static int reads_ledger(const struct job *j)
{
	return j->kind != JOB_PURCHASE || j->idem.key[0];
}

void work_run(struct pool_task *t, void *arg)
{
	struct job *j = job_of_task(t);
	int rc;

	(void)arg;
	/* "workers": 0 runs this on the event loop itself: what reads the
	 * ledger goes to the small reads pool instead, so no loop waits for
	 * the disk. */
	if (j->env->reads && reads_ledger(j)) {
		rc = pool_submit(j->env->reads, &j->task, POOL_NORMAL);
		if (rc < 0) {
			if (rc == -EAGAIN)
				answer_error(&j->reply, 503, "overloaded",
					     "the server is busy; retry shortly");
			else
				answer_error(&j->reply, 503, "shutting_down",
					     "the server is shutting down");
			purchase_done(j, JOB_REPLY, 0);
		}
		return;
	}
	run(j);
}

void work_read(struct pool_task *t, void *arg)
{
	(void)arg;
	run(job_of_task(t));
}

void work_cancel(struct pool_task *t, void *arg)
{
	struct job *j = job_of_task(t);

	(void)arg;
	purchase_unreserve(j);
	answer_error(&j->reply, 503, "shutting_down", "the server is shutting down");
	purchase_done(j, JOB_REPLY, 0);
}
