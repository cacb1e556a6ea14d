/*
 * ledger_sqlite_db.h: what the SQLite engine's files share inside
 * libticket, and nothing else includes: the schema (docs/ledger.md quotes
 * it), the database's identity and the audit's entry point (with
 * ledger_sqlite_audit.c); the engine's state, struct ledger_sqlite, its
 * statements and small SQLite helpers, and the functions that cross
 * between ledger_sqlite.c (open, close, recovery, the ops table),
 * ledger_sqlite_write.c (the ledger thread, its batches and purge) and
 * ledger_sqlite_read.c (the read pool and its queries). Its file name and
 * schema version are in ledger_sqlite.h, for callers.
 */
#ifndef TICKETD_LEDGER_SQLITE_DB_H
#define TICKETD_LEDGER_SQLITE_DB_H

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ledger.h"

/* PRAGMA application_id of a ticketd ledger: "tick" in ASCII. */
#define LEDGER_APPLICATION_ID 0x7469636b

/* Creates schema LEDGER_SCHEMA_VERSION in an empty database, in one
 * transaction that also sets application_id and user_version. */
extern const char ledger_schema_sql[];

/* A WITH clause naming d (order_id, seq, quantity): every ticket the
 * orders hold, seq = 1..quantity. LEDGER_DERIVED_ROWS selects them as
 * (code, order_id, seq). Schema 2's tickets view is these two; the upgrade
 * from schema 1 and the audit compare a schema 1 tickets table with them. */
#define LEDGER_DERIVED_CTE \
	"WITH RECURSIVE d (order_id, seq, quantity) AS (\n" \
	"        SELECT id, 1, quantity FROM orders WHERE quantity >= 1\n" \
	"        UNION ALL SELECT order_id, seq + 1, quantity FROM d WHERE seq < quantity)\n"
#define LEDGER_DERIVED_ROWS "SELECT order_id || '-' || seq, order_id, seq FROM d"
/* Ticket rows of a schema 1 tickets table that are not derived ones. */
#define LEDGER_UNDERIVED_SQL \
	LEDGER_DERIVED_CTE "SELECT code, order_id, seq FROM tickets EXCEPT " LEDGER_DERIVED_ROWS

/* The engine's audit (ledger_sqlite_audit.c): its ledger_ops.audit. */
int ledger_sqlite_audit(const struct ledger_options *opt, const struct ledger_capacity *caps,
			size_t ncaps, FILE *out, struct ledger_audit_report *rep,
			char *err, size_t errlen);

/* ---- the engine's state, shared by ledger_sqlite{,_write,_read}.c ------------ */

#define PURGE_INTERVAL_MAX_S 60       /* background purge period, at most */

/* The write connection's statements, prepared once. */
enum wstmt {
	W_BEGIN, W_COMMIT, W_ROLLBACK, W_SAVEPOINT, W_RELEASE, W_ROLLBACK_TO,
	W_INS_ORDER, W_INS_COUNT, W_ADD_COUNTS,
	W_DEL_OLD_KEY, W_INS_IDEM,
	W_GET_STATE, W_SET_REFUNDED, W_INS_REFUND,
	W_PURGE_ALL, W_PURGE_CHUNK,
	W_COUNT
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

/* Tickets sold per (event, pool): a reader's R_SOLD, and the open's check
 * of the capacities against the file. */
#define LEDGER_SOLD_SQL \
	"SELECT event, pool, SUM(quantity) FROM orders WHERE state = 'confirmed'" \
	" GROUP BY event, pool ORDER BY event, pool"

/* A read connection's statements. */
enum rstmt { R_ORDER, R_IDEM, R_SOLD, R_COUNT };

struct ledger_reader {
	pthread_mutex_t lock;            /* guards db and st[] */
	sqlite3 *db;
	sqlite3_stmt *st[R_COUNT];
};

struct ledger_sqlite {
	struct ledger base;              /* ops, epoch; must stay first */
	char *dir;
	char *path;                      /* dir/ledger.db */
	enum ledger_sync sync;
	int64_t ttl_ms;
	int64_t (*now_ms)(void);
	void (*batch_begin)(void *arg);  /* around a batch's done()s; may be NULL */
	void (*batch_end)(void *arg);
	void *batch_arg;
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

static inline struct ledger_sqlite *sqlite_of(struct ledger *base)
{
	return (struct ledger_sqlite *)base; /* base is its first member */
}

static inline int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- small SQLite helpers ------------------------------------------------------ */

/* Steps a statement that returns no rows and resets it; SQLITE_OK or the error. */
static inline int run(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* An error of one request (it fails alone), not of the batch. */
static inline int request_error(int rc)
{
	return (rc & 0xff) == SQLITE_CONSTRAINT;
}

/* -errno for a SQLite result code. */
static inline int sql_errno(int rc)
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

static inline int bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

static inline const char *col_text(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);

	return s ? s : "";
}

static inline enum seller_pool pool_of(const char *s)
{
	return strcmp(s, "vip") == 0 ? SELLER_VIP : SELLER_GENERAL;
}

/* ---- across the engine's files ----------------------------------------------- */

/* ledger_sqlite_write.c: ledger_ops.submit; prepares the write connection's
 * statements (0 or -EIO with err filled); starts the ledger thread with
 * every signal blocked (0 or -errno). */
int ledger_sqlite_submit(struct ledger *base, struct ledger_req *head, struct ledger_req *tail,
			 uint64_t n);
int ledger_sqlite_prepare_writes(struct ledger_sqlite *l, char *err, size_t errlen);
int ledger_sqlite_start_thread(struct ledger_sqlite *l);

/* ledger_sqlite_read.c: the ledger_ops reads; opens l->nreaders read
 * connections to l->path (0 or -errno with err filled; on failure the
 * ones made are left for ledger_sqlite_reader_close, which copes with
 * half-open ones). */
int ledger_sqlite_get_order(struct ledger *base, const char *id, struct ledger_order **out);
int ledger_sqlite_idem_lookup(struct ledger *base, const char *key, struct ledger_idem **out);
int ledger_sqlite_foreach_sold(struct ledger *base,
			       int (*cb)(void *arg, const char *event, enum seller_pool pool,
					 int64_t sold),
			       void *arg);
void ledger_sqlite_stats(struct ledger *base, struct ledger_stats *out);
int ledger_sqlite_open_readers(struct ledger_sqlite *l, unsigned n, char *err, size_t errlen);
void ledger_sqlite_reader_close(struct ledger_reader *rd);

#endif /* TICKETD_LEDGER_SQLITE_DB_H */
