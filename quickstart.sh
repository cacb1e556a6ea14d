#!/bin/sh
# quickstart.sh: the README's two commands on a fresh Debian 12 machine.
#
#   ./quickstart.sh run     install what is missing, build, run ticketd with conf/ticketd.conf
#   ./quickstart.sh check   install what is missing, build, run the whole test suite
#                           (make check, then the stress tests again in a ThreadSanitizer tree)
#
# Builds out of tree in _build/ (and _build-tsan/); runs as root or with sudo.
set -eu
cd "$(dirname "$0")"
top=$(pwd)

PKGS="build-essential autoconf automake libtool pkg-config libevent-dev
libjansson-dev libsystemd-dev libsqlite3-dev sqlite3 python3 curl wrk
systemd clang libclang-rt-14-dev strace pmccabe"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	sudo=""
	[ "$(id -u)" = 0 ] || sudo=sudo
	echo "quickstart: installing:$missing"
	$sudo apt-get update -qq
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
fi

jobs=$(nproc 2>/dev/null || echo 2)
[ -x configure ] || ./autogen.sh

# build DIR [configure options...]: configure (once) and build in DIR.
build() {
	dir=$1; shift
	mkdir -p "$dir"
	[ -f "$dir/Makefile" ] || (cd "$dir" && "$top/configure" -q --enable-werror "$@")
	make -C "$dir" -j"$jobs" >/dev/null
}

case "${1:-}" in
run)
	build _build
	exec ./_build/daemon/ticketd -c conf/ticketd.conf
	;;
check)
	build _build
	rc=0
	make -C _build -j"$jobs" check || rc=$?
	build _build-tsan --enable-tsan
	make -C _build-tsan -j"$jobs" check-stress || rc=$?
	exit $rc
	;;
*)
	sed -n '2,9p' "$0" >&2
	exit 2
	;;
esac
