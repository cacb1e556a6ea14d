/*
 * ledger_sqlite.h: the SQLite engine of the ledger (ledger.h), the one
 * ticketd uses. One database in WAL mode, STATE_DIR/ledger.db, holds
 * everything; docs/ledger.md has the schema. One ledger thread owns the
 * only write connection and commits whatever was queued in one
 * transaction with one sync; reads run on a small pool of read-only
 * connections. Callers reach it through ledger.h's functions with
 * ledger_options.engine NULL or &ledger_sqlite_ops; nothing else of it
 * crosses its border but the file's name and schema version.
 *
 * Its ledger_open fails with -errno and the cause in err for an
 * uncreatable or unwritable dir, a read-only or corrupt database, a file
 * that is not a SQLite database (never touched, never recreated), a newer
 * schema, or a ledger held by another process.
 */
#ifndef TICKETD_LEDGER_SQLITE_H
#define TICKETD_LEDGER_SQLITE_H

#include "ledger.h"

#define LEDGER_DB_NAME "ledger.db"       /* file name inside state_dir */
#define LEDGER_SCHEMA_VERSION 2          /* PRAGMA user_version this build writes;
					  * it upgrades schema 1 files at open */

#endif /* TICKETD_LEDGER_SQLITE_H */
