/*
 * job.h: the unit of work that leaves an event loop. A loop thread decodes a
 * request into a job (copying everything it needs: no evhttp object is read
 * off the loop), hands it to the worker pool, and gets it back through its
 * completion queue; only that loop replies and only that loop touches
 * job->req and job->timer. Jobs are recycled through their loop's free list,
 * so the hot path allocates nothing here.
 *
 * A purchase job goes: QUEUED (pool) -> [PAYING (loop timer, async payment)]
 * -> [committing (the ledger thread)] -> DONE (loop replies). Its tickets
 * are reserved before PAYING and are either confirmed (orders_commit done
 * with 0: durable) or released before DONE. A job whose reply was built off
 * the loop (JOB_REPLY) carries it in j->reply.
 */
#ifndef TICKETD_JOB_H
#define TICKETD_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "answer.h"
#include "catalog.h"
#include "idem.h"
#include "metrics.h"
#include "orders.h"
#include "payment.h"
#include "pool.h"
#include "request.h"

struct evhttp_request;
struct event;
struct http_loop;

enum job_kind {
	JOB_PURCHASE = 0,
	JOB_ORDER,          /* GET /v1/orders/{id} */
	JOB_REFUND,         /* POST /v1/orders/{id}/refund (admin.c) */
};

enum job_state {
	JOB_QUEUED = 0,     /* in the pool's queue or on a worker */
	JOB_PAYING,         /* reserved; the loop waits out the payment latency */
	JOB_DONE,           /* result final; the loop replies */
};

enum job_result {
	JOB_CREATED = 0,    /* 201: order confirmed */
	JOB_SOLD_OUT,       /* 409 */
	JOB_DECLINED,       /* 402: payment declined, tickets released */
	JOB_UNAVAILABLE,    /* 503: the order store failed, tickets released */
	JOB_REPLY,          /* not a sale: j->reply, built off the loop (answer.h) */
	JOB_NOT_FOUND,      /* 404: order lookup or refund */
	JOB_FAILED,         /* 500: an internal error (error holds -errno) */
};

/* What a worker needs besides the job itself; shared, read-only. */
struct job_env {
	struct orders *orders;        /* order ids, commits, refunds */
	struct ledger *ledger;        /* holding, reads: orders_ledger(orders) */
	struct payment *payment;
	struct idem *idem;            /* Idempotency-Keys in flight */
	struct admin *admin;          /* the operator token */
	struct catalog *catalog;      /* refunds give tickets back to an event */
	struct pool *reads;           /* "workers": 0 only: runs what reads the
				       * ledger, off the loops; else NULL */
};

struct job {
	struct pool_task task;        /* pool link; must stay first */
	struct job *next;             /* completion queue and free list link */
	struct job *all_next;         /* every job its loop ever made (teardown) */
	struct http_loop *loop;       /* the owning loop: it alone replies */
	const struct job_env *env;
	struct evhttp_request *req;   /* owning loop only */
	struct event *timer;          /* loop_job_after's timer, owning loop only */
	void (*after)(struct job *j); /* loop_job_after: called on the loop, or NULL */
	unsigned after_ms;            /*   that many ms after the job came back */
	enum job_kind kind;
	enum job_state state;
	enum job_result result;
	int error;                    /* -errno for JOB_UNAVAILABLE, JOB_FAILED */
	struct catalog_event *ev;     /* purchase: the event */
	struct request_purchase in;   /* purchase: the decoded body */
	enum seller_pool from;        /* purchase: pool reserved from */
	int reserved;                 /* purchase: its loop reserved already
				       * (purchase_refuse_sold_out); run() skips it */
	int64_t available;            /* sold out: largest quantity buyable now */
	struct payment_plan plan;     /* purchase: payment settings it started with */
	struct orders_commit commit;  /* the ledger request: order, stored reply, refund */
	char order_id[REQUEST_ID_MAX + 1]; /* JOB_ORDER, JOB_REFUND: the id asked for */
	struct idem_link idem;        /* purchase: its Idempotency-Key ("" if none),
				       * digest and in-flight link (idem.c) */
	struct answer reply;          /* a reply built off the loop (status != 0):
				       * JOB_REPLY, or a keyed purchase's 201/402/409 */
	struct metrics_times times;   /* arrival, hand-off, payment start (metrics) */
};

#define job_of_task(t) ((struct job *)((char *)(t) - offsetof(struct job, task)))
#define job_of_commit(c) ((struct job *)((char *)(c) - offsetof(struct job, commit)))

#endif /* TICKETD_JOB_H */
