/*
 * routes.c: what a loop does with a request (see routes.h): route it,
 * answer at once what needs no worker (health, events, metrics, every
 * client error), or fill a job and queue it; at the end of the loop
 * iteration the queued jobs go to the pool in one submission per lane (or,
 * with "workers": 0, run here). Owning loop only, all of it; what leaves
 * is the jobs, each a copy of what its request said.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "admin.h"
#include "idem.h"
#include "loop.h"
#include "purchase.h"
#include "reply.h"
#include "request.h"
#include "routes.h"
#include "work.h"

static unsigned method_bit(enum evhttp_cmd_type t)
{
	switch (t) {
	case EVHTTP_REQ_GET: return REQ_GET;
	case EVHTTP_REQ_HEAD: return REQ_HEAD;
	case EVHTTP_REQ_POST: return REQ_POST;
	case EVHTTP_REQ_PUT: return REQ_PUT;
	case EVHTTP_REQ_DELETE: return REQ_DELETE;
	case EVHTTP_REQ_PATCH: return REQ_PATCH;
	case EVHTTP_REQ_OPTIONS: return REQ_OPTIONS;
	default: return REQ_OTHER;
	}
}

static void route_events(struct http_loop *lp, struct evhttp_request *req)
{
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	size_t n;
	/* One snapshot of the events on sale: a reload may change the set. */
	struct catalog_event *const *evs = catalog_events(lp->http->cat, &n);

	reply_events(out, evs, n);
	loop_send_reply(lp, req, 200);
}

static void free_text(const void *data, size_t len, void *arg)
{
	(void)len;
	(void)arg;
	free((void *)data);
}

/* GET /metrics, formatted here on the loop: summing the per-thread blocks
 * stops no other thread, and a few events make a few KB (tens of µs); a
 * worker would cost a hand-off and two wakeups for as much. */
static void route_metrics(struct http_loop *lp, struct evhttp_request *req)
{
	struct http *h = lp->http;
	struct metrics_sources src = {
		.cat = h->cat, .pool = h->pool,
		.queue_capacity = loop_conf(h)->queue_depth,
		.connections = atomic_load(&h->nconn),
	};
	char *text = NULL;
	size_t len = 0;
	int rc = metrics_render(&src, &text, &len);

	if (rc == -ENOTSUP) {
		loop_send_error(lp, req, 404, "metrics_disabled", "metrics are off (metrics.enabled "
				"is false, or ticketd was built with --disable-metrics)");
		return;
	}
	if (rc < 0 || evbuffer_add_reference(evhttp_request_get_output_buffer(req), text,
					     len, free_text, NULL) < 0) {
		free(text);
		loop_send_error(lp, req, 500, "internal_error", "cannot format the metrics: %s",
				strerror(rc < 0 ? -rc : ENOMEM));
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; version=0.0.4; charset=utf-8");
	loop_send_reply(lp, req, 200);
}

/* Queues a filled job for the pool; the loop hands over all it queued in
 * one iteration at once (on_flush), which replies 503 to what does not fit. */
static void submit(struct http_loop *lp, struct job *j, enum pool_lane lane)
{
	j->task.next = lp->pend[lane];
	lp->pend[lane] = &j->task;
	if (lp->npend++ == 0)
		event_active(lp->flush_ev, EV_TIMEOUT, 0);
}

/* "workers": 0: runs the jobs of list (newest first) on the loop, oldest
 * first, as a worker would. */
static void run_inline(struct http_loop *lp, struct pool_task *t)
{
	struct pool_task *list = NULL;
	/* Their commits: one ledger batch. While payment timers are settling
	 * (purchase.c holds their commits until its loop_defer call) they join
	 * that batch: releasing here would end it and send the later timers'
	 * one by one. */
	int own = !loop_deferred(lp);

	while (t) {
		struct pool_task *next = t->next;

		t->next = list;
		list = t;
		t = next;
	}
	if (own)
		ledger_hold(lp->http->env->ledger);
	while (list) {
		t = list;
		list = t->next;
		t->next = NULL;
		lp->inflight++;
		work_run(t, NULL);
	}
	if (own)
		ledger_release(lp->http->env->ledger);
}

/* Runs after the other callbacks of the loop iteration that queued jobs
 * (it was activated behind them): one pool_submit_list per lane, or, with
 * no workers, the jobs themselves. */
void routes_on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct http_loop *lp = arg;
	uint64_t now = metrics_now();

	(void)fd;
	(void)what;
	for (int lane = POOL_PRIORITY; lane >= POOL_NORMAL; lane--) {
		struct pool_task *list = NULL, *t = lp->pend[lane], *refused = NULL;
		int n;

		for (struct pool_task *q = t; metrics_on && q; q = q->next)
			job_of_task(q)->times.queued = now;
		if (lp->http->inline_work) {
			/* No pool: reserve here, priority lane first (an async
			 * payment is a timer of this loop anyway). Jobs finish
			 * at once (loop_job_done on the owning loop). */
			run_inline(lp, lp->pend[lane]);
			lp->pend[lane] = NULL;
			continue;
		}
		while (t) { /* newest first: reverse to submit oldest first */
			struct pool_task *next = t->next;

			/* Sold out: answered here, after the others are
			 * submitted, with no round trip to a worker. */
			if (purchase_refuse_sold_out(job_of_task(t))) {
				t->next = refused;
				refused = t;
			} else {
				t->next = list;
				list = t;
			}
			t = next;
		}
		lp->pend[lane] = NULL;
		n = pool_submit_list(lp->http->pool, &list, (enum pool_lane)lane);
		if (n > 0)
			lp->inflight += (unsigned)n;
		while (refused) {
			struct job *j = job_of_task(refused);

			refused = refused->next;
			lp->inflight++;
			purchase_done(j, JOB_SOLD_OUT, 0); /* on this loop: replies now */
		}
		while (list) {
			struct job *j = job_of_task(list);
			struct evhttp_request *req = j->req;

			list = list->next;
			purchase_unreserve(j);
			loop_answering(lp, j);
			if (n >= 0 && j->kind == JOB_PURCHASE)
				metrics_purchase(j->ev, j->in.tier, METRICS_OVERLOADED,
						 j->in.tier, 0);
			handoff_job_put(&lp->handoff, j);
			if (n >= 0)
				loop_send_error(lp, req, 503, "overloaded",
						"the server is busy; retry shortly");
			else
				loop_send_error(lp, req, 503, "shutting_down",
						"the server is shutting down");
		}
	}
	lp->npend = 0;
	loop_maybe_drained(lp);
}

static void route_purchase(struct http_loop *lp, struct evhttp_request *req,
			   struct catalog_event *ev)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
	struct request_error rerr;
	struct job *j = handoff_job_get(&lp->handoff);

	if (!j) {
		loop_send_error(lp, req, 503, "overloaded", "out of memory; retry shortly");
		return;
	}
	if (request_decode_purchase(body, len, loop_conf(lp->http)->limits.max_quantity,
				    &j->in, &rerr) < 0) {
		handoff_job_put(&lp->handoff, j);
		loop_send_error(lp, req, rerr.status, rerr.code, "%s", rerr.message);
		return;
	}
	if (j->in.tier == SELLER_VIP) {
		if (!ev->has_vip) {
			handoff_job_put(&lp->handoff, j);
			loop_send_error(lp, req, 400, "unknown_tier",
					"event %s has no vip tier", ev->id);
			return;
		}
		if (!j->in.has_vip_code ||
		    !catalog_vip_code_ok(ev, j->in.vip_code, strlen(j->in.vip_code))) {
			handoff_job_put(&lp->handoff, j);
			loop_send_error(lp, req, 403, "invalid_vip_code",
					"a vip purchase needs the event's vip_code");
			return;
		}
	}
	if (idem_header(evhttp_request_get_input_headers(req), j->idem.key, &rerr) < 0) {
		handoff_job_put(&lp->handoff, j);
		loop_send_error(lp, req, rerr.status, rerr.code, "%s", rerr.message);
		return;
	}
	j->kind = JOB_PURCHASE;
	j->ev = ev;
	j->req = req;
	j->times.arrived = lp->req_t0;
	submit(lp, j, j->in.tier == SELLER_VIP && ev->vip_first ? POOL_PRIORITY
								: POOL_NORMAL);
}

/* Hands a request about one order (kind JOB_ORDER or JOB_REFUND) to a
 * worker, with the id from the route; 503 if no job can be had. */
static void submit_order_job(struct http_loop *lp, struct evhttp_request *req,
			     const struct request_route *rt, enum job_kind kind)
{
	struct job *j = handoff_job_get(&lp->handoff);

	if (!j) {
		loop_send_error(lp, req, 503, "overloaded", "out of memory; retry shortly");
		return;
	}
	j->kind = kind;
	j->ev = NULL;
	memcpy(j->order_id, rt->id, rt->id_len);
	j->order_id[rt->id_len] = '\0';
	j->req = req;
	j->times.arrived = lp->req_t0;
	submit(lp, j, POOL_NORMAL);
}

/* Refuses, with a JSON error, what evhttp let through but ticketd does not
 * take: a target over limits.max_url_bytes (414) and ambiguous framing
 * (request_header: 400, and the connection is closed). Returns 1 to go on. */
static int check_framing(struct http_loop *lp, struct evhttp_request *req)
{
	const char *target = evhttp_request_get_uri(req);
	size_t max = loop_conf(lp->http)->limits.max_url_bytes;
	struct request_headers hs = { 0 };
	struct request_error rerr;
	struct evkeyval *kv;

	if (target && strnlen(target, max + 1) > max) {
		loop_send_error(lp, req, 414, "uri_too_long",
				"the request target is longer than %zu bytes", max);
		return 0;
	}
	for (kv = evhttp_request_get_input_headers(req)->tqh_first; kv;
	     kv = kv->next.tqe_next) {
		if (request_header(&hs, kv->key, kv->value, &rerr) < 0) {
			evhttp_add_header(evhttp_request_get_output_headers(req),
					  "Connection", "close");
			loop_send_error(lp, req, rerr.status, rerr.code, "%s", rerr.message);
			return 0;
		}
	}
	return 1;
}

/* POST /v1/orders/{id}/refund: the token is checked here, the refund runs
 * on a worker (work.c). */
static void route_refund(struct http_loop *lp, struct evhttp_request *req,
			 const struct request_route *rt)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct request_error rerr;

	if (admin_authorize(lp->http->env->admin, evhttp_find_header(in, "Authorization"),
			    &rerr) < 0) {
		if (rerr.status == 401)
			evhttp_add_header(evhttp_request_get_output_headers(req),
					  "WWW-Authenticate", "Bearer realm=\"ticketd\"");
		loop_send_error(lp, req, rerr.status, rerr.code, "%s", rerr.message);
		return;
	}
	submit_order_job(lp, req, rt, JOB_REFUND);
}

/* evhttp's generic callback: every request that parsed lands here. */
void routes_on_request(struct evhttp_request *req, void *arg)
{
	struct http_loop *lp = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	unsigned method = method_bit(evhttp_request_get_command(req));
	struct request_route rt;
	struct catalog_event *ev;

	assert(loop_owned(lp));
	conn_request_held(&lp->conns, req);
	lp->req_t0 = metrics_now();
	lp->req_route = METRICS_ROUTE_OTHER;
	/* Only this thread writes it: a load and a store, no locked add. */
	atomic_store_explicit(&lp->requests,
			      atomic_load_explicit(&lp->requests, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	if (lp->conns.draining) {
		loop_send_error(lp, req, 503, "shutting_down", "the server is shutting down");
		return;
	}
	if (!check_framing(lp, req))
		return;
	if (!path)
		path = "";
	if (request_route(path, strlen(path), &rt) == ROUTE_NOT_FOUND) {
		loop_send_error(lp, req, 404, "not_found", "no such path; see docs/api.md");
		return;
	}
	lp->req_route = metrics_route_of(rt.kind);
	if (!(method & rt.allowed)) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", rt.allow);
		loop_send_error(lp, req, 405, "method_not_allowed",
				"this path answers %s only", rt.allow);
		return;
	}
	switch (rt.kind) {
	case ROUTE_HEALTHZ:
		reply_healthz(evhttp_request_get_output_buffer(req));
		loop_send_reply(lp, req, 200);
		return;
	case ROUTE_EVENTS:
		route_events(lp, req);
		return;
	case ROUTE_EVENT:
	case ROUTE_PURCHASE:
		ev = catalog_find(lp->http->cat, rt.id, rt.id_len);
		if (!ev) {
			loop_send_error(lp, req, 404, "event_not_found", "no event %.*s",
					(int)rt.id_len, rt.id);
			return;
		}
		if (rt.kind == ROUTE_PURCHASE) {
			route_purchase(lp, req, ev);
		} else {
			reply_event(evhttp_request_get_output_buffer(req), ev);
			loop_send_reply(lp, req, 200);
		}
		return;
	case ROUTE_ORDER:
		submit_order_job(lp, req, &rt, JOB_ORDER);
		return;
	case ROUTE_REFUND:
		route_refund(lp, req, &rt);
		return;
	case ROUTE_METRICS:
		route_metrics(lp, req);
		return;
	default:
		loop_send_error(lp, req, 404, "not_found", "no such path; see docs/api.md");
		return;
	}
}
