/*
 * test_ledger_fail.c: the ledger when things go wrong, with real failures.
 *
 *  - Disk full: a ledger capped by max_db_bytes (PRAGMA max_page_count, so
 *    SQLite really runs out of pages; this works as root too) fills up; a
 *    whole batch then fails, every request in it gets -ENOSPC and nothing
 *    of it is stored; after expired keys are purged (space comes back) the
 *    same ledger commits again.
 *  - Start-up refusals, each with a clear message and the file untouched:
 *    garbage in ledger.db (long and short), a corrupted page of a real
 *    ledger, a SQLite file that is not a ledger, a newer schema, the db
 *    path being a directory, a state dir below a regular file (ENOTDIR)
 *    and below /proc.
 *  - Permissions: an unwritable state dir and a read-only ledger.db. Root
 *    ignores file modes, so when run as root the open happens in a child
 *    that first drops to uid/gid 65534; if it can't, those points are
 *    skipped (and say so).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "ledger_sqlite.h"
#include "tap.h"
#include "test_ledger_util.h"

static int write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	int rc;

	if (!f)
		return -1;
	rc = fwrite(buf, 1, len, f) == len ? 0 : -1;
	return fclose(f) == 0 ? rc : -1;
}

static int exists(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0;
}

/* Opens dir expecting a refusal whose message contains want, and checks
 * that ledger.db is byte for byte what it was and got no -wal. */
static void expect_refusal(const char *dir, const char *want, const char *what)
{
	char err[512], path[600], wal[620];
	size_t n0 = 0, n1 = 0;
	char *before, *after;
	struct ledger *l;

	snprintf(path, sizeof(path), "%s/%s", dir, LEDGER_DB_NAME);
	snprintf(wal, sizeof(wal), "%s-wal", path);
	before = read_file(path, &n0);
	l = open_dir(dir, err, sizeof(err));
	ok(l == NULL && strstr(err, want) != NULL, "%s: refused: %s", what, l ? "(opened!)" : err);
	ledger_close(l);
	after = read_file(path, &n1);
	ok(before && after && n0 == n1 && memcmp(before, after, n0) == 0 && !exists(wal),
	   "%s: ledger.db untouched (%zu bytes), no -wal", what, n0);
	free(before);
	free(after);
}

/* Runs sql on dir/ledger.db with a plain connection (a tamperer's tool). */
static int raw_sql(const char *dir, const char *sql)
{
	char path[600];
	sqlite3 *db;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", dir, LEDGER_DB_NAME);
	rc = sqlite3_open(path, &db);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_close(db);
	return rc;
}

/* Makes dir/name a fresh ledger holding n orders; returns the malloc'd dir. */
static char *make_ledger(const char *base, const char *name, int n)
{
	char *dir, err[512], id[32];
	struct ledger *l;

	if (asprintf(&dir, "%s/%s", base, name) < 0)
		exit(99);
	l = open_dir(dir, err, sizeof(err));
	if (!l) {
		diag("make_ledger %s: %s", dir, err);
		return dir;
	}
	for (int i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "ord-%04d", i);
		put_order(l, id, "concert", SELLER_GENERAL, SELLER_GENERAL, 5);
	}
	ledger_close(l);
	return dir;
}

/* ---- disk full ---------------------------------------------------------------- */

/* A done() that holds the ledger thread until released, so that everything
 * submitted meanwhile lands in the next batch together. */
struct gate {
	struct waiter w;
	pthread_mutex_t lock;            /* guards entered, open */
	pthread_cond_t cond;
	int entered;                     /* the ledger thread is in gate_done */
	int open;
};

static void gate_done(struct ledger_req *r, int result)
{
	struct gate *g = (struct gate *)r;

	pthread_mutex_lock(&g->lock);
	g->entered = 1;
	pthread_cond_broadcast(&g->cond);
	while (!g->open)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
	waiter_done(r, result);
}

/* Waits until the ledger thread is held in gate_done. */
static void gate_wait_entered(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	while (!g->entered)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

static void gate_release(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->open = 1;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static void test_disk_full(const char *base)
{
	enum { NB = 8 };
	struct ledger_options o = { .now_ms = fake_clock, .max_db_bytes = 40 * 4096 };
	static char body[3000], keys[4096][16], ids[NB][16];
	struct ledger_stats st0, st1;
	struct ledger_order *ord;
	struct waiter w, batch[NB];
	struct gate g;
	char err[512], *dir;
	struct ledger *l;
	int stored = 0, rc = 0, all_enospc = 1, absent = 1;

	if (asprintf(&dir, "%s/full", base) < 0)
		exit(99);
	o.state_dir = dir;
	if (!ok(ledger_open(&o, &l, err, sizeof(err)) == 0, "open a ledger capped at 160 KiB"))
		goto out;
	memset(body, 'x', sizeof(body) - 1);
	/* Fill it with idempotency records until SQLite runs out of pages. */
	for (int i = 0; i < 4096; i++) {
		snprintf(keys[i], sizeof(keys[i]), "fill-%d", i);
		waiter_init(&w, LEDGER_OP_RESULT);
		w.req.idem.key = keys[i];
		w.req.idem.status = 409;
		w.req.idem.body = body;
		rc = waiter_run(l, &w);
		waiter_fini(&w);
		if (rc < 0)
			break;
		stored++;
	}
	ok(stored > 0 && rc == -ENOSPC, "filled after %d records: -ENOSPC (%d)", stored, rc);

	/* One batch: a big record that can't fit and small orders that could. */
	ledger_stats(l, &st0);
	memset(&g, 0, sizeof(g));
	pthread_mutex_init(&g.lock, NULL);
	pthread_cond_init(&g.cond, NULL);
	waiter_init(&g.w, LEDGER_OP_PURGE); /* the gate: a no-op purge */
	g.w.req.done = gate_done;
	ledger_submit(l, &g.w.req);
	gate_wait_entered(&g);
	for (int i = 0; i < NB; i++) {
		snprintf(ids[i], sizeof(ids[i]), "full-%d", i);
		waiter_init(&batch[i], i == NB / 2 ? LEDGER_OP_RESULT : LEDGER_OP_ORDER);
		batch[i].req.order = (struct ledger_order_in){
			.id = ids[i], .event = "concert", .tier = SELLER_GENERAL,
			.pool = SELLER_GENERAL, .quantity = 1, .buyer = "frank",
		};
		batch[i].req.idem.key = i == NB / 2 ? "too-big" : NULL;
		batch[i].req.idem.status = 409;
		batch[i].req.idem.body = body;
		ledger_submit(l, &batch[i].req);
	}
	gate_release(&g);
	waiter_wait(&g.w);
	for (int i = 0; i < NB; i++) {
		rc = waiter_wait(&batch[i]);
		all_enospc &= rc == -ENOSPC && batch[i].called == 1;
		waiter_fini(&batch[i]);
		if (ledger_get_order(l, ids[i], &ord) != -ENOENT) {
			absent = 0;
			free(ord);
		}
	}
	ok(all_enospc, "every request of the failed batch got -ENOSPC, once");
	ok(absent, "none of the batch's orders is stored");
	ledger_stats(l, &st1);
	ok(st1.failed_batches == st0.failed_batches + 1 && st1.batches == st0.batches + 2,
	   "stats: one more failed batch (%llu)", (unsigned long long)st1.failed_batches);

	/* The disk "recovers": expired keys are purged and their pages reused. */
	atomic_fetch_add(&fake_now_ms, (int64_t)LEDGER_DEFAULT_TTL_S * 1000 + 1);
	waiter_init(&w, LEDGER_OP_PURGE);
	rc = waiter_run(l, &w);
	waiter_fini(&w);
	ok(rc >= stored, "purge freed space (%d keys)", rc);
	ok(put_order(l, "after-1", "concert", SELLER_GENERAL, SELLER_GENERAL, 2) == 0 &&
	   ledger_get_order(l, "after-1", &ord) == 0, "the same ledger commits again");
	free(ord);
	pthread_mutex_destroy(&g.lock);
	pthread_cond_destroy(&g.cond);
	waiter_fini(&g.w);
	ledger_close(l);
out:
	free(dir);
}

/* ---- refusals at start-up ----------------------------------------------------- */

static void test_not_a_database(const char *base)
{
	static const char text[] = "order,buyer\n1,alice\n";
	char *dir, path[600], big[8192];

	if (asprintf(&dir, "%s/garbage", base) < 0)
		exit(99);
	mkdir(dir, 0750);
	snprintf(path, sizeof(path), "%s/%s", dir, LEDGER_DB_NAME);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7 + 3);
	write_file(path, big, sizeof(big));
	expect_refusal(dir, "not a SQLite database", "8 KiB of garbage");
	write_file(path, text, sizeof(text) - 1);
	expect_refusal(dir, "not a SQLite database", "a short CSV file");
	free(dir);
}

/* The root page number of table name in dir's ledger; 0 on error. */
static int root_page(const char *dir, const char *name)
{
	char path[600];
	sqlite3_stmt *st = NULL;
	sqlite3 *db;
	int page = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, LEDGER_DB_NAME);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT rootpage FROM sqlite_master WHERE name = ?1", -1,
			       &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			page = sqlite3_column_int(st, 0);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return page;
}

static void test_corrupt_page(const char *base)
{
	char *dir = make_ledger(base, "corrupt", 300), path[600];
	unsigned char junk[16];
	int fd, page = root_page(dir, "orders");

	snprintf(path, sizeof(path), "%s/%s", dir, LEDGER_DB_NAME);
	memset(junk, 0xa5, sizeof(junk));
	/* Smash the b-tree header of the orders table's root page (page 1,
	 * the file header, stays intact so SQLite still opens the file). */
	fd = open(path, O_WRONLY);
	ok(page > 1 && fd >= 0 &&
	   pwrite(fd, junk, sizeof(junk), (off_t)(page - 1) * 4096) == (ssize_t)sizeof(junk),
	   "smashed the header of page %d (orders root) of a real ledger", page);
	if (fd >= 0)
		close(fd);
	expect_refusal(dir, "corrupt", "a corrupted page");
	free(dir);
}

static void test_foreign_and_newer(const char *base)
{
	char *dir, *dir2, err[512], sql[64];
	struct ledger *l;

	if (asprintf(&dir, "%s/foreign", base) < 0)
		exit(99);
	mkdir(dir, 0750);
	ok(raw_sql(dir, "CREATE TABLE t (x); INSERT INTO t VALUES (1)") == SQLITE_OK,
	   "made a SQLite file of another application");
	expect_refusal(dir, "not a ticketd ledger", "another application's database");
	free(dir);

	dir2 = make_ledger(base, "newer", 1);
	ok(raw_sql(dir2, "PRAGMA user_version = 99") == SQLITE_OK, "bumped user_version to 99");
	expect_refusal(dir2, "newer", "schema 99");
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", LEDGER_SCHEMA_VERSION);
	ok(raw_sql(dir2, sql) == SQLITE_OK, "set it back to %d", LEDGER_SCHEMA_VERSION);
	l = open_dir(dir2, err, sizeof(err));
	ok(l != NULL, "and the ledger opens again (%s)", l ? "ok" : err);
	ledger_close(l);
	free(dir2);
}

static void test_bad_paths(const char *base)
{
	char dir[700], file[600], err[512];
	struct ledger *l;

	snprintf(file, sizeof(file), "%s/plainfile", base);
	write_file(file, "x", 1);
	snprintf(dir, sizeof(dir), "%s/state", file);
	l = open_dir(dir, err, sizeof(err));
	ok(!l && strstr(err, "cannot create") && strstr(err, "Not a directory"),
	   "state dir below a regular file: %s", err);
	ledger_close(l);
	ok(!open_dir(file, err, sizeof(err)) && strstr(err, "Not a directory"),
	   "state dir that is a regular file: %s", err);
	l = open_dir("/proc/ticketd-ledger-test/state", err, sizeof(err));
	ok(!l && strstr(err, "cannot create"), "state dir below /proc: %s", err);
	ledger_close(l);

	snprintf(dir, sizeof(dir), "%s/dbdir", base);
	snprintf(file, sizeof(file), "%.500s/%s", dir, LEDGER_DB_NAME);
	mkdir(dir, 0750);
	mkdir(file, 0750);
	l = open_dir(dir, err, sizeof(err));
	ok(!l && strstr(err, "not a regular file"), "ledger.db is a directory: %s", err);
	ledger_close(l);
}

/* ---- permissions -------------------------------------------------------------- */

/* Opens dir in a child without write permission (as uid 65534 when root).
 * Returns 0 if the child's open was refused with err filled, 1 if it
 * opened, -1 if the child could not drop privileges. */
static int open_unprivileged(const char *dir, char *err, size_t errlen)
{
	int fds[2], status;
	ssize_t n;
	pid_t pid;

	if (pipe(fds) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		struct ledger *l;
		char e[512] = "";

		close(fds[0]);
		if (geteuid() == 0 && (setgroups(0, NULL) < 0 || setgid(65534) < 0 ||
				       setuid(65534) < 0))
			_exit(3);
		l = open_dir(dir, e, sizeof(e));
		if (write(fds[1], e, strlen(e)) < 0)
			_exit(4);
		_exit(l ? 1 : 0);
	}
	close(fds[1]);
	n = read(fds[0], err, errlen - 1);
	err[n > 0 ? n : 0] = '\0';
	close(fds[0]);
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) > 1)
		return -1;
	return WEXITSTATUS(status);
}

static void test_permissions(const char *base)
{
	char *dir = make_ledger(base, "perm", 3), path[600], lock[600], err[512];
	int rc;

	snprintf(path, sizeof(path), "%s/%s", dir, LEDGER_DB_NAME);
	snprintf(lock, sizeof(lock), "%s/ledger.lock", dir);
	chmod(base, 0755); /* let uid 65534 in */

	chmod(dir, 0555);
	rc = open_unprivileged(dir, err, sizeof(err));
	if (rc < 0) {
		ok(1, "unwritable state dir # SKIP cannot drop privileges");
	} else {
		ok(rc == 0 && strstr(err, "is not writable"), "unwritable state dir: %s", err);
	}

	chmod(dir, 0777);
	chmod(lock, 0666);
	chmod(path, 0444);
	rc = open_unprivileged(dir, err, sizeof(err));
	if (rc < 0) {
		ok(1, "read-only ledger.db # SKIP cannot drop privileges");
	} else {
		ok(rc == 0 && strstr(err, LEDGER_DB_NAME) && strstr(err, "not writable"),
		   "read-only ledger.db: %s", err);
	}
	chmod(path, 0640);
	chmod(dir, 0750);
	free(dir);
}

int main(void)
{
	char *base = tmpdir_make();

	test_disk_full(base);
	test_not_a_database(base);
	test_corrupt_page(base);
	test_foreign_and_newer(base);
	test_bad_paths(base);
	test_permissions(base);
	tmpdir_remove(base);
	return tap_done();
}
