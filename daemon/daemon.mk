# daemon/daemon.mk: the ticketd program (daemon/), the pure request and
# configuration modules it shares with the tests and fuzzers (lib/request.*,
# lib/conf.*), the sample configuration, the API and architecture docs, and
# the daemon's tests (tests/daemon/, Python over real HTTP).
lib_libticket_la_SOURCES += lib/conf.h lib/conf.c lib/request.h lib/request.c

sbin_PROGRAMS += daemon/ticketd
daemon_ticketd_SOURCES = daemon/main.c \
	daemon/http.h daemon/http.c \
	daemon/job.h \
	daemon/pool.h daemon/pool.c \
	daemon/purchase.h daemon/purchase.c \
	daemon/payment.h daemon/payment.c \
	daemon/catalog.h daemon/catalog.c \
	daemon/orders.h daemon/orders.c \
	daemon/sd.h daemon/sd.c \
	daemon/service.h daemon/service.c
# Connection deadlines evhttp lacks (slowloris, keep-alive idle): issue 7.
daemon_ticketd_SOURCES += daemon/guard.h daemon/guard.c
# Prometheus metrics (GET /metrics): issue 6. ./configure --disable-metrics
# leaves metrics.c out and metrics.h makes every hook an empty inline.
daemon_ticketd_SOURCES += daemon/metrics.h
if METRICS
daemon_ticketd_SOURCES += daemon/metrics.c
endif
# The durable ledger's side of the daemon (issue 4): ids and commits, the
# Idempotency-Key set, the operator token and refunds, replies built off
# the loops.
daemon_ticketd_SOURCES += daemon/idem.h daemon/idem.c daemon/admin.h daemon/admin.c \
	daemon/answer.h daemon/answer.c
daemon_ticketd_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(JANSSON_CFLAGS) $(SYSTEMD_CFLAGS)
daemon_ticketd_LDADD = lib/libticket.la $(LIBEVENT_LIBS) $(JANSSON_LIBS) $(SYSTEMD_LIBS)

EXTRA_DIST += conf/ticketd.conf
dist_doc_DATA += docs/api.md docs/architecture.md

# Tests: the real daemon over real HTTP (tests/ticketd_test.py is the harness).
ticketd_tests = tests/daemon/api.py tests/daemon/payment.py \
	tests/daemon/concurrency.py tests/daemon/shutdown.py \
	tests/daemon/limits.py tests/daemon/cli.py tests/daemon/syscalls.py \
	tests/daemon/sched.py
TESTS += $(ticketd_tests)
STRESS_TESTS += tests/daemon/concurrency.py tests/daemon/shutdown.py
EXTRA_DIST += $(ticketd_tests) tests/ticketd_test.py

# Unit tests of the pure modules (no daemon).
tk_daemon_unit_cppflags = $(AM_CPPFLAGS) -I$(top_srcdir)/tests
tk_daemon_unit_cflags = $(AM_CFLAGS) $(JANSSON_CFLAGS)
check_PROGRAMS += tests/daemon/test_request tests/daemon/test_conf
tests_daemon_test_request_SOURCES = tests/daemon/test_request.c
tests_daemon_test_request_CPPFLAGS = $(tk_daemon_unit_cppflags)
tests_daemon_test_request_CFLAGS = $(tk_daemon_unit_cflags)
tests_daemon_test_request_LDADD = lib/libticket.la
tests_daemon_test_conf_SOURCES = tests/daemon/test_conf.c
tests_daemon_test_conf_CPPFLAGS = $(tk_daemon_unit_cppflags)
tests_daemon_test_conf_CFLAGS = $(tk_daemon_unit_cflags)
tests_daemon_test_conf_LDADD = lib/libticket.la
TESTS += tests/daemon/test_request tests/daemon/test_conf

# Metrics: the exposition over real HTTP (strict parser, counters after
# known requests, gauges against /v1/events, metrics off by config or build),
# and the per-thread blocks under threads (exact sums, block reuse; TSan).
TESTS += tests/daemon/metrics.py
EXTRA_DIST += tests/daemon/metrics.py
if METRICS
check_PROGRAMS += tests/daemon/test_metrics
tests_daemon_test_metrics_SOURCES = tests/daemon/test_metrics.c \
	daemon/metrics.c daemon/metrics.h daemon/catalog.c daemon/catalog.h \
	daemon/pool.c daemon/pool.h
tests_daemon_test_metrics_CPPFLAGS = $(tk_daemon_unit_cppflags) -I$(top_srcdir)/daemon
tests_daemon_test_metrics_CFLAGS = $(tk_daemon_unit_cflags)
tests_daemon_test_metrics_LDADD = lib/libticket.la
TESTS += tests/daemon/test_metrics
STRESS_TESTS += tests/daemon/test_metrics
endif

# What a new user and operator meet first: --help, -t reporting every
# error, syslog level names, a refused start that leaves nothing on disk,
# the state dir's modes, where the admin token comes from, --audit's rows,
# invalid_json messages a client can read.
TESTS += tests/daemon/test_first_hour.py
EXTRA_DIST += tests/daemon/test_first_hour.py
# The reverse proxy sample (conf/nginx-ticketd.conf) passes nginx -t.
TESTS += tests/daemon/test_nginx_conf.sh
EXTRA_DIST += tests/daemon/test_nginx_conf.sh conf/nginx-ticketd.conf
