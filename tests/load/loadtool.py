#!/usr/bin/env python3
"""loadtool.py: small helpers for the HTTP benchmark and the load-script
test, the parts a POSIX shell does badly. Standard library only.

  loadtool.py free-port
      print a TCP port that was free a moment ago (bind port 0, close). Only
      for starting nginx in the benchmark, which cannot take a passed socket;
      never for tests.
  loadtool.py event HOST:PORT ID
      GET /v1/events/ID and print, on one line, "capacity=N available=N
      sold=N" summed over its tiers, then "general_sold=N vip_sold=N".
  loadtool.py rss PID
      print the process's VmRSS in KiB.
  loadtool.py idle-conns PID HOST:PORT N
      open N TCP connections to HOST:PORT that send nothing, wait until
      process PID holds N more open files (it accepted them), then print
      "RESULT conns=N accepted=M rss_before_kib=A rss_after_kib=B
      per_conn_bytes=C" and close them.
"""
import json
import os
import resource
import socket
import sys
import time
import urllib.request


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def split_addr(addr):
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


def cmd_free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()


def cmd_event(addr, event_id):
    host, port = split_addr(addr)
    url = "http://%s:%d/v1/events/%s" % (host, port, event_id)
    with urllib.request.urlopen(url, timeout=10) as r:
        ev = json.load(r)
    tot = {"capacity": 0, "available": 0, "sold": 0}
    for tier in ev["tiers"].values():
        for k in tot:
            tot[k] += tier[k]
    print("capacity=%d available=%d sold=%d general_sold=%d vip_sold=%d" %
          (tot["capacity"], tot["available"], tot["sold"],
           ev["tiers"].get("general", {}).get("sold", 0),
           ev["tiers"].get("vip", {}).get("sold", 0)))


def cmd_idle_conns(pid, addr, n):
    host, port = split_addr(addr)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 64), hard))
    time.sleep(0.2)
    fds0 = open_fds(pid)
    before = rss_kib(pid)
    conns = []
    try:
        for _ in range(n):
            conns.append(socket.create_connection((host, port), timeout=10))
        # connect() returns once the kernel queued the connection; wait until
        # the daemon has accepted every one (its fd count grew by n).
        deadline = time.monotonic() + 10
        while open_fds(pid) - fds0 < n and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        accepted = open_fds(pid) - fds0
        after = rss_kib(pid)
        print("RESULT conns=%d accepted=%d rss_before_kib=%d rss_after_kib=%d "
              "per_conn_bytes=%d" % (n, accepted, before, after,
                                     (after - before) * 1024 // max(n, 1)))
    finally:
        for c in conns:
            c.close()


def main(argv):
    if len(argv) >= 2 and argv[1] == "free-port" and len(argv) == 2:
        cmd_free_port()
    elif len(argv) == 4 and argv[1] == "event":
        cmd_event(argv[2], argv[3])
    elif len(argv) == 3 and argv[1] == "rss":
        print(rss_kib(int(argv[2])))
    elif len(argv) == 5 and argv[1] == "idle-conns":
        cmd_idle_conns(int(argv[2]), argv[3], int(argv[4]))
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
