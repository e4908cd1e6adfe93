"""A small, stateful Together AI Files server for tests (stdlib only), written from Together's documents.

Each behaviour names where it comes from:

* [files] ``togethercomputer/openapi`` ``openapi.yaml`` at 090263aa (also ``specs/together-files.json``):
  ``POST /v1/files/upload`` (multipart: ``purpose`` from ``FilePurpose``, ``file_name`` required, ``file_type``
  from ``FileType``, ``file`` required; 400 ``ErrorData`` otherwise), ``GET /v1/files`` (``FileList``: every file
  in ``data``), ``GET`` / ``DELETE /v1/files/{id}`` (``FileResponse`` / ``FileDeleteResponse``),
  ``GET /v1/files/{id}/content``; ``Authorization: Bearer`` required (``bearerAuth``; 401).
* [multipart] the same repository at b4dc3a8f (``specs/together-files-multipart.json``):
  ``POST /v1/files/multipart/initiate`` (``filename``, ``file_size``, ``num_parts`` 1 to 250, ``purpose``,
  ``file_type``; answered with ``upload_id``, ``file_id``, ``parts[]`` of ``{PartNumber, URL, Headers}``),
  ``/complete`` (``parts[]`` of ``{PartNumber, ETag}``; answered with a ``FileResponse``), ``/abort``.
* [storage] the presigned part URLs go to S3-style object storage (the contract: "ETag returned from S3 part
  upload"): each URL is SigV4-presigned (``X-Amz-Date``, ``X-Amz-Expires``, ``X-Amz-Signature``; an expired or
  altered URL is refused with 403 ``AccessDenied``, as S3 does), a part's ETag is the quoted MD5 of its bytes, and
  every part but the last must have 5 MiB at least (S3's ``EntityTooSmall`` at complete).

What arrived is kept for assertions (:attr:`requests`, :attr:`files`, :attr:`uploads`).  :meth:`hold_parts`
makes part uploads after the first ``n`` wait (a test kills the client meanwhile); :meth:`fail` answers the next
requests to a route with an error.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import http.server
import json
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MiB = 1024 * 1024
PURPOSES = ("fine-tune", "eval", "eval-sample", "eval-output", "eval-summary", "batch-generated", "batch-api")
FILE_TYPES = ("csv", "jsonl", "parquet")
MIN_PART = 5 * MiB


class ApiError(Exception):
    def __init__(self, status: int, message: str, etype: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.etype = status, message, etype


@dataclass
class Stored:
    id: str
    filename: str
    purpose: str
    file_type: str
    content: bytes = field(repr=False)
    created_at: int = 0

    def to_json(self) -> dict[str, Any]:
        # FileResponse [files]: FileType and Processed are required, LineCount is in the multipart contract's copy
        return {
            "id": self.id,
            "object": "file",
            "created_at": self.created_at,
            "filename": self.filename,
            "bytes": len(self.content),
            "purpose": self.purpose,
            "FileType": self.file_type,
            "Processed": True,
            "LineCount": self.content.count(b"\n"),
        }


@dataclass
class Upload:
    upload_id: str
    file_id: str
    filename: str
    purpose: str
    file_type: str
    size: int
    num_parts: int
    signatures: dict[int, str]
    issued_at: float
    parts: dict[int, bytes] = field(default_factory=dict, repr=False)


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    #: the client stopped before its ``Content-Length``: the request never finished and nothing was done with it
    cut: bool = False


class TogetherLikeServer:
    """Together's Files API on ``127.0.0.1`` (``url`` is the ``/v1`` base) with S3-like part storage beside it."""

    def __init__(self, *, api_key: str = "together-test-key-0123456789", url_ttl: int = 3600) -> None:
        self.api_key = api_key
        #: seconds each presigned part URL lives (X-Amz-Expires)
        self.url_ttl = url_ttl
        self.files: dict[str, Stored] = {}
        self.uploads: dict[str, Upload] = {}
        self.requests: list[Recorded] = []
        self.errors: list[BaseException] = []
        self.faults: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        self._held = threading.Event()
        self._hold_after: int | None = None
        self._parts_seen = 0
        #: the next part is stored with one byte changed (and answered with the MD5 of what was stored)
        self.corrupt_next_part = False
        self._httpd: http.server.ThreadingHTTPServer | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def __enter__(self) -> TogetherLikeServer:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _go(self) -> None:
                server._handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = _go

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                import sys

                exc = sys.exc_info()[1]
                if exc is not None and not isinstance(exc, (ConnectionError, TimeoutError, OSError)):
                    server.errors.append(exc)

        self._httpd = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._held.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def origin(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def url(self) -> str:
        return self.origin + "/v1"

    # -- test controls -----------------------------------------------------------------------------------------

    def hold_parts(self, after: int) -> None:
        """Part uploads after the first ``after`` wait (their bytes read, unanswered) until :meth:`release`."""
        self._hold_after, self._parts_seen = after, 0
        self._held.clear()

    def release(self) -> None:
        """Let held part uploads go on (they are answered 503), and hold no more."""
        self._hold_after = None
        self._held.set()

    def parts_arrived(self) -> int:
        with self._lock:
            return self._parts_seen

    def fail(self, route: str, status: int, times: int = 1) -> None:
        """Answer the next ``times`` requests to ``route`` (``initiate``, ``complete``, ``upload``, ``part``)
        with ``status``."""
        self.faults.setdefault(route, []).extend([status] * times)

    def requests_to(self, route: str) -> list[Recorded]:
        return [r for r in self.requests if _route(r.method, r.path)[0] == route]

    # -- handling ----------------------------------------------------------------------------------------------

    def _handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        split = urlsplit(h.path)
        headers = {k.lower(): v for k, v in h.headers.items()}
        rec = Recorded(h.command, split.path, dict(parse_qsl(split.query)), headers)
        with self._lock:
            self.requests.append(rec)
        body = h.rfile.read(int(headers.get("content-length") or 0))
        if len(body) < int(headers.get("content-length") or 0):
            # like any HTTP server: a body cut short is a request that never arrived, so nothing is stored
            rec.cut = True
            h.close_connection = True
            return
        route, args = _route(h.command, split.path)
        try:
            if self.faults.get(route):
                raise ApiError(self.faults[route].pop(0), "injected fault", "server_error")
            if route == "part":
                status, out_headers, payload, ctype = self._part(args, rec, body)
            else:
                if headers.get("authorization") != f"Bearer {self.api_key}":
                    raise ApiError(401, "Invalid API key provided.", "invalid_api_key")
                status, out_headers, payload, ctype = self._api(route, args, rec, headers, body)
        except ApiError as exc:
            status, out_headers, ctype = exc.status, {}, "application/json"
            payload = json.dumps({"error": {"message": exc.message, "type": exc.etype}}).encode()
        except _StorageError as exc:
            status, out_headers, ctype = exc.status, {}, "application/xml"
            payload = f"<Error><Code>{exc.code}</Code><Message>{exc.message}</Message></Error>".encode()
        rec.status = status
        head = [f"HTTP/1.1 {status} X", f"Content-Type: {ctype}", f"Content-Length: {len(payload)}"]
        head += [f"{k}: {v}" for k, v in out_headers.items()]
        try:
            h.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        except OSError:
            pass

    def _api(
        self, route: str | None, args: dict[str, str], rec: Recorded, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes, str]:
        if route == "upload":
            return _ok(self._upload(rec, headers, body).to_json())
        if route in ("initiate", "complete", "abort"):
            rec.json = _json(body)
            return _ok(getattr(self, f"_{route}")(rec.json))
        if route == "list":
            with self._lock:
                return _ok({"data": [f.to_json() for f in self.files.values()]})
        stored = self.files.get(args.get("id", ""))
        if stored is None:
            raise ApiError(404, f"File {args.get('id')} not found", "not_found")
        if route == "get":
            return _ok(stored.to_json())
        if route == "delete":
            with self._lock:
                self.files.pop(stored.id, None)
            return _ok({"id": stored.id, "deleted": True})
        if route == "content":
            return 200, {}, stored.content, "text/plain"
        raise ApiError(404, f"no route {rec.method} {rec.path}")

    def _new_file(self, filename: str, purpose: str, file_type: str, content: bytes, file_id: str) -> Stored:
        stored = Stored(file_id, filename, purpose, file_type, content, int(time.time()))
        with self._lock:
            self.files[file_id] = stored
        return stored

    def _upload(self, rec: Recorded, headers: dict[str, str], body: bytes) -> Stored:
        form = _form(headers.get("content-type", ""), body)
        rec.form = {k: v[1].decode() for k, v in form.items() if v[0] is None}
        for name in ("purpose", "file_name", "file"):  # [files] required: purpose, file_name, file
            if name not in form:
                raise ApiError(400, f"missing required field {name}")
        purpose, file_type = rec.form["purpose"], rec.form.get("file_type", "jsonl")
        if purpose not in PURPOSES or file_type not in FILE_TYPES:
            raise ApiError(400, "invalid purpose or file_type")
        return self._new_file(rec.form["file_name"], purpose, file_type, form["file"][1], f"file-{uuid.uuid4()}")

    def _initiate(self, data: dict[str, Any]) -> dict[str, Any]:
        for name in ("filename", "file_size", "num_parts", "purpose", "file_type"):  # [multipart] all required
            if name not in data:
                raise ApiError(400, f"missing required field {name}")
        n = data["num_parts"]
        if not isinstance(n, int) or not 1 <= n <= 250 or data["purpose"] not in PURPOSES:
            raise ApiError(400, "num_parts must be 1 to 250, purpose one of FilePurpose")
        up = Upload(
            upload_id=f"upload-{secrets.token_hex(8)}",
            file_id=f"file-{uuid.uuid4()}",
            filename=data["filename"],
            purpose=data["purpose"],
            file_type=data["file_type"],
            size=int(data["file_size"]),
            num_parts=n,
            signatures={i: secrets.token_hex(32) for i in range(1, n + 1)},
            issued_at=time.time(),
        )
        with self._lock:
            self.uploads[up.upload_id] = up
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(up.issued_at))
        parts = [
            {
                "PartNumber": i,
                "URL": f"{self.origin}/storage/{up.upload_id}/{i}?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                f"&X-Amz-Credential=AKIATEST%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date={stamp}"
                f"&X-Amz-Expires={self.url_ttl}&X-Amz-SignedHeaders=host&X-Amz-Signature={sig}",
                "Headers": {},
            }
            for i, sig in up.signatures.items()
        ]
        return {"upload_id": up.upload_id, "file_id": up.file_id, "parts": parts}

    def _live(self, data: dict[str, Any]) -> Upload:
        up = self.uploads.get(str(data.get("upload_id")))
        if up is None or up.file_id != data.get("file_id"):
            raise ApiError(404, "no such upload", "not_found")
        return up

    def _complete(self, data: dict[str, Any]) -> dict[str, Any]:
        up = self._live(data)
        parts = data.get("parts")
        if not isinstance(parts, list) or [p.get("PartNumber") for p in parts] != list(range(1, up.num_parts + 1)):
            raise ApiError(400, "parts must list every part, in order")
        for p in parts:
            got = up.parts.get(p["PartNumber"])
            if got is None or p.get("ETag") != f'"{_md5(got)}"':
                raise ApiError(400, f"part {p['PartNumber']}: InvalidPart (missing or ETag mismatch)")
        sizes = [len(up.parts[i]) for i in range(1, up.num_parts + 1)]
        if any(s < MIN_PART for s in sizes[:-1]):
            raise ApiError(400, "EntityTooSmall: every part but the last needs 5 MiB")
        content = b"".join(up.parts[i] for i in range(1, up.num_parts + 1))
        if len(content) != up.size:
            raise ApiError(400, f"the parts hold {len(content)} bytes, not the {up.size} declared")
        with self._lock:
            self.uploads.pop(up.upload_id, None)
        return self._new_file(up.filename, up.purpose, up.file_type, content, up.file_id).to_json()

    def _abort(self, data: dict[str, Any]) -> dict[str, Any]:
        up = self._live(data)
        with self._lock:
            self.uploads.pop(up.upload_id, None)
        return {"upload_id": up.upload_id, "file_id": up.file_id}

    def _part(self, args: dict[str, str], rec: Recorded, body: bytes) -> tuple[int, dict[str, str], bytes, str]:
        up = self.uploads.get(args["upload"])
        number = int(args["n"])
        if up is None or rec.query.get("X-Amz-Signature") != up.signatures.get(number):
            raise _StorageError(403, "SignatureDoesNotMatch", "The request signature we calculated does not match")
        if time.time() > up.issued_at + self.url_ttl:
            raise _StorageError(403, "AccessDenied", "Request has expired")
        if "authorization" in rec.headers:
            raise _StorageError(400, "InvalidArgument", "Only one auth mechanism allowed")
        with self._lock:
            self._parts_seen += 1
            hold = self._hold_after is not None and self._parts_seen > self._hold_after
        if hold:
            self._held.wait(30)
            raise _StorageError(503, "SlowDown", "held by the test")
        with self._lock:
            if self.corrupt_next_part and body:
                self.corrupt_next_part = False
                body = bytes([body[0] ^ 1]) + body[1:]
            up.parts[number] = body
        return 200, {"ETag": f'"{_md5(body)}"'}, b"", "application/xml"


class _StorageError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


_ROUTES = [
    ("upload", "POST", r"/v1/files/upload"),
    ("initiate", "POST", r"/v1/files/multipart/initiate"),
    ("complete", "POST", r"/v1/files/multipart/complete"),
    ("abort", "POST", r"/v1/files/multipart/abort"),
    ("list", "GET", r"/v1/files"),
    ("content", "GET", r"/v1/files/(?P<id>[^/]+)/content"),
    ("get", "GET", r"/v1/files/(?P<id>[^/]+)"),
    ("delete", "DELETE", r"/v1/files/(?P<id>[^/]+)"),
    ("part", "PUT", r"/storage/(?P<upload>[^/]+)/(?P<n>\d+)"),
]


def _route(method: str, path: str) -> tuple[str | None, dict[str, str]]:
    for name, m, pattern in _ROUTES:
        found = re.fullmatch(pattern, path)
        if found and m == method:
            return name, found.groupdict()
    return None, {}


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _ok(data: Any) -> tuple[int, dict[str, str], bytes, str]:
    return 200, {}, json.dumps(data).encode(), "application/json"


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        raise ApiError(400, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body is not a JSON object")
    return data


def _form(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    if not content_type.startswith("multipart/form-data"):
        raise ApiError(400, "expected multipart/form-data")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if message.defects:  # e.g. no closing boundary: the form is not whole
        raise ApiError(400, f"malformed multipart body: {message.defects[0].__class__.__name__}")
    out: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str):
            out[name] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
    return out
