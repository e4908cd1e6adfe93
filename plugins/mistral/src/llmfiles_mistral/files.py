"""Mistral's Files API, as pure functions: exchanges out, llmfiles data in.  Nothing here sends a request or reads a
file.

Mistral publishes the contract (``openapi-public-doc.yaml`` of mistralai/platform-docs-public, a trimmed copy of
which the tests serve with Prism): ``POST /v1/files`` (multipart: ``file``, ``purpose`` one of ``fine-tune``,
``batch``, ``ocr``), ``GET /v1/files`` (``page``, ``page_size`` default 100, ``include_total``, ``purpose``,
``search``; answered ``{data, object, total}``), ``GET``/``DELETE /v1/files/{file_id}`` (a UUID),
``GET /v1/files/{file_id}/content``; a file is ``{id, object, bytes (nullable), created_at, filename, purpose,
sample_type, source, num_lines, mimetype, signature, expires_at, visibility}``; "The size of individual files can be a
maximum of 512 MB".  Errors are ``{"object": "error", "message", "type", "param", "code"}``
(https://docs.mistral.ai/resources/error-glossary), or FastAPI's ``{"detail": [...]}`` for a request that fails
validation (422); the request id is in ``mistral-correlation-id`` (or ``x-kong-request-id``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from attrs import frozen

from llmfiles.errors import InputError, ProviderError
from llmfiles.models import FileObject, FilePage, FileRange, HttpResponse, UploadFacts
from llmfiles.multipart import multipart_body
from llmfiles.provider import Endpoint as BaseEndpoint
from llmfiles.provider import Exchange, Probe, guarded_read, json_object

DEFAULT_API_BASE = "https://api.mistral.ai"
#: the contract's upload description: "The size of individual files can be a maximum of 512 MB"
MAX_FILE_SIZE = 512 * 1000 * 1000
#: the contract's default page size
PAGE_SIZE = 100
REQUEST_ID_HEADERS = ("mistral-correlation-id", "x-kong-request-id")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@frozen(kw_only=True)
class Endpoint(BaseEndpoint):
    """The Files API's endpoint (the base URL and the headers every request carries), with Mistral's errors."""

    base: str = DEFAULT_API_BASE

    def error(self, response: HttpResponse) -> ProviderError:
        return error(self.provider, response)


def normalize_api_base(value: str) -> str:
    """The API's base URL, from a value that may end with ``/v1`` (as ``MISTRAL_API_BASE`` usually does)."""
    text = value.strip().rstrip("/")
    return text[: -len("/v1")] if text.endswith("/v1") else text


def file_path(file_id: str) -> str:
    """``/v1/files/{file_id}``; :class:`InputError` for an id that is not a UUID (the contract's ``format: uuid``)."""
    text = file_id.strip()
    if not _UUID.match(text):
        raise InputError(f"{file_id!r} is not a Mistral file id (a UUID such as e85980c9-409e-4a46-9304-36588f6292b0)")
    return f"/v1/files/{quote(text, safe='')}"


def mime_type(filename: str) -> str:
    if filename.lower().endswith(".jsonl"):
        return "application/jsonl"
    import mimetypes

    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


# --- the operations -----------------------------------------------------------------------------------------------


def upload(ep: Endpoint, facts: UploadFacts) -> Exchange[FileObject]:
    """``POST /v1/files``: the ``purpose`` field and the ``file`` part, the bytes streamed from disk.

    Mistral returns the file it already has when one with the same name and content is uploaded again (its
    fine-tuning FAQ), so a second attempt makes no copy; an attempt whose answer was lost is still looked for first
    (by name and size, among the files of the purpose), and the core decides, never guessing."""
    content_type, body = multipart_body(
        [("purpose", facts.purpose)],
        [("file", facts.filename, mime_type(facts.filename), [FileRange(offset=0, length=facts.size)])],
    )
    request = ep.request("POST", ep.url("/v1/files"), headers={"Content-Type": content_type}, body=body)
    return ep.exchange(request, lambda r: read_file(ep.provider, r, size=facts.size), probe=probe(ep, facts))


def probe(ep: Endpoint, facts: UploadFacts) -> Probe:
    """The files of the upload's purpose whose name matches (``search``) with its name and size."""

    def read(response: HttpResponse) -> Sequence[FileObject]:
        files = read_page(ep.provider, response, page=0, page_size=PAGE_SIZE).files
        return [f for f in files if f.filename == facts.filename and f.bytes in (facts.size, 0)]

    request = ep.request("GET", ep.url("/v1/files", page_size=PAGE_SIZE, purpose=facts.purpose, search=facts.filename))
    return Probe(request=request, read=guarded_read(ep.provider, read))


def retrieve(ep: Endpoint, file_id: str) -> Exchange[FileObject]:
    return ep.exchange(ep.request("GET", ep.url(file_path(file_id))), lambda r: read_file(ep.provider, r))


def delete(ep: Endpoint, file_id: str) -> Exchange[bool]:
    return ep.exchange(
        ep.request("DELETE", ep.url(file_path(file_id))), lambda r: read_deleted(ep.provider, r, file_id)
    )


def download(ep: Endpoint, file_id: str) -> Exchange[bool]:
    """``GET /v1/files/{file_id}/content``, streamed by the core."""
    return ep.exchange(ep.request("GET", ep.url(file_path(file_id) + "/content")), lambda r: True)


def list_page(ep: Endpoint, *, purpose: str | None, cursor: str | None, limit: int | None) -> Exchange[FilePage]:
    """One page of ``GET /v1/files``: pages are numbered from 0, the cursor is the next page's number."""
    page = int(cursor) if cursor and cursor.isdigit() else 0
    size = limit or PAGE_SIZE
    request = ep.request("GET", ep.url("/v1/files", page=page, page_size=size, include_total=True, purpose=purpose))
    return ep.exchange(request, lambda r: read_page(ep.provider, r, page=page, page_size=size))


# --- answers ------------------------------------------------------------------------------------------------------


def _field(provider: str, data: Mapping[str, Any], name: str, kind: type, *, optional: bool = False) -> Any:
    value = data.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ProviderError(
            f"the file object's {name!r} is {type(value).__name__}, not {kind.__name__}: {dict(data)!r:.200}",
            provider=provider,
        )
    return value


def file_object(provider: str, data: Mapping[str, Any], *, size: int | None = None) -> FileObject:
    """A Mistral file as llmfiles' :class:`FileObject`.  ``bytes`` may be null (the contract's own examples have it
    so): it is then ``size`` (what was sent, for an upload's answer) or 0."""
    file_id = _field(provider, data, "id", str)
    if not file_id:
        raise ProviderError("the file object has an empty id", provider=provider)
    count = _field(provider, data, "bytes", int, optional=True)
    return FileObject(
        id=file_id,
        provider=provider,
        filename=_field(provider, data, "filename", str),
        purpose=_field(provider, data, "purpose", str),
        bytes=count if count is not None else (size or 0),
        created_at=_field(provider, data, "created_at", int),
        status="processed",  # Mistral's files have no status: they can be used as soon as they are uploaded
        expires_at=_field(provider, data, "expires_at", int, optional=True),
        raw=dict(data),
    )


def read_file(provider: str, response: HttpResponse, *, size: int | None = None) -> FileObject:
    return file_object(provider, json_object(provider, response), size=size)


def read_page(provider: str, response: HttpResponse, *, page: int, page_size: int) -> FilePage:
    """A ``ListFilesResponse``: the next page exists while ``(page + 1) * page_size < total`` (or, without a total,
    while pages come full)."""
    data = json_object(provider, response)
    items = data.get("data")
    if not isinstance(items, list):
        raise ProviderError("the listing has no 'data' array", provider=provider, status=response.status)
    files = tuple(file_object(provider, item) for item in items if isinstance(item, Mapping))
    total = data.get("total")
    if isinstance(total, int) and not isinstance(total, bool):
        more = (page + 1) * page_size < total
    else:
        more = len(items) >= page_size
    return FilePage(files=files, next_cursor=str(page + 1) if more and items else None)


def read_deleted(provider: str, response: HttpResponse, file_id: str) -> bool:
    data = json_object(provider, response)
    if data.get("deleted") is False:
        raise ProviderError(f"Mistral did not delete {file_id}", provider=provider, status=response.status)
    return True


def error(provider: str, response: HttpResponse) -> ProviderError:
    """Mistral's error body (``message``, ``type``, ``code``, ``param``), or the ``detail`` of a request that failed
    validation, and the request id header."""
    message, code, etype, param = None, None, None, None
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        inner = data.get("error")
        err: dict[str, Any] = inner if isinstance(inner, dict) else data
        message = err.get("message") if isinstance(err.get("message"), str) else None
        code = err.get("code")
        etype = err.get("type") if isinstance(err.get("type"), str) else None
        param = err.get("param") if isinstance(err.get("param"), str) else None
        if message is None and "detail" in data:
            message = _detail(data["detail"])
    if not message:
        message = response.body[:300].decode("utf-8", "replace").strip() or f"HTTP {response.status} with an empty body"
    request_id = next((response.header(h) for h in REQUEST_ID_HEADERS if response.header(h)), None)
    return ProviderError(
        message,
        provider=provider,
        status=response.status,
        code=str(code) if code is not None else None,
        error_type=etype,
        param=param,
        request_id=request_id,
    )


def _detail(detail: Any) -> str:
    """FastAPI's validation detail (``[{"loc": [...], "msg": ...}]``) as one line."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail[:5]:
            if isinstance(item, Mapping):
                loc = item.get("loc")
                where = ".".join(str(x) for x in (loc if isinstance(loc, list) else []) if x != "body")
                parts.append(f"{where}: {item.get('msg')}" if where else str(item.get("msg")))
        return "; ".join(parts) or str(detail)[:300]
    return str(detail)[:300]
