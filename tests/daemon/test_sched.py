"""test_sched.py: the scheduling policy of ticketd's threads. The ledger thread
runs SCHED_BATCH, so that a submission's wakeup does not preempt the loop
or worker that submitted (lib/ledger_sqlite.c, sched_batch): read from
/proc/PID/task/TID/stat (field 41, the policy) of the running daemon, with
a worker pool and with "workers": 0. Every other thread stays SCHED_OTHER,
the daemon logs no refusal, and purchases commit and read back as before.
Last, under a seccomp filter that fails sched_setscheduler with EPERM (as a
unit without the allow line would): the daemon says so in its log, the
ledger thread stays SCHED_OTHER, and purchases still commit. Skipped where
this process cannot install a filter. TAP on stdout.
"""
import ctypes
import errno
import os
import platform
import struct

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


def deny_sched_setscheduler():
    """Installs a seccomp filter on this process, inherited by the daemons
    it starts from now on, that fails sched_setscheduler with EPERM. Returns
    None, or why it could not."""
    arch = {"x86_64": (0xC000003E, 144), "aarch64": (0xC00000B7, 119)}.get(
        platform.machine())
    if arch is None:
        return "no sched_setscheduler number known for %s" % platform.machine()
    audit_arch, nr = arch
    ld_w_abs, jeq_k, ret_k = 0x20, 0x15, 0x06            # BPF opcodes
    allow, deny = 0x7FFF0000, 0x00050000 | errno.EPERM  # SECCOMP_RET_*

    def op(code, k, jt=0, jf=0):
        return struct.pack("HBBI", code, jt, jf, k)

    prog = b"".join([
        op(ld_w_abs, 4),                # seccomp_data.arch
        op(jeq_k, audit_arch, 1, 0),
        op(ret_k, allow),               # another ABI: not ours to judge
        op(ld_w_abs, 0),                # seccomp_data.nr
        op(jeq_k, nr, 0, 1),
        op(ret_k, deny),
        op(ret_k, allow),
    ])
    buf = ctypes.create_string_buffer(prog, len(prog))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    ul = ctypes.c_ulong
    if libc.prctl(38, ul(1), ul(0), ul(0), ul(0)) != 0:  # PR_SET_NO_NEW_PRIVS
        return "PR_SET_NO_NEW_PRIVS: %s" % os.strerror(ctypes.get_errno())
    if libc.prctl(22, ul(2), ctypes.byref(fprog), ul(0), ul(0)) != 0:  # PR_SET_SECCOMP
        return "PR_SET_SECCOMP: %s" % os.strerror(ctypes.get_errno())
    return None


def run(label, workers, want_policy, refused):
    """One daemon: five purchases, the threads' policies, the log."""
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
    tap.eq(ledger, [want_policy], "%s: the one ledger thread runs policy %d" % (label, want_policy))
    others = sorted({(c, p) for c, p in t.values() if c != "ledger" and p != SCHED_OTHER})
    tap.eq(others, [], "%s: every other thread (%d) runs SCHED_OTHER" % (label, len(t) - 1))
    read = [d.get("/v1/orders/%s" % o).status for o in orders if o]
    tap.eq(read, [200] * 5, "%s: the orders read back" % label)
    said = "cannot make the ledger thread SCHED_BATCH (Operation not permitted)" in d.log()
    if refused:
        tap.ok(said, "%s: the log says the policy was refused, and why" % label)
    else:
        tap.ok("SCHED_BATCH" not in d.log(), "%s: no refusal of SCHED_BATCH in the log" % label)
    d.finish(label)


run("workers 2", 2, SCHED_BATCH, False)
run("workers 0", 0, SCHED_BATCH, False)
why = deny_sched_setscheduler()
if why:
    tap.skip("sched_setscheduler refused: the daemon says so and still sells", why)
else:
    run("sched_setscheduler refused, workers 2", 2, SCHED_OTHER, True)

raise SystemExit(tap.done())
