"""overload_measure.py: measures ticketd under a connection flood and a
slowloris attack, for docs/robustness.md. Run by hand, never by make check
(it asserts nothing and runs for a while):

  TICKETD=_build/daemon/ticketd PYTHONPATH=tests python3 tests/daemon/overload_measure.py
  ... --flood 2000 --cap 1500 --seconds 10 --timeout-ms 2000

Two phases, each on a fresh daemon (io_threads 2, workers 2):
 1. slowloris: --flood connections trickle one header byte each per
    second; each one cut off is reopened at once (checked every second),
    so the pressure stays.
    Meanwhile a legitimate client buys a ticket every 50 ms on a fresh
    connection, and another on one keep-alive connection.
 2. flood at the cap: max_connections --cap, --flood connections that
    send nothing (more than the cap; reopened when cut off), the same two
    legitimate clients.
Every second it samples the daemon's open descriptors, RSS and CPU (from
/proc), and prints one table per phase plus the legitimate purchases'
results and latencies.
"""
import argparse
import http.client
import json
import os
import resource
import socket
import threading
import time

from ticketd_test import Daemon, base_config

TICK = os.sysconf("SC_CLK_TCK")


def proc(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return cpu, rss, len(os.listdir("/proc/%d/fd" % pid))


class Legit:
    """Purchases from a well-behaved client: fresh connections or one
    keep-alive connection. Counts outcomes and latencies."""

    def __init__(self, d, keepalive, interval):
        self.d, self.keepalive, self.interval = d, keepalive, interval
        self.ok, self.fail, self.lat, self.stop = 0, {}, [], False

    def run(self):
        conn = None
        while not self.stop:
            t0 = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.d.host, self.d.port, timeout=15)
                conn.request("POST", "/v1/events/flash-sale/purchase",
                             body=json.dumps({"buyer": "legit"}),
                             headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                if r.status == 201:
                    self.ok += 1
                    self.lat.append(time.monotonic() - t0)
                else:
                    self.fail[r.status] = self.fail.get(r.status, 0) + 1
            except (OSError, http.client.HTTPException) as e:
                k = type(e).__name__
                self.fail[k] = self.fail.get(k, 0) + 1
                conn = None
            if not self.keepalive and conn is not None:
                conn.close()
                conn = None
            time.sleep(self.interval)

    def summary(self):
        lat = sorted(self.lat)
        pct = (lambda p: "%.0f ms" % (1000 * lat[min(len(lat) - 1, int(p * len(lat)))])
               if lat else "-")
        return "%d ok, failed %s, latency p50 %s p99 %s max %s" % (
            self.ok, self.fail or "none", pct(0.5), pct(0.99), pct(1.0))


def attack(d, n, trickle, seconds, stop):
    """Holds n connections; trickle: send one header byte per connection per
    second and reopen any that is cut off; else idle. Returns reopen count."""
    socks, reopened = [], [0]
    head = b"POST /v1/events/flash-sale/purchase HTTP/1.1\r\nHost: t\r\n"

    def opener():
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((d.host, d.port))
        return s
    for _ in range(n):
        socks.append(opener())
    time.sleep(0.5)
    for s in socks:
        try:
            s.send(head if trickle else b"")
        except OSError:
            pass
    i = 0
    while not stop.is_set():
        time.sleep(1.0)
        for k, s in enumerate(socks):
            try:
                if trickle:
                    s.send(b"X-Slow-%d: y\r\n"[i % 12:i % 12 + 1])
                    continue
                if s.recv(1) != b"":
                    continue
            except BlockingIOError:
                continue
            except OSError:
                pass
            # Cut off: the attacker comes straight back.
            s.close()
            socks[k] = opener()
            reopened[0] += 1
        i += 1
    for s in socks:
        s.close()
    return reopened[0]


def phase(name, conf, flood, trickle, seconds):
    d = Daemon(conf, name="ticketd-measure").start()
    pid = d.proc.pid
    fresh, kept = Legit(d, False, 0.05), Legit(d, True, 0.05)
    stop = threading.Event()
    result = {}
    threads = [threading.Thread(target=fresh.run), threading.Thread(target=kept.run),
               threading.Thread(target=lambda: result.update(re=attack(d, flood, trickle,
                                                                       seconds, stop)))]
    cpu0, rss0, fd0 = proc(pid)
    print("\n## %s: %d %s connections, %d s" % (name, flood,
                                                "slowloris" if trickle else "idle", seconds))
    print("idle daemon: RSS %d KiB, %d descriptors" % (rss0, fd0))
    print("| t (s) | daemon fds | RSS (KiB) | CPU (% of a core) | legit fresh ok | legit keep-alive ok |")
    print("|---|---|---|---|---|---|")
    for t in threads:
        t.start()
    t0 = time.monotonic()
    last_cpu, last_t = cpu0, t0
    peak_rss = rss0
    while time.monotonic() - t0 < seconds:
        time.sleep(1.0)
        cpu, rss, fds = proc(pid)
        now = time.monotonic()
        peak_rss = max(peak_rss, rss)
        print("| %.0f | %d | %d | %.1f | %d | %d |" % (now - t0, fds, rss,
                                                      100 * (cpu - last_cpu) / (now - last_t),
                                                      fresh.ok, kept.ok))
        last_cpu, last_t = cpu, now
    stop.set()
    fresh.stop = kept.stop = True
    for t in threads:
        t.join()
    cpu, rss, fds = proc(pid)
    print("\npeak RSS %d KiB (+%d KiB over idle); CPU %.2f s over %.0f s" %
          (peak_rss, peak_rss - rss0, cpu - cpu0, time.monotonic() - t0))
    print("legit, a fresh connection per purchase: " + fresh.summary())
    print("legit, one keep-alive connection:       " + kept.summary())
    print("attacking connections cut off and reopened: %d" % result.get("re", 0))
    d.stop()
    log = d.log()
    for line in log.splitlines():
        if "served" in line or "not accepting" in line or "accepting again" in line:
            print("log: " + line.split(" ", 2)[-1])
    d.cleanup()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flood", type=int, default=1000)
    ap.add_argument("--cap", type=int, default=800)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--timeout-ms", type=int, default=2000)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    limits = {"max_connections": 100000, "request_timeout_ms": a.timeout_ms,
              "idle_timeout_ms": a.timeout_ms}
    phase("slowloris", base_config(limits=limits), a.flood, True, a.seconds)
    limits = dict(limits, max_connections=a.cap)
    phase("flood at max_connections %d" % a.cap, base_config(limits=limits),
          a.flood, False, a.seconds)


if __name__ == "__main__":
    main()
