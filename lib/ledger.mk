# lib/ledger.mk: the durable order ledger in libticket (the interface and
# its SQLite engine), and its tests.
lib_libticket_la_SOURCES += lib/ledger.h lib/ledger.c lib/ledger_hash.c \
	lib/ledger_sqlite.h lib/ledger_sqlite_db.h lib/ledger_sqlite.c lib/ledger_sqlite_audit.c

LEDGER_TEST_CFLAGS = $(AM_CFLAGS) $(SQLITE_CFLAGS) -I$(top_srcdir)/tests
LEDGER_TEST_LDADD = lib/libticket.la

ledger_tests = tests/lib/test_ledger
check_PROGRAMS += $(ledger_tests)
TESTS += $(ledger_tests)
EXTRA_DIST += tests/lib/test_ledger_util.h

tests_lib_test_ledger_SOURCES = tests/lib/test_ledger.c
tests_lib_test_ledger_CFLAGS = $(LEDGER_TEST_CFLAGS)
tests_lib_test_ledger_LDADD = $(LEDGER_TEST_LDADD)

ledger_tests += tests/lib/test_ledger_fail
tests_lib_test_ledger_fail_SOURCES = tests/lib/test_ledger_fail.c
tests_lib_test_ledger_fail_CFLAGS = $(LEDGER_TEST_CFLAGS)
tests_lib_test_ledger_fail_LDADD = $(LEDGER_TEST_LDADD) $(SQLITE_LIBS)

ledger_tests += tests/lib/test_ledger_concurrent
STRESS_TESTS += tests/lib/test_ledger_concurrent
tests_lib_test_ledger_concurrent_SOURCES = tests/lib/test_ledger_concurrent.c
tests_lib_test_ledger_concurrent_CFLAGS = $(LEDGER_TEST_CFLAGS)
tests_lib_test_ledger_concurrent_LDADD = $(LEDGER_TEST_LDADD)

ledger_tests += tests/lib/test_ledger_crash
tests_lib_test_ledger_crash_SOURCES = tests/lib/test_ledger_crash.c
tests_lib_test_ledger_crash_CFLAGS = $(LEDGER_TEST_CFLAGS)
tests_lib_test_ledger_crash_LDADD = $(LEDGER_TEST_LDADD)

ledger_tests += tests/lib/test_ledger_audit
tests_lib_test_ledger_audit_SOURCES = tests/lib/test_ledger_audit.c
tests_lib_test_ledger_audit_CFLAGS = $(LEDGER_TEST_CFLAGS)
tests_lib_test_ledger_audit_LDADD = $(LEDGER_TEST_LDADD) $(SQLITE_LIBS)

# Benchmark: group commit's batch sizes and commit latency, sync full vs off.
noinst_PROGRAMS += tests/bench/bench_ledger
BENCH_BINS += tests/bench/bench_ledger
tests_bench_bench_ledger_SOURCES = tests/bench/bench_ledger.c
tests_bench_bench_ledger_CFLAGS = $(LEDGER_TEST_CFLAGS)
tests_bench_bench_ledger_LDADD = $(LEDGER_TEST_LDADD)

dist_doc_DATA += docs/ledger.md

# The ledger inside the real daemon (tests/daemon/, Python over HTTP): a
# SIGKILL in the middle of sales (also a stress test: CI reruns it under
# TSan), Idempotency-Key, refunds and the operator token, and failures.
ledger_daemon_tests = tests/daemon/ledger_crash.py tests/daemon/ledger_idempotency.py \
	tests/daemon/ledger_refunds.py tests/daemon/ledger_failures.py
TESTS += $(ledger_daemon_tests)
STRESS_TESTS += tests/daemon/ledger_crash.py
EXTRA_DIST += $(ledger_daemon_tests)
