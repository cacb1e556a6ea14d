/*
 * bench_ledger.c: what group commit buys. For sync "full" and "off" and a
 * few numbers of requests in flight, submitter threads keep their window of
 * one-ticket orders in the ledger's queue for a fixed time (a closed loop,
 * like the daemon's workers under wrk). Prints orders/s, batch sizes and
 * commit latencies from ledger_stats(), and the submit-to-done latency.
 * Never passes or fails on speed; `make bench` runs it.
 *
 * Options: --seconds S (per cell, default 2), --dir DIR (where the ledgers
 * go; default a temp dir on $TMPDIR: use the disk the daemon will use).
 * Other options (BENCH_ARGS is shared by every benchmark) are ignored.
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../lib/test_ledger_util.h"
#include "ledger.h"
#include "log.h"

#define SUBMITTERS 4
#define MAX_WINDOW 64

struct breq {
	struct ledger_req req;
	struct bthread *t;
	char id[40];
	int64_t t0;                 /* submit time, ns */
};

struct bthread {
	struct ledger *l;
	int index;
	unsigned window;
	pthread_mutex_t lock;       /* guards ready[], nready, errors, lat_ns, done */
	pthread_cond_t cond;
	struct breq *ready[MAX_WINDOW];
	unsigned nready;
	uint64_t done, errors, lat_ns;
	struct breq reqs[MAX_WINDOW];
};

static _Atomic int stop;

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void breq_done(struct ledger_req *r, int result)
{
	struct breq *b = (struct breq *)r;
	struct bthread *t = b->t;
	int64_t lat = now_ns() - b->t0;

	pthread_mutex_lock(&t->lock);
	t->ready[t->nready++] = b;
	t->done++;
	t->errors += result != 0;
	t->lat_ns += (uint64_t)lat;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

static void submit(struct bthread *t, struct breq *b, unsigned long n)
{
	memset(&b->req, 0, sizeof(b->req));
	snprintf(b->id, sizeof(b->id), "b%d-%lu", t->index, n);
	b->t = t;
	b->req.op = LEDGER_OP_ORDER;
	b->req.done = breq_done;
	b->req.order = (struct ledger_order_in){
		.id = b->id, .event = "bench", .tier = SELLER_GENERAL,
		.pool = SELLER_GENERAL, .quantity = 1, .buyer = "wrk",
	};
	b->t0 = now_ns();
	if (ledger_submit(t->l, &b->req) < 0)
		abort();
}

static void *bthread_main(void *arg)
{
	struct bthread *t = arg;
	unsigned long n = 0;
	unsigned inflight = t->window;

	for (unsigned i = 0; i < t->window; i++)
		submit(t, &t->reqs[i], n++);
	while (inflight > 0) {
		struct breq *b;

		pthread_mutex_lock(&t->lock);
		while (t->nready == 0)
			pthread_cond_wait(&t->cond, &t->lock);
		b = t->ready[--t->nready];
		pthread_mutex_unlock(&t->lock);
		if (atomic_load(&stop))
			inflight--;
		else
			submit(t, b, n++);
	}
	return NULL;
}

/* The upper bound of the bucket holding quantile q of hist; 0 if empty. */
static uint64_t quantile(const uint64_t *hist, double q)
{
	uint64_t total = 0, seen = 0;

	for (int i = 0; i < LEDGER_HIST_BUCKETS; i++)
		total += hist[i];
	for (int i = 0; i < LEDGER_HIST_BUCKETS; i++) {
		seen += hist[i];
		if (total && (double)seen >= q * (double)total)
			return ledger_hist_bound((unsigned)i);
	}
	return 0;
}

static void cell(const char *base, enum ledger_sync sync, unsigned inflight, double secs)
{
	static struct bthread th[SUBMITTERS];
	unsigned nth = inflight < SUBMITTERS ? inflight : SUBMITTERS;
	struct ledger_options o = { .sync = sync };
	pthread_t pt[SUBMITTERS];
	struct ledger_stats st;
	uint64_t done = 0, errors = 0, lat = 0;
	char dir[512], err[512];
	struct ledger *l;
	int64_t t0, t1;

	snprintf(dir, sizeof(dir), "%s/%s-%u", base, ledger_sync_name(sync), inflight);
	o.state_dir = dir;
	if (ledger_open(&o, &l, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_ledger: %s\n", err);
		exit(1);
	}
	atomic_store(&stop, 0);
	t0 = now_ns();
	for (unsigned i = 0; i < nth; i++) {
		memset(&th[i], 0, sizeof(th[i]));
		th[i].l = l;
		th[i].index = (int)i;
		th[i].window = inflight / nth + (i < inflight % nth);
		pthread_mutex_init(&th[i].lock, NULL);
		pthread_cond_init(&th[i].cond, NULL);
		pthread_create(&pt[i], NULL, bthread_main, &th[i]);
	}
	usleep((useconds_t)(secs * 1e6));
	atomic_store(&stop, 1);
	for (unsigned i = 0; i < nth; i++) {
		pthread_join(pt[i], NULL);
		done += th[i].done;
		errors += th[i].errors;
		lat += th[i].lat_ns;
		pthread_mutex_destroy(&th[i].lock);
		pthread_cond_destroy(&th[i].cond);
	}
	t1 = now_ns();
	ledger_stats(l, &st);
	ledger_close(l);
	printf("%-5s %8u %10.0f %8.1f %6" PRIu64 " %8" PRIu64 " %9.0f %9" PRIu64 " %9" PRIu64
	       " %9.0f %7" PRIu64 "\n", ledger_sync_name(sync), inflight,
	       (double)done / ((double)(t1 - t0) / 1e9),
	       st.batches ? (double)st.requests / (double)st.batches : 0.0,
	       quantile(st.batch_hist, 0.5), st.max_batch,
	       st.batches ? (double)st.commit_ns_total / (double)st.batches / 1e3 : 0.0,
	       quantile(st.commit_us_hist, 0.5), quantile(st.commit_us_hist, 0.99),
	       done ? (double)lat / (double)done / 1e3 : 0.0, errors);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static const unsigned levels[] = { 1, 8, 64 };
	const char *dir = NULL;
	double secs = 2.0;
	char *base;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			secs = atof(argv[++i]);
		else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			dir = argv[++i];
		else
			fprintf(stderr, "bench_ledger: ignoring %s\n", argv[i]);
	}
	if (secs <= 0)
		secs = 2.0;
	log_set_level(LOGL_ERR);
	if (dir) {
		if (asprintf(&base, "%s/bench_ledger.XXXXXX", dir) < 0 || !mkdtemp(base)) {
			perror("bench_ledger: mkdtemp");
			return 1;
		}
	} else {
		base = tmpdir_make();
	}
	printf("ledger group commit: one-ticket orders, %g s per row, state in %s\n", secs, base);
	printf("%-5s %8s %10s %8s %6s %8s %9s %9s %9s %9s %7s\n", "sync", "inflight",
	       "orders/s", "batch", "b.p50", "b.max", "commit us", "c.p50<", "c.p99<",
	       "done us", "errors");
	for (int s = 0; s < 2; s++)
		for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
			cell(base, s ? LEDGER_SYNC_OFF : LEDGER_SYNC_FULL, levels[i], secs);
	printf("batch = mean requests per transaction; commit = BEGIN..COMMIT (incl. fsync"
	       " for full);\nc.p50< / c.p99< = histogram bucket bounds (us); done = submit"
	       " to done() mean\n");
	tmpdir_remove(base);
	return 0;
}
