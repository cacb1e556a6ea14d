#!/bin/sh
# test_man.sh: the generated manual pages ticketd(8) and ticketd.conf(5).
# Checks that the installed paths were filled in, that groff and man render
# them without a single warning (at several widths), and that they document
# every long option `ticketd --help` prints and every key of the sample
# conf/ticketd.conf. Skips, with the reason, what cannot run here. TAP.
set -u
B=${TICKETD_BUILDDIR:-.}
S=${TICKETD_SRCDIR:-.}
man8=$B/docs/ticketd.8
man5=$B/docs/ticketd.conf.5
n=0 failed=0

ok() { # ok STATUS DESCRIPTION: one TAP test point, passed when STATUS is 0
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi
}
skip() { n=$((n + 1)); echo "ok $n # SKIP $1"; }
diag() { sed 's/^/# /'; }

for f in "$man8" "$man5"; do
	name=$(basename "$f")
	test -s "$f"
	ok $? "$name was generated"
	left=$(grep -n '@[A-Za-z_]*@' "$f")
	test -z "$left"
	ok $? "$name: every @placeholder@ is filled in${left:+: $left}"
	if command -v groff >/dev/null 2>&1; then
		out=$(groff -man -ww -z "$f" 2>&1)
		test -z "$out"
		ok $? "$name: groff -man -ww reports nothing"
		[ -z "$out" ] || echo "$out" | diag
	else
		skip "groff not found (apt-get install groff-base)"
	fi
	if command -v man >/dev/null 2>&1; then
		out=""
		for w in 60 80 132; do
			out=$out$(MANWIDTH=$w man --warnings -l "$f" 2>&1 >/dev/null)
		done
		test -z "$out"
		ok $? "$name: man --warnings -l renders cleanly at 60, 80 and 132 columns"
		[ -z "$out" ] || echo "$out" | diag
	else
		skip "man not found (apt-get install man-db)"
	fi
done

# Every long option of --help is in ticketd(8), written as \-\-option.
if [ -x "${TICKETD:-}" ]; then
	opts=$("$TICKETD" --help 2>&1 | grep -oE -- '--[a-z][a-z-]*' | sort -u)
	missing=""
	for o in $opts; do
		grep -qF -- "$(echo "$o" | sed 's/-/\\-/g')" "$man8" || missing="$missing $o"
	done
	test -n "$opts" && test -z "$missing"
	ok $? "ticketd(8) documents every option of --help ($(echo $opts))${missing:+; missing:$missing}"
else
	skip "daemon not built yet: cannot compare with ticketd --help"
fi

# Every key of the sample config (tier names included) is in ticketd.conf(5)
# as a .B or .BR line of its own.
conf=$S/conf/ticketd.conf
if [ -f "$conf" ] && command -v python3 >/dev/null 2>&1; then
	keys=$(python3 -c '
import json, sys
def walk(v):
    if isinstance(v, dict):
        for k, x in v.items():
            print(k)
            walk(x)
    elif isinstance(v, list):
        for x in v:
            walk(x)
walk(json.load(open(sys.argv[1])))' "$conf" | sort -u)
	missing=""
	for k in $keys; do
		grep -qE "^\.BR? $k( |\$)|^\.B $k\$" "$man5" || missing="$missing $k"
	done
	test -n "$keys" && test -z "$missing"
	ok $? "ticketd.conf(5) documents every key of conf/ticketd.conf${missing:+; missing:$missing}"
else
	skip "conf/ticketd.conf not written yet"
fi

# Every key daemon/conf.c accepts (its allowed-key lists) is in ticketd.conf(5).
if [ -f "$S/daemon/conf.c" ]; then
	keys=$(sed -n '/static const char \*const keys\[\] = {/,/};/p' "$S/daemon/conf.c" |
		grep -oE '"[a-z_]+"' | tr -d '"' | sort -u)
	missing=""
	for k in $keys; do
		grep -qE "^\.BR? $k( |\$)" "$man5" || missing="$missing $k"
	done
	test -n "$keys" && test -z "$missing"
	ok $? "ticketd.conf(5) documents every key daemon/conf.c accepts ($(echo $keys | wc -w))${missing:+; missing:$missing}"
else
	skip "daemon/conf.c not found"
fi

# Every route of docs/api.md's table is in ticketd(8), as ".B METHOD /path"
# (with .BI and an italic id for {id}).
if [ -f "$S/docs/api.md" ]; then
	routes=$(sed -n 's/^| `\(\/[^`]*\)` | \([A-Z]*\) |.*/\2 \1/p' "$S/docs/api.md")
	plain=$(sed -n 's/^\.BI\{0,1\} //p' "$man8" | tr -d '"' | sed 's/  */ /g')
	missing=""
	for r in $(printf '%s\n' "$routes" | tr ' ' '@'); do
		want=$(printf '%s' "$r" | tr '@' ' ' | sed 's/{[a-z]*}/ *[a-z]* */g')
		printf '%s\n' "$plain" | grep -qE "^$want *\$" || missing="$missing $r"
	done
	test -n "$routes" && test -z "$missing"
	ok $? "ticketd(8) documents every route of docs/api.md ($(printf '%s\n' "$routes" | wc -l))${missing:+; missing:$missing}"
else
	skip "docs/api.md not found"
fi

# Signals, exit statuses, and every environment variable the code reads.
sigs=$(sed -n '/^\.SH SIGNALS/,/^\.SH /p' "$man8")
missing=""
for s in SIGHUP SIGTERM SIGINT; do
	printf '%s\n' "$sigs" | grep -q "$s" || missing="$missing $s"
done
test -z "$missing"
ok $? "ticketd(8) SIGNALS covers SIGHUP, SIGTERM and SIGINT${missing:+; missing:$missing}"
st=$(sed -n '/^\.SH EXIT STATUS/,/^\.SH /p' "$man8" | sed -n '/^\.TP/{n;p;}' |
	sed 's/^\.B //' | tr '\n' ' ')
test "$st" = "0 1 2 "
ok $? "ticketd(8) EXIT STATUS lists 0, 1 and 2 (got: $st)"
vars=$(cat "$S"/daemon/*.c "$S"/lib/*.c 2>/dev/null | grep -oE 'getenv\("[A-Z_]+"\)' |
	sed 's/getenv("\(.*\)")/\1/' | sort -u)
envsec=$(sed -n '/^\.SH ENVIRONMENT/,/^\.SH /p' "$man8")
missing=""
for v in $vars; do
	printf '%s\n' "$envsec" | grep -q "$v" || missing="$missing $v"
done
test -n "$vars" && test -z "$missing"
ok $? "ticketd(8) ENVIRONMENT names every variable the code reads ($(echo $vars))${missing:+; missing:$missing}"

echo "1..$n"
exit $failed
