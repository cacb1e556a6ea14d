/*
 * test_ledger_audit.c: ledger_audit passes a good ledger and catches each
 * kind of damage. A ledger with orders in two events and both pools,
 * refunds and idempotency keys is built through the real API; each case
 * copies it, tampers with the copy by plain SQL (what a careless operator
 * or a bug could do), and checks that the audit fails on that check.
 * Schema 1 files (a table of ticket rows) are made from copies too: the
 * audit checks their rows, and opening one upgrades it to schema 2 only if
 * every row is the derived code, else leaves it as it was.
 */
#include "config.h"

#include <errno.h>
#include <sqlite3.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>

#include "ledger_sqlite.h"
#include "tap.h"
#include "test_ledger_util.h"

/* Turns a schema 2 ledger into the schema 1 file ticketd wrote before:
 * the tickets table of docs/ledger.md ("Schema 1"), holding the codes. */
#define TO_SCHEMA_1 \
	"DROP VIEW tickets;" \
	" CREATE TABLE tickets (code TEXT PRIMARY KEY," \
	" order_id TEXT NOT NULL REFERENCES orders (id)," \
	" seq INTEGER NOT NULL CHECK (seq > 0), UNIQUE (order_id, seq)) WITHOUT ROWID;" \
	" WITH RECURSIVE t (order_id, seq, quantity) AS (SELECT id, 1, quantity FROM orders" \
	" UNION ALL SELECT order_id, seq + 1, quantity FROM t WHERE seq < quantity)" \
	" INSERT INTO tickets SELECT order_id || '-' || seq, order_id, seq FROM t;" \
	" UPDATE meta SET value = 1 WHERE key = 'schema_version'; PRAGMA user_version = 1;"

static const struct ledger_capacity caps[2] = {
	{ .event = "concert", .capacity = { 900, 100 } },
	{ .event = "flash", .capacity = { 10000, 0 } },
};

/* Builds the reference ledger in dir. */
static int build(const char *dir)
{
	char err[512], id[32];
	struct ledger *l = open_dir(dir, err, sizeof(err));
	struct waiter w;
	int bad = 0;

	if (!l) {
		diag("build: %s", err);
		return -1;
	}
	for (int i = 0; i < 40; i++) {
		snprintf(id, sizeof(id), "c-%d", i);
		bad |= put_order(l, id, "concert", i % 4 ? SELLER_GENERAL : SELLER_VIP,
				 i % 4 ? SELLER_GENERAL : SELLER_VIP, 1 + i % 5);
	}
	for (int i = 0; i < 20; i++) {
		snprintf(id, sizeof(id), "f-%d", i);
		bad |= put_order(l, id, "flash", SELLER_GENERAL, SELLER_GENERAL, 2);
	}
	bad |= refund_order(l, "c-3");
	bad |= refund_order(l, "c-4");
	bad |= refund_order(l, "f-0");
	waiter_init(&w, LEDGER_OP_ORDER);
	w.req.order = (struct ledger_order_in){ .id = "k-1", .event = "flash",
						.tier = SELLER_GENERAL,
						.pool = SELLER_GENERAL, .quantity = 1,
						.buyer = "x" };
	w.req.idem.key = "key-1";
	w.req.idem.status = 201;
	bad |= waiter_run(l, &w);
	waiter_fini(&w);
	ledger_close(l);
	return bad ? -1 : 0;
}

/* Copies the reference ledger.db into a new dir base/name; returns it. */
static char *copy_of(const char *base, const char *ref, const char *name)
{
	char *dir, src[600], dst[600], buf[65536];
	FILE *in, *out;
	size_t n;

	if (asprintf(&dir, "%s/%s", base, name) < 0 || mkdir(dir, 0750) < 0)
		exit(99);
	snprintf(src, sizeof(src), "%s/%s", ref, LEDGER_DB_NAME);
	snprintf(dst, sizeof(dst), "%s/%s", dir, LEDGER_DB_NAME);
	in = fopen(src, "rb");
	out = fopen(dst, "wb");
	if (!in || !out)
		exit(99);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		if (fwrite(buf, 1, n, out) != n)
			exit(99);
	fclose(in);
	if (fclose(out) != 0)
		exit(99);
	return dir;
}

static int tamper(const char *dir, const char *sql)
{
	char path[600];
	sqlite3 *db;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", dir, LEDGER_DB_NAME);
	rc = sqlite3_open(path, &db);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		diag("tamper: %s", sqlite3_errmsg(db));
	sqlite3_close(db);
	return rc;
}

/* Runs the audit on dir; the report goes to a memory buffer returned in
 * *text (free it). */
static int audit(const char *dir, const struct ledger_capacity *c, size_t n,
		 struct ledger_audit_report *rep, char **text)
{
	char err[512] = "";
	size_t len;
	FILE *out = open_memstream(text, &len);
	struct ledger_options opt = { .state_dir = dir };
	int rc = ledger_audit(&opt, c, n, out, rep, err, sizeof(err));

	fclose(out);
	if (rc < 0)
		diag("audit error: %s", err);
	return rc;
}

/* One tampering case: copies ref, runs sql, expects the audit to fail with
 * the counter at offset field > 0 and the others as told. */
static void tamper_case(const char *base, const char *ref, const char *name, const char *sql,
			size_t field, const char *what)
{
	struct ledger_audit_report rep;
	char *dir = copy_of(base, ref, name), *text = NULL;
	int rc;

	if (!ok(tamper(dir, sql) == SQLITE_OK, "%s: tampered", what)) {
		free(dir);
		return;
	}
	rc = audit(dir, caps, 2, &rep, &text);
	ok(rc == 1 && *(unsigned *)((char *)&rep + field) > 0 &&
	   strstr(text, "audit: FAILED") && strstr(text, "PROBLEM"),
	   "%s: audit fails on it (%u)", what, *(unsigned *)((char *)&rep + field));
	free(text);
	free(dir);
}

#define F(x) offsetof(struct ledger_audit_report, x)

/* What sqlite_master says name is in dir's ledger ("table", "view"), and
 * the file's user_version in *version. */
static const char *kind_of(const char *dir, const char *name, int64_t *version)
{
	static char kind[16];
	char path[600];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	snprintf(kind, sizeof(kind), "none");
	*version = -1;
	snprintf(path, sizeof(path), "%s/%s", dir, LEDGER_DB_NAME);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT type, (SELECT user_version FROM"
			       " pragma_user_version) FROM sqlite_master WHERE name = ?1",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			snprintf(kind, sizeof(kind), "%s", sqlite3_column_text(st, 0));
			*version = sqlite3_column_int64(st, 1);
		}
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return kind;
}

/* The boot epoch stored in dir's ledger, or -1. */
static int64_t meta_epoch(const char *dir)
{
	char path[600];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	snprintf(path, sizeof(path), "%s/%s", dir, LEDGER_DB_NAME);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'boot_epoch'", -1,
			       &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* Opening a schema 1 file upgrades it to schema 2, with the same orders,
 * tickets and audit figures; a file whose ticket rows are not exactly the
 * derived codes fails the audit, and its open is refused: it stays schema 1,
 * rows and all, with its boot epoch unused. */
static void test_upgrade(const char *base, const char *ref)
{
	static const char underived[] = "ticket row(s) that are not <order id>-<n>";
	static const struct {
		const char *name, *sql, *needle;
	} bad[] = {
		{ "v1-code", "UPDATE tickets SET code = 'VIP-7' WHERE code = 'c-2-1'",
		  underived },
		{ "v1-missing", "DELETE FROM tickets WHERE code = 'c-4-5'",
		  "1 ticket(s) of an order with no row" },
		{ "v1-beyond", "INSERT INTO tickets VALUES ('c-1-9', 'c-1', 9)",
		  underived },
		/* c-1 has 2 tickets: "c-1-1.5" numbered 1.5 is within 1..2 and
		 * makes the count right, but is no derived code. */
		{ "v1-real-seq", "DELETE FROM tickets WHERE code = 'c-1-2';"
		  " INSERT INTO tickets VALUES ('c-1-1.5', 'c-1', 1.5)", underived },
		/* The table rebuilt without its keys, a row held twice in place of
		 * another: the same distinct rows but one, and the right count. */
		{ "v1-twice", "ALTER TABLE tickets RENAME TO t_old;"
		  " CREATE TABLE tickets (code TEXT, order_id TEXT, seq INTEGER);"
		  " INSERT INTO tickets SELECT code, order_id, seq FROM t_old; DROP TABLE t_old;"
		  " INSERT INTO tickets VALUES ('c-6-1', 'c-6', 1)",
		  "1 ticket row(s) more than the orders' quantities" },
	};
	struct ledger_audit_report before, after;
	struct ledger_order *o = NULL;
	char *dir = copy_of(base, ref, "v1"), *text = NULL, err[512];
	struct ledger *l;
	int64_t ver;
	int rc;

	ok(tamper(dir, TO_SCHEMA_1) == SQLITE_OK &&
	   strcmp(kind_of(dir, "tickets", &ver), "table") == 0 && ver == 1,
	   "a schema 1 copy of the ledger, with a tickets table");
	rc = audit(dir, caps, 2, &before, &text);
	ok(rc == 0 && strstr(text, "schema 1") && strstr(text, "ticket codes held twice"),
	   "the audit passes it, checking its %llu ticket rows",
	   (unsigned long long)before.tickets);
	free(text);
	l = open_dir(dir, err, sizeof(err));
	ok(l != NULL, "the ledger opens it (%s)", l ? "upgraded" : err);
	ok(l && ledger_get_order(l, "c-4", &o) == 0 && o->ntickets == 5 &&
	   strcmp(o->tickets[0], "c-4-1") == 0 && strcmp(o->tickets[4], "c-4-5") == 0,
	   "an order's tickets read back the same after the upgrade");
	free(o);
	ledger_close(l);
	{
		const char *kind = kind_of(dir, "tickets", &ver);

		ok(strcmp(kind, "view") == 0 && ver == 2,
		   "the file is schema 2 now: tickets is a view (%s, user_version %lld)",
		   kind, (long long)ver);
	}
	rc = audit(dir, caps, 2, &after, &text);
	ok(rc == 0 && strstr(text, "schema 2") && after.orders == before.orders &&
	   after.tickets == before.tickets && after.confirmed == before.confirmed,
	   "and the audit passes with the same figures (%llu orders, %llu tickets)",
	   (unsigned long long)after.orders, (unsigned long long)after.tickets);
	free(text);
	free(dir);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char sql[1024];

		int64_t epoch = -1, epoch_after = -2;

		dir = copy_of(base, ref, bad[i].name);
		snprintf(sql, sizeof(sql), "%s %s", TO_SCHEMA_1, bad[i].sql);
		ok(tamper(dir, sql) == SQLITE_OK, "%s: a schema 1 file, tampered", bad[i].name);
		rc = audit(dir, caps, 2, &before, &text);
		ok(rc == 1 && strstr(text, "audit: FAILED"),
		   "%s: the audit of it fails (%u not derived, %u wrong counts, %u twice)",
		   bad[i].name, before.underived, before.bad_ticket_counts, before.dup_codes);
		free(text);
		epoch = meta_epoch(dir);
		l = open_dir(dir, err, sizeof(err));
		ok(!l && strstr(err, "cannot upgrade ledger schema 1 to 2") &&
		   strstr(err, bad[i].needle) && strstr(err, "left untouched"),
		   "%s: the open is refused: %s", bad[i].name, l ? "(opened!)" : err);
		ledger_close(l);
		epoch_after = meta_epoch(dir);
		ok(strcmp(kind_of(dir, "tickets", &ver), "table") == 0 && ver == 1 &&
		   epoch_after == epoch && epoch > 0,
		   "%s: the file is still schema 1 with its tickets table, boot epoch %lld",
		   bad[i].name, (long long)epoch_after);
		free(dir);
	}
}

int main(void)
{
	char *base = tmpdir_make(), *ref, *text = NULL, err[512];
	struct ledger_capacity low[2] = { caps[0], caps[1] };
	struct ledger_audit_report rep;
	struct ledger *l;
	int rc;

	if (asprintf(&ref, "%s/ref", base) < 0 || !ok(build(ref) == 0, "reference ledger built"))
		return tap_done();

	rc = audit(ref, caps, 2, &rep, &text);
	ok(rc == 0 && rep.orders == 61 && rep.refunded == 3 && rep.confirmed == 58 &&
	   strstr(text, "audit: OK") && strstr(text, "concert"),
	   "a good ledger passes: %llu orders, %llu tickets",
	   (unsigned long long)rep.orders, (unsigned long long)rep.tickets);
	if (rc != 0)
		diag("%s", text);
	free(text);

	/* While it is open (the daemon running), the audit still reads it. */
	l = open_dir(ref, err, sizeof(err));
	rc = audit(ref, caps, 2, &rep, &text);
	ok(l && rc == 0, "the audit runs beside an open ledger");
	free(text);
	ledger_close(l);

	/* Capacity lowered below sold in the config. */
	low[0].capacity[SELLER_GENERAL] = 10;
	rc = audit(ref, low, 2, &rep, &text);
	ok(rc == 1 && rep.oversold == 1 && strstr(text, "oversold"),
	   "capacity below sold: oversold reported");
	free(text);
	rc = audit(ref, caps, 1, &rep, &text);
	ok(rc == 1 && rep.unknown_events == 1 && strstr(text, "not in the config"),
	   "an event missing from the config is reported");
	free(text);

	test_upgrade(base, ref);
	tamper_case(base, ref, "extra-ticket", TO_SCHEMA_1
		    "INSERT INTO tickets (code, order_id, seq) VALUES ('c-1-9', 'c-1', 9)",
		    F(bad_ticket_counts), "schema 1: an extra ticket for an order");
	tamper_case(base, ref, "dup-code", TO_SCHEMA_1
		    "ALTER TABLE tickets RENAME TO t_old;"
		    " CREATE TABLE tickets (code TEXT, order_id TEXT, seq INTEGER);"
		    " INSERT INTO tickets SELECT code, order_id, seq FROM t_old; DROP TABLE t_old;"
		    " UPDATE tickets SET code = 'c-1-1' WHERE code = 'c-2-1'",
		    F(dup_codes), "schema 1: one ticket code on two orders");
	tamper_case(base, ref, "ghost-order",
		    "INSERT INTO orders VALUES ('ghost', 'concert', 'vip', 'vip', 200, 'x',"
		    " NULL, NULL, 'confirmed', 0, 0)",
		    F(oversold), "an order inserted by hand past vip capacity");
	tamper_case(base, ref, "ghost-order2",
		    "INSERT INTO orders VALUES ('ghost', 'concert', 'vip', 'vip', 2, 'x',"
		    " NULL, NULL, 'confirmed', 0, 0)",
		    F(count_mismatch), "an order inserted by hand: counts disagree");
	tamper_case(base, ref, "orphan", TO_SCHEMA_1
		    "INSERT INTO tickets (code, order_id, seq) VALUES ('zz-1', 'zz', 1)",
		    F(orphan_tickets), "schema 1: a ticket of no order");
	tamper_case(base, ref, "unrefund",
		    "UPDATE orders SET state = 'refunded' WHERE id = 'c-5'",
		    F(refund_mismatch), "an order marked refunded without a refund");
	tamper_case(base, ref, "refund-lost",
		    "DELETE FROM refunds WHERE order_id = 'c-3'",
		    F(refund_mismatch), "a refund record deleted");
	tamper_case(base, ref, "counts",
		    "UPDATE counts SET sold = sold - 1 WHERE event = 'flash'",
		    F(count_mismatch), "the counts table edited");
	tamper_case(base, ref, "general-vip",
		    "UPDATE orders SET pool = 'vip' WHERE id = 'c-1'",
		    F(bad_rows), "a general buyer holding vip tickets");
	tamper_case(base, ref, "idem",
		    "PRAGMA foreign_keys = OFF;"
		    " UPDATE idempotency SET order_id = 'gone' WHERE key = 'key-1'",
		    F(idem_orphans), "an idempotency key of a missing order");

	{
		char *dir = copy_of(base, ref, "garbage"), path[600];
		FILE *f;

		snprintf(path, sizeof(path), "%s/%s", dir, LEDGER_DB_NAME);
		f = fopen(path, "w");
		fputs("not a database, not at all, not even close to one\n", f);
		fclose(f);
		rc = audit(dir, caps, 2, &rep, &text);
		ok(rc < 0, "garbage ledger.db: an error, not a verdict");
		free(text);
		free(dir);
	}
	rc = audit(base, caps, 2, &rep, &text);
	ok(rc == -ENOENT, "no ledger at all: -ENOENT");
	free(text);
	free(ref);
	tmpdir_remove(base);
	return tap_done();
}
