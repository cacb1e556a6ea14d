"""test_watchdog.py: ticketd's WATCHDOG=1 pings under a simulated systemd
(tests/systemd/sdharness.py sets WATCHDOG_USEC and reads the notify
socket). systemd kills a service when the gap between two pings reaches
WATCHDOG_USEC, so the checks are on gaps, loosely, never on speed:
  - idle and under load (8 clients buying), pings come from the daemon's pid,
    and no gap reaches WATCHDOG_USEC;
  - a stalled event loop (the TICKETD_DEBUG_STALL_LOOP test hook wedges loop 0
    in a callback) stops the pings for good, and the log names the loop; the
    daemon still exits 0 on SIGTERM (after its drain timeout);
  - a pool whose only worker is stuck longer than the interval (a blocking
    payment of 3 x WATCHDOG_USEC) stops the pings too, and they resume once
    it finishes.
TAP on stdout.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tap  # noqa: E402
from sdticketd import SANITIZED, SdTicketd, base_config  # noqa: E402
from ticketd_test import wait_until, watchdog  # noqa: E402

watchdog(300)

# Two seconds (four under a sanitizer): room for a loaded machine, and
# still quick. Pings are due every WD / 2.
WD = 2.0 * (2 if SANITIZED else 1)
WD_USEC = int(WD * 1e6)


def check_cadence(t, since, until, what):
    pings = t.sd.watchdog_times(since, until)
    gaps = t.sd.watchdog_gaps(since, until)
    tap.ok(len(pings) >= 2, "%s: %d pings in %.1f s" % (what, len(pings), until - since))
    tap.ok(max(gaps) < WD, "%s: no gap reaches WATCHDOG_USEC (longest %.2f s of %.1f s)"
           % (what, max(gaps), WD))


def cadence():
    with SdTicketd(base_config(), watchdog_usec=WD_USEC) as t:
        ready = t.ready()
        first = t.sd.wait_message("WATCHDOG=1", after=ready, timeout=WD)
        tap.ok(first.pid == t.pid, "the first WATCHDOG=1 comes within WATCHDOG_USEC of "
               "READY=1, from the daemon's pid")
        time.sleep(2.5 * WD)
        check_cadence(t, first.time, time.monotonic(), "idle")

        stop = threading.Event()
        codes = []

        def client(n):
            c = t.connect()
            while not stop.is_set():
                codes.append(t.purchase("flash-sale", conn=c, buyer="w%d" % n).status)
            c.close()

        start = time.monotonic()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for th in threads:
            th.start()
        time.sleep(2.5 * WD)
        stop.set()
        for th in threads:
            th.join()
        check_cadence(t, start, time.monotonic(), "under load (%d purchases)" % len(codes))
        tap.ok(codes and set(codes) <= {201, 409}, "under load: purchases answered")
        tap.eq(t.stop(), 0, "exit 0")
        tap.ok(not t.sd.foreign_messages(), "every message came from the daemon's pid")
        tap.ok(not t.sanitizer_report(), "no sanitizer report")


def stalled_loop():
    stall_ms = int(WD * 1500)   # 1.5 intervals after start
    conf = base_config(limits={"drain_timeout_ms": 500})
    with SdTicketd(conf, watchdog_usec=WD_USEC,
                   env={"TICKETD_DEBUG_STALL_LOOP": str(stall_ms)}) as t:
        ready = t.ready()
        pre = t.sd.wait_message("WATCHDOG=1", after=ready, timeout=WD)
        tap.ok(pre is not None, "before the stall, pings flow")
        # The stall begins stall_ms after the loops start, and says so; a
        # check right after it may still see the beats from before it.
        wait_until(lambda: "stalling on purpose" in t.stderr(), 30 * WD,
                   "the stall's log line", interval=0.05)
        time.sleep(0.6 * WD)
        t_stall = time.monotonic()
        time.sleep(2.5 * WD)
        late = t.sd.watchdog_times(since=t_stall)
        gap = max(t.sd.watchdog_gaps(since=t_stall))
        tap.ok(not late and gap >= WD, "loop 0 stalled: no ping for %.1f s (%.1f x WATCHDOG_USEC)"
               % (gap, gap / WD))
        err = t.stderr()
        tap.ok("stalling on purpose" in err and "no progress" in err and "loop 0" in err,
               "the log names the stalled loop")
        tap.ok(t.sd.alive(), "the daemon itself is still running (systemd would kill it)")
        tap.eq(t.stop(), 0, "SIGTERM: exit 0 once the drain times out")
        tap.ok(any(m.has("STOPPING=1") for m in t.sd.messages()), "STOPPING=1 sent")


def wedged_pool():
    latency = int(WD * 3000)
    conf = base_config(workers=1, payment={"mode": "blocking", "latency_ms": latency})
    with SdTicketd(conf, watchdog_usec=WD_USEC) as t:
        ready = t.ready()
        t.sd.wait_message("WATCHDOG=1", after=ready, timeout=WD)
        result = []
        buyer = threading.Thread(target=lambda: result.append(
            t.purchase("concert", buyer="slow").status))
        buyer.start()
        time.sleep(WD / 2)   # a ping already due may still arrive
        t_busy = time.monotonic()
        time.sleep(1.5 * WD)
        gap = max(t.sd.watchdog_gaps(since=t_busy))
        tap.ok(gap >= 1.5 * WD - 0.1,
               "the only worker stuck in a %d ms payment: no ping for %.1f s" % (latency, gap))
        buyer.join()
        tap.eq(result, [201], "the slow purchase completes")
        done = time.monotonic()
        again = t.sd.wait_message(lambda m: m.has("WATCHDOG=1") and m.time > done,
                                  timeout=2 * WD)
        tap.ok(again is not None, "pings resume once the pool progresses")
        tap.ok("the worker pool" in t.stderr() and "progress again" in t.stderr(),
               "the log names the pool, then says it progresses again")
        tap.eq(t.stop(), 0, "exit 0")


def main():
    cadence()
    stalled_loop()
    wedged_pool()
    return tap.done()


if __name__ == "__main__":
    tap.run(main)
