/*
 * loop.c: a job's last step, on the loop that owns its connection (see
 * loop.h). A job that came back either waits out its payment on one of
 * this loop's timers, or gets its reply: one written here from the job's
 * result (reply.c), or the one a worker built (answer.c). Only this loop's
 * thread runs anything here but loop_job_done, which any thread calls.
 */
#include "config.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "evreply.h"
#include "log.h"
#include "loop.h"
#include "reply.h"

/* The loop this thread runs, if any. */
static _Thread_local struct http_loop *cur_loop;

void loop_enter(struct http_loop *lp)
{
	cur_loop = lp;
	handoff_enter(&lp->handoff);
	conn_enter(&lp->conns);
}

void loop_leave(struct http_loop *lp)
{
	(void)lp;
	cur_loop = NULL;
}

int loop_owned(const struct http_loop *lp)
{
	return cur_loop == lp || !lp->started;
}

void loop_send_reply(struct http_loop *lp, struct evhttp_request *req, int code)
{
	assert(loop_owned(lp));
	conn_replying(&lp->conns, req);
	/* evhttp 2.1 writes the output buffer even for HEAD (without a
	 * Content-Length): a body there would read as the next response. */
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		struct evbuffer *out = evhttp_request_get_output_buffer(req);

		evbuffer_drain(out, evbuffer_get_length(out));
	}
	if (lp->conns.draining)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection",
				  "close");
	metrics_reply(lp->req_route, code, lp->req_t0);
	evreply_send(req, code); /* written now: see lib/evreply.c */
}

void loop_send_error(struct http_loop *lp, struct evhttp_request *req, int status,
		     const char *code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_verror(evhttp_request_get_output_buffer(req), code, fmt, ap);
	va_end(ap);
	if (status == 503)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
	loop_send_reply(lp, req, status);
}

void loop_maybe_drained(struct http_loop *lp)
{
	struct http *h = lp->http;

	if (!lp->conns.draining || lp->drained || lp->inflight || lp->npend ||
	    lp->conns.busy)
		return;
	lp->drained = 1;
	log_debug("loop %u drained", lp->index);
	if (atomic_fetch_add(&h->ndrained, 1) + 1 == h->nloops && h->on_drained)
		h->on_drained(h->arg);
}

void loop_answering(struct http_loop *lp, const struct job *j)
{
	lp->req_t0 = j->times.arrived;
	lp->req_route = j->kind == JOB_ORDER ? METRICS_ROUTE_ORDER :
			j->kind == JOB_REFUND ? METRICS_ROUTE_REFUND : METRICS_ROUTE_PURCHASE;
}

/* The outcome a purchase job's reply counts as in the metrics. */
static enum metrics_outcome job_outcome(const struct job *j)
{
	switch (j->result) {
	case JOB_CREATED: return METRICS_SOLD;
	case JOB_SOLD_OUT: return METRICS_SOLD_OUT;
	case JOB_DECLINED: return METRICS_DECLINED;
	case JOB_UNAVAILABLE: return METRICS_UNAVAILABLE;
	case JOB_REPLY:
		/* Answered off the loop without a sale (purchase.c): a replay, a
		 * key in progress or reused, or a 503 before the reserve. */
		if (j->reply.flags & ANSWER_REPLAYED)
			return METRICS_REPLAYED;
		if (j->reply.status == 503)
			return j->reply.body && strstr(j->reply.body, "\"overloaded\"") ?
			       METRICS_OVERLOADED : METRICS_UNAVAILABLE;
		return j->reply.status >= 500 ? METRICS_FAILED : METRICS_REJECTED;
	default:
		return METRICS_FAILED;
	}
}

/* Sends the reply a finished job earned. */
static void reply_job(struct http_loop *lp, struct job *j)
{
	struct evhttp_request *req = j->req;
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	const struct order *o = &j->commit.order;

	loop_answering(lp, j);
	if (metrics_on && j->kind == JOB_PURCHASE)
		metrics_purchase(j->ev, j->in.tier, job_outcome(j), j->from, j->in.quantity);
	if (j->reply.status) { /* built off the loop (answer.c): JOB_REPLY, or a
				* purchase with an Idempotency-Key */
		loop_send_reply(lp, req, answer_write(&j->reply, req));
		return;
	}
	switch (j->result) {
	case JOB_CREATED: {
		char loc[16 + ORDERS_ID_MAX];
		struct reply_order r = {
			.id = o->id, .event = o->event, .tier = seller_pool_name(o->pool),
			.quantity = o->quantity, .buyer_json = j->in.buyer_json,
			.state = "confirmed",
		};

		reply_order(out, &r);
		snprintf(loc, sizeof(loc), "/v1/orders/%s", o->id);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Location", loc);
		loop_send_reply(lp, req, 201);
		return;
	}
	case JOB_SOLD_OUT:
		reply_sold_out(out, j->in.tier, j->in.quantity, j->available);
		loop_send_reply(lp, req, 409);
		return;
	case JOB_DECLINED:
		loop_send_error(lp, req, 402, "payment_declined",
				"the payment was declined; no tickets were sold");
		return;
	case JOB_UNAVAILABLE:
		loop_send_error(lp, req, 503, "unavailable",
				"the order could not be recorded (%s); no tickets were sold",
				strerror(-j->error));
		return;
	case JOB_NOT_FOUND:
		loop_send_error(lp, req, 404, "order_not_found", "no order %s", j->order_id);
		return;
	case JOB_FAILED:
	default:
		log_err("request failed: %s", strerror(-j->error));
		loop_send_error(lp, req, 500, "internal_error", "internal error: %s",
				strerror(-j->error));
		return;
	}
}

/* j's loop_job_after time has come. */
static void on_job_timer(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;
	void (*fn)(struct job *j) = j->after;

	(void)fd;
	(void)what;
	assert(loop_owned(j->loop) && fn);
	j->after = NULL;
	fn(j);
}

int loop_defer(struct http_loop *lp, void (*fn)(void *arg), void *arg)
{
	assert(loop_owned(lp));
	if (lp->defer_fn)
		return 0;
	lp->defer_fn = fn;
	lp->defer_arg = arg;
	event_active(lp->defer_ev, EV_TIMEOUT, 0);
	return 1;
}

int loop_deferred(const struct http_loop *lp)
{
	return lp->defer_fn != NULL;
}

void loop_run_deferred(struct http_loop *lp)
{
	void (*fn)(void *arg) = lp->defer_fn;

	assert(loop_owned(lp));
	lp->defer_fn = NULL;
	if (fn)
		fn(lp->defer_arg);
}

void loop_on_defer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	loop_run_deferred(arg);
}

/* Handles a job that came back to its loop: arms its timer (loop_job_after),
 * or replies and recycles it. */
static void job_finish(struct http_loop *lp, struct job *j)
{
	assert(loop_owned(lp));
	if (j->after) {
		struct timeval tv = {
			.tv_sec = j->after_ms / 1000,
			.tv_usec = (long)(j->after_ms % 1000) * 1000,
		};

		if (!j->timer)
			j->timer = evtimer_new(lp->base, on_job_timer, j);
		if (j->timer && evtimer_add(j->timer, &tv) == 0)
			return;
		/* No timer: call now rather than hold the job (a reservation). */
		log_warn("loop %u: cannot arm a job's timer; going on at once", lp->index);
		on_job_timer(-1, 0, j);
		return;
	}
	assert(j->state == JOB_DONE);
	reply_job(lp, j);
	lp->inflight--;
	handoff_job_put(&lp->handoff, j);
	loop_maybe_drained(lp);
}

void loop_job_after(struct job *j, unsigned ms, void (*fn)(struct job *j))
{
	j->after = fn;
	j->after_ms = ms;
	loop_job_done(j);
}

void loop_job_done(struct job *j)
{
	struct http_loop *lp = j->loop;

	if (cur_loop == lp)
		job_finish(lp, j);
	else
		handoff_post(&lp->handoff, j);
}

/* Owning loop only: finishes every job that came back (on a wakeup). */
void loop_finish_returned(struct http_loop *lp)
{
	struct job *fifo = handoff_take(&lp->handoff);

	while (fifo) {
		struct job *j = fifo;

		fifo = j->next;
		job_finish(lp, j);
	}
}
