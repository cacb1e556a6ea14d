/*
 * test_ledger_concurrent.c: group commit under many submitting threads.
 *
 * THREADS threads each keep a window of WINDOW requests in flight (as a
 * daemon's workers would) until PER_THREAD orders are confirmed; a quarter
 * of the orders carry an idempotency key and every tenth is refunded once
 * confirmed. While they run, reader threads read orders that were already
 * confirmed and the sold figures. Invariants checked exactly:
 *  - every submitted request's done() ran exactly once, with result 0;
 *  - an order is readable (with all its tickets) as soon as done() said 0,
 *    and so is its idempotency key;
 *  - sold per pool == sum of confirmed quantities minus refunded ones;
 *  - the stats agree (orders, refunds, requests) and some batch held more
 *    than one request (group commit happened).
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "ledger.h"
#include "tap.h"
#include "test_ledger_util.h"

#define THREADS 8
#define PER_THREAD 300
#define WINDOW 16
#define READERS 2

struct job {
	struct ledger_req req;
	struct worker *w;
	char id[24];
	char key[32];
	_Atomic int calls;             /* done() calls */
	_Atomic int result;
};

struct worker {
	struct ledger *l;
	int index;
	struct job jobs[PER_THREAD + PER_THREAD / 10]; /* orders, then refunds */
	pthread_mutex_t lock;          /* guards finished[] and nfinished */
	pthread_cond_t cond;
	int finished[PER_THREAD + PER_THREAD / 10];
	int nfinished;
	int64_t sold[SELLER_NPOOLS];   /* confirmed minus refunded quantities */
	int bad_reads, bad_results;
};

static struct worker workers[THREADS];
static _Atomic int stop_readers;
static _Atomic int published;      /* ids in confirmed_ids[] readers may read */
static char confirmed_ids[THREADS * PER_THREAD][24];
static pthread_mutex_t publish_lock = PTHREAD_MUTEX_INITIALIZER; /* guards the append */

static void job_done(struct ledger_req *r, int result)
{
	struct job *j = (struct job *)r;
	struct worker *w = j->w;

	atomic_store(&j->result, result);
	atomic_fetch_add(&j->calls, 1);
	pthread_mutex_lock(&w->lock);
	w->finished[w->nfinished++] = (int)(j - w->jobs);
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* Waits for one of w's jobs to finish; returns its index. */
static int next_finished(struct worker *w, int *taken)
{
	int i;

	pthread_mutex_lock(&w->lock);
	while (*taken == w->nfinished)
		pthread_cond_wait(&w->cond, &w->lock);
	i = w->finished[(*taken)++];
	pthread_mutex_unlock(&w->lock);
	return i;
}

static void publish(const char *id)
{
	pthread_mutex_lock(&publish_lock);
	int n = atomic_load(&published);

	snprintf(confirmed_ids[n], sizeof(confirmed_ids[n]), "%s", id);
	atomic_store(&published, n + 1);
	pthread_mutex_unlock(&publish_lock);
}

/* Checks that a just-confirmed order reads back whole. */
static void check_read(struct worker *w, struct job *j)
{
	struct ledger_order *o = NULL;
	struct ledger_idem *k = NULL;

	if (ledger_get_order(w->l, j->id, &o) != 0 || o->quantity != j->req.order.quantity ||
	    o->ntickets != o->quantity || o->pool != j->req.order.pool)
		w->bad_reads++;
	free(o);
	if (j->req.idem.key && (ledger_idem_lookup(w->l, j->key, &k) != 0 || !k->order_id ||
				strcmp(k->order_id, j->id) != 0))
		w->bad_reads++;
	free(k);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int next = 0, taken = 0, inflight = 0, nref = 0;

	while (next < PER_THREAD || inflight > 0) {
		while (next < PER_THREAD && inflight < WINDOW) {
			struct job *j = &w->jobs[next];

			j->w = w;
			snprintf(j->id, sizeof(j->id), "t%d-%d", w->index, next);
			j->req.op = LEDGER_OP_ORDER;
			j->req.done = job_done;
			j->req.order = (struct ledger_order_in){
				.id = j->id, .event = "flash",
				.tier = next % 3 ? SELLER_GENERAL : SELLER_VIP,
				.pool = next % 3 ? SELLER_GENERAL : SELLER_VIP,
				.quantity = 1 + (unsigned)(next % 4), .buyer = "load",
			};
			if (next % 4 == 0) {
				snprintf(j->key, sizeof(j->key), "key-%d-%d", w->index, next);
				j->req.idem.key = j->key;
				j->req.idem.status = 201;
				memset(j->req.idem.req_hash, next & 0xff, LEDGER_HASH_LEN);
			}
			if (ledger_submit(w->l, &j->req) == 0)
				inflight++;
			else
				w->bad_results++;
			next++;
		}
		int i = next_finished(w, &taken);
		struct job *j = &w->jobs[i];

		inflight--;
		if (atomic_load(&j->result) != 0) {
			w->bad_results++;
			continue;
		}
		if (j->req.op == LEDGER_OP_REFUND) {
			w->sold[j->req.refunded.pool] -= j->req.refunded.quantity;
			continue;
		}
		w->sold[j->req.order.pool] += j->req.order.quantity;
		check_read(w, j);
		publish(j->id);
		if (i % 10 == 0 && nref < PER_THREAD / 10) {
			struct job *r = &w->jobs[PER_THREAD + nref++];

			r->w = w;
			r->req.op = LEDGER_OP_REFUND;
			r->req.done = job_done;
			r->req.refund_id = j->id;
			if (ledger_submit(w->l, &r->req) == 0)
				inflight++;
			else
				w->bad_results++;
		}
	}
	return NULL;
}

static void *reader_main(void *arg)
{
	struct ledger *l = arg;
	unsigned seed = 12345;
	long reads = 0, bad = 0;

	while (!atomic_load(&stop_readers)) {
		int n = atomic_load(&published);
		struct ledger_order *o;

		if (n == 0)
			continue;
		seed = seed * 1103515245u + 12345u;
		if (ledger_get_order(l, confirmed_ids[(seed >> 8) % (unsigned)n], &o) == 0)
			free(o);
		else
			bad++;
		reads++;
	}
	return (void *)(bad ? -1L : reads);
}

struct sums {
	int64_t sold[SELLER_NPOOLS];
};

static int add_sold(void *arg, const char *event, enum seller_pool pool, int64_t sold)
{
	struct sums *s = arg;

	if (strcmp(event, "flash") == 0)
		s->sold[pool] += sold;
	return 0;
}

int main(void)
{
	struct ledger_options o = { .sync = LEDGER_SYNC_FULL };
	char *dir = tmpdir_make(), err[512];
	pthread_t th[THREADS], rth[READERS];
	int64_t want[SELLER_NPOOLS] = { 0, 0 };
	long reads = 0, reader_fail = 0;
	int once = 1, bad_reads = 0, bad_results = 0, total = 0, rc;
	struct ledger_stats st;
	struct sums got = { { 0, 0 } };
	struct ledger *l;

	o.state_dir = dir;
	if (!ok(ledger_open(&o, &l, err, sizeof(err)) == 0, "open %s", err)) {
		tmpdir_remove(dir);
		return tap_done();
	}
	for (int i = 0; i < READERS; i++)
		pthread_create(&rth[i], NULL, reader_main, l);
	for (int i = 0; i < THREADS; i++) {
		workers[i].l = l;
		workers[i].index = i;
		pthread_mutex_init(&workers[i].lock, NULL);
		pthread_cond_init(&workers[i].cond, NULL);
		pthread_create(&th[i], NULL, worker_main, &workers[i]);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	atomic_store(&stop_readers, 1);
	for (int i = 0; i < READERS; i++) {
		void *ret;

		pthread_join(rth[i], &ret);
		if ((long)ret < 0)
			reader_fail++;
		else
			reads += (long)ret;
	}

	for (int i = 0; i < THREADS; i++) {
		struct worker *w = &workers[i];

		for (size_t j = 0; j < sizeof(w->jobs) / sizeof(w->jobs[0]); j++) {
			if (w->jobs[j].req.done) {
				once &= atomic_load(&w->jobs[j].calls) == 1;
				total++;
			}
		}
		bad_reads += w->bad_reads;
		bad_results += w->bad_results;
		for (int p = 0; p < SELLER_NPOOLS; p++)
			want[p] += w->sold[p];
	}
	ok(total == THREADS * (PER_THREAD + PER_THREAD / 10) && once,
	   "%d requests, every done() called exactly once", total);
	ok(bad_results == 0, "every request succeeded (%d failures)", bad_results);
	ok(bad_reads == 0, "every confirmed order and key was readable at once (%d misses)",
	   bad_reads);
	ok(reader_fail == 0 && reads > 0, "%d readers read %ld published orders concurrently",
	   READERS, reads);
	rc = ledger_foreach_sold(l, add_sold, &got);
	ok(rc == 0 && got.sold[SELLER_GENERAL] == want[SELLER_GENERAL] &&
	   got.sold[SELLER_VIP] == want[SELLER_VIP],
	   "sold general %lld vip %lld == confirmed minus refunded",
	   (long long)got.sold[SELLER_GENERAL], (long long)got.sold[SELLER_VIP]);
	ledger_stats(l, &st);
	ok(st.orders == THREADS * PER_THREAD && st.refunds == THREADS * PER_THREAD / 10 &&
	   st.requests == (uint64_t)total && st.errors == 0 && st.failed_batches == 0,
	   "stats: %llu orders, %llu refunds in %llu batches",
	   (unsigned long long)st.orders, (unsigned long long)st.refunds,
	   (unsigned long long)st.batches);
	ok(st.max_batch > 1, "group commit: largest batch %llu requests, mean %.1f",
	   (unsigned long long)st.max_batch, (double)st.requests / (double)st.batches);
	diag("commit latency: mean %.0f us, max %.0f us",
	     (double)st.commit_ns_total / (double)st.batches / 1e3,
	     (double)st.commit_ns_max / 1e3);
	ledger_close(l);
	for (int i = 0; i < THREADS; i++) {
		pthread_mutex_destroy(&workers[i].lock);
		pthread_cond_destroy(&workers[i].cond);
	}
	tmpdir_remove(dir);
	return tap_done();
}
