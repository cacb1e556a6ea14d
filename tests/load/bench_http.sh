#!/bin/sh
# bench_http.sh: ticketd's HTTP benchmark (`make bench-http`). A program that
# prints tables; it never passes or fails on a speed. It exits 1 only when a
# correctness check fails: a ticket sold beyond capacity, or the 201 replies
# the clients counted disagreeing with what the daemon says it sold.
#
# For every safe seller core (`ticketd --list-sellers`) it starts ticketd with
# a fresh state dir and a generated config on 127.0.0.1:0, and drives it with
# wrk -t1 -c64 -d10s --latency:
#   1. the ceiling: nginx answering a fixed body (tests/bench/
#      nginx_ceiling.sh), and each core under the very same wrk command and request
#      body (a static script), pinned and unpinned, plus one core unpinned
#      with the threading conf/ticketd.conf ships (io_threads 2, 2 workers);
#      ticketd as a ratio of it;
#      nginx and evhttp_hello run before and after the ticketd rows, and
#      the ratios are of the higher run (likewise nginx runs twice under the
#      counting script and three times for the flash sale), so that one slow
#      reference run on this noisy machine cannot flatter ticketd;
#   2. the matrix: core x payment latency (0, 1 ms, async) x ledger sync (off,
#      full; "n/a" when the daemon has no "ledger" key) with the counting
#      script (flash_sale.lua, which drains so its counts are exact): req/s,
#      p50, p99, RSS, tickets sold (GET /v1/events), oversold, and the
#      clients' 201 tickets minus sold (must be 0);
#   3. the flash sale: 10,000 tickets, 100,000 purchases from 64 connections,
#      time to serve them, sold proven by the 201s, GET and `--audit`; and
#      nginx's time for 100,000 requests;
#   4. memory: RSS idle and the cost of each open idle connection.
#
# Pinning: wrk takes a core of its own. By default ("split") ticketd and nginx
# run on CPU 0 and wrk on CPU 1 (taskset), so the two never fight for a core;
# the ceiling section also runs unpinned.
#
# The full run takes about 15 minutes. BENCH_QUICK=1 (make bench-http-quick)
# prints the same sections and matrix in about a minute, with fewer and
# shorter runs: 1 s per wrk run, one worker count (1), the ceiling with the
# pinning of $BENCH_HTTP_PIN only, a flash sale of 2,000 tickets and 20,000
# purchases, 200 idle connections, no raw wrk output. Its figures are a smoke test, not a
# measurement: the recorded ones (docs/benchmarks.md) come from full runs.
# Any BENCH_HTTP_* set explicitly wins over the quick defaults.
#
# Environment (all optional):
#   TICKETD                 the daemon binary (make sets it)
#   TICKETD_SRCDIR          the source tree (for the scripts)
#   BENCH_QUICK             1 = the quick mode above (0)
#   BENCH_HTTP_SECONDS      wrk duration per run (10; quick 1)
#   BENCH_HTTP_CORES        cores to run ("" = every safe core)
#   BENCH_HTTP_LATENCIES    payment latencies in ms for the matrix ("0 1")
#   BENCH_HTTP_PIN          split | none (split)
#   BENCH_HTTP_IO_THREADS   ticketd's event loops (1)
#   BENCH_HTTP_WORKERS      worker counts to run, a list ("1 0"; quick "1"): 1 is the
#                           pool the daemon defaults to, 0 reserves on the loop
#                           (no hand-off); every section runs each of them
#   BENCH_HTTP_FLASH_TICKETS, BENCH_HTTP_FLASH_REQUESTS (10000, 100000;
#                           quick 2000, 20000)
#   BENCH_HTTP_FLASH_PAYMENT_MS  payment latency in the flash sale (1, as
#                           in the flash sale ticketd was designed for)
#   BENCH_HTTP_FLASH_CONFIGS  the flash sale's "payment_ms:sync" runs
#                           ("1:full 0:off": that sale, then the
#                           throughput target's settings)
#   BENCH_HTTP_IDLE_CONNS   idle connections for the per-connection cost (1000;
#                           quick 200)
#   BENCH_HTTP_CEILING      the nginx ceiling script (tests/bench/nginx_ceiling.sh)
#   BENCH_HTTP_RAW          1 = append every run's raw wrk output (1; quick 0)
#   BENCH_HTTP_KEEP         a directory to copy the configs, logs and raw
#                           output to
#   EVHTTP_HELLO            tests/bench/evhttp_hello (make sets it): evhttp's
#                           own ceiling, printed next to nginx's
#   BENCH_HTTP_NO_METRICS   a ticketd built with configure --disable-metrics:
#                           section 5 adds it as "compiled out"
set -u

here=$(cd "$(dirname "$0")" && pwd)
srcdir=${TICKETD_SRCDIR:-$(cd "$here/../.." && pwd)}
loaddir=$srcdir/tests/load
ticketd=${TICKETD:-./daemon/ticketd}
quick=${BENCH_QUICK:-0}
if [ "$quick" = 1 ]; then
	q_secs=1 q_workers=1 q_flash_tickets=2000 q_flash_requests=20000 q_idle=200 q_raw=0
else
	q_secs=10 q_workers="1 0" q_flash_tickets=10000 q_flash_requests=100000 q_idle=1000 q_raw=1
fi
secs=${BENCH_HTTP_SECONDS:-$q_secs}
cores=${BENCH_HTTP_CORES:-}
latencies=${BENCH_HTTP_LATENCIES:-0 1}
pin=${BENCH_HTTP_PIN:-split}
io_threads=${BENCH_HTTP_IO_THREADS:-1}
workers_list=${BENCH_HTTP_WORKERS:-$q_workers}
workers=$(echo $workers_list | awk '{ print $1 }')
flash_tickets=${BENCH_HTTP_FLASH_TICKETS:-$q_flash_tickets}
flash_requests=${BENCH_HTTP_FLASH_REQUESTS:-$q_flash_requests}
flash_pay=${BENCH_HTTP_FLASH_PAYMENT_MS:-1}
idle_conns=${BENCH_HTTP_IDLE_CONNS:-$q_idle}
ceiling=${BENCH_HTTP_CEILING:-$srcdir/tests/bench/nginx_ceiling.sh}
raw=${BENCH_HTTP_RAW:-$q_raw}
keep=${BENCH_HTTP_KEEP:-}
nomet=${BENCH_HTTP_NO_METRICS:-}
evhttp_hello=${EVHTTP_HELLO:-$(dirname "$ticketd")/../tests/bench/evhttp_hello}
conns=64
python=${PYTHON:-python3}
huge=1000000000000 # CONF_MAX_TICKETS: the throughput event never sells out

for a in "$@"; do
	echo "bench_http.sh: ignoring argument '$a' (settings come from BENCH_HTTP_*)"
done

die() { echo "bench_http.sh: $*" >&2; exit 2; }
[ -x "$ticketd" ] || die "no ticketd at $ticketd (set TICKETD)"
command -v wrk >/dev/null 2>&1 || { echo "bench_http.sh: wrk is not installed; nothing to measure"; exit 0; }
command -v "$python" >/dev/null 2>&1 || die "needs $python"
case $secs in *[!0-9]*|'') die "BENCH_HTTP_SECONDS must be a whole number" ;; esac

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-http.XXXXXX") || die "mktemp failed"
dpid=      # the running ticketd
nginx_dir= # set while our nginx runs
bgpid=     # a background wrk
failed=0   # correctness checks that failed
run_no=0

# Stops whatever this script started; runs on every exit.
cleanup() {
	[ -n "$bgpid" ] && kill "$bgpid" 2>/dev/null
	if [ -n "$dpid" ]; then
		kill -TERM "$dpid" 2>/dev/null
		sleep 1
		kill -KILL "$dpid" 2>/dev/null
		wait "$dpid" 2>/dev/null
	fi
	[ -n "$nginx_dir" ] && nginx_stop
	if [ -n "$keep" ]; then
		mkdir -p "$keep" && cp -R "$work"/. "$keep"/
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- pinning -----------------------------------------------------------------
ncpu=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
if [ "$pin" = split ] && { [ "$ncpu" -lt 2 ] || ! command -v taskset >/dev/null 2>&1; }; then
	echo "note: cannot pin (need taskset and 2 CPUs); running unpinned"
	pin=none
fi
# Sets srv_pin and cli_pin (command prefixes) for mode $1.
set_pin() {
	if [ "$1" = split ]; then
		srv_pin="taskset -c 0"; cli_pin="taskset -c 1"
	else
		srv_pin=""; cli_pin=""
	fi
}

# --- helpers -----------------------------------------------------------------
# Prints the value of key $2 from the RESULT line in file $1.
result() {
	sed -n 's/^RESULT //p' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}

# Prints $1 / $2 to two places, or n/a when $2 is empty (no reference run).
ratio() {
	if [ -n "$2" ]; then awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; else echo n/a; fi
}

# Drives URL $1 with the ceiling's wrk command and static purchase body;
# the output goes to file $2.
wrk_static() {
	$cli_pin wrk -t1 -c$conns -d${secs}s --latency -s "$loaddir/post_static.lua" "$1" >"$2" 2>&1
}

# Prints "req/s p50_ms p99_ms non2xx socket_errors" from wrk output $1.
wrk_stats() {
	awk '
	function ms(v) {
		if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
		if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
		if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
		return v
	}
	/^Requests\/sec:/ { rps = $2 }
	/^ +50%/ { p50 = ms($2) }
	/^ +99%/ { p99 = ms($2) }
	/Non-2xx or 3xx responses:/ { non2xx = $NF }
	/Socket errors:/ { gsub(",", ""); err = $4 + $6 + $8 + $10 }
	END { printf "%.0f %.3f %.3f %d %d\n", rps, p50, p99, non2xx, err }' "$1"
}

# Saves a copy of wrk output $2 under the title $1 for the raw appendix.
keep_raw() {
	run_no=$((run_no + 1))
	mkdir -p "$work/raw"
	{ echo "### $run_no. $1"; cat "$2"; echo; } >"$work/raw/$(printf %03d $run_no)"
}

# Returns 0 if wrk output $1 has the script's RESULT line; else reports it.
no_result() {
	grep -q '^RESULT ' "$1" && return 0
	echo "CHECK FAILED: no RESULT from the wrk script; its output:"
	sed 's/^/    /' "$1" | tail -n 20
	failed=$((failed + 1))
	return 1
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# Writes a config to $1: core $2, payment latency $3 ms, ledger sync $4
# ("n/a" = no ledger key), state dir $5, extra top-level keys $6 (optional);
# $workers worker threads.
gen_conf() {
	ledger=
	[ "$4" != n/a ] && ledger="\"ledger\": { \"sync\": \"$4\" },"
	ledger="$ledger${6:-}"
	cat >"$1" <<EOF
{
	"listen": ["127.0.0.1:0"],
	"io_threads": $io_threads,
	"workers": $workers,
	"queue_depth": 4096,
	"seller": "$2",
	"payment": { "latency_ms": $3, "decline_rate": 0.0, "mode": "async" },
	"limits": { "max_connections": $((idle_conns + 1024)) },
	$ledger
	"state_dir": "$5",
	"log_level": "notice",
	"events": [
		{ "id": "bench", "tiers": { "general": $huge } },
		{ "id": "flash-sale", "tiers": { "general": $flash_tickets } }
	]
}
EOF
}

# Starts ticketd with config $1 (log $1.log); sets dpid and dport.
start_ticketd() {
: >"$1.log"
	$srv_pin "$ticketd" -c "$1" 2>"$1.log" &
	dpid=$!
	dport=
	i=0
	while [ $i -lt 100 ]; do
		dport=$(sed -n 's/.* listening on .*:\([0-9][0-9]*\).*/\1/p' "$1.log" | head -n 1)
		[ -n "$dport" ] && return 0
		kill -0 "$dpid" 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	echo "ticketd did not start with $1:" >&2
	cat "$1.log" >&2
	exit 1
}

# Stops ticketd with SIGTERM; notes a non-zero exit.
stop_ticketd() {
	kill -TERM "$dpid"
	wait "$dpid"
	rc=$?
	[ $rc -eq 0 ] || { echo "ticketd exited $rc (see its log)"; failed=$((failed + 1)); }
	dpid=
}

nginx_start() {
	nginx_dir=$work/nginx
	nginx_port=$("$python" "$loaddir/loadtool.py" free-port)
	CEILING_DIR=$nginx_dir $srv_pin sh "$ceiling" start "$nginx_port" >/dev/null
}

nginx_stop() {
	CEILING_DIR=$nginx_dir sh "$ceiling" stop
	i=0
	while [ -f "$nginx_dir/nginx.pid" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	[ -f "$nginx_dir/nginx.pid" ] && kill -KILL "$(cat "$nginx_dir/nginx.pid")" 2>/dev/null
	nginx_dir=
}

# Features of this ticketd.
# The ledger: the config must take "ledger" and the daemon must write a
# ledger.db with it (a config parser that knows the key is not a ledger).
ledger_ok=0
set_pin none
gen_conf "$work/probe.conf" mutex 0 full "$work/probe-state"
if "$ticketd" -t -c "$work/probe.conf" >/dev/null 2>&1; then
	start_ticketd "$work/probe.conf"
	stop_ticketd
	ls "$work/probe-state" 2>/dev/null | grep -q '^ledger\.db' && ledger_ok=1
fi
# Metrics that can be configured off: "metrics": {"enabled": false}.
metrics_ok=0
gen_conf "$work/probe-m.conf" mutex 0 n/a "$work/probe-m-state" '"metrics": { "enabled": false },'
"$ticketd" -t -c "$work/probe-m.conf" >/dev/null 2>&1 && metrics_ok=1
audit_ok=0
"$ticketd" --help 2>&1 | grep -q -- '--audit' && audit_ok=1
[ -n "$cores" ] || cores=$("$ticketd" --list-sellers 2>/dev/null | awk '{ print $1 }')
[ -n "$cores" ] || cores=mutex
default_threads_core=$(echo $cores | cut -d' ' -f1)
syncs="off full"
[ $ledger_ok -eq 1 ] || syncs=n/a
have_nginx=0
command -v nginx >/dev/null 2>&1 && [ -f "$ceiling" ] && have_nginx=1

# --- header ------------------------------------------------------------------
echo "ticketd HTTP benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)$([ "$quick" = 1 ] && echo ', QUICK mode (BENCH_QUICK=1: fewer, shorter runs; a smoke test, not a measurement)')"
echo "machine:  $(uname -srm), $ncpu CPUs ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1))"
echo "ticketd:  $("$ticketd" -V 2>&1) ($ticketd); cores: $(echo $cores)"
echo "          io_threads $io_threads, workers: $(echo $workers_list) (0 = reserve on the loop), payment async; ledger: $([ $ledger_ok -eq 1 ] && echo 'sync off/full' || echo 'n/a (no ledger.db written)'); --audit: $([ $audit_ok -eq 1 ] && echo yes || echo n/a); metrics off: $([ $metrics_ok -eq 1 ] && echo configurable || echo 'n/a (no "metrics" key)')"
echo "wrk:      $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2); command: wrk -t1 -c$conns -d${secs}s --latency"
echo "nginx:    $([ $have_nginx -eq 1 ] && nginx -v 2>&1 | sed 's/.*: //' || echo 'not installed (or no ceiling.sh): no ceiling')"
echo "pinning:  $pin$([ "$pin" = split ] && echo ' (server on CPU 0, wrk on CPU 1)')"
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) at start (a shared machine: figures are noisy; compare ratios within one run)"
echo

# --- 1. ceiling ----------------------------------------------------------------
# The table's row format: server pin w req/s p50 p99 non2xx errors ratio x_evhttp.
row_fmt='%-10s %-9s %3s %10s %8s %8s %7s %7s %7s %7s\n'

# One ticketd row of section 1: core $1 with the current $io_threads and
# $workers, pin $p; $2 is the pin column's label, $3 names the run's files.
# The row is kept in $rows (its ratios wait for nginx's second run).
ceiling_ticketd() {
	c_core=$1 c_label=$2
	st=$work/ceil-$3
	gen_conf "$st.conf" "$c_core" 0 "$(echo $syncs | cut -d' ' -f1)" "$st.state"
	start_ticketd "$st.conf"
	wrk_static "http://127.0.0.1:$dport/v1/events/bench/purchase" "$st.wrk"
	keep_raw "ticketd $c_core, io_threads $io_threads, workers $workers, static purchase body, pin $p" \
		"$st.wrk"
	stop_ticketd
	echo "$c_core $c_label $workers $(wrk_stats "$st.wrk")" >>"$rows"
}

# nginx's fixed reply under the ceiling's wrk command, pin $p; $1 labels
# the run. Keeps "nginx LABEL - stats" in $rows and sets ngx_$p to the
# higher of its runs.
ceiling_nginx() {
	nginx_start
	out=$work/ceiling-nginx-$(echo "$1" | tr / -).txt
	CEILING_DIR=$nginx_dir $cli_pin sh "$ceiling" wrk "$nginx_port" -t1 -c$conns -d${secs}s >"$out" 2>&1
	keep_raw "nginx fixed body, pin $1 (ceiling.sh wrk)" "$out"
	nginx_stop
	set -- "$1" $(wrk_stats "$out")
	echo "nginx $1 - $2 $3 $4 $5 $6" >>"$rows"
	eval "ngx_$p=\$(max \"\${ngx_$p:-}\" \"\$2\")"
}

# evhttp's own ceiling (tests/bench/evhttp_hello: one loop, a fixed reply)
# under the same wrk command, pin $p; $1 labels the run. Keeps its row in
# $rows and sets evh_$p to the higher of its runs.
ceiling_evhttp() {
	out=$work/ceiling-evhttp-$(echo "$1" | tr / -).txt
	$srv_pin "$evhttp_hello" 0 >"$work/evhttp.port" 2>&1 &
	bgpid=$!
	hport=
	i=0
	while [ -z "$hport" ] && [ $i -lt 50 ]; do
		sleep 0.1
		hport=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$work/evhttp.port")
		i=$((i + 1))
	done
	if [ -n "$hport" ]; then
		wrk_static "http://127.0.0.1:$hport/buy" "$out"
		keep_raw "evhttp_hello fixed body, pin $1" "$out"
		set -- "$1" $(wrk_stats "$out")
		echo "evhttp $1 - $2 $3 $4 $5 $6" >>"$rows"
		eval "evh_$p=\$(max \"\${evh_$p:-}\" \"\$2\")"
	else
		echo "evhttp_hello did not start: $(cat "$work/evhttp.port")"
	fi
	kill -TERM $bgpid 2>/dev/null
	wait $bgpid 2>/dev/null; bgpid=
}

# Prints the larger of two numbers; the other if one is empty.
max() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "") print b; else if (b == "" || a + 0 >= b + 0) print a; else print b }'
}

# nginx's (and evhttp's) req/s per pinning mode, for the ratios: the higher
# of a run before the ticketd rows and one after, so that one slow reference
# run on a noisy machine cannot flatter ticketd's ratios.
ngx_none=; ngx_split=; ngx_count=
evh_none=; evh_split=
echo "== 1. Ceiling: the same wrk command and body, nginx fixed reply vs ticketd purchase (payment 0 ms, sync $(echo $syncs | cut -d' ' -f1))"
printf "$row_fmt" server pin w req/s p50_ms p99_ms non2xx errors ratio x_evhttp
ceiling_pins="none split"
[ "$quick" = 1 ] && ceiling_pins=$pin
for p in $ceiling_pins; do
	[ "$p" = split ] && [ "$pin" != split ] && continue
	set_pin $p
	rows=$work/ceiling-rows-$p
	: >"$rows"
	[ $have_nginx -eq 1 ] && ceiling_nginx "$p"
	[ -x "$evhttp_hello" ] && ceiling_evhttp "$p"
	for core in $cores; do
	for workers in $workers_list; do
		ceiling_ticketd "$core" "$p" "$core-$p-w$workers"
	done
	done
	# Unpinned, the threading conf/ticketd.conf ships (2 loops, each on its
	# own SO_REUSEPORT socket, 2 workers) can use what wrk leaves of its core.
	if [ "$p" = none ] && [ -n "$default_threads_core" ]; then
		save_iot=$io_threads save_w=$workers
		io_threads=2 workers=2
		ceiling_ticketd "$default_threads_core" "$p/io2" default-threads
		io_threads=$save_iot workers=$save_w
	fi
	[ -x "$evhttp_hello" ] && ceiling_evhttp "$p/end"
	[ $have_nginx -eq 1 ] && ceiling_nginx "$p/end"
	eval "ngx=\${ngx_$p:-} evh=\${evh_$p:-}"
	while read -r r_srv r_pin r_w r_rps r_p50 r_p99 r_non2xx r_err; do
		case $r_srv in
		nginx) x_evh=- ;;
		evhttp) x_evh=- ;;
		*) x_evh=$(ratio "$r_rps" "$evh") ;;
		esac
		printf "$row_fmt" "$r_srv" "$r_pin" "$r_w" "$r_rps" "$r_p50" "$r_p99" "$r_non2xx" \
			"$r_err" "$(ratio "$r_rps" "$ngx")" "$x_evh"
	done <"$rows"
done
echo "(w: worker threads, 0 = reserve on the loop; non2xx must be 0: every static purchase"
echo " is a 201 from an event that cannot sell out; ratio: of nginx's req/s; x_evhttp: of"
echo " evhttp_hello's, evhttp's own ceiling: one loop answering a fixed body; pin none/io2:"
echo " the shipped threading, io_threads 2 and 2 workers, unpinned, first core listed;"
echo " nginx and evhttp run before and after the ticketd rows (pin .../end), and every"
echo " ratio is of the higher of the two runs)"
echo

# --- 2. matrix -----------------------------------------------------------------
set_pin "$pin"
echo "== 2. Matrix: wrk -t1 -c$conns -d${secs}s --latency -s flash_sale.lua (counts replies, drains), pin $pin"
if [ $have_nginx -eq 1 ]; then
	# Two runs, the higher counts (one slow run must not flatter the ratios).
	nginx_start
	ngx_runs=
	for n in 1 2; do
		out=$work/nginx-count-$n.txt
		$cli_pin wrk -t1 -c$conns -d${secs}s --latency -s "$loaddir/flash_sale.lua" \
			"http://127.0.0.1:$nginx_port" -- path=/buy filler=none seconds=$secs >"$out" 2>&1
		keep_raw "nginx fixed body, counting script (flash_sale.lua), pin $pin, run $n" "$out"
		ngx_runs="$ngx_runs $(printf %.0f "$(result "$out" rate)")"
		ngx_count=$(max "$ngx_count" "$(result "$out" rate)")
	done
	nginx_stop
	echo "nginx under the same counting script: $(printf %.0f "$ngx_count") req/s, the higher of$ngx_runs (wrk pays for the Lua reply parsing too)"
fi
printf '%-9s %2s %6s %5s %9s %7s %7s %8s %8s %10s %10s %8s %7s %6s\n' core w pay_ms sync req/s p50_ms p99_ms idle_MiB load_MiB sold 201_tkts oversold 201-sold x_nginx
for core in $cores; do
for workers in $workers_list; do
	for lat in $latencies; do
		for sync in $syncs; do
			st=$work/m-$core-w$workers-$lat-$(echo $sync | tr / _)
			gen_conf "$st.conf" "$core" "$lat" "$sync" "$st.state"
			start_ticketd "$st.conf"
			sleep 0.3
			idle=$(rss_kib "$dpid")
			out=$st.wrk
			# wrk's -d is the cap; the script buys for $secs - 0.3 s, then
			# drains every reply and ends wrk.
			window=$(awk -v s="$secs" 'BEGIN { print (s > 1 ? s - 0.3 : s * 0.7) }')
			$cli_pin wrk -t1 -c$conns -d${secs}s --latency -s "$loaddir/flash_sale.lua" \
				"http://127.0.0.1:$dport" -- event=bench seconds=$window >"$out" 2>&1 &
			bgpid=$!
			sleep $(awk -v s="$secs" 'BEGIN { print s / 2 }')
			load=$(rss_kib "$dpid")
			wait $bgpid
			bgpid=
			keep_raw "ticketd $core, workers $workers, payment $lat ms, sync $sync, flash_sale.lua" "$out"
			if ! no_result "$out"; then
				stop_ticketd
				continue
			fi
			set -- $("$python" "$loaddir/loadtool.py" event "127.0.0.1:$dport" bench | tr '=' ' ')
			cap=$2 sold=$6
			stop_ticketd
			rate=$(result "$out" rate) p50=$(result "$out" p50_us) p99=$(result "$out" p99_us)
			tk=$(result "$out" tickets) un=$(result "$out" unanswered)
			over=$((sold > cap ? sold - cap : 0))
			diff=$((tk - sold))
			if [ "$over" -ne 0 ] || [ "$diff" -ne 0 ] || [ "${un:-1}" -ne 0 ]; then
				failed=$((failed + 1))
				echo "CHECK FAILED: $core w$workers $lat ms $sync: oversold $over, 201 tickets - sold $diff, unanswered $un"
			fi
			x=$(ratio "$rate" "$ngx_count")
			printf '%-9s %2s %6s %5s %9.0f %7.3f %7.3f %8.1f %8.1f %10s %10s %8s %7s %6s\n' \
				"$core" "$workers" "$lat" "$sync" "$rate" "$(awk -v v="$p50" 'BEGIN { print v / 1000 }')" \
				"$(awk -v v="$p99" 'BEGIN { print v / 1000 }')" \
				"$(awk -v v="$idle" 'BEGIN { print v / 1024 }')" \
				"$(awk -v v="$load" 'BEGIN { print v / 1024 }')" \
				"$sold" "$tk" "$over" "$diff" "$x"
		done
	done
done
done
echo "(req/s: purchase replies / buying window; sold: GET /v1/events/bench; 201_tkts: tickets"
echo " in the 201 replies the script counted; oversold: sold - capacity if positive; 201-sold"
echo " must be 0; x_nginx: ratio to nginx under the same counting script)"
echo

# --- 3. flash sale ---------------------------------------------------------------
# Each "pay:sync" of flash_configs: the reference flash sale (a 1 ms payment, every
# commit synced) and the throughput target's (no payment wait, sync off).
flash_configs=${BENCH_HTTP_FLASH_CONFIGS:-"$flash_pay:$(echo $syncs | awk '{ print $NF }') 0:$(echo $syncs | awk '{ print $1 }')"}
echo "== 3. Flash sale: $flash_tickets tickets, $flash_requests purchases from $conns connections, payment async, pin $pin"
printf '%-9s %2s %3s %4s %8s %9s %7s %7s %8s %8s %8s %8s %8s %6s %6s %7s\n' server w pay sync time_s req/s p50_ms p99_ms 201s 201_tkts GET_sold audit 409s other errors x_nginx
ngx_flash=
if [ $have_nginx -eq 1 ]; then
	# Three runs (about a second each); x_nginx is of the fastest.
	nginx_start
	for n in 1 2 3; do
		out=$work/nginx-flash-$n.txt
		$cli_pin wrk -t1 -c$conns -d120s --latency -s "$loaddir/flash_sale.lua" \
			"http://127.0.0.1:$nginx_port" -- path=/buy filler=none quota=$flash_requests >"$out" 2>&1
		keep_raw "nginx, $flash_requests requests (flash_sale.lua quota, no drain), run $n" "$out"
		el=$(result "$out" elapsed)
		if [ -n "$el" ] && { [ -z "$ngx_flash" ] ||
			awk -v a="$el" -v b="$ngx_flash" 'BEGIN { exit !(a + 0 < b + 0) }'; }; then
			ngx_flash=$el
		fi
	done
	nginx_stop
	for n in 1 2 3; do
		out=$work/nginx-flash-$n.txt
		printf '%-9s %2s %3s %4s %8.3f %9.0f %7.3f %7.3f %8s %8s %8s %8s %8s %6s %6s %7s\n' nginx - - - \
			"$(result "$out" elapsed)" "$(result "$out" rate)" \
			"$(awk -v v="$(result "$out" p50_us)" 'BEGIN { print v / 1000 }')" \
			"$(awk -v v="$(result "$out" p99_us)" 'BEGIN { print v / 1000 }')" - - - - - \
			"$(result "$out" other)" "$(result "$out" errors)" "$(ratio "$(result "$out" elapsed)" "$ngx_flash")"
	done
fi
for fc in $flash_configs; do
fpay=${fc%%:*} fsync=${fc#*:}
for core in $cores; do
for workers in $workers_list; do
	st=$work/flash-$core-w$workers-p$fpay-$fsync
	gen_conf "$st.conf" "$core" "$fpay" "$fsync" "$st.state"
	start_ticketd "$st.conf"
	out=$st.wrk
	$cli_pin wrk -t1 -c$conns -d120s --latency -s "$loaddir/flash_sale.lua" \
		"http://127.0.0.1:$dport" -- event=flash-sale quota=$flash_requests >"$out" 2>&1
	keep_raw "ticketd $core (workers $workers, payment $fpay ms, sync $fsync) flash sale: $flash_tickets tickets, $flash_requests purchases" "$out"
	if ! no_result "$out"; then
		stop_ticketd
		continue
	fi
	get_sold=$("$python" "$loaddir/loadtool.py" event "127.0.0.1:$dport" flash-sale | tr ' ' '\n' | sed -n 's/^sold=//p')
	stop_ticketd
	audit=n/a
	if [ $audit_ok -eq 1 ]; then
		"$ticketd" -c "$st.conf" --audit >"$st.audit" 2>&1
		arc=$?
		audit=$(awk '$1 == "flash-sale" && $2 == "general" { print $4 }' "$st.audit")
		[ $arc -eq 0 ] && grep -q '^audit: OK' "$st.audit" || { audit="FAIL:${audit:-?}"; failed=$((failed + 1)); }
		{ echo "### --audit after the $core (workers $workers, payment $fpay ms, sync $fsync) flash sale"; cat "$st.audit"; echo; } >"$work/raw/$(printf %03d $run_no)a"
	fi
	s201=$(result "$out" s201) tk=$(result "$out" tickets) el=$(result "$out" elapsed)
	if [ "$tk" != "$flash_tickets" ] || [ "$get_sold" != "$flash_tickets" ] || [ "$s201" != "$flash_tickets" ] ||
	   { [ "$audit" != n/a ] && [ "$audit" != "$flash_tickets" ]; } || [ "$(result "$out" unanswered)" != 0 ] ||
	   [ "$(result "$out" replies)" != "$flash_requests" ]; then
		failed=$((failed + 1))
		echo "CHECK FAILED: $core w$workers pay $fpay sync $fsync flash sale: 201s $s201, tickets $tk, GET sold $get_sold, audit $audit (want $flash_tickets)"
	fi
	x=$(ratio "$el" "$ngx_flash")
	printf '%-9s %2s %3s %4s %8.3f %9.0f %7.3f %7.3f %8s %8s %8s %8s %8s %6s %6s %7s\n' "$core" "$workers" "$fpay" "$fsync" "$el" \
		"$(result "$out" rate)" "$(awk -v v="$(result "$out" p50_us)" 'BEGIN { print v / 1000 }')" \
		"$(awk -v v="$(result "$out" p99_us)" 'BEGIN { print v / 1000 }')" "$s201" "$tk" "$get_sold" \
		"$audit" "$(result "$out" s409)" "$(result "$out" other)" "$(result "$out" errors)" "$x"
done
done
done
echo "(time_s: first request to the last purchase reply; x_nginx: time as a multiple of nginx's"
echo " fastest of its three runs for the same number of requests; 201s, 201_tkts, GET_sold and"
echo " audit must all read $flash_tickets)"
echo

# --- 4. memory ---------------------------------------------------------------------
mcore=$(echo $cores | awk '{ print $1 }')
msync=$(echo $syncs | awk '{ print $NF }')
workers=$(echo $workers_list | awk '{ print $1 }')
echo "== 4. Memory: ticketd $mcore, workers $workers, payment 0 ms, sync $msync"
st=$work/mem
gen_conf "$st.conf" "$mcore" 0 "$msync" "$st.state"
start_ticketd "$st.conf"
sleep 0.5
idle0=$(rss_kib "$dpid")
out=$st.wrk
# wrk itself in the background (not wrk_static: a function would run in a
# subshell, and bgpid would name the subshell rather than wrk).
$cli_pin wrk -t1 -c$conns -d${secs}s --latency -s "$loaddir/post_static.lua" \
	"http://127.0.0.1:$dport/v1/events/bench/purchase" >"$out" 2>&1 &
bgpid=$!
sleep $(awk -v s="$secs" 'BEGIN { print s / 2 }')
load=$(rss_kib "$dpid")
wait $bgpid
bgpid=
keep_raw "ticketd $mcore, memory run (static body)" "$out"
sleep 0.5
idle1=$(rss_kib "$dpid")
msold=$("$python" "$loaddir/loadtool.py" event "127.0.0.1:$dport" bench | tr ' ' '\n' | sed -n 's/^sold=//p')
"$python" "$loaddir/loadtool.py" idle-conns "$dpid" "127.0.0.1:$dport" "$idle_conns" >"$st.idle" 2>&1
stop_ticketd
echo "RSS idle at start:              $(awk -v v="$idle0" 'BEGIN { printf "%.1f MiB", v / 1024 }')"
echo "RSS under load, $conns connections: $(awk -v v="$load" 'BEGIN { printf "%.1f MiB", v / 1024 }')"
echo "RSS idle after the load:        $(awk -v v="$idle1" 'BEGIN { printf "%.1f MiB", v / 1024 }') after selling $msold orders ($(awk -v a="$idle0" -v b="$idle1" -v n="$msold" 'BEGIN { printf "%.0f", (n > 0 ? (b - a) * 1024 / n : 0) }') bytes of growth per order)"
echo "$idle_conns idle connections:       $(result "$st.idle" accepted) accepted, RSS $(result "$st.idle" rss_before_kib) -> $(result "$st.idle" rss_after_kib) KiB, $(result "$st.idle" per_conn_bytes) bytes per connection"
echo

# --- 5. metrics cost -------------------------------------------------------------
echo "== 5. Metrics: ticketd $mcore, workers $workers, static body, payment 0 ms, sync $(echo $syncs | cut -d' ' -f1), pin $pin, on/off interleaved x3"
if [ $metrics_ok -eq 1 ]; then
	set_pin "$pin"
	modes="true false"
	[ -n "$nomet" ] && [ -x "$nomet" ] && modes="true false out"
	printf '%-12s %10s %10s %10s %8s\n' metrics run1 run2 run3 median
	for mr in 1 2 3; do # not $i: start_ticketd uses it
		for m in $modes; do
			st=$work/metrics-$m-$mr
			if [ $m = out ]; then
				gen_conf "$st.conf" "$mcore" 0 "$(echo $syncs | cut -d' ' -f1)" "$st.state"
				real_ticketd=$ticketd
				ticketd=$nomet
			else
				gen_conf "$st.conf" "$mcore" 0 "$(echo $syncs | cut -d' ' -f1)" "$st.state" "\"metrics\": { \"enabled\": $m },"
			fi
			start_ticketd "$st.conf"
			[ $m = out ] && ticketd=$real_ticketd
			out=$st.wrk
			wrk_static "http://127.0.0.1:$dport/v1/events/bench/purchase" "$out"
			keep_raw "ticketd $mcore, metrics enabled $m, run $mr (static body)" "$out"
			stop_ticketd
			set -- $(wrk_stats "$out")
			eval "met_${m}_$mr=$1"
		done
	done
	for m in $modes; do
		eval "a=\$met_${m}_1 b=\$met_${m}_2 c=\$met_${m}_3"
		med=$(printf '%s\n' "$a" "$b" "$c" | sort -n | sed -n 2p)
		eval "med_$m=$med"
		case $m in true) label=on ;; false) label="off (config)" ;; *) label="compiled out" ;; esac
		printf '%-12s %10s %10s %10s %8s\n' "$label" "$a" "$b" "$c" "$med"
	done
	echo "metrics on / off (config): $(awk -v a="$med_true" -v b="$med_false" 'BEGIN { printf "%.3f", a / b }') (medians)"
	if [ "$modes" = "true false out" ]; then
		echo "metrics on / compiled out: $(awk -v a="$med_true" -v b="$med_out" 'BEGIN { printf "%.3f", a / b }') ($nomet)"
	else
		echo "compiled out: not run (set BENCH_HTTP_NO_METRICS to a ticketd built with --disable-metrics)"
	fi
else
	echo "n/a: this ticketd takes no \"metrics\": {\"enabled\": false} (no metrics to switch off)"
fi
echo
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) at the end"

if [ "$raw" = 1 ] && [ -d "$work/raw" ]; then
	echo
	echo "== Raw wrk output"
	cat "$work/raw"/*
fi

if [ $failed -ne 0 ]; then
	echo "bench_http.sh: $failed correctness check(s) FAILED (see above)"
	exit 1
fi
exit 0
