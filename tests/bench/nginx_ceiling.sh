#!/bin/sh
# nginx_ceiling.sh: the HTTP ceiling of this machine for the benchmarks:
# nginx answering a fixed tiny JSON body (nginx_ceiling.conf), driven by the
# same wrk command and request body (tests/load/post_static.lua) as a
# ticketd purchase, so that the two compare as a ratio within one run.
#
#   nginx_ceiling.sh start PORT    start nginx (1 worker) on 127.0.0.1:PORT
#   nginx_ceiling.sh stop          stop it
#   nginx_ceiling.sh wrk PORT [wrk options...]
#                                  POST the purchase body to /buy
#                                  (default -t1 -c64 -d10s), with --latency
#
# CEILING_DIR (default /tmp/ticketd-ceiling-$USER) holds its pid file, error
# log and temp files. Needs nginx (Debian: nginx or nginx-light) and wrk.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dir=${CEILING_DIR:-/tmp/ticketd-ceiling-$(id -un)}
usage() {
	cat <<USAGE
usage: nginx_ceiling.sh start PORT | stop | wrk PORT [wrk options...]
  start PORT   start nginx (1 worker) on 127.0.0.1:PORT, answering {"ok":true}
  stop         stop it
  wrk PORT     drive it with the benchmark's wrk command (default -t1 -c64 -d10s)
CEILING_DIR (now $dir) holds its pid file, log and temp files.
USAGE
}
case "${1:-}" in
start)
	port=${2:?usage: nginx_ceiling.sh start PORT}
	command -v nginx >/dev/null 2>&1 || { echo "nginx_ceiling.sh: nginx is not installed" >&2; exit 1; }
	mkdir -p "$dir/tmp"
	sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" "$here/nginx_ceiling.conf" >"$dir/nginx.conf"
	# -e: the error log before the config is read (nginx >= 1.19.5).
	nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf"
	echo "$dir/nginx.pid"
	;;
stop)
	if [ -f "$dir/nginx.pid" ]; then
		kill -QUIT "$(cat "$dir/nginx.pid")" 2>/dev/null || true
	fi
	;;
wrk)
	port=${2:?usage: nginx_ceiling.sh wrk PORT [wrk options...]}
	shift 2
	[ $# -gt 0 ] || set -- -t1 -c64 -d10s
	exec wrk "$@" --latency -s "$here/../load/post_static.lua" "http://127.0.0.1:$port/buy"
	;;
-h|--help)
	usage
	;;
*)
	usage >&2
	exit 2
	;;
esac
