# lib/local.mk: libticket, the code that knows nothing of ticketd's routes
# or configuration file: logging, threads, number formatting, small-file
# reading, evhttp replies, the worker pool, the seller cores and the durable
# order ledger. The daemon's library (daemon/libticketd.la) and every test
# link it.
noinst_LTLIBRARIES += lib/libticket.la
lib_libticket_la_SOURCES = lib/log.h lib/log.c lib/thread.h lib/thread.c \
	lib/evreply.h lib/evreply.c lib/fmt.h lib/fmt.c lib/file.h lib/file.c \
	lib/pool.h lib/pool.c
# The seller cores behind lib/seller.h.
lib_libticket_la_SOURCES += lib/seller.h lib/seller.c lib/seller_mutex.c \
	lib/seller_atomic.c lib/seller_sharded.c lib/seller_fc.h lib/seller_fc.c \
	lib/seller_batched.c lib/seller_priority.c lib/seller_naive.c
# The durable order ledger: the interface and its SQLite engine
# (lib/ledger.h, docs/ledger.md).
lib_libticket_la_SOURCES += lib/ledger.h lib/ledger.c lib/ledger_hash.c \
	lib/ledger_sqlite.h lib/ledger_sqlite_db.h lib/ledger_sqlite.c lib/ledger_sqlite_audit.c \
	lib/ledger_sqlite_read.c lib/ledger_sqlite_write.c
lib_libticket_la_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(JANSSON_CFLAGS) \
	$(SYSTEMD_CFLAGS) $(SQLITE_CFLAGS)
lib_libticket_la_LIBADD = $(LIBEVENT_LIBS) $(JANSSON_LIBS) $(SQLITE_LIBS) -lm

EXTRA_DIST += lib/local.mk
