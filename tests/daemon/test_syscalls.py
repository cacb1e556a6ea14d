"""test_syscalls.py: what a held purchase costs the loop in system calls, counted
with strace (a count, not a speed). With "workers": 0 and no payment
latency, the reply to a purchase comes in a later loop iteration, after the
ledger's commit; evhttp disables reading on the connection in between. The
guard's keeper (daemon/guard.c) keeps the fd registered with epoll, so a
purchase on a keep-alive connection needs no epoll_ctl at all (without it:
a DEL and an ADD each); likewise with a worker pool and with a 1 ms
payment. Skipped without strace, when ptrace is not allowed,
or for a ThreadSanitizer build (it runs without libevent's changelist).
"""
import os
import shutil
import signal
import subprocess

import tap
from ticketd_test import SANITIZER, SCALE, Daemon, base_config, wait_until, watchdog

watchdog(120)
N = 200


def traced(pid):
    """Whether every thread of pid has a tracer attached."""
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                if "\nTracerPid:\t0\n" in f.read():
                    return False
    except OSError:
        return False
    return True


why = None
if not shutil.which("strace"):
    why = "strace is not installed"
elif SANITIZER == "tsan":
    why = "a ThreadSanitizer build runs without the epoll changelist"
if why:
    tap.skip("a held purchase costs the loop no epoll_ctl", why)
    raise SystemExit(tap.done())


def count_epoll_ctl(label, workers, latency_ms):
    """Starts a daemon, makes N held purchases on one keep-alive connection
    under strace, and records the test points. Returns False if strace
    could not attach (a skip is recorded instead of the count)."""
    d = Daemon(base_config(workers=workers, io_threads=1,
                           payment={"latency_ms": latency_ms, "decline_rate": 0.0,
                                    "mode": "async"})).start()
    conn = d.connect()
    warm = [d.purchase("flash-sale", conn=conn, buyer="warm").status for _ in range(20)]
    out = os.path.join(d.dir, "strace.txt")
    st = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=epoll_ctl", "-o", out,
                           "-p", str(d.proc.pid)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_until(lambda: st.poll() is not None or traced(d.proc.pid), 10, "strace attached")
    if st.poll() is not None or not traced(d.proc.pid):
        err = st.communicate()[1].decode(errors="replace").strip() if st.poll() is not None \
            else ""
        if st.poll() is None:
            st.kill()
            st.wait()
        tap.skip("%s: a held purchase costs the loop no epoll_ctl" % label,
                 "strace could not attach (%s)" % (err or "ptrace not allowed?"))
        conn.close()
        d.finish("%s daemon" % label)
        return False
    replies = [d.purchase("flash-sale", conn=conn, buyer="b%d" % i).status for i in range(N)]
    st.send_signal(signal.SIGINT)             # detaches and flushes the log
    st.wait(timeout=10 * SCALE)
    conn.close()
    with open(out) as f:
        calls = [line for line in f if "epoll_ctl(" in line]
    tap.eq((warm + replies).count(201), N + 20,
           "%s: %d purchases on one keep-alive connection, all 201" % (label, N + 20))
    tap.ok(len(calls) <= N // 10, "%s: %d held purchases cost the loop %d epoll_ctl calls "
           "(at most %d; a DEL and an ADD each without the keeper)"
           % (label, N, len(calls), N // 10))
    if len(calls) > N // 10:
        tap.diag("first calls: %s" % "".join(calls[:6]))
    d.finish("%s daemon" % label)
    return True


# The reply comes in a later iteration each time: after the ledger's commit
# ("workers": 0), after a worker and the commit (the pool), after a 1 ms
# payment timer and the commit.
for label, workers, latency in (("workers 0", 0, 0), ("a worker", 1, 0),
                                ("1 ms payment", 0, 1)):
    if not count_epoll_ctl(label, workers, latency):
        break
raise SystemExit(tap.done())
