"""test_ledger_failures.py: the ledger when things go wrong, with real failures.
An old ticketd's epoch file is carried into the ledger (ids never repeat),
and the epoch file kept from then on is a floor that a ledger.db restored
from a backup cannot go below: the ids after the restore use a new epoch.
A start that cannot write the epoch file is refused.
Start-up refusals, each a clear error (exit 1, before listening) that
leaves ledger.db byte for byte as it was:
  - an epoch file that is a FIFO: refused at once, not a hang at start-up;
  - a second daemon on the same state dir, even with ledger.lock deleted
    under the first (the lock is on the directory);
  - a state dir the daemon cannot write, and a read-only ledger.db (run as
    uid 65534 when the test runs as root, since root ignores file modes);
  - a ledger.db that is not a database, and one with a smashed page;
  - a capacity lowered below what was sold, and an event with sales dropped
    from the config; put back, the daemon starts with every order intact;
  - the same refusal after a SIGKILL, with the commits still in
    ledger.db-wal: the WAL is left byte for byte too (no checkpoint at close);
  - a 0-byte ledger.db next to a non-empty WAL (the file lost after a
    crash): refused, not taken for a new ledger (which deletes the WAL);
  - a schema 1 ledger (a row per ticket) whose rows are not the derived
    codes. A good schema 1 ledger is upgraded to schema 2 at start: the log
    says so, every order reads back with the same tickets, --audit passes.
At run time:
  - the ledger reaches ledger.max_db_bytes (SQLite really runs out of
    pages): purchases get 503 unavailable with Retry-After, their tickets go
    back to stock (sold == the 201s), the error is logged; once expired
    idempotency keys are purged (idempotency_ttl_s 2) purchases work again;
  - another process holds the database's write lock (a sqlite3 shell in a
    write transaction) for longer than the 5 s busy timeout: 503, reads
    still work, and the next purchase after it lets go is a 201.
"""
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

import tap
from ticketd_test import SCALE, TICKETD, Daemon, base_config, is_error_body, run_ticketd, \
    wait_until, watchdog

watchdog(200)
tmp = tempfile.mkdtemp(prefix="ledger-fail-")
os.chmod(tmp, 0o755)    # uid 65534 must reach the configs
ROOT = os.geteuid() == 0


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def drop_privileges():
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)


def start_refused(conf, as_nobody=False):
    """Runs ticketd on conf (a dict); returns (exit status, stderr). It must
    not get as far as listening."""
    path = os.path.join(tmp, "conf-%d.json" % time.monotonic_ns())
    with open(path, "w") as f:
        json.dump(conf, f)
    os.chmod(path, 0o644)
    try:
        p = subprocess.run([TICKETD, "-c", path], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=20 * SCALE,
                           preexec_fn=drop_privileges if as_nobody else None)
    except subprocess.TimeoutExpired:
        return None, "timed out: it started"
    return p.returncode, p.stderr.decode("utf-8", "replace")


def read_epoch(state):
    """The epoch file of a state dir, or None."""
    try:
        with open(os.path.join(state, "epoch")) as f:
            return f.read()
    except OSError:
        return None


def make_ledger(name, buys=3):
    """A real ledger with a few orders; returns (config, state dir, orders)."""
    d = Daemon(base_config(state_dir=os.path.join(tmp, name)), name=name).start()
    orders = [d.purchase("concert", buyer="b%d" % i, quantity=2).json for i in range(buys)]
    tap.eq(d.stop(), 0, "%s: a ledger with %d orders" % (name, buys))
    conf = d.config
    d.cleanup()   # removes its temp dir, not the state dir (under tmp)
    return conf, conf["state_dir"], orders


def refused(name, conf, want, as_nobody=False):
    db = os.path.join(conf["state_dir"], "ledger.db")
    before = digest(db) if os.path.exists(db) else None
    rc, err = start_refused(conf, as_nobody)
    ok = rc == 1 and want in err and "listening" not in err
    tap.ok(ok, "%s: exit 1 before listening, saying \"%s\"" % (name, want))
    if not ok:
        tap.diag("exit %s: %s" % (rc, err[-1500:]))
    if before is not None:
        tap.eq(digest(db), before, "%s: ledger.db is byte for byte as it was" % name)
    return err


# ---- the epoch file of a ticketd from before the ledger ------------------------------------
state = os.path.join(tmp, "migrate")
os.makedirs(state)
with open(os.path.join(state, "epoch"), "w") as f:
    f.write("41\n")
d = Daemon(base_config(state_dir=state)).start()
oid = d.purchase("concert", buyer="m").json["order"]
tap.eq(oid.split("-")[0], "42", "an old epoch file (41) carries over: the first ids are 42-n")
tap.eq(read_epoch(state), "42\n", "the epoch file now holds the ledger's epoch, 42")
tap.ok("boot epoch starts at 42" in d.log(), "the log says the floor set the new ledger's epoch")
tap.eq(d.stop(), 0, "stop")
d.start()
tap.eq(d.purchase("concert", buyer="m").json["order"].split("-")[0], "43",
       "the next start is epoch 43")
tap.eq(read_epoch(state), "43\n", "and the epoch file says 43")
d.finish("migrated daemon")

# ---- a restored backup of ledger.db never brings an epoch back -------------------------------------
state = os.path.join(tmp, "restore")
db = os.path.join(state, "ledger.db")
backup = os.path.join(tmp, "restore-backup.db")
d = Daemon(base_config(state_dir=state)).start()
sold = [d.purchase("concert", buyer="before the backup").json["order"]]
# The documented online backup (sqlite3 .backup) while the daemon sells.
src = sqlite3.connect(db)
dst = sqlite3.connect(backup)
src.backup(dst)
dst.close()
src.close()
tap.eq(d.stop(), 0, "restore: a backup of ledger.db taken in epoch %s" % sold[0].split("-")[0])
d.start()
after = [d.purchase("concert", buyer="after the backup %d" % i).json["order"] for i in range(2)]
sold += after
tap.eq(d.stop(), 0, "restore: the next boot sold %s" % ", ".join(after))
# Restore as docs/ledger.md says: ledger.db only, the WAL and its index
# removed, the epoch file kept.
shutil.copyfile(backup, db)
for f in ("ledger.db-wal", "ledger.db-shm"):
    if os.path.exists(os.path.join(state, f)):
        os.unlink(os.path.join(state, f))
d.start()
new = [d.purchase("concert", buyer="after the restore %d" % i).json["order"] for i in range(2)]
used = max(int(o.split("-")[0]) for o in sold)
tap.ok(all(int(o.split("-")[0]) > used for o in new),
       "after the restore the ids are %s: an epoch above every one used before (%d)"
       % (", ".join(new), used))
tap.ok(not set(new) & set(sold), "no order id is handed out twice")
tap.eq(d.get("/v1/orders/" + after[0]).status, 404,
       "the orders sold after the backup are gone (the docs warn of it), not reissued")
tap.ok("raised to" in d.log(), "the log says the epoch was raised")
d.finish("restored daemon")

# ---- the epoch file cannot be written: refused ---------------------------------------------------
state = os.path.join(tmp, "epoch-unwritable")
os.makedirs(os.path.join(state, "epoch.tmp", "x"))
rc, err = start_refused(base_config(state_dir=state))
ok = rc == 1 and "cannot write the boot epoch" in err and "listening" not in err
tap.ok(ok, "the epoch file cannot be written (epoch.tmp a non-empty directory): exit 1")
if not ok:
    tap.diag("exit %s: %s" % (rc, err[-1500:]))

# ---- an epoch file that is not a regular file: refused at once, not a hang -----------------------
state = os.path.join(tmp, "fifo")
os.makedirs(state)
os.mkfifo(os.path.join(state, "epoch"))
t0 = time.monotonic()
rc, err = start_refused(base_config(state_dir=state))
took = time.monotonic() - t0
ok = rc == 1 and "epoch is not a regular file" in err and "listening" not in err
tap.ok(ok and took < 10 * SCALE,
       "a FIFO named epoch in the state dir: exit 1 after %.1f s, \"not a regular file\"" % took)
if not ok:
    tap.diag("exit %s: %s" % (rc, err[-1500:]))
tap.ok(not os.path.exists(os.path.join(state, "ledger.db")),
       "the FIFO refusal comes before the ledger is created")

# ---- two daemons on one state dir, ledger.lock deleted under the first ---------------------------
conf = base_config(state_dir=os.path.join(tmp, "twice"),
                   events=[{"id": "small", "name": "Small", "tiers": {"general": 5}}])
d = Daemon(conf).start()
os.unlink(os.path.join(conf["state_dir"], "ledger.lock"))
rc, err = start_refused(conf)
ok = rc == 1 and "another ticketd holds state_dir" in err and "listening" not in err
tap.ok(ok, "ledger.lock deleted, a second daemon on the same state dir: exit 1, "
       "\"another ticketd holds state_dir\"")
if not ok:
    tap.diag("exit %s: %s" % (rc, err[-1500:]))
tap.eq(d.purchase("small", buyer="first", quantity=5).status, 201,
       "the first daemon alone sells the 5 tickets")
d.finish("first of two daemons")

# ---- a state dir ticketd cannot write -----------------------------------------------------
conf, state, orders = make_ledger("perm")
db = os.path.join(state, "ledger.db")
if ROOT:
    # uid 65534 may enter the dir but not write it.
    os.chmod(state, 0o755)
    refused("unwritable state dir", conf, "is not writable", as_nobody=True)
    # Now the dir and the lock are writable for it, ledger.db is not.
    os.chmod(state, 0o777)
    os.chmod(os.path.join(state, "ledger.lock"), 0o666)
    os.chmod(os.path.join(state, "epoch"), 0o666)  # made 0600, as every state file
    os.chmod(db, 0o644)
    refused("read-only ledger.db", conf, "ledger.db is not writable", as_nobody=True)
    os.chmod(state, 0o750)
else:
    os.chmod(state, 0o555)
    refused("unwritable state dir", conf, "is not writable")
    os.chmod(state, 0o750)
    os.chmod(db, 0o444)
    refused("read-only ledger.db", conf, "ledger.db is not writable")
    os.chmod(db, 0o640)
d = Daemon(conf).start()
tap.eq([d.get("/v1/orders/" + o["order"]).json for o in orders], orders,
       "permissions back: it starts, every order is there")
tap.eq(d.event("concert")["tiers"]["general"]["sold"], 6, "and sold is 6 again")
d.finish("perm daemon")

# ---- not a database, a smashed page -------------------------------------------------------
conf, state, orders = make_ledger("garbage", buys=1)
db = os.path.join(state, "ledger.db")
with open(db, "wb") as f:
    f.write(b"order,event,quantity\n1-1,concert,2\n" * 200)
refused("ledger.db holding a CSV", conf, "is not a SQLite database or is corrupt")

conf, state, orders = make_ledger("smashed", buys=40)
db = os.path.join(state, "ledger.db")
c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
page = c.execute("SELECT rootpage FROM sqlite_master WHERE name = 'orders'").fetchone()[0]
psize = c.execute("PRAGMA page_size").fetchone()[0]
c.close()
with open(db, "r+b") as f:
    f.seek((page - 1) * psize)
    f.write(b"\xa5" * 16)
refused("a smashed page in ledger.db", conf, "corrupt")

# ---- capacity lowered below sold, an event with sales dropped ----------------------------------
conf, state, orders = make_ledger("capacity", buys=3)   # 6 general tickets of concert
low = json.loads(json.dumps(conf))
low["events"][0]["tiers"]["general"] = 5
err = refused("capacity 5 below the 6 sold", low,
              "event concert: 6 general tickets were sold but the capacity is now 5")
drop = json.loads(json.dumps(conf))
drop["events"] = [e for e in drop["events"] if e["id"] != "concert"]
refused("an event with sales dropped", drop, "event concert: the ledger holds 6 general")
low["events"][0]["tiers"]["general"] = 6
d = Daemon(low).start()
t = d.event("concert")["tiers"]["general"]
tap.eq((t["sold"], t["available"]), (6, 0), "capacity 6 == sold: starts, sold out")
tap.eq([d.get("/v1/orders/" + o["order"]).json for o in orders], orders, "every order is there")
d.finish("capacity daemon")

# ---- a refused start after a crash leaves ledger.db and its WAL as they were ---------------------
def killed_ledger(name, buys=3):
    """A ledger whose daemon was SIGKILLed after buys orders, so that its
    commits are in ledger.db-wal only; returns (config, state dir, orders)."""
    d = Daemon(base_config(state_dir=os.path.join(tmp, name)), name=name).start()
    orders = [d.purchase("concert", buyer="b%d" % i, quantity=2).json for i in range(buys)]
    d.kill()
    conf = d.config
    d.cleanup()
    return conf, conf["state_dir"], orders


conf, state, orders = killed_ledger("killed")
db = os.path.join(state, "ledger.db")
wal = db + "-wal"
tap.ok(os.path.exists(wal) and os.path.getsize(wal) > 0,
       "a daemon SIGKILLed after 3 orders left them in ledger.db-wal (%d bytes)"
       % (os.path.getsize(wal) if os.path.exists(wal) else -1))
wal_before = digest(wal)
low = json.loads(json.dumps(conf))
low["events"][0]["tiers"]["general"] = 5
refused("after a crash, capacity 5 below the 6 sold", low,
        "event concert: 6 general tickets were sold but the capacity is now 5")
tap.eq(digest(wal) if os.path.exists(wal) else None, wal_before,
       "after a crash: the refused start left ledger.db-wal byte for byte as it was")
d = Daemon(conf).start()
tap.eq([d.get("/v1/orders/" + o["order"]).json for o in orders], orders,
       "with the capacity back, every order of the WAL is there")
d.finish("killed daemon")

# ledger.db lost after a crash (0 bytes), its commits in the WAL: refused, not a new ledger.
conf, state, orders = killed_ledger("lost")
db = os.path.join(state, "ledger.db")
wal = db + "-wal"
wal_before = digest(wal) if os.path.exists(wal) else None
os.truncate(db, 0)
refused("a 0-byte ledger.db next to a non-empty WAL", conf,
        "ledger.db is empty (0 bytes) but %s holds" % wal)
tap.eq(digest(wal) if os.path.exists(wal) else None, wal_before,
       "a 0-byte ledger.db: ledger.db-wal is kept byte for byte")

# ---- a schema 1 ledger: upgraded at start, or refused if its rows are not derived -------------------
# What ticketd wrote before schema 2: a tickets table holding the codes.
TO_SCHEMA_1 = """
DROP VIEW tickets;
CREATE TABLE tickets (code TEXT PRIMARY KEY, order_id TEXT NOT NULL REFERENCES orders (id),
    seq INTEGER NOT NULL CHECK (seq > 0), UNIQUE (order_id, seq)) WITHOUT ROWID;
WITH RECURSIVE t (order_id, seq, quantity) AS (SELECT id, 1, quantity FROM orders
    UNION ALL SELECT order_id, seq + 1, quantity FROM t WHERE seq < quantity)
INSERT INTO tickets SELECT order_id || '-' || seq, order_id, seq FROM t;
UPDATE meta SET value = 1 WHERE key = 'schema_version';
PRAGMA user_version = 1;
"""


def to_schema_1(db, extra=""):
    c = sqlite3.connect(db, isolation_level=None)
    c.executescript(TO_SCHEMA_1 + extra)
    c.close()


def schema_of(db):
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    ver = c.execute("PRAGMA user_version").fetchone()[0]
    kind = c.execute("SELECT type FROM sqlite_master WHERE name = 'tickets'").fetchone()[0]
    c.close()
    return ver, kind


conf, state, orders = make_ledger("schema1-bad", buys=3)
db = os.path.join(state, "ledger.db")
to_schema_1(db, "UPDATE tickets SET code = 'VIP-1' WHERE code = '%s';"
            % orders[0]["tickets"][0])
refused("a schema 1 ledger with an edited ticket code", conf,
        "cannot upgrade ledger schema 1 to 2: 1 ticket row(s) that are not")
tap.eq(schema_of(db), (1, "table"), "the refused ledger is still schema 1 with its table")

conf, state, orders = make_ledger("schema1", buys=3)
db = os.path.join(state, "ledger.db")
to_schema_1(db)
tap.eq(schema_of(db), (1, "table"), "a schema 1 ledger (a tickets table) of 3 orders")
d = Daemon(conf).start()
tap.ok("upgraded" in d.log() and "from schema 1 to 2: its 6 ticket rows" in d.log(),
       "the daemon upgrades it at start and logs it")
tap.eq([d.get("/v1/orders/" + o["order"]).json for o in orders], orders,
       "every order reads back as before, tickets and all")
tap.eq(d.event("concert")["tiers"]["general"]["sold"], 6, "sold is 6")
tap.eq(d.stop(), 0, "upgraded daemon stops")
tap.eq(schema_of(db), (2, "view"), "the file is schema 2: tickets is a view")
rc, out, err = run_ticketd("-c", d.conf_path, "--audit")
tap.ok(rc == 0 and "schema 2" in out and "audit: OK" in out,
       "--audit passes on the upgraded ledger")
if rc != 0:
    tap.diag(out[-1500:] + err[-500:])
d.cleanup()

# ---- run time: the ledger is full -------------------------------------------------------------------
conf = base_config(state_dir=os.path.join(tmp, "full"), idempotency_ttl_s=2,
                   ledger={"sync": "full", "max_db_bytes": 48 * 4096},
                   events=[{"id": "big", "tiers": {"general": 1000000}}])
d = Daemon(conf).start()
got = []
first_503 = None
streak = 0
for i in range(6000):
    r = d.post("/v1/events/big/purchase", {"buyer": "b%d" % i, "quantity": 10},
               headers={"Idempotency-Key": "fill-%d" % i})
    if r.status == 201:
        got.append(r.json)
        streak = 0
    elif r.status == 503:
        first_503 = first_503 or r
        streak += 1
        if streak == 5:
            break
    else:
        tap.diag("unexpected %r" % r)
        break
tap.ok(streak == 5 and len(got) > 10,
       "the ledger fills up after %d orders: then 503, five in a row" % len(got))
if first_503 is None:
    tap.bail("the ledger never filled up")
tap.ok(is_error_body(first_503, "unavailable") and first_503.headers.get("retry-after") == "1",
       "503 unavailable, Retry-After: 1: %s" % first_503.json.get("message"))
sold = d.event("big")["tiers"]["general"]["sold"]
tap.eq(sold, 10 * len(got), "the failed purchases' tickets went back to stock (sold == the 201s)")
tap.ok("commit of" in d.log() and "failed" in d.log(), "the failure is logged")
tap.eq(d.get("/v1/orders/" + got[0]["order"]).status, 200, "reads still work")
# Expired keys are purged by the ledger (every idempotency_ttl_s): space
# comes back and purchases work again, with no restart.


def buy_later():
    r = d.post("/v1/events/big/purchase", {"buyer": "later", "quantity": 10},
               headers={"Idempotency-Key": "later-%d" % time.monotonic_ns()})
    return r if r.status == 201 else None


r = wait_until(buy_later, 20, "a purchase to succeed after the keys expire", interval=0.25)
tap.eq(r.status if r else None, 201, "after the keys expire, a purchase succeeds again")
tap.ok("succeed again" in d.log(), "the recovery is logged")
tap.eq(d.event("big")["tiers"]["general"]["sold"], 10 * len(got) + 10, "sold counts it")
tap.ok(all(d.get("/v1/orders/" + o["order"]).json == o for o in got[::7]),
       "orders confirmed before the disk filled are intact")
d.finish("full daemon")
acfg = os.path.join(tmp, "full.conf")
with open(acfg, "w") as f:
    json.dump(conf, f)
rc, out, err = run_ticketd("-c", acfg, "--audit")
tap.ok(rc == 0 and "audit: OK" in out, "--audit passes on the ledger that was full")

# ---- run time: another process holds the write lock ---------------------------------------------------
conf = base_config(state_dir=os.path.join(tmp, "busy"))
d = Daemon(conf).start()
o = d.purchase("concert", buyer="before", quantity=1).json
shell = sqlite3.connect(os.path.join(conf["state_dir"], "ledger.db"), timeout=0.1,
                        isolation_level=None)
shell.execute("BEGIN IMMEDIATE")    # what a sqlite3 shell writing would hold
t0 = time.monotonic()
r = d.purchase("concert", buyer="blocked", quantity=2)
waited = time.monotonic() - t0
tap.ok(r.status == 503 and is_error_body(r, "unavailable"),
       "a purchase while another process holds the lock: 503 after %.1f s" % waited)
tap.eq(d.get("/v1/orders/" + o["order"]).json, o, "reads go on meanwhile")
tap.eq(d.event("concert")["tiers"]["general"]["sold"], 1, "the blocked purchase sold nothing")
shell.execute("ROLLBACK")
shell.close()
r = d.purchase("concert", buyer="after", quantity=2)
tap.eq(r.status, 201, "the lock is gone: the next purchase is a 201")
tap.eq(d.event("concert")["tiers"]["general"]["sold"], 3, "sold 3")
d.finish("busy daemon")

shutil.rmtree(tmp, ignore_errors=True)
sys.exit(tap.done())
