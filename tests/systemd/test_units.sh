#!/bin/sh
# test_units.sh: the generated ticketd.service and ticketd.socket. Checks that
# the installed paths were filled in, that every directive carries a comment,
# that the hardening the issue asks for is all there, that
# `systemd-analyze verify` passes on a copy whose ExecStart points at the
# built daemon, and that `systemd-analyze security --offline=true` rates the
# service 2.0 or better. Skips the systemd-analyze checks, with the reason,
# where it is missing. TAP on stdout.
set -u
B=${TICKETD_BUILDDIR:-.}
service=$B/systemd/ticketd.service
socket=$B/systemd/ticketd.socket
n=0 failed=0

ok() { # ok STATUS DESCRIPTION: one TAP test point, passed when STATUS is 0
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi
}
skip() { n=$((n + 1)); echo "ok $n # SKIP $1"; }
diag() { sed 's/^/# /'; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_units.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

for f in "$service" "$socket"; do
	test -s "$f"
	ok $? "$(basename "$f") was generated"
	left=$(grep -n '@[A-Za-z_]*@' "$f")
	test -z "$left"
	ok $? "$(basename "$f"): every @placeholder@ is filled in${left:+: $left}"
done

# Every Exec*= names an absolute path (the installed daemon, /bin/kill).
bad=$(grep -E '^Exec[A-Za-z]*=' "$service" | grep -vE '^Exec[A-Za-z]*=[-@:+!]*/')
test -z "$bad"
ok $? "every Exec line starts with an absolute path${bad:+: $bad}"
grep -q '^ExecStartPre=/.*/ticketd -t -c /.*/ticketd/ticketd.conf' "$service"
ok $? "ExecStartPre checks the installed config with ticketd -t"
grep -q '^LoadCredential=admin-token:/.*/ticketd/admin-token$' "$service"
ok $? "the admin token is loaded as a credential from the installed config dir"

# A comment line directly above every directive (the memcached rule).
uncommented=$(awk '/^[A-Za-z]+=/ && prev !~ /^#/ { print FILENAME ":" FNR ": " $0 }
		   { prev = $0 }' "$service" "$socket")
test -z "$uncommented"
ok $? "every directive has a comment line above it"
[ -z "$uncommented" ] || echo "$uncommented" | diag

for want in Type=notify NotifyAccess=main WatchdogSec= Restart=on-failure \
	ExecReload= DynamicUser=yes StateDirectory=ticketd \
	LimitNOFILE= ProtectSystem=strict ProtectHome=yes PrivateTmp=yes PrivateDevices=yes \
	PrivateUsers=yes NoNewPrivileges=yes 'CapabilityBoundingSet=$' \
	ProtectKernelTunables=yes ProtectKernelModules=yes ProtectKernelLogs=yes \
	ProtectControlGroups=yes ProtectClock=yes ProtectHostname=yes \
	ProtectProc=invisible ProcSubset=pid RestrictNamespaces=yes RestrictRealtime=yes \
	RestrictSUIDSGID=yes LockPersonality=yes MemoryDenyWriteExecute=yes \
	'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' SystemCallArchitectures=native \
	SystemCallFilter=@system-service 'SystemCallFilter=~@privileged @resources' \
	SystemCallFilter=sched_setscheduler \
	UMask=0077 Requires=ticketd.socket After=ticketd.socket; do
	grep -q "^$want" "$service"
	ok $? "ticketd.service has $want"
done
# The allow line must come after the ~@resources line it amends: systemd
# applies SystemCallFilter= lines in order.
deny=$(grep -n '^SystemCallFilter=~@privileged @resources$' "$service" | cut -d: -f1)
allow=$(grep -n '^SystemCallFilter=sched_setscheduler$' "$service" | cut -d: -f1)
test -n "$deny" && test -n "$allow" && test "$allow" -gt "$deny"
ok $? "sched_setscheduler is allowed after @resources is denied (lines ${deny:-?}, ${allow:-?})"
grep -q '^ListenStream=127.0.0.1:8080$' "$socket" &&
	test "$(grep -c '^ListenStream=' "$socket")" -eq 1
ok $? "ticketd.socket listens on 127.0.0.1:8080 only, as the sample config"
! grep -q '^ConfigurationDirectory=' "$service"
ok $? "no ConfigurationDirectory= (always under /etc, whatever sysconfdir is)"
check=$(grep -n '^ExecReload=/.*/ticketd -t -c /.*/ticketd/ticketd.conf' "$service" | cut -d: -f1)
kill=$(grep -n '^ExecReload=/bin/kill -HUP \$MAINPID$' "$service" | cut -d: -f1)
test -n "$check" && test -n "$kill" && test "$check" -lt "$kill"
ok $? "ExecReload checks the config with ticketd -t before it sends SIGHUP"

if ! command -v systemd-analyze >/dev/null 2>&1; then
	skip "systemd-analyze not found (apt-get install systemd)"
	skip "systemd-analyze not found (apt-get install systemd)"
	skip "systemd-analyze not found (apt-get install systemd)"
	skip "systemd-analyze not found (apt-get install systemd)"
	echo "1..$n"
	exit $failed
fi

# A copy whose Exec lines run the built daemon: verify checks they exist.
daemon=${TICKETD:-}
test -n "$daemon" && test -x "$daemon"
ok $? "the built daemon is there to verify with (${daemon:-TICKETD unset})"
sed "s|^\(Exec[A-Za-z]*=\)/[^ ]*/ticketd\b|\1$daemon|" "$service" >"$tmp/ticketd.service"
cp "$socket" "$tmp/ticketd.socket"
grep -q "^ExecStart=$daemon " "$tmp/ticketd.service"
ok $? "test copy runs $daemon"

out=$(cd "$tmp" && systemd-analyze verify --man=no --recursive-errors=no \
	./ticketd.socket ./ticketd.service 2>&1)
rc=$?
test "$rc" -eq 0 && test -z "$out"
ok $? "systemd-analyze verify: exit $rc, no complaints"
[ -z "$out" ] || echo "$out" | diag

out=$(systemd-analyze security --offline=true "$tmp/ticketd.service" 2>&1)
level=$(echo "$out" | sed -n 's/.*Overall exposure level for ticketd.service: *\([0-9.]*\).*/\1/p')
test -n "$level" && awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }'
ok $? "systemd-analyze security rates the service ${level:-?} (2.0 or better)"
echo "$out" | grep '✗' | diag

echo "1..$n"
exit $failed
