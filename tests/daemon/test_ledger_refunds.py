"""test_ledger_refunds.py: POST /v1/orders/{id}/refund and the operator token.
  - With the token (from admin_token_file, trailing newline stripped): 200
    with the order "state":"refunded", its tickets back on sale, GET shows it
    refunded; a second refund is 409 already_refunded; an unknown order 404.
  - No Authorization, a wrong token, another scheme, a token with extra
    bytes: 401 with WWW-Authenticate, and nothing changes.
  - A refunded ticket can be sold again (with a new code); after a restart
    the refund, the stock and the 409 hold, and --audit passes.
  - No token configured (no file, no credential), or a blank file: 403
    admin_disabled whatever is sent. The token from systemd's
    $CREDENTIALS_DIRECTORY/admin-token works the same. A configured token
    file that does not exist is a start-up error.
  - With "workers": 0 (the loops reserve themselves) refunds, order reads
    and keyed purchases, which read the ledger, work the same.
  - An order sold for an event a reload dropped (its purchase was queued
    during the reload): its refund gives the tickets back to that event's
    seller, so a reload that restores the event shows them available.
"""
import os
import signal
import sys
import tempfile
import threading
import time

import tap
from ticketd_test import SCALE, Daemon, base_config, is_error_body, run_ticketd, watchdog

watchdog(120)
tmp = tempfile.mkdtemp(prefix="refunds-")
token_file = os.path.join(tmp, "admin-token")
with open(token_file, "w") as f:
    f.write("s3cret-T0ken\n")
GOOD = {"Authorization": "Bearer s3cret-T0ken"}

conf = base_config(admin_token_file=token_file, events=[
    {"id": "tiny", "tiers": {"general": 2, "vip": 1}, "vip_code": "v"},
])
d = Daemon(conf).start()


def refund(oid, headers=None):
    return d.post("/v1/orders/%s/refund" % oid, "", headers=headers)


def tiers():
    t = d.event("tiny")["tiers"]
    return {k: (v["sold"], v["available"]) for k, v in t.items()}


o = d.purchase("tiny", buyer="ann", quantity=2).json
tap.eq(tiers()["general"], (2, 0), "two general tickets sold: sold out")
tap.eq(d.purchase("tiny", buyer="bo").status, 409, "sold out: 409")

# ---- refused: 401 and nothing changes ----------------------------------------------------------
for what, h in (("no Authorization", None),
                ("a wrong token", {"Authorization": "Bearer s3cret-T0keN"}),
                ("the token with a byte more", {"Authorization": "Bearer s3cret-T0ken1"}),
                ("a prefix of the token", {"Authorization": "Bearer s3cret"}),
                ("Basic scheme", {"Authorization": "Basic czNjcmV0LVQwa2Vu"}),
                ("Bearer without a token", {"Authorization": "Bearer"})):
    r = refund(o["order"], h)
    tap.ok(r.status == 401 and is_error_body(r, "unauthorized") and
           r.headers.get("www-authenticate", "").startswith("Bearer"),
           "%s: 401 unauthorized with WWW-Authenticate (%d)" % (what, r.status))
tap.eq(tiers()["general"], (2, 0), "refused refunds change nothing")
tap.eq(d.get("/v1/orders/" + o["order"]).json["state"], "confirmed", "the order is still confirmed")
r = d.get("/v1/orders/%s/refund" % o["order"], headers=GOOD)
tap.ok(r.status == 405 and r.headers.get("allow") == "POST", "GET on the refund route: 405 Allow: POST")

# ---- the refund ----------------------------------------------------------------------------------
r = refund(o["order"], {"Authorization": "bearer  s3cret-T0ken"})
tap.eq(r.status, 200, "refund with the token (scheme in any case): 200")
want = dict(o, state="refunded")
tap.eq(r.json, want, "the reply is the order, now refunded, with its tickets")
tap.eq(tiers()["general"], (0, 2), "its two tickets are back on sale")
tap.eq(d.get("/v1/orders/" + o["order"]).json, want, "GET shows it refunded")
r = refund(o["order"], GOOD)
tap.ok(r.status == 409 and is_error_body(r, "already_refunded"), "a second refund: 409")
tap.eq(tiers()["general"], (0, 2), "which gives nothing back twice")
r = refund("999-1", GOOD)
tap.ok(r.status == 404 and is_error_body(r, "order_not_found"), "unknown order: 404")

# ---- the refunded tickets are sold again -------------------------------------------------------------
n1 = d.purchase("tiny", buyer="bo", quantity=1)
n2 = d.purchase("tiny", buyer="cy", quantity=1)
tap.ok(n1.status == 201 and n2.status == 201, "both refunded tickets are sold again")
tap.ok(not set(n1.json["tickets"] + n2.json["tickets"]) & set(o["tickets"]),
       "with new ticket codes (codes are never reused)")
tap.eq(d.purchase("tiny", buyer="dee").status, 409, "then sold out again")
# A vip order falls back to nothing here; refund a vip one too.
v = d.purchase("tiny", buyer="vi", tier="vip", vip_code="v")
tap.eq((v.status, v.json["tier"]), (201, "vip"), "a vip ticket sold")
tap.eq(refund(v.json["order"], GOOD).status, 200, "and refunded")
tap.eq(tiers()["vip"], (0, 1), "back to the vip pool")

# ---- restart ----------------------------------------------------------------------------------------
tap.eq(d.stop(), 0, "stop")
d.start()
tap.eq(tiers(), {"general": (2, 0), "vip": (0, 1)}, "after a restart, stock counts the refunds")
tap.eq(d.get("/v1/orders/" + o["order"]).json["state"], "refunded", "the refund is durable")
tap.eq(refund(o["order"], GOOD).status, 409, "a refund after the restart: still 409")
rc, out, err = run_ticketd("-c", d.conf_path, "--audit")
tap.ok(rc == 0 and "audit: OK" in out, "--audit passes (refunds match their orders)")
if rc:
    tap.diag(out + err)
d.finish("refund daemon")

# ---- no token configured: 403 ----------------------------------------------------------------------------
os.environ.pop("CREDENTIALS_DIRECTORY", None)
d = Daemon(base_config()).start()
oid = d.purchase("concert", buyer="x").json["order"]
for h in (None, GOOD, {"Authorization": "Bearer "}):
    r = refund(oid, h)
    tap.ok(r.status == 403 and is_error_body(r, "admin_disabled"),
           "no token configured: 403 admin_disabled (%s)" % (h,))
tap.ok("operator routes are off" in d.log(), "the log says operator routes are off")
tap.eq(d.get("/v1/orders/" + oid).json["state"], "confirmed", "and nothing was refunded")
d.finish("no-token daemon")

blank = os.path.join(tmp, "blank")
with open(blank, "w") as f:
    f.write("  \n\n")
d = Daemon(base_config(admin_token_file=blank)).start()
oid = d.purchase("concert", buyer="x").json["order"]
tap.eq(refund(oid, {"Authorization": "Bearer "}).status, 403, "a blank token file: 403, no "
       "empty token")
tap.ok("is blank" in d.log(), "the log says the token file is blank")
d.finish("blank-token daemon")

# A token file that cannot serve refuses the start with its reason, at once:
# a FIFO is not waited on (it hung the start before file_read_small).
fifo = os.path.join(tmp, "token-fifo")
os.mkfifo(fifo)
long_token = os.path.join(tmp, "token-long")
with open(long_token, "w") as f:
    f.write("x" * 5000)
for name, path, want in (("a FIFO", fifo, "not a regular file"),
                         ("a directory", tmp, "Is a directory"),
                         ("5000 bytes", long_token, "longer than 4096 bytes")):
    d = Daemon(base_config(admin_token_file=path))
    rc, _, err = run_ticketd("-c", d.conf_path, timeout=10)
    d.cleanup()
    tap.ok(rc == 1 and ("admin token %s: %s" % (path, want)) in err,
           "a token file that is %s: exit 1, \"%s\"" % (name, want))

# ---- the token from systemd's credentials -------------------------------------------------------------------
creds = os.path.join(tmp, "creds")
os.mkdir(creds)
with open(os.path.join(creds, "admin-token"), "w") as f:
    f.write("from-credentials\r\n")
os.environ["CREDENTIALS_DIRECTORY"] = creds
try:
    d = Daemon(base_config()).start()
finally:
    del os.environ["CREDENTIALS_DIRECTORY"]
oid = d.purchase("concert", buyer="x").json["order"]
tap.eq(refund(oid, GOOD).status, 401, "credential token: another token is 401")
r = refund(oid, {"Authorization": "Bearer from-credentials"})
tap.eq((r.status, r.json and r.json.get("state")), (200, "refunded"),
       "$CREDENTIALS_DIRECTORY/admin-token: its token refunds")
d.finish("credentials daemon")

# ---- "workers": 0: the loops reserve, ledger reads go to their own threads ------------------------
d = Daemon(base_config(workers=0, admin_token_file=token_file)).start()
a = d.post("/v1/events/concert/purchase", {"buyer": "w0", "quantity": 2},
           headers={"Idempotency-Key": "w0-1"})
b = d.post("/v1/events/concert/purchase", {"buyer": "w0", "quantity": 2},
           headers={"Idempotency-Key": "w0-1"})
tap.ok(a.status == 201 and b.json == a.json and b.headers.get("idempotent-replayed") == "true",
       "workers 0: a keyed purchase and its replay")
tap.eq(d.get("/v1/orders/" + a.json["order"]).json, a.json, "workers 0: GET /v1/orders/{id}")
r = refund(a.json["order"], GOOD)
tap.eq((r.status, r.json and r.json["state"]), (200, "refunded"), "workers 0: a refund")
tap.eq(d.event("concert")["tiers"]["general"]["sold"], 0, "workers 0: stock back")
d.finish("workers-0 daemon")

# ---- a refund of an order whose event a reload dropped ------------------------------------------
# A purchase queued before a reload that drops its event (no sales yet, so
# the reload is allowed) still sells when a worker reaches it. Refunding
# that order must give the tickets back to the event's seller even though
# the event is off sale: a later reload that puts it on sale again shows
# them available. The single worker is kept busy by a blocking payment so
# the second purchase waits in the queue while the reload happens.
PAY_MS = int(1500 * SCALE)
conf = base_config(admin_token_file=token_file, workers=1,
                   payment={"latency_ms": PAY_MS, "mode": "blocking"},
                   events=[{"id": "keep", "tiers": {"general": 5}},
                           {"id": "gone", "tiers": {"general": 3}}])
d = Daemon(conf).start()
replies = {}


def buy(event):
    replies[event] = d.purchase(event, buyer="late-" + event)


def reload_with(events):
    """Writes the config with these events, sends SIGHUP, waits for the
    daemon to log that it reloaded; returns that log line."""
    offset = len(d.log().encode("utf-8"))
    d.config["events"] = events
    d.write_config()
    d.send_signal(signal.SIGHUP)
    # Not "SIGHUP: reloading ...": only the line that ends the reload.
    m = d.wait_log(r".*(?:reloaded |reload refused).*", 10, offset)
    return m.group(0) if m else ""


t_keep = threading.Thread(target=buy, args=("keep",))
t_keep.start()
time.sleep(0.3 * SCALE)               # the worker is now asleep in keep's payment
t_gone = threading.Thread(target=buy, args=("gone",))
t_gone.start()
time.sleep(0.2 * SCALE)               # gone's purchase waits in the queue
line = reload_with([{"id": "keep", "tiers": {"general": 5}}])
tap.ok("reloaded" in line, "a reload drops the event while its purchase is queued: %s" % line)
t_keep.join(30 * SCALE)
t_gone.join(30 * SCALE)
late = replies.get("gone")
tap.ok(late is not None and late.status == 201 and late.json["event"] == "gone",
       "the queued purchase of the dropped event still sold (201): %r" % late)
tap.eq(d.get("/v1/events/gone").status, 404, "the dropped event is off sale")
if late is not None and late.status == 201:
    r = refund(late.json["order"], GOOD)
    tap.eq((r.status, r.json and r.json.get("state")), (200, "refunded"),
           "its order is refunded")
line = reload_with([{"id": "keep", "tiers": {"general": 5}},
                    {"id": "gone", "tiers": {"general": 3}}])
tap.ok("reloaded" in line, "a reload puts the event back on sale: %s" % line)
g = d.event("gone")["tiers"]["general"]
tap.eq((g["sold"], g["available"]), (0, 3),
       "back on sale, the refunded ticket is available again (sold 0, available 3)")
d.finish("dropped-event daemon")

# ---- a configured token file that is missing: start-up error --------------------------------------------------
d = Daemon(base_config(admin_token_file=os.path.join(tmp, "nope")))
tap.ok(d.start_fails("admin token", "No such file"),
       "admin_token_file that does not exist: exit 1 before listening")

import shutil  # noqa: E402
shutil.rmtree(tmp, ignore_errors=True)
sys.exit(tap.done())
