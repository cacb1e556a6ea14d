"""test_service.py: the real ticketd started the way systemd starts
ticketd.service (tests/systemd/sdharness.py: a notify socket, a passed
listening socket, LISTEN_FDS/LISTEN_PID), without systemd as PID 1. Covers:
  - READY=1 comes from the daemon's own pid once the passed socket is served:
    right after it, a purchase through that socket succeeds; the config's
    "listen" (an address this host cannot bind) is ignored;
  - STATUS= carries live figures (events, sold of capacity, req/s) that follow
    the sales; STOPPING=1 on SIGTERM, then exit 0; no WATCHDOG=1 unasked;
  - two passed sockets are both served; without passed sockets ticketd binds
    the config's addresses and still sends READY=1;
  - a passed UDP socket or a TCP socket that does not listen: exit 1 with a
    log line naming fd 3 and the cause, and never READY=1;
  - logging: with JOURNAL_STREAM naming its stderr, every line starts with a
    <N> syslog priority and has no timestamp; otherwise (unset, or naming
    another file) every line starts with an ISO 8601 timestamp;
  - `ticketd -t -c FILE -s DIR` (the unit's ExecStartPre) is accepted.
TAP on stdout.
"""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdharness  # noqa: E402
import tap  # noqa: E402
from sdticketd import SCALE, TICKETD, SdTicketd, base_config  # noqa: E402
from ticketd_test import watchdog  # noqa: E402

watchdog(240)

TS_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ticketd\[\d+\] "
                     r"(error|warn|notice|info|debug): ")
JOURNAL_LINE = re.compile(r"^<[3-7]>\S")


def status_with(t, text, after=None, timeout=10):
    """The first STATUS= containing text, or None (with a diagnostic)."""
    try:
        return t.sd.wait_message(lambda m: text in m.get("STATUS", ""), after=after,
                                 timeout=timeout * SCALE)
    except TimeoutError as e:
        tap.diag(e)
        return None


def main():
    conf = base_config(listen=["192.0.2.1:80"])   # TEST-NET-1: not bindable here
    with SdTicketd(conf) as t:
        ready = t.ready()
        tap.eq(ready.pid, t.pid, "READY=1 comes from the daemon's pid")
        r = t.purchase("concert", buyer="alice", quantity=2)
        tap.eq(r.status, 201, "right after READY=1 a purchase through the passed "
               "socket (port %d) succeeds" % t.port)
        tap.ok(t.request("GET", "/healthz").status == 200, "GET /healthz on the passed socket")
        err = t.stderr()
        tap.ok("socket activation" in err and "ignored" in err and "192.0.2.1" not in err,
               "the config's listen (192.0.2.1:80) is ignored, and the log says so")
        tap.ok(re.search(r"listening on 127\.0\.0\.1:%d \(socket from systemd\)" % t.port,
                         err), "the log names the passed socket's address")
        st = status_with(t, "2/11,000 tickets sold", after=ready)
        tap.ok(st is not None, "STATUS= follows the sale: %r" % (st and st.get("STATUS")))
        text = st.get("STATUS", "") if st else ""
        tap.ok(re.match(r"serving 2 events, 2/11,000 tickets sold, \d+ req/s, \d+ connections$",
                        text), "STATUS= names events, sold/capacity, req/s, connections")
        tap.ok(st is not None and st.pid == t.pid, "STATUS= comes from the daemon's pid")
        tap.eq(t.stop(), 0, "SIGTERM: exit 0")
        stopping = [m for m in t.sd.messages() if m.has("STOPPING=1")]
        tap.ok(len(stopping) == 1 and stopping[0].seq > ready.seq and
               stopping[0].pid == t.pid, "STOPPING=1 once, after READY=1, from its pid")
        tap.ok(not t.sd.watchdog_times(), "no WATCHDOG_USEC: no WATCHDOG=1")
        tap.ok(not t.sd.foreign_messages(), "every notify message came from the daemon's pid")
        tap.ok(not t.sanitizer_report(), "no sanitizer report")

    # Two passed sockets, one config: both served by every loop.
    socks = [sdharness.tcp_listener(), sdharness.tcp_listener()]
    with SdTicketd(base_config(), sockets=socks) as t:
        t.ready()
        codes = []
        for s in socks:
            t.sd.sockets = [s]   # t.port follows sockets[0]
            codes.append(t.purchase("flash-sale", buyer="bob").status)
        tap.eq(codes, [201, 201], "two passed sockets: a purchase through each")
        t.sd.sockets = socks
        tap.eq(t.stop(), 0, "two sockets: exit 0")

    # Nothing passed: ticketd binds the config's address and is still Type=notify.
    with SdTicketd(base_config(), sockets=[]) as t:
        ready = t.ready()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)\s*$", t.stderr(), re.M)
        tap.ok(ready.pid == t.pid and m and "socket activation" not in t.stderr(),
               "no LISTEN_FDS: binds the config's 127.0.0.1:0 (port %s), READY=1"
               % (m and m.group(1)))
        tap.eq(t.stop(), 0, "no LISTEN_FDS: exit 0")

    # Bad passed sockets: a clear start-up error, never READY.
    for what, sock, cause in (
            ("a UDP socket", sdharness.udp_socket(), "not a stream socket"),
            ("a TCP socket that does not listen", sdharness.tcp_unlistening(),
             "not listening")):
        with SdTicketd(base_config(), sockets=[sock]) as t:
            status = t.sd.wait_exit(20 * SCALE)
            err = t.stderr()
            tap.ok(status == 1 and "fd 3 (ticketd.socket)" in err and cause in err,
                   "%s passed: exit %s, the log names fd 3 and says %r" % (what, status, cause))
            tap.ok(not any(m.has("READY=1") for m in t.sd.messages()),
                   "%s passed: no READY=1" % what)
            tap.diag(err.strip())

    # Logging under journald: JOURNAL_STREAM names the daemon's stderr.
    t = SdTicketd(base_config())
    open(t.sd.stderr_path, "wb").close()   # start() reopens it: same inode
    st = os.stat(t.sd.stderr_path)
    t.sd.extra_env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
    with t:
        t.ready()
        t.purchase("concert", buyer="carol")
        tap.eq(t.stop(), 0, "under JOURNAL_STREAM: exit 0")
        lines = t.stderr().splitlines()
        bad = [l for l in lines if not JOURNAL_LINE.match(l)]
        tap.ok(lines and not bad, "JOURNAL_STREAM names stderr: all %d lines start with <N>%s"
               % (len(lines), "; not: %r" % bad[:3] if bad else ""))
        tap.ok(any(l.startswith("<5>ticketd ") and " ready: " in l for l in lines),
               "the ready line is <5> (notice)")
        tap.ok(not any(TS_LINE.match(l[3:]) for l in lines),
               "no timestamps under journald (it adds its own)")
    for what, env in (("JOURNAL_STREAM unset", {}),
                      ("JOURNAL_STREAM naming another file", {"JOURNAL_STREAM": "1:1"})):
        with SdTicketd(base_config(), env=env) as t:
            t.ready()
            tap.eq(t.stop(), 0, "%s: exit 0" % what)
            lines = t.stderr().splitlines()
            bad = [l for l in lines if not TS_LINE.match(l)]
            tap.ok(lines and not bad, "%s: all %d lines are timestamped%s"
                   % (what, len(lines), "; not: %r" % bad[:3] if bad else ""))

    # The unit's ExecStartPre: -t with -s (the state dir is not created).
    with SdTicketd(base_config()) as t:
        state = os.path.join(t.dir, "never-made")
        p = subprocess.run([TICKETD, "-t", "-c", t.conf_path, "-s", state],
                           capture_output=True, timeout=20 * SCALE)
        tap.ok(p.returncode == 0 and b"is valid" in p.stdout and
               state.encode() in p.stdout and not os.path.exists(state),
               "ticketd -t -c FILE -s DIR: exit 0, summary names DIR, DIR untouched")
    return tap.done()


if __name__ == "__main__":
    tap.run(main)
