"""test_payment.py: the simulated payment, in every mode. With decline_rate 1.0
every purchase is answered 402 payment_declined and the stock is unchanged,
whether the payment is settled at once (latency 0), on the loop's timer
(async) or by a sleeping worker (blocking), for general and VIP buyers. With
a latency, accepted payments still confirm; with decline_rate 0.5 the sold
figures equal the 201 replies exactly. In async mode the purchases of one
worker overlap (no worker waits out a payment). Clients that reset their
connection during the payment leave the daemon idle, and their purchases
still complete, and so do the loop's other held-request cases: a client
that sends its next request during the payment (pipelined: the daemon stays
idle, then answers both in order) or half-closes its end (stays idle, the
reply still arrives). Once one purchase was refused, the loop answers the next
sold-out ones at once, not behind a worker that is sleeping out a payment,
and with 409 even when the queue is full.
"""
import os
import re
import socket
import struct
import sys
import threading
import time

import tap
from ticketd_test import SCALE, Daemon, base_config, is_error_body, wait_until, watchdog

watchdog(120)

for mode, latency in (("async", 0), ("async", 30), ("blocking", 30)):
    label = "%s %d ms" % (mode, latency)
    d = Daemon(base_config(payment={"latency_ms": latency, "decline_rate": 1.0,
                                    "mode": mode})).start()
    before = d.event("concert")["tiers"]
    conn = d.connect()
    replies = [d.purchase("concert", conn=conn, buyer="b", quantity=1 + i % 3) for i in range(6)]
    replies += [d.purchase("concert", conn=conn, buyer="v", tier="vip", vip_code="backstage",
                           quantity=2) for _ in range(3)]
    conn.close()
    tap.ok(all(r.status == 402 and is_error_body(r, "payment_declined") for r in replies),
           "%s, decline_rate 1.0: every purchase is 402 payment_declined" % label)
    tap.eq(d.event("concert")["tiers"], before, "%s: stock unchanged" % label)
    d.finish(label)

# Latency with no declines: purchases confirm; async purchases overlap on one worker.
d = Daemon(base_config(workers=1, payment={"latency_ms": 500, "decline_rate": 0.0,
                                           "mode": "async"})).start()
out = []
lock = threading.Lock()


def buy(i):
    r = d.purchase("flash-sale", buyer="p%d" % i)
    with lock:
        out.append(r)


t0 = time.monotonic()
threads = [threading.Thread(target=buy, args=(i,)) for i in range(20)]
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.monotonic() - t0
tap.ok(all(r.status == 201 for r in out), "async 500 ms: 20 purchases confirmed")
tap.eq(d.event("flash-sale")["tiers"]["general"]["sold"], 20, "async 500 ms: 20 sold")
# One worker sleeping 500 ms per purchase would need 10 s; with the timer
# the payments overlap. A bound on the design (half the serial time), not a
# speed: the run takes about one latency.
tap.ok(elapsed < 5.0 * SCALE,
       "async: one worker served 20 overlapping payments (%.2fs, not 20 x 500 ms)" % elapsed)
d.finish("async latency daemon")

# decline_rate 0.5: sold == the 201 replies, declined ones released.
d = Daemon(base_config(payment={"latency_ms": 1, "decline_rate": 0.5, "mode": "async"})).start()
conn = d.connect()
replies = [d.purchase("concert", conn=conn, buyer="h", quantity=2) for _ in range(60)]
conn.close()
ok201 = [r for r in replies if r.status == 201]
declined = [r for r in replies if r.status == 402]
tap.eq(len(ok201) + len(declined), 60, "decline 0.5: every reply is 201 or 402")
tap.ok(ok201 and declined, "decline 0.5: some of each (%d sold, %d declined)"
       % (len(ok201), len(declined)))
gen = d.event("concert")["tiers"]["general"]
tap.eq((gen["sold"], gen["available"]), (2 * len(ok201), 900 - 2 * len(ok201)),
       "decline 0.5: sold == tickets of the 201s, declined ones back in stock")
d.finish("decline 0.5 daemon")
# Clients that do something to their connection while its purchase waits out
# a payment (the loop holds the request, evhttp does not read): four reset it
# (RST), two send their next request (pipelined), two half-close it
# (shutdown SHUT_WR: EOF). Each of these makes the fd readable while evhttp
# does not read it; the loop must not spin on that (its CPU time over the
# wait stays far below the wall time; a loop polling a reported-but-unhandled
# event uses all of it), and every purchase still completes.
HOLD = 1.5 * SCALE
d = Daemon(base_config(workers=0, io_threads=1,
                       payment={"latency_ms": int(HOLD * 1000), "decline_rate": 0.0,
                                "mode": "async"})).start()
tick = os.sysconf("SC_CLK_TCK")


def cpu_s():
    with open("/proc/%d/stat" % d.proc.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick   # utime + stime


def purchase_bytes(buyer):
    body = b'{"buyer":"%s","quantity":1}' % buyer
    return (b"POST /v1/events/flash-sale/purchase HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body))


class _Stream:
    """Reads responses one after another from one socket (status, body)."""
    def __init__(self, sock):
        self.f = sock.makefile("rb")

    def reply(self):
        status = int(self.f.readline(1024).split()[1])
        length = 0
        while True:
            line = self.f.readline(8192)
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, self.f.read(length)


clients = {"rst": [], "pipelined": [], "halfclosed": []}
for kind, n in (("rst", 4), ("pipelined", 2), ("halfclosed", 2)):
    for i in range(n):
        s = d.raw_connect(30)
        s.sendall(purchase_bytes(b"%s%d" % (kind.encode(), i)))
        clients[kind].append(s)
time.sleep(0.2 * SCALE)                  # the purchases are now waiting on their payment
for s in clients["rst"]:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()                            # RST
for i, s in enumerate(clients["pipelined"]):
    s.sendall(purchase_bytes(b"again%d" % i))
for s in clients["halfclosed"]:
    s.shutdown(socket.SHUT_WR)
c0, t0 = cpu_s(), time.monotonic()
time.sleep(HOLD * 0.6)
used, wall = cpu_s() - c0, time.monotonic() - t0
tap.ok(used < 0.4 * wall, "clients that reset, pipelined or half-closed during the payment: "
       "the daemon stays idle (%.2f s of CPU in %.2f s)" % (used, wall))
streams = [_Stream(s) for s in clients["pipelined"]]
tap.eq([(st.reply()[0], st.reply()[0]) for st in streams], [(201, 201)] * 2,
       "a request sent during the payment is answered after the first, both 201")
tap.eq([_Stream(s).reply()[0] for s in clients["halfclosed"]], [201] * 2,
       "a client that half-closed during the payment still gets its 201")
for s in clients["pipelined"] + clients["halfclosed"]:
    s.close()
wait_until(lambda: d.event("flash-sale")["tiers"]["general"]["sold"] >= 10, 10,
           "10 tickets sold", interval=0.05)
tap.eq(d.event("flash-sale")["tiers"]["general"]["sold"], 10,
       "every purchase completed: 4 of reset clients, 4 pipelined, 2 half-closed (sold 10)")
d.finish("held-connection daemon")

# Sold out with a worker pool: once a reserve has been refused, the loop
# answers the next purchases that cannot be served itself (the seller's
# sold-out hint), so they never wait behind a worker that sleeps out a
# payment, nor get 503 for a full queue. One worker, a queue of one, a
# blocking payment of PAY s, two tickets:
#  1. a purchase of 3 is refused by the worker (the hint is now "3 or more");
#  2. A buys 1 and holds the only worker for PAY s;
#  3. B asks for 3: answered 409 at once, while A is still paying (before
#     the loop answered it, B waited behind A: 0.00 s before A's reply);
#  4. C asks for 1 (below the hint): it waits in the queue, which is full;
#  5. D asks for 3: still 409 at once; E asks for 1: 503 overloaded;
#  6. A and C then sell.
PAY = 3 * SCALE
d = Daemon(base_config(workers=1, io_threads=1, queue_depth=1,
                       payment={"latency_ms": int(PAY * 1000), "mode": "blocking"},
                       events=[{"id": "last", "tiers": {"general": 2}}])).start()
r = d.purchase("last", buyer="first", quantity=3)
tap.ok(r.status == 409 and is_error_body(r, "sold_out"), "a purchase of 3 of 2: 409 sold_out")
res = {}


def buy(name, qty):
    res[name] = (d.purchase("last", buyer=name, quantity=qty), time.monotonic())


def metric(text, pattern):
    """The value of the first exposition line matching pattern, or None."""
    hit = re.search(r"^%s (\S+)$" % pattern, text, re.M)
    return float(hit.group(1)) if hit else None


th_a = threading.Thread(target=buy, args=("a", 1))
th_a.start()
# A holds its ticket and sleeps in its payment.
wait_until(lambda: d.event("last")["tiers"]["general"]["available"] == 1, 10,
           "A's ticket held")
b = d.purchase("last", buyer="b", quantity=3)
t_b = time.monotonic()
tap.ok(b.status == 409 and is_error_body(b, "sold_out") and b.json.get("available") == 1 and
       b.json.get("message") == "not enough general tickets left for 3: 1 available",
       "sold out with the only worker busy: 409 sold_out, available 1 (%r)" % (b,))
th_c = threading.Thread(target=buy, args=("c", 1))
th_c.start()
# C waits in the full queue.
wait_until(lambda: metric(d.get("/metrics").body.decode(), "ticketd_queue_depth") == 1, 10,
           "C in the queue")
dd, e = d.purchase("last", buyer="d", quantity=3), d.purchase("last", buyer="e", quantity=1)
tap.eq((dd.status, is_error_body(dd, "sold_out"), e.status, is_error_body(e, "overloaded")),
       (409, True, 503, True),
       "queue full: a sold-out purchase still gets 409 sold_out, a sellable one 503 overloaded")
th_a.join()
th_c.join()
tap.ok(t_b < res["a"][1] - PAY / 2, "the 409 came while the worker still slept in A's payment "
       "(%.2f s before A's reply)" % (res["a"][1] - t_b))
tap.eq((res["a"][0].status, res["c"][0].status), (201, 201),
       "A's purchase completes, and C's (1, below the hint) went to the pool and sold")
tap.eq(d.event("last")["tiers"]["general"]["sold"], 2, "sold 2")
m = d.get("/metrics").body.decode()
tap.eq((metric(m, r'ticketd_purchases_total\{event="last",tier="general",outcome="sold_out"\}'),
        metric(m, r'ticketd_purchases_total\{event="last",tier="general",outcome="overloaded"\}')),
       (3.0, 1.0), "the three 409s are counted as sold_out purchases, the 503 as overloaded")
tap.eq(metric(m, "ticketd_queue_wait_seconds_count"), 3.0,
       "queue waits: the three jobs a worker took (the first 409, A, C), not B's or D's")
d.finish("early sold-out daemon")
sys.exit(tap.done())
