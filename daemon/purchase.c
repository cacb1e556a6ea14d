/*
 * purchase.c: the purchase path outside the event loops. The core's reserve
 * and release are the only calls that take an inventory lock; the payment
 * wait and the commit run after it, with nothing held. Results go back to
 * the owning loop through http_job_done(); nothing here touches evhttp.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "http.h"
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

static void finish(struct job *j, enum job_result result, int error)
{
	j->result = result;
	j->error = error;
	j->state = JOB_DONE;
	http_job_done(j);
}

/* orders_commit's answer, on any thread. */
static void committed(struct orders_commit *c, int status)
{
	struct job *j = job_of_commit(c);

	if (status < 0) {
		release(j);
		finish(j, JOB_UNAVAILABLE, status);
		return;
	}
	finish(j, JOB_CREATED, 0);
}

void purchase_settle(struct job *j)
{
	struct order *o = &j->commit.order;

	metrics_payment(j->times.paying);
	if (payment_declined(&j->plan)) {
		release(j);
		finish(j, JOB_DECLINED, 0);
		return;
	}
	memcpy(o->event, j->ev->id, j->ev->id_len + 1);
	o->tier = j->in.tier;
	o->pool = j->from;
	o->quantity = j->in.quantity;
	memcpy(o->buyer, j->in.buyer, j->in.buyer_len + 1);
	j->commit.done = committed;
	orders_commit(j->env->orders, &j->commit);
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

static void order_lookup(struct job *j)
{
	int rc = orders_find(j->env->orders, j->order_id, strlen(j->order_id),
			     &j->commit.order);

	if (rc == 0)
		finish(j, JOB_FOUND, 0);
	else if (rc == -ENOENT)
		finish(j, JOB_NOT_FOUND, 0);
	else
		finish(j, JOB_FAILED, rc);
}

void purchase_work(struct pool_task *t, void *arg)
{
	struct job *j = job_of_task(t);
	uint64_t now = metrics_queue_wait(j->times.queued);
	int rc;

	(void)arg;
	if (j->kind == JOB_ORDER) {
		order_lookup(j);
		return;
	}
	rc = seller_reserve(j->ev->seller, j->in.tier, j->in.quantity, &j->from);
	j->times.paying = metrics_reserve(j->ev->core, now);
	if (rc == SELLER_SOLD_OUT) {
		j->available = buyable(j->ev->seller, j->in.tier);
		finish(j, JOB_SOLD_OUT, 0);
		return;
	}
	if (rc < 0) {
		finish(j, JOB_FAILED, rc);
		return;
	}
	payment_plan(j->env->payment, &j->plan);
	if (j->plan.latency_ms == 0) {
		purchase_settle(j);
	} else if (j->plan.mode == CONF_PAYMENT_BLOCKING) {
		http_job_flush(); /* replies held by this worker go out first */
		payment_sleep(&j->plan);
		purchase_settle(j);
	} else {
		/* The loop arms a timer and calls purchase_settle when it fires. */
		j->state = JOB_PAYING;
		http_job_done(j);
	}
}
