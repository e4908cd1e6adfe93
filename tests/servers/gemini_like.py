"""A stateful fake of the Gemini API's Files API (the Developer API), for tests: stdlib only, on 127.0.0.1.

No published OpenAPI contract covers it and Prism cannot serve the protos, so each behaviour is written from the page
that documents it (cited on the code that does it):

* [files-proto] ``google/ai/generativelanguage/v1beta/file_service.proto`` + ``file.proto`` (copied into
  ``plugins/gemini/tests/contract/``): ``GET /v1beta/files`` (``pageSize`` default 10, at most 100, ``pageToken``,
  ``nextPageToken``), ``GET``/``DELETE /v1beta/files/{id}``, ``GET /v1beta/files/{id}:download``; the ``File``
  resource (``name``, ``displayName``, ``mimeType``, ``sizeBytes`` as a string, ``createTime``, ``updateTime``,
  ``expirationTime``, ``sha256Hash`` as base64 bytes, ``uri``, ``downloadUri``, ``state``, ``source``); a create may
  name its file (an id of up to 40 lowercase letters, digits or dashes, not starting or ending with a dash);
* [files-doc] https://ai.google.dev/gemini-api/docs/files: the resumable upload of the REST sample (``start`` with
  ``X-Goog-Upload-Header-Content-Length``/``-Content-Type`` and ``{"file": {"display_name"}}`` -> ``X-Goog-Upload-URL``;
  ``upload, finalize`` with ``X-Goog-Upload-Offset`` -> ``{"file": File}``); files kept 48 hours; 2 GB a file;
* [api-files] https://ai.google.dev/api/files: ``media.upload`` at ``/upload/v1beta/files``; the SDK docstring and
  [batch-doc] https://ai.google.dev/gemini-api/docs/batch-api: only files the API generated (batch results) can be
  downloaded, at ``/download/v1beta/files/{id}:download?alt=media``;
* [resumable] https://developers.google.com/photos/library/guides/resumable-uploads, Google's description of the same
  ``X-Goog-Upload`` protocol: ``X-Goog-Upload-Chunk-Granularity`` in the start answer (every chunk but the last a
  multiple of it), chunks with ``X-Goog-Upload-Command: upload`` and ``X-Goog-Upload-Offset``, ``query`` answered
  with ``X-Goog-Upload-Status`` and ``X-Goog-Upload-Size-Received`` (and, once final, the final answer), ``cancel``;
* [multipart] the ``upload_protocol`` parameter of ``media.upload`` in the API's discovery document (``multipart``):
  ``X-Goog-Upload-Protocol: multipart`` with a ``multipart/related`` body, the metadata then the media;
* [api-key] https://ai.google.dev/gemini-api/docs/api-key: the key in ``x-goog-api-key``; [errors]
  https://ai.google.dev/gemini-api/docs/troubleshooting: errors as ``{"error": {"code", "message", "status"}}``
  (``INVALID_ARGUMENT`` 400, ``PERMISSION_DENIED`` 403, ``NOT_FOUND`` 404, ``RESOURCE_EXHAUSTED`` 429,
  ``INTERNAL`` 500, ``UNAVAILABLE`` 503); [error-model] https://cloud.google.com/apis/design/errors: Google's error
  model, whose details include ``google.rpc.ErrorInfo`` (a ``reason`` such as ``API_KEY_INVALID``) and
  ``google.rpc.RequestInfo`` (the ``requestId``).

``sha256_form`` picks how ``sha256Hash`` is written: ``"hex-text"`` (the hex digest's text in the bytes, the form
seen in answers of the live service, e.g. googleapis/js-genai issue 381) or ``"raw"`` (the 32-byte digest).
``download_uploads=True`` lets uploaded files be downloaded (the conformance kit's round trip downloads what it
uploaded; Gemini itself refuses that).  A session's bytes that were cut short are kept up to the last multiple of
the granularity [resumable], as a server that persists whole chunks does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import unquote

from servers.stateful import Answer, ApiError, Recorded, StatefulServer, json_answer

KiB = 1024
MiB = 1024 * KiB
#: [files-doc] files are stored for 48 hours
TTL = 48 * 3600
#: [files-doc] "a per-file maximum size of 2 GB"
MAX_FILE_BYTES = 2 * 1000**3
#: [files-proto] "The ID ... can contain up to 40 characters that are lowercase alphanumeric or dashes"
_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
#: [errors] the status names of the error model
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def rfc3339(ts: float) -> str:
    """[files-proto] Timestamps as RFC 3339 with nanoseconds, as the service writes them."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


@dataclass
class GeminiFile:
    name: str
    display_name: str
    mime_type: str
    content: bytes = field(repr=False)
    created: float
    source: str = "UPLOADED"
    #: answers that still show PROCESSING before ACTIVE
    processing_reads: int = 0

    def resource(self, base: str, sha256_form: str) -> dict[str, Any]:
        digest = hashlib.sha256(self.content)
        raw = digest.hexdigest().encode() if sha256_form == "hex-text" else digest.digest()
        state = "PROCESSING" if self.processing_reads > 0 else "ACTIVE"
        if self.processing_reads > 0:
            self.processing_reads -= 1
        data: dict[str, Any] = {
            "name": self.name,
            "displayName": self.display_name,
            "mimeType": self.mime_type,
            "sizeBytes": str(len(self.content)),
            "createTime": rfc3339(self.created),
            "updateTime": rfc3339(self.created),
            "expirationTime": rfc3339(self.created + TTL),
            "sha256Hash": base64.b64encode(raw).decode(),
            "uri": f"{base}/v1beta/{self.name}",
            "state": state,
            "source": self.source,
        }
        if self.source == "GENERATED":
            data["downloadUri"] = f"{base}/download/v1beta/{self.name}:download?alt=media"
        return data


@dataclass
class Session:
    upload_id: str
    name: str
    display_name: str
    mime_type: str
    length: int
    data: bytearray = field(default_factory=bytearray, repr=False)
    status: str = "active"
    #: the last answer of a finalized session, which a query gives back [resumable]
    final: dict[str, Any] | None = None


class GeminiLikeServer(StatefulServer):
    """The fake (see the module documentation)."""

    name = "gemini-like-test-server"

    def __init__(
        self,
        *,
        api_key: str = "AIza-test-key-0123456789",
        granularity: int = 8 * MiB,
        sha256_form: str = "hex-text",
        download_uploads: bool = False,
        processing_reads: int = 0,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.granularity = granularity
        self.sha256_form = sha256_form
        self.download_uploads = download_uploads
        self.processing_reads = processing_reads
        #: the host the upload URL of a new session names (``None``: the request's ``Host``, as the service does)
        self.upload_url_host: str | None = None
        self.files: dict[str, GeminiFile] = {}
        self.sessions: dict[str, Session] = {}
        self._order: list[str] = []

    @property
    def url(self) -> str:
        return self.origin

    def add_generated(self, content: bytes, display_name: str = "batch-results.jsonl") -> str:
        """A file the API made (a batch's results), which may be downloaded [batch-doc]; its name."""
        name = f"files/batch-{secrets.token_hex(6)}"
        with self._lock:
            self._store(GeminiFile(name, display_name, "application/jsonl", content, time.time(), source="GENERATED"))
        return name

    # -- routing -------------------------------------------------------------------------------------------

    def route(self, method: str, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> str | None:
        if path == "/upload/v1beta/files" and method == "POST":
            if "upload_id" in query:
                command = headers.get("x-goog-upload-command", "").replace(" ", "")
                return {"upload": "chunk", "upload,finalize": "chunk", "query": "query", "cancel": "cancel"}.get(
                    command, "session"
                )
            protocol = headers.get("x-goog-upload-protocol", "")
            return {"resumable": "start", "multipart": "multipart"}.get(protocol, "media")
        if path == "/v1beta/files" and method == "GET":
            return "list"
        if re.fullmatch(r"/download/v1beta/files/[^/]+:download", path) and method == "GET":
            return "download"
        if re.fullmatch(r"/v1beta/files/[^/]+", path):
            return {"GET": "get", "DELETE": "delete"}.get(method)
        return None

    def dispatch(self, rec: Recorded, body: bytes) -> Answer:
        if rec.route is None:
            raise ApiError(404, f"Method not found: {rec.method} {rec.path}")
        if rec.route in ("chunk", "query", "cancel", "session"):
            # [files-doc] the REST sample sends the bytes to the upload URL without the key: the URL is the credential
            return self._session(rec, body)
        self._authenticate(rec)
        handler = {
            "start": self._start,
            "multipart": self._multipart,
            "media": self._media,
            "list": self._list,
            "get": self._get,
            "delete": self._delete,
            "download": self._download,
        }[rec.route]
        return handler(rec, body)

    def error_answer(self, err: ApiError, rec: Recorded | None) -> Answer:
        """[errors] ``{"error": {"code", "message", "status", "details"}}``; [error-model] the details carry the
        request's id as a ``google.rpc.RequestInfo``."""
        error: dict[str, Any] = {"code": err.status, "message": err.message, "status": STATUS_NAMES.get(err.status)}
        details = list(err.extra.get("details") or [])
        if rec is not None and not any("RequestInfo" in str(d.get("@type")) for d in details):
            details.append({"@type": "type.googleapis.com/google.rpc.RequestInfo", "requestId": rec.request_id})
        if details:
            error["details"] = details
        return json_answer({"error": error}, status=err.status)

    def _authenticate(self, rec: Recorded) -> None:
        """[api-key] The key in ``x-goog-api-key``: none is PERMISSION_DENIED, a wrong one INVALID_ARGUMENT with the
        ``API_KEY_INVALID`` reason (Google's answer to an invalid key)."""
        key = rec.header("x-goog-api-key")
        if not key:
            raise ApiError(
                403,
                "Method doesn't allow unregistered callers (callers without established identity). "
                "Please use API Key or other form of API consumer identity to call this API.",
            )
        if not secrets.compare_digest(key.encode(), self.api_key.encode()):
            raise ApiError(
                400,
                "API key not valid. Please pass a valid API key.",
                details=[
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                    },
                    {"@type": "type.googleapis.com/google.rpc.RequestInfo", "requestId": rec.request_id},
                ],
            )

    # -- creating files ------------------------------------------------------------------------------------

    def _metadata(self, data: Any) -> tuple[str, str]:
        """[files-proto] ``{"file": File}``: an optional name (``files/<id>``) and display name."""
        if not isinstance(data, dict):
            raise ApiError(400, "Invalid JSON payload received.")
        f = data.get("file") or {}
        if not isinstance(f, dict):
            raise ApiError(400, "Invalid value at 'file': expected a File.")
        name = f.get("name")
        if name is None:
            name = f"files/{secrets.token_hex(6)}"
        if not isinstance(name, str) or not _ID.match(name.removeprefix("files/")) or not name.startswith("files/"):
            raise ApiError(
                400,
                "CreateFileRequest.file.name: File name may only contain lowercase alphanumeric characters or "
                "dashes (-) and cannot begin or end with a dash.",
            )
        if name in self.files:
            raise ApiError(409, f"File {name} already exists.")
        display = f.get("display_name", f.get("displayName", ""))
        if not isinstance(display, str) or len(display) > 512:
            raise ApiError(400, "CreateFileRequest.file.display_name: must be no more than 512 characters.")
        return name, display

    def _store(self, f: GeminiFile) -> GeminiFile:
        f.processing_reads = f.processing_reads or (self.processing_reads if f.source == "UPLOADED" else 0)
        self.files[f.name] = f
        self._order.append(f.name)
        return f

    def _start(self, rec: Recorded, body: bytes) -> Answer:
        """[files-doc] ``start``: the declared length and type, the metadata; the upload URL (built from ``Host``, so
        it points back through a proxy) and [resumable] the chunk granularity."""
        try:
            length = int(rec.header("x-goog-upload-header-content-length") or "")
        except ValueError:
            raise ApiError(400, "X-Goog-Upload-Header-Content-Length is missing or not a number.") from None
        if length > MAX_FILE_BYTES:
            raise ApiError(400, f"File size {length} exceeds the maximum of {MAX_FILE_BYTES} bytes.")
        name, display = self._metadata(_json(body))
        upload_id = secrets.token_urlsafe(24)
        self.sessions[upload_id] = Session(
            upload_id,
            name,
            display,
            rec.header("x-goog-upload-header-content-type") or "application/octet-stream",
            length,
        )
        host = self.upload_url_host or rec.header("host") or f"127.0.0.1:{self.port}"
        return Answer(
            status=200,
            body=b"",
            content_type="text/plain; charset=utf-8",
            headers={
                "X-Goog-Upload-Status": "active",
                "X-Goog-Upload-URL": f"http://{host}/upload/v1beta/files?upload_id={upload_id}&upload_protocol=resumable",
                "X-Goog-Upload-Chunk-Granularity": str(self.granularity),
            },
        )

    def _multipart(self, rec: Recorded, body: bytes) -> Answer:
        """[multipart] One request: a ``multipart/related`` body, the metadata (JSON) then the media."""
        content_type = rec.header("content-type") or ""
        if not content_type.startswith("multipart/related"):
            raise ApiError(400, f"a multipart upload needs a multipart/related body, not {content_type or 'none'}")
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        parts = list(message.iter_parts()) if message.is_multipart() else []
        if len(parts) != 2:
            raise ApiError(400, f"a multipart upload has two parts, the metadata and the media, not {len(parts)}")
        name, display = self._metadata(_json(parts[0].get_payload(decode=True) or b""))
        media = parts[1].get_payload(decode=True) or b""
        f = self._store(GeminiFile(name, display, parts[1].get_content_type(), media, time.time()))
        return json_answer({"file": f.resource(self.origin_of(rec), self.sha256_form)})

    def _media(self, rec: Recorded, body: bytes) -> Answer:
        raise ApiError(400, "this test server takes the resumable and the multipart upload protocols only")

    # -- the resumable session -----------------------------------------------------------------------------

    def _session_of(self, rec: Recorded) -> Session:
        upload_id = (rec.query.get("upload_id") or [""])[0]
        session = self.sessions.get(upload_id)
        if session is None:
            raise ApiError(404, "No upload session with this id (it expired, or never existed).")
        return session

    def _session(self, rec: Recorded, body: bytes) -> Answer:
        session = self._session_of(rec)
        if rec.route == "query":
            return self._status(session, rec)
        if rec.route == "cancel":
            session.status = "cancelled"
            return self._status(session, rec)
        if rec.route != "chunk":
            raise ApiError(400, f"unknown X-Goog-Upload-Command {rec.header('x-goog-upload-command')!r}")
        if session.status != "active":
            return self._status(session, rec)
        return self._chunk(session, rec, body)

    def _status(self, session: Session, rec: Recorded) -> Answer:
        """[resumable] ``query``: the status and the bytes received; a final session gives its final answer again."""
        headers = {"X-Goog-Upload-Status": session.status, "X-Goog-Upload-Size-Received": str(len(session.data))}
        if session.status == "final" and session.final is not None:
            return json_answer(session.final, headers=headers)
        return Answer(status=200, body=b"", content_type="text/plain; charset=utf-8", headers=headers)

    def _chunk(self, session: Session, rec: Recorded, body: bytes) -> Answer:
        """[resumable] A chunk at ``X-Goog-Upload-Offset``: at the session's end, a multiple of the granularity unless
        it finalizes; [files-doc] ``upload, finalize`` makes the file once every declared byte is there."""
        offset = self._offset(rec)
        if offset != len(session.data):
            raise ApiError(400, f"X-Goog-Upload-Offset {offset} does not match the {len(session.data)} bytes received")
        finalize = (rec.header("x-goog-upload-command") or "").replace(" ", "") == "upload,finalize"
        if not finalize and len(body) % self.granularity:
            raise ApiError(
                400, f"a chunk that does not finalize must be a multiple of {self.granularity} bytes, not {len(body)}"
            )
        if offset + len(body) > session.length:
            raise ApiError(400, f"the upload has {offset + len(body)} bytes, more than the {session.length} declared")
        session.data.extend(body)
        if not finalize:
            return Answer(status=200, body=b"", content_type="text/plain", headers={"X-Goog-Upload-Status": "active"})
        if len(session.data) != session.length:
            raise ApiError(400, f"finalized with {len(session.data)} of the {session.length} bytes declared")
        if session.name in self.files:
            raise ApiError(409, f"File {session.name} already exists.")
        f = self._store(
            GeminiFile(session.name, session.display_name, session.mime_type, bytes(session.data), time.time())
        )
        session.status = "final"
        session.final = {"file": f.resource(self.origin_of(rec), self.sha256_form)}
        return json_answer(session.final, headers={"X-Goog-Upload-Status": "final"})

    @staticmethod
    def _offset(rec: Recorded) -> int:
        try:
            return int(rec.header("x-goog-upload-offset") or "")
        except ValueError:
            raise ApiError(400, "X-Goog-Upload-Offset is missing or not a number.") from None

    def partial_body(self, rec: Recorded, body: bytes) -> None:
        """[resumable] A chunk cut short: the whole multiples of the granularity that arrived are kept."""
        if rec.route != "chunk":
            return
        session = self.sessions.get((rec.query.get("upload_id") or [""])[0])
        if session is None or session.status != "active":
            return
        try:
            offset = self._offset(rec)
        except ApiError:
            return
        if offset == len(session.data):
            kept = len(body) // self.granularity * self.granularity
            session.data.extend(body[:kept])

    # -- the other methods ---------------------------------------------------------------------------------

    def _file(self, rec: Recorded) -> GeminiFile:
        name = "files/" + unquote(rec.path.rsplit("/files/", 1)[1]).removesuffix(":download")
        f = self.files.get(name)
        if f is None:
            raise ApiError(404, f"Requested entity was not found. ({name})")
        return f

    def _get(self, rec: Recorded, body: bytes) -> Answer:
        return json_answer(self._file(rec).resource(self.origin_of(rec), self.sha256_form))

    def _delete(self, rec: Recorded, body: bytes) -> Answer:
        f = self._file(rec)
        del self.files[f.name]
        self._order.remove(f.name)
        return json_answer({})

    def _download(self, rec: Recorded, body: bytes) -> Answer:
        """[batch-doc] ``alt=media`` serves a generated file's bytes; uploaded files cannot be downloaded."""
        f = self._file(rec)
        if (rec.query.get("alt") or [""])[0] != "media":
            raise ApiError(400, "download needs alt=media")
        if f.source != "GENERATED" and not self.download_uploads:
            raise ApiError(400, "Only generated files can be downloaded; this file was uploaded.")
        return Answer(status=200, body=f.content, content_type=f.mime_type)

    def _list(self, rec: Recorded, body: bytes) -> Answer:
        """[files-proto] ``pageSize`` (default 10, at most 100) and ``pageToken``; ``nextPageToken`` while more."""
        try:
            size = int((rec.query.get("pageSize") or ["10"])[0])
        except ValueError:
            raise ApiError(400, "Invalid value at 'page_size'") from None
        size = min(max(size, 1), 100)
        token = (rec.query.get("pageToken") or [""])[0]
        start = 0
        if token:
            try:
                start = int(base64.urlsafe_b64decode(token.encode()).decode())
            except ValueError:
                raise ApiError(400, "Invalid page token.") from None
        names = self._order[start : start + size]
        out: dict[str, Any] = {"files": [self.files[n].resource(self.origin_of(rec), self.sha256_form) for n in names]}
        if start + size < len(self._order):
            out["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
        return json_answer(out)

    def origin_of(self, rec: Recorded) -> str:
        return f"http://{rec.header('host') or f'127.0.0.1:{self.port}'}"


def _json(body: bytes) -> Any:
    try:
        return json.loads(body or b"{}")
    except ValueError:
        raise ApiError(400, "Invalid JSON payload received.") from None
