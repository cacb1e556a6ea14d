#!/bin/sh
# compare_go.sh: runs the Go ticket-seller article's own sellers (a copy of
# its Go module, not shipped here: it is the article's code; `go test -bench NoSleep/CapHuge -cpu 1,2`) and bench_cores' nosellout
# scenario in three interleaved rounds on this machine, then prints the
# medians of 3 side by side and the ratio Go ns/op / C ns/op (above 1: the C
# core is faster). A benchmark report, never a pass/fail on speed.
#
#   tests/bench/compare_go.sh BENCH_CORES_BINARY GO_SELLERS_DIR [SECONDS]
#
# Needs `go` (Debian: golang-go); the Go module has no dependencies.
set -eu
bin=${1:?usage: compare_go.sh path/to/bench_cores go-sellers-dir [seconds]}
seed=${2:?usage: compare_go.sh path/to/bench_cores go-sellers-dir [seconds]}
secs=${3:-1}
command -v go >/dev/null || { echo "compare_go: go not installed (apt-get install golang-go)"; exit 0; }
[ -f "$seed/seller_test.go" ] || { echo "compare_go: no Go sellers at $seed"; exit 0; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
cp -r "$seed" "$tmp/seedbench"
chmod -R u+w "$tmp/seedbench"

echo "== machine: $(nproc) CPUs, $(uname -sr), $(lscpu | sed -n 's/^Model name: *//p')"
echo "== go: $(go version)"
# Three rounds, each one Go run then one C run, so that both sides share
# whatever else this machine is doing; medians over the rounds.
for round in 1 2 3; do
	echo "== round $round: go test -run xxx -bench NoSleep/CapHuge -cpu 1,2 -count 1"
	(cd "$tmp/seedbench" && GOCACHE="$tmp/gocache" GOFLAGS=-mod=mod GOPROXY=off \
		go test -run xxx -bench NoSleep/CapHuge -cpu 1,2 -count 1) | tee -a "$tmp/go.txt"
	echo "== round $round: bench_cores --scenarios nosellout --threads 1,2 --seconds $secs"
	"$bin" --scenarios nosellout --threads 1,2 --seconds "$secs" | tee -a "$tmp/c.txt"
	echo "== load: $(cat /proc/loadavg)"
done

# Medians: Go "BenchmarkNoSleep/CapHuge/NAME[-2]  N  X ns/op"; C rows "| nosellout | core | T | ... | ns/op |".
awk '
function median(key,   n, i, j, t, a) {
	n = split(vals[key], a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n ? a[int((n + 1) / 2)] : ""
}
FILENAME ~ /go.txt$/ && /^BenchmarkNoSleep\/CapHuge\// {
	name = $1; sub(/^BenchmarkNoSleep\/CapHuge\//, "", name)
	cpu = 1; if (name ~ /-[0-9]+$/) { cpu = name; sub(/.*-/, "", cpu); sub(/-[0-9]+$/, "", name) }
	vals["go " name " " cpu] = vals["go " name " " cpu] " " $3
}
FILENAME ~ /c.txt$/ && /^\| nosellout/ {
	split($0, f, "|"); core = f[3]; gsub(/ /, "", core); sub(/\(UNSAFE\)/, "", core)
	t = f[4]; gsub(/ /, "", t); ns = f[6]; gsub(/ /, "", ns)
	vals["c " core " " t] = vals["c " core " " t] " " ns
}
END {
	split("mutex:MutexShortCS atomic:AtomicCAS sharded:Sharded8 naive:Naive", pairs, " ")
	printf "\n| C core | Go seller | threads | C ns/op | Go ns/op | Go/C |\n"
	printf "|---|---|---|---|---|---|\n"
	for (t = 1; t <= 2; t++) for (i = 1; i <= 4; i++) {
		split(pairs[i], p, ":")
		c = median("c " p[1] " " t); g = median("go " p[2] " " t)
		if (c == "" || g == "") continue
		printf "| %s | %s | %d | %.1f | %.1f | %.2fx |\n", p[1], p[2], t, c, g, g / c
	}
}' "$tmp/go.txt" "$tmp/c.txt"
