"""tap.py: a minimal TAP producer for the Python tests (read by automake's
tap-driver.sh). ok() records one test point, skip() a skipped one, diag() a
comment; done() prints the plan and returns the exit status for sys.exit();
run(main) runs a test file's main() and exits with its status.
"""
import sys

_count = 0
_failed = 0


def ok(cond, name):
    """Records one test point; returns bool(cond) so callers can bail out."""
    global _count, _failed
    _count += 1
    if not cond:
        _failed += 1
    print("%sok %d - %s" % ("" if cond else "not ", _count, name), flush=True)
    return bool(cond)


def eq(got, want, name):
    """ok(got == want), printing both values when they differ."""
    if got != want:
        diag("%s: got %r, want %r" % (name, got, want))
    return ok(got == want, name)


def skip(name, reason):
    """Records one skipped test point with its reason."""
    global _count
    _count += 1
    print("ok %d - %s # SKIP %s" % (_count, name, reason), flush=True)


def diag(msg):
    for line in str(msg).splitlines() or [""]:
        print("# " + line, flush=True)


def bail(msg):
    """Stops the whole test file: TAP's Bail out!"""
    print("Bail out! " + str(msg).replace("\n", " "), flush=True)
    sys.exit(1)


def done():
    """Prints the plan; returns the exit status."""
    print("1..%d" % _count, flush=True)
    return 1 if _failed else 0


def run(main):
    """Exits with main()'s status; an exception (a harness failure) is one
    more failed test point, with its cause, and the plan is still printed."""
    try:
        status = main()
    except Exception as e:
        ok(False, "unexpected %s: %s" % (type(e).__name__, e))
        status = done()
    sys.exit(status)
