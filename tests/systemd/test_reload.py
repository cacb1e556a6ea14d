"""test_reload.py: SIGHUP reloads of the real ticketd under a simulated
systemd (tests/systemd/sdharness.py). Covers:
  - the protocol: RELOADING=1 with a MONOTONIC_USEC taken during the reload,
    then READY=1, both from the daemon's pid, for good and refused reloads;
  - a good reload changes behaviour: decline_rate 0 -> 1 turns purchases into
    402 (and back), max_quantity and max_body_bytes apply, workers change, a
    new event goes on sale, a capacity grows, an event without sales is
    dropped and later put back, log_level applies; a key that needs a
    restart (io_threads) is logged and the rest still applies;
  - a bad reload is refused whole: a syntax error, an unknown key, a capacity
    below what was sold, a capacity lowered above it, an event with sales
    dropped; each is logged with its reason, the daemon keeps serving on the
    old config (a payment change in the same file does not apply) and the
    inventory is unchanged;
  - an event dropped while a purchase for it waits in the queue: the purchase
    still sells, and a later check logs that the event now has sales;
  - with "workers": 0 (the loops reserve), a reload to 2 workers is kept
    until a restart, with a warning, and the rest applies; a reload to a
    blocking payment is refused there (it would sleep on an event loop);
  - reloads under load: clients buy from 8 threads while the config changes
    ten times; every reply is 201/402/409, each event's sold equals the
    quantities of its 201s, sold + available == capacity, the final
    capacities are the last config's.
TAP on stdout.
"""
import copy
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tap  # noqa: E402
from sdticketd import SCALE, SdTicketd, base_config  # noqa: E402
from ticketd_test import wait_until, watchdog  # noqa: E402

watchdog(300)


def tiers(ev):
    """{tier: (capacity, available, sold)} of an EVENT."""
    return {k: (v["capacity"], v["available"], v["sold"]) for k, v in ev["tiers"].items()}


def inventory(t):
    return {k: tiers(v) for k, v in t.events().items()}


def protocol(t):
    """One reload with nothing changed: RELOADING=1 (MONOTONIC_USEC), READY=1."""
    before = time.monotonic()
    rel, again = t.reload()
    after = time.monotonic()
    usec = int(rel.get("MONOTONIC_USEC", "0"))
    tap.ok(before * 1e6 <= usec <= after * 1e6,
           "RELOADING=1 carries MONOTONIC_USEC from within the reload (%d)" % usec)
    tap.ok(rel.pid == t.pid and again.pid == t.pid and again.seq > rel.seq,
           "READY=1 follows RELOADING=1, both from the daemon's pid")
    tap.ok("reloaded %s: nothing changed" % t.conf_path in t.stderr(),
           "an unchanged file reloads as 'nothing changed'")


def good_reloads(t):
    c = t.config
    tap.eq(t.purchase("concert", buyer="a", quantity=3).status, 201, "before: 201")
    tap.eq(t.purchase("concert", buyer="a", quantity=15).status, 400,
           "before: quantity 15 is over max_quantity 10 (400)")

    c["payment"]["decline_rate"] = 1.0
    c["limits"]["max_quantity"] = 20
    c["workers"] = 4
    t.write_config()
    t.reload()
    inv = inventory(t)
    codes = [t.purchase("concert", buyer="b", quantity=2).status for _ in range(5)]
    tap.eq(codes, [402] * 5, "decline_rate 0 -> 1.0: every purchase is declined (402)")
    tap.eq(inventory(t), inv, "declined purchases sold nothing")
    tap.eq(t.purchase("concert", buyer="a", quantity=15).status, 402,
           "max_quantity 10 -> 20: quantity 15 passes the decoder (and is declined)")
    tap.ok("workers: 2 -> 4" in t.stderr(), "workers 2 -> 4 is applied and logged")

    c["payment"]["decline_rate"] = 0.0
    c["workers"] = 1
    c["events"][0]["tiers"]["general"] = 1200
    c["events"].append({"id": "encore", "name": "Encore", "tiers": {"general": 5}})
    c["io_threads"] = 3
    t.write_config()
    t.reload()
    tap.eq(t.purchase("concert", buyer="c", quantity=15).status, 201,
           "decline_rate back to 0 with 1 worker: 201 again")
    ev = t.event("concert")
    tap.eq(tiers(ev)["general"], (1200, 1200 - 18, 18),
           "the general capacity grew 900 -> 1200 and kept the 18 sold")
    tap.eq(t.purchase("encore", buyer="d", quantity=5).status, 201,
           "a new event is on sale after the reload")
    tap.eq(tiers(t.event("encore"))["general"], (5, 0, 5), "and sells its 5 tickets")
    err = t.stderr()
    tap.ok("io_threads (2 -> 3)" in err and "until a restart" in err,
           "io_threads needs a restart: logged, the rest applied")

    c["limits"]["max_body_bytes"] = 64
    c["events"].append({"id": "quiet", "tiers": {"general": 10}})
    t.write_config()
    t.reload()
    big = {"buyer": "e" * 100}
    tap.eq(t.request("POST", "/v1/events/concert/purchase", big).status, 413,
           "max_body_bytes 4096 -> 64: a 100-byte body on a new connection gets 413")
    c["limits"]["max_body_bytes"] = 4096
    c["events"] = [e for e in c["events"] if e["id"] != "quiet"]
    t.write_config()
    t.reload()
    tap.ok(t.event("quiet") is None and "quiet" not in t.events(),
           "an event without sales is dropped by a reload (404, not listed)")
    c["events"].append({"id": "quiet", "tiers": {"general": 10}})
    t.write_config()
    t.reload()
    tap.ok(t.event("quiet") is not None, "and put back by the next one")

    c["log_level"] = "warn"
    t.write_config()
    t.reload()
    n = t.stderr().count("SIGHUP: reloading")
    t.reload()
    tap.eq(t.stderr().count("SIGHUP: reloading"), n,
           "log_level info -> warn: the reload's notice line is no longer written")
    c["log_level"] = "info"
    t.write_config()
    t.reload()


def bad_reloads(t):
    good = copy.deepcopy(t.config)
    t.purchase("flash-sale", buyer="f", quantity=4)
    sold = t.event("concert")["tiers"]["general"]["sold"]
    cases = []

    c = copy.deepcopy(good)
    cases.append(("a syntax error", None, '{"events": [', "expected"))
    c = copy.deepcopy(good)
    c["bogus"] = 1
    cases.append(("an unknown key", c, None, "bogus: unknown key"))
    c = copy.deepcopy(good)
    c["events"][0]["tiers"]["general"] = sold - 1
    c["payment"]["decline_rate"] = 1.0
    cases.insert(0, ("a capacity below what was sold (with a payment change)", c, None,
                     "the general capacity %d is below the %d tickets already sold"
                     % (sold - 1, sold)))
    c = copy.deepcopy(good)
    c["events"][0]["tiers"]["general"] = sold + 10
    cases.append(("a capacity lowered above what was sold", c, None,
                  "cannot go down from 1200 to %d" % (sold + 10)))
    c = copy.deepcopy(good)
    c["events"] = [e for e in c["events"] if e["id"] != "flash-sale"]
    cases.append(("an event with sales dropped", c, None,
                  "event flash-sale is missing, but it has 4 tickets sold"))

    for what, conf, text, reason in cases:
        inv = inventory(t)
        mark = len(t.stderr())
        if conf is not None:
            t.config = conf
            t.write_config()
        else:
            t.write_config(text)
        rel, again = t.reload()
        log = t.stderr()[mark:]
        tap.ok(again.seq > rel.seq, "%s: RELOADING=1 then READY=1 all the same" % what)
        tap.ok("reload refused" in log and reason in log,
               "%s: refused, and the log says why (%r)" % (what, reason))
        tap.eq(inventory(t), inv, "%s: inventory unchanged" % what)
        r = t.purchase("concert", buyer="g")
        tap.eq(r.status, 201, "%s: still serving on the old config (201, not 402)" % what)
    t.config = good
    t.write_config()
    t.reload()


def dropped_in_flight():
    """One worker, blocking payments of 1 s: a purchase for "late" waits in
    the queue behind another while a reload drops "late" (unsold so far)."""
    latency = int(1000 * SCALE)   # the sleeps below are fractions of it
    conf = base_config(workers=1, payment={"mode": "blocking", "latency_ms": latency},
                       limits={"request_timeout_ms": 4 * latency})
    conf["events"].append({"id": "late", "tiers": {"general": 5}})
    with SdTicketd(conf) as t:
        t.ready()
        res = {}
        first = threading.Thread(target=lambda: res.update(
            a=t.purchase("concert", buyer="first").status))
        first.start()
        time.sleep(0.3 * latency / 1000)   # the worker is in the first payment now
        second = threading.Thread(target=lambda: res.update(
            b=t.purchase("late", buyer="second").status))
        second.start()
        time.sleep(0.2 * latency / 1000)   # queued behind it, not reserved yet
        t.config["events"] = [e for e in t.config["events"] if e["id"] != "late"]
        t.write_config()
        t.reload()
        first.join()
        second.join()
        log = t.stderr()
        tap.ok("reload refused" not in log and t.event("late") is None,
               "an unsold event is dropped while a purchase for it is queued")
        if "reload refused" in log:
            tap.diag(log[-1500:])
        tap.eq(res, {"a": 201, "b": 201}, "the queued purchase still completes (201)")
        wait_until(lambda: "a purchase in flight when a reload dropped it" in t.stderr(), 15,
                   "the dropped event's check", interval=0.2)
        tap.ok("event late: a purchase in flight when a reload dropped it sold 1 tickets"
               in t.stderr(), "a later check logs that the dropped event has sales now")
        tap.eq(t.stop(), 0, "dropped in flight: exit 0")


def inline_workers():
    conf = base_config(workers=0)
    with SdTicketd(conf) as t:
        t.ready()
        t.config["workers"] = 2
        t.config["payment"]["decline_rate"] = 1.0
        t.write_config()
        t.reload()
        log = t.stderr()
        tap.ok("workers (0 -> 2: reserving on the loops is fixed at start)" in log,
               "workers 0 -> 2: kept until a restart, with a warning")
        tap.eq(t.purchase("concert", buyer="h").status, 402,
               "workers 0: the rest of the reload applies (decline_rate 1 -> 402)")
        t.config["workers"] = 0
        t.config["payment"]["decline_rate"] = 0.0
        t.write_config()
        t.reload()
        tap.eq(t.purchase("concert", buyer="h").status, 201,
               "workers 0 again: 201, and no resize was attempted")
        tap.ok("reload: workers" not in t.stderr(), "no resize error logged")
        # The file alone is valid (2 workers may block), but this daemon keeps
        # reserving on its loops: a blocking payment there is refused whole.
        t.config["workers"] = 2
        t.config["payment"].update(mode="blocking", latency_ms=500, decline_rate=1.0)
        t.write_config()
        t.reload()
        tap.ok('payment.mode "blocking" needs workers' in t.stderr(),
               "workers 0: a reload to a blocking payment is refused, with the reason")
        tap.eq(t.purchase("concert", buyer="h").status, 201,
               "workers 0: the refused reload applied nothing (no decline, no sleep)")
        tap.eq(t.stop(), 0, "workers 0: exit 0")


def under_load():
    conf = base_config(workers=2, io_threads=2)
    conf["events"] = [{"id": "e%d" % i, "tiers": {"general": 300}} for i in range(3)]
    stop = threading.Event()
    lock = threading.Lock()
    got = {}           # event -> quantity of its 201s
    codes = {}
    errors = []

    def client(t, n):
        c = t.connect()
        i = 0
        while not stop.is_set():
            ev = "e%d" % (i % 3)
            i += 1
            try:
                r = t.purchase(ev, conn=c, buyer="load%d" % n, quantity=1 + i % 3)
            except Exception as e:  # noqa: BLE001: any transport error fails the test
                errors.append(repr(e))
                c.close()
                c = t.connect()
                continue
            with lock:
                codes[r.status] = codes.get(r.status, 0) + 1
                if r.status == 201:
                    got[ev] = got.get(ev, 0) + r.json["quantity"]
        c.close()

    with SdTicketd(conf) as t:
        t.ready()
        threads = [threading.Thread(target=client, args=(t, n)) for n in range(8)]
        for th in threads:
            th.start()
        readies = 0
        for k in range(10):
            t.config["payment"]["decline_rate"] = 0.5 if k % 2 == 0 else 0.0
            t.config["workers"] = 1 + k % 3
            for e in t.config["events"]:
                e["tiers"]["general"] += 50
            t.config["events"].append({"id": "n%d" % k, "tiers": {"general": 1}})
            t.write_config()
            t.reload()
            readies += 1
            time.sleep(0.1 * SCALE)
        stop.set()
        for th in threads:
            th.join()
        tap.ok(not errors, "under load: no transport error (%s)" % errors[:3])
        tap.ok(set(codes) <= {201, 402, 409} and codes.get(201),
               "under load: every reply is 201, 402 or 409 (%s)" % codes)
        evs = t.events()
        consistent = all(
            evs[e]["tiers"]["general"]["sold"] == got.get(e, 0) and
            evs[e]["tiers"]["general"]["sold"] + evs[e]["tiers"]["general"]["available"]
            == evs[e]["tiers"]["general"]["capacity"] for e in ("e0", "e1", "e2"))
        tap.ok(consistent, "under load: each event's sold equals its 201s, "
               "sold + available == capacity (%s, %s)"
               % ({e: tiers(evs[e])["general"] for e in ("e0", "e1", "e2")}, got))
        tap.ok(all(evs["e%d" % i]["tiers"]["general"]["capacity"] == 800 for i in range(3))
               and all("n%d" % k in evs for k in range(10)),
               "under load: the last config's capacities (800) and all 10 new events")
        tap.eq(len([m for m in t.sd.messages() if m.has("READY=1")]), readies + 1,
               "under load: one READY=1 per reload, plus the first")
        tap.eq(t.stop(), 0, "under load: exit 0")
        report = t.sanitizer_report()
        tap.ok(not report, "under load: no sanitizer report")
        if report:
            tap.diag("\n".join(report[:20]))


def main():
    with SdTicketd(base_config()) as t:
        t.ready()
        protocol(t)
        good_reloads(t)
        bad_reloads(t)
        tap.eq(t.stop(), 0, "exit 0 after every reload")
        tap.ok(not t.sd.foreign_messages(), "every notify message came from the daemon's pid")
        report = t.sanitizer_report()
        tap.ok(not report, "no sanitizer report")
        if report:
            tap.diag("\n".join(report[:20]))
    dropped_in_flight()
    inline_workers()
    under_load()
    return tap.done()


if __name__ == "__main__":
    tap.run(main)
