# lib/cores.mk: the seller cores in libticket, their tests and benchmark.
lib_libticket_la_SOURCES += lib/seller.h lib/seller.c lib/seller_mutex.c \
	lib/seller_atomic.c lib/seller_sharded.c lib/seller_fc.h lib/seller_fc.c \
	lib/seller_batched.c lib/seller_priority.c lib/seller_naive.c

# Tests: conformance of every safe core, thread stress (also run under TSan
# by CI), the combining cores' ordering, and the naive core's overselling.
SELLER_TEST_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/tests
check_PROGRAMS += tests/lib/test_seller_conform
tests_lib_test_seller_conform_SOURCES = tests/lib/test_seller_conform.c
tests_lib_test_seller_conform_CFLAGS = $(SELLER_TEST_CFLAGS)
tests_lib_test_seller_conform_LDADD = lib/libticket.la
TESTS += tests/lib/test_seller_conform

check_PROGRAMS += tests/lib/test_seller_stress tests/lib/test_seller_combine \
	tests/lib/test_seller_naive
tests_lib_test_seller_stress_SOURCES = tests/lib/test_seller_stress.c
tests_lib_test_seller_stress_CFLAGS = $(SELLER_TEST_CFLAGS)
tests_lib_test_seller_stress_LDADD = lib/libticket.la
tests_lib_test_seller_combine_SOURCES = tests/lib/test_seller_combine.c
tests_lib_test_seller_combine_CFLAGS = $(SELLER_TEST_CFLAGS)
tests_lib_test_seller_combine_LDADD = lib/libticket.la
tests_lib_test_seller_naive_SOURCES = tests/lib/test_seller_naive.c
tests_lib_test_seller_naive_CFLAGS = $(SELLER_TEST_CFLAGS)
tests_lib_test_seller_naive_LDADD = lib/libticket.la
TESTS += tests/lib/test_seller_stress tests/lib/test_seller_combine \
	tests/lib/test_seller_naive
STRESS_TESTS += tests/lib/test_seller_stress tests/lib/test_seller_combine

# Benchmark: `make bench` runs it (BENCH_ARGS passes options, e.g. --seconds 0.5).
noinst_PROGRAMS += tests/bench/bench_cores
BENCH_BINS += tests/bench/bench_cores
tests_bench_bench_cores_SOURCES = tests/bench/bench_cores.c
tests_bench_bench_cores_LDADD = lib/libticket.la
# Side-by-side with the article's Go sellers (run by hand; see docs/benchmarks.md).
EXTRA_DIST += tests/bench/compare_go.sh docs/benchmarks.md
