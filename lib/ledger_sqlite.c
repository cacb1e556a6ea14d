/*
 * ledger_sqlite.c: the SQLite engine of the durable order ledger, its
 * ledger_sqlite_ops (ledger.h has the contract and the checks made before
 * a request gets here, docs/ledger.md the schema): opening (the state
 * dir and its lock, the checks of an existing file, the schema, the
 * upgrade from schema 1, the recovery of a lost WAL), closing, and the
 * ops table. The writes are ledger_sqlite_write.c's (one ledger thread
 * owns the write connection and commits a batch per transaction), the
 * reads ledger_sqlite_read.c's (a pool of query_only connections); what
 * crosses between them is in ledger_sqlite_db.h. Nothing crosses threads
 * but the queue, the stats (under stats_lock) and the readers (under
 * their locks).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ledger_sqlite.h"
#include "ledger_sqlite_db.h"
#include "log.h"
#include "thread.h"

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

static int64_t real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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

/* Frees everything of l that exists; the thread must not be running. */
static void ledger_free(struct ledger_sqlite *l)
{
	for (unsigned i = 0; i < l->nreaders; i++)
		ledger_sqlite_reader_close(&l->readers[i]);
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
static int check_existing(struct ledger_sqlite *l, int *fresh, int64_t *version, char *err,
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
static int check_sold(struct ledger_sqlite *l, const struct ledger_options *opt, char *err,
		      size_t errlen)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(l->db, LEDGER_SOLD_SQL, -1, &st, NULL), stop = 0;

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
static int exec_or(struct ledger_sqlite *l, const char *sql, const char *what, char *err,
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
static int upgrade_v1(struct ledger_sqlite *l, char *err, size_t errlen)
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
static int setup_db(struct ledger_sqlite *l, const struct ledger_options *opt, char *err,
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
	l->base.epoch = (uint64_t)v;
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
static int wal_size(struct ledger_sqlite *l, off_t *size, char *err, size_t errlen)
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
static int check_lost_db(struct ledger_sqlite *l, int db_exists, off_t db_size, off_t wal_bytes,
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
static int lock_dir(struct ledger_sqlite *l, char *err, size_t errlen)
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

/* A new, closed ledger with opt's settings; NULL (err filled) on ENOMEM. */
static struct ledger_sqlite *ledger_new(const struct ledger_options *opt, char *err,
					size_t errlen)
{
	pthread_condattr_t ca;
	struct ledger_sqlite *l;

	l = calloc(1, sizeof(*l));
	if (!l) {
		snprintf(err, errlen, "ledger: out of memory");
		return NULL;
	}
	l->base.ops = &ledger_sqlite_ops;
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
		ledger_free(l);
		return NULL;
	}
	return l;
}

/* The directory: creates it, and checks it is a writable directory; 0 or
 * -errno with err filled. */
static int check_dir(struct ledger_sqlite *l, char *err, size_t errlen)
{
	struct stat sb;
	int rc;

	rc = make_dirs(l->dir);
	if (rc < 0) {
		snprintf(err, errlen, "state dir %s: cannot create: %s", l->dir, strerror(-rc));
		return rc;
	}
	rc = stat(l->dir, &sb) < 0 ? -errno : S_ISDIR(sb.st_mode) ? 0 : -ENOTDIR;
	if (rc < 0) {
		snprintf(err, errlen, "state dir %s: %s", l->dir, strerror(-rc));
		return rc;
	}
	if (faccessat(AT_FDCWD, l->dir, W_OK | X_OK, AT_EACCESS) < 0) {
		rc = -errno;
		snprintf(err, errlen, "state dir %s is not writable: %s", l->dir, strerror(-rc));
		return rc;
	}
	return 0;
}

/* Whether ledger.db exists (*exists, *size) and, if so, that it is a
 * writable regular file; 0 or -errno with err filled. */
static int check_db_file(struct ledger_sqlite *l, int *exists, off_t *size, char *err,
			 size_t errlen)
{
	struct stat sb;
	int rc;

	if (stat(l->path, &sb) == 0) {
		*exists = 1;
		*size = sb.st_size;
		if (!S_ISREG(sb.st_mode)) {
			rc = -EINVAL;
			snprintf(err, errlen, "%s is not a regular file; left untouched", l->path);
			return rc;
		}
		if (faccessat(AT_FDCWD, l->path, R_OK | W_OK, AT_EACCESS) < 0) {
			rc = -errno;
			snprintf(err, errlen, "%s is not writable: %s", l->path, strerror(-rc));
			return rc;
		}
	} else if (errno != ENOENT) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", l->path, strerror(-rc));
		return rc;
	}
	return 0;
}

/* ledger_ops.open (the options are checked). */
static int engine_open(const struct ledger_options *opt, struct ledger **out, char *err,
		       size_t errlen)
{
	struct ledger_sqlite *l;
	off_t db_size = 0, wal_bytes = 0;
	int db_exists = 0, rc;

	l = ledger_new(opt, err, errlen);
	if (!l)
		return -ENOMEM;
	rc = check_dir(l, err, errlen);
	if (rc < 0)
		goto fail;
	rc = lock_dir(l, err, errlen);
	if (rc < 0)
		goto fail;
	rc = check_db_file(l, &db_exists, &db_size, err, errlen);
	if (rc < 0)
		goto fail;

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
	rc = ledger_sqlite_prepare_writes(l, err, errlen);
	if (rc < 0)
		goto fail;

	rc = ledger_sqlite_open_readers(l, opt->readers ? opt->readers : LEDGER_DEFAULT_READERS,
					err, errlen);
	if (rc < 0)
		goto fail;

	/* Opened, and written (the epoch): from now on the last close
	 * checkpoints the WAL into ledger.db and removes it, as usual. Before
	 * the thread starts, which owns the connection after. */
	sqlite3_db_config(l->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);
	l->next_purge_ns = mono_ns(); /* forget stale keys right away */
	rc = ledger_sqlite_start_thread(l);
	if (rc < 0) {
		snprintf(err, errlen, "ledger: cannot start its thread: %s", strerror(-rc));
		goto fail;
	}
	log_info("ledger: %s open, boot epoch %" PRIu64 ", sync %s", l->path, l->base.epoch,
		 ledger_sync_name(l->sync));
	if (l->sync == LEDGER_SYNC_OFF)
		log_warn("ledger: sync \"off\": confirmed orders are not fsync'ed and a "
			 "power loss can lose the last ones (benchmarks and demos only)");
	*out = &l->base;
	return 0;
fail:
	ledger_free(l);
	return rc;
}

/* ledger_ops.close. */
static void engine_close(struct ledger *base, struct ledger_stats *final)
{
	struct ledger_sqlite *l = sqlite_of(base);

	pthread_mutex_lock(&l->qlock);
	l->stopping = 1;
	pthread_mutex_unlock(&l->qlock);
	pthread_cond_signal(&l->qcond);
	if (l->thread_started)
		pthread_join(l->thread, NULL);
	if (final)
		ledger_sqlite_stats(base, final);
	ledger_free(l);
}

const struct ledger_ops ledger_sqlite_ops = {
	.name = "sqlite",
	.open = engine_open,
	.close = engine_close,
	.submit = ledger_sqlite_submit,
	.get_order = ledger_sqlite_get_order,
	.idem_lookup = ledger_sqlite_idem_lookup,
	.foreach_sold = ledger_sqlite_foreach_sold,
	.stats = ledger_sqlite_stats,
	.audit = ledger_sqlite_audit,
};
