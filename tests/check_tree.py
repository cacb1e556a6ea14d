"""check_tree.py: plain checks of the source tree's shape, run by make check.
Over the C sources of daemon/ and lib/ it checks that
  - no modules include each other's headers in a circle: a module is a
    .c/.h pair (daemon/http.c and daemon/http.h are module "http"), each
    #include "x.h" of another module is an edge, and every strongly
    connected component of more than one module is a circle;
  - no source file is over MAX_FILE_LINES lines;
  - no function is over MAX_FUNC_LINES lines, as pmccabe counts them
    (its fifth column, the lines from the function's first to its last).
tests/check_tree.allow names what is over today, one entry a line, each
under a comment that says why:
    file daemon/http.c               a file over the line limit
    function lib/ledger.c:ledger_open    a function over it
    cycle admin http purchase        an include circle (its modules, any order)
An entry that is no longer needed fails the test too, so the list only
shrinks. Without pmccabe (Debian package pmccabe) the function check is
skipped, not passed.
"""
import os
import re
import shutil
import subprocess
import sys

import tap

MAX_FILE_LINES = 900
MAX_FUNC_LINES = 120
DIRS = ("daemon", "lib")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"/]+)\.h"')


def sources(top):
    """The C sources under DIRS, as paths relative to top, sorted."""
    out = []
    for d in DIRS:
        for name in sorted(os.listdir(os.path.join(top, d))):
            if name.endswith((".c", ".h")):
                out.append("%s/%s" % (d, name))
    return out


def read_allow(path):
    """{kind: set of keys} from the allowlist; a cycle's key is its sorted
    module names joined by spaces."""
    allow = {"file": set(), "function": set(), "cycle": set()}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].split()
            if not line:
                continue
            kind, rest = line[0], line[1:]
            if kind not in allow or not rest:
                tap.bail("%s:%d: cannot read this entry" % (path, n))
            if kind == "cycle":
                allow[kind].add(" ".join(sorted(rest)))
            else:
                allow[kind].add(rest[0])
    return allow


def include_graph(top, files):
    """{module: set of modules whose header it includes}."""
    modules = {os.path.splitext(os.path.basename(f))[0] for f in files}
    graph = {m: set() for m in modules}
    for f in files:
        me = os.path.splitext(os.path.basename(f))[0]
        with open(os.path.join(top, f), errors="replace") as src:
            for line in src:
                m = INCLUDE.match(line)
                if m and m.group(1) in modules and m.group(1) != me:
                    graph[me].add(m.group(1))
    return graph


def circles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def one_circle(graph, comp):
    """One concrete circle inside a component, for the message: a -> b -> a."""
    start = comp[0]
    inside = set(comp)
    path, seen = [start], {start}

    def walk(v):
        for w in sorted(graph[v] & inside):
            if w == start and len(path) > 1:
                return True
            if w not in seen:
                seen.add(w)
                path.append(w)
                if walk(w):
                    return True
                path.pop()
        return False

    walk(start)
    return " -> ".join(path + [start])


def long_functions(top, files):
    """[(file:function, lines)] of every function pmccabe counts over the
    limit, or None when pmccabe is not installed."""
    exe = shutil.which("pmccabe")
    if exe is None:
        return None
    cfiles = [f for f in files if f.endswith(".c")]
    res = subprocess.run([exe] + cfiles, cwd=top, capture_output=True,
                         text=True, check=False)
    out = []
    for line in res.stdout.splitlines():
        cols = line.split("\t")
        if len(cols) < 6:
            continue
        where = re.match(r"(.*)\((\d+)\): (.*)", cols[5])
        if where and int(cols[4]) > MAX_FUNC_LINES:
            out.append(("%s:%s" % (where.group(1), where.group(3)), int(cols[4])))
    return out


def check(kind, over, allow, what):
    """One test point per thing over a limit (allowed or not), and one that
    every allowlist entry of this kind is still needed."""
    for key, detail in over:
        if key in allow[kind]:
            tap.ok(True, "%s %s: %s (allowed in tests/check_tree.allow)"
                   % (kind, key, detail))
        else:
            tap.ok(False, "%s %s: %s" % (kind, key, detail))
    stale = sorted(allow[kind] - {key for key, _ in over})
    tap.ok(not stale, "every allowed %s is still over%s"
           % (what, ": stale entries " + ", ".join(stale) if stale else ""))


def main():
    top = os.environ.get("TICKETD_SRCDIR") or \
        os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    files = sources(top)
    allow = read_allow(os.path.join(top, "tests", "check_tree.allow"))
    tap.ok(len(files) > 10, "found %d C sources in %s" % (len(files), ", ".join(DIRS)))

    graph = include_graph(top, files)
    comps = circles(graph)
    check("cycle", [(" ".join(c), one_circle(graph, c)) for c in comps],
          allow, "include circle")
    tap.ok(True, "include graph: %d modules, %d edges, %d circle(s)"
           % (len(graph), sum(len(v) for v in graph.values()), len(comps)))

    big = []
    for f in files:
        with open(os.path.join(top, f), errors="replace") as src:
            n = sum(1 for _ in src)
        if n > MAX_FILE_LINES:
            big.append((f, "%d lines (limit %d)" % (n, MAX_FILE_LINES)))
    check("file", big, allow, "long file")

    funcs = long_functions(top, files)
    if funcs is None:
        tap.skip("functions over %d lines" % MAX_FUNC_LINES,
                 "pmccabe not installed (apt-get install pmccabe)")
    else:
        check("function", [(k, "%d lines (limit %d)" % (n, MAX_FUNC_LINES))
                           for k, n in funcs], allow, "long function")
    return tap.done()


if __name__ == "__main__":
    tap.run(main)
