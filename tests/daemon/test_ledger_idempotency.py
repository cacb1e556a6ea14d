"""test_ledger_idempotency.py: the Idempotency-Key header on purchases, against the
real daemon and its ledger.
  - A retry with the same key and the same purchase gets the original reply
    (201, same order, same tickets, same bytes, Idempotent-Replayed: true)
    and sells nothing; JSON spacing, key order and spelled-out defaults are
    the same purchase. It holds after a restart too.
  - The same key with a different purchase (buyer, quantity, tier, event)
    gets 422 idempotency_key_reused, and sells nothing.
  - A retry while the first request is still in flight (payment latency
    500 ms) gets 409 in_progress; the first completes with 201, and a retry
    after it gets that 201.
  - Replies that sold nothing are kept too: a 409 sold_out and a 402
    declined come back the same after a restart, even once stock is back or
    payments go through.
  - Bad keys (empty, 256 characters, a space, non-ASCII, a control
    character, the header twice) get 400 invalid_idempotency_key and sell
    nothing; 255 visible characters are fine.
  - Keys are forgotten after idempotency_ttl_s: the same key then buys anew.
"""
import http.client
import json
import sys
import threading
import time

import tap
from ticketd_test import SCALE, Daemon, base_config, is_error_body, watchdog

watchdog(150)

conf = base_config(events=[
    {"id": "concert", "tiers": {"general": 100, "vip": 10}, "vip_code": "backstage"},
    {"id": "tiny", "tiers": {"general": 1}},
])
d = Daemon(conf).start()
PATH = "/v1/events/%s/purchase"


def buy(event, body, key=None, headers=None):
    h = dict(headers or {})
    if key is not None:
        h["Idempotency-Key"] = key
    if not isinstance(body, str):
        body = json.dumps(body)
    return d.post(PATH % event, body, headers=h)


def sold(event, tier="general"):
    return d.event(event)["tiers"][tier]["sold"]


# ---- same key, same purchase: the original reply ------------------------------------------
r1 = buy("concert", {"buyer": "alice", "quantity": 2}, key="order-alice-1")
tap.eq(r1.status, 201, "first purchase with a key: 201")
tap.ok("idempotent-replayed" not in r1.headers, "the first reply is not marked replayed")
tap.eq(sold("concert"), 2, "two tickets sold")
r2 = buy("concert", {"buyer": "alice", "quantity": 2}, key="order-alice-1")
tap.eq((r2.status, r2.body), (201, r1.body), "retry: the same 201, byte for byte")
tap.eq(r2.headers.get("idempotent-replayed"), "true", "retry: Idempotent-Replayed: true")
tap.eq(r2.headers.get("location"), "/v1/orders/" + r1.json["order"], "retry: same Location")
r3 = buy("concert", '{ "quantity" : 2 ,"tier":"general",  "buyer":"alice"}', key="order-alice-1")
tap.eq((r3.status, r3.json), (201, r1.json),
       "other spacing, key order and the default tier spelled out: the same purchase")
tap.eq(sold("concert"), 2, "retries sold nothing")
g = d.get("/v1/orders/" + r1.json["order"])
tap.eq((g.status, g.json), (200, r1.json), "GET /v1/orders/{id} agrees with the keyed 201")

# The key is per purchase, not per buyer: another key buys again.
r = buy("concert", {"buyer": "alice", "quantity": 2}, key="order-alice-2")
tap.ok(r.status == 201 and r.json["order"] != r1.json["order"], "another key: a new order")
tap.eq(sold("concert"), 4, "four tickets sold")

# ---- same key, different purchase: 422 -------------------------------------------------------
for what, event, body in (("buyer", "concert", {"buyer": "bob", "quantity": 2}),
                          ("quantity", "concert", {"buyer": "alice", "quantity": 3}),
                          ("tier", "concert", {"buyer": "alice", "quantity": 2, "tier": "vip",
                                               "vip_code": "backstage"}),
                          ("event", "tiny", {"buyer": "alice", "quantity": 2})):
    r = buy(event, body, key="order-alice-1")
    tap.ok(r.status == 422 and is_error_body(r, "idempotency_key_reused"),
           "same key, another %s: 422 idempotency_key_reused (%d)" % (what, r.status))
tap.eq((sold("concert"), sold("concert", "vip"), sold("tiny")), (4, 0, 0),
       "the 422s sold nothing")

# ---- bad keys: 400 -----------------------------------------------------------------------------
def raw_post(path, headers, body):
    """POST with headers given as a list of (name, bytes) pairs (repeats allowed)."""
    c = d.connect()
    try:
        c.putrequest("POST", path)
        for name, value in headers:
            c.putheader(name, value)
        data = body.encode()
        c.putheader("Content-Length", str(len(data)))
        c.endheaders(data)
        resp = c.getresponse()
        out = resp.read()
        return resp.status, json.loads(out) if out else None
    finally:
        c.close()


body = json.dumps({"buyer": "mallory"})
for what, hdrs in (("empty", [("Idempotency-Key", b"")]),
                   ("256 characters", [("Idempotency-Key", b"k" * 256)]),
                   ("a space inside", [("Idempotency-Key", b"a b")]),
                   ("non-ASCII", [("Idempotency-Key", "caf\u00e9".encode("utf-8"))]),
                   ("a control character", [("Idempotency-Key", b"a\x01b")]),
                   ("sent twice", [("Idempotency-Key", b"k1"), ("Idempotency-Key", b"k1")])):
    st, j = raw_post(PATH % "concert", hdrs, body)
    tap.ok(st == 400 and isinstance(j, dict) and j.get("error") == "invalid_idempotency_key",
           "Idempotency-Key %s: 400 invalid_idempotency_key (%d %s)" % (what, st, j))
tap.eq(sold("concert"), 4, "the 400s sold nothing")
k255 = "".join(chr(0x21 + i % 94) for i in range(255))
st, j = raw_post(PATH % "concert", [("Idempotency-Key", k255.encode())], body)
tap.eq(st, 201, "a key of 255 visible ASCII characters (all of them) is accepted")
st2, j2 = raw_post(PATH % "concert", [("Idempotency-Key", k255.encode())], body)
tap.eq((st2, j2), (201, j), "and replays")
tap.eq(sold("concert"), 5, "one ticket for it")

# ---- replies that sold nothing are kept ----------------------------------------------------------
r = buy("tiny", {"buyer": "t1"}, key="tiny-1")
tap.eq(r.status, 201, "tiny: its only ticket sold")
so = buy("tiny", {"buyer": "t2"}, key="tiny-2")
tap.ok(so.status == 409 and is_error_body(so, "sold_out") and so.json.get("available") == 0,
       "tiny: a keyed purchase is sold out: 409 sold_out")
again = buy("tiny", {"buyer": "t2"}, key="tiny-2")
tap.eq((again.status, again.body, again.headers.get("idempotent-replayed")),
       (409, so.body, "true"), "its retry replays the 409")

# ---- restart: the keys survive -----------------------------------------------------------------------
tap.eq(d.stop(), 0, "first run exits 0")
d.config["events"][1]["tiers"]["general"] = 5    # stock is back
d.config["payment"] = {"latency_ms": 0, "decline_rate": 1.0, "mode": "async"}
d.write_config()
d.start()
r = buy("concert", {"buyer": "alice", "quantity": 2}, key="order-alice-1")
tap.eq((r.status, r.json, r.headers.get("idempotent-replayed")), (201, r1.json, "true"),
       "after a restart: the same key gets the original 201 (same order, same tickets)")
r = buy("concert", {"buyer": "alice", "quantity": 3}, key="order-alice-1")
tap.eq(r.status, 422, "after a restart: a different purchase under the key is still 422")
r = buy("tiny", {"buyer": "t2"}, key="tiny-2")
tap.eq((r.status, r.body), (409, so.body),
       "after a restart, with stock back: the stored 409 sold_out comes back")
dec = buy("concert", {"buyer": "dave"}, key="declined-1")
tap.ok(dec.status == 402 and is_error_body(dec, "payment_declined"),
       "every payment declined now: a keyed purchase gets 402")
tap.eq((sold("concert"), sold("tiny")), (5, 1), "nothing sold by the replays and the 402")
tap.eq(d.stop(), 0, "second run exits 0")
d.config["payment"] = {"latency_ms": 500, "decline_rate": 0.0, "mode": "async"}
d.write_config()
d.start()
r = buy("concert", {"buyer": "dave"}, key="declined-1")
tap.eq((r.status, r.body), (402, dec.body),
       "payments go through now, but the declined key still gets its 402")
tap.eq(sold("concert"), 5, "and buys nothing")

# ---- in flight: 409 in_progress (payment takes 500 ms) ----------------------------------------------
first = {}


def first_buyer():
    first["r"] = buy("concert", {"buyer": "erin", "quantity": 1}, key="slow-1")


t = threading.Thread(target=first_buyer)
t0 = time.monotonic()
t.start()
time.sleep(0.15 * SCALE)    # the first is paying now
dups = [buy("concert", {"buyer": "erin", "quantity": 1}, key="slow-1") for _ in range(3)]
in_flight = time.monotonic() - t0 < 0.5
t.join()
if in_flight:
    tap.ok(all(x.status == 409 and is_error_body(x, "in_progress") for x in dups),
           "retries while the first is in flight: 409 in_progress (%s)"
           % [x.status for x in dups])
else:
    tap.skip("retries while the first is in flight get 409", "the machine was too slow")
tap.eq(first["r"].status, 201, "the first request completes with 201")
late = buy("concert", {"buyer": "erin", "quantity": 1}, key="slow-1")
tap.eq((late.status, late.json), (201, first["r"].json),
       "a retry after it finished gets its 201")
tap.eq(sold("concert"), 6, "one ticket sold for all of them")
# The in-flight 409 was not stored: it does not come back.
tap.ok("in_progress" not in late.body.decode(), "the 409 in_progress was not stored")
d.finish("idempotency daemon")

# ---- keys expire after idempotency_ttl_s --------------------------------------------------------------
d = Daemon(base_config(idempotency_ttl_s=1)).start()
a = buy("concert", {"buyer": "fay"}, key="ttl-1")
b = buy("concert", {"buyer": "fay"}, key="ttl-1")
tap.eq((a.status, b.json), (201, a.json), "ttl 1 s: a retry at once replays")
time.sleep(1.3)
c = buy("concert", {"buyer": "fay"}, key="ttl-1")
tap.ok(c.status == 201 and c.json["order"] != a.json["order"],
       "after the TTL the key is forgotten: a new order (%s, %s)"
       % (a.json["order"], c.json.get("order")))
x = buy("concert", {"buyer": "someone else"}, key="ttl-1")
tap.eq(x.status, 422, "and the key now belongs to the new purchase")
tap.eq(sold("concert"), 2, "two tickets sold")
d.finish("ttl daemon")

sys.exit(tap.done())
