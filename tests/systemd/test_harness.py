"""test_harness.py: the notify-protocol harness (sdharness) against sd_probe,
a tiny socket-activated daemon on daemon/sd.c. Covers what the ticketd tests
will rely on: the passed socket is served, READY/STATUS/WATCHDOG/RELOADING/
STOPPING arrive from the program's own pid, the watchdog cadence is measured,
a stalled loop is seen as missing pings, and a bad passed socket is refused.
TAP on stdout.
"""

import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdharness  # noqa: E402

count = failed = 0


def ok(cond, desc):
    """One TAP test point; returns cond."""
    global count, failed
    count += 1
    failed += not cond
    print("%sok %d - %s" % ("" if cond else "not ", count, desc), flush=True)
    return cond


def diag(text):
    for line in str(text).splitlines():
        print("# " + line, flush=True)


def got(d, match, **kw):
    """d.wait_message, or None (with the reason as a diagnostic)."""
    try:
        return d.wait_message(match, **kw)
    except TimeoutError as e:
        diag(e)
        return None


def probe_path():
    builddir = os.environ.get("TICKETD_BUILDDIR",
                              os.path.join(os.path.dirname(__file__), "..", ".."))
    return os.path.join(builddir, "tests", "systemd", "sd_probe")


def ask(port):
    """Connects to the passed socket and returns the probe's one-line reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        return c.makefile("rb").readline().decode()


def main():
    probe = probe_path()
    wd_usec = 1_000_000        # pings every 0.5 s; 0.5 s of slack for a loaded machine
    with sdharness.SdProcess([probe], watchdog_usec=wd_usec) as d:
        ready = d.wait_message("READY=1")
        ok(ready.pid == d.pid, "READY=1 comes from the program's pid %d (%s)" % (d.pid, ready.pid))
        ok(ready.uid == os.getuid(), "SCM_CREDENTIALS carry the sender's uid")
        reply = ask(d.port)
        ok(reply == "probe %d\n" % d.pid,
           "after READY, the passed socket (fd 3, port %d) is served: %r" % (d.port, reply))
        st = d.wait_message("STATUS")
        ok("1 socket(s)" in st.get("STATUS", ""), "STATUS= carries live text: %r" % st.get("STATUS"))

        # Cadence: systemd kills the service when a gap reaches WATCHDOG_USEC.
        t0 = d.wait_message("WATCHDOG=1", after=ready).time
        time.sleep(2.0)
        gaps = d.watchdog_gaps(since=t0)
        pings = len(d.watchdog_times(since=t0))
        ok(pings >= 3, "%d WATCHDOG=1 pings in 2 s at WATCHDOG_USEC=%d" % (pings, wd_usec))
        ok(max(gaps) < wd_usec / 1e6,
           "no gap between pings reaches WATCHDOG_USEC (longest %.3f s)" % max(gaps))

        # A stalled loop: pings stop, which systemd would turn into a restart.
        d.send_signal(signal.SIGUSR1)
        time.sleep(0.5)   # let a ping already on its way arrive
        t_stall = time.monotonic()
        time.sleep(2.5 * wd_usec / 1e6)
        late = d.watchdog_times(since=t_stall)
        ok(not late and max(d.watchdog_gaps(since=t_stall)) >= wd_usec / 1e6,
           "after a stall no ping comes for %.1f x WATCHDOG_USEC (%d pings)" % (2.5, len(late)))
        ok(d.stop() == 0, "SIGTERM stops the stalled probe with status 0")
        ok(got(d, "STOPPING=1") is not None, "STOPPING=1 is sent on SIGTERM")
        ok(not d.foreign_messages(), "every message came from the program's pid")

    # Reload: RELOADING=1 with MONOTONIC_USEC, then READY=1 again.
    with sdharness.SdProcess([probe]) as d:
        ready = d.wait_message("READY=1")
        ok(not d.watchdog_times(), "no WATCHDOG_USEC: no pings")
        before = time.monotonic()
        d.send_signal(signal.SIGHUP)
        rel = d.wait_message("RELOADING=1", after=ready)
        after = time.monotonic()
        usec = int(rel.get("MONOTONIC_USEC", "0"))
        ok(before * 1e6 <= usec <= after * 1e6,
           "RELOADING=1 carries MONOTONIC_USEC within the reload (%d)" % usec)
        again = d.wait_message("READY=1", after=rel)
        ok(again.seq > rel.seq, "READY=1 follows RELOADING=1")
        ok(ask(d.port) == "probe %d\n" % d.pid, "still served after the reload")
        ok(d.stop() == 0 and not d.foreign_messages(), "clean stop, all messages from its pid")

    # Two sockets at fd 3 and 4, both served.
    with sdharness.SdProcess([probe], sockets=[sdharness.tcp_listener(),
                                               sdharness.tcp_listener()]) as d:
        d.wait_message("READY=1")
        ports = [s.getsockname()[1] for s in d.sockets]
        ok(all(ask(p) == "probe %d\n" % d.pid for p in ports),
           "two passed sockets (ports %s) are both served" % ports)
        d.stop()

    # Bad passed sockets are refused: exit 1, a clear cause, never READY.
    for what, sock, cause in (
            ("a UDP socket", sdharness.udp_socket(), "not a stream socket"),
            ("a TCP socket that does not listen", sdharness.tcp_unlistening(),
             "not listening")):
        with sdharness.SdProcess([probe], sockets=[sock]) as d:
            status = d.wait_exit(10)
            err = d.stderr()
            ok(status == 1 and "fd 3 (ticketd.socket)" in err and cause in err,
               "%s: exit %s, stderr names fd 3 and the cause" % (what, status))
            ok(not any(m.has("READY=1") for m in d.messages()), "%s: no READY=1" % what)
            diag(err.strip())

    # No socket at all: the probe refuses (ticketd would bind its own).
    with sdharness.SdProcess([probe], sockets=[]) as d:
        ok(d.wait_exit(10) == 1 and "got 0" in d.stderr(),
           "without LISTEN_FDS the probe sees 0 sockets")

    print("1..%d" % count)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # a harness failure is a failed test, with the cause
        ok(False, "unexpected %s: %s" % (type(e).__name__, e))
        print("1..%d" % count)
        sys.exit(1)
