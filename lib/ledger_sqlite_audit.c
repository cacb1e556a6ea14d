/*
 * ledger_sqlite_audit.c: the SQLite engine's offline audit (ledger_audit,
 * behind `ticketd --audit`). It opens the ledger read-only (a running
 * daemon is fine: WAL gives it one snapshot), recomputes every figure from
 * the orders, compares them with the configured capacities and with the
 * counts table, and prints a report. A schema 1 file (stored ticket rows,
 * not yet upgraded by a daemon) also has its ticket rows checked against
 * the orders. It shares nothing with a running ledger.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ledger_sqlite.h"
#include "ledger_sqlite_db.h"

#define LIST_MAX 10 /* offending rows printed per check */

/* One (event, pool) line of the report. */
struct tier_row {
	char *event;
	enum seller_pool pool;
	int64_t capacity;          /* -1: not in the config */
	int64_t sold, refunded;    /* summed over the orders */
	int64_t c_sold, c_refunded; /* the counts table */
};

struct audit {
	sqlite3 *db;
	FILE *out;
	struct ledger_audit_report *rep;
	int64_t schema;            /* 1: a tickets table; 2: the tickets view */
	struct tier_row *rows;
	size_t nrows, caprows;
};

/* Finds or adds the row of (event, pool); NULL on ENOMEM. */
static struct tier_row *row_of(struct audit *a, const char *event, enum seller_pool pool)
{
	struct tier_row *r;

	for (size_t i = 0; i < a->nrows; i++)
		if (a->rows[i].pool == pool && strcmp(a->rows[i].event, event) == 0)
			return &a->rows[i];
	if (a->nrows == a->caprows) {
		size_t cap = a->caprows ? a->caprows * 2 : 16;

		r = realloc(a->rows, cap * sizeof(*r));
		if (!r)
			return NULL;
		a->rows = r;
		a->caprows = cap;
	}
	r = &a->rows[a->nrows];
	memset(r, 0, sizeof(*r));
	r->event = strdup(event);
	if (!r->event)
		return NULL;
	r->pool = pool;
	r->capacity = -1;
	a->nrows++;
	return r;
}

static const char *text(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);

	return s ? s : "";
}

/* Runs a one-number query; SQLITE_OK and *v, or the error. */
static int count(struct audit *a, const char *sql, int64_t *v)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(a->db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	*v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Prints up to LIST_MAX rows of sql (columns joined by spaces) under title;
 * *n gets the number of rows. SQLITE_OK or the error. */
static int listing(struct audit *a, const char *title, const char *sql, unsigned *n)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(a->db, sql, -1, &st, NULL);

	*n = 0;
	if (rc != SQLITE_OK)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (++*n > LIST_MAX)
			continue;
		fprintf(a->out, "  PROBLEM %s:", title);
		for (int i = 0; i < sqlite3_column_count(st); i++)
			fprintf(a->out, " %s", text(st, i));
		fputc('\n', a->out);
	}
	sqlite3_finalize(st);
	fprintf(a->out, "%-44s %u%s\n", title, *n, *n > LIST_MAX ? " (first 10 shown)" : "");
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Fills the per-tier rows from caps, the orders and the counts table. */
static int gather_tiers(struct audit *a, const struct ledger_capacity *caps, size_t ncaps)
{
	static const char *const sql[2] = {
		"SELECT event, pool, SUM(CASE WHEN state = 'confirmed' THEN quantity ELSE 0 END),"
		" SUM(CASE WHEN state = 'refunded' THEN quantity ELSE 0 END)"
		" FROM orders GROUP BY event, pool",
		"SELECT event, pool, sold, refunded FROM counts",
	};
	struct tier_row *r;
	sqlite3_stmt *st;
	int rc;

	for (size_t i = 0; i < ncaps; i++) {
		for (int p = 0; p < SELLER_NPOOLS; p++) {
			r = row_of(a, caps[i].event, (enum seller_pool)p);
			if (!r)
				return SQLITE_NOMEM;
			r->capacity = caps[i].capacity[p];
		}
	}
	for (int q = 0; q < 2; q++) {
		rc = sqlite3_prepare_v2(a->db, sql[q], -1, &st, NULL);
		if (rc != SQLITE_OK)
			return rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			const char *pool = text(st, 1);

			r = row_of(a, text(st, 0), strcmp(pool, "vip") == 0 ? SELLER_VIP
									   : SELLER_GENERAL);
			if (!r) {
				rc = SQLITE_NOMEM;
				break;
			}
			*(q ? &r->c_sold : &r->sold) += sqlite3_column_int64(st, 2);
			*(q ? &r->c_refunded : &r->refunded) += sqlite3_column_int64(st, 3);
		}
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return rc;
	}
	return SQLITE_OK;
}

/* Prints the per-tier table and counts its problems. */
static void report_tiers(struct audit *a)
{
	fprintf(a->out, "%-24s %-8s %10s %10s %10s %10s %10s  %s\n", "event", "pool",
		"capacity", "sold", "refunded", "cnt.sold", "cnt.refund", "check");
	for (size_t i = 0; i < a->nrows; i++) {
		struct tier_row *r = &a->rows[i];
		const char *check = "ok";
		char cap[24];

		if (r->capacity < 0)
			snprintf(cap, sizeof(cap), "?");
		else
			snprintf(cap, sizeof(cap), "%" PRId64, r->capacity);
		/* An empty pool of an unknown event, or the vip pool of an
		 * event without one (capacity 0), has nothing to show. */
		if ((r->capacity < 0 || (r->pool == SELLER_VIP && r->capacity == 0)) &&
		    r->sold + r->refunded == 0 && r->c_sold + r->c_refunded == 0)
			continue;
		if (r->capacity < 0 && r->sold > 0) {
			check = "PROBLEM: event not in the config, capacity unknown";
			a->rep->unknown_events++;
		} else if (r->capacity >= 0 && r->sold > r->capacity) {
			check = "PROBLEM: oversold";
			a->rep->oversold++;
		}
		if (r->c_sold != r->sold || r->c_refunded != r->refunded) {
			check = "PROBLEM: counts table disagrees with the orders";
			a->rep->count_mismatch++;
		}
		fprintf(a->out, "%-24s %-8s %10s %10" PRId64 " %10" PRId64 " %10" PRId64
			" %10" PRId64 "  %s\n", r->event, seller_pool_name(r->pool), cap,
			r->sold, r->refunded, r->c_sold, r->c_refunded, check);
	}
}

/* Runs PRAGMA integrity_check, printing what it finds. */
static int integrity(struct audit *a)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(a->db, "PRAGMA integrity_check", -1, &st, NULL);

	if (rc != SQLITE_OK)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (strcmp(text(st, 0), "ok") == 0)
			continue;
		if (++a->rep->integrity <= LIST_MAX)
			fprintf(a->out, "  PROBLEM integrity_check: %s\n", text(st, 0));
	}
	sqlite3_finalize(st);
	fprintf(a->out, "%-44s %s\n", "integrity_check", a->rep->integrity ? "FAILED" : "ok");
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* All the checks, inside one read transaction. */
static int audit_run(struct audit *a, const struct ledger_capacity *caps, size_t ncaps)
{
	struct ledger_audit_report *rep = a->rep;
	enum { EPOCH, ORDERS, CONFIRMED, REFUNDED, TICKETS, KEYS, NFIG };
	static const char *const fig_sql[NFIG] = {
		[EPOCH] = "SELECT value FROM meta WHERE key = 'boot_epoch'",
		[ORDERS] = "SELECT count(*) FROM orders",
		[CONFIRMED] = "SELECT count(*) FROM orders WHERE state = 'confirmed'",
		[REFUNDED] = "SELECT count(*) FROM orders WHERE state = 'refunded'",
		[TICKETS] = "SELECT count(*) FROM tickets",  /* schema 1: rows */
		[KEYS] = "SELECT count(*) FROM idempotency",
	};
	int64_t fig[NFIG];
	int rc;

	rc = integrity(a);
	for (int i = 0; i < NFIG && rc == SQLITE_OK; i++)
		rc = count(a, i == TICKETS && a->schema >= 2 ?
			   "SELECT coalesce(sum(quantity), 0) FROM orders" : fig_sql[i], &fig[i]);
	if (rc != SQLITE_OK)
		return rc;
	rep->orders = (uint64_t)fig[ORDERS];
	rep->confirmed = (uint64_t)fig[CONFIRMED];
	rep->refunded = (uint64_t)fig[REFUNDED];
	rep->tickets = (uint64_t)fig[TICKETS];
	fprintf(a->out, "boot epoch %" PRId64 "; %" PRId64 " orders (%" PRId64 " confirmed, %"
		PRId64 " refunded), %" PRId64 " tickets, %" PRId64 " idempotency keys\n",
		fig[EPOCH], fig[ORDERS], fig[CONFIRMED], fig[REFUNDED], fig[TICKETS], fig[KEYS]);

	rc = gather_tiers(a, caps, ncaps);
	if (rc != SQLITE_OK)
		return rc;
	report_tiers(a);

	const struct {
		const char *title, *sql;
		unsigned *n;
		int schema1;               /* only with a tickets table */
	} checks[] = {
		{ "ticket rows not <order>-<n> (no upgrade)", LEDGER_UNDERIVED_SQL,
		  &rep->underived, 1 },
		{ "ticket codes held twice",
		  "SELECT code, count(*) FROM tickets GROUP BY code HAVING count(*) > 1",
		  &rep->dup_codes, 1 },
		{ "orders whose ticket count != quantity",
		  "SELECT o.id, o.quantity, count(t.code) FROM orders o"
		  " LEFT JOIN tickets t ON t.order_id = o.id"
		  " GROUP BY o.id HAVING count(t.code) != o.quantity",
		  &rep->bad_ticket_counts, 1 },
		{ "tickets of no order",
		  "SELECT t.code, t.order_id FROM tickets t"
		  " LEFT JOIN orders o ON o.id = t.order_id WHERE o.id IS NULL",
		  &rep->orphan_tickets, 1 },
		{ "refunds that do not match their order",
		  "SELECT o.id, o.state, 'has no refund record' FROM orders o"
		  " LEFT JOIN refunds r ON r.order_id = o.id"
		  " WHERE o.state = 'refunded' AND r.order_id IS NULL"
		  " UNION ALL SELECT r.order_id, coalesce(o.state, 'missing'),"
		  " 'has a refund record' FROM refunds r"
		  " LEFT JOIN orders o ON o.id = r.order_id"
		  " WHERE o.state IS NULL OR o.state != 'refunded'",
		  &rep->refund_mismatch, 0 },
		{ "orders with impossible values",
		  "SELECT id, state, tier, pool, quantity FROM orders"
		  " WHERE state NOT IN ('confirmed', 'refunded')"
		  " OR tier NOT IN ('general', 'vip') OR pool NOT IN ('general', 'vip')"
		  " OR (tier = 'general' AND pool = 'vip')"
		  " OR typeof(quantity) != 'integer' OR quantity < 1 OR quantity > 1000",
		  &rep->bad_rows, 0 },
		{ "idempotency keys of missing orders",
		  "SELECT i.key, i.order_id FROM idempotency i"
		  " LEFT JOIN orders o ON o.id = i.order_id"
		  " WHERE i.order_id IS NOT NULL AND o.id IS NULL",
		  &rep->idem_orphans, 0 },
	};
	if (a->schema >= 2)
		fprintf(a->out, "%-44s %s\n", "ticket codes",
			"derived from the orders (schema 2): unique by construction");
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]) && rc == SQLITE_OK; i++)
		if (!checks[i].schema1 || a->schema == 1)
			rc = listing(a, checks[i].title, checks[i].sql, checks[i].n);
	return rc;
}

static unsigned problems(const struct ledger_audit_report *r)
{
	return r->integrity + r->oversold + r->unknown_events + r->underived + r->dup_codes +
	       r->bad_ticket_counts + r->orphan_tickets + r->refund_mismatch +
	       r->count_mismatch + r->bad_rows + r->idem_orphans;
}

int ledger_sqlite_audit(const struct ledger_options *opt, const struct ledger_capacity *caps,
			size_t ncaps, FILE *out, struct ledger_audit_report *rep,
			char *err, size_t errlen)
{
	const char *state_dir = opt->state_dir;
	struct audit a = { .out = out, .rep = rep };
	int64_t app = 0, ver = 0;
	char *path = NULL;
	struct stat sb;
	int rc;

	if (asprintf(&path, "%s/%s", state_dir, LEDGER_DB_NAME) < 0) {
		snprintf(err, errlen, "audit: out of memory");
		return -ENOMEM;
	}
	rc = stat(path, &sb) < 0 ? -errno : S_ISREG(sb.st_mode) ? 0 : -EINVAL;
	if (rc < 0) {
		snprintf(err, errlen, "%s: no ledger here (%s)", path,
			 rc == -EINVAL ? "not a regular file" : strerror(-rc));
		free(path);
		return rc;
	}
	rc = sqlite3_open_v2(path, &a.db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK)
		sqlite3_busy_timeout(a.db, 5000);
	/* One read transaction from here on: the schema version and every
	 * figure come from one snapshot (a daemon may upgrade it meanwhile). */
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(a.db, "BEGIN", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = count(&a, "PRAGMA application_id", &app);
	if (rc == SQLITE_OK)
		rc = count(&a, "PRAGMA user_version", &ver);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: cannot read: %s", path,
			 a.db ? sqlite3_errmsg(a.db) : sqlite3_errstr(rc));
		rc = -EIO;
		goto out;
	}
	if (app != LEDGER_APPLICATION_ID || ver < 1 || ver > LEDGER_SCHEMA_VERSION) {
		snprintf(err, errlen, "%s: not a ticketd ledger this build can read "
			 "(application_id %#" PRIx64 ", schema %" PRId64 ", known %d)", path,
			 (uint64_t)app, ver, LEDGER_SCHEMA_VERSION);
		rc = -EINVAL;
		goto out;
	}
	fprintf(out, "ledger %s: schema %" PRId64 "%s\n", path, ver,
		ver < LEDGER_SCHEMA_VERSION ? " (a daemon upgrades it at start)" : "");
	a.schema = ver;
	rc = audit_run(&a, caps, ncaps);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: audit query failed: %s", path, sqlite3_errmsg(a.db));
		rc = -EIO;
		goto out;
	}
	if (problems(a.rep))
		fprintf(out, "audit: FAILED, %u problem(s)\n", problems(a.rep));
	else
		fprintf(out, "audit: OK\n");
	rc = problems(a.rep) ? 1 : 0;
out:
	for (size_t i = 0; i < a.nrows; i++)
		free(a.rows[i].event);
	free(a.rows);
	sqlite3_close(a.db); /* ends the read transaction too */
	free(path);
	return rc;
}
