"""A stateful fake of Anthropic's Files API, for tests: stdlib only, on 127.0.0.1.

Anthropic publishes no OpenAPI contract (its SDKs are generated from one hosted elsewhere), so each behaviour is
written from the page of its documentation, or the SDK type, that says it (cited on the code that does it):

* [files] https://platform.claude.com/docs/en/build-with-claude/files: ``POST /v1/files`` (multipart, a ``file``
  part), ``GET /v1/files``, ``GET``/``DELETE /v1/files/{file_id}``, ``GET /v1/files/{file_id}/content``; the header
  ``anthropic-beta: files-api-2025-04-14``; "Maximum file size: 500 MB per file" (413 beyond); "Invalid filename
  (400): Filename doesn't meet the length requirements (1-255 characters) or contains forbidden characters"; "You
  can only download files that were created by skills or the code execution tool. Files that you uploaded cannot be
  downloaded."; "File not found (404)";
* [reference] https://platform.claude.com/docs/en/api/files-create (and ``files-list``, ``files-metadata``,
  ``files-delete``, ``files-content``) with the SDK's types (anthropic-sdk-python ``types/beta/file_metadata.py``,
  ``deleted_file.py``, ``file_list_params.py``): ``FileMetadata`` ``{id, type: "file", filename, mime_type,
  size_bytes, created_at (RFC 3339), downloadable}``; a list ``{data, first_id, last_id, has_more}``, ``limit``
  1-1000 (default 20), ``after_id``/``before_id`` cursors; ``DeletedFile`` ``{id, type: "file_deleted"}``;
* [api] https://platform.claude.com/docs/en/api/overview: ``x-api-key`` and ``anthropic-version`` on every request;
* [errors] https://platform.claude.com/docs/en/api/errors: ``{"type": "error", "error": {"type", "message"},
  "request_id"}`` and a ``request-id`` header on every answer; ``invalid_request_error`` 400,
  ``authentication_error`` 401, ``permission_error`` 403, ``not_found_error`` 404, ``request_too_large`` 413,
  ``rate_limit_error`` 429, ``api_error`` 500, ``overloaded_error`` 529.

The files pages do not say in which order a listing comes; the fake lists the most recent first, as Anthropic's
other list endpoints document (Message Batches: "Most recently created batches are returned first").
``download_uploads=True`` lets uploaded files be downloaded (the conformance kit's round trip downloads what it
uploaded; Anthropic itself refuses that); :meth:`AnthropicLikeServer.add_generated` adds a file "made by the code
execution tool", which may be downloaded.
"""

from __future__ import annotations

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

#: [files] 500 MB a file
MAX_FILE_BYTES = 500 * 1000 * 1000
#: [files] forbidden characters of a filename
_FORBIDDEN = re.compile(r'[<>:"|?*\\/\x00-\x1f]')
#: [errors] error types by status
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
BETA = "files-api-2025-04-14"


@dataclass
class AnthropicFile:
    id: str
    filename: str
    mime_type: str
    content: bytes = field(repr=False)
    created: float
    downloadable: bool = False

    def metadata(self) -> dict[str, Any]:
        """[reference] ``FileMetadata``."""
        created = datetime.fromtimestamp(self.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return {
            "id": self.id,
            "type": "file",
            "filename": self.filename,
            "mime_type": self.mime_type,
            "size_bytes": len(self.content),
            "created_at": created,
            "downloadable": self.downloadable,
        }


class AnthropicLikeServer(StatefulServer):
    """The fake (see the module documentation)."""

    name = "anthropic-like-test-server"
    request_id_header = "request-id"

    def __init__(self, *, api_key: str = "sk-ant-test-0123456789", download_uploads: bool = False) -> None:
        super().__init__()
        self.api_key = api_key
        self.download_uploads = download_uploads
        self.files: dict[str, AnthropicFile] = {}

    @property
    def url(self) -> str:
        return self.origin

    def add_generated(self, content: bytes, filename: str = "chart.png") -> str:
        """A file "created by the code execution tool", which may be downloaded [files]; its id."""
        f = AnthropicFile(_new_id(), filename, "image/png", content, time.time(), downloadable=True)
        with self._lock:
            self.files[f.id] = f
        return f.id

    def route(self, method: str, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> str | None:
        if path == "/v1/files":
            return {"POST": "upload", "GET": "list"}.get(method)
        if re.fullmatch(r"/v1/files/[^/]+/content", path) and method == "GET":
            return "content"
        if re.fullmatch(r"/v1/files/[^/]+", path):
            return {"GET": "get", "DELETE": "delete"}.get(method)
        return None

    def error_answer(self, err: ApiError, rec: Recorded | None) -> Answer:
        """[errors] the error body, with the request's id."""
        body = {
            "type": "error",
            "error": {"type": ERROR_TYPES.get(err.status, "api_error"), "message": err.message},
            "request_id": rec.request_id if rec is not None else None,
        }
        return json_answer(body, status=err.status)

    def dispatch(self, rec: Recorded, body: bytes) -> Answer:
        if rec.route is None:
            raise ApiError(404, f"Not found: {rec.method} {rec.path}")
        self._check_headers(rec)
        handler = {
            "upload": self._upload,
            "list": self._list,
            "get": self._get,
            "delete": self._delete,
            "content": self._content,
        }[rec.route]
        return handler(rec, body)

    def _check_headers(self, rec: Recorded) -> None:
        """[api] the key and the version; [files] the beta header."""
        key = rec.header("x-api-key")
        if not key or not secrets.compare_digest(key.encode(), self.api_key.encode()):
            raise ApiError(401, "invalid x-api-key")
        if not rec.header("anthropic-version"):
            raise ApiError(400, "anthropic-version: header is required")
        if BETA not in (rec.header("anthropic-beta") or "").split(","):
            raise ApiError(400, f"The Files API is in beta: pass the anthropic-beta header with {BETA}")

    def _upload(self, rec: Recorded, body: bytes) -> Answer:
        """[files] one ``file`` part; its name and size checked."""
        content_type = rec.header("content-type") or ""
        if not content_type.startswith("multipart/form-data"):
            raise ApiError(400, f"file: expected a multipart/form-data body, not {content_type or 'none'}")
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        parts = {p.get_param("name", header="content-disposition"): p for p in message.iter_parts()}
        part = parts.get("file")
        if part is None or part.get_filename() is None:
            raise ApiError(400, "file: Field required")
        filename = str(part.get_filename())
        if not 1 <= len(filename) <= 255 or _FORBIDDEN.search(filename):
            raise ApiError(400, 'Invalid filename: 1-255 characters, without < > : " | ? * \\ / or control characters')
        content = part.get_payload(decode=True) or b""
        if len(content) > MAX_FILE_BYTES:
            raise ApiError(413, "File exceeds the 500 MB limit")
        f = AnthropicFile(_new_id(), filename, part.get_content_type(), content, time.time())
        self.files[f.id] = f
        return json_answer(f.metadata())

    def _file(self, rec: Recorded) -> AnthropicFile:
        file_id = unquote(rec.path.removeprefix("/v1/files/").removesuffix("/content"))
        f = self.files.get(file_id)
        if f is None:
            raise ApiError(404, f"File not found: {file_id}")
        return f

    def _get(self, rec: Recorded, body: bytes) -> Answer:
        return json_answer(self._file(rec).metadata())

    def _delete(self, rec: Recorded, body: bytes) -> Answer:
        """[reference] ``DeletedFile``."""
        f = self._file(rec)
        del self.files[f.id]
        return json_answer({"id": f.id, "type": "file_deleted"})

    def _content(self, rec: Recorded, body: bytes) -> Answer:
        """[files] only files made by skills or the code execution tool can be downloaded."""
        f = self._file(rec)
        if not f.downloadable and not self.download_uploads:
            raise ApiError(
                400,
                f"File {f.id} is not downloadable: only files created by skills or the code execution "
                "tool can be downloaded",
            )
        return Answer(status=200, body=f.content, content_type="application/octet-stream")

    def _list(self, rec: Recorded, body: bytes) -> Answer:
        """[reference] the most recent first, ``limit`` (1-1000, default 20), ``after_id``/``before_id``."""
        try:
            limit = int((rec.query.get("limit") or ["20"])[0])
        except ValueError:
            raise ApiError(400, "limit: Input should be a valid integer") from None
        if not 1 <= limit <= 1000:
            raise ApiError(400, "limit: Input should be between 1 and 1000")
        ordered = sorted(self.files.values(), key=lambda f: f.created, reverse=True)
        ids = [f.id for f in ordered]
        after, before = (rec.query.get("after_id") or [None])[0], (rec.query.get("before_id") or [None])[0]
        start, end = 0, len(ids)
        if after is not None:
            if after not in ids:
                raise ApiError(400, f"after_id: unknown file {after}")
            start = ids.index(after) + 1
        if before is not None:
            if before not in ids:
                raise ApiError(400, f"before_id: unknown file {before}")
            end = ids.index(before)
            start = max(start, end - limit)
        page = ordered[start : min(end, start + limit)]
        return json_answer(
            {
                "data": [f.metadata() for f in page],
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
                "has_more": start + len(page) < end,
            }
        )


def _new_id() -> str:
    """Ids as Anthropic's look: ``file_011CNha8iCJcU1wXNR6q4V8w``."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "file_011" + "".join(secrets.choice(alphabet) for _ in range(21))
