"""A stateful fake of Mistral's Files API, for tests: stdlib only, on 127.0.0.1.

Mistral publishes an OpenAPI contract, which the contract tests serve with Prism (``plugins/mistral/tests/contract``);
Prism keeps nothing between calls, so the round trips (upload, then retrieve, list, download, delete) run against
this fake, written from the same contract and Mistral's pages (cited on the code that does each thing):

* [contract] ``openapi-public-doc.yaml`` of mistralai/platform-docs-public (the trimmed copy in
  ``plugins/mistral/tests/contract/mistral-files.json``): ``POST /v1/files`` (multipart: ``file`` required,
  ``purpose`` one of ``fine-tune``, ``batch``, ``ocr``), ``GET /v1/files`` (``page`` from 0, ``page_size`` default
  100, ``include_total`` default true, ``purpose``, ``search``; ``{data, object: "list", total}``),
  ``GET``/``DELETE /v1/files/{file_id}`` (a UUID), ``GET /v1/files/{file_id}/content``; the file schema (``id``,
  ``object``, ``bytes``, ``created_at``, ``filename``, ``purpose``, ``sample_type``, ``source``, ``num_lines``,
  ``mimetype``, ``signature``; ``deleted`` on a retrieve; ``{id, object, deleted}`` for a deletion); "The size of
  individual files can be a maximum of 512 MB";
* [faq] the fine-tuning FAQ, https://docs.mistral.ai/resources/deprecated/finetuning/text_vision_finetuning#faq: "If
  a file is uploaded and matches an existing file in both content and name, the pre-existing file is returned instead
  of creating a new one"; a file over the limit gets "413 Request Entity Too Large";
* [errors] https://docs.mistral.ai/resources/error-glossary: errors as ``{"object": "error", "message", "type",
  "param", "code"}``; 401 for a missing or wrong ``Authorization: Bearer`` key; 404 for a deleted file; 422 for a
  request that fails validation (answered the way FastAPI does, ``{"detail": [{"loc", "msg", "type"}]}``, as Prism's
  422s show the contract's validation).

``null_bytes=True`` answers ``bytes: null``, as the contract's own examples do.  Every answer carries a
``mistral-correlation-id`` header, the request id Mistral's answers carry.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import unquote

from servers.stateful import Answer, ApiError, Recorded, StatefulServer, json_answer

#: [contract] 512 MB a file
MAX_FILE_BYTES = 512 * 1000 * 1000
PURPOSES = ("fine-tune", "batch", "ocr")
#: [contract] the SampleType of an uploaded file of each purpose
SAMPLE_TYPES = {"fine-tune": "instruct", "batch": "batch_request", "ocr": "ocr_input"}
ERROR_TYPES = {401: "authentication_error", 429: "rate_limit_error", 500: "server_error", 503: "server_error"}
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass
class MistralFile:
    id: str
    filename: str
    purpose: str
    content: bytes = field(repr=False)
    created_at: int
    mimetype: str

    def to_json(self, null_bytes: bool) -> dict[str, Any]:
        """[contract] the file schema."""
        jsonl = self.mimetype in ("application/jsonl", "application/x-ndjson") or self.filename.endswith(".jsonl")
        return {
            "id": self.id,
            "object": "file",
            "bytes": None if null_bytes else len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "sample_type": SAMPLE_TYPES[self.purpose],
            "source": "upload",
            "num_lines": self.content.count(b"\n") if jsonl else None,
            "mimetype": self.mimetype,
            "signature": hashlib.sha256(self.content).hexdigest()[:16],
        }


class ValidationFailed(ApiError):
    """A 422 with FastAPI's ``detail``."""

    def __init__(self, loc: list[str], msg: str) -> None:
        super().__init__(422, msg, detail=[{"loc": loc, "msg": msg, "type": "value_error"}])


class MistralLikeServer(StatefulServer):
    """The fake (see the module documentation)."""

    name = "mistral-like-test-server"
    request_id_header = "mistral-correlation-id"

    def __init__(self, *, api_key: str = "mistral-test-key-0123456789", null_bytes: bool = False) -> None:
        super().__init__()
        self.api_key = api_key
        self.null_bytes = null_bytes
        self.files: dict[str, MistralFile] = {}
        self._order: list[str] = []

    @property
    def url(self) -> str:
        return self.origin

    def route(self, method: str, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> str | None:
        if path == "/v1/files":
            return {"POST": "upload", "GET": "list"}.get(method)
        if re.fullmatch(r"/v1/files/[^/]+/content", path) and method == "GET":
            return "content"
        if re.fullmatch(r"/v1/files/[^/]+", path):
            return {"GET": "get", "DELETE": "delete"}.get(method)
        return None

    def error_answer(self, err: ApiError, rec: Recorded | None) -> Answer:
        """[errors] Mistral's error body; a validation failure as FastAPI's ``detail``."""
        if "detail" in err.extra:
            return json_answer({"detail": err.extra["detail"]}, status=err.status)
        body = {
            "object": "error",
            "message": err.message,
            "type": ERROR_TYPES.get(err.status, "invalid_request_error"),
            "param": err.extra.get("param"),
            "code": err.extra.get("code"),
        }
        return json_answer(body, status=err.status)

    def dispatch(self, rec: Recorded, body: bytes) -> Answer:
        if rec.route is None:
            raise ApiError(404, "Not Found")
        scheme, _, key = (rec.header("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not key or key.strip() != self.api_key:
            raise ApiError(401, "Unauthorized")  # [errors]
        handler = {
            "upload": self._upload,
            "list": self._list,
            "get": self._get,
            "delete": self._delete,
            "content": self._content,
        }[rec.route]
        return handler(rec, body)

    def _upload(self, rec: Recorded, body: bytes) -> Answer:
        """[contract] ``file`` and ``purpose``; [faq] the same name and content give back the file there is."""
        content_type = rec.header("content-type") or ""
        if not content_type.startswith("multipart/form-data"):
            raise ApiError(415, f"Unsupported Media Type: {content_type or 'none'}")
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        parts = {p.get_param("name", header="content-disposition"): p for p in message.iter_parts()}
        part = parts.get("file")
        if part is None or part.get_filename() is None:
            raise ValidationFailed(["body", "file"], "Field required")
        purpose_part = parts.get("purpose")
        purpose = (purpose_part.get_payload(decode=True) or b"").decode() if purpose_part is not None else "fine-tune"
        if purpose not in PURPOSES:
            raise ValidationFailed(["body", "purpose"], f"Input should be {', '.join(repr(p) for p in PURPOSES)}")
        content = part.get_payload(decode=True) or b""
        if len(content) > MAX_FILE_BYTES:
            raise ApiError(413, "Request Entity Too Large")
        filename = str(part.get_filename())
        for f in self.files.values():
            if f.filename == filename and f.content == content:
                return json_answer(f.to_json(self.null_bytes))
        f = MistralFile(str(uuid.uuid4()), filename, purpose, content, int(time.time()), part.get_content_type())
        self.files[f.id] = f
        self._order.append(f.id)
        return json_answer(f.to_json(self.null_bytes))

    def _file(self, rec: Recorded) -> MistralFile:
        file_id = unquote(rec.path.removeprefix("/v1/files/").removesuffix("/content"))
        if not _UUID.match(file_id):
            raise ValidationFailed(["path", "file_id"], "Input should be a valid UUID")
        f = self.files.get(file_id)
        if f is None:
            raise ApiError(404, f"File {file_id} not found")
        return f

    def _get(self, rec: Recorded, body: bytes) -> Answer:
        return json_answer({**self._file(rec).to_json(self.null_bytes), "deleted": False})

    def _delete(self, rec: Recorded, body: bytes) -> Answer:
        f = self._file(rec)
        del self.files[f.id]
        self._order.remove(f.id)
        return json_answer({"id": f.id, "object": "file", "deleted": True})

    def _content(self, rec: Recorded, body: bytes) -> Answer:
        return Answer(status=200, body=self._file(rec).content, content_type="application/octet-stream")

    def _list(self, rec: Recorded, body: bytes) -> Answer:
        """[contract] ``page``, ``page_size``, ``include_total``, ``purpose``, ``search`` (in the name)."""

        def one(name: str, default: str) -> str:
            return (rec.query.get(name) or [default])[0]

        try:
            page, size = int(one("page", "0")), int(one("page_size", "100"))
        except ValueError:
            raise ValidationFailed(["query", "page"], "Input should be a valid integer") from None
        purpose, search = one("purpose", ""), one("search", "")
        if purpose and purpose not in PURPOSES:
            raise ValidationFailed(["query", "purpose"], f"Input should be {', '.join(repr(p) for p in PURPOSES)}")
        chosen = [
            self.files[i]
            for i in self._order
            if (not purpose or self.files[i].purpose == purpose) and search in self.files[i].filename
        ]
        out: dict[str, Any] = {
            "data": [f.to_json(self.null_bytes) for f in chosen[page * size : (page + 1) * size]],
            "object": "list",
        }
        if one("include_total", "true") == "true":
            out["total"] = len(chosen)
        return json_answer(out)
