#!/bin/sh
# quickstart.sh: the README's two commands on a fresh Debian 12 machine:
# install what is missing, build out of tree in _build/, then run ticketd on
# the sample configuration or run the test suite. Says what it does, one
# line a step; the tools' own output goes to _build/quickstart.log unless a
# step fails. `./quickstart.sh` alone prints the usage.
set -eu
cd "$(dirname "$0")"
top=$(pwd)

usage() {
	cat <<'USAGE'
Usage: ./quickstart.sh run | check

  run     install what is missing, build, and run ticketd in the foreground
          on the sample configuration (conf/ticketd.conf: 127.0.0.1:8080, a
          concert and a flash sale) with an admin token, so refunds work.
          Its state (the order ledger) goes to $XDG_STATE_HOME/ticketd, by
          default ~/.local/state/ticketd; Ctrl-C stops it cleanly.
  check   install what is missing, build, and run the whole test suite
          (make check, about 7 minutes on 2 cores), then the stress tests
          again in a ThreadSanitizer build (_build-tsan/).

Packages come from apt-get (with sudo unless run as root). The build is an
ordinary autotools one in _build/; its output is in _build/quickstart.log.
USAGE
}

case "${1:-}" in
run|check) ;;
-h|--help) usage; exit 0 ;;
*) usage >&2; exit 2 ;;
esac

say() { echo "quickstart: $*" >&2; }
log=$top/_build/quickstart.log
mkdir -p _build
: >"$log"
# quiet CMD...: runs CMD with its output in the log; on failure shows the
# end of the log and exits.
quiet() {
	if ! "$@" >>"$log" 2>&1; then
		say "failed: $*; the last lines of $log:"
		tail -n 30 "$log" >&2
		exit 1
	fi
}

PKGS="build-essential autoconf automake libtool pkg-config libevent-dev
libjansson-dev libsystemd-dev libsqlite3-dev sqlite3 python3 curl wrk nginx
openssl systemd clang libclang-rt-14-dev strace pmccabe"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	sudo=""
	[ "$(id -u)" = 0 ] || sudo=sudo
	say "installing with apt-get (a minute or two):$missing"
	quiet $sudo apt-get update -qq
	# shellcheck disable=SC2086
	quiet $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends $missing
fi

jobs=$(nproc 2>/dev/null || echo 2)
if [ ! -x configure ]; then
	say "generating ./configure (autogen.sh)"
	quiet ./autogen.sh
fi

# build DIR [configure options...]: configure (once) and build in DIR.
build() {
	dir=$1; shift
	mkdir -p "$dir"
	if [ ! -f "$dir/Makefile" ]; then
		say "configuring $dir/ $*"
		quiet sh -c 'cd "$1" && shift && "$0" -q --enable-werror "$@"' \
			"$top/configure" "$dir" "$@"
	fi
	say "building in $dir/ (about 30 s the first time)"
	quiet make -C "$dir" -j"$jobs"
}

case $1 in
run)
	build _build
	bin=$top/_build/daemon/ticketd
	base=${XDG_STATE_HOME:-$HOME/.local/state}/ticketd
	state=$base/state
	token=$base/admin-token
	conf=$base/ticketd.conf
	mkdir -p "$base"
	chmod 700 "$base"
	if [ ! -s "$token" ]; then
		say "making an admin token in $token"
		(umask 077 && head -c 24 /dev/urandom | base64 >"$token")
	fi
	# The sample configuration, with the admin token added (and nothing
	# else changed); the state dir is given with -s.
	(umask 077 && sed "1a\\
	\"admin_token_file\": \"$token\"," conf/ticketd.conf >"$conf")
	quiet "$bin" -t -c "$conf" -s "$state"
	addr=$("$bin" -t -c "$conf" | sed -n 's/^listen: *\([^ ,]*\).*/\1/p')
	say "starting ticketd on $addr (conf/ticketd.conf, state in $state)"
	# Once it answers /healthz, say where it is and what to try; meanwhile
	# ticketd runs in the foreground (its log on this terminal, Ctrl-C
	# stops it) as this script's own process.
	(
		i=0
		while [ $i -lt 300 ] && kill -0 $$ 2>/dev/null; do
			if curl -sf -o /dev/null "http://$addr/healthz"; then
				cat >&2 <<READY

quickstart: ticketd is ready on http://$addr/ (state in $state)
  from another terminal, buy two VIP tickets:
    curl -i -X POST http://$addr/v1/events/concert/purchase -H 'Content-Type: application/json' \\
         -d '{"quantity":2,"tier":"vip","vip_code":"backstage","buyer":"alice"}'
  see the stock:   curl -s http://$addr/v1/events/concert
  refund order 1-1 (the token is in $token):
    curl -i -X POST http://$addr/v1/orders/1-1/refund -H "Authorization: Bearer \$(cat $token)"
  Ctrl-C here stops ticketd (it finishes the requests in flight).

READY
				exit 0
			fi
			sleep 0.1
			i=$((i + 1))
		done
	) &
	exec "$bin" -c "$conf" -s "$state"
	;;
check)
	build _build
	rc=0
	say "running the test suite: make check (about 7 minutes on 2 cores)"
	make -C _build -j"$jobs" check || rc=$?
	build _build-tsan --enable-tsan
	say "running the stress tests in the ThreadSanitizer build: make check-stress"
	make -C _build-tsan -j"$jobs" check-stress || rc=$?
	[ $rc -eq 0 ] && say "all tests passed" || say "some tests failed (see above)"
	exit $rc
	;;
esac
