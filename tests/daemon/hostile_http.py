"""hostile_http.py: raw-socket HTTP for the hostile-input, operator-route
and overload tests, where http.client would refuse to send what they send
or hide what comes back. exchange() writes bytes as given and parses the
replies exactly: status line, headers, a body by Content-Length or up to
the close, several replies on one connection (pipelining), 100 Continue;
then it says how the connection ended (closed by the server, reset, or
still open). Not a test itself.
"""
import socket
import time

from ticketd_test import SCALE, Reply


class Resp(Reply):
    """One reply: status, reason, version, headers (lower-case), body, json."""

    def __init__(self, version, status, reason, headers, body):
        super().__init__(status, headers, body)
        self.version = version
        self.reason = reason

    def code(self):
        """The JSON error code, "<html>" for an evhttp error page, else None."""
        if isinstance(self.json, dict) and isinstance(self.json.get("error"), str):
            return self.json["error"]
        if self.body.startswith(b"<HTML>") and \
                ("<TITLE>%d " % self.status).encode() in self.body:
            return "<html>"
        return None

    def __repr__(self):
        return "<%d %s %r>" % (self.status, self.code(), self.body[:120])


class Exchange:
    """What one connection saw: the replies, and how it ended."""

    def __init__(self, replies, end, elapsed, error=None):
        self.replies = replies
        self.end = end            # "closed", "reset" or "open"
        self.elapsed = elapsed
        self.error = error        # a send error (the server closed first)

    def statuses(self):
        return [r.status for r in self.replies]

    def __repr__(self):
        return "<%r %s after %.2fs%s>" % (self.replies, self.end, self.elapsed,
                                         " send: %s" % self.error if self.error else "")


def _parse(buf, head_only):
    """Parses one reply off the front of buf. Returns (Resp, rest), or
    (None, buf) if incomplete; a reply without a length needs eof=True."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None, buf, None
    lines = buf[:end].decode("latin-1").split("\r\n")
    version, status, reason = (lines[0].split(" ", 2) + ["", ""])[:3]
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    rest = buf[end + 4:]
    status = int(status)
    if 100 <= status < 200 or status in (204, 304) or head_only:
        return Resp(version, status, reason, headers, b""), rest, False
    if "content-length" in headers:
        n = int(headers["content-length"])
        if len(rest) < n:
            return None, buf, None
        return Resp(version, status, reason, headers, rest[:n]), rest[n:], False
    # No length: the body runs to the close.
    return Resp(version, status, reason, headers, rest), b"", True


def exchange(host, port, data, replies=1, linger=0.3, timeout=10, head=False,
             then=None, shut=False):
    """Sends data (bytes, or a list of (bytes, pause_s) pieces), reads up to
    `replies` final replies (a 100 Continue is kept but not counted; after
    it, `then` is sent), then waits `linger` s (scaled) for the server to
    close; with replies=0, waits for the close. timeout (scaled) bounds the
    whole wait. shut: half-close after
    sending. Returns an Exchange."""
    t0 = time.monotonic()
    deadline = t0 + timeout * SCALE
    s = socket.create_connection((host, port), timeout=timeout * SCALE)
    got, buf, err, end = [], b"", None, "open"
    pieces = data if isinstance(data, list) else [(data, 0)]
    try:
        for piece, pause in pieces:
            s.sendall(piece)
            if pause:
                time.sleep(pause)
        if shut:
            s.shutdown(socket.SHUT_WR)
    except OSError as e:
        err = e.__class__.__name__
    finals = 0
    to_close = False
    while True:
        while True:
            r, rest, needs_eof = _parse(buf, head)
            if r is None or needs_eof:
                break
            got.append(r)
            buf = rest
            if r.status == 100 and then is not None:
                s.sendall(then)
            elif r.status >= 200:
                finals += 1
        if needs_eof:
            to_close = True
        if finals >= replies and replies and not to_close:
            wait = min(linger * SCALE, max(0.0, deadline - time.monotonic()))
        else:
            wait = max(0.0, deadline - time.monotonic())
        if wait <= 0:
            break
        s.settimeout(wait)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            end = "reset"
            break
        if not chunk:
            end = "closed"
            break
        buf += chunk
    if to_close and buf:
        r, _, _ = _parse(buf, head)
        if r is not None:
            got.append(r)
    s.close()
    return Exchange(got, end, time.monotonic() - t0, err)
