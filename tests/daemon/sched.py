"""sched.py: the scheduling policy of ticketd's threads. The ledger thread
runs SCHED_BATCH, so that a submission's wakeup does not preempt the loop
or worker that submitted (lib/ledger.c, sched_batch): read from
/proc/PID/task/TID/stat (field 41, the policy) of the running daemon, with
a worker pool and with "workers": 0. Every other thread stays SCHED_OTHER,
the daemon logs no refusal, and purchases commit and read back as before.
TAP on stdout.
"""
import os

import tap
from ticketd_test import Daemon, base_config, watchdog

watchdog(60)
SCHED_OTHER, SCHED_BATCH = 0, 3


def threads(pid):
    """{tid: (comm, policy)} of every thread of pid."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                comm = f.read().strip()
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                stat = f.read()
        except OSError:
            continue  # the thread ended meanwhile
        # Fields after the ")" that closes comm start at field 3 (state).
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(tid)] = (comm, int(fields[41 - 3]))
    return out


for workers in (2, 0):
    label = "workers %d" % workers
    d = Daemon(base_config(workers=workers, io_threads=2,
                           ledger={"sync": "off"})).start()
    # A few committed purchases first: the ledger thread has run by then.
    orders = []
    for i in range(5):
        r = d.purchase("concert", buyer="sched-%d" % i, quantity=1, tier="general")
        orders.append((r.json or {}).get("order") if r.status == 201 else None)
    tap.ok(all(orders), "%s: five purchases are confirmed (%s)" % (label, orders))
    t = threads(d.proc.pid)
    ledger = [p for c, p in t.values() if c == "ledger"]
    tap.eq(ledger, [SCHED_BATCH], "%s: the one ledger thread runs SCHED_BATCH" % label)
    others = sorted({(c, p) for c, p in t.values() if c != "ledger" and p != SCHED_OTHER})
    tap.eq(others, [], "%s: every other thread (%d) runs SCHED_OTHER" % (label, len(t) - 1))
    read = [d.get("/v1/orders/%s" % o).status for o in orders if o]
    tap.eq(read, [200] * 5, "%s: the orders read back" % label)
    tap.ok("SCHED_BATCH" not in d.log(), "%s: no refusal of SCHED_BATCH in the log" % label)
    d.finish(label)

raise SystemExit(tap.done())
