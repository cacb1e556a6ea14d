"""test_cli.py: ticketd's command line and configuration checks. --help,
--version, --list-sellers and usage errors; -t on the sample config and on
broken ones (unknown keys named by their path, wrong types, out-of-range
values, bad JSON with line and column), each exiting 1 with a message that
names the problem; a FIFO in place of the file refused at once, by -t and
by a SIGHUP reload; -s held to the state_dir key's rules; the --listen,
--state-dir and --seller overrides; unsafe cores refused; a broken config
or an unusable state dir never starts a daemon; a taken port is a clear
error; IPv6 listening.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile

import tap
from ticketd_test import SRCDIR, Daemon, base_config, run_ticketd, watchdog

watchdog(120)
tmp = tempfile.mkdtemp(prefix="ticketd-cli-")


def conf_file(name, content):
    path = os.path.join(tmp, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(content if isinstance(content, str) else json.dumps(content, indent=1))
    return path


# ---- options ------------------------------------------------------------------
rc, out, err = run_ticketd("--help")
tap.eq(rc, 0, "--help exits 0")
tap.ok(all(o in out for o in ("--config", "--listen", "--state-dir", "--seller",
                              "--check-config", "--version", "--help", "--list-sellers",
                              "--allow-unsafe-seller", "SIGTERM", "Exit status")),
       "--help documents every option, the signals and the exit status")
rc, out, err = run_ticketd("-V")
tap.ok(rc == 0 and out.startswith("ticketd ") and out.split()[1][0].isdigit(), "-V prints the version")
rc, out, err = run_ticketd("--bogus")
tap.eq(rc, 2, "an unknown option exits 2")
rc, out, err = run_ticketd("-c", "x", "extra")
tap.ok(rc == 2 and "unexpected argument" in err, "a stray argument exits 2")
rc, out, err = run_ticketd("--list-sellers")
names = [l.split("\t")[0] for l in out.splitlines()]
tap.ok(rc == 0 and "mutex" in names and all("\t" in l for l in out.splitlines()),
       "--list-sellers prints name<TAB>summary lines (%s)" % ", ".join(names))
rc, out2, err = run_ticketd("--list-sellers", "--allow-unsafe-seller")
unsafe = [l.split("\t")[0] for l in out2.splitlines() if "(unsafe)" in l]
tap.ok(rc == 0 and not set(unsafe) & set(names),
       "unsafe cores are listed only with --allow-unsafe-seller (%s)" % ", ".join(unsafe))

# ---- -t on the sample config ---------------------------------------------------------
sample = os.path.join(SRCDIR, "conf", "ticketd.conf")
rc, out, err = run_ticketd("-t", "-c", sample)
tap.eq(rc, 0, "-t on conf/ticketd.conf exits 0")
tap.ok("is valid" in out and "concert" in out and "flash-sale" in out and "127.0.0.1:8080" in out,
       "-t prints a summary: listen, events")
tap.ok("general 900, vip 100" in out and "general 10000" in out,
       "the sample sells the concert (900 + 100 VIP) and the flash sale (10,000)")

# ---- overrides -------------------------------------------------------------------------
other = [n for n in names if n != "mutex"][:1] or ["mutex"]
rc, out, err = run_ticketd("-t", "-c", sample, "--seller", other[0], "-l", "[::1]:0",
                           "-s", "/nonexistent/ok-for-t")
tap.ok(rc == 0 and "seller %s, general 900" % other[0] in out and "[::1]:0" in out
       and "/nonexistent/ok-for-t" in out, "--seller, --listen and --state-dir override the file")
rc, out, err = run_ticketd("-t", "-c", sample, "--seller", "bogus")
tap.ok(rc == 1 and "unknown seller core" in err and "bogus" in err, "--seller bogus: exit 1")
for u in unsafe:
    rc, out, err = run_ticketd("-t", "-c", sample, "--seller", u)
    tap.ok(rc == 1 and "unsafe" in err, "--seller %s (unsafe) is refused" % u)
    rc, out, err = run_ticketd("-t", "-c", sample, "--seller", u, "--allow-unsafe-seller")
    tap.eq(rc, 0, "--seller %s is accepted with --allow-unsafe-seller" % u)
for bad in ("127.0.0.1", "localhost:80", "1.2.3.4:99999", "[::1]80", "1.2.3.4:-1", ":80"):
    rc, out, err = run_ticketd("-t", "-c", sample, "-l", bad)
    tap.ok(rc == 1 and "--listen" in err, "--listen %s is refused" % bad)
# -s is held to the state_dir key's rules: 1 to 4095 bytes, no control characters.
for bad in ("", "d" * 4096, "d" * 5000):
    rc, out, err = run_ticketd("-t", "-c", sample, "-s", bad)
    want = "-s/--state-dir: must be 1 to 4095 bytes long, got %d" % len(bad)
    if not (rc == 1 and want in err and out == ""):
        tap.diag("rc %d, stderr %r" % (rc, err[:300]))
    tap.ok(rc == 1 and want in err and out == "",
           "-t -s of %d bytes: exit 1, \"%s\"" % (len(bad), want))
rc, out, err = run_ticketd("-t", "-c", sample, "-s", "d" * 4095)
tap.ok(rc == 0 and "d" * 4095 in out, "-t -s of 4095 bytes is accepted")
rc, out, err = run_ticketd("-t", "-c", sample, "-s", "a\x01b")
tap.ok(rc == 1 and "-s/--state-dir: must not contain control characters" in err,
       "-t -s with a control character: exit 1")

# ---- broken configs: -t exits 1 and names the problem ----------------------------------------
good = base_config(state_dir="/tmp/x")


def variant(**kw):
    c = json.loads(json.dumps(good))
    for path, value in kw.items():
        obj = c
        keys = path.split("__")
        for k in keys[:-1]:
            obj = obj[int(k)] if k.isdigit() else obj[k]
        if value is KeyError:
            del obj[keys[-1]]
        else:
            obj[int(keys[-1]) if keys[-1].isdigit() else keys[-1]] = value
    return c


cases = [
    ("unknown top-level key", variant(bogus=1), ": bogus: unknown key"),
    ("unknown nested key", variant(events__1__tiers__vipp=5), ": events[1].tiers.vipp: unknown key"),
    ("unknown payment key", variant(payment__speed=1), ": payment.speed: unknown key"),
    ("unknown event key", variant(events__0__price=1), ": events[0].price: unknown key"),
    ("wrong type", variant(limits__max_quantity="10"), "limits.max_quantity: must be an integer"),
    ("out of range", variant(limits__max_quantity=1001), "limits.max_quantity: must be between 1 and 1000"),
    ("too many workers", variant(workers=1025), "workers: must be between 0 and 1024"),
    ("fractional io_threads", variant(io_threads=1.5), "io_threads: must be an integer"),
    ("decline_rate above 1", variant(payment__decline_rate=1.5), "payment.decline_rate: must be between 0 and 1"),
    # The value as given, not rounded to 6 digits ("got 1" would read as in range).
    ("decline_rate just above 1", variant(payment__decline_rate=1.0000001),
     "payment.decline_rate: must be between 0 and 1, got 1.0000001\n"),
    ("decline_rate just below 0", variant(payment__decline_rate=-1e-9),
     "payment.decline_rate: must be between 0 and 1, got -1e-09\n"),
    ("bad payment mode", variant(payment__mode="sometimes"), "payment.mode: must be \"async\" or \"blocking\""),
    ("negative capacity", variant(events__1__tiers__general=-1), "events[1].tiers.general: must be between 0"),
    ("capacity as a string", variant(events__1__tiers__general="10"), "events[1].tiers.general: must be an integer"),
    ("missing tiers", variant(events__1__tiers=KeyError), "events[1].tiers: is required"),
    ("missing general", variant(events__1__tiers={"vip": 1}), "events[1].tiers: needs a \"general\""),
    ("vip without vip_code", variant(events__0__vip_code=KeyError), "events[0]: has a vip tier, so it needs a \"vip_code\""),
    ("vip_code without vip", variant(events__1__vip_code="x"), "events[1].vip_code: is set but tiers has no \"vip\""),
    ("bad event id", variant(events__1__id="a b"), "events[1].id: \"a b\" may hold only"),
    ("duplicate event id", variant(events__1__id="concert"), "events[1].id: \"concert\" is already used by events[0]"),
    ("missing events", variant(events=KeyError), "events: must be a list"),
    ("empty events", variant(events=[]), "events: must be a list"),
    ("events not a list", variant(events={}), "events: must be a list"),
    ("listen not a list", variant(listen="127.0.0.1:80"), "listen: must be a list"),
    ("bad listen address", variant(listen=["localhost:80"]), "listen[0]: \"localhost:80\" is not a numeric"),
    ("duplicate listen address", variant(listen=["127.0.0.1:9000", "127.0.0.1:9000"]),
     "listen[1]: \"127.0.0.1:9000\" is the same address and port as listen[0]"),
    ("duplicate listen address, written differently",
     variant(listen=["[::1]:80", "127.0.0.1:80", "[0:0::1]:080"]),
     "listen[2]: \"[0:0::1]:080\" is the same address and port as listen[0] (\"[::1]:80\")"),
    ("unknown seller", variant(seller="fastest"), "seller: unknown seller core \"fastest\""),
    ("unknown event seller", variant(events__1__seller="fastest"), "events[1].seller: unknown seller core"),
    ("bad log level", variant(log_level="loud"), "log_level: must be"),
    ("empty state_dir", variant(state_dir=""), "state_dir: must be 1 to"),
    ("limits not an object", variant(limits=5), "limits: must be an object, got an integer"),
    ("name with a control char", variant(events__0__name="a\nb"), "events[0].name: must not contain control"),
    ("name with a C1 control char", variant(events__0__name="a\u0085b"),
     "events[0].name: must not contain control characters"),
    ("name with a raw C1 control char", '{"events":[{"id":"e","name":"a\u009fb","tiers":{"general":1}}]}',
     "events[0].name: must not contain control characters"),
    ("top level not an object", [1, 2], "the configuration must be a JSON object"),
]
for u in unsafe:
    cases.append(("unsafe core %s" % u, variant(seller=u), "is unsafe"))
for i, (name, content, expect) in enumerate(cases):
    path = conf_file("bad%d.conf" % i, content)
    rc, out, err = run_ticketd("-t", "-c", path)
    ok = rc == 1 and expect in err and path in err and out == ""
    if not ok:
        tap.diag("%s: rc %d, stderr %r" % (name, rc, err))
    tap.ok(ok, "-t, %s: exit 1, \"%s\"" % (name, expect.strip()))

# Syntax errors carry file:line:column.
path = conf_file("syntax.conf", '{\n  "io_threads": 2,\n  "workers": ,\n}\n')
rc, out, err = run_ticketd("-t", "-c", path)
tap.ok(rc == 1 and (path + ":3:") in err, "bad JSON: exit 1 with FILE:LINE:COLUMN (%s)" % err.strip())
path = conf_file("dup.conf", '{"workers": 1, "workers": 2}')
rc, out, err = run_ticketd("-t", "-c", path)
tap.ok(rc == 1 and "duplicate" in err and (path + ":1:") in err, "a duplicate key is a syntax error")
path = conf_file("empty.conf", "")
rc, out, err = run_ticketd("-t", "-c", path)
tap.ok(rc == 1 and path in err, "an empty file: exit 1")
rc, out, err = run_ticketd("-t", "-c", os.path.join(tmp, "missing.conf"))
tap.ok(rc == 1 and "No such file" in err, "a missing file: exit 1, says so")
rc, out, err = run_ticketd("-t", "-c", tmp)
tap.ok(rc == 1 and "not a regular file" in err, "a directory: exit 1")
# A FIFO is refused without waiting for a writer (the timeout turns a
# regression into a failure, not a hang).
fifo = os.path.join(tmp, "fifo.conf")
os.mkfifo(fifo)
try:
    rc, out, err = run_ticketd("-t", "-c", fifo, timeout=5)
except subprocess.TimeoutExpired:
    rc, err = None, "still blocked after 5 s"
tap.ok(rc == 1 and (fifo + ": not a regular file") in err,
       "a FIFO: exit 1 at once, \"not a regular file\" (%s)" % err.strip())
path = conf_file("huge.conf", '{"x":"' + "a" * (1 << 20) + '"}')
rc, out, err = run_ticketd("-t", "-c", path)
tap.ok(rc == 1 and "larger than" in err, "a file over 1 MiB: exit 1")

# Names that are not Cc are not control characters: U+00A0, U+2028, U+2029.
for ch in ("\u00a0", "\u2028", "\u2029"):
    path = conf_file("name-%04x.conf" % ord(ch), variant(events__0__name="a%sb" % ch))
    rc, out, err = run_ticketd("-t", "-c", path)
    tap.ok(rc == 0, "an event name with U+%04X is accepted (%s)" % (ord(ch), err.strip()))

# Listen entries that share a port or an address, but not both, load.
path = conf_file("listen-ok.conf", variant(listen=["127.0.0.1:9000", "127.0.0.2:9000",
                                                   "127.0.0.1:9001", "[::1]:9000"]))
rc, out, err = run_ticketd("-t", "-c", path)
tap.ok(rc == 0, "listen entries that differ in address or port are accepted (%s)" % err.strip())

# ---- a bad config or state dir never starts a daemon ---------------------------------------
rc, out, err = run_ticketd("-c", conf_file("bad-run.conf", variant(bogus=1)))
tap.ok(rc == 1 and "bogus: unknown key" in err and "listening" not in err,
       "without -t, a bad config exits 1 before listening")
blocker = os.path.join(tmp, "a-file")
open(blocker, "w").close()
d = Daemon(base_config(state_dir=os.path.join(blocker, "state")))
tap.ok(d.start_fails("state_dir", "cannot create"),
       "a state_dir that cannot be created: exit 1 before listening")
for bad in ("", "d" * 5000):
    d = Daemon(base_config(), args=["-s", bad])
    tap.ok(d.start_fails("-s/--state-dir: must be 1 to 4095 bytes long, got %d" % len(bad)),
           "without -t, -s of %d bytes: exit 1 before listening" % len(bad))

# ---- a reload that finds a FIFO is refused, and SIGTERM still works -------------------------
d = Daemon(base_config()).start()
os.remove(d.conf_path)
os.mkfifo(d.conf_path)
d.send_signal(signal.SIGHUP)
d.wait_log("not a regular file", timeout=5)
tap.ok("reload refused" in d.log() and (d.conf_path + ": not a regular file") in d.log(),
       "SIGHUP with the config replaced by a FIFO: the reload is refused")
tap.eq(d.get("/healthz").status, 200, "and the daemon goes on serving")
d.finish("daemon after a FIFO reload")

# ---- the state dir is created, and a taken port is an error ------------------------------------
d = Daemon(base_config(state_dir=os.path.join(tmp, "new", "deep", "state")))
d.start()
tap.ok(os.path.isfile(os.path.join(tmp, "new", "deep", "state", "ledger.db")),
       "a missing state_dir is created, with the ledger in it")
d.finish("state dir daemon")

taken = socket.socket()
taken.bind(("127.0.0.1", 0))
taken.listen(1)
port = taken.getsockname()[1]
rc, out, err = run_ticketd("-c", conf_file("taken.conf", base_config(
    listen=["127.0.0.1:%d" % port], state_dir=os.path.join(tmp, "st2"))))
tap.ok(rc == 1 and "bind" in err and "Address already in use" in err,
       "a port held by another program: exit 1, bind: Address already in use")
taken.close()

# Every ticketd socket has SO_REUSEPORT (its loops share the port), so the
# kernel would let a second ticketd join a running one's port and split its
# connections: the port's claim (@ticketd-tcp-PORT) refuses the second.
d = Daemon(base_config(listen=["127.0.0.1:0"])).start()
busy = int(d.addrs[0].rsplit(":", 1)[1])
rc, out, err = run_ticketd("-c", conf_file("second.conf", base_config(
    listen=["127.0.0.1:%d" % busy], state_dir=os.path.join(tmp, "st3"))))
tap.ok(rc == 1 and ("another ticketd (pid %d) is listening on port %d" % (d.proc.pid, busy)) in err,
       "a second ticketd on a running one's port: exit 1, the first one named")
rc, out, err = run_ticketd("-c", conf_file("second_any.conf", base_config(
    listen=["0.0.0.0:%d" % busy], state_dir=os.path.join(tmp, "st4"))))
tap.ok(rc == 1 and "is listening on port %d" % busy in err,
       "and on the same port of another address: exit 1")
listeners = sum(1 for line in open("/proc/net/tcp").read().splitlines()[1:]
                if line.split()[1].endswith(":%04X" % busy) and line.split()[3] == "0A")
tap.eq(listeners, 2, "only the first daemon's two loops listen on the port")
tap.eq(d.get("/healthz").status, 200, "the first daemon still serves")
d.finish("first daemon of the port")
d = Daemon(base_config(listen=["127.0.0.1:%d" % busy])).start()
tap.eq(d.get("/healthz").status, 200, "the port's claim ends with its daemon: the next one binds it")
d.finish("next daemon of the port")

# Anyone may bind an abstract name: a claim held by another user's process
# (whose sockets the kernel keeps out of ours) is warned about, not obeyed.
if os.geteuid() == 0:
    squat = subprocess.Popen(
        [sys.executable, "-c",
         "import os, socket, sys\n"
         "os.setgid(65534); os.setuid(65534)\n"
         "s = socket.socket(socket.AF_UNIX)\n"
         "s.bind('\\0ticketd-tcp-%d'); s.listen(1)\n"
         "print('held', flush=True); sys.stdin.read()\n" % busy],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    held = squat.stdout.readline().strip() == b"held"
    d = Daemon(base_config(listen=["127.0.0.1:%d" % busy])).start()
    tap.ok(held and d.get("/healthz").status == 200 and
           ("held by pid %d of uid 65534" % squat.pid) in d.log(),
           "a claim held by another user's process: warned about, the daemon serves")
    d.finish("daemon beside another user's claim")
    squat.stdin.close()
    squat.wait()
else:
    tap.skip("another user's claim", "needs root to run a process as another user")

# ---- IPv6 ------------------------------------------------------------------------
try:
    s6 = socket.socket(socket.AF_INET6)
    s6.bind(("::1", 0))
    s6.close()
    have6 = True
except OSError:
    have6 = False
if have6:
    d = Daemon(base_config(listen=["[::1]:0", "127.0.0.1:0"])).start()
    tap.ok(len(d.addrs) == 2 and d.addrs[0].startswith("[::1]:"),
           "two listen addresses, IPv6 first: %s" % d.addrs)
    tap.eq(d.get("/healthz").status, 200, "served over IPv6")
    d.host, d.port = "127.0.0.1", int(d.addrs[1].rsplit(":", 1)[1])
    tap.eq(d.get("/healthz").status, 200, "and over IPv4, same daemon")
    d.finish("IPv6 daemon")
    probe = socket.socket(socket.AF_INET6)
    probe.bind(("::1", 0))
    same = probe.getsockname()[1]
    probe.close()
    d = Daemon(base_config(listen=["[::1]:%d" % same, "127.0.0.1:%d" % same])).start()
    tap.eq(len(d.addrs), 2, "one daemon may listen on one port at two addresses: %s" % d.addrs)
    d.finish("two-address daemon")
else:
    tap.skip("IPv6 listening", "no ::1 on this machine")

import shutil  # noqa: E402
shutil.rmtree(tmp, ignore_errors=True)
sys.exit(tap.done())
