/*
 * ledger_sqlite_write.c: the SQLite engine's write path. Submitters
 * (ledger_sqlite_submit, the engine's ledger_ops.submit) append their
 * requests to the queue under qlock and wake the ledger thread; the
 * thread, the only user of the write connection once started, takes the
 * whole list, runs it in one BEGIN IMMEDIATE .. COMMIT (each request in
 * its own SAVEPOINT so a duplicate id fails alone), then calls every
 * done(); between batches it purges expired idempotency keys. Crossing
 * its border: the queue and the stats (under their locks), and to
 * ledger_sqlite.c, which opens and closes, the statements' preparation
 * and the thread's start.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger_sqlite_db.h"
#include "log.h"
#include "thread.h"

#define PURGE_CHUNK 1000              /* keys deleted per background purge txn */
#define FAIL_LOG_INTERVAL_NS 1000000000LL /* one failure line per second */

/* The write connection's statements (enum wstmt), prepared at open. */
static const char *const wsql[W_COUNT] = {
	[W_BEGIN] = "BEGIN IMMEDIATE",
	[W_COMMIT] = "COMMIT",
	[W_ROLLBACK] = "ROLLBACK",
	[W_SAVEPOINT] = "SAVEPOINT req",
	[W_RELEASE] = "RELEASE req",
	[W_ROLLBACK_TO] = "ROLLBACK TO req",
	[W_INS_ORDER] =
		"INSERT INTO orders (id, event, tier, pool, quantity, buyer, idem_key,"
		" req_hash, state, created_ms, updated_ms)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'confirmed', ?9, ?9)",
	[W_INS_COUNT] = "INSERT OR IGNORE INTO counts (event, pool, sold, refunded)"
			" VALUES (?1, ?2, 0, 0)",
	[W_ADD_COUNTS] = "UPDATE counts SET sold = sold + ?3, refunded = refunded + ?4"
			 " WHERE event = ?1 AND pool = ?2",
	[W_DEL_OLD_KEY] = "DELETE FROM idempotency WHERE key = ?1 AND created_ms < ?2",
	[W_INS_IDEM] = "INSERT INTO idempotency (key, req_hash, status, body, order_id,"
		       " created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[W_GET_STATE] = "SELECT state, event, pool, quantity FROM orders WHERE id = ?1",
	[W_SET_REFUNDED] = "UPDATE orders SET state = 'refunded', updated_ms = ?2"
			   " WHERE id = ?1 AND state = 'confirmed'",
	[W_INS_REFUND] = "INSERT INTO refunds (order_id, refunded_ms) VALUES (?1, ?2)",
	[W_PURGE_ALL] = "DELETE FROM idempotency WHERE created_ms < ?1",
	[W_PURGE_CHUNK] = "DELETE FROM idempotency WHERE key IN (SELECT key FROM"
			  " idempotency WHERE created_ms < ?1 ORDER BY created_ms LIMIT ?2)",
};

/* ledger_ops.submit: appends the chain head..tail (n requests) to l's
 * queue with one lock and at most one wakeup; 0 or -ESHUTDOWN (nothing
 * appended). */
int ledger_sqlite_submit(struct ledger *base, struct ledger_req *head, struct ledger_req *tail,
			 uint64_t n)
{
	struct ledger_sqlite *l = sqlite_of(base);
	int wake;

	pthread_mutex_lock(&l->qlock);
	if (l->stopping) {
		pthread_mutex_unlock(&l->qlock);
		return -ESHUTDOWN;
	}
	if (l->tail)
		l->tail->next = head;
	else
		l->head = head;
	l->tail = tail;
	l->queued += n;
	wake = l->waiting;
	pthread_mutex_unlock(&l->qlock);
	if (wake)
		pthread_cond_signal(&l->qcond);
	return 0;
}

/* Stores the idempotency record of r (order_id NULL for a RESULT). */
static int put_idem(struct ledger_sqlite *l, const struct ledger_idem_in *in,
		    const char *order_id, int64_t now)
{
	sqlite3_stmt *st = l->st[W_DEL_OLD_KEY];
	int rc;

	/* An expired key the purge has not reached yet may be used again. */
	bind_text(st, 1, in->key);
	sqlite3_bind_int64(st, 2, now - l->ttl_ms);
	rc = run(st);
	if (rc != SQLITE_OK)
		return rc;
	st = l->st[W_INS_IDEM];
	bind_text(st, 1, in->key);
	sqlite3_bind_blob(st, 2, in->req_hash, LEDGER_HASH_LEN, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, in->status);
	bind_text(st, 4, in->body);
	bind_text(st, 5, order_id);
	sqlite3_bind_int64(st, 6, now);
	return run(st);
}

/* Writes the batch's counts changes, one UPDATE per (event, pool) row. */
static int flush_counts(struct ledger_sqlite *l)
{
	int rc = SQLITE_OK;

	for (unsigned i = 0; i < l->ndeltas && rc == SQLITE_OK; i++) {
		const struct count_delta *d = &l->deltas[i];
		sqlite3_stmt *st = l->st[W_INS_COUNT];

		bind_text(st, 1, d->event);
		bind_text(st, 2, seller_pool_name(d->pool));
		rc = run(st);
		if (rc != SQLITE_OK)
			break;
		st = l->st[W_ADD_COUNTS];
		bind_text(st, 1, d->event);
		bind_text(st, 2, seller_pool_name(d->pool));
		sqlite3_bind_int64(st, 3, d->sold);
		sqlite3_bind_int64(st, 4, d->refunded);
		rc = run(st);
	}
	l->ndeltas = 0;
	return rc;
}

/* Adds a committed request's change of the counts to the batch's table
 * (flushing it first when full). SQLITE_OK or the error. */
static int count_request(struct ledger_sqlite *l, const struct ledger_req *r)
{
	const char *event;
	enum seller_pool pool;
	int64_t sold, refunded = 0;
	unsigned i;
	int rc;

	if (r->op == LEDGER_OP_ORDER) {
		event = r->order.event;
		pool = r->order.pool;
		sold = r->order.quantity;
	} else if (r->op == LEDGER_OP_REFUND) {
		event = r->refunded.event;
		pool = r->refunded.pool;
		sold = -(int64_t)r->refunded.quantity;
		refunded = r->refunded.quantity;
	} else {
		return SQLITE_OK;
	}
	for (i = 0; i < l->ndeltas; i++)
		if (l->deltas[i].pool == pool && strcmp(l->deltas[i].event, event) == 0)
			break;
	if (i == COUNT_SLOTS) {
		rc = flush_counts(l);
		if (rc != SQLITE_OK)
			return rc;
		i = 0;
	}
	if (i == l->ndeltas) {
		l->deltas[i] = (struct count_delta){ .event = event, .pool = pool };
		l->ndeltas++;
	}
	l->deltas[i].sold += sold;
	l->deltas[i].refunded += refunded;
	return SQLITE_OK;
}

static int apply_order(struct ledger_sqlite *l, struct ledger_req *r, int64_t now)
{
	const struct ledger_order_in *o = &r->order;
	sqlite3_stmt *st = l->st[W_INS_ORDER];
	int rc;

	bind_text(st, 1, o->id);
	bind_text(st, 2, o->event);
	bind_text(st, 3, seller_pool_name(o->tier));
	bind_text(st, 4, seller_pool_name(o->pool));
	sqlite3_bind_int(st, 5, (int)o->quantity);
	bind_text(st, 6, o->buyer);
	bind_text(st, 7, r->idem.key);
	if (r->idem.key)
		sqlite3_bind_blob(st, 8, r->idem.req_hash, LEDGER_HASH_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 9, now);
	rc = run(st);
	if (rc != SQLITE_OK)
		return rc;
	if (r->idem.key)
		rc = put_idem(l, &r->idem, o->id, now);
	return rc;
}

static int apply_refund(struct ledger_sqlite *l, struct ledger_req *r, int64_t now)
{
	sqlite3_stmt *st = l->st[W_GET_STATE];
	int rc;

	bind_text(st, 1, r->refund_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r->result = -ENOENT;
		rc = SQLITE_OK;
	} else if (rc == SQLITE_ROW) {
		const char *state = (const char *)sqlite3_column_text(st, 0);
		const char *event = (const char *)sqlite3_column_text(st, 1);
		const char *pool = (const char *)sqlite3_column_text(st, 2);

		rc = SQLITE_OK;
		if (!state || !event || !pool) {
			rc = SQLITE_NOMEM;
		} else if (strcmp(state, "confirmed") != 0) {
			r->result = -EALREADY;
		} else {
			snprintf(r->refunded.event, sizeof(r->refunded.event), "%s", event);
			r->refunded.pool = strcmp(pool, "vip") == 0 ? SELLER_VIP : SELLER_GENERAL;
			r->refunded.quantity = (unsigned)sqlite3_column_int(st, 3);
		}
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_OK || r->result)
		return rc;

	st = l->st[W_SET_REFUNDED];
	bind_text(st, 1, r->refund_id);
	sqlite3_bind_int64(st, 2, now);
	rc = run(st);
	if (rc == SQLITE_OK) {
		st = l->st[W_INS_REFUND];
		bind_text(st, 1, r->refund_id);
		sqlite3_bind_int64(st, 2, now);
		rc = run(st);
	}
	return rc;
}

/* Runs one request inside the open transaction. Returns SQLITE_OK (r->result
 * holds the request's own outcome) or the SQLite error. */
static int apply(struct ledger_sqlite *l, struct ledger_req *r, int64_t now)
{
	sqlite3_stmt *st;
	int rc;

	switch (r->op) {
	case LEDGER_OP_ORDER:
		return apply_order(l, r, now);
	case LEDGER_OP_REFUND:
		return apply_refund(l, r, now);
	case LEDGER_OP_RESULT:
		return put_idem(l, &r->idem, NULL, now);
	case LEDGER_OP_PURGE:
		st = l->st[W_PURGE_ALL];
		sqlite3_bind_int64(st, 1, now - l->ttl_ms);
		rc = run(st);
		if (rc == SQLITE_OK)
			r->result = sqlite3_changes(l->db);
		return rc;
	}
	return SQLITE_MISUSE;
}

/* Logs a failed batch, at most once a second with the count skipped. */
static void log_batch_failure(struct ledger_sqlite *l, size_t n, int rc)
{
	int64_t now = mono_ns();

	l->fail_streak++;
	if (l->fail_logged_ns && now - l->fail_logged_ns < FAIL_LOG_INTERVAL_NS) {
		l->fail_unlogged++;
		return;
	}
	if (l->fail_unlogged)
		log_err("ledger: commit of %zu request(s) failed, none confirmed: %s "
			"(%s); %" PRIu64 " more failed batch(es) not logged", n,
			sqlite3_errstr(rc), sqlite3_errmsg(l->db), l->fail_unlogged);
	else
		log_err("ledger: commit of %zu request(s) failed, none confirmed: %s (%s)",
			n, sqlite3_errstr(rc), sqlite3_errmsg(l->db));
	l->fail_unlogged = 0;
	l->fail_logged_ns = now;
}

/* Commits one batch (n requests from head on) and calls every done(). */
static void run_batch(struct ledger_sqlite *l, struct ledger_req *head, size_t n)
{
	int64_t now = l->now_ms(), t0 = mono_ns(), dt;
	uint64_t orders = 0, tickets = 0, refunds = 0, results = 0, purged = 0, errors = 0;
	struct ledger_req *r, *next;
	int rc;

	if (!sqlite3_get_autocommit(l->db))
		run(l->st[W_ROLLBACK]); /* a failed ROLLBACK left one open */
	/* Pass 0 runs the batch without savepoints (4 statements fewer per
	 * order). If a request fails alone (a duplicate id, code or key), the
	 * whole transaction is rolled back and pass 1 runs it again with one
	 * savepoint per request, so that only that request fails. */
	for (int safe = 0; safe < 2; safe++) {
		int conflict = 0;

		l->ndeltas = 0;
		rc = run(l->st[W_BEGIN]);
		for (r = head; r && rc == SQLITE_OK; r = r->next) {
			r->result = 0;
			if (safe && (rc = run(l->st[W_SAVEPOINT])) != SQLITE_OK)
				break;
			rc = apply(l, r, now);
			if (rc != SQLITE_OK && request_error(rc) &&
			    !sqlite3_get_autocommit(l->db)) {
				if (!safe) {
					conflict = 1;
					break;
				}
				r->result = sql_errno(rc); /* this request alone */
				rc = run(l->st[W_ROLLBACK_TO]);
			}
			if (safe && rc == SQLITE_OK)
				rc = run(l->st[W_RELEASE]);
			if (rc == SQLITE_OK && r->result == 0)
				rc = count_request(l, r);
		}
		if (conflict) {
			run(l->st[W_ROLLBACK]);
			continue;
		}
		if (rc == SQLITE_OK)
			rc = flush_counts(l);
		if (rc == SQLITE_OK)
			rc = run(l->st[W_COMMIT]);
		break;
	}
	if (rc != SQLITE_OK) {
		log_batch_failure(l, n, rc);
		if (!sqlite3_get_autocommit(l->db))
			run(l->st[W_ROLLBACK]);
		for (r = head; r; r = r->next)
			r->result = sql_errno(rc);
	} else if (l->fail_streak) {
		log_notice("ledger: commits succeed again after %" PRIu64 " failed batch(es)",
			   l->fail_streak);
		l->fail_streak = 0;
		l->fail_unlogged = 0;
		l->fail_logged_ns = 0;
	}
	dt = mono_ns() - t0;

	for (r = head; r; r = r->next) {
		if (r->result < 0) {
			errors++;
			continue;
		}
		switch (r->op) {
		case LEDGER_OP_ORDER:
			orders++;
			tickets += r->order.quantity;
			break;
		case LEDGER_OP_REFUND:
			refunds++;
			break;
		case LEDGER_OP_RESULT:
			results++;
			break;
		case LEDGER_OP_PURGE:
			purged += (uint64_t)r->result;
			break;
		}
	}
	pthread_mutex_lock(&l->stats_lock);
	l->stats.batches++;
	l->stats.failed_batches += rc != SQLITE_OK;
	l->stats.requests += n;
	l->stats.errors += errors;
	l->stats.orders += orders;
	l->stats.tickets += tickets;
	l->stats.refunds += refunds;
	l->stats.results += results;
	l->stats.purged += purged;
	if (n > l->stats.max_batch)
		l->stats.max_batch = n;
	l->stats.commit_ns_total += (uint64_t)dt;
	if ((uint64_t)dt > l->stats.commit_ns_max)
		l->stats.commit_ns_max = (uint64_t)dt;
	l->stats.batch_hist[ledger_hist_bucket(n)]++;
	l->stats.commit_us_hist[ledger_hist_bucket((uint64_t)dt / 1000)]++;
	pthread_mutex_unlock(&l->stats_lock);

	/* done() may free r: read next first. */
	if (l->batch_begin)
		l->batch_begin(l->batch_arg);
	for (r = head; r; r = next) {
		next = r->next;
		r->done(r, r->result);
	}
	if (l->batch_end)
		l->batch_end(l->batch_arg);
}

/* Forgets one chunk of expired idempotency keys in its own transaction. */
static void purge_chunk(struct ledger_sqlite *l)
{
	sqlite3_stmt *st = l->st[W_PURGE_CHUNK];
	int rc, n = 0;

	sqlite3_bind_int64(st, 1, l->now_ms() - l->ttl_ms);
	sqlite3_bind_int(st, 2, PURGE_CHUNK);
	rc = run(l->st[W_BEGIN]);
	if (rc == SQLITE_OK) {
		rc = run(st);
		n = sqlite3_changes(l->db);
	} else {
		sqlite3_clear_bindings(st);
	}
	if (rc == SQLITE_OK)
		rc = run(l->st[W_COMMIT]);
	if (rc != SQLITE_OK) {
		log_warn("ledger: purging expired idempotency keys failed: %s",
			 sqlite3_errmsg(l->db));
		if (!sqlite3_get_autocommit(l->db))
			run(l->st[W_ROLLBACK]);
		n = 0;
	}
	l->purge_more = n == PURGE_CHUNK;
	l->next_purge_ns = mono_ns() + l->purge_interval_ns;
	if (n > 0) {
		pthread_mutex_lock(&l->stats_lock);
		l->stats.purged += (uint64_t)n;
		pthread_mutex_unlock(&l->stats_lock);
	}
}

/* Puts the calling thread (the ledger's) under SCHED_BATCH, whose wakeups
 * do not preempt the running thread: a loop or worker that submits on the
 * CPU the ledger shares goes on taking requests until it blocks or its slice
 * ends, so a saturated CPU commits fewer, larger batches (the per-commit
 * cost is about that of 40 inserts). Where a CPU is idle the ledger runs on
 * it at once, as under SCHED_OTHER. If the system refuses (a seccomp filter
 * without sched_setscheduler), says so and goes on as before. The call is
 * POSIX's per-thread one: musl's sched_setscheduler() always fails. */
static void sched_batch(void)
{
#ifdef SCHED_BATCH
	struct sched_param sp = { .sched_priority = 0 };
	int rc = pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);

	if (rc != 0)
		log_notice("ledger: cannot make the ledger thread SCHED_BATCH (%s): "
			   "under load it commits smaller batches", strerror(rc));
#endif
}

/* The ledger thread: batches until closed and drained. */
static void *ledger_main(void *arg)
{
	struct ledger_sqlite *l = arg;

	sched_batch();
	for (;;) {
		struct ledger_req *batch;
		struct timespec ts;
		size_t n;
		int stop;

		pthread_mutex_lock(&l->qlock);
		while (!l->head && !l->stopping && !l->purge_more) {
			int64_t at = l->next_purge_ns;

			if (mono_ns() >= at)
				break;
			ts.tv_sec = at / 1000000000LL;
			ts.tv_nsec = at % 1000000000LL;
			l->waiting = 1;
			pthread_cond_timedwait(&l->qcond, &l->qlock, &ts);
			l->waiting = 0;
		}
		batch = l->head;
		n = (size_t)l->queued;
		l->head = l->tail = NULL;
		l->queued = 0;
		stop = l->stopping;
		pthread_mutex_unlock(&l->qlock);

		if (batch)
			run_batch(l, batch, n);
		else if (stop)
			break;
		if (!stop && (l->purge_more || mono_ns() >= l->next_purge_ns))
			purge_chunk(l);
	}
	return NULL;
}

/* Prepares the write connection's statements; 0 or -EIO with err filled. */
int ledger_sqlite_prepare_writes(struct ledger_sqlite *l, char *err, size_t errlen)
{
	for (int i = 0; i < W_COUNT; i++) {
		int rc = sqlite3_prepare_v3(l->db, wsql[i], -1, SQLITE_PREPARE_PERSISTENT,
					    &l->st[i], NULL);

		if (rc != SQLITE_OK) {
			snprintf(err, errlen, "%s: cannot prepare: %s", l->path,
				 sqlite3_errmsg(l->db));
			return -EIO;
		}
	}
	return 0;
}

/* Starts the ledger thread with every signal blocked (they belong to the
 * daemon's main thread). 0 or -errno. */
int ledger_sqlite_start_thread(struct ledger_sqlite *l)
{
	int rc = thread_start(&l->thread, ledger_main, l);

	if (rc < 0)
		return rc;
	pthread_setname_np(l->thread, "ledger");
	l->thread_started = 1;
	return 0;
}
