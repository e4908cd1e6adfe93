"""A small, stateful Fireworks datasets server for tests (stdlib only), written from Fireworks' Gateway REST API
reference (datasets operations, 4.259.0; ``:upload`` from gateway-extra; copied in ``specs/fireworks-files.json``).

* ``POST /v1/accounts/{account}/datasets`` (``datasetId`` and ``dataset`` required; ``ALREADY_EXISTS`` 409 for an
  id in use), ``GET`` (``pageSize``, ``pageToken``; ``datasets``, ``nextPageToken``), ``GET`` / ``DELETE
  .../datasets/{id}``; a dataset is ``UPLOADING`` until its file arrived and was validated, then ``READY``.
* ``POST .../datasets/{id}:upload`` (multipart ``file``, up to 150 MB: "a streamlined way to upload a dataset file
  in a single API request") answers a ``FileUploadResponse`` and makes the dataset ``READY``.
* ``POST ...:getUploadEndpoint`` (``filenameToSize``, int64 values as strings) answers ``filenameToSignedUrls``;
  the file is ``PUT`` there (a Cloud Storage-style signed URL: ``X-Goog-Signature``; a wrong one is 403); then
  ``POST ...:validateUpload`` makes the dataset ``READY`` (400 when nothing, or not the announced size, arrived).
* ``Authorization: Bearer`` is required (``BearerAuth``); errors are gRPC-gateway bodies ``{code, message}``.
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
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Dataset:
    account: str
    id: str
    display_name: str
    created: str
    content: bytes | None = field(default=None, repr=False)
    expected: int | None = None
    signature: str | None = None
    state: str = "UPLOADING"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": f"accounts/{self.account}/datasets/{self.id}",
            "displayName": self.display_name,
            "createTime": self.created,
            "state": self.state,
            "status": {"code": "OK", "message": ""},
            "exampleCount": str(self.content.count(b"\n")) if self.content else "0",
            "userUploaded": {},
        }


class FireworksLikeServer:
    def __init__(self, *, api_key: str = "fw-test-key-0123456789") -> None:
        self.api_key = api_key
        self.datasets: dict[str, Dataset] = {}
        self.requests: list[tuple[str, str]] = []
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._httpd: http.server.ThreadingHTTPServer | None = None

    def __enter__(self) -> FireworksLikeServer:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _go(self) -> None:
                server._handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = _go

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def calls(self, verb: str) -> list[str]:
        """The paths of the requests whose path ends with ``verb`` (``:upload``, ``/datasets`` ...)."""
        return [p for m, p in self.requests if p.endswith(verb)]

    def _handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        split = urlsplit(h.path)
        headers = {k.lower(): v for k, v in h.headers.items()}
        body = h.rfile.read(int(headers.get("content-length") or 0))
        with self._lock:
            self.requests.append((h.command, split.path))
        if len(body) < int(headers.get("content-length") or 0):
            # like any HTTP server: a body cut short is a request that never arrived, so nothing is stored
            h.close_connection = True
            return
        try:
            if split.path.startswith("/signed/"):
                status, payload, extra = self._signed(split.path, dict(parse_qsl(split.query)), body, headers)
            else:
                if headers.get("authorization") != f"Bearer {self.api_key}":
                    raise ApiError(401, "unauthenticated")
                status, payload, extra = self._api(h.command, split.path, dict(parse_qsl(split.query)), headers, body)
        except ApiError as exc:
            status, extra = exc.status, {}
            payload = json.dumps({"code": exc.status, "message": exc.message, "details": []}).encode()
        head = [f"HTTP/1.1 {status} X", "Content-Type: application/json", f"Content-Length: {len(payload)}"]
        head += [f"{k}: {v}" for k, v in extra.items()]
        try:
            h.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        except OSError:
            pass

    def _api(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        m = re.fullmatch(r"/v1/accounts/([^/]+)/datasets(?:/([^/:]+)(?::(\w+))?)?", path)
        if m is None:
            raise ApiError(404, f"no route {method} {path}")
        account, ds_id, verb = m.groups()
        if ds_id is None:
            return self._create(account, body) if method == "POST" else self._list(account, query)
        ds = self.datasets.get(f"{account}/{ds_id}")
        if ds is None:
            raise ApiError(404, f"dataset {ds_id} not found")
        if verb is None and method == "GET":
            return _ok(ds.to_json())
        if verb is None and method == "DELETE":
            with self._lock:
                self.datasets.pop(f"{account}/{ds_id}", None)
            return _ok({})
        if verb == "upload":
            ds.content, ds.state = _form_file(headers.get("content-type", ""), body), "READY"
            now = int(time.time())
            return _ok({"id": ds.id, "object": "file", "bytes": len(ds.content), "created_at": now,
                        "filename": ds.display_name, "purpose": "fine-tune"})  # fmt: skip
        if verb == "getUploadEndpoint":
            sizes = json.loads(body).get("filenameToSize")
            if not isinstance(sizes, dict) or len(sizes) != 1:
                raise ApiError(400, "filenameToSize is required")
            ((name, size),) = sizes.items()
            ds.expected, ds.signature = int(size), secrets.token_hex(16)
            url = f"{self.url}/signed/{account}/{ds_id}/{name}?X-Goog-Expires=3600&X-Goog-Signature={ds.signature}"
            return _ok({"filenameToSignedUrls": {name: url}})
        if verb == "validateUpload":
            if ds.content is None or (ds.expected is not None and len(ds.content) != ds.expected):
                raise ApiError(400, "the uploaded file is missing or not the size announced")
            ds.state = "READY"
            return _ok({})
        raise ApiError(404, f"no route {method} {path}")

    def _create(self, account: str, body: bytes) -> tuple[int, bytes, dict[str, str]]:
        data = json.loads(body or b"{}")
        if not isinstance(data.get("datasetId"), str) or not isinstance(data.get("dataset"), dict):
            raise ApiError(400, "datasetId and dataset are required")
        key = f"{account}/{data['datasetId']}"
        with self._lock:
            if key in self.datasets:
                raise ApiError(409, "ALREADY_EXISTS")
            created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            ds = Dataset(account, data["datasetId"], str(data["dataset"].get("displayName", "")), created)
            self.datasets[key] = ds
        return _ok(ds.to_json())

    def _list(self, account: str, query: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        mine = [d for k, d in sorted(self.datasets.items()) if k.startswith(f"{account}/")]
        start = int(query.get("pageToken") or 0)
        size = int(query.get("pageSize") or 50)
        page = mine[start : start + size]
        out: dict[str, Any] = {"datasets": [d.to_json() for d in page], "totalSize": len(mine)}
        if start + size < len(mine):
            out["nextPageToken"] = str(start + size)
        return _ok(out)

    def _signed(
        self, path: str, query: dict[str, str], body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes, dict[str, str]]:
        _, _, account, ds_id, _name = path.split("/", 4)
        ds = self.datasets.get(f"{account}/{ds_id}")
        if ds is None or ds.signature is None or query.get("X-Goog-Signature") != ds.signature:
            raise ApiError(403, "SignatureDoesNotMatch")
        if "authorization" in headers:
            raise ApiError(400, "a signed URL takes no Authorization header")
        ds.content = body
        return 200, b"", {"ETag": f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'}


def _ok(data: Any) -> tuple[int, bytes, dict[str, str]]:
    return 200, json.dumps(data).encode(), {}


def _form_file(content_type: str, body: bytes) -> bytes:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else b""
    raise ApiError(400, "the multipart body has no file")
