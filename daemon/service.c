/*
 * service.c: the daemon's life as a service, on the main thread only.
 *
 * Status: every STATUS_INTERVAL_S a STATUS= line with live figures (events,
 * tickets sold of the capacity, requests per second from the loops' request
 * counters, open connections).
 *
 * Watchdog: when systemd asked for one (WATCHDOG_USEC), loops and workers
 * beat every service_tick_ms() (an eighth of the interval: http's tick
 * timer, the pool's timed idle wait and its per-batch beat), and a timer
 * here, every half interval, sends WATCHDOG=1 only if every loop's beat and
 * the pool's moved since the last ping. A loop stuck in a callback, or a pool
 * whose every worker is stuck, stops the pings and systemd restarts us.
 *
 * Reload: SIGHUP re-reads the config through the caller's loader (same
 * file, same command-line overrides), compares it with what runs, and
 * either applies it whole or refuses it whole, logging why. Refused: a file
 * that does not load, an event dropped while it has sales, any capacity
 * lowered (below what was sold it could never hold; above it, a running
 * seller cannot shrink). Applied: payment, limits, log_level, workers,
 * events added, dropped (without sales) or grown. Keys a running daemon
 * cannot change (listen, io_threads, queue_depth, state_dir, the seller
 * cores, an event's name, vip tier or code, the ledger's settings,
 * idempotency_ttl_s, admin_token_file, metrics, workers between 0 and not)
 * keep their running value until a restart, with a warning, and the
 * snapshot published says what runs. Inventory lives in the sellers and is
 * never rebuilt by a reload. An event dropped while a purchase for it was
 * queued is looked at again later, and a late sale is logged.
 *
 * Config snapshots: the loops read the one published with http_set_conf
 * and may hold the previous one for a moment, so a replaced snapshot is
 * kept (never freed) until service_destroy; a reload is an operator's act,
 * so they stay few.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "request.h"
#include "sd.h"
#include "service.h"

#define STATUS_INTERVAL_S 2

struct service {
	pthread_t main;                  /* the thread that made it: the only one
					  * that may call in (asserted) */
	struct event_base *base;
	struct conf *conf;               /* in force */
	struct conf **retired;           /* replaced snapshots, freed at destroy */
	size_t nretired;
	struct catalog *cat;
	struct http *http;
	struct pool *pool;
	struct payment *payment;
	service_load_fn load;
	void *load_arg;
	int sockets_passed;
	uint64_t wd_usec;
	struct event *status_ev;
	struct event *wd_ev;
	/* Watchdog: the beats seen at the last ping. */
	unsigned long long *loop_beat;
	unsigned nloops;
	unsigned long long pool_beat;
	struct timespec last_ping;
	int wd_failing;                  /* the last check withheld the ping */
	/* Events a reload dropped, re-checked for late sales by dropped_ev. */
	struct dropped {
		struct catalog_event *ev;
		int64_t sold;            /* sold when it was dropped */
	} *dropped;
	size_t ndropped;
	struct event *dropped_ev;
	/* Status: requests and time at the last STATUS. */
	unsigned long long last_requests;
	struct timespec last_status;
	int stopping;
};

static double seconds_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* Writes v with thousands separators ("11,000") into buf; returns buf. */
static char *grouped(char *buf, size_t len, long long v)
{
	char digits[32];
	int n = snprintf(digits, sizeof(digits), "%lld", v < 0 ? -v : v);
	size_t o = 0;

	if (v < 0 && o + 1 < len)
		buf[o++] = '-';
	for (int i = 0; i < n && o + 1 < len; i++) {
		if (i && (n - i) % 3 == 0 && o + 2 < len)
			buf[o++] = ',';
		buf[o++] = digits[i];
	}
	buf[o] = '\0';
	return buf;
}

/* ---- status -------------------------------------------------------------- */

/* Sends STATUS= with the live figures. */
/* Every entry point runs on the main thread, the owner of s->base. */
static int on_main(const struct service *s)
{
	return pthread_equal(pthread_self(), s->main);
}

static void send_status(struct service *s)
{
	assert(on_main(s));
	long long sold = 0, cap = 0;
	unsigned long long req = http_requests(s->http);
	double dt = seconds_since(&s->last_status);
	char a[32], b[32];
	size_t n;
	struct catalog_event *const *evs = catalog_events(s->cat, &n);

	for (size_t i = 0; i < n; i++) {
		struct seller_snapshot snap;

		seller_snapshot(evs[i]->seller, &snap);
		for (int p = 0; p < SELLER_NPOOLS; p++) {
			sold += snap.sold[p];
			cap += snap.capacity[p];
		}
	}
	sysd_notify_status("%sserving %zu event%s, %s/%s tickets sold, %.0f req/s, "
			   "%u connections", s->stopping ? "stopping: " : "", n,
			   n == 1 ? "" : "s", grouped(a, sizeof(a), sold),
			   grouped(b, sizeof(b), cap),
			   dt > 0.001 ? (double)(req - s->last_requests) / dt : 0.0,
			   http_connections(s->http));
	s->last_requests = req;
	clock_gettime(CLOCK_MONOTONIC, &s->last_status);
}

static void on_status(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	send_status(arg);
}

/* ---- watchdog ------------------------------------------------------------ */

unsigned service_tick_ms(uint64_t watchdog_usec)
{
	uint64_t ms = watchdog_usec / 8000;

	if (!watchdog_usec)
		return 0;
	return ms < 1 ? 1 : ms > 60000 ? 60000 : (unsigned)ms;
}

unsigned service_debug_stall_ms(void)
{
	const char *v = getenv("TICKETD_DEBUG_STALL_LOOP");
	char *end;
	unsigned long ms;

	if (!v || !*v)
		return 0;
	errno = 0;
	ms = strtoul(v, &end, 10);
	if (errno || *end || ms < 1 || ms > 86400000ul) {
		log_warn("TICKETD_DEBUG_STALL_LOOP=%s ignored: not 1..86400000 ms", v);
		return 0;
	}
	log_warn("TICKETD_DEBUG_STALL_LOOP=%lu: loop 0 will stall %lu ms after start "
		 "(a testing aid: the watchdog must catch it)", ms, ms);
	return (unsigned)ms;
}

/* Half the watchdog interval: WATCHDOG=1 if everything moved since the
 * last ping; otherwise no ping, and one log line per stall. */
static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	struct service *s = arg;
	unsigned long long pb = pool_heartbeat(s->pool);
	char stuck[128] = "";
	size_t o = 0;

	assert(on_main(s));

	(void)fd;
	(void)what;
	for (unsigned i = 0; i < s->nloops; i++)
		if (http_heartbeat(s->http, i) == s->loop_beat[i] && o < sizeof(stuck))
			o += (size_t)snprintf(stuck + o, sizeof(stuck) - o, "%sloop %u",
					      o ? ", " : "", i);
	if (pb == s->pool_beat && o < sizeof(stuck))
		snprintf(stuck + o, sizeof(stuck) - o, "%sthe worker pool", o ? ", " : "");
	if (stuck[0]) {
		if (!s->wd_failing)
			log_err("watchdog: no progress in %.1f s from %s: WATCHDOG=1 withheld, "
				"systemd will restart ticketd", seconds_since(&s->last_ping),
				stuck);
		s->wd_failing = 1;
		return;
	}
	if (s->wd_failing)
		log_notice("watchdog: every loop and the pool progress again");
	s->wd_failing = 0;
	for (unsigned i = 0; i < s->nloops; i++)
		s->loop_beat[i] = http_heartbeat(s->http, i);
	s->pool_beat = pb;
	clock_gettime(CLOCK_MONOTONIC, &s->last_ping);
	sysd_notify_watchdog();
}

/* ---- reload -------------------------------------------------------------- */

/* A line of text built piece by piece ("a, b, c"). */
struct line {
	char buf[768];
	size_t n;
};

__attribute__((format(printf, 2, 3)))
static void line_add(struct line *l, const char *fmt, ...)
{
	va_list ap;
	int w;

	if (l->n >= sizeof(l->buf) - 1)
		return;
	if (l->n)
		l->n += (size_t)snprintf(l->buf + l->n, sizeof(l->buf) - l->n, "; ");
	if (l->n >= sizeof(l->buf) - 1)
		return;
	va_start(ap, fmt);
	w = vsnprintf(l->buf + l->n, sizeof(l->buf) - l->n, fmt, ap);
	va_end(ap);
	if (w > 0)
		l->n += (size_t)w;
	if (l->n >= sizeof(l->buf))
		l->n = sizeof(l->buf) - 1;
}

static int listen_equal(const struct conf *a, const struct conf *b)
{
	if (a->nlisten != b->nlisten)
		return 0;
	for (size_t i = 0; i < a->nlisten; i++)
		if (strcmp(a->listen[i].text, b->listen[i].text) != 0)
			return 0;
	return 1;
}

static int str_equal(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Replaces *dst with a copy of src (either may be NULL); 0 or -ENOMEM. */
static int copy_str(char **dst, const char *src)
{
	char *d = src ? strdup(src) : NULL;

	if (src && !d)
		return -ENOMEM;
	free(*dst);
	*dst = d;
	return 0;
}

/* For each top-level key that only a restart changes: if c differs from
 * what runs (old), names it in later and puts the running value into c, so
 * that the snapshot in force always says what really runs. 0 or -ENOMEM. */
static int keep_running(const struct service *s, const struct conf *old,
			struct conf *c, struct line *later)
{
	if (!listen_equal(old, c)) {
		struct conf_listen *l = calloc(old->nlisten, sizeof(*l));

		if (!l)
			return -ENOMEM;
		memcpy(l, old->listen, old->nlisten * sizeof(*l));
		free(c->listen);
		c->listen = l;
		c->nlisten = old->nlisten;
		if (!s->sockets_passed) /* under socket activation listen is moot */
			line_add(later, "listen");
	}
	if (old->io_threads != c->io_threads) {
		line_add(later, "io_threads (%u -> %u)", old->io_threads, c->io_threads);
		c->io_threads = old->io_threads;
	}
	if (old->queue_depth != c->queue_depth) {
		line_add(later, "queue_depth (%u -> %u)", old->queue_depth, c->queue_depth);
		c->queue_depth = old->queue_depth;
	}
	/* workers 0 (the loops reserve) or not is fixed at start; the count
	 * itself changes live. */
	if ((old->workers == 0) != (c->workers == 0)) {
		line_add(later, "workers (%u -> %u: reserving on the %s is fixed at start)",
			 old->workers, c->workers, old->workers ? "workers" : "loops");
		c->workers = old->workers;
	}
	if (!str_equal(old->state_dir, c->state_dir)) {
		line_add(later, "state_dir");
		if (copy_str(&c->state_dir, old->state_dir) < 0)
			return -ENOMEM;
	}
	if (old->core != c->core) {
		line_add(later, "seller (%s -> %s)", old->core->name, c->core->name);
		c->core = old->core;
		if (copy_str(&c->seller, old->seller) < 0)
			return -ENOMEM;
	}
	if (old->ledger.sync != c->ledger.sync) {
		line_add(later, "ledger.sync (%s -> %s)", ledger_sync_name(old->ledger.sync),
			 ledger_sync_name(c->ledger.sync));
		c->ledger.sync = old->ledger.sync;
	}
	if (old->ledger.max_db_bytes != c->ledger.max_db_bytes) {
		line_add(later, "ledger.max_db_bytes");
		c->ledger.max_db_bytes = old->ledger.max_db_bytes;
	}
	if (old->idempotency_ttl_s != c->idempotency_ttl_s) {
		line_add(later, "idempotency_ttl_s");
		c->idempotency_ttl_s = old->idempotency_ttl_s;
	}
	if (!str_equal(old->admin_token_file, c->admin_token_file)) {
		line_add(later, "admin_token_file");
		if (copy_str(&c->admin_token_file, old->admin_token_file) < 0)
			return -ENOMEM;
	}
	if (old->metrics.enabled != c->metrics.enabled) {
		line_add(later, "metrics.enabled");
		c->metrics.enabled = old->metrics.enabled;
	}
	return 0;
}

/* A purchase that found an event just before a reload dropped it may still
 * sell. Some time later (on_dropped_check) each dropped event is looked at
 * again, and a sale is reported: the next start would refuse a config
 * without that event. */
static void watch_dropped(struct service *s, struct catalog_event *const *prev,
			  size_t nprev, const struct conf *old, const struct conf *c)
{
	unsigned ms = 1000 + (old->limits.request_timeout_ms > c->limits.request_timeout_ms ?
			      old->limits.request_timeout_ms : c->limits.request_timeout_ms) +
		      (old->payment.latency_ms > c->payment.latency_ms ?
		       old->payment.latency_ms : c->payment.latency_ms);
	struct timeval tv = { ms / 1000, (long)(ms % 1000) * 1000 };
	int any = 0;

	for (size_t i = 0; i < nprev; i++) {
		struct seller_snapshot snap;
		struct dropped *d;

		if (conf_find_event(c, prev[i]->id))
			continue;
		d = realloc(s->dropped, (s->ndropped + 1) * sizeof(*d));
		if (!d) {
			log_warn("reload: cannot watch dropped event %s: out of memory",
				 prev[i]->id);
			continue;
		}
		s->dropped = d;
		seller_snapshot(prev[i]->seller, &snap);
		d[s->ndropped].ev = prev[i];
		d[s->ndropped].sold = snap.sold[SELLER_GENERAL] + snap.sold[SELLER_VIP];
		s->ndropped++;
		any = 1;
	}
	if (any)
		evtimer_add(s->dropped_ev, &tv);
}

static void on_dropped_check(evutil_socket_t fd, short what, void *arg)
{
	struct service *s = arg;
	size_t n;
	struct catalog_event *const *on_sale = catalog_events(s->cat, &n);

	assert(on_main(s));

	(void)fd;
	(void)what;
	for (size_t i = 0; i < s->ndropped; i++) {
		struct dropped *d = &s->dropped[i];
		struct seller_snapshot snap;
		int back = 0;

		for (size_t k = 0; k < n && !back; k++)
			back = on_sale[k] == d->ev;
		seller_snapshot(d->ev->seller, &snap);
		if (!back && snap.sold[SELLER_GENERAL] + snap.sold[SELLER_VIP] > d->sold)
			log_err("event %s: a purchase in flight when a reload dropped it sold "
				"%lld tickets; it has sales now: add it back to the "
				"configuration, or the next start refuses the file",
				d->ev->id, (long long)(snap.sold[SELLER_GENERAL] +
						       snap.sold[SELLER_VIP] - d->sold));
	}
	free(s->dropped);
	s->dropped = NULL;
	s->ndropped = 0;
}

/* True if the event's display name in the catalog is name. */
static int same_name(const struct catalog_event *e, const char *name)
{
	char esc[2 + 6 * CONF_NAME_MAX + 1];

	return request_json_string(name, strlen(name), esc, sizeof(esc)) > 0 &&
	       strcmp(esc, e->name_json) == 0;
}

/* Compares c's events with what is on sale. Each refusal goes to refused,
 * each restart-only difference to later, each applied change to changes.
 * Returns the number of refusals. */
static int check_events(const struct service *s, const struct conf *c,
			struct line *refused, struct line *later, struct line *changes)
{
	size_t n;
	struct catalog_event *const *on_sale = catalog_events(s->cat, &n);
	int bad = 0, added = 0, grown = 0, dropped = 0;
	char a[32], b[32];

	for (size_t i = 0; i < c->nevents; i++) {
		const struct conf_event *ce = &c->events[i];
		struct catalog_event *e = catalog_find_made(s->cat, ce->id);
		struct seller_snapshot snap;
		int live = 0, grows = 0;

		if (!e) {
			added++;
			continue;
		}
		for (size_t k = 0; k < n && !live; k++)
			live = on_sale[k] == e;
		if (!live)
			added++;  /* dropped by an earlier reload: back, stock intact */
		seller_snapshot(e->seller, &snap);
		for (int p = 0; p < SELLER_NPOOLS; p++) {
			const char *pool = seller_pool_name((enum seller_pool)p);
			int64_t want = ce->capacity[p];

			if (p == SELLER_VIP && !e->has_vip)
				continue; /* a vip tier added: see below */
			if (want > snap.capacity[p])
				grows = 1;
			if (want >= snap.capacity[p])
				continue;
			bad++;
			if (want < snap.sold[p])
				line_add(refused, "events[%zu] (%s): the %s capacity %s is below "
					 "the %s tickets already sold", i, ce->id, pool,
					 grouped(a, sizeof(a), want),
					 grouped(b, sizeof(b), snap.sold[p]));
			else
				line_add(refused, "events[%zu] (%s): the %s capacity cannot go "
					 "down from %lld to %lld while running (%lld sold); "
					 "restart to apply it", i, ce->id, pool,
					 (long long)snap.capacity[p], (long long)want,
					 (long long)snap.sold[p]);
		}
		grown += grows;
		if (ce->has_vip && !e->has_vip)
			line_add(later, "event %s: its new vip tier", ce->id);
		if (e->core != ce->core)
			line_add(later, "event %s: seller core %s -> %s (the inventory lives "
				 "in the core)", ce->id, e->core->name, ce->core->name);
		if (!same_name(e, ce->name))
			line_add(later, "event %s: its name", ce->id);
		if (e->has_vip && ce->has_vip && !str_equal(e->vip_code, ce->vip_code))
			line_add(later, "event %s: its vip_code", ce->id);
	}
	for (size_t k = 0; k < n; k++) {
		struct seller_snapshot snap;

		if (conf_find_event(c, on_sale[k]->id))
			continue;
		seller_snapshot(on_sale[k]->seller, &snap);
		if (snap.sold[SELLER_GENERAL] + snap.sold[SELLER_VIP] > 0) {
			bad++;
			line_add(refused, "event %s is missing, but it has %s tickets sold: "
				 "an event with sales cannot be dropped", on_sale[k]->id,
				 grouped(a, sizeof(a), snap.sold[SELLER_GENERAL] +
					 snap.sold[SELLER_VIP]));
		} else {
			dropped++;
		}
	}
	if (added || dropped || grown)
		line_add(changes, "events: %d added, %d dropped, %d grown", added, dropped,
			 grown);
	return bad;
}

/* Logs what changed in the keys a reload applies. */
static void describe_changes(const struct conf *old, const struct conf *c,
			     struct line *changes)
{
	if (old->payment.latency_ms != c->payment.latency_ms ||
	    old->payment.decline_rate != c->payment.decline_rate ||
	    old->payment.mode != c->payment.mode)
		line_add(changes, "payment: %s %u ms decline %g -> %s %u ms decline %g",
			 conf_payment_mode_name(old->payment.mode), old->payment.latency_ms,
			 old->payment.decline_rate, conf_payment_mode_name(c->payment.mode),
			 c->payment.latency_ms, c->payment.decline_rate);
#define LIMIT(k, fmt, cast) \
	if (old->limits.k != c->limits.k) \
		line_add(changes, "limits." #k ": " fmt " -> " fmt, \
			 (cast)old->limits.k, (cast)c->limits.k)
	LIMIT(max_body_bytes, "%zu", size_t);
	LIMIT(max_header_bytes, "%zu", size_t);
	LIMIT(max_quantity, "%u", unsigned);
	LIMIT(request_timeout_ms, "%u", unsigned);
	LIMIT(idle_timeout_ms, "%u", unsigned);
	LIMIT(max_url_bytes, "%zu", size_t);
	LIMIT(max_connections, "%u", unsigned);
	LIMIT(drain_timeout_ms, "%u", unsigned);
#undef LIMIT
	if (old->workers != c->workers)
		line_add(changes, "workers: %u -> %u", old->workers, c->workers);
	if (old->log_level != c->log_level)
		line_add(changes, "log_level: %s -> %s", log_level_name(old->log_level),
			 log_level_name(c->log_level));
}

/* Keeps c for good and makes it the config in force; 0 or -ENOMEM. */
static int retire_and_install(struct service *s, struct conf *c)
{
	struct conf **r = realloc(s->retired, (s->nretired + 1) * sizeof(*r));

	if (!r)
		return -ENOMEM;
	s->retired = r;
	s->retired[s->nretired++] = s->conf;
	s->conf = c;
	return 0;
}

void service_reload(struct service *s)
{
	struct line refused = { .n = 0 }, later = { .n = 0 }, changes = { .n = 0 };
	const struct conf *old = s->conf;
	struct conf *c = NULL;
	size_t nprev;
	struct catalog_event *const *prev = catalog_events(s->cat, &nprev);

	assert(on_main(s));
	char err[512];
	int rc;

	sysd_notify_reloading();
	log_notice("SIGHUP: reloading %s", old->path);
	if (s->load(s->load_arg, &c, err, sizeof(err)) < 0) {
		log_err("reload refused, still running on the previous configuration: %s",
			err);
		goto done;
	}
	if (check_events(s, c, &refused, &later, &changes) > 0) {
		log_err("reload refused, still running on the previous configuration: %s",
			refused.buf);
		goto drop;
	}
	/* Apply: the events first (the only step that can fail), then the
	 * settings, then publish the snapshot the loops read. */
	if (keep_running(s, old, c, &later) < 0) {
		log_err("reload refused: out of memory");
		goto drop;
	}
	/* keep_running may have kept workers 0 from the running configuration,
	 * while the file's own check (conf.c) saw the file's worker count: a
	 * blocking payment would then sleep on an event loop. */
	if (c->workers == 0 && c->payment.mode == CONF_PAYMENT_BLOCKING) {
		log_err("reload refused, still running on the previous configuration: "
			"payment.mode \"blocking\" needs workers, and this daemon reserves "
			"on its event loops (workers 0) until a restart");
		goto drop;
	}
	if (retire_and_install(s, c) < 0) {
		log_err("reload refused: out of memory");
		goto drop;
	}
	rc = catalog_update(s->cat, c, err, sizeof(err));
	if (rc < 0) {
		s->conf = s->retired[--s->nretired];
		log_err("reload refused, still running on the previous configuration: %s",
			err);
		goto drop;
	}
	describe_changes(old, c, &changes);
	payment_configure(s->payment, c->payment.latency_ms, c->payment.decline_rate,
			  c->payment.mode);
	log_set_level(c->log_level);
	if (c->workers != old->workers && (rc = pool_resize(s->pool, c->workers)) < 0)
		log_err("reload: workers %u -> %u: only %u run: %s", old->workers,
			c->workers, pool_workers(s->pool), strerror(-rc));
	http_set_conf(s->http, c);
	watch_dropped(s, prev, nprev, old, c);
	if (later.n)
		log_warn("reload: these keep their running value until a restart: %s",
			 later.buf);
	log_notice("reloaded %s: %s", c->path, changes.n ? changes.buf : "nothing changed");
	goto done;
drop:
	conf_free(c);
done:
	sysd_notify_ready();
	send_status(s);
}

/* ---- life cycle ----------------------------------------------------------- */

int service_create(const struct service_params *p, struct service **out,
		   char *err, size_t errlen)
{
	struct service *s = calloc(1, sizeof(*s));

	if (!s)
		goto nomem;
	s->main = pthread_self();
	s->base = p->base;
	s->cat = p->cat;
	s->http = p->http;
	s->pool = p->pool;
	s->payment = p->payment;
	s->load = p->load;
	s->load_arg = p->load_arg;
	s->sockets_passed = p->sockets_passed;
	s->wd_usec = p->watchdog_usec;
	s->nloops = http_loop_count(p->http);
	s->loop_beat = calloc(s->nloops, sizeof(*s->loop_beat));
	s->status_ev = event_new(p->base, -1, EV_PERSIST, on_status, s);
	s->dropped_ev = evtimer_new(p->base, on_dropped_check, s);
	if (s->wd_usec)
		s->wd_ev = event_new(p->base, -1, EV_PERSIST, on_watchdog, s);
	if (!s->loop_beat || !s->status_ev || !s->dropped_ev || (s->wd_usec && !s->wd_ev))
		goto nomem;
	clock_gettime(CLOCK_MONOTONIC, &s->last_status);
	s->last_ping = s->last_status;
	s->conf = p->conf;
	*out = s;
	return 0;
nomem:
	snprintf(err, errlen, "cannot set up the service timers: out of memory");
	service_destroy(s);
	return -ENOMEM;
}

void service_ready(struct service *s)
{
	struct timeval st = { STATUS_INTERVAL_S, 0 };

	sysd_notify_ready();
	send_status(s);
	event_add(s->status_ev, &st);
	if (s->wd_ev) {
		struct timeval wt = {
			.tv_sec = (time_t)(s->wd_usec / 2 / 1000000),
			.tv_usec = (suseconds_t)(s->wd_usec / 2 % 1000000),
		};

		for (unsigned i = 0; i < s->nloops; i++)
			s->loop_beat[i] = http_heartbeat(s->http, i);
		s->pool_beat = pool_heartbeat(s->pool);
		/* The first ping now: READY and every loop running is progress. */
		sysd_notify_watchdog();
		clock_gettime(CLOCK_MONOTONIC, &s->last_ping);
		event_add(s->wd_ev, &wt);
		log_info("watchdog: WATCHDOG=1 every %llu ms while every loop and the pool "
			 "progress (beats every %u ms)",
			 (unsigned long long)(s->wd_usec / 2000), service_tick_ms(s->wd_usec));
	}
}

void service_stopping(struct service *s)
{
	assert(on_main(s));
	s->stopping = 1;
	sysd_notify_stopping();
	send_status(s);
}

const struct conf *service_conf(const struct service *s)
{
	return s->conf;
}

void service_destroy(struct service *s)
{
	if (!s)
		return;
	if (s->status_ev)
		event_free(s->status_ev);
	if (s->wd_ev)
		event_free(s->wd_ev);
	if (s->dropped_ev)
		event_free(s->dropped_ev);
	free(s->dropped);
	for (size_t i = 0; i < s->nretired; i++)
		conf_free(s->retired[i]);
	/* s->conf stays the caller's when create failed (it never got here). */
	if (s->conf)
		conf_free(s->conf);
	free(s->retired);
	free(s->loop_beat);
	free(s);
}
