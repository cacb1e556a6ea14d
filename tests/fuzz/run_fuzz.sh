#!/bin/sh
# run_fuzz.sh: builds the libFuzzer targets (make fuzz-build) and runs each
# for FUZZ_SECONDS (default 60) with leak detection on, starting from its
# seed corpus in tests/fuzz/corpus/<target>/ (copied to a temp dir: new
# inputs never land in the source tree). First every seed runs once as a
# regression input. A crash, leak, timeout or sanitizer report fails the
# test; the input that caused it is kept in tests/fuzz/artifacts/ of the
# build tree, to be added to the corpus once fixed. Skips (TAP) when clang
# or libFuzzer is missing. Speaks TAP; prints executions per target.
#   FUZZ_SECONDS=600 sh tests/fuzz/run_fuzz.sh
set -u

srcdir=${TICKETD_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=${TICKETD_BUILDDIR:-$(pwd)}
seconds=${FUZZ_SECONDS:-60}
targets="fuzz_request fuzz_conf"

if [ -z "${FUZZ_NO_BUILD:-}" ]; then
	# A make run from make check: keep the parent's jobserver out of it.
	build_log=$(env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -C "$builddir" fuzz-build 2>&1)
	status=$?
	if [ $status -ne 0 ]; then
		echo "$build_log" | sed 's/^/# /'
		echo "1..1"
		echo "not ok 1 - make fuzz-build failed"
		exit 1
	fi
fi
for t in $targets; do
	if [ ! -x "$builddir/tests/fuzz/$t" ]; then
		reason=$(echo "${build_log:-fuzzers not built}" | grep '^fuzz:' | head -1)
		echo "1..0 # SKIP ${reason:-$t not built (make fuzz-build)}"
		exit 0
	fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/ticketd-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT INT TERM
artifacts="$builddir/tests/fuzz/artifacts"
mkdir -p "$artifacts"

n=0
failed=0
for t in $targets; do
	bin="$builddir/tests/fuzz/$t"
	seeds="$srcdir/tests/fuzz/corpus/${t#fuzz_}"
	corpus="$work/${t}_corpus"
	mkdir -p "$corpus"

	# Every seed, once: the regression inputs.
	n=$((n + 1))
	if "$bin" -runs=0 -detect_leaks=1 -artifact_prefix="$artifacts/$t-" \
		"$seeds" >"$work/$t.seeds.log" 2>&1; then
		echo "ok $n - $t: every seed in tests/fuzz/corpus/${t#fuzz_} runs clean"
	else
		failed=1
		sed 's/^/# /' "$work/$t.seeds.log" | tail -40
		echo "not ok $n - $t: a seed input fails"
	fi

	# Then fuzz for the time given.
	n=$((n + 1))
	"$bin" -max_total_time="$seconds" -detect_leaks=1 -timeout=10 \
		-print_final_stats=1 -artifact_prefix="$artifacts/$t-" \
		"$corpus" "$seeds" >"$work/$t.log" 2>&1
	status=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$t.log")
	cov=$(grep -o 'cov: [0-9]*' "$work/$t.log" | tail -1)
	units=$(ls "$corpus" | wc -l)
	if [ $status -eq 0 ] && ! grep -q 'ERROR: \|runtime error:\|SUMMARY: ' "$work/$t.log"; then
		echo "ok $n - $t: ${seconds}s, ${execs:-?} executions (${rate:-?}/s), ${cov:-cov ?}, $units new corpus inputs, no crash, leak or sanitizer report"
	else
		failed=1
		grep -B2 -A30 'ERROR: \|runtime error:\|SUMMARY: \|fuzz_.*: .*:[0-9]*: ' "$work/$t.log" | head -60 | sed 's/^/# /'
		echo "# the failing input is in $artifacts/ (add it to tests/fuzz/corpus/${t#fuzz_}/ once fixed)"
		echo "not ok $n - $t: fuzzing found a failure (exit $status)"
	fi
done
echo "1..$n"
exit $failed
