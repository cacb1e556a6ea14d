"""test_limits.py: the connection cap, timeouts and header limits of a real
ticketd. At max_connections the daemon stops accepting (new clients wait in
the backlog, nobody is served twice, nothing spins) and resumes as soon as a
connection closes; connections that end in every way (clean close, reset,
half a request) are all uncounted, so the cap never leaks; a client that
stalls mid-request is cut off at request_timeout_ms; oversized headers are
refused and the daemon keeps serving. With several io_threads each loop
accepts on its own socket of the port (SO_REUSEPORT), so new connections
are spread over the loops (a shared socket let one loop take a whole burst).
"""
import re
import socket
import struct
import sys
import time

import tap
from ticketd_test import SCALE, Daemon, base_config, watchdog

watchdog(120)

CAP = 4
d = Daemon(base_config(io_threads=1, limits={"max_connections": CAP,
                                            "request_timeout_ms": 60000})).start()
GET = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"


def roundtrip(s, req=GET, timeout=5):
    """Sends req on s and reads one whole reply; returns its bytes or None."""
    s.settimeout(timeout * SCALE)
    s.sendall(req)
    data = b""
    try:
        while b"\r\n\r\n" not in data or not data.endswith(b"}"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        return None
    return data or None


def connect():
    return d.raw_connect(5)


# Churn: connections that end in every way; none may stay counted.
for i in range(30):
    s = connect()
    roundtrip(s)
    s.close()
for i in range(15):
    s = connect()
    s.close()
for i in range(15):
    s = connect()
    s.sendall(b"POST /v1/events/concert/purchase HTTP/1.1\r\nContent-Length: 50\r\n\r\n{")
    s.close()
for i in range(15):
    s = connect()
    roundtrip(s)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()   # RST
time.sleep(0.3 * SCALE)
held = [connect() for _ in range(CAP)]
replies = [roundtrip(s) for s in held]
tap.ok(all(r and r.startswith(b"HTTP/1.1 200") for r in replies),
       "after 75 connections ended every way, %d new ones are all served" % CAP)

# At the cap: the next client waits, then is served when one closes.
extra = connect()
tap.eq(roundtrip(extra, timeout=0.5), None,
       "connection %d waits while %d are open (max_connections)" % (CAP + 1, CAP))
tap.ok("max_connections reached" in d.log(), "the log says why it stopped accepting")
held.pop().close()
s = extra
s.settimeout(5 * SCALE)
data = b""
try:
    while not data.endswith(b"}"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
except socket.timeout:
    pass
tap.ok(data.startswith(b"HTTP/1.1 200"), "it is served once a connection closes")
for s in held:
    s.close()
extra.close()
tap.eq(d.get("/healthz").status, 200, "the daemon serves on after the cap")
tap.ok("accepting again" in d.log(), "the log says when accepting resumed")
d.finish("connection cap daemon")

# Timeouts and header limits (a second daemon: short request timeout).
d = Daemon(base_config(io_threads=1, limits={"request_timeout_ms": 600,
                                            "max_header_bytes": 2048})).start()

# A stalled request is cut off at request_timeout_ms.
s = connect()
s.sendall(b"GET /healthz HTTP/1.1\r\nHost:")
s.settimeout(10 * SCALE)
t0 = time.monotonic()
try:
    got = s.recv(4096)
except (socket.timeout, ConnectionResetError):
    got = None
tap.ok(got is not None and not got.startswith(b"HTTP/1.1 200"),
       "a client stalled mid-headers is disconnected (after %.1fs)" % (time.monotonic() - t0))
s.close()

# Idle keep-alive connections are closed after the same timeout.
s = connect()
roundtrip(s)
s.settimeout(10 * SCALE)
try:
    got = s.recv(4096)
except (socket.timeout, ConnectionResetError):
    got = None
tap.eq(got, b"", "an idle keep-alive connection is closed at request_timeout_ms")
s.close()

# Oversized headers: refused, and the daemon goes on.
s = connect()
r = roundtrip(s, b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 4000 + b"\r\n\r\n")
tap.ok(r is None or not r.startswith(b"HTTP/1.1 200"),
       "headers over max_header_bytes are refused (%r)" % (r[:40] if r else r,))
s.close()
tap.eq(d.get("/healthz").status, 200, "the daemon still serves afterwards")
d.finish("timeout daemon")


def listeners(port):
    """Sockets in LISTEN state on port, from /proc/net/tcp and tcp6."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        n += sum(1 for r in rows
                 if r.split()[1].endswith(":%04X" % port) and r.split()[3] == "0A")
    return n


# io_threads 3: three sockets on the port, one per loop, and a burst of 60
# connections reaches every loop (the kernel hashes each to a socket: fewer
# than 4 of 60 on any of three loops has odds of about 4 in ten million).
LOOPS, CONNS = 3, 60
d = Daemon(base_config(io_threads=LOOPS, log_level="info")).start()
tap.eq(listeners(d.port), LOOPS, "io_threads %d: %d listening sockets on the port" % (LOOPS, LOOPS))
socks = [d.raw_connect(5) for _ in range(CONNS)]
replies = [roundtrip(s) for s in socks]
tap.ok(all(r and r.startswith(b"HTTP/1.1 200") for r in replies),
       "%d connections opened at once are all served" % CONNS)
for s in socks:
    s.close()
rc = d.stop()
per_loop = [int(n) for n in re.findall(r"loop \d+: served \d+ requests on (\d+) connections",
                                       d.log())]
tap.eq(rc, 0, "io_threads daemon exits 0 on SIGTERM")
tap.ok(not d.sanitizer_report(), "io_threads daemon: no sanitizer report")
d.cleanup()
tap.ok(len(per_loop) == LOOPS and sum(per_loop) >= CONNS and min(per_loop) >= 4,
       "the %d connections were spread over the %d loops: %s" % (CONNS, LOOPS, per_loop))
sys.exit(tap.done())
