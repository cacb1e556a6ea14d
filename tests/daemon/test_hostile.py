"""test_hostile.py: a battery of malformed and abusive requests against a real
ticketd, over raw sockets, each checked for its exact status and error code
(docs/robustness.md lists them): broken, truncated and deeply nested JSON,
wrong types, bad quantities, unknown fields, overlong and empty buyers, NUL
bytes, invalid UTF-8, a 10 MiB body, Content-Lengths that lie both ways,
chunked bodies good and bad, a header flood, an overlong URL, bad percent
escapes, path traversal, bad ids, unknown methods, HTTP/1.0, pipelining,
Expect: 100-continue, and a request that stops half way. Where evhttp
answers by itself (an HTML page, Connection: close) the exact page is
checked. Afterwards the daemon is up, serves a purchase, and every tier's
stock moved only by the purchases the battery meant to make.
"""
import os
import sys

import tap
from hostile_http import exchange
from ticketd_test import SCALE, Daemon, base_config, watchdog

watchdog(240)

REQ_MS = 1500       # limits.request_timeout_ms: the deadline cases wait this long
conf = base_config(limits={"max_body_bytes": 65536, "max_header_bytes": 8192,
                           "request_timeout_ms": int(REQ_MS * SCALE),
                           "idle_timeout_ms": int(4000 * SCALE)})
d = Daemon(conf).start()
C = "/v1/events/concert/purchase"      # refused requests aim here: no sale
F = "/v1/events/flash-sale/purchase"   # the battery's good purchases land here


def stock():
    return {e["id"]: e["tiers"] for e in d.get("/v1/events").json["events"]}


def post(body, path=C, headers=(), version=b"HTTP/1.1", length=None):
    """A POST with body; length overrides the Content-Length (None: true)."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    h = b"POST " + path.encode() + b" " + version + b"\r\nHost: t\r\n"
    for k, v in headers:
        h += k + b": " + v + b"\r\n"
    if length is not False:
        h += b"Content-Length: %d\r\n" % (len(body) if length is None else length)
    return h + b"\r\n" + body


def get(path, method=b"GET", version=b"HTTP/1.1", extra=b""):
    if isinstance(path, str):
        path = path.encode("utf-8")
    return method + b" " + path + b" " + version + b"\r\nHost: t\r\n" + extra + b"\r\n"


HTML = "<html>"   # evhttp's own error page
cases = []        # (name, request, [(status, code)], end, options)


def case(name, request, expect, end=None, **opts):
    cases.append((name, request, expect, end, opts))


# ---- JSON bodies: 400 with the exact code ----------------------------------------
bad_json = [
    ("malformed JSON", b"{nope", "invalid_json"),
    ("truncated JSON", b'{"buyer": "a", "quan', "invalid_json"),
    ("truncated string", b'{"buyer": "a', "invalid_json"),
    ("trailing garbage", b'{"buyer":"a"}}', "invalid_json"),
    ("objects nested 10000 deep", b'{"a":' * 10000 + b"1" + b"}" * 10000, "invalid_json"),
    ("arrays nested 30000 deep, unclosed", b'{"buyer":"a","x":' + b"[" * 30000, "invalid_json"),
    ("arrays nested 2049 deep", b'{"buyer":"a","x":' + b"[" * 2049 + b"]" * 2049 + b"}",
     "invalid_json"),
    ("empty body", b"", "invalid_json"),
    ("body null", b"null", "invalid_json"),
    ("body a string", b'"buyer"', "invalid_json"),
    ("body an array", b'[{"buyer":"a"}]', "invalid_body"),
    ("UTF-8 BOM before the object", b'\xef\xbb\xbf{"buyer":"a"}', "invalid_json"),
    ("duplicate key", b'{"buyer":"a","buyer":"b"}', "invalid_json"),
    ("buyer a number", b'{"buyer":5}', "invalid_field"),
    ("buyer an array", b'{"buyer":["a"]}', "invalid_field"),
    ("buyer an object", b'{"buyer":{"name":"a"}}', "invalid_field"),
    ("buyer true", b'{"buyer":true}', "invalid_field"),
    ("tier a number", b'{"buyer":"a","tier":1}', "invalid_field"),
    ("tier null", b'{"buyer":"a","tier":null}', "invalid_field"),
    ("tier in capitals", b'{"buyer":"a","tier":"VIP"}', "unknown_tier"),
    ("tier with a NUL escape", b'{"buyer":"a","tier":"vip\\u0000"}', "invalid_json"),
    ("vip_code an array", b'{"buyer":"a","tier":"vip","vip_code":[]}', "invalid_field"),
    ("vip_code of 129 bytes", ('{"buyer":"a","tier":"vip","vip_code":"%s"}' % ("v" * 129)).encode(),
     "invalid_field"),
    ("quantity 0", b'{"buyer":"a","quantity":0}', "invalid_quantity"),
    ("quantity -1", b'{"buyer":"a","quantity":-1}', "invalid_quantity"),
    ("quantity 1.5", b'{"buyer":"a","quantity":1.5}', "invalid_quantity"),
    ("quantity 1.0", b'{"buyer":"a","quantity":1.0}', "invalid_quantity"),
    ("quantity 1e0", b'{"buyer":"a","quantity":1e0}', "invalid_quantity"),
    ("quantity 1e30", b'{"buyer":"a","quantity":1e30}', "invalid_quantity"),
    ("quantity 2^63-1", b'{"buyer":"a","quantity":9223372036854775807}', "invalid_quantity"),
    ("quantity -2^63", b'{"buyer":"a","quantity":-9223372036854775808}', "invalid_quantity"),
    ("quantity 2^63", b'{"buyer":"a","quantity":9223372036854775808}', "invalid_json"),
    ("quantity 2^64", b'{"buyer":"a","quantity":18446744073709551616}', "invalid_json"),
    ("quantity \"2\"", b'{"buyer":"a","quantity":"2"}', "invalid_quantity"),
    ("quantity null", b'{"buyer":"a","quantity":null}', "invalid_quantity"),
    ("quantity true", b'{"buyer":"a","quantity":true}', "invalid_quantity"),
    ("quantity 11 (max_quantity 10)", b'{"buyer":"a","quantity":11}', "invalid_quantity"),
    ("unknown field", b'{"buyer":"a","price":0}', "unknown_field"),
    ("unknown field, odd key", b'{"buyer":"a","\\u00e9\\n\\"":1}', "unknown_field"),
    ("missing buyer", b'{"quantity":1}', "missing_field"),
    ("empty buyer", b'{"buyer":""}', "invalid_field"),
    ("buyer of 129 bytes", ('{"buyer":"%s"}' % ("x" * 129)).encode(), "invalid_field"),
    ("buyer of 43 euro signs (129 bytes)", ('{"buyer":"%s"}' % ("\u20ac" * 43)).encode("utf-8"),
     "invalid_field"),
    ("buyer with \\u0000", b'{"buyer":"a\\u0000b"}', "invalid_json"),
    ("buyer with a raw NUL", b'{"buyer":"a\x00b"}', "invalid_json"),
    ("raw NUL after the object", b'{"buyer":"a"}\x00', "invalid_json"),
    ("buyer with ESC", b'{"buyer":"a\\u001bb"}', "invalid_field"),
    ("buyer with DEL", b'{"buyer":"a\x7fb"}', "invalid_field"),
    ("buyer with a C1 control (\\u0085)", b'{"buyer":"a\\u0085b"}', "invalid_field"),
    ("buyer with a raw C1 control (U+009F)", b'{"buyer":"a\xc2\x9fb"}', "invalid_field"),
    ("invalid UTF-8 (\\xff)", b'{"buyer":"\xff"}', "invalid_json"),
    ("overlong UTF-8 for '/'", b'{"buyer":"\xc0\xaf"}', "invalid_json"),
    ("UTF-8 surrogate", b'{"buyer":"\xed\xa0\x80"}', "invalid_json"),
    ("lone surrogate escape", b'{"buyer":"\\ud800"}', "invalid_json"),
]
for name, body, code in bad_json:
    case(name, post(body, headers=[(b"Content-Type", b"application/json")]), [(400, code)], "open")

# ---- rules beyond the body --------------------------------------------------------
case("vip with a wrong code", post(b'{"buyer":"a","tier":"vip","vip_code":"nope"}'),
     [(403, "invalid_vip_code")], "open")
case("vip on an event without vip", post(b'{"buyer":"a","tier":"vip","vip_code":"x"}', path=F),
     [(400, "unknown_tier")], "open")

# ---- bodies and framing -------------------------------------------------------------
case("10 MiB body (Content-Length)", post(b"x" * (10 << 20)), [(413, HTML)], "closed")
case("10 MiB chunk announced", post(b"a00000\r\n" + b"x" * 1000, length=False,
                                    headers=[(b"Transfer-Encoding", b"chunked")]),
     [(413, HTML)], "closed")
case("Content-Length too short: the rest is a bad next request",
     post(b'{"buyer":"a"}\r\n\r\n', length=5), [(400, "invalid_json"), (400, HTML)], "closed",
     replies=2)
case("Content-Length too long: cut off at request_timeout_ms",
     post(b'{"buyer":"a"}', length=50), [], "closed", replies=0, deadline=True)
case("Content-Length negative", post(b'{"buyer":"a"}', length=-1), [(400, HTML)], "closed")
case("Content-Length not a number",
     post(b'{"buyer":"a"}', length=False, headers=[(b"Content-Length", b"abc")]),
     [(400, HTML)], "closed")
case("Content-Length beyond 64 bits: cut off at request_timeout_ms",
     post(b'{"buyer":"a"}', length=False,
          headers=[(b"Content-Length", b"99999999999999999999999")]),
     [], "closed", replies=0, deadline=True)
case("two Content-Lengths", post(b'{"buyer":"a"}', headers=[(b"Content-Length", b"13")]),
     [(400, "invalid_request")], "closed")
case("Content-Length and chunked", post(b'{"buyer":"a"}', headers=[(b"Transfer-Encoding", b"chunked")]),
     [(400, HTML)], "closed")
case("Transfer-Encoding gzip", post(b'{"buyer":"a"}', headers=[(b"Transfer-Encoding", b"gzip")]),
     [(400, HTML)], "closed")
case("chunked, valid, two chunks", post(b'9\r\n{"buyer":\r\n7\r\n"chunk"\r\n1\r\n}\r\n0\r\n\r\n',
                                         path=F, length=False,
                                         headers=[(b"Transfer-Encoding", b"chunked")]),
     [(201, None)], "open", sells=1)
case("chunked, malformed size", post(b"zz\r\nabc\r\n0\r\n\r\n", length=False,
                                     headers=[(b"Transfer-Encoding", b"chunked")]),
     [(413, HTML)], "closed")
case("chunked, negative size", post(b"-5\r\nabc\r\n0\r\n\r\n", length=False,
                                    headers=[(b"Transfer-Encoding", b"chunked")]),
     [(413, HTML)], "closed")
case("chunked, with an extension", post(b'd;x=y\r\n{"buyer":"a"}\r\n0\r\n\r\n', length=False,
                                        headers=[(b"Transfer-Encoding", b"chunked")]),
     [(413, HTML)], "closed")
case("chunked, never finished: cut off at request_timeout_ms",
     post(b'd\r\n{"buyer":"a"}\r\n', length=False, headers=[(b"Transfer-Encoding", b"chunked")]),
     [], "closed", replies=0, deadline=True)

# ---- request line and headers -------------------------------------------------------
case("header flood (3000 headers)",
     get("/healthz", extra=b"".join(b"X-H%d: v\r\n" % i for i in range(3000))),
     [(400, HTML)], "closed")
case("one header over max_header_bytes", get("/healthz", extra=b"X-Big: " + b"a" * 9000 + b"\r\n"),
     [(400, HTML)], "closed")
case("header without a colon", get("/healthz", extra=b"NoColon\r\n"), [(400, HTML)], "closed")
case("header folding with nothing to fold into", b"GET /healthz HTTP/1.1\r\n folded\r\n\r\n",
     [(400, HTML)], "closed")
case("NUL in a header name", get("/healthz", extra=b"X\x00A: b\r\n"), [(400, HTML)], "closed")
case("URL of 3000 bytes (max_url_bytes 2048)", get("/v1/events/" + "a" * 3000),
     [(414, "uri_too_long")], "open")
case("URL longer than max_header_bytes", get("/" + "a" * 9000), [(400, HTML)], "closed")
case("garbage request line", b"GARBAGE\r\n\r\n", [(400, HTML)], "closed")
case("no HTTP version (HTTP/0.9)", b"GET /healthz\r\n\r\n", [(400, HTML)], "closed")
case("HTTP/2.0 request line", get("/healthz", version=b"HTTP/2.0"), [(400, HTML)], "closed")
case("empty request target", b"GET  HTTP/1.1\r\n\r\n", [(400, HTML)], "closed")
case("raw NUL in the URL", get(b"/v1/events/a\x00b"), [(400, HTML)], "closed")
case("bad percent-escape %zz", get("/v1/events/%zz"), [(404, "not_found")], "open")
case("truncated percent-escape", get("/v1/events/concert%"), [(404, "not_found")], "open")
case("%00 in the path", get("/v1/events/con%00cert"), [(404, "not_found")], "open")
case("path traversal ../../etc/passwd", get("/v1/events/../../etc/passwd"),
     [(404, "not_found")], "open")
case("path traversal %2e%2e", get("/v1/events/%2e%2e/%2e%2e/etc/passwd"),
     [(404, "not_found")], "open")
case("traversal onto a real route", post(b'{"buyer":"a"}', path="/v1/events/x/../concert/purchase"),
     [(404, "not_found")], "open")
case("id with a dot", get("/v1/events/con.cert"), [(404, "not_found")], "open")
case("id with raw UTF-8", get("/v1/events/caf\u00e9"), [(404, "not_found")], "open")
case("id with a control byte", get(b"/v1/events/a\x01b"), [(404, "not_found")], "open")
case("id of 65 characters", get("/v1/events/" + "a" * 65), [(404, "not_found")], "open")
case("order id with ';'", get("/v1/orders/1;2"), [(404, "not_found")], "open")
case("asterisk target", get("*", method=b"OPTIONS"), [(404, "not_found")], "open")

# ---- methods -------------------------------------------------------------------------
case("unknown method FOO", get("/healthz", method=b"FOO"), [(501, HTML)], "closed")
case("WebDAV PROPFIND", get("/healthz", method=b"PROPFIND"), [(501, HTML)], "closed")
case("TRACE on a known path", get("/healthz", method=b"TRACE"), [(405, "method_not_allowed")],
     "open", allow="GET")
case("DELETE on the purchase route", get(C, method=b"DELETE"), [(405, "method_not_allowed")],
     "open", allow="POST")
case("GET on the purchase route", get(C), [(405, "method_not_allowed")], "open", allow="POST")
case("HEAD: 405 without a body", get("/healthz", method=b"HEAD"), [(405, None)], "open",
     allow="GET", head=True)

# ---- protocol versions, pipelining, 100-continue, halves -------------------------------
case("HTTP/1.0 GET: answered, then closed", get("/healthz", version=b"HTTP/1.0"),
     [(200, None)], "closed")
case("HTTP/1.0 purchase: 201, then closed", post(b'{"buyer":"h10"}', path=F, version=b"HTTP/1.0"),
     [(201, None)], "closed", sells=1)
case("HTTP/1.0 keep-alive: two requests", get("/healthz", version=b"HTTP/1.0",
                                               extra=b"Connection: keep-alive\r\n") +
     get("/healthz", version=b"HTTP/1.0"), [(200, None), (200, None)], "closed", replies=2)
case("pipelined: GET, purchase, bad JSON, GET, answered in order",
     get("/healthz") + post(b'{"buyer":"pipe"}', path=F) + post(b"{") + get("/v1/events/nope"),
     [(200, None), (201, None), (400, "invalid_json"), (404, "event_not_found")], "open",
     replies=4, sells=1)
# The client shuts its side after sending (shutdown(SHUT_WR)): the daemon
# sees EPOLLRDHUP while it holds the request (http.c's EV_CLOSED watch) and
# must still answer every request it read, then close.
case("purchase, then the client half-closes: 201, then closed",
     post(b'{"buyer":"half"}', path=F), [(201, None)], "closed", shut=True, sells=1)
case("two pipelined purchases, then a half-close: both answered, then closed",
     post(b'{"buyer":"half2"}', path=F) + post(b'{"buyer":"half3"}', path=F),
     [(201, None), (201, None)], "closed", replies=2, shut=True, sells=2)
case("Expect: 100-continue", post(b"", path=F, length=15,
                                  headers=[(b"Expect", b"100-continue")]),
     [(100, None), (201, None)], "open", then=b'{"buyer":"100"}', sells=1)
case("Expect: something else", post(b'{"buyer":"a"}', headers=[(b"Expect", b"teapot")]),
     [(417, HTML)], "closed")
case("first half of the headers: cut off at request_timeout_ms",
     b"POST " + C.encode() + b" HTTP/1.1\r\nHost: t\r\nContent-Le", [], "closed",
     replies=0, deadline=True)
case("first half of the body: cut off at request_timeout_ms",
     post(b'{"buyer":"a"}')[:-6], [], "closed", replies=0, deadline=True)
case("headers trickled slower than the deadline (slowloris)",
     [(b"GET /healthz HTTP/1.1\r\n", 0.25)] +
     [(b"X-%d: v\r\n" % i, 0.25) for i in range(int(8 * REQ_MS * SCALE / 1000.0))],
     [], "closed", replies=0, deadline=True)

# ---- run them ------------------------------------------------------------------------
before = stock()
sold_by_battery = 0
results = []
for name, request, expect, end, opts in cases:
    ex = exchange(d.host, d.port, request, replies=opts.get("replies", 1),
                  head=opts.get("head", False), then=opts.get("then"),
                  shut=opts.get("shut", False),
                  linger=0.1, timeout=max(10, 4 * REQ_MS / 1000.0))
    got = [(r.status, r.code()) for r in ex.replies]
    ok = got == expect
    if ok and end is not None:
        # A refused request must not be left hanging: evhttp's pages and
        # HTTP/1.0 close; keep-alive stays open for the next request.
        ok = ex.end == end or (end == "closed" and ex.end == "reset")
    if ok and "allow" in opts:
        ok = ex.replies[-1].headers.get("allow") == opts["allow"]
    if ok and opts.get("deadline"):
        # Closed by the request deadline, not at once (the lower bound is
        # the point: the guard waited for the client, then cut it off).
        ok = ex.elapsed >= 0.8 * REQ_MS * SCALE / 1000.0
    if ok and expect and expect[-1][0] >= 400 and expect[-1][1] not in (HTML, None):
        last = ex.replies[-1]
        ok = last.headers.get("content-type") == "application/json" and \
            isinstance(last.json.get("message"), str) and last.json["message"] != ""
    if not ok:
        tap.diag("%s: got %r" % (name, ex))
    for r in ex.replies:
        if r.status == 201:
            sold_by_battery += r.json["quantity"] if r.json else 1
    want = ", ".join("%d %s" % (s, c or "") for s, c in expect) or "no reply"
    tap.ok(ok, "%s: %s, %s" % (name, want.strip(), end))
    results.append((name, got, ex.end))
tap.ok(len(cases) >= 50, "%d hostile requests tried" % len(cases))
if os.environ.get("HOSTILE_TABLE"):
    # For docs/robustness.md: what each request got, as a Markdown table.
    with open(os.environ["HOSTILE_TABLE"], "w") as f:
        f.write("| # | request | replies | then |\n|---|---|---|---|\n")
        for i, (name, got, end) in enumerate(results, 1):
            f.write("| %d | %s | %s | %s |\n" % (
                i, name.replace("|", "\\|"),
                ", ".join(("%d %s" % (st, "`%s`" % c if c and c != HTML else
                                      "(HTML)" if c else "")).strip()
                          for st, c in got) or "none",
                end))

# ---- afterwards -----------------------------------------------------------------------
tap.eq(d.get("/healthz").status, 200, "the daemon is still up")
after = stock()
tap.eq(after["concert"], before["concert"], "no refused request changed the concert's stock")
fs = after["flash-sale"]["general"]
tap.eq((fs["sold"], fs["sold"] + fs["available"]),
       (before["flash-sale"]["general"]["sold"] + sold_by_battery, fs["capacity"]),
       "flash-sale sold exactly the battery's %d accepted purchases" % sold_by_battery)
r = d.purchase("concert", buyer="after the battery", quantity=2)
tap.eq(r.status, 201, "a normal purchase succeeds after the battery")
c = stock()["concert"]
want = dict(before["concert"])
want["general"] = dict(want["general"], sold=want["general"]["sold"] + 2,
                       available=want["general"]["available"] - 2)
tap.eq(c, want, "and moves the concert's stock by exactly its 2 tickets")
d.finish("hostile daemon")
sys.exit(tap.done())
