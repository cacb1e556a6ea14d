/*
 * main.c: ticketd's command line, start-up and shutdown. The main thread
 * reads the config and the admin token, checks the state dir can be made,
 * binds (or takes from systemd) the listening sockets, and only then opens
 * the state dir (so a refused start leaves nothing on disk); it builds the
 * events, the payment provider, the worker pool and the event loops, and
 * then only waits for signals on its own
 * event_base. SIGTERM and SIGINT start a drain: the loops stop accepting and
 * finish what is in flight; when every loop reports drained (or the drain
 * timeout passes) everything is stopped and freed in reverse order and the
 * process exits 0. The loops reach the main thread only through event_active
 * on its base (made thread-safe by evthread_use_pthreads).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "admin.h"
#include "catalog.h"
#include "conf.h"
#include "handoff.h"
#include "http.h"
#include "idem.h"
#include "listen.h"
#include "log.h"
#include "metrics.h"
#include "orders.h"
#include "payment.h"
#include "pool.h"
#include "sd.h"
#include "service.h"
#include "work.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif

#define DEFAULT_CONFIG SYSCONFDIR "/ticketd/ticketd.conf"

/* Exit statuses. */
#define EXIT_USAGE 2

struct options {
	const char *config;
	const char *listen;
	const char *state_dir;
	const char *seller;
	unsigned conf_flags;
	int check;
	int list_sellers;
	int audit;
};

/* The running daemon, as the main thread's callbacks see it. */
struct daemon {
	struct service *svc;         /* owns the config in force (service_conf) */
	struct catalog *cat;
	struct http *http;
	struct pool *pool;
	struct event_base *base;
	struct event *drained_ev;
	struct event *drain_timer;
	int stopping;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: ticketd [OPTION]...\n"
		"Sell tickets over HTTP, every ticket exactly once.\n"
		"\n"
		"  -c, --config FILE         configuration file (default %s)\n"
		"  -l, --listen ADDR:PORT    listen here instead of the config's \"listen\";\n"
		"                            ADDR is numeric IPv4 or [IPv6], PORT may be 0\n"
		"  -s, --state-dir DIR       keep state in DIR instead of the config's \"state_dir\"\n"
		"      --seller NAME         use seller core NAME for every event\n"
		"      --allow-unsafe-seller accept a core marked unsafe (demonstrations only)\n"
		"      --list-sellers        print the safe seller cores and exit\n"
		"  -t, --check-config        check the configuration, print a summary, exit\n"
		"                            0 if it is valid and 1 if not\n"
		"      --audit               check the order ledger in the state dir against\n"
		"                            the configuration (offline; safe while ticketd\n"
		"                            runs), print the figures, exit 0 if all holds\n"
		"  -V, --version             print the version and exit\n"
		"  -h, --help                print this help and exit\n"
		"\n"
		"Signals: SIGTERM or SIGINT stop accepting, finish the requests in flight\n"
		"(at most limits.drain_timeout_ms) and exit 0; a second one exits at once.\n"
		"SIGHUP reloads the configuration, or refuses it and keeps the old one\n"
		"(what a reload may change: ticketd(8)).\n"
		"Exit status: 0 success, 1 configuration or start-up error, 2 usage error.\n"
		"Routes, signals and files: man 8 ticketd. Configuration keys: man 5\n"
		"ticketd.conf. make install puts a sample configuration in %s/ticketd\n"
		"(as ticketd.conf, or ticketd.conf.sample beside an existing one).\n",
		DEFAULT_CONFIG, SYSCONFDIR);
}

/* Parses argv into o; returns -1 to exit 0 (help, version), 0 to go on, or
 * EXIT_USAGE. */
static int parse_args(int argc, char **argv, struct options *o)
{
	enum { OPT_SELLER = 256, OPT_UNSAFE, OPT_LIST, OPT_AUDIT };
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "seller", required_argument, NULL, OPT_SELLER },
		{ "allow-unsafe-seller", no_argument, NULL, OPT_UNSAFE },
		{ "list-sellers", no_argument, NULL, OPT_LIST },
		{ "check-config", no_argument, NULL, 't' },
		{ "audit", no_argument, NULL, OPT_AUDIT },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->config = DEFAULT_CONFIG;
	while ((c = getopt_long(argc, argv, "c:l:s:tVh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': o->config = optarg; break;
		case 'l': o->listen = optarg; break;
		case 's': o->state_dir = optarg; break;
		case OPT_SELLER: o->seller = optarg; break;
		case OPT_UNSAFE: o->conf_flags |= CONF_ALLOW_UNSAFE; break;
		case OPT_LIST: o->list_sellers = 1; break;
		case 't': o->check = 1; break;
		case OPT_AUDIT: o->audit = 1; break;
		case 'V':
			printf("ticketd %s\n", PACKAGE_VERSION);
			return -1;
		case 'h':
			usage(stdout);
			return -1;
		default:
			fprintf(stderr, "Try 'ticketd --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ticketd: unexpected argument '%s'\nTry 'ticketd --help'.\n",
			argv[optind]);
		return EXIT_USAGE;
	}
	return 0;
}

static void list_sellers(unsigned flags)
{
	for (size_t i = 0; i < seller_core_count(); i++) {
		const struct seller_core *c = seller_core_at(i);

		if (!(c->flags & SELLER_CORE_UNSAFE))
			printf("%s\t%s\n", c->name, c->summary);
		else if (flags & CONF_ALLOW_UNSAFE)
			printf("%s\t(unsafe) %s\n", c->name, c->summary);
	}
}

/* Loads the config and applies the command line on top (at start-up, and
 * again for each SIGHUP reload). Returns 0, or -EINVAL with err. */
static int load(const struct options *o, struct conf **out, char *err, size_t errlen)
{
	char why[384];
	struct conf *c;

	if (conf_load(o->config, o->conf_flags, &c, err, errlen) < 0)
		return -EINVAL;
	if (o->listen && conf_set_listen(c, o->listen) < 0) {
		snprintf(err, errlen, "--listen %s: not a numeric \"addr:port\" or "
			 "\"[v6addr]:port\"", o->listen);
		goto fail;
	}
	if (o->state_dir && conf_set_state_dir(c, o->state_dir, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "-s/--state-dir: %s", why);
		goto fail;
	}
	if (o->seller && conf_set_seller(c, o->seller, o->conf_flags, why,
					 sizeof(why)) < 0) {
		snprintf(err, errlen, "--seller: %s", why);
		goto fail;
	}
	*out = c;
	return 0;
fail:
	conf_free(c);
	return -EINVAL;
}

/* The service's loader for SIGHUP: the same file and overrides. */
static int reload_load(void *arg, struct conf **out, char *err, size_t errlen)
{
	return load(arg, out, err, errlen);
}

/* Every loop drained (runs on the main thread, activated from a loop). */
static void on_drained(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	log_info("every request in flight is answered");
	event_base_loopbreak(d->base);
}

/* The loops' drained callback: any thread. */
static void drained_cb(void *arg)
{
	struct daemon *d = arg;

	event_active(d->drained_ev, EV_READ, 0);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	log_warn("drain timeout (%u ms): exiting with %u connections still open",
		 service_conf(d->svc)->limits.drain_timeout_ms, http_connections(d->http));
	event_base_loopbreak(d->base);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	unsigned drain_ms = service_conf(d->svc)->limits.drain_timeout_ms;
	struct timeval tv = {
		.tv_sec = drain_ms / 1000,
		.tv_usec = (long)(drain_ms % 1000) * 1000,
	};

	(void)what;
	if (sig == SIGHUP) {
		if (d->stopping)
			log_notice("SIGHUP while shutting down: ignored");
		else
			service_reload(d->svc);
		return;
	}
	if (d->stopping) {
		log_warn("%s again: exiting without waiting", strsignal((int)sig));
		event_base_loopbreak(d->base);
		return;
	}
	d->stopping = 1;
	log_notice("%s: shutting down, draining for at most %u ms", strsignal((int)sig),
		   drain_ms);
	service_stopping(d->svc);
	http_drain(d->http);
	evtimer_add(d->drain_timer, &tv);
}

/* The ledger's counters for a scrape (metrics_ledger_fn). */
static void ledger_figures(void *arg, struct ledger_stats *out)
{
	ledger_stats(arg, out);
}

/* Logs the final figures of every event. */
static void log_figures(struct catalog *cat)
{
	for (size_t i = 0; i < catalog_count(cat); i++) {
		struct catalog_event *ev = catalog_at(cat, i);
		struct seller_snapshot s;

		seller_snapshot(ev->seller, &s);
		if (ev->has_vip)
			log_notice("event %s: general %lld of %lld sold, vip %lld of %lld sold",
				   ev->id, (long long)s.sold[SELLER_GENERAL],
				   (long long)s.capacity[SELLER_GENERAL],
				   (long long)s.sold[SELLER_VIP],
				   (long long)s.capacity[SELLER_VIP]);
		else
			log_notice("event %s: general %lld of %lld sold", ev->id,
				   (long long)s.sold[SELLER_GENERAL],
				   (long long)s.capacity[SELLER_GENERAL]);
	}
}

/* A worker's batch (arg: the ledger): the replies it finishes and the
 * orders it confirms are handed on at its end, each in one go. */
static void work_batch_begin(void *arg)
{
	handoff_batch_begin(NULL);
	ledger_hold(arg);
}

static void work_batch_end(void *arg)
{
	ledger_release(arg);
	handoff_batch_end(NULL);
}

/* Around each ledger batch's completions (ledger thread): the replies are
 * held, then each loop gets its share with one push and one wakeup. */
static void ledger_batch_begin(void *arg)
{
	(void)arg;
	handoff_hold();
}

static void ledger_batch_end(void *arg)
{
	(void)arg;
	handoff_release();
}

/* Workers hold the jobs they finish for the length of a batch. */
static const struct pool_ops pool_ops = {
	.batch_begin = work_batch_begin,
	.run = work_run,
	.batch_end = work_batch_end,
	.cancel = work_cancel,
};

/* With "workers": 0, the ledger reads pool's jobs. */
static const struct pool_ops read_ops = {
	.batch_begin = work_batch_begin,
	.run = work_read,
	.batch_end = work_batch_end,
	.cancel = work_cancel,
};

/* SIGTERM, SIGINT and SIGHUP go to the main thread only: every thread
 * started from here on inherits them blocked (unblocked before the main
 * loop runs; one arriving meanwhile waits, pending). Fills *mainsigs. */
static void block_main_signals(sigset_t *mainsigs)
{
	sigemptyset(mainsigs);
	sigaddset(mainsigs, SIGTERM);
	sigaddset(mainsigs, SIGINT);
	sigaddset(mainsigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, mainsigs, NULL);
}

/* The main loop's own events on d->base: the drained notice, the drain
 * timer and the three signals (into sigs); 0, or -1 logged. What was made
 * is left for main_events_free. */
static int main_events_add(struct daemon *d, struct event *sigs[3])
{
	const int signums[3] = { SIGTERM, SIGINT, SIGHUP };

	d->drained_ev = event_new(d->base, -1, 0, on_drained, d);
	d->drain_timer = evtimer_new(d->base, on_drain_timeout, d);
	for (int i = 0; i < 3; i++)
		sigs[i] = evsignal_new(d->base, signums[i], on_signal, d);
	if (!d->drained_ev || !d->drain_timer || !sigs[0] || !sigs[1] ||
	    !sigs[2] || evsignal_add(sigs[0], NULL) < 0 || evsignal_add(sigs[1], NULL) < 0 ||
	    evsignal_add(sigs[2], NULL) < 0) {
		log_err("cannot set up the main event loop");
		return -1;
	}
	return 0;
}

/* Frees what main_events_add made (any of it may be NULL). */
static void main_events_free(struct daemon *d, struct event *sigs[3])
{
	for (int i = 0; i < 3; i++)
		if (sigs[i])
			event_free(sigs[i]);
	if (d->drained_ev)
		event_free(d->drained_ev);
	if (d->drain_timer)
		event_free(d->drain_timer);
}

/* The event loops on the nfds * nsets sockets fds, started; 0, or -1
 * logged (d->http may then be set, for the cleanup). */
static int start_http(struct daemon *d, struct conf *c, struct job_env *env,
		      int *fds, int nfds, size_t nsets, unsigned tick_ms,
		      unsigned stall_ms)
{
	struct http_options ho = {
		.conf = c, .catalog = d->cat, .pool = d->pool, .env = env,
		.fds = fds, .nfds = (size_t)nfds, .nsets = nsets,
		.drained = drained_cb, .arg = d,
		.tick_ms = tick_ms, .stall_ms = stall_ms,
	};
	char err[512];

	if (http_create(&ho, &d->http, err, sizeof(err)) < 0 ||
	    http_start(d->http, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return -1;
	}
	return 0;
}

/* The service (reloads, systemd, the watchdog) over what run built; it
 * takes c over on success. 0, or -1 logged. */
static int start_service(struct daemon *d, struct conf *c, const struct options *o,
			 struct payment *payment, uint64_t wd_usec, int owned)
{
	struct service_params sp = {
		.base = d->base, .conf = c, .cat = d->cat, .http = d->http,
		.pool = d->pool, .payment = payment, .load = reload_load,
		.load_arg = (void *)o, .watchdog_usec = wd_usec,
		.sockets_passed = !owned,
	};
	char err[512];

	if (service_create(&sp, &d->svc, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return -1;
	}
	return 0;
}

/* The one line that says the daemon is up, and with what. */
static void log_ready(struct catalog *cat, const struct conf *c, struct orders *orders)
{
	log_notice("ticketd %s ready: %zu events, %u io threads, %u workers, seller %s, "
		   "payment %s %u ms, state_dir %s (epoch %llu)", PACKAGE_VERSION,
		   catalog_count(cat), c->io_threads, c->workers, c->core->name,
		   conf_payment_mode_name(c->payment.mode), c->payment.latency_ms,
		   c->state_dir, (unsigned long long)ledger_epoch(orders_ledger(orders)));
}

/* The first half of run's cleanup, in reverse order: loops stop, the pool
 * finishes what it is running and cancels what it has not begun (its
 * clients' connections are closing: a queued purchase must not sell now),
 * the order store answers the last commits, then the loops drop what is
 * left; the figures are logged after a clean run (rc 0) and the pools
 * freed. Any of it may be NULL. */
static void stop_serving(struct daemon *d, struct pool *reads,
			 struct orders *orders, int rc)
{
	if (d->http)
		http_stop(d->http);
	{
		unsigned cancelled = (d->pool ? pool_stop(d->pool) : 0) +
				     (reads ? pool_stop(reads) : 0);

		if (cancelled)
			log_notice("shutdown: %u queued request(s) not yet begun were "
				   "cancelled (nothing reserved or sold for them)", cancelled);
	}
	metrics_set_ledger(NULL, NULL);
	orders_close(orders);
	http_destroy(d->http);
	/* After the loops released what never finished paying, and the last
	 * commits were answered (a failed one gave its tickets back). */
	if (d->cat && rc == 0)
		log_figures(d->cat);
	pool_destroy(d->pool);
	pool_destroy(reads);
}

/* Closes the listening sockets if they are ours (not systemd's), frees
 * the array and gives up the ports' claims. */
static void close_sockets(int *fds, int nfds, size_t nsets, int owned)
{
	for (size_t i = 0; owned && nfds > 0 && i < (size_t)nfds * nsets; i++)
		close(fds[i]);
	free(fds);
	listen_release_ports();
}

/* Runs the daemon until a signal stops it; returns the exit status. The
 * service takes *cp over once it exists (then *cp is NULL). */
static int run(struct conf **cp, const struct options *o)
{
	struct conf *c = *cp;
	struct daemon d = { .svc = NULL };
	struct orders *orders = NULL;
	struct payment *payment = NULL;
	struct idem *idem = NULL;
	struct admin *admin = NULL;
	struct pool *reads = NULL;            /* "workers": 0 only */
	struct job_env env;
	struct event *sigs[3] = { NULL, NULL, NULL };
	sigset_t mainsigs;
	/* Read once: the beat period of loops and workers follows from it. */
	uint64_t wd_usec = sysd_watchdog_usec();
	unsigned tick_ms = service_tick_ms(wd_usec);
	unsigned stall_ms = service_debug_stall_ms();
	int *fds = NULL, nfds = 0, owned = 0, rc = 1;
	size_t nsets = 1;
	char err[512];

	signal(SIGPIPE, SIG_IGN);
	block_main_signals(&mainsigs);
	if (evthread_use_pthreads() < 0) {
		log_err("libevent: no pthreads support");
		return 1;
	}
	if (metrics_init(c->metrics.enabled) < 0) { /* before any thread counts */
		log_err("cannot set up the metrics");
		return 1;
	}
	/* Every check that can refuse the start comes before anything is
	 * made on disk (the admin token, the state dir's parents, the port):
	 * a refused start leaves no state dir and no ledger behind. */
	if (admin_open(c, &admin, err, sizeof(err)) < 0 ||
	    orders_check_dir(c->state_dir, err, sizeof(err)) < 0) {
		log_err("%s", err);
		goto out;
	}
	nfds = listen_open(c, &fds, &nsets, &owned);
	if (nfds < 0)
		goto out;
	{
		/* The ledger: what was sold comes back before any connection. */
		struct orders_options oo = {
			.state_dir = c->state_dir, .conf = c, .sync = c->ledger.sync,
			.idempotency_ttl_s = c->idempotency_ttl_s,
			.max_db_bytes = c->ledger.max_db_bytes,
			.readers = c->workers < 4 ? 4 : c->workers > 64 ? 64 : c->workers,
			.batch_begin = ledger_batch_begin, .batch_end = ledger_batch_end,
		};

		if (orders_open(&oo, &orders, err, sizeof(err)) < 0) {
			log_err("%s", err);
			goto out;
		}
		metrics_set_ledger(ledger_figures, orders_ledger(orders));
	}
	if (catalog_create(c, orders_sold, orders, &d.cat, err, sizeof(err)) < 0) {
		log_err("%s", err);
		goto out;
	}
	if (idem_create(&idem) < 0) {
		log_err("out of memory");
		goto out;
	}
	if (payment_create(c->payment.latency_ms, c->payment.decline_rate,
			   c->payment.mode, &payment) < 0 ||
	    pool_create(c->workers, c->queue_depth, &pool_ops, orders_ledger(orders),
			&d.pool) < 0) {
		log_err("cannot start the worker pool");
		goto out;
	}
	pool_set_tick(d.pool, tick_ms);
	env.orders = orders;
	env.ledger = orders_ledger(orders);
	env.payment = payment;
	env.idem = idem;
	env.admin = admin;
	env.catalog = d.cat;
	env.reads = NULL;
	if (c->workers == 0) {
		/* The loops reserve themselves; ledger reads get two threads. */
		if (pool_create(2, c->queue_depth, &read_ops, orders_ledger(orders),
				&reads) < 0) {
			log_err("cannot start the ledger reads pool");
			goto out;
		}
		env.reads = reads;
	}
	d.base = event_base_new();
	if (!d.base || main_events_add(&d, sigs) < 0)
		goto out;
	if (listen_start(fds, nfds, nsets, owned) < 0 ||
	    start_http(&d, c, &env, fds, nfds, nsets, tick_ms, stall_ms) < 0 ||
	    start_service(&d, c, o, payment, wd_usec, owned) < 0)
		goto out;
	*cp = NULL; /* the service's now */
	log_ready(d.cat, c, orders);
	pthread_sigmask(SIG_UNBLOCK, &mainsigs, NULL);
	service_ready(d.svc);
	event_base_dispatch(d.base);
	rc = 0;
out:
	stop_serving(&d, reads, orders, rc);
	idem_destroy(idem);
	admin_close(admin);
	catalog_destroy(d.cat);
	payment_destroy(payment);
	close_sockets(fds, nfds, nsets, owned);
	main_events_free(&d, sigs);
	service_destroy(d.svc); /* last: other threads read its configs until here */
	metrics_shutdown();
	if (d.base)
		event_base_free(d.base);
	if (rc == 0)
		log_notice("stopped");
	return rc;
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	struct conf *c = NULL;
	char err[4096];
	int rc;

	log_init();
	rc = parse_args(argc, argv, &o);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (o.list_sellers) {
		list_sellers(o.conf_flags);
		return 0;
	}
	if (load(&o, &c, err, sizeof(err)) < 0) {
		/* One line per error: the config reports all it finds. */
		for (char *line = err, *nl; line; line = nl) {
			if ((nl = strchr(line, '\n')))
				*nl++ = '\0';
			fprintf(stderr, "ticketd: %s\n", line);
		}
		return 1;
	}
	if (o.check) {
		conf_summary(c, stdout);
		conf_free(c);
		return 0;
	}
	if (o.audit) {
		rc = orders_audit(c, stdout, stderr);
		conf_free(c);
		return rc;
	}
	log_set_level(c->log_level);
	rc = run(&c, &o);
	conf_free(c);
	libevent_global_shutdown();
	return rc;
}
