#!/bin/sh
# test_install.sh: `make install DESTDIR=...` puts every file in its place,
# the installed units and man pages name the installed daemon and config, and
# `make uninstall` takes it all back. Runs make in TICKETD_BUILDDIR. TAP.
set -u
B=${TICKETD_BUILDDIR:-.}
n=0 failed=0

ok() { # ok STATUS DESCRIPTION: one TAP test point, passed when STATUS is 0
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi
}
skip() { n=$((n + 1)); echo "ok $n # SKIP $1"; }
diag() { sed 's/^/# /'; }
# make without the calling make's jobserver, which this shell does not hold.
submake() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL ${MAKE:-make} -s -C "$B" "$@"; }

dest=$(mktemp -d "${TMPDIR:-/tmp}/test_install.XXXXXX") || exit 1
trap 'rm -rf "$dest"' EXIT INT TERM

out=$(submake install DESTDIR="$dest" 2>&1)
rc=$?
ok $rc "make install DESTDIR=$dest"
[ "$rc" -eq 0 ] || echo "$out" | tail -n 20 | diag

# find_one PATTERN: the one installed file whose path matches PATTERN.
find_one() { find "$dest" -path "$1" \( -type f -o -type l \) | head -n 1; }

sbin=$(find_one '*/sbin/ticketd')
test -n "$sbin" && test -x "$sbin"
ok $? "the daemon is installed in sbindir: ${sbin#"$dest"}"
conf=$(find_one '*/etc/ticketd/ticketd.conf')
test -n "$conf"
ok $? "the sample config is installed as \$(sysconfdir)/ticketd/ticketd.conf: ${conf#"$dest"}"
m8=$(find_one '*/man8/ticketd.8')
m5=$(find_one '*/man5/ticketd.conf.5')
test -n "$m8" && test -n "$m5"
ok $? "the man pages are installed in mandir: ${m8#"$dest"} ${m5#"$dest"}"
ops=$(find_one '*/doc/ticketd/operations.md')
test -n "$ops"
ok $? "the operations guide is installed in docdir: ${ops#"$dest"}"

# Installed paths, as the running system will see them.
sbin_p=${sbin#"$dest"}
conf_p=${conf#"$dest"}
# (the pages write paths with \: break points after each /)
test -n "$conf_p" && sed 's/\\://g' "$m8" 2>/dev/null | grep -qF "$conf_p" &&
	sed 's/\\://g' "$m5" 2>/dev/null | grep -qF "$conf_p"
ok $? "the man pages name the installed config $conf_p"

if [ -z "$(sed -n 's/^systemdsystemunitdir = //p' "$B/Makefile")" ]; then
	skip "configured --with-systemdsystemunitdir=no: no units to install"
	skip "configured --with-systemdsystemunitdir=no: no units to install"
else
	svc=$(find_one '*/ticketd.service')
	sock=$(find_one '*/ticketd.socket')
	test -n "$svc" && test -n "$sock"
	ok $? "the units are installed in the unit dir: ${svc#"$dest"} ${sock#"$dest"}"
	test -n "$sbin_p" && test -n "$conf_p" && test -n "$svc" &&
		grep -q "^ExecStart=$sbin_p -c $conf_p " "$svc" &&
		grep -q "^ExecStartPre=$sbin_p -t -c $conf_p " "$svc" &&
		grep -q "^LoadCredential=admin-token:${conf_p%/*}/admin-token\$" "$svc"
	ok $? "the installed service runs $sbin_p with $conf_p"
fi

out=$(submake uninstall DESTDIR="$dest" 2>&1)
rc=$?
left=$(find "$dest" \( -type f -o -type l \) | sed "s|^$dest||")
test "$rc" -eq 0 && test -z "$left"
ok $? "make uninstall removes every installed file"
[ -z "$left" ] && [ "$rc" -eq 0 ] || printf '%s\n%s\n' "$out" "$left" | diag

# An operator's config survives a reinstall (the sample goes next to it)
# and an uninstall; an unchanged sample is replaced and removed.
if [ -n "$conf" ]; then
	submake install DESTDIR="$dest" >/dev/null 2>&1
	echo '{"events": [{"id": "mine", "tiers": {"general": 1}}]}' >"$conf"
	out=$(submake install DESTDIR="$dest" 2>&1)
	grep -q '"mine"' "$conf" && test -f "$conf.sample" &&
		cmp -s "${TICKETD_SRCDIR:-.}/conf/ticketd.conf" "$conf.sample"
	ok $? "a reinstall keeps an edited ticketd.conf and puts the sample in ticketd.conf.sample"
	submake uninstall DESTDIR="$dest" >/dev/null 2>&1
	left=$(find "$dest" \( -type f -o -type l \) | sed "s|^$dest||")
	test "$left" = "$conf_p"
	ok $? "make uninstall leaves only the edited config behind${left:+: $left}"
else
	skip "no config installed"
	skip "no config installed"
fi

echo "1..$n"
exit $failed
