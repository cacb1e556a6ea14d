/*
 * ledger_sqlite_db.h: what ledger_sqlite.c and ledger_sqlite_audit.c share
 * inside libticket: the schema (docs/ledger.md quotes it), the database's
 * identity and the audit's entry point. Not for callers outside the SQLite
 * engine.
 */
#ifndef TICKETD_LEDGER_SQLITE_DB_H
#define TICKETD_LEDGER_SQLITE_DB_H

#include "ledger_sqlite.h"

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

#endif /* TICKETD_LEDGER_SQLITE_DB_H */
