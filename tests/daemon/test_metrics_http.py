"""test_metrics_http.py: GET /metrics of a real ticketd. The reply is the Prometheus
text exposition format 0.0.4, read by a strict parser (every sample line is
`name{labels} value`, every family has one HELP and one TYPE before its
samples, label values escaped, counters end in _total, histogram buckets are
cumulative in le order and end in +Inf equal to _count, with a _sum). After
a known sequence of requests on two events (sold, sold out, declined,
invalid, not found, wrong method), every counter equals what the client saw,
the gauges equal GET /v1/events, and each histogram's count equals the
requests it times. With one sleeping worker and a queue of one, busy
workers, queue depth and overloaded purchases are seen as they happen.
"metrics": {"enabled": false} (or a --disable-metrics build) answers 404
metrics_disabled and the rest of the API is unchanged.
"""
import math
import os
import re
import shutil
import sys
import tempfile
import threading

import tap
from ticketd_test import Daemon, base_config, is_error_body, run_ticketd, wait_until, \
    watchdog

watchdog(180)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def compiled_out():
    """True if this build was configured with --disable-metrics."""
    builddir = os.environ.get("TICKETD_BUILDDIR")
    if not builddir:
        return False
    try:
        with open(os.path.join(builddir, "config.h")) as f:
            return "#define TICKETD_NO_METRICS 1" in f.read()
    except OSError:
        return False


def unescape(v):
    return v.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")


def parse_value(s):
    if s in ("+Inf", "-Inf", "NaN"):
        return float(s.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", s):
        raise ValueError("bad value %r" % s)
    return float(s)


def family_of(name, families):
    """The family a sample name belongs to (histograms add suffixes)."""
    if name in families:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[:-len(suffix)] in families:
            return name[:-len(suffix)]
    return None


def parse(text):
    """Parses an exposition strictly. Returns {family: {"type", "help",
    "samples": [(name, labels dict, value)]}}; raises ValueError with the
    line at the first violation."""
    if not text.endswith("\n"):
        raise ValueError("the text does not end with a newline")
    families = {}
    order = []          # families in the order their TYPE appeared
    seen = set()
    current = None
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = "line %d %r" % (n, line)
        if line == "":
            raise ValueError("empty line: " + where)
        if line.startswith("#"):
            m = re.fullmatch(r"# (HELP|TYPE) (\S+) (.*)", line)
            if not m or not NAME.fullmatch(m.group(2)):
                raise ValueError("bad comment: " + where)
            kind, name, rest = m.groups()
            f = families.setdefault(name, {"type": None, "help": None, "samples": []})
            if f["samples"]:
                raise ValueError("HELP/TYPE after samples: " + where)
            if kind == "HELP":
                if f["help"] is not None:
                    raise ValueError("second HELP: " + where)
                if re.search(r"\\[^\\n]", rest):
                    raise ValueError("bad escape in HELP: " + where)
                f["help"] = rest
            else:
                if f["type"] is not None or rest not in TYPES:
                    raise ValueError("second or unknown TYPE: " + where)
                f["type"] = rest
                order.append(name)
            current = name
            continue
        m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)", line)
        if not m:
            raise ValueError("not `name{labels} value`: " + where)
        name, labeltext, value = m.groups()
        fam = family_of(name, families)
        if fam is None or fam != current:
            raise ValueError("sample outside its family's block: " + where)
        f = families[fam]
        if f["type"] is None or f["help"] is None:
            raise ValueError("sample before its HELP and TYPE: " + where)
        if name != fam and f["type"] != "histogram":
            raise ValueError("suffixed sample of a %s: %s" % (f["type"], where))
        labels = {}
        if labeltext:
            pos = 0
            while pos < len(labeltext):
                lm = LABEL.match(labeltext, pos)
                if not lm:
                    raise ValueError("bad labels: " + where)
                if lm.group(1) in labels:
                    raise ValueError("duplicate label: " + where)
                labels[lm.group(1)] = unescape(lm.group(2))
                pos = lm.end()
                if pos < len(labeltext):
                    if labeltext[pos] != ",":
                        raise ValueError("labels not comma-separated: " + where)
                    pos += 1
        key = (name, tuple(sorted(labels.items())))
        if key in seen:
            raise ValueError("duplicate series: " + where)
        seen.add(key)
        f["samples"].append((name, labels, parse_value(value)))
    for name, f in families.items():
        if f["type"] is None or f["help"] is None:
            raise ValueError("family %s lacks HELP or TYPE" % name)
        check_family(name, f)
    return families


def check_family(name, f):
    """Prometheus conventions and histogram shape."""
    if not name.startswith("ticketd_"):
        raise ValueError("%s: not ticketd_" % name)
    if f["type"] == "counter" and not name.endswith("_total"):
        raise ValueError("counter %s does not end in _total" % name)
    if f["type"] != "counter" and name.endswith("_total"):
        raise ValueError("%s %s ends in _total" % (f["type"], name))
    for _, _, v in f["samples"]:
        if f["type"] == "counter" and not (v >= 0 and math.isfinite(v)):
            raise ValueError("%s: counter value %r" % (name, v))
    if f["type"] != "histogram":
        return
    groups = {}
    for sname, labels, v in f["samples"]:
        rest = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
        g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if sname == name + "_bucket":
            if "le" not in labels:
                raise ValueError("%s: bucket without le" % name)
            g["buckets"].append((parse_value(labels["le"]), v))
        elif sname == name + "_sum":
            g["sum"] = v
        elif sname == name + "_count":
            g["count"] = v
        else:
            raise ValueError("%s: stray sample %s" % (name, sname))
    for rest, g in groups.items():
        b = g["buckets"]
        if not b or b[-1][0] != math.inf:
            raise ValueError("%s%r: buckets do not end in +Inf" % (name, rest))
        if any(b[i][0] >= b[i + 1][0] for i in range(len(b) - 1)):
            raise ValueError("%s%r: le not ascending" % (name, rest))
        if any(b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
            raise ValueError("%s%r: buckets not cumulative" % (name, rest))
        if g["sum"] is None or g["count"] is None or g["count"] != b[-1][1]:
            raise ValueError("%s%r: _sum missing or _count != +Inf bucket" % (name, rest))


def scrape(d, conn=None):
    """GETs /metrics; returns (reply, families or None, parse error or None)."""
    r = d.get("/metrics", conn=conn)
    if r.status != 200:
        return r, None, "status %d" % r.status
    try:
        return r, parse(r.body.decode("utf-8")), None
    except (ValueError, UnicodeDecodeError) as e:
        return r, None, str(e)


def value(fams, name, **labels):
    """The value of one series, or None if absent."""
    fam = family_of(name, fams)
    if fam is None:
        return None
    for sname, l, v in fams[fam]["samples"]:
        if sname == name and l == labels:
            return v
    return None


def values(fams, name, **match):
    """{labels tuple: value} of the samples of name whose labels include match."""
    fam = family_of(name, fams)
    out = {}
    for sname, l, v in fams.get(fam, {"samples": []})["samples"]:
        if sname == name and all(l.get(k) == x for k, x in match.items()):
            out[tuple(sorted(l.items()))] = v
    return out


def hist_count(fams, name, **labels):
    return value(fams, name + "_count", **labels)


# ---- the parser itself refuses what it should ------------------------------------------
good = ("# HELP ticketd_x_total X.\n# TYPE ticketd_x_total counter\n"
        "ticketd_x_total{a=\"q\\\"\\\\\\n\"} 1\n")
tap.ok(value(parse(good), "ticketd_x_total", a="q\"\\\n") == 1,
       "test parser: reads escaped label values")
bad = {
    "no TYPE": "# HELP ticketd_x_total X.\nticketd_x_total 1\n",
    "no newline at the end": good[:-1],
    "a timestamp": good[:-1] + " 123\n",
    "unescaped quote": "# HELP ticketd_x_total X.\n# TYPE ticketd_x_total counter\n"
                       "ticketd_x_total{a=\"\"\"} 1\n",
    "counter without _total": "# HELP ticketd_x X.\n# TYPE ticketd_x counter\nticketd_x 1\n",
    "histogram without +Inf": "# HELP ticketd_h H.\n# TYPE ticketd_h histogram\n"
                              "ticketd_h_bucket{le=\"1\"} 1\nticketd_h_sum 1\n"
                              "ticketd_h_count 1\n",
    "buckets not cumulative": "# HELP ticketd_h H.\n# TYPE ticketd_h histogram\n"
                              "ticketd_h_bucket{le=\"1\"} 2\nticketd_h_bucket{le=\"+Inf\"} 1\n"
                              "ticketd_h_sum 1\nticketd_h_count 1\n",
}
for what, text in bad.items():
    try:
        parse(text)
        tap.ok(False, "test parser refuses: " + what)
    except ValueError:
        tap.ok(True, "test parser refuses: " + what)

# ---- metrics off by configuration (and in a --disable-metrics build) --------------------
off = Daemon(base_config(metrics={"enabled": False})).start()
r = off.get("/metrics")
tap.ok(r.status == 404 and is_error_body(r, "metrics_disabled"),
       "metrics.enabled false: GET /metrics is 404 metrics_disabled")
tap.eq(r.headers.get("content-type"), "application/json", "... with a JSON body")
tap.eq(off.purchase("concert", buyer="a").status, 201, "metrics off: purchases still sell")
off.finish("metrics-off daemon")
d0 = Daemon(base_config(metrics={"enabled": False}))
rc, out, _ = run_ticketd("-t", "-c", d0.conf_path)
tap.ok(rc == 0 and re.search(r"^metrics:\s+off", out, re.M), "ticketd -t shows metrics off")
d0.cleanup()

if compiled_out():
    d = Daemon(base_config()).start()
    r = d.get("/metrics")
    tap.ok(r.status == 404 and is_error_body(r, "metrics_disabled"),
           "--disable-metrics build: GET /metrics is 404 metrics_disabled")
    d.finish()
    tap.skip("the exposition and its counters", "built with --disable-metrics")
    sys.exit(tap.done())

# ---- a known sequence on two events ------------------------------------------------------
tmp = tempfile.mkdtemp(prefix="metrics-")
token_file = os.path.join(tmp, "admin-token")
with open(token_file, "w") as f:
    f.write("tok\n")
conf = base_config(
    admin_token_file=token_file,
    payment={"latency_ms": 0, "decline_rate": 0.5, "mode": "async"},
    events=[{"id": "concert", "tiers": {"general": 900, "vip": 100}, "vip_code": "backstage"},
            {"id": "tiny", "seller": "atomic", "tiers": {"general": 4}}])
d = Daemon(conf).start()
conn = d.connect()

r, fams, err = scrape(d, conn)
tap.ok(err is None, "GET /metrics parses as exposition format 0.0.4 (%s)" % err)
tap.eq(r.headers.get("content-type"), CONTENT_TYPE, "Content-Type " + CONTENT_TYPE)
if fams is None:
    tap.diag(r.body.decode("utf-8", "replace")[:2000])
    d.finish()
    sys.exit(tap.done())
tap.eq(value(fams, "ticketd_tickets_sold_total", event="concert", tier="vip"), 0,
       "fresh daemon: counters start at 0")
wanted = ["ticketd_http_requests_total", "ticketd_http_request_duration_seconds",
          "ticketd_purchases_total", "ticketd_tickets_sold_total",
          "ticketd_tickets_refunded_total", "ticketd_tickets_available",
          "ticketd_queue_depth", "ticketd_workers_busy", "ticketd_connections_open",
          "ticketd_queue_wait_seconds", "ticketd_reserve_duration_seconds",
          "ticketd_payment_duration_seconds", "ticketd_ledger_batch_size",
          "ticketd_ledger_commit_duration_seconds"]
tap.eq([w for w in wanted if w not in fams], [], "every family of docs/api.md is there")
tap.eq({k: fams[k]["type"] for k in ("ticketd_purchases_total", "ticketd_tickets_available",
                                      "ticketd_queue_wait_seconds")},
       {"ticketd_purchases_total": "counter", "ticketd_tickets_available": "gauge",
        "ticketd_queue_wait_seconds": "histogram"}, "family types")

# What the client sees, tallied: (route, status) -> n, (event, tier, outcome) -> n,
# (event, pool) -> tickets.
seen_req = {("metrics", "200"): 1}
seen_buy = {}
seen_sold = {}
OUTCOME = {201: "sold", 409: "sold_out", 402: "declined"}


def buy(event, quantity, tier="general", **extra):
    body = dict(buyer="b", quantity=quantity, tier=tier, **extra)
    r = d.purchase(event, conn=conn, **body)
    seen_req[("purchase", str(r.status))] = seen_req.get(("purchase", str(r.status)), 0) + 1
    if r.status in OUTCOME:
        k = (event, tier, OUTCOME[r.status])
        seen_buy[k] = seen_buy.get(k, 0) + 1
    if r.status == 201:
        k = (event, r.json["tier"])
        seen_sold[k] = seen_sold.get(k, 0) + r.json["quantity"]
    return r


def get(route, path):
    r = d.get(path, conn=conn)
    seen_req[(route, str(r.status))] = seen_req.get((route, str(r.status)), 0) + 1
    return r


for i in range(40):                       # about half declined (decline_rate 0.5)
    buy("concert", 1 + i % 3)
for i in range(6):
    buy("concert", 2, tier="vip", vip_code="backstage")
statuses = []
while True:                               # tiny: sell out, then one more
    statuses.append(buy("tiny", 1).status)
    if statuses[-1] == 409 or len(statuses) > 100:
        break
buy("tiny", 5)                            # sold out: 409
buy("concert", 1, tier="vip", vip_code="wrong")   # 403
r = d.post("/v1/events/concert/purchase", "{", conn=conn)         # 400 invalid_json
seen_req[("purchase", "400")] = seen_req.get(("purchase", "400"), 0) + 1
buy("nope", 1)                            # 404 event_not_found: route purchase
get("healthz", "/healthz")
get("events", "/v1/events")
get("event", "/v1/events/tiny")
get("event", "/v1/events/missing")
get("order", "/v1/orders/0-0")
get("other", "/no/such/path")
r = d.request("DELETE", "/v1/events", conn=conn)
seen_req[("events", "405")] = seen_req.get(("events", "405"), 0) + 1
r = d.request("POST", "/metrics", conn=conn)
tap.eq((r.status, r.headers.get("allow")), (405, "GET"), "POST /metrics: 405, Allow: GET")
seen_req[("metrics", "405")] = seen_req.get(("metrics", "405"), 0) + 1
tap.ok(all(("purchase", st) in seen_req for st in ("201", "402", "409", "403", "400", "404")),
       "the sequence has sales, declines, sold-outs and refusals")

# A refund, and an Idempotency-Key sent three times: a sale (or a decline),
# its replay, and a different purchase under the same key (422).
refunded = None
for i in range(20):
    r = buy("concert", 3)
    if r.status == 201:
        refunded = r.json
        break
r = d.post("/v1/orders/%s/refund" % refunded["order"], "", conn=conn,
           headers={"Authorization": "Bearer tok"})
tap.eq(r.status, 200, "a refund with the token")
seen_req[("refund", "200")] = 1
seen_refunded = {("concert", refunded["tier"]): refunded["quantity"]}
key = {"Idempotency-Key": "metrics-key-1"}
first = d.post("/v1/events/concert/purchase", {"buyer": "k", "quantity": 1},
               headers=key, conn=conn)
again = d.post("/v1/events/concert/purchase", {"buyer": "k", "quantity": 1},
               headers=key, conn=conn)
other = d.post("/v1/events/concert/purchase", {"buyer": "k", "quantity": 2},
               headers=key, conn=conn)
tap.eq((again.status, again.headers.get("idempotent-replayed"), other.status),
       (first.status, "true", 422), "a keyed purchase, its replay, a reused key: 422")
for r, outcome in ((first, OUTCOME.get(first.status)), (again, "replayed"),
                   (other, "rejected")):
    k = ("purchase", str(r.status))
    seen_req[k] = seen_req.get(k, 0) + 1
    k = ("concert", "general", outcome)
    seen_buy[k] = seen_buy.get(k, 0) + 1
if first.status == 201:
    k = ("concert", "general")
    seen_sold[k] = seen_sold.get(k, 0) + 1

events = {e["id"]: e for e in d.get("/v1/events", conn=conn).json["events"]}
seen_req[("events", "200")] += 1
r, fams, err = scrape(d, conn)
tap.ok(err is None, "after the sequence: still valid exposition (%s)" % err)
fams = fams or {}

got_req = {(dict(k)["route"], dict(k)["status"]): v
           for k, v in values(fams, "ticketd_http_requests_total").items()}
tap.eq(got_req, {k: float(v) for k, v in seen_req.items()},
       "ticketd_http_requests_total by route and status == what the client saw")
got_buy = {(dict(k)["event"], dict(k)["tier"], dict(k)["outcome"]): v
           for k, v in values(fams, "ticketd_purchases_total").items() if v}
tap.eq(got_buy, {k: float(v) for k, v in seen_buy.items()},
       "ticketd_purchases_total by event, tier and outcome == the 201/402/409 replies")
tap.eq(sorted(dict(k)["outcome"] for k in values(fams, "ticketd_purchases_total",
                                                  event="tiny")),
       sorted(["sold", "sold_out", "declined", "overloaded", "unavailable", "failed",
               "replayed", "rejected"]),
       "every outcome of a tier is exported, zeros included")
got_sold = {(dict(k)["event"], dict(k)["tier"]): v
            for k, v in values(fams, "ticketd_tickets_sold_total").items() if v}
tap.eq(got_sold, {k: float(v) for k, v in seen_sold.items()},
       "ticketd_tickets_sold_total == the tickets of the 201 replies")
ok_gauges = True
for ev in events.values():
    for tier, t in ev["tiers"].items():
        a = value(fams, "ticketd_tickets_available", event=ev["id"], tier=tier)
        c = value(fams, "ticketd_tickets_capacity", event=ev["id"], tier=tier)
        s = value(fams, "ticketd_tickets_sold_total", event=ev["id"], tier=tier) - \
            value(fams, "ticketd_tickets_refunded_total", event=ev["id"], tier=tier)
        if (a, c, s) != (t["available"], t["capacity"], t["sold"]):
            tap.diag("%s %s: metrics %r, /v1/events %r" % (ev["id"], tier, (a, c, s), t))
            ok_gauges = False
tap.ok(ok_gauges, "available, capacity and sold - refunded match GET /v1/events, every tier")
tap.eq(value(fams, "ticketd_tickets_available", event="tiny", tier="vip"), None,
       "no vip series for an event without a vip tier")
got_ref = {(dict(k)["event"], dict(k)["tier"]): v
           for k, v in values(fams, "ticketd_tickets_refunded_total").items() if v}
tap.eq(got_ref, {k: float(v) for k, v in seen_refunded.items()},
       "ticketd_tickets_refunded_total == the refunded order's tickets")

by_route = {}
for (route, _), n in seen_req.items():
    by_route[route] = by_route.get(route, 0) + n
tap.eq({rt: hist_count(fams, "ticketd_http_request_duration_seconds", route=rt)
        for rt in by_route}, {rt: float(n) for rt, n in by_route.items()},
       "request latency histogram count == requests, per route")
n_sold = sum(n for (_, _, o), n in seen_buy.items() if o == "sold")
n_declined = sum(n for (_, _, o), n in seen_buy.items() if o == "declined")
n_soldout = sum(n for (_, _, o), n in seen_buy.items() if o == "sold_out")
n_orders = seen_req.get(("order", "404"), 0)
n_keyed = 3                          # every keyed request reaches a worker
n_refunds = 1
tap.eq(hist_count(fams, "ticketd_payment_duration_seconds"), float(n_sold + n_declined),
       "payment histogram count == sold + declined")
# The ledger: one request per new order, per refund, and per keyed reply
# that sold nothing (stored for its retries), in batches.
n_new = sum(n for (_, _, o), n in seen_buy.items() if o == "sold")
n_new += first.status in (402, 409)
tap.eq((value(fams, "ticketd_ledger_batch_size_sum"),
        hist_count(fams, "ticketd_ledger_commit_duration_seconds") ==
        hist_count(fams, "ticketd_ledger_batch_size") and
        hist_count(fams, "ticketd_ledger_batch_size") >= 1),
       (float(n_new + n_refunds), True),
       "ledger batch sizes sum to its orders, refunds and stored replies; a commit time per batch")
reserve = values(fams, "ticketd_reserve_duration_seconds_count")
tap.eq({dict(k)["seller"]: v for k, v in reserve.items()},
       {"mutex": float(sum(n for (e, _, o), n in seen_buy.items()
                           if e == "concert" and o not in ("replayed", "rejected"))),
        "atomic": float(sum(n for (e, _, _), n in seen_buy.items() if e == "tiny"))},
       "reserve histogram count per seller core == purchases that reached it")
# tiny's "5" came after tiny's first 409 (a worker's): the seller's sold-out
# hint let the loop answer it without the pool, so it never queued.
n_loop = 1
tap.eq(hist_count(fams, "ticketd_queue_wait_seconds"),
       float(n_sold + n_declined + n_soldout - n_loop + n_orders + n_keyed - 1 + n_refunds),
       "queue wait histogram count == jobs the workers took (purchases, lookups, refund)")
tap.eq((value(fams, "ticketd_queue_depth"), value(fams, "ticketd_workers_busy"),
        value(fams, "ticketd_workers")), (0.0, 0.0, 2.0), "idle: queue 0, busy 0, 2 workers")

# Open connections: this one plus three more that each made a request.
extra = [d.connect() for _ in range(3)]
for c in extra:
    d.get("/healthz", conn=c)


def gauge(name, conn=None):
    """One scrape's value of the gauge name (None without it)."""
    _, fams, _ = scrape(d, conn)
    return value(fams or {}, name)


wait_until(lambda: gauge("ticketd_connections_open", conn) == 4, 5,
           "4 open connections", interval=0.05)
n = gauge("ticketd_connections_open", conn)
tap.eq(n, 4.0, "ticketd_connections_open counts the open connections")
for c in extra:
    c.close()
conn.close()
d.finish("metrics daemon")
shutil.rmtree(tmp, ignore_errors=True)

# ---- one sleeping worker, a queue of one: busy, depth, overloaded ----------------------------
d = Daemon(base_config(workers=1, queue_depth=1,
                       payment={"latency_ms": 1500, "decline_rate": 0.0,
                                "mode": "blocking"})).start()
replies = []
lock = threading.Lock()


def slow_buy(i):
    r = d.purchase("flash-sale", buyer="p%d" % i)
    with lock:
        replies.append(r)


first = threading.Thread(target=slow_buy, args=(0,))
first.start()
busy = depth = None
# the worker sleeps in the payment
wait_until(lambda: gauge("ticketd_workers_busy") == 1, 10, "a busy worker")
busy = gauge("ticketd_workers_busy")
tap.eq(busy, 1.0, "ticketd_workers_busy is 1 while the only worker waits out a payment")
others = [threading.Thread(target=slow_buy, args=(i,)) for i in range(1, 5)]
for t in others:
    t.start()
wait_until(lambda: gauge("ticketd_queue_depth") == 1, 10, "a queued purchase")
depth = gauge("ticketd_queue_depth")
tap.eq(depth, 1.0, "ticketd_queue_depth is 1 with a purchase waiting behind it")
for t in [first] + others:
    t.join()
overloaded = sum(1 for r in replies if r.status == 503 and is_error_body(r, "overloaded"))
sold = sum(1 for r in replies if r.status == 201)
tap.ok(overloaded >= 1 and sold + overloaded == 5,
       "%d sold, %d overloaded (503) of 5" % (sold, overloaded))
_, fams, err = scrape(d)
fams = fams or {}
tap.eq((value(fams, "ticketd_purchases_total", event="flash-sale", tier="general",
              outcome="overloaded"),
        value(fams, "ticketd_purchases_total", event="flash-sale", tier="general",
              outcome="sold")), (float(overloaded), float(sold)),
       "overloaded and sold purchases counted as answered")
tap.eq(value(fams, "ticketd_http_requests_total", route="purchase", status="503"),
       float(overloaded), "the 503s are in ticketd_http_requests_total")
tap.eq(value(fams, "ticketd_workers_busy"), 0.0, "busy back to 0")
pay = value(fams, "ticketd_payment_duration_seconds_sum")
tap.ok(pay is not None and pay >= 1.5 * sold * 0.9,
       "payment time sums the blocking waits (%s s for %d payments of 1.5 s)" % (pay, sold))
d.finish("busy-worker daemon")
sys.exit(tap.done())
