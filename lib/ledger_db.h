/*
 * ledger_db.h: what ledger.c and ledger_audit.c share inside libticket: the
 * schema (docs/ledger.md quotes it) and the database's identity. Not for
 * callers outside the ledger module.
 */
#ifndef TICKETD_LEDGER_DB_H
#define TICKETD_LEDGER_DB_H

/* PRAGMA application_id of a ticketd ledger: "tick" in ASCII. */
#define LEDGER_APPLICATION_ID 0x7469636b

/* Creates schema LEDGER_SCHEMA_VERSION in an empty database, in one
 * transaction that also sets application_id and user_version. */
extern const char ledger_schema_sql[];

#endif /* TICKETD_LEDGER_DB_H */
