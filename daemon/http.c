/*
 * http.c: the event loops. Each loop thread owns one event_base (created
 * with EVENT_BASE_FLAG_NOLOCK: no other thread ever calls into it), one
 * evhttp, one listener per listening socket (its own, SO_REUSEPORT, or
 * shared with the other loops: see http.h), a table of its connections, a
 * free list of jobs and a completion queue.
 *
 * What crosses threads, and how:
 *  - loop -> pool: pool_submit_list() of the jobs the loop filled in one
 *    iteration (the pool's lock, once), less the plain purchases that
 *    their seller's sold-out hint says will be refused: the loop tries
 *    those itself (purchase_refuse_sold_out) and answers the refused 409;
 *    with "workers": 0 (fixed at start) nothing goes to the pool: the loop
 *    reserves itself (run_inline), and a job comes back to it at once;
 *  - worker/ledger -> loop: http_job_done() pushes the job on the loop's
 *    lock-free completion stack; the push that finds it empty writes the
 *    loop's eventfd, so one wakeup serves a whole batch;
 *  - main -> loop: a control bit (drain, exit, new config) and the same
 *    eventfd; the config itself is an immutable snapshot behind an atomic
 *    pointer (http_set_conf), which its publisher keeps alive;
 *  - loop -> main: the drained callback, the shared connection count, and
 *    per-loop atomics the loop alone writes: its request count and its
 *    heartbeat (a timer bumps it: a stuck loop's stands still).
 *
 * Connections are counted for max_connections: the bevcb counts a new one,
 * and, later in the same loop iteration (after evhttp has set it up), the
 * loop registers evhttp's close callback on it, which counts it gone. A
 * request is "busy" from the moment the loop gets it until its reply has
 * been written (evhttp's on_complete callback) or its connection closed;
 * a drain waits for busy and in-flight work to reach zero.
 *
 * libevent 2.1 note: while the loop holds a request (read is disabled
 * then), evhttp does not free it; if the client is gone, the reply fails in
 * evhttp, which then frees the request and the connection. So a job keeps
 * its req until the loop calls evhttp_send_reply exactly once, and the
 * purchase itself completes (confirmed or released) whatever the client did.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "guard.h"
#include "admin.h"
#include "evreply.h"
#include "http.h"
#include "idem.h"
#include "log.h"
#include "metrics.h"
#include "purchase.h"
#include "reply.h"
#include "request.h"

#define CTL_DRAIN 0x1u
#define CTL_EXIT 0x2u
#define CTL_CONF 0x4u          /* a new config was published: apply its limits */
/* With the changelist, a loop applies an epoll_ctl(DEL) for a connection it
 * closed at its next poll; by then another loop may have accepted a new
 * socket with the same fd number, and the kernel answers ENOENT, as libevent
 * expects. Harmless, but ThreadSanitizer reports the fd number as raced, so
 * the TSan build goes without the changelist and keeps real races visible. */
#ifdef TICKETD_TSAN
#define LOOP_CHANGELIST 0
#else
#define LOOP_CHANGELIST EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST
#endif

#define RESUME_MS 100          /* retry accepting after the cap or EMFILE */
#define PAUSE_LOG_S 10         /* at most one pause warning per loop per 10 s */

/* One accepted connection of a loop, indexed by its fd. */
struct conn_slot {
	struct evhttp_connection *evcon;  /* NULL: slot free */
	int busy;                         /* a request is in our hands or its
					   * reply is being written */
	struct guard *guard;              /* its deadlines (guard.h) */
};

struct http_loop {
	struct http *http;
	unsigned index;
	pthread_t thread;
	int started;                      /* thread created */
	struct event_base *base;
	struct evhttp *evh;
	struct evhttp_bound_socket **bound;  /* one per listening fd; NULL once removed */
	struct event *wake_ev;            /* reads efd */
	struct event *newconn_ev;         /* registers newly accepted connections */
	struct event *resume_ev;          /* re-enables accepting */
	struct event *flush_ev;           /* hands this iteration's jobs to the pool */
	struct event *settle_ev;          /* ends an iteration's held payments */
	struct guard_set *guards;         /* the connections' deadlines */
	struct event *tick_ev;            /* bumps beat (watchdog), or NULL */
	struct event *stall_ev;           /* the test hook's one-shot, or NULL */
	int efd;                          /* eventfd: completions and control */
	_Atomic(struct job *) done_head;  /* completion stack (MPSC, lock-free) */
	atomic_uint ctl;                  /* CTL_* requests from main */
	atomic_ullong beat;               /* written by the loop only: its ticks */
	atomic_ullong requests;           /* written by the loop only: requests routed */

	/* Everything below belongs to the loop thread alone. */
	struct job *free_jobs;
	struct job *all_jobs;
	unsigned inflight;                /* jobs out of the loop (pool, payment, commit) */
	struct pool_task *pend[2];        /* jobs for the pool, per lane, newest first */
	unsigned npend;
	int settling;                     /* payment timers' commits held (settle_ev) */
	unsigned busy;                    /* busy connections */
	unsigned open;                    /* open connections */
	unsigned long long accepted;      /* connections accepted, ever */
	struct bufferevent **fresh;       /* accepted, not yet registered */
	size_t nfresh, freshcap;
	struct conn_slot *slots;
	size_t nslots;
	int paused;                       /* listeners disabled (cap, EMFILE) */
	time_t paused_logged;             /* last time a pause was logged */
	int pause_loud;                   /* this pause was logged as a warning */
	uint64_t req_t0;                  /* metrics: the request being answered */
	enum metrics_route req_route;     /*   arrived then, on this route */
	int draining;
	int drained;
};

struct http {
	_Atomic(const struct conf *) conf; /* the current snapshot (conf_now) */
	int inline_work;                  /* "workers": 0 at start: loops reserve */
	unsigned tick_ms;                 /* loop heartbeat period; 0 = none */
	unsigned stall_ms;                /* test hook: loop 0 stalls then; 0 = never */
	struct catalog *cat;
	struct pool *pool;
	const struct job_env *env;
	const int *fds;                   /* nsets sets of nfds (http_options) */
	size_t nfds;
	size_t nsets;
	void (*on_drained)(void *arg);
	void *arg;
	struct http_loop *loops;
	unsigned nloops;
	atomic_uint nconn;                /* open connections, all loops */
	atomic_uint ndrained;             /* loops that finished draining */
	pthread_mutex_t start_lock;       /* guards nstarted */
	pthread_cond_t start_cond;
	unsigned nstarted;
};

/* The config snapshot in force; any thread. */
static const struct conf *conf_now(const struct http *h)
{
	return atomic_load_explicit(&((struct http *)h)->conf, memory_order_acquire);
}

/* The loop this thread runs, if any. */
static _Thread_local struct http_loop *cur_loop;

/* Jobs a worker holds for each loop during its batch (newest first, so that
 * the loop, which reverses its stack, sees them oldest first). */
struct held_jobs {
	struct job *head;             /* newest */
	struct job *tail;             /* oldest */
};
static _Thread_local struct held_jobs held[HTTP_MAX_LOOPS];
static _Thread_local uint64_t held_mask;  /* loops with held jobs */
static _Thread_local int holding;

/* ---- sockets ------------------------------------------------------------ */

int http_sockname(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN];

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(a->sin6_port));
	} else if (ss.ss_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(a->sin_port));
	} else {
		snprintf(buf, len, "(family %d)", ss.ss_family);
	}
	return 0;
}

/* The TCP ports this process has claimed (port_claim): written by the
 * main thread while it opens the sockets, before any loop runs. */
static struct {
	unsigned port;
	int fd;
} claimed[CONF_MAX_LISTEN];
static size_t nclaimed;

/* The claim of port is held already: by a process of this user (a second
 * ticketd: SO_REUSEPORT would let us join its port), refuse; by another
 * user's, whom the kernel keeps out of our SO_REUSEPORT group anyway, warn
 * and go on (anyone may bind an abstract name). 0, or -EADDRINUSE with err. */
static int port_claimed(const struct sockaddr_un *sun, socklen_t len, unsigned port,
			const char *text, char *err, size_t errlen)
{
	struct ucred peer;
	socklen_t plen = sizeof(peer);
	char who[32] = "";
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), known;

	known = s >= 0 && connect(s, (const struct sockaddr *)sun, len) == 0 &&
		getsockopt(s, SOL_SOCKET, SO_PEERCRED, &peer, &plen) == 0;
	if (s >= 0)
		close(s);
	if (known && peer.uid != geteuid()) {
		log_warn("listen %s: @ticketd-tcp-%u is held by pid %d of uid %u, not of this "
			 "user: going on (its sockets cannot join ours)", text, port,
			 (int)peer.pid, (unsigned)peer.uid);
		return 0;
	}
	if (known)
		snprintf(who, sizeof(who), " (pid %d)", (int)peer.pid);
	snprintf(err, errlen, "listen %s: another ticketd%s is listening on port %u (it "
		 "holds the abstract socket @ticketd-tcp-%u); two would share the port's "
		 "connections", text, who, port, port);
	return -EADDRINUSE;
}

/* Claims TCP port for this process by binding the abstract unix socket
 * "@ticketd-tcp-PORT", held until http_release_ports or exit. Every socket
 * ticketd binds has SO_REUSEPORT (the loops share a port), and so would a
 * second ticketd's: the kernel would let it join the port and take part of
 * its connections. The claim refuses it instead. 0, or -errno with err. */
static int port_claim(unsigned port, const char *text, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	socklen_t len;
	int s, rc;

	for (size_t i = 0; i < nclaimed; i++)
		if (claimed[i].port == port)
			return 0; /* a second address of ours on the same port */
	if (nclaimed == CONF_MAX_LISTEN) {
		snprintf(err, errlen, "listen %s: more than %d ports", text, CONF_MAX_LISTEN);
		return -ENOSPC;
	}
	/* sun_path[0] stays 0: the abstract namespace, nothing on disk. */
	len = (socklen_t)snprintf(sun.sun_path + 1, sizeof(sun.sun_path) - 1,
				  "ticketd-tcp-%u", port);
	len += (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		rc = -errno;
		snprintf(err, errlen, "listen %s: socket(AF_UNIX) for the port's claim: %s",
			 text, strerror(errno));
		return rc;
	}
	if (bind(s, (struct sockaddr *)&sun, len) < 0 || listen(s, 1) < 0) {
		rc = -errno;
		close(s);
		if (rc == -EADDRINUSE)
			return port_claimed(&sun, len, port, text, err, errlen);
		snprintf(err, errlen, "listen %s: cannot claim the port (bind "
			 "@ticketd-tcp-%u): %s", text, port, strerror(-rc));
		return rc;
	}
	claimed[nclaimed].port = port;
	claimed[nclaimed].fd = s;
	nclaimed++;
	return 0;
}

void http_release_ports(void)
{
	while (nclaimed > 0)
		close(claimed[--nclaimed].fd);
}

/* The port a bound socket has, or 0. */
static unsigned bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return 0;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

/* Makes a listening socket bound to addr (text names it in errors): the
 * body of http_listen and http_listen_again. A first socket (claim set)
 * claims its port between bind and listen, so that a refused second
 * ticketd never listens. 0 with *fd, or -errno. */
static int listen_on(const struct sockaddr *addr, socklen_t addrlen, const char *text,
		     int claim, int *fd, char *err, size_t errlen)
{
	int one = 1, s, rc;

	s = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0) {
		rc = -errno;
		snprintf(err, errlen, "listen %s: socket: %s", text, strerror(errno));
		return rc;
	}
	if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    (addr->sa_family == AF_INET6 &&
	     setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)) {
		rc = -errno;
		snprintf(err, errlen, "listen %s: setsockopt: %s", text, strerror(errno));
		goto fail;
	}
	if (bind(s, addr, addrlen) < 0) {
		rc = -errno;
		snprintf(err, errlen, "listen %s: bind: %s", text, strerror(errno));
		goto fail;
	}
	if (claim && (rc = port_claim(bound_port(s), text, err, errlen)) < 0)
		goto fail;
	if (listen(s, SOMAXCONN) < 0) {
		rc = -errno;
		snprintf(err, errlen, "listen %s: listen: %s", text, strerror(errno));
		goto fail;
	}
	*fd = s;
	return 0;
fail:
	close(s);
	return rc;
}

int http_listen(const struct conf_listen *l, int *fd, char *bound, size_t boundlen,
		char *err, size_t errlen)
{
	int rc = listen_on((const struct sockaddr *)&l->addr, l->addrlen, l->text, 1, fd,
			   err, errlen);

	if (rc == 0)
		http_sockname(*fd, bound, boundlen);
	return rc;
}

int http_listen_again(int fd, int *out, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char text[96];

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		int rc = -errno;

		snprintf(err, errlen, "listen: getsockname: %s", strerror(-rc));
		return rc;
	}
	http_sockname(fd, text, sizeof(text));
	return listen_on((const struct sockaddr *)&ss, sl, text, 0, out, err, errlen);
}

/* ---- replies ------------------------------------------------------------ */

static struct conn_slot *slot_of(struct http_loop *lp, struct evhttp_connection *evcon);

/* Sends what the output buffer holds with status code. */
static void send_reply(struct http_loop *lp, struct evhttp_request *req, int code)
{
	struct conn_slot *s = slot_of(lp, evhttp_request_get_connection(req));

	if (s && s->guard)
		guard_replying(s->guard);
	/* evhttp 2.1 writes the output buffer even for HEAD (without a
	 * Content-Length): a body there would read as the next response. */
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		struct evbuffer *out = evhttp_request_get_output_buffer(req);

		evbuffer_drain(out, evbuffer_get_length(out));
	}
	if (lp->draining)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection",
				  "close");
	metrics_reply(lp->req_route, code, lp->req_t0);
	evreply_send(req, code); /* written now: see lib/evreply.c */
}

/* Replies status with an error body (reply_error); fmt is the message for
 * a person. */
__attribute__((format(printf, 5, 6)))
static void send_error(struct http_loop *lp, struct evhttp_request *req, int status,
		       const char *code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_verror(evhttp_request_get_output_buffer(req), code, fmt, ap);
	va_end(ap);
	if (status == 503)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
	send_reply(lp, req, status);
}

/* ---- jobs --------------------------------------------------------------- */

static struct job *job_get(struct http_loop *lp)
{
	struct job *j = lp->free_jobs;

	if (j) {
		lp->free_jobs = j->next;
	} else {
		j = calloc(1, sizeof(*j));
		if (!j)
			return NULL;
		j->loop = lp;
		j->env = lp->http->env;
		j->all_next = lp->all_jobs;
		lp->all_jobs = j;
	}
	j->next = NULL;
	j->req = NULL;
	j->state = JOB_QUEUED;
	j->error = 0;
	j->reserved = 0;
	return j;
}

static void job_put(struct http_loop *lp, struct job *j)
{
	j->req = NULL;
	j->next = lp->free_jobs;
	lp->free_jobs = j;
}

/* Reports this loop drained once nothing is in flight and nothing busy. */
static void maybe_drained(struct http_loop *lp)
{
	struct http *h = lp->http;

	if (!lp->draining || lp->drained || lp->inflight || lp->npend || lp->busy)
		return;
	lp->drained = 1;
	log_debug("loop %u drained", lp->index);
	if (atomic_fetch_add(&h->ndrained, 1) + 1 == h->nloops && h->on_drained)
		h->on_drained(h->arg);
}

/* Makes j's request the one being answered (for send_reply's metrics). */
static void answering(struct http_loop *lp, const struct job *j)
{
	lp->req_t0 = j->times.arrived;
	lp->req_route = j->kind == JOB_ORDER ? METRICS_ROUTE_ORDER :
			j->kind == JOB_REFUND ? METRICS_ROUTE_REFUND : METRICS_ROUTE_PURCHASE;
}

/* Sends the reply a finished job earned. */
static void reply_job(struct http_loop *lp, struct job *j)
{
	struct evhttp_request *req = j->req;
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	const struct order *o = &j->commit.order;

	answering(lp, j);
	metrics_job(j);
	if (j->reply.status) { /* built off the loop (answer.c): JOB_REPLY, or a
				* purchase with an Idempotency-Key */
		send_reply(lp, req, answer_write(&j->reply, req));
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
		send_reply(lp, req, 201);
		return;
	}
	case JOB_SOLD_OUT:
		reply_sold_out(out, j->in.tier, j->in.quantity, j->available);
		send_reply(lp, req, 409);
		return;
	case JOB_DECLINED:
		send_error(lp, req, 402, "payment_declined",
			   "the payment was declined; no tickets were sold");
		return;
	case JOB_UNAVAILABLE:
		send_error(lp, req, 503, "unavailable",
			   "the order could not be recorded (%s); no tickets were sold",
			   strerror(-j->error));
		return;
	case JOB_NOT_FOUND:
		send_error(lp, req, 404, "order_not_found", "no order %s", j->order_id);
		return;
	case JOB_FAILED:
	default:
		log_err("request failed: %s", strerror(-j->error));
		send_error(lp, req, 500, "internal_error", "internal error: %s",
			   strerror(-j->error));
		return;
	}
}

/* A payment is over: settles the purchase (its commit, or its release).
 * The commits of every payment timer that fires in one loop iteration go to
 * the ledger as one batch: the first holds this thread's submissions and
 * activates settle_ev, which runs after the iteration's other timers (they
 * were all made active before the first ran) and hands them over. */
static void on_pay_timer(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;
	struct http_loop *lp = j->loop;

	(void)fd;
	(void)what;
	if (!lp->settling) {
		lp->settling = 1;
		orders_hold(lp->http->env->orders);
		event_active(lp->settle_ev, EV_TIMEOUT, 0);
	}
	purchase_settle(j); /* ends in http_job_done, maybe at once */
}

/* Hands the iteration's held payment commits to the ledger (on_pay_timer). */
static void on_settled(evutil_socket_t fd, short what, void *arg)
{
	struct http_loop *lp = arg;

	(void)fd;
	(void)what;
	lp->settling = 0;
	orders_release(lp->http->env->orders);
}

/* Handles a job that came back to its loop: arms the payment timer, or
 * replies and recycles it. */
static void job_finish(struct http_loop *lp, struct job *j)
{
	if (j->state == JOB_PAYING) {
		struct timeval tv = {
			.tv_sec = j->plan.latency_ms / 1000,
			.tv_usec = (long)(j->plan.latency_ms % 1000) * 1000,
		};

		if (!j->timer)
			j->timer = evtimer_new(lp->base, on_pay_timer, j);
		if (j->timer && evtimer_add(j->timer, &tv) == 0)
			return;
		/* No timer: settle now rather than hold the reservation. */
		log_warn("loop %u: cannot arm a payment timer; settling at once", lp->index);
		purchase_settle(j);
		return;
	}
	reply_job(lp, j);
	lp->inflight--;
	job_put(lp, j);
	maybe_drained(lp);
}

static void wake(struct http_loop *lp)
{
	uint64_t one = 1;

	if (write(lp->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_err("loop %u: eventfd write: %s", lp->index, strerror(errno));
}

/* Pushes the chain first..last (newest first) on lp's completion stack and
 * wakes lp if the stack was empty. */
static void push_chain(struct http_loop *lp, struct job *first, struct job *last)
{
	struct job *head = atomic_load_explicit(&lp->done_head, memory_order_relaxed);

	do {
		last->next = head;
	} while (!atomic_compare_exchange_weak_explicit(&lp->done_head, &head, first,
							memory_order_release,
							memory_order_relaxed));
	if (!head)
		wake(lp);
}

void http_job_done(struct job *j)
{
	struct http_loop *lp = j->loop;

	if (cur_loop == lp) {
		job_finish(lp, j);
	} else if (holding) {
		struct held_jobs *h = &held[lp->index];

		j->next = h->head;
		h->head = j;
		if (!h->tail)
			h->tail = j;
		held_mask |= 1ull << lp->index;
	} else {
		push_chain(lp, j, j);
	}
}

void http_job_hold(void)
{
	holding = 1;
}

void http_job_flush(void)
{
	while (held_mask) {
		unsigned i = (unsigned)__builtin_ctzll(held_mask);
		struct held_jobs *h = &held[i];

		held_mask &= held_mask - 1;
		push_chain(h->head->loop, h->head, h->tail);
		h->head = h->tail = NULL;
	}
}

void http_job_release(void)
{
	http_job_flush();
	holding = 0;
}

void http_batch_begin(void *arg)
{
	(void)arg;
	metrics_busy(1);
	http_job_hold();
}

void http_batch_end(void *arg)
{
	(void)arg;
	http_job_release();
	metrics_busy(0);
}

/* ---- accepting and connections ------------------------------------------ */

static void pause_accepting(struct http_loop *lp, const char *why)
{
	struct timeval tv = { 0, RESUME_MS * 1000 };

	if (lp->paused || lp->draining)
		return;
	lp->paused = 1;
	for (size_t i = 0; i < lp->http->nfds; i++)
		if (lp->bound[i])
			evconnlistener_disable(evhttp_bound_socket_get_listener(lp->bound[i]));
	/* At most one warning per loop and PAUSE_LOG_S: a flood must not
	 * turn into a flood of log lines. */
	lp->pause_loud = time(NULL) - lp->paused_logged >= PAUSE_LOG_S;
	if (lp->pause_loud) {
		lp->paused_logged = time(NULL);
		log_warn("loop %u: not accepting for now: %s", lp->index, why);
	} else {
		log_debug("loop %u: not accepting for now: %s", lp->index, why);
	}
	evtimer_add(lp->resume_ev, &tv);
}

static void resume_accepting(struct http_loop *lp)
{
	if (!lp->paused || lp->draining)
		return;
	lp->paused = 0;
	for (size_t i = 0; i < lp->http->nfds; i++)
		if (lp->bound[i])
			evconnlistener_enable(evhttp_bound_socket_get_listener(lp->bound[i]));
	if (lp->pause_loud)
		log_info("loop %u: accepting again", lp->index);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct http_loop *lp = arg;
	struct timeval tv = { 0, RESUME_MS * 1000 };

	(void)fd;
	(void)what;
	if (atomic_load(&lp->http->nconn) < conf_now(lp->http)->limits.max_connections)
		resume_accepting(lp);
	else if (lp->paused)
		evtimer_add(lp->resume_ev, &tv);
}

/* accept() failed in a way libevent does not retry (EMFILE, ENFILE, ENOBUFS):
 * stop accepting and try again on a timer instead of spinning. */
static void on_accept_error(struct evconnlistener *lst, void *arg)
{
	struct http_loop *lp = cur_loop;
	char why[96];

	(void)lst;
	(void)arg;
	snprintf(why, sizeof(why), "accept: %s", strerror(errno));
	if (lp)
		pause_accepting(lp, why);
}

/* A connection is gone: uncounts it (slot may be NULL if never registered). */
static void conn_gone(struct http_loop *lp, struct conn_slot *s)
{
	struct http *h = lp->http;
	unsigned left;

	if (s) {
		if (s->busy)
			lp->busy--;
		if (s->guard)
			guard_close(s->guard);
		s->evcon = NULL;
		s->busy = 0;
		s->guard = NULL;
	}
	lp->open--;
	left = atomic_fetch_sub(&h->nconn, 1) - 1;
	if (lp->paused && left < conf_now(h)->limits.max_connections)
		resume_accepting(lp);
	maybe_drained(lp);
}

/* The slot of evcon, or NULL if it was never registered. */
static struct conn_slot *slot_of(struct http_loop *lp, struct evhttp_connection *evcon)
{
	evutil_socket_t fd;

	if (!evcon)
		return NULL;
	fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
	if (fd < 0 || (size_t)fd >= lp->nslots || lp->slots[fd].evcon != evcon)
		return NULL;
	return &lp->slots[fd];
}

static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
	struct http_loop *lp = arg;

	conn_gone(lp, slot_of(lp, evcon));
}

/* Records evcon (fd) in the slot table; 0 or -ENOMEM. */
static int slot_add(struct http_loop *lp, evutil_socket_t fd,
		    struct evhttp_connection *evcon)
{
	if ((size_t)fd >= lp->nslots) {
		size_t n = lp->nslots ? lp->nslots : 256;
		struct conn_slot *s;

		while (n <= (size_t)fd)
			n *= 2;
		s = realloc(lp->slots, n * sizeof(*s));
		if (!s)
			return -ENOMEM;
		memset(s + lp->nslots, 0, (n - lp->nslots) * sizeof(*s));
		lp->slots = s;
		lp->nslots = n;
	}
	lp->slots[fd].evcon = evcon;
	lp->slots[fd].busy = 0;
	lp->slots[fd].guard = NULL;
	return 0;
}

/* Runs in the same loop iteration as the accepts, after evhttp set the new
 * connections up: registers each one's close callback and sets TCP_NODELAY. */
static void on_new_conns(evutil_socket_t fd, short what, void *arg)
{
	struct http_loop *lp = arg;

	(void)fd;
	(void)what;
	for (size_t i = 0; i < lp->nfresh; i++) {
		struct bufferevent *bev = lp->fresh[i];
		bufferevent_data_cb readcb;
		void *cbarg = NULL;
		evutil_socket_t cfd = bufferevent_getfd(bev);
		int one = 1;

		bufferevent_getcb(bev, &readcb, NULL, NULL, &cbarg);
		if (!readcb || !cbarg || cfd < 0) {
			/* evhttp already dropped it (bufferevent_free clears the
			 * callbacks; our reference kept the memory alive). */
			conn_gone(lp, NULL);
		} else if (slot_add(lp, cfd, cbarg) < 0 ||
			   !(lp->slots[cfd].guard = guard_open(lp->guards, cbarg))) {
			log_err("loop %u: out of memory; closing a new connection", lp->index);
			if ((size_t)cfd < lp->nslots)
				lp->slots[cfd].evcon = NULL;
			evhttp_connection_free(cbarg);
			conn_gone(lp, NULL);
		} else {
			setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			evhttp_connection_set_closecb(cbarg, on_conn_close, lp);
		}
		bufferevent_decref(bev);
	}
	lp->nfresh = 0;
}

/* evhttp's bevcb: makes the bufferevent of each new connection, so that the
 * loop sees every connection (counted here, registered in on_new_conns). */
static struct bufferevent *on_new_bev(struct event_base *base, void *arg)
{
	struct http_loop *lp = arg;
	struct http *h = lp->http;
	struct bufferevent *bev;
	unsigned n;

	if (lp->nfresh == lp->freshcap) {
		size_t cap = lp->freshcap ? lp->freshcap * 2 : 64;
		struct bufferevent **f = realloc(lp->fresh, cap * sizeof(*f));

		if (!f)
			return NULL; /* evhttp makes its own; it goes uncounted */
		lp->fresh = f;
		lp->freshcap = cap;
	}
	bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!bev)
		return NULL;
	bufferevent_incref(bev);
	lp->fresh[lp->nfresh++] = bev;
	lp->open++;
	lp->accepted++;
	n = atomic_fetch_add(&h->nconn, 1) + 1;
	event_active(lp->newconn_ev, EV_TIMEOUT, 0);
	if (n >= conf_now(h)->limits.max_connections)
		pause_accepting(lp, "max_connections reached");
	return bev;
}

/* Marks the connection of req busy until its reply is written. */
static void on_reply_written(struct evhttp_request *req, void *arg)
{
	struct http_loop *lp = arg;
	struct conn_slot *s = slot_of(lp, evhttp_request_get_connection(req));

	if (s && s->guard)
		guard_idle(s->guard);
	if (s && s->busy) {
		s->busy = 0;
		lp->busy--;
		maybe_drained(lp);
	}
}

/* ---- routes ------------------------------------------------------------- */

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
	send_reply(lp, req, 200);
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
		.queue_capacity = conf_now(h)->queue_depth,
		.connections = atomic_load(&h->nconn),
	};
	char *text = NULL;
	size_t len = 0;
	int rc = metrics_render(&src, &text, &len);

	if (rc == -ENOTSUP) {
		send_error(lp, req, 404, "metrics_disabled", "metrics are off (metrics.enabled "
			   "is false, or ticketd was built with --disable-metrics)");
		return;
	}
	if (rc < 0 || evbuffer_add_reference(evhttp_request_get_output_buffer(req), text,
					     len, free_text, NULL) < 0) {
		free(text);
		send_error(lp, req, 500, "internal_error", "cannot format the metrics: %s",
			   strerror(rc < 0 ? -rc : ENOMEM));
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; version=0.0.4; charset=utf-8");
	send_reply(lp, req, 200);
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
	 * (on_pay_timer's hold, released by on_settled) they join that batch:
	 * releasing here would end it and send the later timers' one by one. */
	int own = !lp->settling;

	while (t) {
		struct pool_task *next = t->next;

		t->next = list;
		list = t;
		t = next;
	}
	if (own)
		orders_hold(lp->http->env->orders);
	while (list) {
		t = list;
		list = t->next;
		t->next = NULL;
		lp->inflight++;
		purchase_work(t, NULL);
	}
	if (own)
		orders_release(lp->http->env->orders);
}

/* Runs after the other callbacks of the loop iteration that queued jobs
 * (it was activated behind them): one pool_submit_list per lane, or, with
 * no workers, the jobs themselves. */
static void on_flush(evutil_socket_t fd, short what, void *arg)
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
			 * at once (http_job_done on the owning loop). */
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
			answering(lp, j);
			if (n >= 0 && j->kind == JOB_PURCHASE)
				metrics_purchase(j->ev, j->in.tier, METRICS_OVERLOADED,
						 j->in.tier, 0);
			job_put(lp, j);
			if (n >= 0)
				send_error(lp, req, 503, "overloaded",
					   "the server is busy; retry shortly");
			else
				send_error(lp, req, 503, "shutting_down",
					   "the server is shutting down");
		}
	}
	lp->npend = 0;
	maybe_drained(lp);
}

static void route_purchase(struct http_loop *lp, struct evhttp_request *req,
			   struct catalog_event *ev)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
	struct request_error rerr;
	struct job *j = job_get(lp);

	if (!j) {
		send_error(lp, req, 503, "overloaded", "out of memory; retry shortly");
		return;
	}
	if (request_decode_purchase(body, len, conf_now(lp->http)->limits.max_quantity,
				    &j->in, &rerr) < 0) {
		job_put(lp, j);
		send_error(lp, req, rerr.status, rerr.code, "%s", rerr.message);
		return;
	}
	if (j->in.tier == SELLER_VIP) {
		if (!ev->has_vip) {
			job_put(lp, j);
			send_error(lp, req, 400, "unknown_tier",
				   "event %s has no vip tier", ev->id);
			return;
		}
		if (!j->in.has_vip_code ||
		    !catalog_vip_code_ok(ev, j->in.vip_code, strlen(j->in.vip_code))) {
			job_put(lp, j);
			send_error(lp, req, 403, "invalid_vip_code",
				   "a vip purchase needs the event's vip_code");
			return;
		}
	}
	if (idem_header(evhttp_request_get_input_headers(req), j->idem_key, &rerr) < 0) {
		job_put(lp, j);
		send_error(lp, req, rerr.status, rerr.code, "%s", rerr.message);
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
	struct job *j = job_get(lp);

	if (!j) {
		send_error(lp, req, 503, "overloaded", "out of memory; retry shortly");
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
	size_t max = conf_now(lp->http)->limits.max_url_bytes;
	struct request_headers hs = { 0 };
	struct request_error rerr;
	struct evkeyval *kv;

	if (target && strnlen(target, max + 1) > max) {
		send_error(lp, req, 414, "uri_too_long",
			   "the request target is longer than %zu bytes", max);
		return 0;
	}
	for (kv = evhttp_request_get_input_headers(req)->tqh_first; kv;
	     kv = kv->next.tqe_next) {
		if (request_header(&hs, kv->key, kv->value, &rerr) < 0) {
			evhttp_add_header(evhttp_request_get_output_headers(req),
					  "Connection", "close");
			send_error(lp, req, rerr.status, rerr.code, "%s", rerr.message);
			return 0;
		}
	}
	return 1;
}

/* POST /v1/orders/{id}/refund: the token is checked here, the refund runs
 * on a worker (admin.c). */
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
		send_error(lp, req, rerr.status, rerr.code, "%s", rerr.message);
		return;
	}
	submit_order_job(lp, req, rt, JOB_REFUND);
}

/* evhttp's generic callback: every request that parsed lands here. */
static void on_request(struct evhttp_request *req, void *arg)
{
	struct http_loop *lp = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	unsigned method = method_bit(evhttp_request_get_command(req));
	struct conn_slot *s = slot_of(lp, evhttp_request_get_connection(req));
	struct request_route rt;
	struct catalog_event *ev;

	if (s && !s->busy) {
		s->busy = 1;
		lp->busy++;
	}
	if (s && s->guard)
		guard_held(s->guard);
	lp->req_t0 = metrics_now();
	lp->req_route = METRICS_ROUTE_OTHER;
	/* Only this thread writes it: a load and a store, no locked add. */
	atomic_store_explicit(&lp->requests,
			      atomic_load_explicit(&lp->requests, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	evhttp_request_set_on_complete_cb(req, on_reply_written, lp);
	if (lp->draining) {
		send_error(lp, req, 503, "shutting_down", "the server is shutting down");
		return;
	}
	if (!check_framing(lp, req))
		return;
	if (!path)
		path = "";
	if (request_route(path, strlen(path), &rt) == ROUTE_NOT_FOUND) {
		send_error(lp, req, 404, "not_found", "no such path; see docs/api.md");
		return;
	}
	lp->req_route = metrics_route_of(rt.kind);
	if (!(method & rt.allowed)) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", rt.allow);
		send_error(lp, req, 405, "method_not_allowed",
			   "this path answers %s only", rt.allow);
		return;
	}
	switch (rt.kind) {
	case ROUTE_HEALTHZ:
		reply_healthz(evhttp_request_get_output_buffer(req));
		send_reply(lp, req, 200);
		return;
	case ROUTE_EVENTS:
		route_events(lp, req);
		return;
	case ROUTE_EVENT:
	case ROUTE_PURCHASE:
		ev = catalog_find(lp->http->cat, rt.id, rt.id_len);
		if (!ev) {
			send_error(lp, req, 404, "event_not_found", "no event %.*s",
				   (int)rt.id_len, rt.id);
			return;
		}
		if (rt.kind == ROUTE_PURCHASE) {
			route_purchase(lp, req, ev);
		} else {
			reply_event(evhttp_request_get_output_buffer(req), ev);
			send_reply(lp, req, 200);
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
		send_error(lp, req, 404, "not_found", "no such path; see docs/api.md");
		return;
	}
}

/* ---- loop control ------------------------------------------------------- */

/* Stops accepting, closes idle connections, and drains what is left. */
static void loop_drain(struct http_loop *lp)
{
	struct http *h = lp->http;

	if (lp->draining)
		return;
	lp->draining = 1;
	evtimer_del(lp->resume_ev);
	for (size_t i = 0; i < h->nfds; i++) {
		if (lp->bound[i]) {
			evhttp_del_accept_socket(lp->evh, lp->bound[i]);
			lp->bound[i] = NULL;
		}
	}
	for (size_t fd = 0; fd < lp->nslots; fd++)
		if (lp->slots[fd].evcon && !lp->slots[fd].busy)
			evhttp_connection_free(lp->slots[fd].evcon); /* -> conn_gone */
	log_debug("loop %u draining: %u in flight, %u busy connections", lp->index,
		  lp->inflight, lp->busy);
	maybe_drained(lp);
}

/* Sets this loop's evhttp limits from the current config (they apply to
 * connections accepted from then on). */
static void apply_limits(struct http_loop *lp)
{
	const struct conf *c = conf_now(lp->http);
	/* The guards keep the deadlines; evhttp's inactivity timeout is only
	 * a backstop (for a connection without a guard): twice the longer
	 * deadline, so that it never fires first. */
	unsigned ms = 2 * (c->limits.request_timeout_ms > c->limits.idle_timeout_ms ?
			   c->limits.request_timeout_ms : c->limits.idle_timeout_ms);
	struct timeval tmo = { .tv_sec = ms / 1000, .tv_usec = (long)(ms % 1000) * 1000 };

	evhttp_set_max_body_size(lp->evh, (ev_ssize_t)c->limits.max_body_bytes);
	evhttp_set_max_headers_size(lp->evh, (ev_ssize_t)c->limits.max_header_bytes);
	evhttp_set_timeout_tv(lp->evh, &tmo);
	guard_set_limits(lp->guards, c->limits.request_timeout_ms,
			 c->limits.idle_timeout_ms);
}

/* The loop's heartbeat: runs only if the loop runs its callbacks. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct http_loop *lp = arg;

	(void)fd;
	(void)what;
	atomic_store_explicit(&lp->beat,
			      atomic_load_explicit(&lp->beat, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

/* Test hook (TICKETD_DEBUG_STALL_LOOP): wedges this loop, as a bug would,
 * until main tells it to exit; nothing else of the loop runs meanwhile. */
static void on_stall(evutil_socket_t fd, short what, void *arg)
{
	struct http_loop *lp = arg;
	struct timespec ts = { 0, 10 * 1000000L };

	(void)fd;
	(void)what;
	log_warn("loop %u: stalling on purpose (TICKETD_DEBUG_STALL_LOOP, a testing aid)",
		 lp->index);
	while (!(atomic_load(&lp->ctl) & CTL_EXIT))
		nanosleep(&ts, NULL);
}

/* The eventfd fired: finish every job that came back, then obey main. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct http_loop *lp = arg;
	struct job *list, *fifo = NULL;
	uint64_t n;
	unsigned ctl;

	(void)what;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_err("loop %u: eventfd read: %s", lp->index, strerror(errno));
	list = atomic_exchange_explicit(&lp->done_head, NULL, memory_order_acquire);
	while (list) { /* the stack is newest first: reverse it */
		struct job *j = list;

		list = j->next;
		j->next = fifo;
		fifo = j;
	}
	while (fifo) {
		struct job *j = fifo;

		fifo = j->next;
		job_finish(lp, j);
	}
	ctl = atomic_exchange(&lp->ctl, 0);
	if (ctl & CTL_CONF)
		apply_limits(lp);
	if (ctl & CTL_DRAIN)
		loop_drain(lp);
	if (ctl & CTL_EXIT)
		event_base_loopbreak(lp->base);
}

static void *loop_main(void *arg)
{
	struct http_loop *lp = arg;
	struct http *h = lp->http;

	cur_loop = lp;
	pthread_mutex_lock(&h->start_lock);
	h->nstarted++;
	pthread_cond_broadcast(&h->start_cond);
	pthread_mutex_unlock(&h->start_lock);
	if (event_base_loop(lp->base, 0) < 0)
		log_err("loop %u: event loop failed", lp->index);
	if (lp->settling) { /* stopped between a payment timer and on_settled */
		lp->settling = 0;
		orders_release(h->env->orders);
	}
	log_info("loop %u: served %llu requests on %llu connections (%llu cut off "
		 "at a deadline)", lp->index,
		 (unsigned long long)atomic_load(&lp->requests), lp->accepted,
		 guard_set_expired(lp->guards));
	cur_loop = NULL;
	return NULL;
}

static int loop_init(struct http *h, struct http_loop *lp, unsigned index,
		     char *err, size_t errlen)
{
	struct event_config *ecfg = event_config_new();
	struct timeval tick = { h->tick_ms / 1000, (long)(h->tick_ms % 1000) * 1000 };
	struct timeval stall = { h->stall_ms / 1000, (long)(h->stall_ms % 1000) * 1000 };

	lp->http = h;
	lp->index = index;
	lp->efd = -1;
	/* Nobody but this loop's thread calls into the base (NOLOCK). The
	 * changelist folds evhttp's per-request read/write toggles into fewer
	 * epoll_ctl calls. Precise timers: the coarse clock would round a 1 ms
	 * payment up to the 4 ms tick. */
	if (ecfg)
		event_config_set_flag(ecfg, EVENT_BASE_FLAG_NOLOCK |
				      LOOP_CHANGELIST | EVENT_BASE_FLAG_PRECISE_TIMER);
	lp->base = ecfg ? event_base_new_with_config(ecfg) : NULL;
	event_config_free(ecfg);
	lp->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	lp->evh = lp->base ? evhttp_new(lp->base) : NULL;
	lp->bound = calloc(h->nfds ? h->nfds : 1, sizeof(*lp->bound));
	if (!lp->base || lp->efd < 0 || !lp->evh || !lp->bound) {
		snprintf(err, errlen, "loop %u: cannot create its event base: %s", index,
			 strerror(errno ? errno : ENOMEM));
		return -ENOMEM;
	}
	lp->wake_ev = event_new(lp->base, lp->efd, EV_READ | EV_PERSIST, on_wake, lp);
	lp->newconn_ev = event_new(lp->base, -1, 0, on_new_conns, lp);
	lp->resume_ev = evtimer_new(lp->base, on_resume, lp);
	lp->flush_ev = event_new(lp->base, -1, 0, on_flush, lp);
	lp->settle_ev = event_new(lp->base, -1, 0, on_settled, lp);
	if (guard_set_create(lp->base, &lp->guards) < 0)
		lp->guards = NULL;
	if (h->tick_ms)
		lp->tick_ev = event_new(lp->base, -1, EV_PERSIST, on_tick, lp);
	if (h->stall_ms && index == 0)
		lp->stall_ev = evtimer_new(lp->base, on_stall, lp);
	if (!lp->wake_ev || !lp->newconn_ev || !lp->resume_ev || !lp->flush_ev ||
	    !lp->settle_ev ||
	    !lp->guards ||
	    event_add(lp->wake_ev, NULL) < 0 ||
	    (h->tick_ms && (!lp->tick_ev || event_add(lp->tick_ev, &tick) < 0)) ||
	    (h->stall_ms && index == 0 && (!lp->stall_ev ||
					   evtimer_add(lp->stall_ev, &stall) < 0))) {
		snprintf(err, errlen, "loop %u: cannot create its events", index);
		return -ENOMEM;
	}
	evhttp_set_allowed_methods(lp->evh, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
				   EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
				   EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
				   EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(lp->evh, "application/json");
	apply_limits(lp);
	evhttp_set_flags(lp->evh, EVHTTP_SERVER_LINGERING_CLOSE);
	evhttp_set_gencb(lp->evh, on_request, lp);
	evhttp_set_bevcb(lp->evh, on_new_bev, lp);
	for (size_t i = 0; i < h->nfds; i++) {
		int fd = h->fds[(index % h->nsets) * h->nfds + i];
		/* No LEV_OPT_CLOSE_ON_FREE: main owns the fd (and may share it). */
		struct evconnlistener *lst = evconnlistener_new(lp->base, NULL, NULL,
								LEV_OPT_CLOSE_ON_EXEC,
								0, fd);

		if (lst)
			lp->bound[i] = evhttp_bind_listener(lp->evh, lst);
		if (!lst || !lp->bound[i]) {
			if (lst)
				evconnlistener_free(lst);
			snprintf(err, errlen, "loop %u: cannot listen on fd %d", index, fd);
			return -ENOMEM;
		}
		evconnlistener_set_error_cb(lst, on_accept_error);
	}
	return 0;
}

int http_create(const struct http_options *o, struct http **out,
		char *err, size_t errlen)
{
	struct http *h = calloc(1, sizeof(*h));
	int rc;

	if (!h) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	atomic_init(&h->conf, o->conf);
	h->inline_work = o->conf->workers == 0;
	h->tick_ms = o->tick_ms;
	h->stall_ms = o->stall_ms;
	h->cat = o->catalog;
	h->pool = o->pool;
	h->env = o->env;
	h->fds = o->fds;
	h->nfds = o->nfds;
	h->nsets = o->nsets ? o->nsets : 1;
	h->on_drained = o->drained;
	h->arg = o->arg;
	pthread_mutex_init(&h->start_lock, NULL);
	pthread_cond_init(&h->start_cond, NULL);
	h->loops = calloc(o->conf->io_threads, sizeof(*h->loops));
	if (!h->loops) {
		snprintf(err, errlen, "out of memory");
		http_destroy(h);
		return -ENOMEM;
	}
	h->nloops = o->conf->io_threads;
	for (unsigned i = 0; i < h->nloops; i++)
		h->loops[i].efd = -1; /* loop_free may see loops never set up */
	for (unsigned i = 0; i < h->nloops; i++) {
		rc = loop_init(h, &h->loops[i], i, err, errlen);
		if (rc < 0) {
			http_destroy(h);
			return rc;
		}
	}
	*out = h;
	return 0;
}

int http_start(struct http *h, char *err, size_t errlen)
{
	for (unsigned i = 0; i < h->nloops; i++) {
		int rc = pthread_create(&h->loops[i].thread, NULL, loop_main, &h->loops[i]);

		if (rc) {
			snprintf(err, errlen, "cannot start loop %u: %s", i, strerror(rc));
			http_stop(h);
			return -rc;
		}
		h->loops[i].started = 1;
	}
	pthread_mutex_lock(&h->start_lock);
	while (h->nstarted < h->nloops)
		pthread_cond_wait(&h->start_cond, &h->start_lock);
	pthread_mutex_unlock(&h->start_lock);
	return 0;
}

/* Posts control bits to a loop and wakes it. */
static void post_ctl(struct http_loop *lp, unsigned bits)
{
	atomic_fetch_or(&lp->ctl, bits);
	wake(lp);
}

void http_drain(struct http *h)
{
	for (unsigned i = 0; i < h->nloops; i++)
		post_ctl(&h->loops[i], CTL_DRAIN);
}

void http_stop(struct http *h)
{
	for (unsigned i = 0; i < h->nloops; i++)
		if (h->loops[i].started)
			post_ctl(&h->loops[i], CTL_EXIT);
	for (unsigned i = 0; i < h->nloops; i++) {
		if (h->loops[i].started) {
			pthread_join(h->loops[i].thread, NULL);
			h->loops[i].started = 0;
		}
	}
}

/* Frees one stopped loop. */
static void loop_free(struct http_loop *lp)
{
	struct job *j;

	/* Jobs that came back after the loop stopped: only a reservation whose
	 * payment never finished still holds tickets. */
	for (j = lp->all_jobs; j; j = j->all_next) {
		if (j->req && j->kind == JOB_PURCHASE && j->state == JOB_PAYING) {
			seller_release(j->ev->seller, j->from, j->in.quantity);
			log_warn("loop %u: released %u %s tickets of %s whose payment "
				 "never finished", lp->index, j->in.quantity,
				 seller_pool_name(j->from), j->ev->id);
		}
	}
	/* evhttp_free frees the listeners, then closes every connection
	 * (conn_gone runs for each): keep conn_gone off the listeners. */
	lp->draining = 1;
	lp->drained = 1;
	for (size_t i = 0; lp->bound && i < lp->http->nfds; i++)
		lp->bound[i] = NULL;
	if (lp->evh)
		evhttp_free(lp->evh);
	while ((j = lp->all_jobs)) {
		lp->all_jobs = j->all_next;
		if (j->timer)
			event_free(j->timer);
		answer_clear(&j->reply);
		free(j);
	}
	/* Connections evhttp_free closed called conn_gone; fresh ones too. */
	for (size_t i = 0; i < lp->nfresh; i++)
		bufferevent_decref(lp->fresh[i]);
	free(lp->fresh);
	free(lp->slots);
	free(lp->bound);
	if (lp->wake_ev)
		event_free(lp->wake_ev);
	if (lp->newconn_ev)
		event_free(lp->newconn_ev);
	if (lp->resume_ev)
		event_free(lp->resume_ev);
	if (lp->flush_ev)
		event_free(lp->flush_ev);
	if (lp->settle_ev)
		event_free(lp->settle_ev);
	guard_set_free(lp->guards); /* evhttp_free closed every guarded connection */
	if (lp->tick_ev)
		event_free(lp->tick_ev);
	if (lp->stall_ev)
		event_free(lp->stall_ev);
	if (lp->base)
		event_base_free(lp->base);
	if (lp->efd >= 0)
		close(lp->efd);
}

void http_destroy(struct http *h)
{
	if (!h)
		return;
	http_stop(h);
	for (unsigned i = 0; h->loops && i < h->nloops; i++)
		loop_free(&h->loops[i]);
	free(h->loops);
	pthread_cond_destroy(&h->start_cond);
	pthread_mutex_destroy(&h->start_lock);
	free(h);
}

unsigned http_connections(struct http *h)
{
	return atomic_load(&h->nconn);
}

void http_set_conf(struct http *h, const struct conf *c)
{
	atomic_store_explicit(&h->conf, c, memory_order_release);
	for (unsigned i = 0; i < h->nloops; i++)
		post_ctl(&h->loops[i], CTL_CONF);
}

unsigned long long http_requests(struct http *h)
{
	unsigned long long n = 0;

	for (unsigned i = 0; i < h->nloops; i++)
		n += atomic_load_explicit(&h->loops[i].requests, memory_order_relaxed);
	return n;
}

unsigned http_loop_count(struct http *h)
{
	return h->nloops;
}

unsigned long long http_heartbeat(struct http *h, unsigned i)
{
	return atomic_load_explicit(&h->loops[i].beat, memory_order_relaxed);
}
