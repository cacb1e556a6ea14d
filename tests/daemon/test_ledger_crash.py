"""test_ledger_crash.py: SIGKILL while clients buy, four times over, with the
ledger's sync "full".

Eight clients buy concurrently on keep-alive connections (quantities 1 to 3,
a quarter of them vip buyers, each purchase with its own Idempotency-Key).
In rounds 1 to 3 the test kills the daemon with SIGKILL at a random moment
while purchases are in flight (once the 201s reach a random share of the
stock); in round 4 the clients buy until the event is sold out, then it is
killed again. After each kill the daemon restarts on the same state dir and:
  - every order that got a 201, in any round, is there: GET /v1/orders/{id}
    returns it as it was, "confirmed";
  - every purchase whose reply the kill cut off is retried with its key: it
    gets 201 (its order, if it had been committed) or 409 sold_out, and no
    key ever has two orders in the ledger;
  - sold (GET /v1/events) equals the sum of the confirmed orders in the
    ledger (read with SQLite), pool by pool, is at least the 201s' tickets,
    and never exceeds the capacity: no tier is oversold across restarts;
  - ticketd --audit passes.
At the end the general tier is sold out exactly.
"""
import http.client
import json
import os
import random
import sqlite3
import sys
import threading
import time

import tap
from ticketd_test import SCALE, Daemon, base_config, run_ticketd, watchdog

watchdog(150)
CLIENTS = 8
CAP = {"general": 600, "vip": 60}
rng = random.Random(os.environ.get("TICKETD_SEED") or time.time_ns())

conf = base_config(io_threads=2, workers=4, ledger={"sync": "full"}, events=[
    {"id": "crash", "tiers": dict(CAP), "vip_code": "vip!"}])
d = Daemon(conf, name="crash").start()
db_path = os.path.join(d.state_dir, "ledger.db")

lock = threading.Lock()       # guards confirmed, cut_off, tickets_201
confirmed = {}                # order id -> ORDER of a 201
cut_off = []                  # (key, body) whose reply never came
tickets_201 = [0]
serial = [0]
kill_at = [None]              # (target tickets, Event set when reached)
CUT = (http.client.HTTPException, ConnectionError, OSError)


def new_purchase(i):
    vip = rng.random() < 0.25
    with lock:
        serial[0] += 1
        key = "c%d-%d" % (i, serial[0])
    body = {"buyer": "client-%d" % i, "quantity": rng.randint(1, 3)}
    if vip:
        body.update(tier="vip", vip_code="vip!")
    return key, json.dumps(body)


def client(i, stop, until_sold_out):
    """Buys until stop is set, the connection is cut, or (round 4) its pools are empty."""
    conn = d.connect()
    try:
        while not stop.is_set():
            key, body = new_purchase(i)
            try:
                conn.request("POST", "/v1/events/crash/purchase", body=body,
                             headers={"Idempotency-Key": key})
                r = conn.getresponse()
                data = r.read()
            except CUT:
                with lock:
                    cut_off.append((key, body))
                return
            if r.status == 201:
                o = json.loads(data)
                with lock:
                    confirmed[o["order"]] = o
                    tickets_201[0] += o["quantity"]
                    if kill_at[0] and tickets_201[0] >= kill_at[0][0]:
                        kill_at[0][1].set()
            elif r.status == 409:
                # A 409 only says fewer than this purchase's quantity were
                # left; in the sell-out round keep buying (smaller quantities
                # come) until the pools this buyer may use are empty.
                if until_sold_out and json.loads(data).get("available", 0) == 0:
                    return
            else:
                with lock:
                    cut_off.append((key, body))   # retried later; must not be 5xx then
                tap.diag("client %d: unexpected %d %r" % (i, r.status, data[:200]))
    finally:
        conn.close()


def ledger_sums():
    """{pool: confirmed tickets} and the keys with more than one order, from
    the ledger itself (read-only; the daemon keeps running)."""
    c = sqlite3.connect("file:%s?mode=ro" % db_path, uri=True, timeout=10)
    try:
        sums = dict(c.execute("SELECT pool, SUM(quantity) FROM orders WHERE event = 'crash'"
                              " AND state = 'confirmed' GROUP BY pool").fetchall())
        dups = c.execute("SELECT idem_key, COUNT(*) FROM orders WHERE idem_key IS NOT NULL"
                         " GROUP BY idem_key HAVING COUNT(*) > 1").fetchall()
    finally:
        c.close()
    return {p: sums.get(p, 0) for p in CAP}, dups


def check(rnd):
    """The invariants after a restart."""
    global cut_off
    with lock:
        retry, cut_off = cut_off, []
    statuses = []
    for key, body in retry:
        r = d.post("/v1/events/crash/purchase", body, headers={"Idempotency-Key": key})
        statuses.append(r.status)
        if r.status == 201:
            confirmed[r.json["order"]] = r.json
            tickets_201[0] += r.json["quantity"]
    tap.ok(all(s in (201, 409) for s in statuses),
           "round %d: the %d purchases cut off, retried with their keys: 201 or 409 (%s)"
           % (rnd, len(retry), statuses))
    missing = [oid for oid, o in confirmed.items()
               if d.get("/v1/orders/" + oid).json != o]
    tap.ok(not missing, "round %d: all %d orders that got a 201 are there, as they were"
           % (rnd, len(confirmed)))
    for oid in missing[:5]:
        tap.diag("missing or changed: %s" % oid)
    tiers = d.event("crash")["tiers"]
    sold = {p: tiers[p]["sold"] for p in CAP}
    sums, dups = ledger_sums()
    tap.eq(sold, sums, "round %d: sold == the sum of the confirmed orders in the ledger" % rnd)
    tap.ok(all(sold[p] <= CAP[p] and tiers[p]["available"] == CAP[p] - sold[p] for p in CAP),
           "round %d: no tier oversold (%s of %s)" % (rnd, sold, CAP))
    tap.ok(sum(sold.values()) >= tickets_201[0],
           "round %d: sold %d >= the 201s' tickets %d"
           % (rnd, sum(sold.values()), tickets_201[0]))
    tap.eq(dups, [], "round %d: no Idempotency-Key has two orders" % rnd)
    rc, out, err = run_ticketd("-c", d.conf_path, "--audit")
    tap.ok(rc == 0 and "audit: OK" in out, "round %d: --audit passes" % rnd)
    if rc:
        tap.diag(out + err)
    return sold


total = sum(CAP.values())
for rnd in (1, 2, 3, 4):
    stop = threading.Event()
    last = rnd == 4
    # A random moment in this round's share of the stock.
    reached = threading.Event()
    kill_at[0] = (total * (rnd - 1 + rng.uniform(0.3, 0.8)) / 4, reached)
    threads = [threading.Thread(target=client, args=(i, stop, last)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    if last:
        for t in threads:
            t.join()
    else:
        reached.wait(30 * SCALE)
        time.sleep(rng.uniform(0, 0.01))
    before = tickets_201[0]
    d.kill()   # SIGKILL, with purchases in flight
    stop.set()
    for t in threads:
        t.join()
    tap.diag("round %d: killed after %d tickets confirmed by 201s; %d replies cut off"
             % (rnd, before, len(cut_off)))
    d.start()
    sold = check(rnd)

tap.eq(sold["general"], CAP["general"], "the general tier ended sold out exactly")
d.finish("crash daemon")
sys.exit(tap.done())
