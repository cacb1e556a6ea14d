"""test_first_hour.py: what a new user and a new operator meet first.
  - --help points at the man pages and the installed sample, not at files
    of the source tree.
  - -t reports every error of a file in one run (an unknown key and a
    negative capacity: both, one a line).
  - log_level takes syslog's names: "warning" beside "warn", and "err",
    "crit", "alert", "emerg" (logged as error).
  - A start refused because the port is taken creates nothing: no state
    dir, no ledger.db.
  - Outside systemd the state dir is made 0700 and its files 0600, whatever
    the umask.
  - The admin token: systemd's credential wins over admin_token_file (a
    blank credential, the unit's default, falls back to the file), and the
    start says at notice where the token came from, or that there is none.
  - --audit shows no vip row for an event without a vip tier.
  - invalid_json messages name no library flag and echo nothing invisible:
    a byte-order mark is named as such.
"""
import json
import os
import socket
import stat
import tempfile

import tap
from ticketd_test import Daemon, base_config, is_error_body, run_ticketd, watchdog

watchdog(120)
tmp = tempfile.mkdtemp(prefix="ticketd-first-hour-")
os.environ.pop("CREDENTIALS_DIRECTORY", None)


def conf_file(name, conf):
    path = os.path.join(tmp, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(conf, f, indent=1)
    return path


# ---- --help --------------------------------------------------------------------------
rc, out, _ = run_ticketd("--help")
tap.ok(rc == 0 and "man 8 ticketd" in out and "man 5" in out and "ticketd.conf" in out,
       "--help points at ticketd(8) and ticketd.conf(5)")
tap.ok("docs/api.md" not in out and "conf/ticketd.conf" not in out,
       "--help names no file of the source tree")
tap.ok("/ticketd" in out.split("sample configuration")[-1],
       "--help says where make install puts the sample configuration")

# ---- -t: every error in one run ------------------------------------------------------------
two = base_config(state_dir=os.path.join(tmp, "unused"))
two["wrokers"] = 2                                    # a typo
two["events"][1]["tiers"]["general"] = -5             # a negative capacity
rc, out, err = run_ticketd("-t", "-c", conf_file("two.conf", two))
lines = [l for l in err.splitlines() if l.strip()]
tap.eq(rc, 1, "-t on a file with two errors exits 1")
tap.ok(any("wrokers: unknown key" in l for l in lines) and
       any("events[1].tiers.general: must be between 0" in l for l in lines),
       "-t names both the typo and the negative capacity in one run")
tap.ok(len(lines) == 2 and all(l.startswith("ticketd: ") for l in lines),
       "one line per error, each prefixed ticketd: (%d lines)" % len(lines))
many = base_config(state_dir=os.path.join(tmp, "unused"), workers=-1,
                   payment={"decline_rate": 2}, limits={"max_quantity": 0})
many["events"][0]["tiers"]["vipp"] = 1
rc, out, err = run_ticketd("-t", "-c", conf_file("many.conf", many))
want = ("workers: must be between", "payment.decline_rate: must be between",
        "limits.max_quantity: must be between", "events[0].tiers.vipp: unknown key")
tap.ok(rc == 1 and all(w in err for w in want),
       "four errors in four objects: all four reported")

# ---- log_level: syslog's names ------------------------------------------------------------
for name, shown in (("warning", "warn"), ("warn", "warn"), ("err", "error"),
                    ("crit", "error"), ("alert", "error"), ("emerg", "error"),
                    ("notice", "notice")):
    rc, out, err = run_ticketd("-t", "-c", conf_file("lvl.conf", base_config(
        log_level=name, state_dir=os.path.join(tmp, "unused"))))
    tap.ok(rc == 0 and ("log_level: %s" % shown) in out,
           "log_level \"%s\" is accepted, as %s" % (name, shown))
rc, out, err = run_ticketd("-t", "-c", conf_file("lvl.conf", base_config(
    log_level="loud", state_dir=os.path.join(tmp, "unused"))))
tap.ok(rc == 1 and "log_level: must be" in err and "\"warning\"" in err,
       "an unknown log_level is refused, and the message lists \"warning\"")

# ---- a taken port: nothing on disk ----------------------------------------------------------
taken = socket.socket()
taken.bind(("127.0.0.1", 0))
taken.listen(1)
port = taken.getsockname()[1]
state = os.path.join(tmp, "never", "state")
rc, out, err = run_ticketd("-c", conf_file("taken.conf", base_config(
    listen=["127.0.0.1:%d" % port], state_dir=state)))
taken.close()
tap.ok(rc == 1 and "Address already in use" in err, "a taken port refuses the start")
tap.ok(not os.path.exists(os.path.join(tmp, "never")),
       "and it created nothing: no state dir, no ledger.db")
blocker = os.path.join(tmp, "a-file")
open(blocker, "w").close()
rc, out, err = run_ticketd("-c", conf_file("nodir.conf", base_config(
    state_dir=os.path.join(blocker, "state"))))
tap.ok(rc == 1 and "cannot create it" in err and "listening" not in err,
       "a state dir that cannot be made refuses the start before any socket is bound")

# ---- modes of the state dir and its files ---------------------------------------------------
old_umask = os.umask(0o022)
try:
    d = Daemon(base_config(state_dir=os.path.join(tmp, "modes", "state"))).start()
finally:
    os.umask(old_umask)
tap.eq(d.purchase("concert", buyer="m").status, 201, "a sale, so the ledger has written")


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


sd = os.path.join(tmp, "modes", "state")
tap.eq(oct(mode(sd)), oct(0o700), "the state dir is made 0700 under umask 022")
tap.eq(oct(mode(os.path.join(tmp, "modes"))), oct(0o700), "and so is the parent it made")
files = sorted(os.listdir(sd))
bad = ["%s %o" % (f, mode(os.path.join(sd, f))) for f in files
       if mode(os.path.join(sd, f)) & 0o077]
tap.ok("ledger.db" in files and not bad,
       "every file in it is the owner's only (%s)%s" % (", ".join(files),
                                                         ": " + ", ".join(bad) if bad else ""))
d.finish("modes daemon")

# ---- the admin token: the credential wins -----------------------------------------------------
def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


token_file = write(os.path.join(tmp, "admin-token"), "from-file\n")
creds = os.path.join(tmp, "creds")
os.mkdir(creds)
write(os.path.join(creds, "admin-token"), "from-credential\n")


def refund_status(d, token):
    oid = d.purchase("flash-sale", buyer="t").json["order"]
    return d.post("/v1/orders/%s/refund" % oid, "",
                  headers={"Authorization": "Bearer " + token}).status


os.environ["CREDENTIALS_DIRECTORY"] = creds
try:
    d = Daemon(base_config(admin_token_file=token_file)).start()
finally:
    del os.environ["CREDENTIALS_DIRECTORY"]
tap.eq((refund_status(d, "from-credential"), refund_status(d, "from-file")), (200, 401),
       "credential and admin_token_file both set: the credential's token is the one")
tap.ok(" notice: operator routes on: admin token from the systemd credential" in d.log(),
       "the start says, at notice, that the token came from the credential")
d.finish("credential-wins daemon")

write(os.path.join(creds, "admin-token"), "\n")        # the unit's SetCredential= default
os.environ["CREDENTIALS_DIRECTORY"] = creds
try:
    d = Daemon(base_config(admin_token_file=token_file)).start()
finally:
    del os.environ["CREDENTIALS_DIRECTORY"]
tap.eq(refund_status(d, "from-file"), 200,
       "a blank credential falls back to admin_token_file")
tap.ok((" notice: operator routes on: admin token from admin_token_file %s" % token_file)
       in d.log(), "the start says, at notice, that the token came from the file")
d.finish("file-fallback daemon")

d = Daemon(base_config()).start()
tap.eq(refund_status(d, "anything"), 403, "neither: operator routes are off")
tap.ok(" notice: operator routes are off: no admin token" in d.log(),
       "the start says, at notice, that no token was found")
d.finish("no-token daemon")

# ---- --audit: no vip row for an event without one ----------------------------------------------
d = Daemon(base_config())
d.start()
d.purchase("flash-sale", buyer="a")
d.purchase("concert", buyer="b", tier="vip", vip_code="backstage")
tap.eq(d.stop(), 0, "audit daemon stops")
rc, out, err = run_ticketd("-c", d.conf_path, "--audit")
rows = [l.split() for l in out.splitlines() if l.startswith(("flash-sale ", "concert "))]
tap.ok(rc == 0 and ["flash-sale", "general"] in [r[:2] for r in rows]
       and ["concert", "vip"] in [r[:2] for r in rows],
       "--audit shows the general row of each event and the concert's vip row")
tap.ok(["flash-sale", "vip"] not in [r[:2] for r in rows],
       "and no vip row for the flash sale, which has no vip tier")
d.cleanup()

# ---- invalid_json messages a client can read ------------------------------------------------------
d = Daemon(base_config()).start()
for name, body, want in (
        ("a byte-order mark before the object", b'\xef\xbb\xbf{"buyer":"a"}',
         "a byte-order mark is not allowed"),
        ("a byte-order mark after the object", b'{"buyer":"a"}\xef\xbb\xbf',
         "a byte-order mark is not allowed"),
        ("\\u0000 in a string", b'{"buyer":"a\\u0000b"}', "NUL character"),
        ("a zero-width space after the object", b'{"buyer":"a"}\xe2\x80\x8b', "\\xe2"),
        ("a raw control character", b'{"buyer":"a\x01"}', "control character")):
    r = d.post("/v1/events/concert/purchase", body,
               headers={"Content-Type": "application/json"})
    msg = (r.json or {}).get("message", "")
    tap.ok(r.status == 400 and is_error_body(r, "invalid_json") and want in msg,
           "%s: 400 invalid_json, \"%s\"" % (name, msg))
    tap.ok("JSON_" not in msg and all(0x20 <= ord(ch) < 0x7f for ch in msg),
           "%s: no library flag, nothing invisible in the message" % name)
d.finish("json-messages daemon")

tap.done()
