# tests/robust.mk: overload and hostile input (issue 7). The daemon tests
# that flood, starve and feed ticketd garbage over real sockets, the
# operator-route probe, the libFuzzer targets with their seed corpora, and
# docs/robustness.md with what was measured.
robust_tests = tests/daemon/hostile.py tests/daemon/hostile_operator.py \
	tests/daemon/overload.py
TESTS += $(robust_tests)
EXTRA_DIST += $(robust_tests) tests/daemon/hostile_http.py \
	tests/daemon/overload_measure.py tests/robust.mk
dist_doc_DATA += docs/robustness.md

# ---- fuzzing --------------------------------------------------------------
# The fuzzers are built with clang whatever CC configure chose: each one
# compiles the lib sources it needs itself, with libFuzzer, ASan and UBSan.
#   make fuzz                      build, then run each target FUZZ_SECONDS
#   make fuzz FUZZ_SECONDS=3600    longer
#   make fuzz-build FUZZ_CC=clang-14
# `make check` runs tests/fuzz/run_fuzz.sh, which does the same (60 s per
# target unless FUZZ_SECONDS is set in the environment).
FUZZ_CC = clang
FUZZ_TARGETS = tests/fuzz/fuzz_request tests/fuzz/fuzz_conf
FUZZ_CFLAGS = -g -O1 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CPPFLAGS = -I$(top_builddir) -I$(top_srcdir)/lib -D_GNU_SOURCE \
	$(JANSSON_CFLAGS) $(LIBEVENT_CFLAGS) $(SQLITE_CFLAGS) $(SYSTEMD_CFLAGS)
# The request target needs only lib/request.c; the config loader gets every
# lib source (it resolves seller cores, names ledger settings, ...), so a new
# dependency of conf.c never breaks the fuzzer's link.
tests/fuzz/fuzz_request: tests/fuzz/fuzz_request.c lib/request.c lib/request.h config.h
	@$(MKDIR_P) tests/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_CPPFLAGS) -o $@ \
	  $(top_srcdir)/tests/fuzz/fuzz_request.c $(top_srcdir)/lib/request.c \
	  $(JANSSON_LIBS) $(LIBEVENT_LIBS)
tests/fuzz/fuzz_conf: tests/fuzz/fuzz_conf.c $(lib_libticket_la_SOURCES) config.h
	@$(MKDIR_P) tests/fuzz
	srcs=; for f in $(lib_libticket_la_SOURCES); do \
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
