"""A small, stateful, OpenAI-compatible Files and Uploads server for tests (stdlib only).

It follows OpenAI's documented API closely enough that a plugin which works against it should work against
``https://api.openai.com/v1``:

Files
    ``POST /v1/files`` (multipart/form-data: ``file``, ``purpose``, optional ``expires_after[anchor]`` and
    ``expires_after[seconds]``), ``GET /v1/files`` (``after``, ``limit``, ``order``, ``purpose``),
    ``GET /v1/files/{file_id}``, ``DELETE /v1/files/{file_id}``, ``GET /v1/files/{file_id}/content``.
Uploads
    ``POST /v1/uploads`` (JSON: ``filename``, ``purpose``, ``bytes``, ``mime_type``, optional ``expires_after``),
    ``POST /v1/uploads/{upload_id}/parts`` (multipart/form-data: ``data``),
    ``POST /v1/uploads/{upload_id}/complete`` (JSON: ``part_ids``, optional ``md5``),
    ``POST /v1/uploads/{upload_id}/cancel``.

Every request needs ``Authorization: Bearer <api_key>``; errors use OpenAI's body
``{"error": {"message", "type", "param", "code"}}``; every response carries an ``x-request-id`` header.
Limits are OpenAI's: 512 MB per ``POST /files``, 8 GB per upload, 64 MB per part, an upload expires one hour
after it is created.  OpenAI refuses to download files of some purposes; pass ``download_forbidden_purposes``
to get that behaviour (off by default, so round-trip tests can download what they uploaded).

What the server received is kept for assertions: :attr:`OpenAILikeServer.requests` (method, path, route,
headers, body size and MD5, JSON body, form fields, file fields), :attr:`~OpenAILikeServer.files` (with the MD5
of the bytes that arrived), :attr:`~OpenAILikeServer.uploads` and
:attr:`~OpenAILikeServer.peak_parts_in_flight`.

Faults: :meth:`~OpenAILikeServer.fail` makes the next requests to a route answer a given status (with extra
headers such as ``Retry-After``), :meth:`~OpenAILikeServer.drop` closes the connection in the middle of the
request instead of answering, and :meth:`~OpenAILikeServer.hold_parts` holds part requests until several are in
flight together, so a test can observe parallelism without depending on timing.

Azure mode: :meth:`OpenAILikeServer.azure` serves Azure OpenAI's flavour of the same API under ``/openai``
with a required ``?api-version=`` query (or under ``/openai/v1``, which has no Uploads API, with ``v1=True``):
the ``api-key`` header or ``Authorization: Bearer`` with a token from :attr:`~OpenAILikeServer.bearer_tokens`,
``201`` on ``POST /files``, Azure's upload purposes, Azure's error body ``{"error": {"code", "message",
"innererror"}}`` with an ``apim-request-id`` header, uploads of up to 9 GB that expire after two hours, parts
answered with an ``azure_block_id``, and files that are ``pending`` when created and ``processed`` when read
again (``pending_reads``).  ``require_bom=True`` refuses ``fine-tune`` files that do not start with a UTF-8 BOM.

Usage::

    with OpenAILikeServer(api_key="sk-test") as server:
        ...  # server.url == "http://127.0.0.1:<port>/v1"

    with OpenAILikeServer.azure(api_key="azure-key") as server:
        ...  # server.origin is the Azure endpoint; requests go to {origin}/openai/files?api-version=2024-10-21
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import http.server
import itertools
import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

KB = 1000
MB = 1000 * KB
GB = 1000 * MB
MiB = 1024 * 1024

#: the purposes OpenAI's Files and Uploads APIs accept
PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
#: the purposes Azure OpenAI's classic API (api-version 2024-10-21) and its v1 API accept for uploads
AZURE_PURPOSES = ("fine-tune", "fine-tune-results", "assistants", "assistants_output", "batch")
AZURE_V1_PURPOSES = ("assistants", "batch", "fine-tune", "evals")
#: Azure's error codes by HTTP status (its ``ErrorCode`` enum), for errors that do not name one
AZURE_ERROR_CODES = {
    400: "invalidPayload",
    401: "unauthorized",
    403: "forbidden",
    404: "notFound",
    409: "conflict",
    429: "tooManyRequests",
    500: "internalFailure",
    503: "serviceUnavailable",
}
#: every value of Azure's ``ErrorCode`` enum (an error that names another code gets the one of its status)
AZURE_CODES = frozenset(
    {
        *AZURE_ERROR_CODES.values(),
        "unexpectedEntityState",
        "itemDoesAlreadyExist",
        "quotaExceeded",
        "jsonlValidationFailed",
        "fileImportFailed",
        "contentFilter",
    }
)
UTF8_BOM = b"\xef\xbb\xbf"

#: route name -> (method, path pattern below the base path)
ROUTES: dict[str, tuple[str, str]] = {
    "files.create": ("POST", r"/files"),
    "files.list": ("GET", r"/files"),
    "files.retrieve": ("GET", r"/files/(?P<file_id>[^/]+)"),
    "files.delete": ("DELETE", r"/files/(?P<file_id>[^/]+)"),
    "files.content": ("GET", r"/files/(?P<file_id>[^/]+)/content"),
    "uploads.create": ("POST", r"/uploads"),
    "uploads.parts": ("POST", r"/uploads/(?P<upload_id>[^/]+)/parts"),
    "uploads.complete": ("POST", r"/uploads/(?P<upload_id>[^/]+)/complete"),
    "uploads.cancel": ("POST", r"/uploads/(?P<upload_id>[^/]+)/cancel"),
}

_DEFAULT_ERRORS: dict[int, tuple[str, str, str | None]] = {
    # status: (message, type, code)
    400: ("Bad request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to access this resource.", "invalid_request_error", None),
    404: ("Not found.", "invalid_request_error", None),
    408: ("Request timed out.", "server_error", None),
    409: ("Conflict.", "invalid_request_error", None),
    429: (
        "Rate limit reached for requests. Please try again later.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


# --- what the server keeps -----------------------------------------------------------------------------------


@dataclass
class StoredFile:
    """A file as the server holds it; ``md5`` is the MD5 of the bytes that arrived."""

    id: str
    filename: str
    purpose: str
    created_at: int
    content: bytes = field(repr=False)
    md5: str
    expires_at: int | None = None
    via: str = "files"  # "files" (POST /files) or "uploads" (the Uploads API)
    seq: int = 0
    #: answers (the create answer, each retrieve) that still show "pending" before ``final_status``
    pending_reads: int = 0
    final_status: str = "processed"
    status_details: str | None = None

    @property
    def bytes(self) -> int:
        return len(self.content)

    @property
    def status(self) -> str:
        return "pending" if self.pending_reads > 0 else self.final_status

    def read(self) -> dict[str, Any]:
        """The JSON of one create or retrieve answer; counts down ``pending_reads``."""
        data = self.to_json()
        if self.pending_reads > 0:
            self.pending_reads -= 1
        return data

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": self.status,
            "status_details": self.status_details if self.status == "error" else None,
        }


@dataclass
class StoredPart:
    id: str
    upload_id: str
    created_at: int
    data: bytes = field(repr=False)
    md5: str


@dataclass
class StoredUpload:
    id: str
    filename: str
    purpose: str
    bytes: int
    mime_type: str
    created_at: int
    expires_at: int
    status: str = "pending"  # pending, completed, cancelled, expired
    parts: dict[str, StoredPart] = field(default_factory=dict)
    file_id: str | None = None
    file_expires_after: int | None = None
    complete_md5: str | None = None

    def to_json(self, file: StoredFile | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "upload",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": self.status,
            "file": file.read() if file is not None else None,
        }


@dataclass
class RecordedRequest:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    route: str | None
    headers: dict[str, str]  # names lower-cased
    request_id: str
    body_bytes: int = 0
    body_md5: str = hashlib.md5(b"", usedforsecurity=False).hexdigest()
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    #: file fields of a multipart body: name -> (filename, size, md5)
    files: dict[str, tuple[str | None, int, str]] = field(default_factory=dict)
    status: int | None = None  # None when the connection was dropped
    fault: str | None = None


@dataclass
class Fault:
    """Makes requests to ``route`` misbehave: after ``skip`` requests pass, the next ``times`` requests either
    answer ``status`` (with ``headers``) or, with ``drop``, lose their connection in the middle of the request."""

    route: str
    status: int = 500
    times: int = 1
    skip: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)
    drop: bool = False
    message: str | None = None
    error_type: str | None = None
    code: str | None = None
    inner_code: str | None = None  # Azure mode: ``innererror.code``
    hits: int = 0

    def take(self) -> bool:
        """Whether this request is hit (called under the server's lock)."""
        if self.skip > 0:
            self.skip -= 1
            return False
        if self.hits >= self.times:
            return False
        self.hits += 1
        return True


class ApiError(Exception):
    """An error answer in OpenAI's format."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        inner_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})
        self.inner_code = inner_code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.error_type, "param": self.param, "code": self.code}}

    def azure_body(self) -> dict[str, Any]:
        """Azure's error body: ``code`` from Azure's ``ErrorCode`` values, ``target`` for the parameter."""
        code = self.code if self.code in AZURE_CODES else AZURE_ERROR_CODES.get(self.status, "invalidPayload")
        error: dict[str, Any] = {"code": code, "message": self.message}
        if self.param:
            error["target"] = self.param
        if self.inner_code:
            error["innererror"] = {"code": self.inner_code}
        return {"error": error}


class _Dropped(Exception):
    """Internal: the connection was dropped on purpose (or by the client)."""


@dataclass
class _Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def _json_answer(data: Any, status: int = 200) -> _Answer:
    return _Answer(status=status, body=json.dumps(data).encode())


def _mask_key(key: str) -> str:
    # OpenAI shows a masked key in its 401 message ("sk-abc*****wxyz"); never the whole key.
    if len(key) <= 8:
        return "*" * len(key)
    return key[:3] + "*" * (len(key) - 7) + key[-4:]


# --- the server ----------------------------------------------------------------------------------------------


class OpenAILikeServer:
    """An in-memory OpenAI Files/Uploads server on ``127.0.0.1`` and an ephemeral port, run in a thread."""

    def __init__(
        self,
        *,
        api_key: str = "sk-test-key-0123456789",
        base_path: str = "/v1",
        max_file_bytes: int = 512 * MB,
        max_upload_bytes: int = 8 * GB,
        max_part_bytes: int = 64 * MB,
        upload_ttl: int = 3600,
        download_forbidden_purposes: tuple[str, ...] = (),
        flavor: str = "openai",
        pending_reads: int = 0,
        processing_error: str | None = None,
        require_bom: bool = False,
    ) -> None:
        if flavor not in ("openai", "azure", "azure-v1"):
            raise ValueError(f"flavor must be 'openai', 'azure' or 'azure-v1', not {flavor!r}")
        self.flavor = flavor
        self.azure = flavor != "openai"
        self.purposes = {"openai": PURPOSES, "azure": AZURE_PURPOSES, "azure-v1": AZURE_V1_PURPOSES}[flavor]
        #: how many create/retrieve answers show a new file as "pending" before it is "processed"
        self.pending_reads = pending_reads
        #: when set, files end in status "error" with these status details instead of "processed"
        self.processing_error = processing_error
        self.require_bom = require_bom
        #: Azure mode: bearer tokens accepted besides the api-key (Entra ID tests add the token they issue)
        self.bearer_tokens: set[str] = set()
        self.api_key = api_key
        #: more keys the server accepts (tests of many callers with keys of their own)
        self.other_api_keys: set[str] = set()
        self.base_path = base_path.rstrip("/")
        self.max_file_bytes = max_file_bytes
        self.max_upload_bytes = max_upload_bytes
        self.max_part_bytes = max_part_bytes
        self.upload_ttl = upload_ttl
        self.download_forbidden_purposes = download_forbidden_purposes
        self._routes = [
            (name, method, re.compile(re.escape(self.base_path) + pattern + r"/?\Z"))
            for name, (method, pattern) in ROUTES.items()
        ]
        self._lock = threading.Lock()
        self._gate = threading.Condition(self._lock)
        self._seq = itertools.count(1)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        #: server-side sockets not closed yet (a connection is counted until its socket is closed)
        self._open_sockets = 0
        self._idle = threading.Condition(self._lock)
        self.reset()

    @classmethod
    def azure(cls, *, v1: bool = False, api_key: str = "azure-test-key-0123456789", **kwargs: Any) -> OpenAILikeServer:
        """An Azure OpenAI server (see the module docstring); ``v1=True`` serves ``/openai/v1`` (no Uploads API)."""
        kwargs.setdefault("base_path", "/openai/v1" if v1 else "/openai")
        kwargs.setdefault("max_upload_bytes", 9 * GB)
        kwargs.setdefault("upload_ttl", 2 * 3600)
        kwargs.setdefault("pending_reads", 1)
        return cls(api_key=api_key, flavor="azure-v1" if v1 else "azure", **kwargs)

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> OpenAILikeServer:
        httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        httpd.app = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="openai-like-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        with self._lock:
            self._gate_open = True
            self._gate.notify_all()
            conns = list(self._connections)
        for conn in conns:  # wake handler threads idling on kept-alive connections
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until every connection the server accepted is closed on its side (each handler thread closes its
        socket once the client closed its end); ``False`` if some are still open after ``timeout``."""
        with self._idle:
            return self._idle.wait_for(lambda: self._open_sockets == 0, timeout)

    def __enter__(self) -> OpenAILikeServer:
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

    @property
    def url(self) -> str:
        """The API base, e.g. ``http://127.0.0.1:50123/v1``."""
        return self.origin + self.base_path

    # -- state and test controls -----------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every file, upload, recorded request and fault."""
        with self._lock:
            self.files: dict[str, StoredFile] = {}
            self.uploads: dict[str, StoredUpload] = {}
            self.requests: list[RecordedRequest] = []
            self.faults: list[Fault] = []
            self.errors: list[BaseException] = []
            self.parts_in_flight = 0
            self.peak_parts_in_flight = 0
            self._gate_size = 0
            self._gate_timeout = 10.0
            self._gate_open = True
            self.gate_timed_out = False

    def fail(
        self,
        route: str,
        status: int = 500,
        *,
        times: int = 1,
        skip: int = 0,
        headers: Mapping[str, str] | None = None,
        message: str | None = None,
        error_type: str | None = None,
        code: str | None = None,
        inner_code: str | None = None,
    ) -> Fault:
        """Make the next ``times`` requests to ``route`` (after ``skip`` that pass) answer ``status``.

        ``route`` is a name from :data:`ROUTES` (``"uploads.parts"``, ``"files.create"``...); ``headers`` are
        added to the answer (``{"Retry-After": "2"}``).  The request body is read in full before answering, and
        a fault answers before the API key is checked, as a gateway in front of the API would.
        """
        return self._add_fault(
            Fault(
                route=route,
                status=status,
                times=times,
                skip=skip,
                headers=dict(headers or {}),
                message=message,
                error_type=error_type,
                code=code,
                inner_code=inner_code,
            )
        )

    def drop(self, route: str, *, times: int = 1, skip: int = 0) -> Fault:
        """Make the next ``times`` requests to ``route`` lose their connection half way through the request body
        (or right after the headers when there is no body), without an answer."""
        return self._add_fault(Fault(route=route, times=times, skip=skip, drop=True))

    def _add_fault(self, fault: Fault) -> Fault:
        if fault.route not in ROUTES:
            raise ValueError(f"unknown route {fault.route!r}; routes: {', '.join(ROUTES)}")
        with self._lock:
            self.faults.append(fault)
        return fault

    def hold_parts(self, until: int, *, timeout: float = 10.0) -> None:
        """Hold each part request (after its body arrived) until ``until`` part requests are in flight at once.

        Once that happened the gate stays open.  If it does not happen within ``timeout`` seconds (the client
        sends parts one at a time), requests go on and :attr:`gate_timed_out` is set, so a test fails on its
        assertion instead of hanging.
        """
        with self._lock:
            self._gate_size = until
            self._gate_timeout = timeout
            self._gate_open = until <= 1

    def requests_to(self, route: str) -> list[RecordedRequest]:
        """The recorded requests that matched ``route``, in arrival order."""
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; routes: {', '.join(ROUTES)}")
        with self._lock:
            return [r for r in self.requests if r.route == route]

    # -- request handling (called from handler threads) ------------------------------------------------------

    def _match(self, method: str, path: str) -> tuple[str | None, dict[str, str]]:
        for name, route_method, pattern in self._routes:
            m = pattern.match(path)
            if m and route_method == method:
                return name, {k: unquote(v) for k, v in m.groupdict().items()}
        return None, {}

    def handle(self, h: _Handler) -> None:
        request_id = "req_" + secrets.token_hex(16)
        split = urlsplit(h.path)
        route, params = self._match(h.command, split.path)
        if self.flavor == "azure-v1" and route is not None and route.startswith("uploads."):
            route, params = None, {}  # the v1 API has no Uploads API
        headers = {k.lower(): v for k, v in h.headers.items()}
        rec = RecordedRequest(
            method=h.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            route=route,
            headers=headers,
            request_id=request_id,
        )
        is_part = route == "uploads.parts"
        with self._lock:
            self.requests.append(rec)
            fault = next((f for f in self.faults if f.route == route and f.take()), None)
            if is_part:
                self.parts_in_flight += 1
                self.peak_parts_in_flight = max(self.peak_parts_in_flight, self.parts_in_flight)
                if self.parts_in_flight >= self._gate_size:
                    self._gate_open = True
                    self._gate.notify_all()
        try:
            if fault is not None and fault.drop:
                rec.fault = "drop"
                self._drop(h, headers)
                return
            body = self._read_body(h, headers)
            rec.body_bytes = len(body)
            rec.body_md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
            if is_part:
                self._wait_at_gate()
            try:
                if fault is not None:
                    rec.fault = f"status {fault.status}"
                    raise self._fault_error(fault)
                if route is None:
                    raise ApiError(404, f"Invalid URL ({h.command} {split.path})")
                if self.flavor == "azure":
                    self._check_api_version(rec)
                self._authenticate(headers)
                answer = self._dispatch(route, params, rec, headers, body)
            except ApiError as err:
                answer = _Answer(status=err.status, body=self._error_body(err), headers=err.headers)
            rec.status = answer.status
            self._write(h, answer, request_id)
        finally:
            if is_part:
                with self._lock:
                    self.parts_in_flight -= 1

    def _wait_at_gate(self) -> None:
        with self._gate:
            if not self._gate.wait_for(lambda: self._gate_open, timeout=self._gate_timeout):
                self.gate_timed_out = True
                self._gate_open = True
                self._gate.notify_all()

    @staticmethod
    def _fault_error(fault: Fault) -> ApiError:
        message, error_type, code = _DEFAULT_ERRORS.get(fault.status, ("Injected error.", "server_error", None))
        return ApiError(
            fault.status,
            fault.message or message,
            error_type=fault.error_type or error_type,
            code=fault.code or code,
            headers=fault.headers,
            inner_code=fault.inner_code,
        )

    def _error_body(self, err: ApiError) -> bytes:
        return json.dumps(err.azure_body() if self.azure else err.body()).encode()

    @staticmethod
    def _check_api_version(rec: RecordedRequest) -> None:
        version = (rec.query.get("api-version") or [""])[-1]
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", version):
            raise ApiError(404, "Resource not found", code="notFound")

    def _authenticate_azure(self, headers: Mapping[str, str]) -> None:
        key = headers.get("api-key", "")
        if key:
            if secrets.compare_digest(key.encode(), self.api_key.encode()):
                return
            raise ApiError(
                401,
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid "
                "key for an active subscription and use a correct regional API endpoint for your resource.",
            )
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip() in self.bearer_tokens:
            return
        raise ApiError(
            401,
            "Access token is missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), or have "
            "expired.",
        )

    def _authenticate(self, headers: Mapping[str, str]) -> None:
        if self.azure:
            self._authenticate_azure(headers)
            return
        auth = headers.get("authorization", "")
        scheme, _, key = auth.partition(" ")
        if not auth or scheme.lower() != "bearer" or not key.strip():
            raise ApiError(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        key = key.strip()
        if key in self.other_api_keys:
            return
        if not secrets.compare_digest(key.encode(), self.api_key.encode()):
            raise ApiError(
                401,
                f"Incorrect API key provided: {_mask_key(key)}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )

    # -- bodies ----------------------------------------------------------------------------------------------

    @staticmethod
    def _read_exactly(h: _Handler, n: int) -> bytes:
        data = h.rfile.read(n)
        if len(data) != n:
            raise _Dropped(f"the client sent {len(data)} of {n} bytes")
        return data

    def _read_body(self, h: _Handler, headers: Mapping[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size_line = h.rfile.readline(1024)
                if not size_line:
                    raise _Dropped("the client closed the connection inside a chunked body")
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while h.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self._read_exactly(h, size))
                self._read_exactly(h, 2)
        length = int(headers.get("content-length") or 0)
        return self._read_exactly(h, length) if length else b""

    def _drop(self, h: _Handler, headers: Mapping[str, str]) -> None:
        length = int(headers.get("content-length") or 0)
        if length > 1:
            h.rfile.read(length // 2)
        h.close_connection = True
        try:
            h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    @staticmethod
    def _form(headers: Mapping[str, str], body: bytes, rec: RecordedRequest) -> dict[str, tuple[str | None, bytes]]:
        """Parse a multipart/form-data body: name -> (filename or None, bytes)."""
        content_type = headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            raise ApiError(
                400, f"Invalid Content-Type header ({content_type or 'none'}), expected multipart/form-data."
            )
        head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        if not message.is_multipart():
            raise ApiError(400, "Could not parse multipart form data.")
        out: dict[str, tuple[str | None, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not isinstance(name, str):
                continue
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            filename = part.get_filename()
            out[name] = (filename, data)
            if filename is None:
                rec.form[name] = data.decode("utf-8", "replace")
            else:
                rec.files[name] = (filename, len(data), hashlib.md5(data, usedforsecurity=False).hexdigest())
        return out

    @staticmethod
    def _json_body(headers: Mapping[str, str], body: bytes, rec: RecordedRequest) -> dict[str, Any]:
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise ApiError(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
                "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid "
                "JSON.)",
            ) from None
        rec.json = data
        if not isinstance(data, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        return data

    # -- the API ---------------------------------------------------------------------------------------------

    def _dispatch(
        self, route: str, params: dict[str, str], rec: RecordedRequest, headers: Mapping[str, str], body: bytes
    ) -> _Answer:
        now = int(time.time())
        if route == "files.create":
            return self._files_create(rec, headers, body, now)
        if route == "files.list":
            return self._files_list(rec)
        if route == "files.retrieve":
            f = self._file(params["file_id"])
            with self._lock:
                return _json_answer(f.read())
        if route == "files.delete":
            with self._lock:
                self._file(params["file_id"])
                del self.files[params["file_id"]]
            return _json_answer({"id": params["file_id"], "object": "file", "deleted": True})
        if route == "files.content":
            f = self._file(params["file_id"])
            if f.purpose in self.download_forbidden_purposes:
                raise ApiError(400, f"Not allowed to download files of purpose: {f.purpose}")
            return _Answer(status=200, body=f.content, content_type="application/octet-stream")
        if route == "uploads.create":
            return self._uploads_create(rec, headers, body, now)
        if route == "uploads.parts":
            return self._uploads_part(params["upload_id"], rec, headers, body, now)
        if route == "uploads.complete":
            return self._uploads_complete(params["upload_id"], rec, headers, body, now)
        if route == "uploads.cancel":
            return self._uploads_cancel(params["upload_id"], now)
        raise ApiError(404, f"Invalid URL ({rec.method} {rec.path})")

    def _file(self, file_id: str) -> StoredFile:
        f = self.files.get(file_id)
        if f is None:
            raise ApiError(404, f"No such File object: {file_id}", param="id")
        return f

    def _check_purpose(self, purpose: Any) -> str:
        if not isinstance(purpose, str) or not purpose:
            raise ApiError(
                400, "Missing required parameter: 'purpose'.", param="purpose", code="missing_required_parameter"
            )
        if purpose not in self.purposes:
            raise ApiError(
                400,
                f"'{purpose}' is not one of {list(self.purposes)} - 'purpose'",
                param="purpose",
                code="invalid_value",
            )
        return purpose

    @staticmethod
    def _expires_after(anchor: Any, seconds: Any, param: str) -> int | None:
        if anchor is None and seconds is None:
            return None
        if anchor != "created_at":
            raise ApiError(400, f"Invalid value for '{param}.anchor': expected 'created_at'.", param=param)
        try:
            value = int(seconds)
        except (TypeError, ValueError):
            raise ApiError(400, f"Invalid value for '{param}.seconds': expected an integer.", param=param) from None
        if not 3600 <= value <= 2592000:
            raise ApiError(400, f"'{param}.seconds' must be between 3600 (1 hour) and 2592000 (30 days).", param=param)
        return value

    def _files_create(self, rec: RecordedRequest, headers: Mapping[str, str], body: bytes, now: int) -> _Answer:
        form = self._form(headers, body, rec)
        purpose = self._check_purpose(form["purpose"][1].decode("utf-8", "replace") if "purpose" in form else None)
        if "file" not in form or form["file"][0] is None:
            raise ApiError(400, "Missing required parameter: 'file'.", param="file", code="missing_required_parameter")
        filename, content = form["file"]
        if not content:
            raise ApiError(400, "The file is empty.", param="file")
        if len(content) > self.max_file_bytes:
            raise ApiError(
                400, f"File is too large: {len(content)} bytes; the maximum is {self.max_file_bytes}.", param="file"
            )
        anchor = form.get("expires_after[anchor]")
        seconds = form.get("expires_after[seconds]")
        ttl = self._expires_after(
            anchor[1].decode() if anchor else None, seconds[1].decode() if seconds else None, "expires_after"
        )
        self._check_bom(purpose, content)
        f = self._new_file(filename or "file", purpose, content, now, ttl, via="files")
        with self._lock:
            data = f.read()
        if self.azure:
            answer = _json_answer(data, 201)
            answer.headers["Location"] = f"{self.url}/files/{f.id}"
            return answer
        return _json_answer(data)

    def _check_bom(self, purpose: str, content: bytes) -> None:
        if self.require_bom and purpose == "fine-tune" and not content.startswith(UTF8_BOM):
            raise ApiError(
                400,
                "The fine-tuning file must be encoded in UTF-8 with a byte-order mark (BOM).",
                param="file",
                inner_code="invalidFileEncoding",
            )

    def _new_file(self, filename: str, purpose: str, content: bytes, now: int, ttl: int | None, via: str) -> StoredFile:
        f = StoredFile(
            id="file-" + secrets.token_hex(12),
            filename=filename,
            purpose=purpose,
            created_at=now,
            content=content,
            md5=hashlib.md5(content, usedforsecurity=False).hexdigest(),
            expires_at=now + ttl if ttl is not None else None,
            via=via,
            seq=next(self._seq),
            pending_reads=self.pending_reads,
            final_status="error" if self.processing_error else "processed",
            status_details=self.processing_error,
        )
        with self._lock:
            self.files[f.id] = f
        return f

    def _files_list(self, rec: RecordedRequest) -> _Answer:
        q = {k: v[-1] for k, v in rec.query.items()}
        try:
            limit = int(q.get("limit", "10000"))
        except ValueError:
            raise ApiError(400, "Invalid 'limit': expected an integer.", param="limit") from None
        if not 1 <= limit <= 10000:
            raise ApiError(400, "Invalid 'limit': must be between 1 and 10000.", param="limit")
        order = q.get("order", "desc")
        if order not in ("asc", "desc"):
            raise ApiError(400, f"Invalid 'order': '{order}' is not one of ['asc', 'desc'].", param="order")
        purpose = q.get("purpose")
        with self._lock:
            items = sorted(self.files.values(), key=lambda f: (f.created_at, f.seq), reverse=order == "desc")
        if purpose:
            items = [f for f in items if f.purpose == purpose]
        after = q.get("after")
        if after:
            ids = [f.id for f in items]
            if after not in ids:
                raise ApiError(400, f"No such File object: {after}", param="after")
            items = items[ids.index(after) + 1 :]
        page = items[:limit]
        return _json_answer(
            {
                "object": "list",
                "data": [f.to_json() for f in page],
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
                "has_more": len(items) > limit,
            }
        )

    def _upload(self, upload_id: str, now: int) -> StoredUpload:
        u = self.uploads.get(upload_id)
        if u is None:
            raise ApiError(404, f"No such Upload object: {upload_id}", param="upload_id")
        if u.status == "pending" and now > u.expires_at:
            u.status = "expired"
        return u

    def _uploads_create(self, rec: RecordedRequest, headers: Mapping[str, str], body: bytes, now: int) -> _Answer:
        data = self._json_body(headers, body, rec)
        for name in ("bytes", "filename", "mime_type", "purpose"):
            if data.get(name) in (None, ""):
                raise ApiError(
                    400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
                )
        purpose = self._check_purpose(data["purpose"])
        size = data["bytes"]
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise ApiError(400, "Invalid 'bytes': expected a positive integer.", param="bytes")
        if size > self.max_upload_bytes:
            raise ApiError(
                400, f"Upload size {size} exceeds the maximum of {self.max_upload_bytes} bytes.", param="bytes"
            )
        if not isinstance(data["filename"], str) or not isinstance(data["mime_type"], str):
            raise ApiError(400, "Invalid 'filename' or 'mime_type': expected a string.")
        expires = data.get("expires_after")
        ttl = None
        if expires is not None:
            if not isinstance(expires, dict):
                raise ApiError(400, "Invalid 'expires_after': expected an object.", param="expires_after")
            ttl = self._expires_after(expires.get("anchor"), expires.get("seconds"), "expires_after")
        u = StoredUpload(
            id="upload_" + secrets.token_hex(12),
            filename=data["filename"],
            purpose=purpose,
            bytes=size,
            mime_type=data["mime_type"],
            created_at=now,
            expires_at=now + self.upload_ttl,
            file_expires_after=ttl,
        )
        with self._lock:
            self.uploads[u.id] = u
        return _json_answer(u.to_json())

    def _uploads_part(
        self, upload_id: str, rec: RecordedRequest, headers: Mapping[str, str], body: bytes, now: int
    ) -> _Answer:
        u = self._upload(upload_id, now)
        if u.status != "pending":
            raise ApiError(400, f"Upload {upload_id} is already {u.status}; no parts can be added.")
        form = self._form(headers, body, rec)
        if "data" not in form:
            raise ApiError(400, "Missing required parameter: 'data'.", param="data", code="missing_required_parameter")
        data = form["data"][1]
        if not data:
            raise ApiError(400, "The part is empty.", param="data")
        if len(data) > self.max_part_bytes:
            raise ApiError(
                400, f"Part is too large: {len(data)} bytes; the maximum is {self.max_part_bytes}.", param="data"
            )
        part = StoredPart(
            id="part_" + secrets.token_hex(12),
            upload_id=upload_id,
            created_at=now,
            data=data,
            md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        )
        with self._lock:
            if u.status != "pending":
                raise ApiError(400, f"Upload {upload_id} is already {u.status}; no parts can be added.")
            u.parts[part.id] = part
        answer = {"id": part.id, "object": "upload.part", "created_at": now, "upload_id": upload_id}
        if self.azure:
            answer["azure_block_id"] = secrets.token_urlsafe(24)
        return _json_answer(answer)

    def _uploads_complete(
        self, upload_id: str, rec: RecordedRequest, headers: Mapping[str, str], body: bytes, now: int
    ) -> _Answer:
        data = self._json_body(headers, body, rec)
        u = self._upload(upload_id, now)
        if u.status != "pending":
            raise ApiError(400, f"Upload {upload_id} is already {u.status}.")
        part_ids = data.get("part_ids")
        if not isinstance(part_ids, list) or not all(isinstance(p, str) for p in part_ids):
            raise ApiError(
                400, "Missing required parameter: 'part_ids'.", param="part_ids", code="missing_required_parameter"
            )
        if len(set(part_ids)) != len(part_ids):
            raise ApiError(400, "Each part may be used only once in 'part_ids'.", param="part_ids")
        unknown = [p for p in part_ids if p not in u.parts]
        if unknown:
            raise ApiError(400, f"No such Part object(s) in upload {upload_id}: {', '.join(unknown)}", param="part_ids")
        total = sum(len(u.parts[p].data) for p in part_ids)
        if total != u.bytes:
            raise ApiError(
                400,
                f"The number of bytes uploaded ({total}) does not match the number of bytes specified when the "
                f"Upload was created ({u.bytes}).",
                param="part_ids",
            )
        content = b"".join(u.parts[p].data for p in part_ids)
        md5 = hashlib.md5(content, usedforsecurity=False).hexdigest()
        sent_md5 = data.get("md5")
        if sent_md5 is not None:
            if not isinstance(sent_md5, str) or sent_md5.lower() != md5:
                raise ApiError(
                    400, f"The md5 checksum {sent_md5!s} does not match the uploaded bytes ({md5}).", param="md5"
                )
            u.complete_md5 = sent_md5
        self._check_bom(u.purpose, content)
        f = self._new_file(u.filename, u.purpose, content, now, u.file_expires_after, via="uploads")
        with self._lock:
            u.status = "completed"
            u.file_id = f.id
            u.parts.clear()
        return _json_answer(u.to_json(f))

    def _uploads_cancel(self, upload_id: str, now: int) -> _Answer:
        u = self._upload(upload_id, now)
        with self._lock:
            if u.status == "completed":
                raise ApiError(400, f"Upload {upload_id} is already completed and cannot be cancelled.")
            u.status = "cancelled"
            u.parts.clear()
        return _json_answer(u.to_json())

    # -- writing ---------------------------------------------------------------------------------------------

    @staticmethod
    def _write(h: _Handler, answer: _Answer, request_id: str) -> None:
        """Headers and body in one write (with TCP_NODELAY on the socket, no Nagle delay either)."""
        try:
            reason = HTTPStatus(answer.status).phrase
        except ValueError:
            reason = "Unknown"
        lines = [
            f"HTTP/1.1 {answer.status} {reason}",
            f"Date: {h.date_time_string()}",
            f"Content-Type: {answer.content_type}",
            f"Content-Length: {len(answer.body)}",
            *(
                (f"apim-request-id: {request_id}", "x-ms-region: Sweden Central")
                if h.server.app.azure
                else (f"x-request-id: {request_id}", "openai-version: 2020-10-01")
            ),
            *(f"{k}: {v}" for k, v in answer.headers.items()),
        ]
        if h.close_connection:
            lines.append("Connection: close")
        h.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + answer.body)


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False
    app: OpenAILikeServer

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.app._lock:
            self.app._open_sockets += 1
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._closed_one()
            raise

    def shutdown_request(self, request: Any) -> None:
        try:
            super().shutdown_request(request)
        finally:
            self._closed_one()

    def _closed_one(self) -> None:
        with self.app._idle:
            self.app._open_sockets -= 1
            self.app._idle.notify_all()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that disconnects is not a server error; anything else is kept for the test to see
        import sys

        exc = sys.exc_info()[1]
        if exc is not None and not isinstance(exc, (_Dropped, ConnectionError, TimeoutError)):
            self.app.errors.append(exc)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "openai-like-test-server"
    sys_version = ""
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.app._lock:
            self.server.app._connections.add(self.connection)

    def finish(self) -> None:
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
        except (_Dropped, ConnectionError, TimeoutError):
            self.close_connection = True

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # malformed requests (bad request line, oversized headers) get OpenAI's error body too
        self.close_connection = True
        err = ApiError(code, message or HTTPStatus(code).phrase)
        answer = _Answer(status=code, body=self.server.app._error_body(err))
        try:
            OpenAILikeServer._write(self, answer, "req_" + secrets.token_hex(16))
        except OSError:
            pass
