"""test_concurrency.py: 64 concurrent clients against every correct seller core
(ticketd --list-sellers), one event per core, with mixed quantities and
tiers and more demand than tickets. Invariants, checked exactly per event
and tier:
  - the 201 replies add up to `sold` in GET /v1/events/{id} (per pool too);
  - sold + available == capacity;
  - every ticket code is distinct, across all events;
  - without payment declines, every 409 says fewer tickets were left than the
    buyer asked for (nobody was refused while enough remained);
  - every reply is a 201 or a 409 (no error, no lost request).
A second run adds an async payment latency and a 30% decline rate, so
reservations are released under contention; the first three invariants
still hold exactly. A third run has "workers": 0 (the loops reserve inline).
"""
import random
import sys
import threading

import tap
from ticketd_test import Daemon, base_config, is_error_body, sellers, watchdog

watchdog(300)
CLIENTS = 64
REQUESTS = 12            # per client
CAP_GENERAL, CAP_VIP = 160, 24

cores = sellers()
tap.diag("cores: %s" % ", ".join(cores))
tap.ok("mutex" in cores, "the registry lists the mutex core")


def run(label, payment, strict, workers=4):
    events = [{"id": "ev-" + c, "seller": c, "vip_code": "vip-" + c,
               "tiers": {"general": CAP_GENERAL, "vip": CAP_VIP}} for c in cores]
    conf = base_config(io_threads=2, workers=workers, payment=payment, events=events)
    d = Daemon(conf).start()
    results = []             # (event, tier asked, quantity, Reply)
    errors = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def client(n):
        rnd = random.Random(n)
        mine = []
        try:
            conn = d.connect()
            start.wait()
            for i in range(REQUESTS):
                core = cores[(n + i) % len(cores)]
                qty = rnd.choice((1, 1, 2, 3, 4))
                vip = rnd.random() < 0.3
                body = {"buyer": "c%d-%d" % (n, i), "quantity": qty}
                if vip:
                    body.update(tier="vip", vip_code="vip-" + core)
                if i % 4 == 3:       # now and then a fresh connection
                    conn.close()
                    conn = d.connect()
                r = d.post("/v1/events/ev-%s/purchase" % core, body, conn=conn)
                mine.append((core, "vip" if vip else "general", qty, r))
            conn.close()
        except Exception as e:  # noqa: BLE001 - reported as a failure below
            with lock:
                errors.append("client %d: %r" % (n, e))
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in errors[:5]:
        tap.diag(e)
    tap.ok(not errors, "%s: all %d clients finished without a transport error"
           % (label, CLIENTS))
    tap.eq(len(results), CLIENTS * REQUESTS, "%s: every request got a reply" % label)
    allowed = (201, 409, 402) if not strict else (201, 409)
    odd = [r for (_, _, _, r) in results if r.status not in allowed]
    for r in odd[:5]:
        tap.diag(repr(r))
    tap.ok(not odd, "%s: every reply is one of %s" % (label, allowed))

    codes = []
    for core in cores:
        ev = d.event("ev-" + core)
        mine = [(tier, q, r) for (c, tier, q, r) in results if c == core]
        created = [r.json for (_, _, r) in mine if r.status == 201]
        by_pool = {"general": 0, "vip": 0}
        for o in created:
            by_pool[o["tier"]] += o["quantity"]
            codes.extend(o["tickets"])
            if len(o["tickets"]) != o["quantity"]:
                tap.diag("order %s has %d tickets for quantity %d"
                         % (o["order"], len(o["tickets"]), o["quantity"]))
        tiers = ev["tiers"]
        sold = tiers["general"]["sold"] + tiers["vip"]["sold"]
        tap.eq(sum(by_pool.values()), sold, "%s/%s: 201 quantities add up to sold (%d)"
               % (label, core, sold))
        tap.eq((by_pool["general"], by_pool["vip"]),
               (tiers["general"]["sold"], tiers["vip"]["sold"]),
               "%s/%s: per pool too" % (label, core))
        tap.ok(all(t["sold"] + t["available"] == t["capacity"] for t in tiers.values()),
               "%s/%s: sold + available == capacity" % (label, core))
        tap.ok(tiers["general"]["capacity"] == CAP_GENERAL and tiers["vip"]["capacity"] == CAP_VIP,
               "%s/%s: capacities unchanged" % (label, core))
        refused = [(q, r) for (_, q, r) in mine if r.status == 409]
        tap.ok(all(is_error_body(r, "sold_out") and r.json["available"] >= 0 for (_, r) in refused),
               "%s/%s: every 409 is sold_out with available" % (label, core))
        if strict:
            tap.ok(refused, "%s/%s: demand exceeded the stock (%d refused)"
                   % (label, core, len(refused)))
            wrong = [(q, r.json["available"]) for (q, r) in refused if r.json["available"] >= q]
            tap.ok(not wrong, "%s/%s: no buyer refused while enough remained %s"
                   % (label, core, wrong[:3]))
        else:
            declined = [r for (_, _, r) in mine if r.status == 402]
            tap.ok(all(is_error_body(r, "payment_declined") for r in declined),
                   "%s/%s: %d declined payments, each 402 payment_declined"
                   % (label, core, len(declined)))
    tap.eq(len(codes), len(set(codes)), "%s: all %d ticket codes are distinct"
           % (label, len(codes)))
    # A sample of the orders is there to read back.
    sample = [r.json for (_, _, _, r) in results if r.status == 201][:20]
    back = [d.get("/v1/orders/" + o["order"]).json for o in sample]
    tap.eq(back, sample, "%s: orders read back as sold" % label)
    d.finish(label)


run("no latency", {"latency_ms": 0, "decline_rate": 0.0, "mode": "async"}, strict=True)
run("async 2 ms, 30% declined", {"latency_ms": 2, "decline_rate": 0.3, "mode": "async"},
    strict=False)
run("workers 0, async 2 ms, 30% declined",
    {"latency_ms": 2, "decline_rate": 0.3, "mode": "async"}, strict=False, workers=0)
sys.exit(tap.done())
