# tests/load/load.mk: load tools and the HTTP benchmark. The wrk Lua scripts
# (a purchase mix and a flash sale that count replies per status), the
# benchmark runner (`make bench-http`; `make bench` runs it too), its Python
# helper, and a test that the scripts count exactly (no speed asserted).
load_scripts = tests/load/wrk_common.lua tests/load/flash_sale.lua \
	tests/load/purchase_mix.lua tests/load/post_static.lua \
	tests/load/loadtool.py
EXTRA_DIST += $(load_scripts) tests/load/bench_http.sh tests/load/load.mk \
	docs/bench-http-run.txt

# Starts the real ticketd and runs the scripts against it; skips without wrk.
TESTS += tests/load/test_load_scripts.sh
dist_check_SCRIPTS += tests/load/test_load_scripts.sh

# The HTTP benchmark: prints tables, exits 1 only on a correctness failure
# (oversold, or the clients' 201s disagreeing with sold). Settings come from
# BENCH_HTTP_* variables (see the script's header), e.g.
#   make bench-http BENCH_HTTP_SECONDS=2 BENCH_HTTP_CORES=mutex
BENCH_RUNNERS += tests/load/bench_http.sh
# evhttp's own ceiling (a fixed reply from one evhttp loop), printed next to
# nginx's so the analysis can tell evhttp's cost from ticketd's.
noinst_PROGRAMS += tests/bench/evhttp_hello
tests_bench_evhttp_hello_SOURCES = tests/bench/evhttp_hello.c
tests_bench_evhttp_hello_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS)
tests_bench_evhttp_hello_LDADD = lib/libticket.la $(LIBEVENT_LIBS)
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
# The nginx ceiling the benchmark compares ticketd with, and the Go sellers
# tests/bench/compare_go.sh compares the C cores with.
EXTRA_DIST += tests/bench/nginx_ceiling.sh tests/bench/nginx_ceiling.conf \
	tests/bench/go-sellers/README.md tests/bench/go-sellers/go.mod \
	tests/bench/go-sellers/seller.go tests/bench/go-sellers/seller_test.go \
	tests/bench/go-sellers/cmd/flashsale/main.go
