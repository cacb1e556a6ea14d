# tests/local.mk: every test, benchmark and fuzzer. The tree mirrors the
# source: tests/lib/ tests lib/ modules, tests/daemon/ the daemon's (C unit
# tests on daemon/libticketd.la, Python tests over real HTTP with
# tests/ticketd_test.py as the harness), tests/systemd/ ticketd under the
# systemd protocols and the generated units, tests/load/ the load tools and
# the HTTP benchmark, tests/fuzz/ the libFuzzer targets, tests/bench/ the
# in-process benchmarks. Every test speaks TAP (tests/tap.h, tests/tap.py).
EXTRA_DIST += tests/local.mk tests/tap.h tests/tap.py tests/ticketd_test.py

tk_test_cppflags = $(AM_CPPFLAGS) -I$(top_srcdir)/tests
tk_daemon_test_cppflags = $(tk_test_cppflags) -I$(top_srcdir)/daemon

# ---- the tree itself ----------------------------------------------------------
# No include cycle between modules of daemon/ and lib/, no source file over
# 900 lines, no function over 120 (pmccabe); tests/check_tree.allow lists the
# files and functions still over, each with its reason.
TESTS += tests/check_tree.py
dist_check_SCRIPTS += tests/check_tree.py
EXTRA_DIST += tests/check_tree.allow

# ---- tests/lib: libticket's modules -------------------------------------------
# lib/fmt.c, shared by the lib and daemon modules that format numbers.
check_PROGRAMS += tests/lib/test_fmt
tests_lib_test_fmt_SOURCES = tests/lib/test_fmt.c
tests_lib_test_fmt_CPPFLAGS = $(tk_test_cppflags)
tests_lib_test_fmt_LDADD = lib/libticket.la
TESTS += tests/lib/test_fmt

# The seller cores: conformance of every safe core, thread stress (also run
# under TSan by CI), the combining cores' ordering, and the naive core's
# overselling.
check_PROGRAMS += tests/lib/test_seller_conform tests/lib/test_seller_stress \
	tests/lib/test_seller_combine tests/lib/test_seller_naive
tests_lib_test_seller_conform_SOURCES = tests/lib/test_seller_conform.c
tests_lib_test_seller_conform_CPPFLAGS = $(tk_test_cppflags)
tests_lib_test_seller_conform_LDADD = lib/libticket.la
tests_lib_test_seller_stress_SOURCES = tests/lib/test_seller_stress.c
tests_lib_test_seller_stress_CPPFLAGS = $(tk_test_cppflags)
tests_lib_test_seller_stress_LDADD = lib/libticket.la
tests_lib_test_seller_combine_SOURCES = tests/lib/test_seller_combine.c
tests_lib_test_seller_combine_CPPFLAGS = $(tk_test_cppflags)
tests_lib_test_seller_combine_LDADD = lib/libticket.la
tests_lib_test_seller_naive_SOURCES = tests/lib/test_seller_naive.c
tests_lib_test_seller_naive_CPPFLAGS = $(tk_test_cppflags)
tests_lib_test_seller_naive_LDADD = lib/libticket.la
TESTS += tests/lib/test_seller_conform tests/lib/test_seller_stress \
	tests/lib/test_seller_combine tests/lib/test_seller_naive
STRESS_TESTS += tests/lib/test_seller_stress tests/lib/test_seller_combine

# The ledger: the basics, injected SQLite failures, concurrent writers (a
# stress test), a crash mid-commit, the audit.
tk_ledger_test_cflags = $(AM_CFLAGS) $(SQLITE_CFLAGS)
ledger_tests = tests/lib/test_ledger tests/lib/test_ledger_fail \
	tests/lib/test_ledger_concurrent tests/lib/test_ledger_crash \
	tests/lib/test_ledger_audit
check_PROGRAMS += $(ledger_tests)
TESTS += $(ledger_tests)
STRESS_TESTS += tests/lib/test_ledger_concurrent
EXTRA_DIST += tests/lib/test_ledger_util.h
tests_lib_test_ledger_SOURCES = tests/lib/test_ledger.c
tests_lib_test_ledger_CPPFLAGS = $(tk_test_cppflags)
tests_lib_test_ledger_CFLAGS = $(tk_ledger_test_cflags)
tests_lib_test_ledger_LDADD = lib/libticket.la
tests_lib_test_ledger_fail_SOURCES = tests/lib/test_ledger_fail.c
tests_lib_test_ledger_fail_CPPFLAGS = $(tk_test_cppflags)
tests_lib_test_ledger_fail_CFLAGS = $(tk_ledger_test_cflags)
tests_lib_test_ledger_fail_LDADD = lib/libticket.la $(SQLITE_LIBS)
tests_lib_test_ledger_concurrent_SOURCES = tests/lib/test_ledger_concurrent.c
tests_lib_test_ledger_concurrent_CPPFLAGS = $(tk_test_cppflags)
tests_lib_test_ledger_concurrent_CFLAGS = $(tk_ledger_test_cflags)
tests_lib_test_ledger_concurrent_LDADD = lib/libticket.la
tests_lib_test_ledger_crash_SOURCES = tests/lib/test_ledger_crash.c
tests_lib_test_ledger_crash_CPPFLAGS = $(tk_test_cppflags)
tests_lib_test_ledger_crash_CFLAGS = $(tk_ledger_test_cflags)
tests_lib_test_ledger_crash_LDADD = lib/libticket.la
tests_lib_test_ledger_audit_SOURCES = tests/lib/test_ledger_audit.c
tests_lib_test_ledger_audit_CPPFLAGS = $(tk_test_cppflags)
tests_lib_test_ledger_audit_CFLAGS = $(tk_ledger_test_cflags)
tests_lib_test_ledger_audit_LDADD = lib/libticket.la $(SQLITE_LIBS)

# The worker pool's live controls: resize under load, heartbeat (watchdog).
check_PROGRAMS += tests/lib/test_pool_live
tests_lib_test_pool_live_SOURCES = tests/lib/test_pool_live.c
tests_lib_test_pool_live_CPPFLAGS = $(tk_test_cppflags)
tests_lib_test_pool_live_LDADD = lib/libticket.la
TESTS += tests/lib/test_pool_live
STRESS_TESTS += tests/lib/test_pool_live

# ---- tests/daemon: the daemon's modules, and ticketd over real HTTP -----------
# Unit tests on daemon/libticketd.la: the request and config parsers,
# daemon/sd.c against a notify socket and passed fds of its own, and the
# metrics' per-thread blocks under threads (exact sums, block reuse; TSan).
tk_daemon_test_cflags = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(LIBEVENT_CFLAGS) \
	$(SYSTEMD_CFLAGS)
check_PROGRAMS += tests/daemon/test_request tests/daemon/test_conf \
	tests/daemon/test_sd
tests_daemon_test_request_SOURCES = tests/daemon/test_request.c
tests_daemon_test_request_CPPFLAGS = $(tk_daemon_test_cppflags)
tests_daemon_test_request_CFLAGS = $(tk_daemon_test_cflags)
tests_daemon_test_request_LDADD = daemon/libticketd.la
tests_daemon_test_conf_SOURCES = tests/daemon/test_conf.c
tests_daemon_test_conf_CPPFLAGS = $(tk_daemon_test_cppflags)
tests_daemon_test_conf_CFLAGS = $(tk_daemon_test_cflags)
tests_daemon_test_conf_LDADD = daemon/libticketd.la
tests_daemon_test_sd_SOURCES = tests/daemon/test_sd.c
tests_daemon_test_sd_CPPFLAGS = $(tk_daemon_test_cppflags)
tests_daemon_test_sd_CFLAGS = $(tk_daemon_test_cflags)
tests_daemon_test_sd_LDADD = daemon/libticketd.la
TESTS += tests/daemon/test_request tests/daemon/test_conf tests/daemon/test_sd
if METRICS
check_PROGRAMS += tests/daemon/test_metrics
tests_daemon_test_metrics_SOURCES = tests/daemon/test_metrics.c
tests_daemon_test_metrics_CPPFLAGS = $(tk_daemon_test_cppflags)
tests_daemon_test_metrics_CFLAGS = $(tk_daemon_test_cflags)
tests_daemon_test_metrics_LDADD = daemon/libticketd.la
TESTS += tests/daemon/test_metrics
STRESS_TESTS += tests/daemon/test_metrics
endif

# The real daemon over real HTTP: the API route by route, payment modes,
# concurrent buyers, shutdown, limits, the command line, system calls per
# purchase, thread scheduling, the metrics exposition (strict parser,
# counters after known requests, gauges against /v1/events, metrics off by
# config or build).
ticketd_tests = tests/daemon/test_api.py tests/daemon/test_payment.py \
	tests/daemon/test_concurrency.py tests/daemon/test_shutdown.py \
	tests/daemon/test_limits.py tests/daemon/test_cli.py \
	tests/daemon/test_syscalls.py tests/daemon/test_sched.py \
	tests/daemon/test_metrics_http.py
TESTS += $(ticketd_tests)
# What a new user and operator meet first: --help, -t reporting every
# error, syslog level names, a refused start that leaves nothing on disk,
# the state dir's modes, where the admin token comes from, --audit's rows,
# invalid_json messages a client can read. And the reverse proxy sample
# (conf/nginx-ticketd.conf) passes nginx -t.
TESTS += tests/daemon/test_first_hour.py tests/daemon/test_nginx_conf.sh
EXTRA_DIST += tests/daemon/test_first_hour.py tests/daemon/test_nginx_conf.sh \
	conf/nginx-ticketd.conf
STRESS_TESTS += tests/daemon/test_concurrency.py tests/daemon/test_shutdown.py
EXTRA_DIST += $(ticketd_tests)

# The ledger inside the real daemon: a SIGKILL in the middle of sales (also
# a stress test: CI reruns it under TSan), Idempotency-Key, refunds and the
# operator token, and failures.
ledger_daemon_tests = tests/daemon/test_ledger_crash.py \
	tests/daemon/test_ledger_idempotency.py \
	tests/daemon/test_ledger_refunds.py tests/daemon/test_ledger_failures.py
TESTS += $(ledger_daemon_tests)
STRESS_TESTS += tests/daemon/test_ledger_crash.py
EXTRA_DIST += $(ledger_daemon_tests)

# Overload and hostile input: the tests that flood, starve and feed ticketd
# garbage over real sockets (raw HTTP in hostile_http.py), the operator-route
# probe, and the flood and slowloris measurement (run by hand, for
# docs/robustness.md).
robust_tests = tests/daemon/test_hostile.py \
	tests/daemon/test_hostile_operator.py tests/daemon/test_overload.py
TESTS += $(robust_tests)
EXTRA_DIST += $(robust_tests) tests/daemon/hostile_http.py \
	tests/daemon/overload_measure.py

# ---- tests/systemd: ticketd under systemd's protocols -----------------------
# A minimal socket-activated daemon on daemon/sd.c, for the harness's own test.
check_PROGRAMS += tests/systemd/sd_probe
tests_systemd_sd_probe_SOURCES = tests/systemd/sd_probe.c
tests_systemd_sd_probe_CPPFLAGS = $(tk_daemon_test_cppflags)
tests_systemd_sd_probe_CFLAGS = $(tk_daemon_test_cflags)
tests_systemd_sd_probe_LDADD = daemon/libticketd.la

# The notify-protocol harness (tests/systemd/sdharness.py) against sd_probe;
# the generated units (systemd-analyze verify and security); the man pages.
TESTS += tests/systemd/test_harness.py tests/systemd/test_units.sh \
	tests/systemd/test_man.sh
dist_check_SCRIPTS += tests/systemd/test_harness.py tests/systemd/test_units.sh \
	tests/systemd/test_man.sh
EXTRA_DIST += tests/systemd/sdharness.py tests/systemd/sdticketd.py

# The real ticketd under the same harness: READY/STATUS/STOPPING, passed and
# bad sockets, journald prefixes (test_service); SIGHUP reloads, good, bad
# and under load (test_reload); the watchdog's cadence, a stalled loop and a
# wedged pool (test_watchdog). The last two drive threads: TSan reruns them.
tk_daemon_tests = tests/systemd/test_service.py tests/systemd/test_reload.py \
	tests/systemd/test_watchdog.py
TESTS += $(tk_daemon_tests)
STRESS_TESTS += tests/systemd/test_reload.py tests/systemd/test_watchdog.py
dist_check_SCRIPTS += $(tk_daemon_tests)
tests/systemd/test_service.log tests/systemd/test_reload.log \
	tests/systemd/test_watchdog.log: daemon/ticketd$(EXEEXT)

# make install DESTDIR=... into a temp dir, then make uninstall.
TESTS += tests/systemd/test_install.sh
dist_check_SCRIPTS += tests/systemd/test_install.sh
tests/systemd/test_install.log: daemon/ticketd$(EXEEXT) $(tk_units) $(tk_mans)
# The tests read the generated files: build them first, installed or not.
tests/systemd/test_units.log: $(tk_units) daemon/ticketd$(EXEEXT)
tests/systemd/test_man.log: $(tk_mans)
tests/systemd/test_harness.log: tests/systemd/sd_probe$(EXEEXT)

# ---- tests/load: load tools and the HTTP benchmark ---------------------------
# The wrk Lua scripts (a purchase mix and a flash sale that count replies per
# status), the benchmark runner (`make bench-http`; `make bench` runs it
# too), its Python helper, and a test that the scripts count exactly (no
# speed asserted).
load_scripts = tests/load/wrk_common.lua tests/load/flash_sale.lua \
	tests/load/purchase_mix.lua tests/load/post_static.lua \
	tests/load/loadtool.py
EXTRA_DIST += $(load_scripts) tests/load/bench_http.sh

# Starts the real ticketd and runs the scripts against it; skips without wrk.
TESTS += tests/load/test_load_scripts.sh
dist_check_SCRIPTS += tests/load/test_load_scripts.sh

# The HTTP benchmark: prints tables, exits 1 only on a correctness failure
# (oversold, or the clients' 201s disagreeing with sold). Settings come from
# BENCH_HTTP_* variables (see the script's header), e.g.
#   make bench-http BENCH_HTTP_SECONDS=2 BENCH_HTTP_CORES=mutex
BENCH_RUNNERS += tests/load/bench_http.sh
bench: daemon/ticketd tests/bench/evhttp_hello
bench-http: daemon/ticketd tests/bench/evhttp_hello
	TICKETD='$(abs_top_builddir)/daemon/ticketd' TICKETD_SRCDIR='$(abs_top_srcdir)' \
	EVHTTP_HELLO='$(abs_top_builddir)/tests/bench/evhttp_hello' \
	PYTHON='$(PYTHON)' $(SHELL) $(top_srcdir)/tests/load/bench_http.sh
# The same tables in about a minute (fewer, shorter runs): a smoke test of
# the benchmark, not a measurement.
bench-http-quick: daemon/ticketd tests/bench/evhttp_hello
	BENCH_QUICK=1 TICKETD='$(abs_top_builddir)/daemon/ticketd' \
	TICKETD_SRCDIR='$(abs_top_srcdir)' \
	EVHTTP_HELLO='$(abs_top_builddir)/tests/bench/evhttp_hello' \
	PYTHON='$(PYTHON)' $(SHELL) $(top_srcdir)/tests/load/bench_http.sh
.PHONY: bench-http bench-http-quick
# The nginx ceiling the HTTP benchmark compares ticketd with.
EXTRA_DIST += tests/bench/nginx_ceiling.sh tests/bench/nginx_ceiling.conf

# ---- tests/bench: in-process benchmarks (`make bench`; BENCH_ARGS passes
# options, e.g. --seconds 0.5) ------------------------------------------------
# Every seller core's matrix; group commit's batch sizes and commit latency,
# sync full vs off; evhttp's own ceiling (a fixed reply from one evhttp
# loop), printed next to nginx's so the analysis can tell evhttp's cost from
# ticketd's.
noinst_PROGRAMS += tests/bench/bench_cores tests/bench/bench_ledger \
	tests/bench/evhttp_hello
BENCH_BINS += tests/bench/bench_cores tests/bench/bench_ledger
tests_bench_bench_cores_SOURCES = tests/bench/bench_cores.c
tests_bench_bench_cores_LDADD = lib/libticket.la
tests_bench_bench_ledger_SOURCES = tests/bench/bench_ledger.c
tests_bench_bench_ledger_CPPFLAGS = $(tk_test_cppflags)
tests_bench_bench_ledger_CFLAGS = $(tk_ledger_test_cflags)
tests_bench_bench_ledger_LDADD = lib/libticket.la
tests_bench_evhttp_hello_SOURCES = tests/bench/evhttp_hello.c
tests_bench_evhttp_hello_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS)
tests_bench_evhttp_hello_LDADD = lib/libticket.la $(LIBEVENT_LIBS)
# Side by side with the Go sellers of the Go ticket-seller article (run by
# hand; see docs/benchmarks.md).
EXTRA_DIST += tests/bench/compare_go.sh

# ---- tests/fuzz: libFuzzer targets with their seed corpora -------------------
# The fuzzers are built with clang whatever CC configure chose: each one
# compiles the sources it needs itself, with libFuzzer, ASan and UBSan.
#   make fuzz                      build, then run each target FUZZ_SECONDS
#   make fuzz FUZZ_SECONDS=3600    longer
#   make fuzz-build FUZZ_CC=clang-14
# `make check` runs tests/fuzz/run_fuzz.sh, which does the same (60 s per
# target unless FUZZ_SECONDS is set in the environment).
FUZZ_CC = clang
FUZZ_TARGETS = tests/fuzz/fuzz_request tests/fuzz/fuzz_conf
FUZZ_CFLAGS = -g -O1 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CPPFLAGS = -I$(top_builddir) -I$(top_srcdir)/lib -I$(top_srcdir)/daemon -D_GNU_SOURCE \
	$(JANSSON_CFLAGS) $(LIBEVENT_CFLAGS) $(SQLITE_CFLAGS) $(SYSTEMD_CFLAGS)
# The request target needs only daemon/request.c; the config loader gets
# daemon/conf.c, daemon/conf_listen.c and daemon/request.c and every lib
# source (it may resolve seller cores, name ledger settings, ...), so a new
# lib dependency of conf.c never breaks the fuzzer's link.
tests/fuzz/fuzz_request: tests/fuzz/fuzz_request.c daemon/request.c daemon/request.h config.h
	@$(MKDIR_P) tests/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_CPPFLAGS) -o $@ \
	  $(top_srcdir)/tests/fuzz/fuzz_request.c $(top_srcdir)/daemon/request.c \
	  $(JANSSON_LIBS) $(LIBEVENT_LIBS)
fuzz_conf_sources = daemon/conf.h daemon/conf.c daemon/conf_listen.c \
	daemon/request.h daemon/request.c \
	$(lib_libticket_la_SOURCES)
tests/fuzz/fuzz_conf: tests/fuzz/fuzz_conf.c $(fuzz_conf_sources) config.h
	@$(MKDIR_P) tests/fuzz
	srcs=; for f in $(fuzz_conf_sources); do \
	  case $$f in *.c) srcs="$$srcs $(top_srcdir)/$$f";; esac; done; \
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_CPPFLAGS) -Wno-visibility -pthread -o $@ \
	  $(top_srcdir)/tests/fuzz/fuzz_conf.c $$srcs $(lib_libticket_la_LIBADD)

# Builds the fuzzers, or says why it cannot (no clang, no libFuzzer) and
# leaves them unbuilt; that is not an error.
fuzz-build:
	@if ! command -v $(FUZZ_CC) >/dev/null 2>&1; then \
	  echo "fuzz: $(FUZZ_CC) not found; install clang (and libclang-rt-dev) to fuzz"; \
	elif ! printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' | \
	  $(FUZZ_CC) $(FUZZ_CFLAGS) -x c -o tests/fuzz-probe$(EXEEXT) - >/dev/null 2>&1; then \
	  rm -f tests/fuzz-probe$(EXEEXT); \
	  echo "fuzz: $(FUZZ_CC) cannot link -fsanitize=fuzzer (libclang-rt-dev missing?)"; \
	else \
	  rm -f tests/fuzz-probe$(EXEEXT); \
	  $(MAKE) $(AM_MAKEFLAGS) $(FUZZ_TARGETS); \
	fi

fuzz: fuzz-build
	FUZZ_SECONDS="$${FUZZ_SECONDS:-60}" TICKETD_SRCDIR='$(abs_top_srcdir)' \
	TICKETD_BUILDDIR='$(abs_top_builddir)' FUZZ_NO_BUILD=1 \
	$(SHELL) $(top_srcdir)/tests/fuzz/run_fuzz.sh

TESTS += tests/fuzz/run_fuzz.sh
EXTRA_DIST += tests/fuzz/run_fuzz.sh tests/fuzz/fuzz_request.c \
	tests/fuzz/fuzz_conf.c tests/fuzz/corpus
CLEANFILES += $(FUZZ_TARGETS)
clean-local: clean-fuzz
clean-fuzz:
	rm -rf tests/fuzz/artifacts
.PHONY: fuzz fuzz-build clean-fuzz
