"""test_api.py: the whole HTTP API of one real ticketd, route by route: every
status and error body of docs/api.md, VIP rules and the fallback to the
general pool, 404 JSON for unknown paths, 405 with Allow, 413, 503 with
Retry-After when the worker queue is full, and that no refused request
changes any stock. Order ids survive a restart (new boot epoch).
"""
import email.utils
import re
import sys
import threading
import time

import tap
from ticketd_test import Daemon, base_config, is_error_body, watchdog

watchdog(120)

conf = base_config(events=[
    {"id": "concert", "name": "Concert \"live\"", "tiers": {"general": 900, "vip": 100},
     "vip_code": "backstage"},
    {"id": "flash-sale", "name": "Flash sale", "tiers": {"general": 10000}},
    {"id": "tiny", "name": "Tiny", "tiers": {"general": 3, "vip": 2}, "vip_code": "v"},
    {"id": "no-general", "tiers": {"general": 0, "vip": 2}, "vip_code": "v"},
], limits={"max_body_bytes": 8192})
d = Daemon(conf).start()
conn = d.connect()   # one keep-alive connection for most requests


def req(method, path, body=None, headers=None):
    return d.request(method, path, body=body, headers=headers, conn=conn)


def stock():
    """Every event's tiers, to check that refused requests change nothing."""
    return {e["id"]: e["tiers"] for e in req("GET", "/v1/events").json["events"]}


# ---- health and events ----------------------------------------------------------
r = req("GET", "/healthz")
tap.eq((r.status, r.json), (200, {"status": "ok"}), "GET /healthz")
tap.eq(r.headers.get("content-type"), "application/json", "replies are application/json")

# Date and Content-Length come from lib/evreply.c, not evhttp: exactly one
# of each, an IMF-fixdate close to now, the body's length; none for HEAD.
IMF_FIXDATE = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|"
                         r"Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT")


def send_raw(request):
    """Sends request (bytes) on a fresh socket; returns all it reads up to
    the server's close."""
    return d.raw_request(request)


def raw_headers(method, path, body=b"", version=b"HTTP/1.1"):
    """One request on a fresh socket, read to the close; (status,
    [(name, value)...], body)."""
    close = b"Connection: close\r\n" if version == b"HTTP/1.1" else b""
    data = send_raw(b"%s %s %s\r\nHost: t\r\n%sContent-Length: %d\r\n\r\n%s"
                    % (method, path, version, close, len(body), body))
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hdrs = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:]]
    return int(lines[0].split()[1]), [(k.lower(), v) for k, v in hdrs], rest


for method, path, body, want, version in (
        (b"GET", b"/healthz", b"", 200, b"HTTP/1.1"),
        (b"GET", b"/v1/events/nope", b"", 404, b"HTTP/1.1"),
        (b"POST", b"/v1/events/tiny/purchase", b"{bad", 400, b"HTTP/1.1"),
        (b"GET", b"/healthz", b"", 200, b"HTTP/1.0")):
    status, hdrs, rbody = raw_headers(method, path, body, version)
    dates = [v for k, v in hdrs if k == "date"]
    lens = [v for k, v in hdrs if k == "content-length"]
    ok = status == want and len(dates) == 1 and IMF_FIXDATE.fullmatch(dates[0]) and \
        abs(email.utils.parsedate_to_datetime(dates[0]).timestamp() - time.time()) < 300 and \
        lens == [str(len(rbody))] and len(rbody) > 0
    if not ok:
        tap.diag("%r %r: %d %r %r" % (method, path, status, hdrs, rbody))
    tap.ok(ok, "%s %s %s: one Date (IMF-fixdate, now) and one Content-Length (the body's)"
           % (method.decode(), path.decode(), version.decode()))
status, hdrs, rbody = raw_headers(b"HEAD", b"/healthz")
tap.ok(status == 405 and rbody == b"" and [k for k, v in hdrs if k == "date"] == ["date"] and
       not [k for k, v in hdrs if k == "content-length"],
       "HEAD: a Date, no Content-Length, no body")

r = req("GET", "/v1/events")
tap.eq(r.status, 200, "GET /v1/events: 200")
tap.eq([e["id"] for e in r.json["events"]], ["concert", "flash-sale", "tiny", "no-general"],
       "GET /v1/events lists every event in config order")
concert = r.json["events"][0]
tap.eq(concert, {"id": "concert", "name": "Concert \"live\"", "seller": "mutex",
                 "tiers": {"general": {"capacity": 900, "available": 900, "sold": 0},
                           "vip": {"capacity": 100, "available": 100, "sold": 0}}},
       "EVENT object: id, name (escaped), seller, both tiers")
tap.eq(set(r.json["events"][1]["tiers"]), {"general"}, "an event without vip has no vip tier")
r = req("GET", "/v1/events/flash-sale")
tap.eq((r.status, r.json["id"], r.json["tiers"]["general"]["capacity"]),
       (200, "flash-sale", 10000), "GET /v1/events/{id}")
r = req("GET", "/v1/events/nope")
tap.ok(r.status == 404 and is_error_body(r, "event_not_found"), "unknown event: 404 event_not_found")

# ---- a purchase and its order ---------------------------------------------------------
r = req("POST", "/v1/events/concert/purchase", {"buyer": "alice"})
tap.eq(r.status, 201, "purchase with defaults: 201")
o = r.json
tap.eq(sorted(o), ["buyer", "event", "order", "quantity", "state", "tickets", "tier"],
       "ORDER fields")
tap.eq(o["state"], "confirmed", "a new order is confirmed")
tap.eq((o["event"], o["tier"], o["quantity"], o["buyer"], len(o["tickets"])),
       ("concert", "general", 1, "alice", 1), "quantity defaults to 1, tier to general")
tap.eq(r.headers.get("location"), "/v1/orders/" + o["order"], "Location names the order")
first_order = o
r = req("GET", "/v1/orders/" + o["order"])
tap.eq((r.status, r.json), (200, o), "GET /v1/orders/{id} returns the same ORDER")

r = req("POST", "/v1/events/concert/purchase",
        {"quantity": 3, "tier": "general", "buyer": "bob \"b\" \u00fc\u2603 \\ /"})
tap.eq(r.status, 201, "purchase of 3: 201")
tap.eq(r.json["buyer"], "bob \"b\" \u00fc\u2603 \\ /", "buyer round-trips through JSON escaping")
tap.eq(len(set(r.json["tickets"])), 3, "three distinct ticket codes")
tap.eq(req("GET", r.headers["location"]).json["buyer"], "bob \"b\" \u00fc\u2603 \\ /",
       "GET order escapes the buyer too")
tap.eq(req("GET", "/v1/events/concert").json["tiers"]["general"],
       {"capacity": 900, "available": 896, "sold": 4}, "sold and available follow the sales")

r = req("POST", "/v1/events/concert/purchase", {"buyer": "x" * 128, "quantity": 10})
tap.eq(r.status, 201, "a 128-byte buyer and quantity == max_quantity are accepted")

for oid in ("0-1", "1-999999", "99999-1", "nope", "1-01"):
    r = req("GET", "/v1/orders/" + oid)
    tap.ok(r.status == 404 and is_error_body(r, "order_not_found"),
           "unknown order %s: 404 order_not_found" % oid)

# ---- VIP rules ------------------------------------------------------------------------
r = req("POST", "/v1/events/concert/purchase",
        {"tier": "vip", "vip_code": "backstage", "buyer": "v", "quantity": 2})
tap.eq((r.status, r.json.get("tier")), (201, "vip"), "vip purchase with the code takes vip tickets")
before = stock()
r = req("POST", "/v1/events/concert/purchase", {"tier": "vip", "vip_code": "nope", "buyer": "v"})
tap.ok(r.status == 403 and is_error_body(r, "invalid_vip_code"), "wrong vip_code: 403")
r = req("POST", "/v1/events/concert/purchase", {"tier": "vip", "buyer": "v"})
tap.ok(r.status == 403 and is_error_body(r, "invalid_vip_code"), "missing vip_code: 403")
r = req("POST", "/v1/events/concert/purchase", {"tier": "vip", "vip_code": "backstag", "buyer": "v"})
tap.ok(r.status == 403, "a prefix of the vip_code: 403")
r = req("POST", "/v1/events/flash-sale/purchase", {"tier": "vip", "vip_code": "x", "buyer": "v"})
tap.ok(r.status == 400 and is_error_body(r, "unknown_tier"), "vip on an event without vip: 400")
tap.eq(stock(), before, "refused vip purchases change no stock")

# tiny: general 3, vip 2. VIP takes vip first, then falls back to general.
r = req("POST", "/v1/events/tiny/purchase", {"tier": "vip", "vip_code": "v", "buyer": "a", "quantity": 2})
tap.eq((r.status, r.json["tier"]), (201, "vip"), "tiny: vip buyer empties the vip pool")
r = req("POST", "/v1/events/tiny/purchase", {"tier": "vip", "vip_code": "v", "buyer": "a"})
tap.eq((r.status, r.json["tier"]), (201, "general"), "tiny: vip buyer falls back to general")
r = req("POST", "/v1/events/tiny/purchase", {"buyer": "g", "quantity": 2})
tap.eq(r.status, 201, "tiny: general buyer takes the last 2 general")
r = req("POST", "/v1/events/tiny/purchase", {"buyer": "g"})
tap.ok(r.status == 409 and is_error_body(r, "sold_out") and r.json.get("available") == 0,
       "tiny: sold out: 409 sold_out with available 0")
tap.eq(req("GET", "/v1/events/tiny").json["tiers"],
       {"general": {"capacity": 3, "available": 0, "sold": 3},
        "vip": {"capacity": 2, "available": 0, "sold": 2}}, "tiny: every tier sold exactly out")
# no-general: vip 2, general 0. A general buyer never takes vip tickets.
r = req("POST", "/v1/events/no-general/purchase", {"buyer": "g"})
tap.ok(r.status == 409 and r.json["available"] == 0,
       "general buyer is refused while only vip tickets remain")
r = req("POST", "/v1/events/no-general/purchase",
        {"tier": "vip", "vip_code": "v", "buyer": "a", "quantity": 3})
tap.ok(r.status == 409 and r.json["available"] == 2,
       "409 says how many this buyer could still get (2)")
r = req("POST", "/v1/events/no-general/purchase",
        {"tier": "vip", "vip_code": "v", "buyer": "a", "quantity": 2})
tap.eq((r.status, r.json.get("tier")), (201, "vip"), "then the vip buyer gets both")

# ---- 400: every malformed body, and no stock moves ------------------------------------------
before = stock()
bad = [
    ("not JSON", b"{nope", "invalid_json"),
    ("truncated JSON", b'{"buyer": "a"', "invalid_json"),
    ("empty body", b"", "invalid_json"),
    ("trailing garbage", b'{"buyer":"a"} x', "invalid_json"),
    ("duplicate key", b'{"buyer":"a","buyer":"b"}', "invalid_json"),
    ("invalid UTF-8", b'{"buyer":"\xff\xfe"}', "invalid_json"),
    ("NUL escape", b'{"buyer":"a\\u0000b"}', "invalid_json"),
    ("deep nesting", b'{"buyer":"a","x":' + b"[" * 2100 + b"]" * 2100 + b"}", "invalid_json"),
    ("array body", b'[{"buyer":"a"}]', "invalid_body"),
    ("string body", b'"buyer"', "invalid_json"),
    ("number body", b'5', "invalid_json"),
    ("unknown field", b'{"buyer":"a","price":1}', "unknown_field"),
    ("missing buyer", b'{"quantity":1}', "missing_field"),
    ("empty buyer", b'{"buyer":""}', "invalid_field"),
    ("129-byte buyer", ('{"buyer":"%s"}' % ("x" * 129)).encode(), "invalid_field"),
    ("buyer not a string", b'{"buyer":5}', "invalid_field"),
    ("buyer null", b'{"buyer":null}', "invalid_field"),
    ("buyer with a newline", b'{"buyer":"a\\nb"}', "invalid_field"),
    ("quantity 0", b'{"buyer":"a","quantity":0}', "invalid_quantity"),
    ("quantity -1", b'{"buyer":"a","quantity":-1}', "invalid_quantity"),
    ("quantity 1.5", b'{"buyer":"a","quantity":1.5}', "invalid_quantity"),
    ("quantity 1.0", b'{"buyer":"a","quantity":1.0}', "invalid_quantity"),
    ("quantity \"2\"", b'{"buyer":"a","quantity":"2"}', "invalid_quantity"),
    ("quantity above max_quantity", b'{"buyer":"a","quantity":11}', "invalid_quantity"),
    ("quantity huge", b'{"buyer":"a","quantity":99999999999999999999}', "invalid_json"),
    ("tier unknown", b'{"buyer":"a","tier":"gold"}', "unknown_tier"),
    ("tier not a string", b'{"buyer":"a","tier":1}', "invalid_field"),
    ("vip_code not a string", b'{"buyer":"a","tier":"vip","vip_code":1}', "invalid_field"),
]
for name, body, code in bad:
    r = req("POST", "/v1/events/concert/purchase", body, {"Content-Type": "application/json"})
    ok = r.status == 400 and is_error_body(r, code) and set(r.json) == {"error", "message"}
    if not ok:
        tap.diag("%s: %r" % (name, r))
    tap.ok(ok, "400 %s: %s" % (code, name))
tap.eq(stock(), before, "no malformed purchase changed any stock")

# ---- 404, 405 ------------------------------------------------------------------------
for path in ("/", "/v1", "/v1/", "/v1/events/", "/v1/events/concert/", "/v1/events/concert/buy",
             "/v1/events/concert/purchase/x", "/v2/events", "/v1/orders", "/v1/orders/",
             "/v1/events/../healthz", "/v1/events/con%63ert", "/healthz/", "/HEALTHZ",
             "/v1/events/" + "a" * 65, "/favicon.ico"):
    r = req("GET", path)
    ok = r.status == 404 and (is_error_body(r, "not_found") or is_error_body(r, "event_not_found"))
    if not ok:
        tap.diag("%s: %r" % (path, r))
    tap.ok(ok, "unknown path %s: 404 JSON" % path)
r = req("GET", "/v1/events?x=1")
tap.eq(r.status, 200, "a query string is ignored")

for method, path, allow in (("GET", "/v1/events/concert/purchase", "POST"),
                            ("PUT", "/v1/events/concert/purchase", "POST"),
                            ("POST", "/v1/events", "GET"),
                            ("DELETE", "/v1/events/concert", "GET"),
                            ("PATCH", "/v1/orders/1-1", "GET"),
                            ("POST", "/healthz", "GET"),
                            ("OPTIONS", "/healthz", "GET"),
                            ("HEAD", "/healthz", "GET")):
    r = req(method, path, b"{}" if method in ("POST", "PUT", "PATCH") else None)
    ok = r.status == 405 and r.headers.get("allow") == allow and \
        (method == "HEAD" or is_error_body(r, "method_not_allowed"))
    if not ok:
        tap.diag("%s %s: %r %r" % (method, path, r, r.headers))
    tap.ok(ok, "%s %s: 405 with Allow: %s" % (method, path, allow))
tap.eq(stock(), before, "no refused request changed any stock")

# ---- 413: a body over max_body_bytes ------------------------------------------------
r = d.post("/v1/events/concert/purchase", b'{"buyer":"' + b"x" * 9000 + b'"}',
           headers={"Content-Type": "application/json"})
tap.eq(r.status, 413, "body over max_body_bytes: 413 (from evhttp, see docs/api.md)")
r = d.post("/v1/events/concert/purchase", b'{"buyer":"' + b"x" * 8170 + b'"}',
           headers={"Content-Type": "application/json"})
tap.eq(r.status, 400, "body just under max_body_bytes reaches the decoder (400: buyer too long)")
tap.eq(stock(), before, "413 changed no stock")

# ---- keep-alive: many requests, one connection -------------------------------------------
c2 = d.connect()
codes = [d.request("GET", "/healthz", conn=c2).status for _ in range(50)]
tap.eq(codes, [200] * 50, "50 requests on one keep-alive connection")
c2.close()

# ---- a raw HTTP/1.0 request without keep-alive -------------------------------------------
data = send_raw(b"GET /healthz HTTP/1.0\r\n\r\n")
tap.ok(data.startswith(b"HTTP/1.") and b" 200 " in data.split(b"\r\n")[0]
       and data.endswith(b'{"status":"ok"}'), "HTTP/1.0 request answered, connection closed")

conn.close()
d.finish("api daemon")

# ---- 503 with Retry-After when the queue is full --------------------------------------------
conf = base_config(workers=1, queue_depth=1, io_threads=1,
                   payment={"latency_ms": 400, "mode": "blocking"})
d = Daemon(conf).start()
replies = [None] * 4


def buy(i):
    try:
        replies[i] = d.purchase("flash-sale", buyer="b%d" % i)
    except Exception as e:  # noqa: BLE001 - reported below
        replies[i] = e


threads = [threading.Thread(target=buy, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
statuses = sorted(r.status if hasattr(r, "status") else -1 for r in replies)
over = [r for r in replies if hasattr(r, "status") and r.status == 503]
tap.ok(len(over) >= 1 and all(is_error_body(r, "overloaded") and r.headers.get("retry-after") == "1"
                             for r in over),
       "a full queue answers 503 overloaded with Retry-After (statuses %s)" % statuses)
tap.ok(all(s in (201, 503) for s in statuses), "every request got 201 or 503")
sold = d.event("flash-sale")["tiers"]["general"]["sold"]
tap.eq(sold, statuses.count(201), "sold counts exactly the 201s")
d.finish("overload daemon")

# ---- restart: a new boot epoch, ids never reused -------------------------------------------
d = Daemon(base_config())
d.start()
ids1 = [d.purchase("concert", buyer="r").json["order"] for _ in range(3)]
tap.eq(d.stop(), 0, "first run exits 0")
d.start()
ids2 = [d.purchase("concert", buyer="r").json["order"] for _ in range(3)]
tap.ok(not set(ids1) & set(ids2), "order ids after a restart are new (%s, %s)" % (ids1, ids2))
tap.ok(ids1[0].split("-")[0] != ids2[0].split("-")[0], "the boot epoch moved on")
r = d.get("/v1/orders/" + ids1[0])
tap.eq((r.status, r.json and r.json["order"]), (200, ids1[0]),
       "an order from before the restart is found (the ledger)")
d.finish("restart daemon")

sys.exit(tap.done())
