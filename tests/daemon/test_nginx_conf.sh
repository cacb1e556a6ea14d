#!/bin/sh
# test_nginx_conf.sh: conf/nginx-ticketd.conf, the reverse proxy that
# docs/operations.md puts in front of ticketd, passes `nginx -t`. It is
# checked inside a private prefix (its own pid file, error log, temp
# paths) with a throw-away self-signed certificate in place of the
# sample's; nothing is started or bound. Also checks that the operator
# routes and /metrics end in "deny all". Skips where nginx or openssl is
# missing. TAP on stdout.
set -u
S=${TICKETD_SRCDIR:-.}
conf=$S/conf/nginx-ticketd.conf
n=0 failed=0
ok() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi; }
skip_all() { echo "1..0 # SKIP $1"; exit 0; }

test -f "$conf" || { echo "not ok 1 - $conf exists"; echo "1..1"; exit 1; }
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || skip_all "nginx not installed (apt-get install nginx)"
command -v openssl >/dev/null 2>&1 || skip_all "openssl not installed"
nginx=$(command -v nginx || echo /usr/sbin/nginx)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_nginx_conf.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
mkdir -p "$tmp/temp" "$tmp/logs"

openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=tickets.example.com \
	-keyout "$tmp/key.pem" -out "$tmp/cert.pem" >"$tmp/openssl.log" 2>&1
ok $? "a throw-away self-signed certificate"

# The sample, with the certificate paths pointed at the throw-away pair.
sed -e "s|^\( *ssl_certificate \).*|\1$tmp/cert.pem;|" \
    -e "s|^\( *ssl_certificate_key \).*|\1$tmp/key.pem;|" "$conf" >"$tmp/site.conf"
grep -q "ssl_certificate $tmp/cert.pem;" "$tmp/site.conf" &&
	grep -q "ssl_certificate_key $tmp/key.pem;" "$tmp/site.conf"
ok $? "the sample's certificate and key lines were found and replaced"

cat >"$tmp/nginx.conf" <<CONF
pid $tmp/nginx.pid;
error_log $tmp/logs/error.log;
events {}
http {
    access_log off;
    client_body_temp_path $tmp/temp/body;
    proxy_temp_path $tmp/temp/proxy;
    fastcgi_temp_path $tmp/temp/fastcgi;
    uwsgi_temp_path $tmp/temp/uwsgi;
    scgi_temp_path $tmp/temp/scgi;
    include $tmp/site.conf;
}
CONF
out=$("$nginx" -t -p "$tmp/" -e "$tmp/logs/error.log" -c "$tmp/nginx.conf" 2>&1)
rc=$?
test $rc -eq 0
ok $? "nginx -t accepts conf/nginx-ticketd.conf (exit $rc)"
[ $rc -eq 0 ] || echo "$out" | sed 's/^/# /'

# Each restricted location ends its allow list with deny all.
for loc in 'location ~ ^/v1/orders/[^/]*/refund' 'location /metrics'; do
	LOC=$loc awk 'index($0, ENVIRON["LOC"]) { inside = 1 } inside && /deny all;/ { found = 1 }
		inside && /}/ { exit !found } END { exit !found }' "$conf"
	ok $? "$loc: allow list, then deny all"
done
grep -q 'server 127.0.0.1:8080;' "$conf"
ok $? "the upstream is ticketd's loopback address, as in ticketd.socket"

echo "1..$n"
exit $failed
