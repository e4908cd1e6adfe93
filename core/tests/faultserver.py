"""A small fault-injecting HTTP/1.1 server for the transport tests (stdlib only, 127.0.0.1 only).

Each request is answered by the next scripted behaviour (``server.script(...)``), or by ``server.default``
once the script is used up.  Every request is recorded (method, path, headers, body, arrival time), so tests can
count attempts, compare the bytes that arrived and measure the gap between two attempts.

One request per connection: every response says ``Connection: close`` and the socket is closed after it.
"""

from __future__ import annotations

import email.utils
import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

Behaviour = Callable[["Exchange"], None]


class Request:
    """What the server saw of one request."""

    def __init__(self, method: str, target: str, headers: dict[str, str], arrived: float) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.arrived = arrived
        self.body = bytearray()
        self.complete = False

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def __repr__(self) -> str:
        return f"Request({self.method} {self.target}, body={len(self.body)}, complete={self.complete})"


class Exchange:
    """The server side of one request: read its body, answer it, or misbehave."""

    def __init__(self, server: FaultServer, conn: socket.socket, request: Request, buffered: bytes) -> None:
        self.server = server
        self.conn = conn
        self.request = request
        self._buf = buffered

    # -- reading --------------------------------------------------------------------------------------------

    def _recv(self, n: int) -> bytes:
        if self._buf:
            data, self._buf = self._buf[:n], self._buf[n:]
            return data
        return self.conn.recv(n)

    def _read_exact(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            data = self._recv(n - len(out))
            if not data:
                raise ConnectionError("client closed the connection")
            out += data
        return bytes(out)

    def _read_line(self) -> bytes:
        out = bytearray()
        while not out.endswith(b"\r\n"):
            data = self._recv(1)
            if not data:
                raise ConnectionError("client closed the connection")
            out += data
        return bytes(out[:-2])

    @property
    def content_length(self) -> int | None:
        value = self.request.headers.get("content-length")
        return int(value) if value is not None else None

    def read_body(self, limit: int | None = None, *, chunk: int = 65536, delay: float = 0.0) -> None:
        """Read the body (or only its first ``limit`` bytes), ``chunk`` bytes at a time, sleeping ``delay``
        seconds between reads."""
        req = self.request
        if req.headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self._read_line().split(b";")[0], 16)
                if size == 0:
                    self._read_line()
                    break
                req.body += self._read_exact(size)
                self._read_line()
            req.complete = True
            return
        total = self.content_length or 0
        want = total if limit is None else min(limit, total)
        while len(req.body) < want:
            data = self._recv(min(chunk, want - len(req.body)))
            if not data:
                return
            req.body += data
            if delay:
                time.sleep(delay)
        req.complete = len(req.body) == total

    # -- answering ------------------------------------------------------------------------------------------

    def send(
        self,
        status: int,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        *,
        content_length: int | None = None,
    ) -> None:
        """Send a response; ``content_length`` may lie about the body's length."""
        head = [f"HTTP/1.1 {status} Scripted"]
        hdrs = {"Connection": "close", "Content-Length": str(len(body) if content_length is None else content_length)}
        hdrs.update(headers or {})
        head.extend(f"{k}: {v}" for k, v in hdrs.items())
        self.conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)

    def reset(self) -> None:
        """Abort the connection with a TCP reset."""
        self.conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.conn.close()

    def wait(self, seconds: float) -> None:
        """Do nothing for ``seconds`` (cut short when the server stops)."""
        self.server.stopping.wait(seconds)


# --- behaviours ----------------------------------------------------------------------------------------------


def respond(
    status: int = 200, headers: dict[str, str] | None = None, body: bytes | None = None, **data: Any
) -> Behaviour:
    """Read the whole body, then answer ``status`` (with a JSON body made of ``data`` unless ``body`` is given)."""
    payload = body if body is not None else json.dumps(data or {"ok": True}).encode()

    def run(ex: Exchange) -> None:
        ex.read_body()
        ex.send(status, {"Content-Type": "application/json", **(headers or {})}, payload)

    return run


def retry_after(value: str | float, status: int = 429) -> Behaviour:
    """Answer ``status`` with ``Retry-After: value`` (seconds, or an HTTP date)."""
    return respond(status, {"Retry-After": str(value)}, error="slow down")


def http_date(seconds_from_now: float) -> str:
    """An HTTP date ``seconds_from_now`` in the future (whole seconds, as the header carries them)."""
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


def retry_after_date(seconds_from_now: float, status: int = 503) -> Behaviour:
    """Answer ``status`` with ``Retry-After`` as an HTTP date ``seconds_from_now`` after the request arrived."""

    def run(ex: Exchange) -> None:
        retry_after(http_date(seconds_from_now), status)(ex)

    return run


def reset_after(nbytes: int) -> Behaviour:
    """Read ``nbytes`` of the request body, then reset the connection."""

    def run(ex: Exchange) -> None:
        ex.read_body(limit=nbytes)
        ex.reset()

    return run


def stall(seconds: float = 30.0, *, read_body: bool = True) -> Behaviour:
    """Read the request (or only its head), then say nothing for ``seconds``."""

    def run(ex: Exchange) -> None:
        if read_body:
            ex.read_body()
        ex.wait(seconds)

    return run


def truncated(declared: int, body: bytes = b'{"partial": ') -> Behaviour:
    """Answer 200 with ``Content-Length: declared`` but send only ``body`` and close."""

    def run(ex: Exchange) -> None:
        ex.read_body()
        ex.send(200, {"Content-Type": "application/json"}, body, content_length=declared)

    return run


def slow_read(*, chunk: int, delay: float, slow_bytes: int | None = None) -> Behaviour:
    """Read the body ``chunk`` bytes at a time with ``delay`` seconds between reads (the first ``slow_bytes`` only,
    then at full speed), then answer 200."""

    def run(ex: Exchange) -> None:
        ex.read_body(limit=slow_bytes, chunk=chunk, delay=delay)
        ex.read_body()
        ex.send(200, {"Content-Type": "application/json"}, json.dumps({"received": len(ex.request.body)}).encode())

    return run


def redirect(location: str, status: int = 302) -> Behaviour:
    """Answer a redirect to ``location``."""

    def run(ex: Exchange) -> None:
        ex.read_body()
        ex.send(status, {"Location": location})

    return run


def big_body(size: int) -> Behaviour:
    """Answer 200 with ``size`` bytes of body."""

    def run(ex: Exchange) -> None:
        ex.read_body()
        ex.send(200, {"Content-Type": "application/octet-stream"}, b"x" * size)

    return run


def drip(*, interval: float, head: bool, body: bytes = b'{"ok": true}') -> Behaviour:
    """Read the request, then send the answer one byte every ``interval`` seconds: the whole of it from its status
    line (``head=True``: its headers never finish arriving in time), or only its body after the headers."""

    def run(ex: Exchange) -> None:
        ex.read_body()
        top = (
            "HTTP/1.1 200 Dripped\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        data = top + body
        if not head:
            ex.conn.sendall(top)
            data = body
        for i in range(len(data)):
            if ex.server.stopping.wait(interval):
                return
            try:
                ex.conn.sendall(data[i : i + 1])
            except OSError:  # the client cut the connection: what the test wanted
                ex.server.cut.append(ex.request)
                return

    return run


# --- the server ----------------------------------------------------------------------------------------------


class FaultServer:
    """``with FaultServer() as server: server.script(respond(503), respond(200)); ... server.requests``"""

    def __init__(self, *, rcvbuf: int | None = None) -> None:
        self.stopping = threading.Event()
        self.requests: list[Request] = []
        self.errors: list[BaseException] = []
        #: requests whose connection the client cut while the server was still answering
        self.cut: list[Request] = []
        self.default: Behaviour = respond(200)
        self._script: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf is not None:
            # inherited by accepted sockets; keeps the kernel from buffering megabytes on the server's behalf
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.05)
        self.port: int = self._sock.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, name="faultserver-accept", daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, *behaviours: Behaviour) -> None:
        """Queue behaviours for the next requests, in order."""
        with self._lock:
            self._script.extend(behaviours)

    def _next(self) -> Behaviour:
        with self._lock:
            return self._script.popleft() if self._script else self.default

    def close(self) -> None:
        self.stopping.set()
        self._sock.close()
        self._acceptor.join(5)
        for t in list(self._threads):
            t.join(5)

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), name="faultserver-conn", daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        try:
            buf = b""
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head, rest = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            request = Request(method, target, headers, time.monotonic())
            with self._lock:
                self.requests.append(request)
            self._next()(Exchange(self, conn, request, rest))
        except (ConnectionError, TimeoutError) as exc:
            self.errors.append(exc)
        except OSError as exc:
            if not self.stopping.is_set():
                self.errors.append(exc)
        finally:
            try:
                conn.close()
            except OSError:
                pass
