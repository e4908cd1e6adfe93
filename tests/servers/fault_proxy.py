"""A fault-injecting HTTP/1.1 proxy in front of a real server, stdlib only, on 127.0.0.1.

Every request passes through unchanged unless a rule matches it; a rule then breaks it in one scripted way:

* :class:`DropAfter` — forward the head and the first ``n`` body bytes, then drop both connections (the server
  gets a truncated request, the client a dropped connection and no answer): a connection lost mid-upload;
* :class:`DropResponse` — forward the whole request, then drop the client's connection instead of answering
  (the server did the work, the client never hears of it);
* :class:`ForwardTruncated` — forward only the first ``n`` body bytes as if they were the whole body
  (``Content-Length`` and ``Content-Range`` rewritten) and relay the server's answer: a server that kept less
  than was sent;
* :class:`Corrupt` — flip one body byte on the way;
* :class:`Respond` — answer itself without asking the server;
* :class:`ReplayDropped` — answer with the last response a :class:`DropResponse` withheld (for servers that
  should, like Cloud Storage, answer a status query of a finished upload with its result but do not);
* :class:`Stall` — say nothing for ``seconds`` (longer than the client's timeout), before (``forward=False``: the
  server never gets the request) or after the server did the work (``forward=True``: the answer comes too late);
* :class:`TruncateResponse` — forward, then send the server's answer cut after ``n`` body bytes and reset;
* :class:`ReplaceResponse` — forward (the server does the work), then answer something else (a 502 from a gateway,
  an HTML page, a body that is not JSON);
* :class:`Answer` — answer itself with what a function makes of the request (pages that never end, say);
* :class:`Drip` — answer itself one byte at a time, a byte a second: the head and the body, or the head at once and
  then the body (a server that never trips a timeout between bytes);
* :class:`Swallow` — read the head, never the body, and hold the connection (a peer that stopped reading: the
  client's send blocks once the socket buffers are full);
* :class:`Flood` — answer itself with a body of ``size`` zero bytes, made as it is sent (a gigabyte costs no
  memory), for as long as the client reads.

:func:`reset_offset` picks a deterministic "random" byte offset from a seed, for :class:`DropAfter`.

A request whose client stops sending before the end of its declared body is forwarded cut short the same way, and
not answered.  Every request is recorded (method, target, headers, body length, the action applied), so tests can
assert what really went over the wire — for example which ``Authorization`` header a server would have seen.  The
proxy speaks one request per connection (``Connection: close``), which clients handle by opening a new connection.
The ``Host`` header is passed through, so URLs the server builds from it (upload session URIs) point back at
the proxy.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from attrs import define, field


@define
class ProxyRequest:
    """What the proxy saw of one request."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes = field(repr=False)
    action: str = "forward"
    #: ``time.monotonic()`` and ``time.time()`` when its head arrived
    arrived: float = field(factory=time.monotonic)
    arrived_at: float = field(factory=time.time)

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@define
class Rule:
    """Apply ``action`` to the requests ``match`` accepts, after skipping ``skip`` of them, ``times`` times."""

    match: Callable[[ProxyRequest], bool]
    action: Any
    times: int = 1
    skip: int = 0
    used: int = 0


@define(frozen=True)
class DropAfter:
    n: int


@define(frozen=True)
class DropResponse:
    pass


@define(frozen=True)
class ForwardTruncated:
    n: int


@define(frozen=True)
class Corrupt:
    at: int


@define(frozen=True)
class ReplayDropped:
    pass


@define(frozen=True)
class Respond:
    status: int
    headers: Mapping[str, str] = field(factory=dict)
    body: bytes = b""


@define(frozen=True)
class Stall:
    seconds: float
    forward: bool = False


@define(frozen=True)
class TruncateResponse:
    n: int


@define(frozen=True)
class ReplaceResponse:
    status: int
    headers: Mapping[str, str] = field(factory=dict)
    body: bytes = b""


@define(frozen=True)
class Answer:
    make: Callable[[ProxyRequest], tuple[int, Mapping[str, str], bytes]]


@define(frozen=True)
class Drip:
    status: int = 200
    headers: Mapping[str, str] = field(factory=dict)
    body: bytes = b""
    every: float = 1.0
    #: drip the head too (else the head goes at once, then the body drips)
    head: bool = True


@define(frozen=True)
class Swallow:
    pass


@define(frozen=True)
class Flood:
    size: int
    headers: Mapping[str, str] = field(factory=dict)


def reset_offset(seed: int, length: int) -> int:
    """A byte offset in ``[1, length)`` that depends only on ``seed`` (a connection reset "at a random offset"
    that is the same in every run)."""
    import random

    return random.Random(seed).randrange(1, max(2, length))


_REASONS = {200: "OK", 204: "No Content", 308: "Resume Incomplete", 400: "Bad Request", 404: "Not Found"}


class FaultProxy:
    """``with FaultProxy("127.0.0.1", port) as proxy: ... proxy.url ...``"""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        keep_bodies: bool = False,
        fix_response: Callable[[ProxyRequest, bytes], bytes] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.keep_bodies = keep_bodies
        #: applied to every upstream answer before a rule sees it (to correct a known bug of the server behind)
        self.fix_response = fix_response
        self.requests: list[ProxyRequest] = []
        self.rules: list[Rule] = []
        self.errors: list[str] = []
        #: the last upstream answer a DropResponse kept from the client
        self.dropped: bytes | None = None
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.bind((host, 0))
        self._sock.listen(64)
        self.port = int(self._sock.getsockname()[1])
        self.url = f"http://{host}:{self.port}"
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._closing = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)

    # -- control -------------------------------------------------------------------------------------------

    def __enter__(self) -> FaultProxy:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        self._closing.set()  # stalls end
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        self._sock.close()
        self._acceptor.join(timeout=5)
        for t in list(self._threads):
            t.join(timeout=5)

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until every connection the proxy accepted so far is done (a request a client abandoned is recorded
        when the proxy finishes with it, which may be after the client gave up)."""
        for t in list(self._threads):
            t.join(timeout=timeout)

    def add_rule(self, match: Callable[[ProxyRequest], bool], action: Any, *, times: int = 1, skip: int = 0) -> Rule:
        rule = Rule(match=match, action=action, times=times, skip=skip)
        with self._lock:
            self.rules.append(rule)
        return rule

    def _action_for(self, req: ProxyRequest) -> Any:
        with self._lock:
            for rule in self.rules:
                if rule.used >= rule.times + rule.skip or not rule.match(req):
                    continue
                rule.used += 1
                if rule.used > rule.skip:
                    return rule.action
        return None

    # -- serving -------------------------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()  # then listed: settle() and close() join only threads that started
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                head, rest = _read_head(conn)
                if head is None:
                    return
                method, target, headers, raw_headers = _parse_head(head)
                req = ProxyRequest(method=method, target=target, headers=headers, body=b"")
                action = self._action_for(req)
                if isinstance(action, Swallow):
                    req.action = "swallow"
                    self._record(req, b"")
                    self._closing.wait(3600)
                    return
                if isinstance(action, Flood):
                    req.action = f"flood {action.size} bytes"
                    self._record(req, _read_body(conn, headers, rest))
                    _flood(conn, action)
                    return
                if isinstance(action, (Answer, Drip)):
                    self._record(req, _read_body(conn, headers, rest))
                    self._answer(conn, req, action)
                    return
                if isinstance(action, Respond):
                    req.action = "respond"
                    self._record(req, _read_body(conn, headers, rest))
                    _send_response(conn, action.status, dict(action.headers), action.body)
                    return
                if isinstance(action, ReplayDropped) and self.dropped is not None:
                    req.action = "replay dropped response"
                    self._record(req, _read_body(conn, headers, rest))
                    conn.sendall(self.dropped)
                    return
                if isinstance(action, DropAfter):
                    body = _read_body(conn, headers, rest, limit=action.n)
                    req.action = f"drop after {len(body)} body bytes"
                    self._record(req, body)
                    self._forward(raw_headers, method, target, body, headers, send_all=False)
                    _reset(conn)
                    return
                body = _read_body(conn, headers, rest)
                self._record(req, body)
                declared = headers.get("content-length")
                chunked = headers.get("transfer-encoding", "").lower() == "chunked"
                if not chunked and declared is not None and len(body) < int(declared or 0):
                    # the client cut its request short: the server gets it cut short too, as over a direct
                    # connection (forwarding it with a smaller Content-Length would make a complete request of it)
                    req.action = f"client stopped after {len(body)} body bytes"
                    self._forward(raw_headers, method, target, body, headers, send_all=False)
                    return
                if isinstance(action, Stall):
                    req.action = f"stall {action.seconds:g}s" + (" after forwarding" if action.forward else "")
                    late = (
                        self._forward(raw_headers, method, target, body, headers, send_all=True)
                        if action.forward
                        else None
                    )
                    self._closing.wait(action.seconds)
                    if late is not None:
                        try:
                            conn.sendall(late)
                        except OSError:
                            pass  # the client gave up long ago
                    return
                if isinstance(action, Corrupt) and action.at < len(body):
                    req.action = f"corrupt byte {action.at}"
                    body = body[: action.at] + bytes([body[action.at] ^ 0xFF]) + body[action.at + 1 :]
                if isinstance(action, ForwardTruncated) and action.n < len(body):
                    req.action = f"forward {action.n} of {len(body)} body bytes"
                    headers = _truncated_headers(headers, action.n)
                    raw_headers = [(k, headers[k.lower()]) for k, _ in raw_headers if k.lower() in headers]
                    body = body[: action.n]
                response = self._forward(raw_headers, method, target, body, headers, send_all=True)
                if response is not None and self.fix_response is not None:
                    response = self.fix_response(req, response)
                if isinstance(action, DropResponse):
                    req.action = "drop response"
                    self.dropped = response
                    _reset(conn)
                    return
                if isinstance(action, TruncateResponse) and response is not None:
                    head, _, rest_body = response.partition(b"\r\n\r\n")
                    req.action = f"truncate response after {action.n} of {len(rest_body)} body bytes"
                    try:
                        conn.sendall(head + b"\r\n\r\n" + rest_body[: action.n])
                    except OSError:
                        pass
                    _reset(conn)
                    return
                if isinstance(action, ReplaceResponse):
                    req.action = f"replace response with {action.status}"
                    _send_response(conn, action.status, dict(action.headers), action.body)
                    return
                assert response is not None
                conn.sendall(response)
        except Exception as exc:  # recorded for the test to see; never raised into the accept loop
            if not self._closed:
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def _answer(self, conn: socket.socket, req: ProxyRequest, action: Answer | Drip) -> None:
        if isinstance(action, Answer):
            req.action = "answer"
            status, headers, body = action.make(req)
            _send_response(conn, status, dict(headers), body)
            return
        req.action = "drip" + (" head and body" if action.head else " body")
        head, _, body = _response_bytes(action.status, dict(action.headers), action.body).partition(b"\r\n\r\n")
        head += b"\r\n\r\n"
        slow = head + body if action.head else body
        try:
            if not action.head:
                conn.sendall(head)
            for i in range(len(slow)):
                if self._closing.wait(action.every):
                    return
                conn.sendall(slow[i : i + 1])
        except OSError:
            pass  # the client gave up: that is what it should do

    def _record(self, req: ProxyRequest, body: bytes) -> None:
        req.body = body if self.keep_bodies else b""
        req.headers = dict(req.headers)
        req.headers["x-proxy-body-length"] = str(len(body))
        with self._lock:
            self.requests.append(req)

    def _forward(
        self,
        raw_headers: list[tuple[str, str]],
        method: str,
        target: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        send_all: bool,
    ) -> bytes | None:
        """Send the request upstream; with ``send_all=False`` the body is cut short and no answer is read."""
        up = socket.create_connection(self.upstream, timeout=60)
        with up:
            lines = [f"{method} {target} HTTP/1.1"]
            for k, v in raw_headers:
                if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length"):
                    lines.append(f"{k}: {v}")
            declared = headers.get("content-length")
            if send_all or declared is not None:
                length = len(body) if send_all else int(declared or 0)
                if body or method in ("POST", "PUT", "PATCH") or declared is not None:
                    lines.append(f"Content-Length: {length}")
            lines.append("Connection: close")
            up.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            if not send_all:
                up.shutdown(socket.SHUT_WR)
                return None
            chunks = []
            while True:
                data = up.recv(65536)
                if not data:
                    break
                chunks.append(data)
        return _close_delimited(b"".join(chunks), head_only=method == "HEAD")


# --- HTTP helpers -------------------------------------------------------------------------------------------


def _read_head(conn: socket.socket) -> tuple[bytes | None, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None, b""
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str], list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    raw = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        raw.append((k.strip(), v.strip()))
    return method, target, {k.lower(): v for k, v in raw}, raw


def _read_body(conn: socket.socket, headers: Mapping[str, str], rest: bytes, *, limit: int | None = None) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        data = rest
        out = b""
        while True:
            while b"\r\n" not in data:
                data += conn.recv(65536)
            size_line, _, data = data.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(data) < size + 2:
                data += conn.recv(65536)
            out += data[:size]
            data = data[size + 2 :]
            if size == 0:
                return out[:limit] if limit is not None else out
    length = int(headers.get("content-length", "0") or 0)
    want = length if limit is None else min(limit, length)
    body = rest[:want]
    while len(body) < want:
        data = conn.recv(min(65536, want - len(body)))
        if not data:
            break
        body += data
    return body


def _truncated_headers(headers: Mapping[str, str], n: int) -> dict[str, str]:
    out = dict(headers)
    out["content-length"] = str(n)
    cr = out.get("content-range", "")
    if cr.startswith("bytes ") and "-" in cr and not cr.startswith("bytes */"):
        span, _, total = cr[6:].partition("/")
        start = int(span.split("-")[0])
        out["content-range"] = f"bytes {start}-{start + n - 1}/{total}"
    return out


def _close_delimited(response: bytes, *, head_only: bool = False) -> bytes:
    """The upstream answer with ``Connection: close`` and an exact ``Content-Length`` (an answer to ``HEAD`` keeps
    the server's: it is the length of the resource, and such an answer has no body)."""
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    dropped = (
        ("connection", "transfer-encoding") if head_only else ("connection", "content-length", "transfer-encoding")
    )
    kept = [line for line in lines[1:] if line.split(":", 1)[0].strip().lower() not in dropped]
    length = [] if head_only else [f"Content-Length: {len(body)}"]
    out = [lines[0], *kept, *length, "Connection: close"]
    return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body


def _response_bytes(status: int, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _send_response(conn: socket.socket, status: int, headers: dict[str, str], body: bytes) -> None:
    try:
        conn.sendall(_response_bytes(status, headers, body))
    except OSError:
        pass  # the client stopped reading (an answer too large for it, say): that is its right


def _flood(conn: socket.socket, action: Flood) -> None:
    head = _response_bytes(200, {**action.headers}, b"").replace(
        b"Content-Length: 0", f"Content-Length: {action.size}".encode()
    )
    block = bytes(1024 * 1024)
    try:
        conn.sendall(head)
        left = action.size
        while left > 0:
            conn.sendall(block[: min(left, len(block))])
            left -= len(block)
    except OSError:
        pass  # the client stopped reading: what it should do


def _reset(conn: socket.socket) -> None:
    """Drop the connection with a TCP reset, as a network failure would."""
    import struct

    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
