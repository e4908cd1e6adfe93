"""The machinery the stateful provider fakes share (stdlib only): a threaded HTTP/1.1 server on 127.0.0.1, every
request recorded, bodies read whole or found cut short, injected error answers, one write per answer.

A fake subclasses :class:`StatefulServer` and implements :meth:`StatefulServer.route` (a request's route name, for
recording and faults), :meth:`StatefulServer.dispatch` (the answer, from the documented behaviour it cites) and
:meth:`StatefulServer.error_answer` (the provider's error body).  ``gemini_like``, ``anthropic_like`` and
``mistral_like`` are built on it.
"""

from __future__ import annotations

import http.server
import json
import secrets
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

#: bodies up to this size are kept with their request
KEPT_BODY = 1 << 20
#: the longest a request waits for the bodies of the requests that came before it (a bound, never reached when the
#: clients send what they started: a cut body ends when its connection does)
ORDER_WAIT = 30.0


@dataclass
class Recorded:
    """What the server saw of one request (and what it answered)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    route: str | None
    body_bytes: int = 0
    #: the whole body arrived (``False``: the client stopped sending before its ``Content-Length``)
    complete: bool = True
    status: int | None = None
    fault: str | None = None
    request_id: str = ""
    #: the body, when it is at most :data:`KEPT_BODY` bytes (tests look at metadata and small files)
    body: bytes = field(default=b"", repr=False)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class Answer:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_answer(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Answer:
    return Answer(status=status, body=json.dumps(data).encode(), headers=dict(headers or {}))


class ApiError(Exception):
    """An error answer: ``status``, ``message`` and what the fake's error body carries besides (``extra``)."""

    def __init__(self, status: int, message: str, *, headers: Mapping[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        self.extra = extra


@dataclass
class Fault:
    """Answer the next ``times`` requests to ``route`` (after ``skip`` of them) with ``status``."""

    route: str
    status: int
    times: int = 1
    skip: int = 0
    message: str = "Injected error."
    headers: dict[str, str] = field(default_factory=dict)
    used: int = 0

    def take(self) -> bool:
        if self.skip > 0:
            self.skip -= 1
            return False
        if self.used >= self.times:
            return False
        self.used += 1
        return True


class Dropped(Exception):
    """The client went away; nothing is answered."""


class StatefulServer:
    """An in-memory server on ``127.0.0.1`` and an ephemeral port, run in a thread (see the module documentation)."""

    name = "stateful-test-server"
    #: the header each answer carries with a fresh request id (``None``: none)
    request_id_header: str | None = None

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._turns = threading.Condition(self._lock)
        #: requests (by arrival number) whose body is not in yet, and connections whose first request is not read
        self._pending: set[int] = set()
        self._arrivals = 0
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.errors: list[BaseException] = []

    # -- what a fake implements ----------------------------------------------------------------------------

    def route(self, method: str, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> str | None:
        raise NotImplementedError

    def dispatch(self, rec: Recorded, body: bytes) -> Answer:
        raise NotImplementedError

    def error_answer(self, err: ApiError, rec: Recorded | None) -> Answer:
        raise NotImplementedError

    def partial_body(self, rec: Recorded, body: bytes) -> None:
        """A request whose body was cut short (the client went away): nothing by default; a resumable upload keeps
        what arrived."""

    # -- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> StatefulServer:
        httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        httpd.app = self
        httpd.arrivals = {}
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=self.name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:  # wake handler threads idling on kept-alive connections
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "the server is not running"
        return int(self._httpd.server_address[1])

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- test controls -------------------------------------------------------------------------------------

    def fail(
        self,
        route: str,
        status: int,
        *,
        times: int = 1,
        skip: int = 0,
        message: str = "Injected error.",
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """Answer the next ``times`` requests to ``route`` with ``status`` and the provider's error body."""
        fault = Fault(route=route, status=status, times=times, skip=skip, message=message, headers=dict(headers or {}))
        with self._lock:
            self.faults.append(fault)
        return fault

    def requests_to(self, route: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.route == route]

    # -- serving -------------------------------------------------------------------------------------------

    def handle(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        headers = {k.lower(): v for k, v in h.headers.items()}
        query = parse_qs(split.query, keep_blank_values=True)
        rec = Recorded(
            method=h.command,
            path=split.path,
            query=query,
            headers=headers,
            route=self.route(h.command, split.path, query, headers),
            request_id=secrets.token_hex(12),
        )
        with self._lock:
            self.requests.append(rec)
            fault = next((f for f in self.faults if f.route == rec.route and f.take()), None)
            seq = h.arrival if h.arrival is not None else self._arrive()
            h.arrival = None
        try:
            body, complete = self._read_body(h, headers)
            rec.body_bytes, rec.complete = len(body), complete
            if len(body) <= KEPT_BODY:
                rec.body = body
            if not complete:
                with self._lock:
                    self.partial_body(rec, body)
                raise Dropped(f"the client sent {len(body)} bytes of its body and went away")
        finally:
            self._arrived(seq)
        self._wait_for_earlier(seq)
        try:
            if fault is not None:
                rec.fault = f"status {fault.status}"
                raise ApiError(fault.status, fault.message, headers=fault.headers)
            with self._lock:
                answer = self.dispatch(rec, body)
        except ApiError as err:
            answer = self.error_answer(err, rec)
            answer.headers.update(err.headers)
        rec.status = answer.status
        self.write(h, answer, rec.request_id)

    # -- order: a request is answered once the requests that arrived before it are in ------------------------
    # A client that cuts a chunk short and asks the session what it holds must hear of the bytes that arrived
    # (a cut connection is over for the client before the server's thread has read to its end).

    def _arrive(self) -> int:
        with self._lock:
            self._arrivals += 1
            self._pending.add(self._arrivals)
            return self._arrivals

    def _arrived(self, seq: int | None) -> None:
        if seq is None:
            return
        with self._turns:
            self._pending.discard(seq)
            self._turns.notify_all()

    def _wait_for_earlier(self, seq: int) -> None:
        with self._turns:
            self._turns.wait_for(lambda: not any(s < seq for s in self._pending), timeout=ORDER_WAIT)

    @staticmethod
    def _read_body(h: _Handler, headers: Mapping[str, str]) -> tuple[bytes, bool]:
        length = int(headers.get("content-length") or 0)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise ApiError(411, "this test server reads bodies with a Content-Length")
        chunks: list[bytes] = []
        left = length
        while left > 0:
            try:
                block = h.rfile.read1(min(left, 1 << 20))
            except (ConnectionError, TimeoutError, OSError):
                block = b""
            if not block:
                return b"".join(chunks), False
            chunks.append(block)
            left -= len(block)
        return b"".join(chunks), True

    def write(self, h: _Handler, answer: Answer, request_id: str) -> None:
        """Headers and body in one write."""
        try:
            reason = HTTPStatus(answer.status).phrase
        except ValueError:
            reason = "Unknown"
        lines = [
            f"HTTP/1.1 {answer.status} {reason}",
            f"Date: {h.date_time_string()}",
            f"Content-Type: {answer.content_type}",
            f"Content-Length: {len(answer.body)}",
        ]
        if self.request_id_header:
            lines.append(f"{self.request_id_header}: {request_id}")
        lines.extend(f"{k}: {v}" for k, v in answer.headers.items())
        if h.close_connection:
            lines.append("Connection: close")
        h.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + answer.body)


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False
    app: StatefulServer
    #: each accepted connection's arrival number, numbered here in the order of acceptance before its thread starts
    arrivals: dict[Any, int]

    def process_request(self, request: Any, client_address: Any) -> None:
        self.arrivals[request] = self.app._arrive()
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that disconnects is not a server error; anything else is kept for the test to see
        import sys

        exc = sys.exc_info()[1]
        if exc is not None and not isinstance(exc, (Dropped, ConnectionError, TimeoutError)):
            self.app.errors.append(exc)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sys_version = ""
    server: _HTTPServer

    #: the arrival number of the connection's first request, until that request is read
    arrival: int | None = None

    def setup(self) -> None:
        self.arrival = self.server.arrivals.pop(self.request, None)
        super().setup()
        self.server_version = self.server.app.name
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.app._lock:
            self.server.app._connections.add(self.connection)

    def finish(self) -> None:
        self.server.app._arrived(self.arrival)  # a connection closed before its first request
        self.arrival = None
        with self.server.app._lock:
            self.server.app._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        try:
            self.server.app.handle(self)
        except (Dropped, ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as exc:  # a bug of the fake: kept for the test, answered 500
            self.server.app.errors.append(exc)
            self.close_connection = True
            answer = Answer(status=500, body=b'{"error": "test server bug"}')
            try:
                self.server.app.write(self, answer, "bug")
            except OSError:
                pass

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        self.close_connection = True
        answer = self.server.app.error_answer(ApiError(code, message or HTTPStatus(code).phrase), None)
        try:
            self.server.app.write(self, answer, secrets.token_hex(12))
        except OSError:
            pass
