"""sdticketd: the real ticketd ($TICKETD) run the way systemd runs it, for the
tests in tests/systemd/. Wraps sdharness.SdProcess (notify socket, a passed
listening socket on 127.0.0.1:0, optional WATCHDOG_USEC) with a private temp
dir holding the config and the state dir, and speaks HTTP to the passed
socket with http.client. Use it as a context manager: the daemon is killed
and the temp dir removed even when a test fails.

    with SdTicketd(base_config(), watchdog_usec=2_000_000) as t:
        ready = t.ready()
        r = t.purchase("concert", buyer="alice")
        rel, again = t.reload()      # SIGHUP: RELOADING=1 then READY=1
        assert t.stop() == 0

stdlib only.
"""
import copy
import json
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sdharness  # noqa: E402
from ticketd_test import SANITIZED, SCALE, TICKETD, HttpClient, Reply, base_config  # noqa: E402,F401


class SdTicketd(HttpClient):
    """ticketd under a simulated systemd. config: a dict (written as JSON;
    state_dir defaults to the temp dir). The other arguments go to SdProcess."""

    host = "127.0.0.1"

    def __init__(self, config=None, watchdog_usec=None, sockets=None, env=None,
                 args=(), notify=True):
        self.dir = tempfile.mkdtemp(prefix="sdticketd.")
        self.conf_path = os.path.join(self.dir, "ticketd.conf")
        self.config = copy.deepcopy(config if config is not None else base_config())
        self.config.setdefault("state_dir", os.path.join(self.dir, "state"))
        self.write_config()
        self.sd = sdharness.SdProcess([TICKETD, "-c", self.conf_path] + list(args),
                                      sockets=sockets, watchdog_usec=watchdog_usec,
                                      env=env, notify=notify)

    def write_config(self, text=None):
        """Writes the config (self.config as JSON, or text as is)."""
        with open(self.conf_path, "w") as f:
            f.write(text if text is not None else json.dumps(self.config, indent=1))

    # ---- life cycle ------------------------------------------------------------
    def __enter__(self):
        self.sd.start()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        self.sd.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def pid(self):
        return self.sd.pid

    @property
    def port(self):
        return self.sd.port

    def ready(self, timeout=15):
        """The first READY=1."""
        return self.sd.wait_message("READY=1", timeout=timeout * SCALE)

    def reload(self, after=None, timeout=15):
        """SIGHUP; returns the RELOADING=1 and the READY=1 that follow it."""
        since = time.monotonic() if after is None else after
        self.sd.send_signal(signal.SIGHUP)
        rel = self.sd.wait_message("RELOADING=1", after=since, timeout=timeout * SCALE)
        again = self.sd.wait_message("READY=1", after=rel, timeout=timeout * SCALE)
        return rel, again

    def stop(self, timeout=30):
        return self.sd.stop(timeout * SCALE)

    def stderr(self):
        return self.sd.stderr()

    def sanitizer_report(self):
        return [l for l in self.stderr().splitlines()
                if "Sanitizer" in l or "runtime error:" in l]

    # ---- HTTP (connect, request, get, post, purchase: HttpClient) ------------
    def event(self, event_id):
        """The EVENT object, or None on 404."""
        r = self.get("/v1/events/" + event_id)
        return r.json if r.status == 200 else None

    def events(self):
        """{id: EVENT} of GET /v1/events."""
        return {e["id"]: e for e in self.get("/v1/events").json["events"]}
