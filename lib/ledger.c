/*
 * ledger.c: the durable order ledger (see ledger.h for the contract and
 * docs/ledger.md for the schema).
 *
 * One ledger thread owns the write connection. Submitters append their
 * request to a singly linked list under qlock and wake the thread; it takes
 * the whole list, runs it in one BEGIN IMMEDIATE .. COMMIT (each request in
 * its own SAVEPOINT so a duplicate id fails alone), and after COMMIT calls
 * every done(). A batch that fails as a whole (disk full, I/O error) is
 * rolled back and every request in it gets the error. Reads use a small
 * pool of query_only connections, each behind its own mutex; WAL lets them
 * run while the ledger thread writes. Nothing crosses threads but the
 * queue, the stats (under stats_lock) and the readers (under their locks).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fmt.h"
#include "ledger.h"
#include "thread.h"
#include "ledger_db.h"
#include "log.h"

#define PURGE_CHUNK 1000              /* keys deleted per background purge txn */
#define PURGE_INTERVAL_MAX_S 60       /* background purge period, at most */
#define FAIL_LOG_INTERVAL_NS 1000000000LL /* one failure line per second */

/* The tickets of every order, derived: "<id>-<n>" for n = 1..quantity. For
 * the shell and the audit; the daemon derives them in C (ledger_get_order). */
#define TICKETS_VIEW_SQL \
	"CREATE VIEW tickets (code, order_id, seq) AS\n    " \
	LEDGER_DERIVED_CTE "    " LEDGER_DERIVED_ROWS ";\n"

/* Schema 2. Times are unix milliseconds; pools and tiers are "general" or
 * "vip". counts duplicates the sums over orders so the audit can cross-check
 * them. Ticket n of an order is "<id>-<n>": tickets is a view that derives
 * them (schema 1 stored a row per ticket; upgrade_v1 converts such a file).
 * Keep docs/ledger.md in step. */
const char ledger_schema_sql[] =
	"BEGIN;\n"
	"CREATE TABLE meta (\n"
	"    key   TEXT PRIMARY KEY,     -- schema_version, boot_epoch, created_ms\n"
	"    value INTEGER NOT NULL\n"
	") WITHOUT ROWID;\n"
	"CREATE TABLE orders (\n"
	"    id         TEXT PRIMARY KEY,\n"
	"    event      TEXT NOT NULL,\n"
	"    tier       TEXT NOT NULL CHECK (tier IN ('general', 'vip')), -- asked for\n"
	"    pool       TEXT NOT NULL CHECK (pool IN ('general', 'vip')), -- taken from\n"
	"    quantity   INTEGER NOT NULL CHECK (quantity > 0),\n"
	"    buyer      TEXT NOT NULL,\n"
	"    idem_key   TEXT,               -- Idempotency-Key, if any\n"
	"    req_hash   BLOB,               -- SHA-256 of the request, with idem_key\n"
	"    state      TEXT NOT NULL CHECK (state IN ('confirmed', 'refunded')),\n"
	"    created_ms INTEGER NOT NULL,\n"
	"    updated_ms INTEGER NOT NULL\n"
	") WITHOUT ROWID;\n"
	TICKETS_VIEW_SQL
	"CREATE TABLE refunds (\n"
	"    order_id    TEXT PRIMARY KEY REFERENCES orders (id),\n"
	"    refunded_ms INTEGER NOT NULL\n"
	") WITHOUT ROWID;\n"
	"CREATE TABLE counts (\n"
	"    event    TEXT NOT NULL,\n"
	"    pool     TEXT NOT NULL CHECK (pool IN ('general', 'vip')),\n"
	"    sold     INTEGER NOT NULL,     -- tickets in confirmed orders\n"
	"    refunded INTEGER NOT NULL,     -- tickets in refunded orders\n"
	"    PRIMARY KEY (event, pool)\n"
	") WITHOUT ROWID;\n"
	"CREATE TABLE idempotency (\n"
	"    key        TEXT PRIMARY KEY,\n"
	"    req_hash   BLOB NOT NULL,\n"
	"    status     INTEGER NOT NULL,   -- HTTP status to replay\n"
	"    body       TEXT,               -- reply body to replay\n"
	"    order_id   TEXT REFERENCES orders (id),\n"
	"    created_ms INTEGER NOT NULL\n"
	") WITHOUT ROWID;\n"
	"CREATE INDEX idempotency_created ON idempotency (created_ms);\n"
	"INSERT INTO meta (key, value) VALUES ('schema_version', 2), ('boot_epoch', 0),\n"
	"    ('created_ms', CAST(strftime('%s', 'now') AS INTEGER) * 1000);\n"
	"PRAGMA application_id = 1953063787; -- 0x7469636b, \"tick\"\n"
	"PRAGMA user_version = 2;\n"
	"COMMIT;\n";

_Static_assert(LEDGER_APPLICATION_ID == 1953063787, "the schema's application_id");

/* The write connection's statements, prepared once. */
enum wstmt {
	W_BEGIN, W_COMMIT, W_ROLLBACK, W_SAVEPOINT, W_RELEASE, W_ROLLBACK_TO,
	W_INS_ORDER, W_INS_COUNT, W_ADD_COUNTS,
	W_DEL_OLD_KEY, W_INS_IDEM,
	W_GET_STATE, W_SET_REFUNDED, W_INS_REFUND,
	W_PURGE_ALL, W_PURGE_CHUNK,
	W_COUNT
};

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

/* One (event, pool) row's change in the counts table during a batch: the
 * batch adds them up and writes each row once, before COMMIT. event points
 * into a request, valid until its done(). */
struct count_delta {
	const char *event;
	enum seller_pool pool;
	int64_t sold, refunded;
};
#define COUNT_SLOTS 64                /* distinct rows before a flush */

/* A read connection's statements. */
enum rstmt { R_ORDER, R_IDEM, R_SOLD, R_COUNT };

static const char *const rsql[R_COUNT] = {
	[R_ORDER] = "SELECT id, event, tier, pool, quantity, buyer, idem_key, state,"
		    " created_ms, updated_ms FROM orders WHERE id = ?1",
	[R_IDEM] = "SELECT req_hash, status, body, order_id, created_ms FROM idempotency"
		   " WHERE key = ?1 AND created_ms >= ?2",
	[R_SOLD] = "SELECT event, pool, SUM(quantity) FROM orders WHERE state = 'confirmed'"
		   " GROUP BY event, pool ORDER BY event, pool",
};

struct ledger_reader {
	pthread_mutex_t lock;            /* guards db and st[] */
	sqlite3 *db;
	sqlite3_stmt *st[R_COUNT];
};

struct ledger {
	char *dir;
	char *path;                      /* dir/ledger.db */
	enum ledger_sync sync;
	int64_t ttl_ms;
	int64_t (*now_ms)(void);
	void (*batch_begin)(void *arg);  /* around a batch's done()s; may be NULL */
	void (*batch_end)(void *arg);
	void *batch_arg;
	uint64_t epoch;                  /* set at open, read-only after */
	int dir_fd;                      /* the state dir, flock'ed */
	int lock_fd;                     /* flock'ed dir/ledger.lock (older ticketd) */

	/* ledger thread only (and open/close, when it isn't running) */
	sqlite3 *db;
	sqlite3_stmt *st[W_COUNT];
	struct count_delta deltas[COUNT_SLOTS]; /* this batch's counts changes */
	unsigned ndeltas;
	int64_t purge_interval_ns;
	int64_t next_purge_ns;           /* CLOCK_MONOTONIC */
	int purge_more;                  /* last chunk was full: go on */
	uint64_t fail_streak;            /* failed batches in a row */
	uint64_t fail_unlogged;          /* failures not logged (rate limit) */
	int64_t fail_logged_ns;

	pthread_t thread;
	int thread_started;

	pthread_mutex_t qlock;           /* guards head, tail, queued, stopping, waiting */
	pthread_cond_t qcond;            /* signalled on submit and close */
	struct ledger_req *head, *tail;
	uint64_t queued;
	int stopping;
	int waiting;                     /* the ledger thread sleeps on qcond */

	pthread_mutex_t stats_lock;      /* guards stats (except queued) */
	struct ledger_stats stats;

	unsigned nreaders;
	struct ledger_reader *readers;
};

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *ledger_sync_name(enum ledger_sync s)
{
	return s == LEDGER_SYNC_OFF ? "off" : "full";
}

int ledger_sync_parse(const char *name, enum ledger_sync *out)
{
	if (strcmp(name, "full") == 0)
		*out = LEDGER_SYNC_FULL;
	else if (strcmp(name, "off") == 0)
		*out = LEDGER_SYNC_OFF;
	else
		return -EINVAL;
	return 0;
}

uint64_t ledger_epoch(const struct ledger *l)
{
	return l->epoch;
}

/* Written by hand, not with snprintf: replies and order reads make one code
 * per ticket, and snprintf's format parsing was 3.6% of the daemon's CPU at
 * full load when the ledger thread still stored every code
 * (docs/benchmarks.md, "What was tried"). */
int ledger_ticket_code(const char *order_id, unsigned n, char *buf, size_t len)
{
	char digits[FMT_U64_LEN];
	size_t idlen = strlen(order_id), nd = fmt_u64(digits, n);

	if (idlen + 1 + nd >= len) {
		if (len)
			buf[0] = '\0';
		return -ENAMETOOLONG;
	}
	memcpy(buf, order_id, idlen);
	buf[idlen] = '-';
	memcpy(buf + idlen + 1, digits, nd + 1);
	return (int)(idlen + 1 + nd);
}

uint64_t ledger_hist_bound(unsigned i)
{
	return i + 1 >= LEDGER_HIST_BUCKETS ? UINT64_MAX : (uint64_t)1 << i;
}

/* Bucket of v: its bit length, capped at the last bucket. */
static unsigned hist_bucket(uint64_t v)
{
	unsigned b = v ? 64u - (unsigned)__builtin_clzll(v) : 0;

	return b < LEDGER_HIST_BUCKETS ? b : LEDGER_HIST_BUCKETS - 1;
}

/* ---- small SQLite helpers ------------------------------------------------------ */

/* Steps a statement that returns no rows and resets it; SQLITE_OK or the error. */
static int run(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* An error of one request (it fails alone), not of the batch. */
static int request_error(int rc)
{
	return (rc & 0xff) == SQLITE_CONSTRAINT;
}

/* -errno for a SQLite result code. */
static int sql_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
		return 0;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	default:
		return -EIO;
	}
}

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

/* ---- the write path ----------------------------------------------------------- */

static size_t bounded_len(const char *s, size_t max)
{
	return s ? strnlen(s, max + 1) : 0;
}

static int len_ok(const char *s, size_t max)
{
	size_t n = bounded_len(s, max);

	return n >= 1 && n <= max;
}

static int pool_ok(int p)
{
	return p == SELLER_GENERAL || p == SELLER_VIP;
}

static int idem_ok(const struct ledger_idem_in *in, int required)
{
	if (!in->key)
		return !required;
	return len_ok(in->key, LEDGER_IDEM_KEY_MAX) && in->status >= 100 && in->status <= 599;
}

/* Checks a request's fields; 0 or -EINVAL. */
static int req_check(const struct ledger_req *r)
{
	const struct ledger_order_in *o = &r->order;

	if (!r->done)
		return -EINVAL;
	switch (r->op) {
	case LEDGER_OP_ORDER:
		if (!len_ok(o->id, LEDGER_ID_MAX) || !len_ok(o->event, LEDGER_EVENT_MAX) ||
		    !len_ok(o->buyer, LEDGER_BUYER_MAX) || !pool_ok((int)o->tier) ||
		    !pool_ok((int)o->pool) || o->quantity < 1 ||
		    o->quantity > SELLER_MAX_QUANTITY || !idem_ok(&r->idem, 0))
			return -EINVAL;
		if (strlen(o->id) + 1 + 4 > LEDGER_CODE_MAX)
			return -EINVAL; /* "<id>-1000" must fit */
		return 0;
	case LEDGER_OP_REFUND:
		return len_ok(r->refund_id, LEDGER_ID_MAX) ? 0 : -EINVAL;
	case LEDGER_OP_RESULT:
		return idem_ok(&r->idem, 1) ? 0 : -EINVAL;
	case LEDGER_OP_PURGE:
		return 0;
	}
	return -EINVAL;
}

/* What a thread holds between ledger_hold and ledger_release: requests
 * already checked, appended to the queue in one go. Thread-local. */
struct held_reqs {
	struct ledger *l;                /* NULL: not holding */
	struct ledger_req *head, *tail;
	uint64_t n;
};
static _Thread_local struct held_reqs held;

/* Appends the chain head..tail (n requests) to l's queue with one lock and
 * at most one wakeup; 0 or -ESHUTDOWN (nothing appended). */
static int enqueue(struct ledger *l, struct ledger_req *head, struct ledger_req *tail,
		   uint64_t n)
{
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

int ledger_submit(struct ledger *l, struct ledger_req *r)
{
	int rc = req_check(r);

	if (rc < 0)
		return rc;
	r->next = NULL;
	r->result = 0;
	if (held.l == l) {
		if (held.tail)
			held.tail->next = r;
		else
			held.head = r;
		held.tail = r;
		held.n++;
		return 0;
	}
	return enqueue(l, r, r, 1);
}

void ledger_hold(struct ledger *l)
{
	if (held.l && held.l != l)
		ledger_release(held.l);
	held.l = l;
}

void ledger_flush(struct ledger *l)
{
	struct ledger_req *r, *next;

	if (held.l != l || !held.head)
		return;
	r = held.head;
	if (enqueue(l, held.head, held.tail, held.n) < 0) {
		/* Accepted by ledger_submit: done() is owed, now. */
		for (; r; r = next) {
			next = r->next;
			r->result = -ESHUTDOWN;
			r->done(r, -ESHUTDOWN);
		}
	}
	held.head = held.tail = NULL;
	held.n = 0;
}

void ledger_release(struct ledger *l)
{
	ledger_flush(l);
	if (held.l == l)
		held.l = NULL;
}

/* Stores the idempotency record of r (order_id NULL for a RESULT). */
static int put_idem(struct ledger *l, const struct ledger_idem_in *in,
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
static int flush_counts(struct ledger *l)
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
static int count_request(struct ledger *l, const struct ledger_req *r)
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

static int apply_order(struct ledger *l, struct ledger_req *r, int64_t now)
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

static int apply_refund(struct ledger *l, struct ledger_req *r, int64_t now)
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
static int apply(struct ledger *l, struct ledger_req *r, int64_t now)
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
static void log_batch_failure(struct ledger *l, size_t n, int rc)
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
static void run_batch(struct ledger *l, struct ledger_req *head, size_t n)
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
	l->stats.batch_hist[hist_bucket(n)]++;
	l->stats.commit_us_hist[hist_bucket((uint64_t)dt / 1000)]++;
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
static void purge_chunk(struct ledger *l)
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
	struct ledger *l = arg;

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

/* ---- the read path ------------------------------------------------------------- */

/* Takes a free read connection (the thread's own first); returns it locked. */
static struct ledger_reader *reader_get(struct ledger *l)
{
	unsigned start = seller_thread_index() % l->nreaders;
	struct ledger_reader *rd;

	for (unsigned i = 0; i < l->nreaders; i++) {
		rd = &l->readers[(start + i) % l->nreaders];
		if (pthread_mutex_trylock(&rd->lock) == 0)
			return rd;
	}
	rd = &l->readers[start];
	pthread_mutex_lock(&rd->lock);
	return rd;
}

static void reader_put(struct ledger_reader *rd)
{
	pthread_mutex_unlock(&rd->lock);
}

/* A growable string area; pointers are offsets until the result is built. */
struct strbuf {
	char *p;
	size_t len, cap;
};

/* Appends s with its NUL; returns its offset, or (size_t)-1 on ENOMEM. */
static size_t strbuf_add(struct strbuf *b, const char *s)
{
	size_t n = strlen(s) + 1, at = b->len;

	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + n)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p)
			return (size_t)-1;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + at, s, n);
	b->len += n;
	return at;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);

	return s ? s : "";
}

static enum seller_pool pool_of(const char *s)
{
	return strcmp(s, "vip") == 0 ? SELLER_VIP : SELLER_GENERAL;
}

int ledger_get_order(struct ledger *l, const char *id, struct ledger_order **out)
{
	enum { F_ID, F_EVENT, F_BUYER, F_KEY, F_N };
	size_t off[F_N] = { 0 }, *codes = NULL, ncodes = 0;
	char code[LEDGER_CODE_MAX + 1];
	struct strbuf sb = { 0 };
	struct ledger_reader *rd;
	struct ledger_order *o = NULL, tmp = { 0 };
	int has_key = 0, rc;
	sqlite3_stmt *st;

	*out = NULL;
	if (!len_ok(id, LEDGER_ID_MAX))
		return -ENOENT;
	rd = reader_get(l);
	st = rd->st[R_ORDER];
	bind_text(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		off[F_ID] = strbuf_add(&sb, col_text(st, 0));
		off[F_EVENT] = strbuf_add(&sb, col_text(st, 1));
		tmp.tier = pool_of(col_text(st, 2));
		tmp.pool = pool_of(col_text(st, 3));
		tmp.quantity = (unsigned)sqlite3_column_int(st, 4);
		off[F_BUYER] = strbuf_add(&sb, col_text(st, 5));
		has_key = sqlite3_column_type(st, 6) != SQLITE_NULL;
		off[F_KEY] = strbuf_add(&sb, col_text(st, 6));
		tmp.state = strcmp(col_text(st, 7), "refunded") == 0 ? LEDGER_REFUNDED
								     : LEDGER_CONFIRMED;
		tmp.created_ms = sqlite3_column_int64(st, 8);
		tmp.updated_ms = sqlite3_column_int64(st, 9);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_NOTFOUND;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_OK)
		goto out;
	for (int i = 0; i < F_N; i++)
		if (off[i] == (size_t)-1) {
			rc = SQLITE_NOMEM;
			goto out;
		}

	/* The codes are derived: "<id>-1" .. "<id>-<quantity>". */
	if (tmp.quantity < 1 || tmp.quantity > SELLER_MAX_QUANTITY) {
		rc = SQLITE_CORRUPT; /* the schema's CHECK and ledger_submit keep it so */
		goto out;
	}
	codes = malloc(tmp.quantity * sizeof(*codes));
	if (!codes) {
		rc = SQLITE_NOMEM;
		goto out;
	}
	for (unsigned n = 1; n <= tmp.quantity; n++) {
		int w = ledger_ticket_code(sb.p + off[F_ID], n, code, sizeof(code));

		codes[ncodes] = w < 0 ? (size_t)-1 : strbuf_add(&sb, code);
		if (codes[ncodes] == (size_t)-1) {
			rc = w < 0 ? SQLITE_CORRUPT : SQLITE_NOMEM; /* an id too long */
			goto out;
		}
		ncodes++;
	}

	/* One block: the struct, the ticket pointers, then the strings. */
	o = malloc(sizeof(*o) + ncodes * sizeof(char *) + sb.len);
	if (!o) {
		rc = SQLITE_NOMEM;
		goto out;
	}
	*o = tmp;
	o->tickets = (char **)(o + 1);
	{
		char *strs = (char *)(o->tickets + ncodes);

		memcpy(strs, sb.p, sb.len);
		o->id = strs + off[F_ID];
		o->event = strs + off[F_EVENT];
		o->buyer = strs + off[F_BUYER];
		o->idem_key = has_key ? strs + off[F_KEY] : NULL;
		for (size_t i = 0; i < ncodes; i++)
			o->tickets[i] = strs + codes[i];
	}
	o->ntickets = (unsigned)ncodes;
out:
	reader_put(rd);
	free(codes);
	free(sb.p);
	if (rc == SQLITE_NOTFOUND)
		return -ENOENT;
	if (rc != SQLITE_OK) {
		free(o);
		return sql_errno(rc);
	}
	*out = o;
	return 0;
}

int ledger_idem_lookup(struct ledger *l, const char *key, struct ledger_idem **out)
{
	struct ledger_reader *rd;
	struct ledger_idem *r = NULL;
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	if (!len_ok(key, LEDGER_IDEM_KEY_MAX))
		return -ENOENT;
	rd = reader_get(l);
	st = rd->st[R_IDEM];
	bind_text(st, 1, key);
	sqlite3_bind_int64(st, 2, l->now_ms() - l->ttl_ms);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const void *hash = sqlite3_column_blob(st, 0);
		int hlen = sqlite3_column_bytes(st, 0);
		int has_body = sqlite3_column_type(st, 2) != SQLITE_NULL;
		int has_order = sqlite3_column_type(st, 3) != SQLITE_NULL;
		const char *body = col_text(st, 2), *order = col_text(st, 3);
		size_t blen = strlen(body) + 1, olen = strlen(order) + 1;

		r = malloc(sizeof(*r) + blen + olen);
		if (r) {
			memset(r->req_hash, 0, sizeof(r->req_hash));
			if (hash)
				memcpy(r->req_hash, hash, hlen < LEDGER_HASH_LEN ? (size_t)hlen
										 : LEDGER_HASH_LEN);
			r->status = sqlite3_column_int(st, 1);
			r->created_ms = sqlite3_column_int64(st, 4);
			r->body = (char *)(r + 1);
			memcpy(r->body, body, blen);
			r->order_id = r->body + blen;
			memcpy(r->order_id, order, olen);
			if (!has_body)
				r->body = NULL;
			if (!has_order)
				r->order_id = NULL;
			rc = SQLITE_OK;
		} else {
			rc = SQLITE_NOMEM;
		}
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_NOTFOUND;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	reader_put(rd);
	if (rc == SQLITE_NOTFOUND)
		return -ENOENT;
	if (rc != SQLITE_OK)
		return sql_errno(rc);
	*out = r;
	return 0;
}

int ledger_foreach_sold(struct ledger *l,
			int (*cb)(void *arg, const char *event, enum seller_pool pool,
				  int64_t sold),
			void *arg)
{
	struct ledger_reader *rd = reader_get(l);
	sqlite3_stmt *st = rd->st[R_SOLD];
	int rc, stop = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		stop = cb(arg, col_text(st, 0), pool_of(col_text(st, 1)),
			  sqlite3_column_int64(st, 2));
		if (stop)
			break;
	}
	sqlite3_reset(st);
	reader_put(rd);
	if (stop)
		return stop;
	return rc == SQLITE_DONE ? 0 : sql_errno(rc);
}

void ledger_stats(struct ledger *l, struct ledger_stats *out)
{
	pthread_mutex_lock(&l->stats_lock);
	*out = l->stats;
	pthread_mutex_unlock(&l->stats_lock);
	pthread_mutex_lock(&l->qlock);
	out->queued = l->queued;
	pthread_mutex_unlock(&l->qlock);
}

/* ---- open and close ------------------------------------------------------------ */

/* mkdir -p with mode 0700 for what it creates; 0 or -errno. */
static int make_dirs(const char *dir)
{
	char *p = strdup(dir), *s;
	int rc = 0;

	if (!p)
		return -ENOMEM;
	for (s = p + 1; ; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;

		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST) {
			rc = -errno;
			break;
		}
		*s = c;
		if (c == '\0')
			break;
	}
	free(p);
	return rc;
}

static void reader_close(struct ledger_reader *rd)
{
	for (int i = 0; i < R_COUNT; i++)
		sqlite3_finalize(rd->st[i]);
	if (rd->db)
		sqlite3_close(rd->db);
	pthread_mutex_destroy(&rd->lock);
}

/* Frees everything of l that exists; the thread must not be running. */
static void ledger_free(struct ledger *l)
{
	for (unsigned i = 0; i < l->nreaders; i++)
		reader_close(&l->readers[i]);
	free(l->readers);
	for (int i = 0; i < W_COUNT; i++)
		sqlite3_finalize(l->st[i]);
	if (l->db)
		sqlite3_close(l->db);
	if (l->lock_fd >= 0)
		close(l->lock_fd);
	if (l->dir_fd >= 0)
		close(l->dir_fd);
	pthread_mutex_destroy(&l->qlock);
	pthread_cond_destroy(&l->qcond);
	pthread_mutex_destroy(&l->stats_lock);
	free(l->dir);
	free(l->path);
	free(l);
}

/* Runs a one-row, one-column integer query; SQLITE_OK and *v, or the error. */
static int query_int(sqlite3 *db, const char *sql, int64_t *v)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*v = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_NOTFOUND;
	}
	sqlite3_finalize(st);
	return rc;
}

/* Runs a one-row query and copies its first column into buf; SQLITE_OK or
 * the error. */
static int query_text(sqlite3 *db, const char *sql, char *buf, size_t len)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		snprintf(buf, len, "%s", col_text(st, 0));
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_NOTFOUND;
	}
	sqlite3_finalize(st);
	return rc;
}

/* Opens a read connection to l->path; 0 or -errno with err filled. */
static int reader_open(struct ledger *l, struct ledger_reader *rd, char *err, size_t errlen)
{
	int rc = sqlite3_open_v2(l->path, &rd->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(rd->db, "PRAGMA query_only = 1", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_busy_timeout(rd->db, 5000);
	for (int i = 0; i < R_COUNT && rc == SQLITE_OK; i++)
		rc = sqlite3_prepare_v3(rd->db, rsql[i], -1, SQLITE_PREPARE_PERSISTENT,
					&rd->st[i], NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: cannot open a read connection: %s", l->path,
			 rd->db ? sqlite3_errmsg(rd->db) : sqlite3_errstr(rc));
		return sql_errno(rc) ? sql_errno(rc) : -EIO;
	}
	return 0;
}

/* Copies quick_check's first finding into buf as one line (without its
 * "*** in database main ***" heading); returns buf. */
static const char *one_line(const char *s, char *buf, size_t len)
{
	const char *nl = strchr(s, '\n');

	if (strncmp(s, "*** ", 4) == 0 && nl)
		s = nl + 1;
	snprintf(buf, len, "%s", s);
	for (char *p = buf; *p; p++)
		if (*p == '\n')
			*p = ' ';
	return buf;
}

/* Checks an existing database before anything writes to it. Sets *fresh
 * when it holds no table yet, and *version to its schema. 0 or -errno with
 * err filled. */
static int check_existing(struct ledger *l, int *fresh, int64_t *version, char *err,
			  size_t errlen)
{
	int64_t app = 0, ver = 0, tables = 0;
	sqlite3_stmt *st = NULL;
	char why[256];
	int rc;

	/* The first read parses the header: a non-database fails here. */
	rc = query_int(l->db, "PRAGMA application_id", &app);
	if (rc == SQLITE_OK)
		rc = query_int(l->db, "PRAGMA user_version", &ver);
	if (rc == SQLITE_OK)
		rc = query_int(l->db, "SELECT count(*) FROM sqlite_master", &tables);
	if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT) {
		snprintf(err, errlen, "%s is not a SQLite database or is corrupt (%s); "
			 "left untouched: restore it from a backup or move it away",
			 l->path, sqlite3_errmsg(l->db));
		return -EINVAL;
	}
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: cannot read: %s", l->path, sqlite3_errmsg(l->db));
		return sql_errno(rc);
	}
	if (sqlite3_db_readonly(l->db, "main") == 1) {
		snprintf(err, errlen, "%s is read-only: the ledger must be writable", l->path);
		return -EROFS;
	}
	*fresh = tables == 0;
	*version = ver;
	if (*fresh)
		return 0;
	if (app != LEDGER_APPLICATION_ID || ver < 1) {
		snprintf(err, errlen, "%s is a SQLite database but not a ticketd ledger "
			 "(application_id %#" PRIx64 ", user_version %" PRId64 "); left untouched",
			 l->path, (uint64_t)app, ver);
		return -EINVAL;
	}
	if (ver > LEDGER_SCHEMA_VERSION) {
		snprintf(err, errlen, "%s has ledger schema %" PRId64 ", newer than the %d "
			 "this ticketd knows: run the newer ticketd or restore a backup",
			 l->path, ver, LEDGER_SCHEMA_VERSION);
		return -EPROTO;
	}
	rc = sqlite3_prepare_v2(l->db, "PRAGMA quick_check", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && strcmp(col_text(st, 0), "ok") == 0) {
		sqlite3_finalize(st);
		return 0;
	}
	if (rc == SQLITE_ROW || (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB)
		snprintf(err, errlen, "%s is corrupt (quick_check: %s); left untouched: "
			 "restore it from a backup", l->path,
			 rc == SQLITE_ROW ? one_line(col_text(st, 0), why, sizeof(why))
					  : sqlite3_errmsg(l->db));
	else
		snprintf(err, errlen, "%s: quick_check failed: %s", l->path,
			 sqlite3_errmsg(l->db));
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW || (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB)
		return -EINVAL;
	return sql_errno(rc);
}

/* Hands every (event, pool, sold) to opt->sold_check before anything is
 * written; 0, or its -errno (err filled by it), or a read error. */
static int check_sold(struct ledger *l, const struct ledger_options *opt, char *err,
		      size_t errlen)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(l->db, rsql[R_SOLD], -1, &st, NULL), stop = 0;

	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		stop = opt->sold_check(opt->sold_arg, col_text(st, 0),
				       pool_of(col_text(st, 1)),
				       sqlite3_column_int64(st, 2), err, errlen);
		if (stop < 0)
			break;
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (stop < 0)
		return stop;
	if (rc != SQLITE_DONE) {
		snprintf(err, errlen, "%s: cannot read what was sold: %s", l->path,
			 sqlite3_errmsg(l->db));
		return sql_errno(rc) ? sql_errno(rc) : -EIO;
	}
	return 0;
}

/* Runs sql; on failure fills err with what and the SQLite message. */
static int exec_or(struct ledger *l, const char *sql, const char *what, char *err,
		   size_t errlen)
{
	int rc = sqlite3_exec(l->db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s: %s", l->path, what, sqlite3_errmsg(l->db));
		if (!sqlite3_get_autocommit(l->db))
			sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
		return sql_errno(rc);
	}
	return 0;
}

/* Converts a schema 1 file, which stored a row per ticket, to schema 2,
 * which derives them: in one write transaction, checks that the stored
 * rows are exactly the derived ones ("<id>-<n>" for n = 1..quantity, each
 * once: the two sets equal, and as many rows as tickets), then drops the
 * table for the view. If not, refuses and leaves the file as it was. 0 or
 * -errno with err filled. */
static int upgrade_v1(struct ledger *l, char *err, size_t errlen)
{
	static const struct {
		const char *sql, *what;
	} checks[] = {
		{ "SELECT count(*) FROM (" LEDGER_UNDERIVED_SQL ")",
		  "ticket row(s) that are not <order id>-<n> for an n in 1..its order's quantity" },
		{ LEDGER_DERIVED_CTE "SELECT count(*) FROM (" LEDGER_DERIVED_ROWS
		  " EXCEPT SELECT code, order_id, seq FROM tickets)",
		  "ticket(s) of an order with no row (an order with fewer rows than its "
		  "quantity)" },
		{ "SELECT (SELECT count(*) FROM tickets) -"
		  " (SELECT coalesce(sum(quantity), 0) FROM orders WHERE quantity >= 1)",
		  "ticket row(s) more than the orders' quantities (a row held twice)" },
	};
	int64_t n = 0, rows = 0;
	int rc;

	/* The implicit DELETE of DROP TABLE need not check foreign keys. */
	rc = exec_or(l, "PRAGMA foreign_keys = OFF; BEGIN IMMEDIATE",
		     "cannot start the upgrade from schema 1", err, errlen);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		rc = query_int(l->db, checks[i].sql, &n);
		if (rc != SQLITE_OK)
			goto fail_sql;
		if (n != 0) {
			snprintf(err, errlen, "%s: cannot upgrade ledger schema 1 to 2: %" PRId64
				 " %s; left untouched (docs/ledger.md, \"Upgrading from schema "
				 "1\")", l->path, n, checks[i].what);
			rc = -EINVAL;
			goto fail;
		}
	}
	rc = query_int(l->db, "SELECT count(*) FROM tickets", &rows);
	if (rc != SQLITE_OK)
		goto fail_sql;
	rc = exec_or(l, "DROP TABLE tickets;\n" TICKETS_VIEW_SQL
		     "UPDATE meta SET value = 2 WHERE key = 'schema_version';\n"
		     "PRAGMA user_version = 2;\n"
		     "COMMIT;\n"
		     "PRAGMA foreign_keys = ON",
		     "cannot upgrade schema 1 to 2", err, errlen);
	if (rc < 0)
		return rc;
	log_notice("ledger: upgraded %s from schema 1 to 2: its %" PRId64 " ticket rows "
		   "were checked and dropped (ticket codes are now derived from the "
		   "orders; VACUUM offline to return the space)", l->path, rows);
	return 0;
fail_sql:
	snprintf(err, errlen, "%s: cannot check schema 1 for the upgrade: %s", l->path,
		 sqlite3_errmsg(l->db));
	rc = sql_errno(rc);
fail:
	sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_exec(l->db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
	return rc;
}

/* Creates the schema, or checks and bumps the epoch; the write connection's
 * set-up. 0 or -errno with err filled. */
static int setup_db(struct ledger *l, const struct ledger_options *opt, char *err,
		    size_t errlen)
{
	char sql[128], mode[16];
	int64_t v = 0, prev = -1, version = 0;
	int fresh = 0, rc;

	rc = check_existing(l, &fresh, &version, err, errlen);
	if (rc < 0)
		return rc;
	if (!fresh && opt->sold_check) {
		rc = check_sold(l, opt, err, errlen);
		if (rc < 0)
			return rc;
	}
	rc = query_text(l->db, "PRAGMA journal_mode = WAL", mode, sizeof(mode));
	if (rc == SQLITE_OK && strcmp(mode, "wal") != 0)
		rc = SQLITE_CANTOPEN; /* it answers with the mode it could set */
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: cannot switch to WAL mode (is the state dir "
			 "writable?): %s", l->path, sqlite3_errmsg(l->db));
		return sql_errno(rc);
	}
	rc = exec_or(l, "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;"
		     " PRAGMA journal_size_limit = 67108864", "cannot configure", err, errlen);
	if (rc < 0)
		return rc;
	if (opt->max_db_bytes > 0) {
		int64_t page = 4096;

		query_int(l->db, "PRAGMA page_size", &page);
		snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %" PRId64,
			 opt->max_db_bytes / page > 0 ? opt->max_db_bytes / page : 1);
		if (query_int(l->db, sql, &v) != SQLITE_OK) {
			snprintf(err, errlen, "%s: cannot set max_page_count: %s", l->path,
				 sqlite3_errmsg(l->db));
			return -EIO;
		}
	}
	if (fresh) {
		rc = exec_or(l, ledger_schema_sql, "cannot create the schema", err, errlen);
		if (rc < 0)
			return rc;
		log_notice("ledger: created a new ledger %s (schema %d)", l->path,
			   LEDGER_SCHEMA_VERSION);
	} else if (version == 1) {
		rc = upgrade_v1(l, err, errlen);
		if (rc < 0)
			return rc;
	}
	/* The boot epoch, durably (synchronous is FULL until below). */
	if (opt->min_epoch > INT64_MAX) {
		snprintf(err, errlen, "%s: min_epoch out of range", l->path);
		return -EINVAL;
	}
	if (query_int(l->db, "SELECT value FROM meta WHERE key = 'boot_epoch'", &prev) !=
	    SQLITE_OK)
		prev = -1;
	snprintf(sql, sizeof(sql), "BEGIN IMMEDIATE; UPDATE meta SET value ="
		 " max(value + 1, %" PRIu64 ") WHERE key = 'boot_epoch'; COMMIT",
		 opt->min_epoch);
	rc = exec_or(l, sql, "cannot write (read-only or full?)", err, errlen);
	if (rc < 0)
		return rc;
	if (query_int(l->db, "SELECT value FROM meta WHERE key = 'boot_epoch'", &v) !=
	    SQLITE_OK || v < 1) {
		snprintf(err, errlen, "%s: meta has no boot_epoch: not a consistent ledger",
			 l->path);
		return -EINVAL;
	}
	l->epoch = (uint64_t)v;
	if (fresh && v > 1)
		log_notice("ledger: %s: the new ledger's boot epoch starts at %" PRId64 ", "
			   "the floor kept outside the database (min_epoch)", l->path, v);
	else if (!fresh && prev >= 0 && v > prev + 1)
		log_notice("ledger: %s: boot epoch %" PRId64 " raised to %" PRId64 " by the "
			   "floor kept outside the database (min_epoch): the file's own epoch "
			   "was behind, as after a restore from a backup", l->path, prev, v);
	if (opt->sync == LEDGER_SYNC_OFF)
		return exec_or(l, "PRAGMA synchronous = OFF", "cannot configure", err, errlen);
	return 0;
}

/* The size of ledger.db-wal in *size (0 if there is none); 0 or -errno
 * with err filled. */
static int wal_size(struct ledger *l, off_t *size, char *err, size_t errlen)
{
	struct stat sb;
	char *wal;
	int rc = 0;

	*size = 0;
	if (asprintf(&wal, "%s-wal", l->path) < 0) {
		snprintf(err, errlen, "ledger: out of memory");
		return -ENOMEM;
	}
	if (stat(wal, &sb) == 0) {
		*size = sb.st_size;
	} else if (errno != ENOENT) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", wal, strerror(-rc));
	}
	free(wal);
	return rc;
}

/* Refuses a missing or empty ledger.db next to a non-empty WAL (the file
 * was lost or truncated after a crash): SQLite would take it for a new
 * database and delete the WAL, with the last commits in it. 0 or -EINVAL
 * with err filled. */
static int check_lost_db(struct ledger *l, int db_exists, off_t db_size, off_t wal_bytes,
			 char *err, size_t errlen)
{
	if ((db_exists && db_size > 0) || wal_bytes == 0)
		return 0;
	snprintf(err, errlen, "%s is %s but %s-wal holds %lld bytes of its last commits: the "
		 "database file was lost or truncated, and opening it as a new ledger would "
		 "delete them; left untouched: restore ledger.db from a backup and remove "
		 "ledger.db-wal and ledger.db-shm (docs/ledger.md, \"Backups\"), or move "
		 "them away to start a new ledger", l->path,
		 db_exists ? "empty (0 bytes)" : "missing", l->path, (long long)wal_bytes);
	return -EINVAL;
}

/* One writer per ledger: flocks the state dir itself (which cannot be
 * unlinked while in use, unlike a lock file), then ledger.lock, which a
 * ticketd from before the directory lock takes, so that the two exclude
 * each other too. 0 or -errno (-EBUSY: held) with err filled. */
static int lock_dir(struct ledger *l, char *err, size_t errlen)
{
	char *lock = NULL;
	int rc;

	l->dir_fd = open(l->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (l->dir_fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "state dir %s: cannot open it to lock it: %s", l->dir,
			 strerror(-rc));
		goto fail;
	}
	if (flock(l->dir_fd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		if (rc == -EBUSY)
			snprintf(err, errlen, "another ticketd holds state_dir %s: the ledger "
				 "is in use by another process", l->dir);
		else
			snprintf(err, errlen, "state dir %s: cannot lock it: %s", l->dir,
				 strerror(-rc));
		goto fail;
	}
	if (asprintf(&lock, "%s/ledger.lock", l->dir) < 0) {
		lock = NULL;
		rc = -ENOMEM;
		snprintf(err, errlen, "ledger: out of memory");
		goto fail;
	}
	l->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	rc = l->lock_fd < 0 ? -errno : 0;
	if (rc == 0 && flock(l->lock_fd, LOCK_EX | LOCK_NB) < 0)
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
	if (rc < 0) {
		snprintf(err, errlen, "%s: %s", lock, rc == -EBUSY ?
			 "held by an older ticketd: the ledger is in use by another process" :
			 strerror(-rc));
		goto fail;
	}
	free(lock);
	return 0;
fail:
	free(lock);
	return rc;
}

/* Starts the ledger thread with every signal blocked (they belong to the
 * daemon's main thread). 0 or -errno. */
static int start_thread(struct ledger *l)
{
	int rc = thread_start(&l->thread, ledger_main, l);

	if (rc < 0)
		return rc;
	pthread_setname_np(l->thread, "ledger");
	l->thread_started = 1;
	return 0;
}

int ledger_open(const struct ledger_options *opt, struct ledger **out, char *err,
		size_t errlen)
{
	pthread_condattr_t ca;
	struct ledger *l;
	struct stat sb;
	off_t db_size = 0, wal_bytes = 0;
	int db_exists = 0, rc;

	*out = NULL;
	if (errlen)
		err[0] = '\0';
	if (!opt->state_dir || !opt->state_dir[0]) {
		snprintf(err, errlen, "ledger: state_dir is not set");
		return -EINVAL;
	}
	if (opt->idempotency_ttl_s < 0 || opt->idempotency_ttl_s > INT64_MAX / 1000 ||
	    opt->max_db_bytes < 0 || opt->readers > 64 ||
	    (opt->sync != LEDGER_SYNC_FULL && opt->sync != LEDGER_SYNC_OFF)) {
		snprintf(err, errlen, "ledger: invalid options");
		return -EINVAL;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		snprintf(err, errlen, "ledger: out of memory");
		return -ENOMEM;
	}
	l->dir_fd = -1;
	l->lock_fd = -1;
	pthread_mutex_init(&l->qlock, NULL);
	pthread_mutex_init(&l->stats_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->qcond, &ca);
	pthread_condattr_destroy(&ca);
	l->sync = opt->sync;
	l->ttl_ms = (opt->idempotency_ttl_s ? opt->idempotency_ttl_s : LEDGER_DEFAULT_TTL_S) *
		    1000;
	l->now_ms = opt->now_ms ? opt->now_ms : real_ms;
	l->batch_begin = opt->batch_begin;
	l->batch_end = opt->batch_end;
	l->batch_arg = opt->batch_arg;
	l->purge_interval_ns = (l->ttl_ms < PURGE_INTERVAL_MAX_S * 1000 ? l->ttl_ms
					 : PURGE_INTERVAL_MAX_S * 1000) * 1000000LL;
	l->dir = strdup(opt->state_dir);
	if (!l->dir || asprintf(&l->path, "%s/%s", opt->state_dir, LEDGER_DB_NAME) < 0) {
		l->path = NULL;
		snprintf(err, errlen, "ledger: out of memory");
		rc = -ENOMEM;
		goto fail;
	}

	/* The directory: create it, and check it is a writable directory. */
	rc = make_dirs(l->dir);
	if (rc < 0) {
		snprintf(err, errlen, "state dir %s: cannot create: %s", l->dir, strerror(-rc));
		goto fail;
	}
	rc = stat(l->dir, &sb) < 0 ? -errno : S_ISDIR(sb.st_mode) ? 0 : -ENOTDIR;
	if (rc < 0) {
		snprintf(err, errlen, "state dir %s: %s", l->dir, strerror(-rc));
		goto fail;
	}
	if (faccessat(AT_FDCWD, l->dir, W_OK | X_OK, AT_EACCESS) < 0) {
		rc = -errno;
		snprintf(err, errlen, "state dir %s is not writable: %s", l->dir, strerror(-rc));
		goto fail;
	}

	rc = lock_dir(l, err, errlen);
	if (rc < 0)
		goto fail;

	if (stat(l->path, &sb) == 0) {
		db_exists = 1;
		db_size = sb.st_size;
		if (!S_ISREG(sb.st_mode)) {
			rc = -EINVAL;
			snprintf(err, errlen, "%s is not a regular file; left untouched", l->path);
			goto fail;
		}
		if (faccessat(AT_FDCWD, l->path, R_OK | W_OK, AT_EACCESS) < 0) {
			rc = -errno;
			snprintf(err, errlen, "%s is not writable: %s", l->path, strerror(-rc));
			goto fail;
		}
	} else if (errno != ENOENT) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", l->path, strerror(-rc));
		goto fail;
	}

	rc = wal_size(l, &wal_bytes, err, errlen);
	if (rc < 0)
		goto fail;
	rc = check_lost_db(l, db_exists, db_size, wal_bytes, err, errlen);
	if (rc < 0)
		goto fail;

	rc = sqlite3_open_v2(l->path, &l->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			     SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: cannot open: %s", l->path,
			 l->db ? sqlite3_errmsg(l->db) : sqlite3_errstr(rc));
		rc = sql_errno(rc);
		goto fail;
	}
	/* A WAL with frames holds the last commits of a crash: until the open
	 * succeeds, the last close must not checkpoint them, so that a refused
	 * open (a capacity below what was sold, ...) leaves ledger.db and its
	 * WAL byte for byte as they were. Without one a refused open commits
	 * nothing, the close has nothing to copy, and it removes the empty WAL
	 * that reading a WAL-mode file made. */
	rc = wal_bytes > 0 ? sqlite3_db_config(l->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL)
			   : SQLITE_OK;
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: cannot turn off the checkpoint on close: %s",
			 l->path, sqlite3_errstr(rc));
		rc = -EIO;
		goto fail;
	}
	sqlite3_extended_result_codes(l->db, 1);
	sqlite3_busy_timeout(l->db, 5000);
	rc = setup_db(l, opt, err, errlen);
	if (rc < 0)
		goto fail;
	for (int i = 0; i < W_COUNT; i++) {
		rc = sqlite3_prepare_v3(l->db, wsql[i], -1, SQLITE_PREPARE_PERSISTENT,
					&l->st[i], NULL);
		if (rc != SQLITE_OK) {
			snprintf(err, errlen, "%s: cannot prepare: %s", l->path,
				 sqlite3_errmsg(l->db));
			rc = -EIO;
			goto fail;
		}
	}

	l->nreaders = opt->readers ? opt->readers : LEDGER_DEFAULT_READERS;
	l->readers = calloc(l->nreaders, sizeof(*l->readers));
	if (!l->readers) {
		l->nreaders = 0;
		rc = -ENOMEM;
		snprintf(err, errlen, "ledger: out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < l->nreaders; i++)
		pthread_mutex_init(&l->readers[i].lock, NULL);
	for (unsigned i = 0; i < l->nreaders; i++) {
		rc = reader_open(l, &l->readers[i], err, errlen);
		if (rc < 0)
			goto fail; /* reader_close copes with half-open ones */
	}

	/* Opened, and written (the epoch): from now on the last close
	 * checkpoints the WAL into ledger.db and removes it, as usual. Before
	 * the thread starts, which owns the connection after. */
	sqlite3_db_config(l->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);
	l->next_purge_ns = mono_ns(); /* forget stale keys right away */
	rc = start_thread(l);
	if (rc < 0) {
		snprintf(err, errlen, "ledger: cannot start its thread: %s", strerror(-rc));
		goto fail;
	}
	log_info("ledger: %s open, boot epoch %" PRIu64 ", sync %s", l->path, l->epoch,
		 ledger_sync_name(l->sync));
	if (l->sync == LEDGER_SYNC_OFF)
		log_warn("ledger: sync \"off\": confirmed orders are not fsync'ed and a "
			 "power loss can lose the last ones (benchmarks and demos only)");
	*out = l;
	return 0;
fail:
	ledger_free(l);
	return rc;
}

void ledger_close_stats(struct ledger *l, struct ledger_stats *final)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->qlock);
	l->stopping = 1;
	pthread_mutex_unlock(&l->qlock);
	pthread_cond_signal(&l->qcond);
	if (l->thread_started)
		pthread_join(l->thread, NULL);
	if (final)
		ledger_stats(l, final);
	ledger_free(l);
}

void ledger_close(struct ledger *l)
{
	ledger_close_stats(l, NULL);
}
