"""The OpenAI Files and Uploads wire format, as pure functions and one protocol class: exchanges out, data in.

Azure OpenAI, OpenAI-compatible platforms and in-house gateways speak the same format with other paths, query
parameters, auth headers and statuses, so everything takes an :class:`Endpoint` that says those things
(``llmfiles-azure`` and the example plugin reuse this module).  Nothing here sends a request or reads a file.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

from attrs import field, frozen

from llmfiles.errors import ProviderError
from llmfiles.models import (
    Delete,
    Download,
    FileObject,
    FilePage,
    FileRange,
    HttpRequest,
    HttpResponse,
    ListFiles,
    Operation,
    Part,
    Receipt,
    Retrieve,
    Upload,
    UploadFacts,
    UploadParts,
    UploadState,
)
from llmfiles.multipart import multipart_body
from llmfiles.provider import Endpoint as BaseEndpoint
from llmfiles.provider import Exchange, PartLimits, PartsUpload, Probe, guarded_read, json_object

T = TypeVar("T")

#: OpenAI's file statuses (and Azure's) onto llmfiles' normalized ones.
STATUS_MAP: Mapping[str, str] = {
    "uploaded": "uploaded",
    "processed": "processed",
    "error": "error",
    "deleted": "deleted",
    "pending": "pending",
    "running": "pending",
    "deleting": "deleted",
}
#: OpenAI keeps an unfinished upload for an hour (Azure OpenAI: two hours)
UPLOAD_TTL = 3600
MiB = 1024 * 1024


@frozen(kw_only=True)
class Endpoint(BaseEndpoint):
    """Where and how to reach an OpenAI-format Files API.

    ``sign`` is applied to every request as it is built (Azure adds a fresh Entra ID token); ``paged_listing``
    says whether ``GET /files`` takes ``after``/``limit``; ``sizes_optional`` fills a file object's missing
    ``bytes``/``created_at`` (Azure's contract makes them optional) instead of refusing it.
    """

    query: Mapping[str, str] = field(factory=dict)
    request_id_headers: tuple[str, ...] = ("x-request-id",)
    uploads_path: str = "/uploads"
    #: query parameters of the listing that looks for a file whose upload answer was lost (newest first)
    probe_params: Mapping[str, Any] = field(factory=lambda: {"limit": 100, "order": "desc"})
    paged_listing: bool = True
    status_map: Mapping[str, str] = STATUS_MAP
    sizes_optional: bool = False
    sign: Callable[[HttpRequest], HttpRequest] | None = field(default=None, eq=False, repr=False)

    def url(self, path: str, **params: Any) -> str:
        """``base`` + ``path`` with the endpoint's own query (Azure's ``api-version``) and ``params``."""
        return super().url(path, **{**self.query, **{k: v for k, v in params.items() if v is not None}})

    def api_request(
        self, method: str, path: str, *, body: Any = None, content_type: str | None = None, **params: Any
    ) -> HttpRequest:
        """A request to ``path`` of the API (``params`` as its query), signed when the endpoint signs."""
        headers = {"Content-Type": content_type} if content_type else None
        request = self.request(method, self.url(path, **params), headers=headers, body=body)
        return self.sign(request) if self.sign is not None else request

    def error(self, response: HttpResponse) -> ProviderError:
        return error(self, response)


def _file_path(file_id: str) -> str:
    return f"/files/{quote(file_id, safe='')}"


def mime_type(filename: str) -> str:
    """The MIME type OpenAI expects for ``filename`` (JSONL files are ``text/jsonl``)."""
    if filename.lower().endswith(".jsonl"):
        return "text/jsonl"
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def expires_after_fields(seconds: int | None) -> list[tuple[str, str]]:
    """Form fields for a file expiration policy (``expires_after[anchor]``, ``expires_after[seconds]``)."""
    if seconds is None:
        return []
    return [("expires_after[anchor]", "created_at"), ("expires_after[seconds]", str(int(seconds)))]


# --- every operation ---------------------------------------------------------------------------------------------


def exchange(
    ep: Endpoint,
    op: Operation,
    *,
    expires_after: int | None = None,
    prefix: bytes = b"",
    max_part_size: int = 64 * MiB,
    session_ttl: float = UPLOAD_TTL,
) -> Exchange[Any] | Uploads:
    """What to send for ``op``: one of the functions below, or the Uploads API for a large file.

    ``prefix`` is sent before the file's bytes (Azure uses it to add a UTF-8 BOM on the fly).
    """
    if isinstance(op, Upload):
        return upload(ep, op.file, expires_after=expires_after, prefix=prefix)
    if isinstance(op, UploadParts):
        return Uploads(
            ep,
            op.file,
            expires_after=expires_after,
            prefix=prefix,
            max_part_size=max_part_size,
            session_ttl=session_ttl,
        )
    if isinstance(op, Retrieve):
        return ep.exchange(ep.api_request("GET", _file_path(op.file_id)), lambda r: read_file(ep, r))
    if isinstance(op, Delete):
        return ep.exchange(ep.api_request("DELETE", _file_path(op.file_id)), lambda r: read_deleted(ep, r, op.file_id))
    if isinstance(op, Download):
        return ep.exchange(ep.api_request("GET", _file_path(op.file_id) + "/content"), lambda r: True)
    assert isinstance(op, ListFiles)
    if ep.paged_listing:
        request = ep.api_request("GET", "/files", purpose=op.purpose, after=op.cursor, limit=op.limit)
    else:
        request = ep.api_request("GET", "/files", purpose=op.purpose)
    return ep.exchange(request, lambda r: read_page(ep, r))


def upload(
    ep: Endpoint, facts: UploadFacts, *, expires_after: int | None = None, prefix: bytes = b""
) -> Exchange[FileObject]:
    """``POST /files`` as multipart/form-data; the file's bytes are streamed by the core into the body."""
    segments: list[Any] = [prefix] if prefix else []
    segments.append(FileRange(offset=0, length=facts.size))
    content_type, body = multipart_body(
        [("purpose", facts.purpose), *expires_after_fields(expires_after)],
        [("file", facts.filename, "application/octet-stream", segments)],
    )
    size = facts.size + len(prefix)
    request = ep.api_request("POST", "/files", body=body, content_type=content_type)
    # POST /files is not idempotent: an attempt whose answer was lost is looked for before it is sent again
    return ep.exchange(request, lambda r: read_file(ep, r, size=size), probe=probe(ep, facts, size))


def probe(ep: Endpoint, facts: UploadFacts, size: int) -> Probe:
    """Look for a file a lost ``POST /files`` (or ``complete``) may have made: the newest files of the purpose with
    the same name and size.  OpenAI's file objects carry no checksum, so the core cannot tell such a file from
    another upload of the same name and size: it then stops with ``MaybeUploaded`` rather than guess."""

    def read(response: HttpResponse) -> Sequence[FileObject]:
        files = read_page(ep, response).files
        return [
            f for f in files if f.filename == facts.filename and f.bytes in (size, 0) and f.purpose == facts.purpose
        ]

    params = dict(ep.probe_params) if ep.paged_listing else {}
    return Probe(
        request=ep.api_request("GET", "/files", purpose=facts.purpose, **params), read=guarded_read(ep.provider, read)
    )


# --- the Uploads API -----------------------------------------------------------------------------------------------


class Uploads(PartsUpload):
    """The Uploads API: ``POST /uploads``, parts in parallel (``data`` field), ``complete`` with the ordered part
    ids and the file's MD5, ``cancel`` on failure.

    ``prefix`` goes before the file's bytes, in the first part (Azure's BOM); the declared ``bytes`` include it.  The
    MD5 the core computes is that of the file, not of prefix + file, so none is sent when there is a prefix (the
    field is optional).
    """

    def __init__(
        self,
        ep: Endpoint,
        facts: UploadFacts,
        *,
        expires_after: int | None = None,
        prefix: bytes = b"",
        max_part_size: int = 64 * MiB,
        session_ttl: float = UPLOAD_TTL,
    ) -> None:
        self.ep = ep
        self.facts = facts
        self.expires_after = expires_after
        self.prefix = prefix
        self.size = facts.size + len(prefix)
        self.destination = ep.url(ep.uploads_path)
        self.session_ttl = session_ttl
        self.digests = () if prefix else ("md5",)
        # only the first part carries the prefix, but every part is kept within the limit with room for it
        self.limits = PartLimits(maximum=max_part_size - len(prefix), max_parts=10_000)

    def _path(self, state: UploadState, tail: str = "") -> str:
        return f"{self.ep.uploads_path}/{quote(state['upload_id'], safe='')}{tail}"

    def start(self) -> Exchange[UploadState]:
        facts = self.facts
        body: dict[str, Any] = {
            "filename": facts.filename,
            "purpose": facts.purpose,
            "bytes": self.size,
            "mime_type": mime_type(facts.filename),
        }
        if self.expires_after is not None:
            body["expires_after"] = {"anchor": "created_at", "seconds": int(self.expires_after)}
        request = self.ep.api_request(
            "POST", self.ep.uploads_path, body=json.dumps(body).encode(), content_type="application/json"
        )
        ep = self.ep

        def read(response: HttpResponse) -> UploadState:
            data = json_object(ep.provider, response)
            upload_id = data.get("id")
            if not isinstance(upload_id, str) or not upload_id:
                raise ProviderError(
                    "the upload was created without an id", provider=ep.provider, status=response.status
                )
            return {"upload_id": upload_id, "expires_at": data.get("expires_at")}

        return ep.exchange(request, read)

    def part(self, state: UploadState, part: Part) -> Exchange[Receipt]:
        segments: list[Any] = [self.prefix, part.body] if (self.prefix and part.index == 0) else [part.body]
        content_type, body = multipart_body([], [("data", f"part-{part.number}", "application/octet-stream", segments)])
        request = self.ep.api_request("POST", self._path(state, "/parts"), body=body, content_type=content_type)
        ep = self.ep

        def read(response: HttpResponse) -> Receipt:
            data = json_object(ep.provider, response)
            part_id = data.get("id")
            if not isinstance(part_id, str) or not part_id:
                raise ProviderError(
                    f"part {part.number} was accepted without an id", provider=ep.provider, status=response.status
                )
            receipt: dict[str, Any] = {"part_id": part_id}
            if "azure_block_id" in data:
                receipt["azure_block_id"] = data["azure_block_id"]
            return receipt

        return ep.exchange(request, read)

    def complete(
        self, state: UploadState, receipts: Sequence[Receipt], digests: Mapping[str, str]
    ) -> Exchange[FileObject]:
        payload: dict[str, Any] = {"part_ids": [r["part_id"] for r in receipts]}
        if "md5" in self.digests and "md5" in digests:
            payload["md5"] = digests["md5"]
        request = self.ep.api_request(
            "POST", self._path(state, "/complete"), body=json.dumps(payload).encode(), content_type="application/json"
        )
        ep, size = self.ep, self.size

        def read(response: HttpResponse) -> FileObject:
            data = json_object(ep.provider, response)
            status, file_data = data.get("status"), data.get("file")
            if status != "completed" or not isinstance(file_data, Mapping):
                raise ProviderError(
                    f"the upload {state['upload_id']} ended with status {status!r} and no file object",
                    provider=ep.provider,
                    status=response.status,
                )
            return file_object(ep, file_data, size=size)

        # a completed upload cannot be completed again: if the answer is lost, the file is looked for instead
        return ep.exchange(request, read, probe=probe(ep, self.facts, size))

    def abort(self, state: UploadState) -> Exchange[object]:
        return self.ep.exchange(self.ep.api_request("POST", self._path(state, "/cancel")), lambda r: True)


# --- answers -------------------------------------------------------------------------------------------------------


def _field(provider: str, data: Mapping[str, Any], name: str, kind: type, optional: bool = False) -> Any:
    value = data.get(name)
    if value is None and optional:
        return None
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ProviderError(
            f"unexpected answer: the file object's {name!r} is {type(value).__name__}, not {kind.__name__}",
            provider=provider,
        )
    return value


def file_object(ep: Endpoint, data: Mapping[str, Any], *, size: int | None = None) -> FileObject:
    """An OpenAI-format file object as llmfiles' :class:`FileObject`.

    A field of the wrong type, or a missing required one, is a :class:`ProviderError` (a malformed or hostile answer
    must not become a plausible-looking file object).  With ``ep.sizes_optional``, a missing ``bytes`` is ``size``
    (the bytes that were sent; 0 when unknown) and a missing ``created_at`` is 0.
    """
    provider = ep.provider
    if ep.sizes_optional:
        filled = dict(data)
        if filled.get("bytes") is None:
            filled["bytes"] = size if size is not None else 0
        if filled.get("created_at") is None:
            filled["created_at"] = 0
        data_used: Mapping[str, Any] = filled
    else:
        data_used = data
    file_id = _field(provider, data_used, "id", str)
    if not file_id:
        raise ProviderError("unexpected answer: the file object has an empty id", provider=provider)
    raw_status = _field(provider, data_used, "status", str, optional=True) or "processed"
    details = data_used.get("status_details")
    return FileObject(
        id=file_id,
        provider=provider,
        filename=_field(provider, data_used, "filename", str),
        purpose=_field(provider, data_used, "purpose", str),
        bytes=_field(provider, data_used, "bytes", int),
        created_at=_field(provider, data_used, "created_at", int),
        status=ep.status_map.get(raw_status, "pending"),  # type: ignore[arg-type]
        expires_at=_field(provider, data_used, "expires_at", int, optional=True),
        status_details=str(details) if details else None,
        raw=dict(data),
    )


def read_file(ep: Endpoint, response: HttpResponse, *, size: int | None = None) -> FileObject:
    return file_object(ep, json_object(ep.provider, response), size=size)


def read_page(ep: Endpoint, response: HttpResponse) -> FilePage:
    """A listing: a page (``has_more``, ``last_id``), or Azure's classic API's every file in one answer."""
    data = json_object(ep.provider, response)
    items = data.get("data")
    if not isinstance(items, list):
        raise ProviderError("the listing has no 'data' array", provider=ep.provider, status=response.status)
    files = tuple(file_object(ep, item) for item in items if isinstance(item, Mapping))
    cursor = None
    if ep.paged_listing and data.get("has_more") and files:
        last = data.get("last_id")
        cursor = last if isinstance(last, str) and last else files[-1].id
    return FilePage(files=files, next_cursor=cursor)


def read_deleted(ep: Endpoint, response: HttpResponse, file_id: str) -> bool:
    data = json_object(ep.provider, response)
    if data.get("deleted") is False:
        raise ProviderError(f"the provider did not delete {file_id}", provider=ep.provider, status=response.status)
    return True


def error(ep: Endpoint, response: HttpResponse) -> ProviderError:
    """The provider's error body (``error.message/type/code/param``, or Azure's ``code/message/innererror``, whose
    ``innererror.code`` is added to the message)."""
    request_id = next((response.header(h) for h in ep.request_id_headers if response.header(h)), None)
    message, code, etype, param, details = None, None, None, None, None
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            message = err.get("message")
            code = err.get("code")
            etype = err.get("type")
            param = err.get("param")
            details = err.get("innererror") or err.get("details")
    if not message:
        message = response.body[:300].decode("utf-8", "replace").strip() or f"HTTP {response.status} with an empty body"
    inner = details.get("code") if isinstance(details, Mapping) else None
    text = str(message) + (f" (inner error: {inner})" if inner else "")
    return ProviderError(
        text,
        provider=ep.provider,
        status=response.status,
        code=str(code) if code is not None else None,
        error_type=str(etype) if etype is not None else None,
        param=str(param) if param is not None else None,
        request_id=request_id,
        details=details,
    )
