#!/bin/sh
# test_load_scripts.sh: the wrk scripts of tests/load count exactly. Starts
# the real ticketd on 127.0.0.1:0 with a private state dir and checks what
# the scripts counted against what the daemon says it sold:
#   - flash_sale.lua for about a second against a 50-ticket event: every
#     purchase got a reply, the summed 201s equal `sold` from
#     GET /v1/events/{id}, and exactly 50 were sold;
#   - flash_sale.lua with a quota split over two wrk threads: exactly that
#     many purchases, each answered and each counted in sold;
#   - purchase_mix.lua (random quantities, VIP with the code) with a quota
#     against a small event: the tickets its 201s granted equal sold.
# Asserts no speed. Skips, with the reason, when wrk is not installed. TAP.
set -u
T=${TICKETD:-./daemon/ticketd}
S=${TICKETD_SRCDIR:-.}
L=$S/tests/load
PY=${PYTHON:-python3}
n=0 failed=0

ok() { # ok STATUS DESCRIPTION: one TAP test point, passed when STATUS is 0
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi
}
diag() { sed 's/^/# /'; }

if ! command -v wrk >/dev/null 2>&1; then
	echo "1..0 # SKIP wrk is not installed"
	exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_load.XXXXXX") || exit 1
dpid=
cleanup() {
	if [ -n "$dpid" ]; then
		kill -KILL "$dpid" 2>/dev/null
		wait "$dpid" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

cat >"$tmp/conf" <<EOF
{
	"listen": ["127.0.0.1:0"],
	"io_threads": 2,
	"workers": 2,
	"seller": "mutex",
	"state_dir": "$tmp/state",
	"log_level": "notice",
	"events": [
		{ "id": "fifty", "tiers": { "general": 50 } },
		{ "id": "big", "tiers": { "general": 1000000 } },
		{ "id": "mix", "tiers": { "general": 100, "vip": 20 }, "vip_code": "letmein" }
	]
}
EOF

# Starts the daemon; sets dpid and port.
: >"$tmp/log"
"$T" -c "$tmp/conf" 2>"$tmp/log" &
dpid=$!
port= i=0
while [ -z "$port" ] && [ $i -lt 100 ] && kill -0 "$dpid" 2>/dev/null; do
	sleep 0.1
	port=$(sed -n 's/.* listening on .*:\([0-9][0-9]*\).*/\1/p' "$tmp/log" | head -n 1)
	i=$((i + 1))
done
test -n "$port"
ok $? "ticketd started and logged the port it bound"
if [ -z "$port" ]; then
	diag <"$tmp/log"
	echo "1..$n"
	exit 1
fi

# Prints key $2 of the RESULT line in file $1 (empty if there is none).
result() {
	sed -n 's/^RESULT //p' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}
# Prints key $2 (capacity, available, sold) of event $1, summed over tiers.
event() {
	"$PY" "$L/loadtool.py" event "127.0.0.1:$port" "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}
# ok_eq A B DESCRIPTION
ok_eq() {
	[ "$1" = "$2" ]
	ok $? "$3 ($1 = $2)"
}

# 1. Flash sale of 50 tickets, buying for one second from 16 connections.
out=$tmp/flash.out
wrk -t2 -c16 -d10s -s "$L/flash_sale.lua" "http://127.0.0.1:$port" -- \
	event=fifty seconds=1 threads=2 >"$out" 2>&1
grep -q '^RESULT ' "$out"
ok $? "flash_sale.lua printed its totals"
[ -n "$(result "$out" s201)" ] || diag <"$out"
ok_eq "$(result "$out" unanswered)" 0 "flash sale: every purchase sent got its reply"
ok_eq "$(result "$out" errors)" 0 "flash sale: no socket errors"
ok_eq "$(result "$out" other)" 0 "flash sale: every reply was a 201 or a 409"
ok_eq "$(result "$out" replies)" "$(($(result "$out" s201) + $(result "$out" s409)))" \
	"flash sale: replies = 201s + 409s"
ok_eq "$(result "$out" s201)" "$(event fifty sold)" "flash sale: the summed 201s equal sold from GET /v1/events/fifty"
ok_eq "$(result "$out" tickets)" "$(event fifty sold)" "flash sale: the tickets in the 201s equal sold"
ok_eq "$(event fifty sold)" 50 "flash sale: exactly the 50 tickets were sold"
ok_eq "$(event fifty available)" 0 "flash sale: none left"

# 2. A quota of purchases split over two wrk threads, one more than even.
out=$tmp/quota.out
wrk -t2 -c8 -d10s -s "$L/flash_sale.lua" "http://127.0.0.1:$port" -- \
	event=big quota=301 threads=2 >"$out" 2>&1
grep -q '^RESULT ' "$out" || diag <"$out"
ok_eq "$(result "$out" sent)" 301 "quota: exactly the quota of purchases was sent"
ok_eq "$(result "$out" replies)" 301 "quota: each was answered"
ok_eq "$(result "$out" s201)" 301 "quota: each was a 201"
ok_eq "$(event big sold)" 301 "quota: sold from GET /v1/events/big equals the quota"

# 3. The purchase mix: random quantities and tiers, with the VIP code.
out=$tmp/mix.out
wrk -t2 -c8 -d10s -s "$L/purchase_mix.lua" "http://127.0.0.1:$port" -- \
	event=mix quota=200 threads=2 vip_code=letmein vip_share=0.3 >"$out" 2>&1
grep -q '^RESULT ' "$out" || diag <"$out"
ok_eq "$(result "$out" replies)" 200 "mix: every purchase was answered"
ok_eq "$(result "$out" other)" 0 "mix: every reply was a 201 or a 409"
ok_eq "$(result "$out" tickets)" "$(event mix sold)" "mix: tickets in the 201s equal sold (general + vip)"
sold=$(event mix sold)
[ "$sold" -le 120 ]
ok $? "mix: sold ($sold) is within the capacity of 120"
grep -q 'vip:' "$out"
ok $? "mix: some VIP tickets were granted"

kill -TERM "$dpid"
wait "$dpid"
ok $? "ticketd exits 0 on SIGTERM"
dpid=

echo "1..$n"
exit $failed
