/*
 * bench_cores.c: the in-process benchmark of every seller core, printed as
 * the Go ticket-seller article's "Performance-Correctness Matrix". It never
 * passes or fails on speed; `make bench` runs it. Scenarios:
 *   nosellout  capacity 2^61, every thread reserves 1 ticket in a loop for a
 *              fixed time (like Go's NoSleep/CapHuge): synchronisation cost;
 *   flash      the Go ticket-seller article's flash sale: 10,000 tickets,
 *              100,000 buyers; the buyers are taken one by one from a shared
 *              atomic counter by a fixed number of threads; reports the time to serve them all;
 *   flash+pay  the same, with a 1 ms payment (nanosleep) after each successful
 *              reserve, outside any critical section. A payment ties up its
 *              thread, so this scenario runs with many threads (--pay-threads),
 *              standing for many buyers in flight at once.
 * ns/op is wall time / total calls (Go's RunParallel definition); sold comes
 * from the core's snapshot; oversold = tickets the buyers were handed beyond
 * what the core recorded as sold (or beyond the stock): 0 for every safe core.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "seller.h"

#define FLASH_TICKETS 10000
#define FLASH_BUYERS 100000
#define MAX_LIST 16

struct opts {
	double seconds;                 /* per nosellout cell, and flash budget per cell */
	unsigned repeat;                /* nosellout: runs per cell, median reported */
	unsigned threads[MAX_LIST], nthreads;
	unsigned pay_threads[MAX_LIST], npay_threads;
	const struct seller_core *cores[MAX_LIST];
	unsigned ncores;
	int scenarios;                  /* bit 0 nosellout, 1 flash, 2 flash+pay */
};

struct cell {
	struct seller *s;
	pthread_barrier_t go;
	atomic_int stop;                /* nosellout: set when time is up */
	atomic_long next_buyer;         /* flash: buyers taken so far */
	int pay;                        /* flash: 1 ms payment after a sale */
};

struct worker {
	pthread_t tid;
	struct cell *c;
	long calls, granted;
	double t_start, t_end; /* this worker's own clock readings around its loop */
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *nosellout_main(void *arg)
{
	struct worker *w = arg;
	struct seller *s = w->c->s;
	long calls = 0, granted = 0;

	pthread_barrier_wait(&w->c->go);
	w->t_start = now();
	while (!atomic_load_explicit(&w->c->stop, memory_order_relaxed)) {
		for (int i = 0; i < 64; i++)
			granted += seller_reserve(s, SELLER_GENERAL, 1, NULL) == SELLER_OK;
		calls += 64;
	}
	w->t_end = now();
	w->calls = calls;
	w->granted = granted;
	return NULL;
}

static void *flash_main(void *arg)
{
	struct worker *w = arg;
	struct cell *c = w->c;
	const struct timespec pay = { 0, 1000000 };

	pthread_barrier_wait(&c->go);
	w->t_start = now();
	while (atomic_fetch_add_explicit(&c->next_buyer, 1, memory_order_relaxed) < FLASH_BUYERS) {
		w->calls++;
		if (seller_reserve(c->s, SELLER_GENERAL, 1, NULL) == SELLER_OK) {
			w->granted++;
			if (c->pay)
				nanosleep(&pay, NULL);
		}
	}
	w->t_end = now();
	return NULL;
}

struct result {
	double wall;      /* seconds, first worker start to last worker end */
	long calls, granted;
	int64_t sold;
};

/* Runs one cell: nthreads workers on a fresh seller; 0 or -errno. */
static int run_cell(const struct seller_core *core, int flash, int pay, unsigned nthreads,
		    double seconds, struct result *res)
{
	struct seller_params p = { .max_quantity = 1 };
	struct cell c = { 0 };
	struct worker *w = calloc(nthreads, sizeof(*w));
	struct seller_snapshot snap;
	unsigned started = 0;
	double first = 0, last = 0;
	int rc;

	if (!w)
		return -ENOMEM;
	p.capacity[SELLER_GENERAL] = flash ? FLASH_TICKETS : INT64_MAX / 4;
	rc = seller_create(core, &p, &c.s);
	if (rc < 0)
		goto fail;
	c.pay = pay;
	pthread_barrier_init(&c.go, NULL, nthreads + 1);
	for (; started < nthreads; started++) {
		w[started].c = &c;
		rc = -pthread_create(&w[started].tid, NULL, flash ? flash_main : nosellout_main,
				     &w[started]);
		if (rc)
			break;
	}
	if (rc) {
		/* Cannot release a barrier short of its count: give up loudly. */
		fprintf(stderr, "bench_cores: pthread_create: %s\n", strerror(-rc));
		exit(1);
	}
	pthread_barrier_wait(&c.go);
	if (!flash) {
		struct timespec ts = { (time_t)seconds,
				       (long)((seconds - (double)(time_t)seconds) * 1e9) };

		nanosleep(&ts, NULL);
		atomic_store(&c.stop, 1);
	}
	memset(res, 0, sizeof(*res));
	for (unsigned i = 0; i < nthreads; i++) {
		pthread_join(w[i].tid, NULL);
		res->calls += w[i].calls;
		res->granted += w[i].granted;
		if (i == 0 || w[i].t_start < first)
			first = w[i].t_start;
		if (i == 0 || w[i].t_end > last)
			last = w[i].t_end;
	}
	res->wall = last - first;
	seller_snapshot(c.s, &snap);
	res->sold = snap.sold[SELLER_GENERAL];
	pthread_barrier_destroy(&c.go);
	seller_destroy(c.s);
fail:
	free(w);
	return rc;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Prints one row of the matrix. */
static void row(const char *scenario, const struct seller_core *core, unsigned threads,
		double ops_s, double ns_op, int64_t sold, long oversold, const char *extra)
{
	char name[40];

	snprintf(name, sizeof(name), "%s%s", core->name,
		 (core->flags & SELLER_CORE_UNSAFE) ? " (UNSAFE)" : "");
	printf("| %-9s | %-15s | %7u | %13.0f | %8.1f | %10" PRId64 " | %8ld | %s\n",
	       scenario, name, threads, ops_s, ns_op, sold, oversold, extra);
	fflush(stdout);
}

static void header(const char *title)
{
	printf("\n%s\n", title);
	printf("| scenario  | core            | threads |         ops/s |    ns/op |       sold | oversold | notes\n");
	printf("|-----------|-----------------|---------|---------------|----------|------------|----------|------\n");
}

static void bench_nosellout(const struct opts *o)
{
	header("Performance-Correctness Matrix: nosellout (capacity 2^61, reserve 1 in a loop)");
	for (unsigned t = 0; t < o->nthreads; t++) {
		for (unsigned k = 0; k < o->ncores; k++) {
			double ns[32];
			long worst = 0;
			int64_t sold = 0;
			unsigned n = 0;
			char extra[64];

			for (unsigned r = 0; r < o->repeat && r < 32; r++) {
				struct result res;

				if (run_cell(o->cores[k], 0, 0, o->threads[t], o->seconds, &res) < 0)
					break;
				ns[n++] = res.wall * 1e9 / (double)res.calls;
				if (res.granted - res.sold > worst)
					worst = res.granted - res.sold;
				sold = res.sold;
			}
			if (!n)
				continue;
			qsort(ns, n, sizeof(ns[0]), cmp_double);
			snprintf(extra, sizeof(extra), "median of %u (%.1f..%.1f ns)", n, ns[0], ns[n - 1]);
			row("nosellout", o->cores[k], o->threads[t], 1e9 / ns[n / 2], ns[n / 2], sold,
			    worst, extra);
		}
	}
}

static void bench_flash(const struct opts *o, int pay)
{
	const unsigned *threads = pay ? o->pay_threads : o->threads;
	unsigned nthreads = pay ? o->npay_threads : o->nthreads;

	header(pay ? "Performance-Correctness Matrix: flash+pay (10,000 tickets, 100,000 buyers, 1 ms payment)"
		   : "Performance-Correctness Matrix: flash (10,000 tickets, 100,000 buyers)");
	for (unsigned t = 0; t < nthreads; t++) {
		for (unsigned k = 0; k < o->ncores; k++) {
			double walls[64], start = now();
			long worst = 0;
			int64_t sold = 0;
			unsigned n = 0;
			char extra[96];

			/* Repeat sales until the cell's time budget is spent. */
			do {
				struct result res;
				long over;

				if (run_cell(o->cores[k], 1, pay, threads[t], 0, &res) < 0)
					break;
				walls[n++] = res.wall;
				over = res.granted - (res.sold < FLASH_TICKETS ? res.sold : FLASH_TICKETS);
				if (over > worst)
					worst = over;
				sold = res.sold;
			} while (n < 64 && now() - start < o->seconds);
			if (!n)
				continue;
			qsort(walls, n, sizeof(walls[0]), cmp_double);
			snprintf(extra, sizeof(extra), "all buyers served in %.2f ms (median of %u sales)",
				 walls[n / 2] * 1e3, n);
			row(pay ? "flash+pay" : "flash", o->cores[k], threads[t],
			    FLASH_BUYERS / walls[n / 2], walls[n / 2] * 1e9 / FLASH_BUYERS, sold, worst,
			    extra);
		}
	}
}

/* Parses "1,2,4" into list; returns the count or -1. */
static int parse_uints(const char *arg, unsigned *list)
{
	int n = 0;
	char *end;

	while (*arg && n < MAX_LIST) {
		unsigned long v = strtoul(arg, &end, 10);

		if (end == arg || v == 0 || v > 4096)
			return -1;
		list[n++] = (unsigned)v;
		arg = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			return -1;
	}
	return n;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: bench_cores [--seconds S] [--repeat N] [--threads 1,2,4] [--pay-threads 100,1000]\n"
		"                   [--cores mutex,atomic,...] [--scenarios nosellout,flash,flash+pay]\n");
}

int main(int argc, char **argv)
{
	struct opts o = { .seconds = 1.0, .repeat = 1, .scenarios = 7 };
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	o.threads[o.nthreads++] = 1;
	o.threads[o.nthreads++] = 2;
	if (ncpu > 2)
		o.threads[o.nthreads++] = (unsigned)ncpu;
	o.pay_threads[o.npay_threads++] = 100;
	o.pay_threads[o.npay_threads++] = 1000;
	for (size_t i = 0; i < seller_core_count() && i < MAX_LIST; i++)
		o.cores[o.ncores++] = seller_core_at(i);

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int n;

		if (!v) {
			usage();
			return 2;
		}
		i++;
		if (strcmp(a, "--seconds") == 0) {
			o.seconds = strtod(v, NULL);
			if (o.seconds <= 0 || o.seconds > 3600)
				return usage(), 2;
		} else if (strcmp(a, "--repeat") == 0) {
			o.repeat = (unsigned)strtoul(v, NULL, 10);
			if (o.repeat < 1 || o.repeat > 32)
				return usage(), 2;
		} else if (strcmp(a, "--threads") == 0) {
			if ((n = parse_uints(v, o.threads)) <= 0)
				return usage(), 2;
			o.nthreads = (unsigned)n;
		} else if (strcmp(a, "--pay-threads") == 0) {
			if ((n = parse_uints(v, o.pay_threads)) <= 0)
				return usage(), 2;
			o.npay_threads = (unsigned)n;
		} else if (strcmp(a, "--cores") == 0) {
			char buf[256], *save = NULL;

			snprintf(buf, sizeof(buf), "%s", v);
			o.ncores = 0;
			for (char *t = strtok_r(buf, ",", &save); t && o.ncores < MAX_LIST;
			     t = strtok_r(NULL, ",", &save)) {
				const struct seller_core *c = seller_core_find_unsafe(t);

				if (!c) {
					fprintf(stderr, "bench_cores: unknown core %s\n", t);
					return 2;
				}
				o.cores[o.ncores++] = c;
			}
		} else if (strcmp(a, "--scenarios") == 0) {
			char buf[128], *save = NULL;

			snprintf(buf, sizeof(buf), "%s", v);
			o.scenarios = 0;
			for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
				if (strcmp(t, "nosellout") == 0)
					o.scenarios |= 1;
				else if (strcmp(t, "flash") == 0)
					o.scenarios |= 2;
				else if (strcmp(t, "flash+pay") == 0)
					o.scenarios |= 4;
				else
					return usage(), 2;
			}
		} else {
			usage();
			return 2;
		}
	}
	printf("bench_cores: %ld CPUs online, %.2f s per cell, nosellout repeat %u\n", ncpu,
	       o.seconds, o.repeat);
	printf("cores:");
	for (unsigned k = 0; k < o.ncores; k++)
		printf(" %s (%s)%s", o.cores[k]->name, o.cores[k]->summary,
		       k + 1 < o.ncores ? ";" : "\n");
	if (o.scenarios & 1)
		bench_nosellout(&o);
	if (o.scenarios & 2)
		bench_flash(&o, 0);
	if (o.scenarios & 4)
		bench_flash(&o, 1);
	return 0;
}
