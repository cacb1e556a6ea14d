"""ticketd_test.py: the harness every daemon test uses. It starts the real
ticketd ($TICKETD) on port 0 with a private temp config and state dir,
reads the bound port from the daemon's log ("listening on ADDR:PORT"),
speaks HTTP to it with http.client (or raw bytes: raw_request), and stops
it (SIGTERM, then SIGKILL after a timeout). A watchdog kills every daemon
and ends the test if it hangs. A test waits with wait_until (any condition)
or Daemon.wait_log (a log line), never with a loop of its own.
Daemons built with a sanitizer are slower: timeouts scale with
$TICKETD_TIME_SCALE (default 1; the tests raise it themselves under TSan).
"""
import atexit
import copy
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import tap

TICKETD = os.environ.get("TICKETD") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "_build", "daemon", "ticketd")
SRCDIR = os.environ.get("TICKETD_SRCDIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..")


def _sanitizer():
    """Guesses which sanitizer the daemon was built with: "tsan", "asan",
    or None."""
    try:
        with open(TICKETD, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if b"__tsan_" in data:
        return "tsan"
    if b"__asan_" in data:
        return "asan"
    return None


SANITIZER = _sanitizer()
SANITIZED = SANITIZER is not None   # slower: tests scale their timeouts
SCALE = float(os.environ.get("TICKETD_TIME_SCALE") or (5 if SANITIZED else 1))

_live = []          # daemons to kill if the watchdog fires
_live_lock = threading.Lock()


@atexit.register
def _kill_leftovers():
    """A test that dies of an exception must not leave daemons running."""
    with _live_lock:
        left = list(_live)
    for d in left:
        d.cleanup()


def watchdog(seconds):
    """Ends the whole test (Bail out!) if it runs longer than seconds."""
    def fire():
        with _live_lock:
            for d in list(_live):
                d.kill()
        print("Bail out! watchdog: the test took longer than %ds" % seconds,
              flush=True)
        os._exit(1)
    t = threading.Timer(seconds * SCALE, fire)
    t.daemon = True
    t.start()
    return t


def wait_until(predicate, timeout=10, what="the condition", interval=0.02):
    """Calls predicate() every interval seconds until it returns a true
    value, for at most timeout seconds times SCALE. Returns that value, or
    on timeout the last false one after a diag line naming what, so that
    the caller's own assertion fails with its own words."""
    deadline = time.monotonic() + timeout * SCALE
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            break
        time.sleep(interval)
    if not value:
        tap.diag("waited %.1f s in vain for %s" % (timeout * SCALE, what))
    return value


def base_config(**top):
    """A small valid config: two events, one with a vip tier. Keyword
    arguments replace top-level keys; nested dicts are merged one level."""
    conf = {
        "listen": ["127.0.0.1:0"],
        "io_threads": 2,
        "workers": 2,
        "queue_depth": 1024,
        "seller": "mutex",
        "payment": {"latency_ms": 0, "decline_rate": 0.0, "mode": "async"},
        "limits": {"max_body_bytes": 4096, "max_quantity": 10,
                   "request_timeout_ms": 10000, "max_connections": 1024,
                   "drain_timeout_ms": 5000},
        "log_level": "info",
        "events": [
            {"id": "concert", "name": "Concert", "tiers": {"general": 900, "vip": 100},
             "vip_code": "backstage"},
            {"id": "flash-sale", "name": "Flash sale", "tiers": {"general": 10000}},
        ],
    }
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(conf.get(k), dict):
            conf[k] = dict(conf[k], **v)
        else:
            conf[k] = copy.deepcopy(v)
    return conf


class Reply:
    """One HTTP reply: status, headers (lower-case names), raw body, JSON."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body.decode("utf-8")) if body else None
        except (ValueError, UnicodeDecodeError):
            self.json = None

    def __repr__(self):
        return "<Reply %d %r>" % (self.status, self.body[:200])


class HttpClient:
    """The HTTP side of a running daemon, for Daemon and the systemd
    harness's SdTicketd: needs self.host and self.port."""

    def connect(self, timeout=30):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout * SCALE)

    def raw_connect(self, timeout=30):
        """A plain TCP socket to the daemon (its timeout scaled), for the
        bytes http.client would not send or would hide."""
        return socket.create_connection((self.host, self.port), timeout=timeout * SCALE)

    def raw_request(self, data, timeout=30):
        """Sends data (bytes, as given) on a fresh connection and returns
        every byte the server sends until it closes the connection."""
        out = b""
        with self.raw_connect(timeout) as s:
            s.sendall(data)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out
                out += chunk

    def request(self, method, path, body=None, headers=None, conn=None):
        """One request; a dict body is sent as JSON. Returns a Reply. Uses
        conn (keep-alive) if given, else a fresh connection."""
        own = conn is None
        c = conn or self.connect()
        h = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode("utf-8")
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            if own:
                c.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def purchase(self, event, conn=None, **fields):
        return self.post("/v1/events/%s/purchase" % event, fields, conn=conn)


class Daemon(HttpClient):
    """One ticketd process with its own temp dir, config and state dir."""

    def __init__(self, config=None, args=(), name="ticketd"):
        self.dir = tempfile.mkdtemp(prefix=name + "-")
        self.state_dir = os.path.join(self.dir, "state")
        self.conf_path = os.path.join(self.dir, "ticketd.conf")
        self.log_path = os.path.join(self.dir, "stderr.log")
        self.config = copy.deepcopy(config if config is not None else base_config())
        self.config.setdefault("state_dir", self.state_dir)
        self.args = list(args)
        self.proc = None
        self.addrs = []
        self.host = "127.0.0.1"
        self.port = None
        self.returncode = None
        self.write_config()

    def write_config(self):
        with open(self.conf_path, "w") as f:
            json.dump(self.config, f, indent=1)

    # ---- process -----------------------------------------------------------
    def start(self, timeout=15):
        """Starts the daemon and waits for its "ready" line; returns self."""
        self.logf = open(self.log_path, "ab")
        offset = self.logf.tell()   # a restart appends: read only this run
        self.proc = subprocess.Popen([TICKETD, "-c", self.conf_path] + self.args,
                                     stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=self.logf)
        with _live_lock:
            _live.append(self)
        wait_until(lambda: " ready: " in self.log(offset) or self.proc.poll() is not None,
                   timeout, "ticketd's ready line")
        log = self.log(offset)
        if " ready: " in log:
            self.addrs = re.findall(r"listening on (\S+)", log)
            host, port = self.addrs[0].rsplit(":", 1)
            self.host = host.strip("[]")
            self.port = int(port)
            return self
        if self.proc.poll() is not None:
            raise RuntimeError("ticketd exited with %d before it was ready:\n%s"
                               % (self.proc.returncode, log))
        self.kill()
        raise RuntimeError("ticketd was not ready after %ss:\n%s" % (timeout, self.log()))

    def start_fails(self, *needles, timeout=10):
        """Starts a daemon that must refuse to: True if it exited 1 before
        listening and its log holds every needle. Removes the temp dir."""
        try:
            self.start(timeout=timeout)
            started = True
        except RuntimeError:
            started = False
        log = self.log()
        ok = not started and self.proc.returncode == 1 and "listening" not in log \
            and all(n in log for n in needles)
        if not ok:
            tap.diag(log[-2000:])
        self.cleanup()
        return ok

    def log(self, offset=0):
        """The daemon's stderr so far, from byte offset on."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=10, offset=0):
        """Waits until the log from byte offset on matches the regular
        expression pattern; returns the match, or None after timeout
        (scaled, as in wait_until)."""
        rx = re.compile(pattern)
        return wait_until(lambda: rx.search(self.log(offset)), timeout,
                          "a log line matching %r" % pattern)

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=20):
        """Waits for the process to end; returns its exit status or None."""
        try:
            self.returncode = self.proc.wait(timeout * SCALE)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Sends sig and waits; SIGKILL after timeout. Returns the exit
        status (None if it had to be killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        rc = self.wait(timeout)
        if rc is None:
            self.kill()
        return rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def sanitizer_report(self):
        """Lines of the log that a sanitizer wrote, if any."""
        return [l for l in self.log().splitlines()
                if "Sanitizer" in l or "runtime error:" in l]

    def finish(self, name="daemon"):
        """Stops the daemon with SIGTERM and records two test points: a clean
        exit 0, and no sanitizer report. Removes the temp dir."""
        rc = self.stop()
        tap.eq(rc, 0, "%s exits 0 on SIGTERM" % name)
        report = self.sanitizer_report()
        if report:
            tap.diag("\n".join(report[:20]))
        tap.ok(not report, "%s: no sanitizer report" % name)
        if rc != 0:
            tap.diag(self.log()[-4000:])
        self.cleanup()
        return rc

    def cleanup(self):
        self.kill()
        with _live_lock:
            if self in _live:
                _live.remove(self)
        if getattr(self, "logf", None):
            self.logf.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def final_figures(self):
        """{event: {tier: (sold, capacity)}} from the log lines written at exit."""
        out = {}
        for m in re.finditer(r"event (\S+): general (\d+) of (\d+) sold"
                             r"(?:, vip (\d+) of (\d+) sold)?", self.log()):
            ev = {"general": (int(m.group(2)), int(m.group(3)))}
            if m.group(4) is not None:
                ev["vip"] = (int(m.group(4)), int(m.group(5)))
            out[m.group(1)] = ev
        return out

    def event(self, event_id):
        r = self.get("/v1/events/" + event_id)
        if r.status != 200:
            raise RuntimeError("GET event %s: %r" % (event_id, r))
        return r.json


def run_ticketd(*args, timeout=20):
    """Runs ticketd with args to completion; returns (status, stdout, stderr)."""
    p = subprocess.run([TICKETD] + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=timeout * SCALE)
    return p.returncode, p.stdout.decode("utf-8", "replace"), \
        p.stderr.decode("utf-8", "replace")


def sellers():
    """The safe seller cores the daemon knows (ticketd --list-sellers)."""
    rc, out, _ = run_ticketd("--list-sellers")
    if rc != 0:
        raise RuntimeError("ticketd --list-sellers failed")
    return [line.split("\t")[0] for line in out.splitlines() if line.strip()]


def is_error_body(reply, code):
    """True if reply is {"error": code, "message": <non-empty str>, ...}."""
    j = reply.json
    return (isinstance(j, dict) and j.get("error") == code
            and isinstance(j.get("message"), str) and j["message"] != "")
