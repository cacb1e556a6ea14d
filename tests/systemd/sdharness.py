"""sdharness: start a program the way systemd starts a Type=notify,
socket-activated service, without systemd as PID 1.

It binds a private notify socket (a unix datagram socket with SO_PASSCRED, so
the kernel stamps every datagram with the sender's pid) and a listening TCP
socket on 127.0.0.1:0, then starts the program with NOTIFY_SOCKET, LISTEN_FDS,
LISTEN_PID (equal to the program's own pid), LISTEN_FDNAMES and, if asked,
WATCHDOG_USEC/WATCHDOG_PID. A reader thread collects every notify message
with its arrival time (time.monotonic(), the CLOCK_MONOTONIC of MONOTONIC_USEC)
and its sender pid. Everything lives in a private temp dir, removed on close();
use it as a context manager so the program is killed even when a test fails.

    with SdProcess([ticketd, "-c", conf], watchdog_usec=2_000_000) as d:
        ready = d.wait_message("READY=1")
        conn = http.client.HTTPConnection("127.0.0.1", d.port)
        ...
        d.send_signal(signal.SIGHUP)
        d.wait_message("RELOADING=1", after=ready)
        assert d.stop() == 0
        assert not d.foreign_messages()

stdlib only.
"""

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

# Runs in the child between fork and the real exec: moves the passed sockets
# to fd 3, 4, ... and sets LISTEN_PID to its own pid, which exec keeps.
_WRAPPER = r"""
import fcntl, os, sys
n = int(sys.argv[1])
src = [int(x) for x in sys.argv[2:2 + n]]
argv = sys.argv[2 + n:]
tmp = [fcntl.fcntl(fd, fcntl.F_DUPFD, 3 + n) for fd in src]
for fd in src:
    os.close(fd)
for i, fd in enumerate(tmp):
    os.dup2(fd, 3 + i, inheritable=True)
    os.close(fd)
pid = str(os.getpid())
if n:
    os.environ["LISTEN_PID"] = pid
    os.environ["LISTEN_FDS"] = str(n)
if "WATCHDOG_USEC" in os.environ:
    os.environ["WATCHDOG_PID"] = pid
os.execvp(argv[0], argv)
"""

_SD_VARS = ("NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES",
            "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM",
            "CREDENTIALS_DIRECTORY", "STATE_DIRECTORY")
_UCRED = struct.Struct("iII")


class Message:
    """One notify datagram: arrival time, sender credentials, assignments."""

    def __init__(self, seq, t, pid, uid, gid, data):
        self.seq = seq         # 0, 1, 2, ... in arrival order
        self.time = t          # time.monotonic() at arrival
        self.pid = pid         # sender pid from SCM_CREDENTIALS, None if absent
        self.uid = uid
        self.gid = gid
        self.text = data.decode("utf-8", "replace")
        self.fields = {}
        for line in self.text.split("\n"):
            if "=" in line:
                k, v = line.split("=", 1)
                self.fields[k] = v

    def has(self, assignment):
        """True if the message carries KEY=VALUE (or just KEY when no '=')."""
        if "=" in assignment:
            k, v = assignment.split("=", 1)
            return self.fields.get(k) == v
        return assignment in self.fields

    def get(self, key, default=None):
        return self.fields.get(key, default)

    def __repr__(self):
        return "Message(t=%.3f, pid=%s, %r)" % (self.time, self.pid, self.text)


def tcp_listener(host="127.0.0.1", backlog=128):
    """A listening TCP socket on host, port chosen by the kernel."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind((host, 0))
    s.listen(backlog)
    return s


def tcp_unlistening(host="127.0.0.1"):
    """A bound TCP socket that does not listen (a bad socket to pass)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, 0))
    return s


def udp_socket(host="127.0.0.1"):
    """A bound UDP socket (a bad socket to pass, as ListenDatagram= would)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    return s


class SdProcess:
    """A program run as a socket-activated Type=notify service.

    argv: the command. sockets: sockets to pass as fd 3, 4, ... (default: one
    new tcp_listener(); [] passes none). watchdog_usec: sets WATCHDOG_USEC.
    notify: set NOTIFY_SOCKET (default True). env: extra environment.
    fdnames: LISTEN_FDNAMES (default "ticketd.socket" for each socket).
    """

    def __init__(self, argv, sockets=None, watchdog_usec=None, notify=True,
                 env=None, fdnames=None, cwd=None):
        self.argv = [str(a) for a in argv]
        self.sockets = [tcp_listener()] if sockets is None else list(sockets)
        self.watchdog_usec = watchdog_usec
        self.notify = notify
        self.extra_env = dict(env or {})
        self.fdnames = fdnames
        self.cwd = cwd
        self.tmpdir = tempfile.mkdtemp(prefix="sdharness.")
        self.notify_path = os.path.join(self.tmpdir, "notify")
        self.stdout_path = os.path.join(self.tmpdir, "stdout")
        self.stderr_path = os.path.join(self.tmpdir, "stderr")
        self.proc = None
        self.started = None
        self._msgs = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._nsock = None
        self._reader = None

    # --- life cycle ---------------------------------------------------------
    def start(self):
        """Binds the notify socket and starts the program; returns self."""
        self._nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._nsock.bind(self.notify_path)
        self._nsock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self._nsock.settimeout(0.1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

        env = {k: v for k, v in os.environ.items() if k not in _SD_VARS}
        if self.notify:
            env["NOTIFY_SOCKET"] = self.notify_path
        if self.watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(int(self.watchdog_usec))
        if self.sockets:
            names = self.fdnames or ["ticketd.socket"] * len(self.sockets)
            env["LISTEN_FDNAMES"] = ":".join(names)
        env.update(self.extra_env)
        fds = [s.fileno() for s in self.sockets]
        cmd = [sys.executable, "-I", "-S", "-c", _WRAPPER, str(len(fds))]
        cmd += [str(fd) for fd in fds] + self.argv
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.started = time.monotonic()
            self.proc = subprocess.Popen(cmd, env=env, cwd=self.cwd,
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, pass_fds=fds)
        return self

    def close(self):
        """Kills the program if it still runs and removes every trace."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._stop.set()
        if self._reader:
            self._reader.join(2)
        if self._nsock:
            self._nsock.close()
        for s in self.sockets:
            s.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
        return False

    # --- the program -----------------------------------------------------------
    @property
    def pid(self):
        return self.proc.pid

    @property
    def port(self):
        """The port of the first passed socket."""
        return self.sockets[0].getsockname()[1]

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=10):
        """Waits for the program to exit; returns its status (-N for signal N)."""
        return self.proc.wait(timeout)

    def stop(self, timeout=10):
        """SIGTERM, then waits; returns the exit status. Kills it and raises
        TimeoutError if it has not exited within timeout seconds."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise TimeoutError("%s did not exit %ss after SIGTERM" % (self.argv[0], timeout))

    def stderr(self):
        """Everything the program wrote to stderr so far."""
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stdout(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    # --- notify messages ---------------------------------------------------
    def _read(self):
        space = socket.CMSG_SPACE(_UCRED.size)
        while not self._stop.is_set():
            try:
                data, anc, _, _ = self._nsock.recvmsg(65536, space)
            except socket.timeout:
                continue
            except OSError:
                return
            t = time.monotonic()
            pid = uid = gid = None
            for level, typ, cdata in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                    pid, uid, gid = _UCRED.unpack(cdata[:_UCRED.size])
            with self._cond:
                self._msgs.append(Message(len(self._msgs), t, pid, uid, gid, data))
                self._cond.notify_all()

    def messages(self):
        """A copy of every message received so far, in arrival order."""
        with self._cond:
            return list(self._msgs)

    def wait_message(self, match, timeout=10, after=None):
        """The first message matching `match` (a "KEY=VALUE" or "KEY" string,
        or a predicate on Message) received after `after` (a Message, or a
        time.monotonic() value; None: from the start). Raises TimeoutError,
        naming what did arrive, if none comes within timeout seconds or the
        program exits without sending it."""
        pred = match if callable(match) else (lambda m: m.has(match))
        deadline = time.monotonic() + timeout
        drained = False
        with self._cond:
            while True:
                for m in self._msgs:
                    if self._is_after(m, after) and pred(m):
                        return m
                left = deadline - time.monotonic()
                exited = self.proc is not None and self.proc.poll() is not None
                if left <= 0 or (exited and drained):
                    raise TimeoutError(
                        "no notify message %r within %ss (exit status %s); got %r; "
                        "stderr: %s" % (match, timeout, self.proc.poll(), self._msgs,
                                        self.stderr()[-2000:]))
                drained = exited  # after an exit, one more wait lets the reader drain
                self._cond.wait(min(left, 0.2))

    @staticmethod
    def _is_after(m, after):
        if after is None:
            return True
        if isinstance(after, Message):
            return m.seq > after.seq
        return m.time > after

    def watchdog_times(self, since=0.0, until=None):
        """Arrival times of the WATCHDOG=1 messages in [since, until]."""
        until = time.monotonic() if until is None else until
        return [m.time for m in self.messages()
                if m.has("WATCHDOG=1") and since <= m.time <= until]

    def watchdog_gaps(self, since=0.0, until=None):
        """The intervals between consecutive WATCHDOG=1 messages in
        [since, until], plus the gap from the last one to until: the longest
        of these is what systemd's watchdog would have seen."""
        until = time.monotonic() if until is None else until
        ts = [since] + self.watchdog_times(since, until) + [until]
        return [b - a for a, b in zip(ts, ts[1:])]

    def foreign_messages(self):
        """Messages whose sender is not the program's pid (NotifyAccess=main
        would reject them)."""
        return [m for m in self.messages() if m.pid != self.pid]
