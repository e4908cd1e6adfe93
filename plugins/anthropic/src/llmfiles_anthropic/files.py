"""Anthropic's Files API, as pure functions: exchanges out, llmfiles data in.  Nothing here sends a request or reads
a file.

Anthropic publishes no OpenAPI document for it (its SDKs are generated from one hosted elsewhere), so every behaviour
comes from a page of its documentation or from its SDK's types:

* https://platform.claude.com/docs/en/build-with-claude/files: the endpoints (``POST /v1/files`` multipart with a
  ``file`` part, ``GET /v1/files``, ``GET``/``DELETE /v1/files/{file_id}``, ``GET /v1/files/{file_id}/content``), the
  beta header ``anthropic-beta: files-api-2025-04-14``, 500 MB a file, the filename rule (1 to 255 characters, none
  of ``< > : " | ? * \\ /`` or U+0000-U+001F), and that only files made by skills or the code execution tool can be
  downloaded;
* https://platform.claude.com/docs/en/api/files-create, ``files-list``, ``files-metadata``, ``files-delete``,
  ``files-content`` and the SDK's ``FileMetadata``/``DeletedFile`` types: a file is ``{id, type: "file", filename,
  mime_type, size_bytes, created_at (RFC 3339), downloadable?}``; a listing ``{data, first_id, last_id, has_more}``
  paged with ``after_id`` and ``limit`` (1 to 1000, default 20); a deletion ``{id, type: "file_deleted"}``;
* https://platform.claude.com/docs/en/api/overview and ``/api/versioning``: ``x-api-key`` and
  ``anthropic-version: 2023-06-01``; https://platform.claude.com/docs/en/api/errors: errors as
  ``{"type": "error", "error": {"type", "message"}, "request_id"}`` with a ``request-id`` header.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from attrs import frozen

from llmfiles.errors import InputError, ProviderError
from llmfiles.models import FileObject, FilePage, FileRange, HttpResponse, UploadFacts
from llmfiles.multipart import multipart_body
from llmfiles.provider import Endpoint as BaseEndpoint
from llmfiles.provider import Exchange, Probe, guarded_read, json_object, rfc3339_seconds

DEFAULT_API_BASE = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
FILES_BETA = "files-api-2025-04-14"
FILES_DOC = "https://platform.claude.com/docs/en/build-with-claude/files"
#: files.md: "Maximum file size: 500 MB per file" (taken as 500,000,000 bytes)
MAX_FILE_SIZE = 500 * 1000 * 1000
#: files-list: "Defaults to 20. Ranges from 1 to 1000."
MAX_PAGE_SIZE = 1000
#: the files a lost upload's answer is looked for among (the newest first)
PROBE_PAGE_SIZE = 100
#: files.md, "Invalid filename (400)": forbidden characters, and the length
_FORBIDDEN = re.compile(r'[<>:"|?*\\/\x00-\x1f]')
MAX_FILENAME = 255
_ID = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


@frozen(kw_only=True)
class Endpoint(BaseEndpoint):
    """The Files API's endpoint (the base URL and the headers every request carries), with Anthropic's errors."""

    #: the purpose a file is reported with (Anthropic keeps none)
    purpose: str
    base: str = DEFAULT_API_BASE

    def error(self, response: HttpResponse) -> ProviderError:
        return error(self.provider, response)


def normalize_api_base(value: str) -> str:
    """The API's base URL, from a value that may end with ``/v1``."""
    text = value.strip().rstrip("/")
    return text[: -len("/v1")] if text.endswith("/v1") else text


def check_filename(filename: str) -> None:
    """:class:`InputError` for a name Anthropic refuses (files.md, "Invalid filename (400)"), before a byte is sent."""
    bad = sorted(set(_FORBIDDEN.findall(filename)))
    if not 1 <= len(filename) <= MAX_FILENAME or bad:
        shown = ", ".join(repr(c) for c in bad)
        why = f"it contains {shown}" if bad else f"it has {len(filename)} characters"
        raise InputError(
            f"Anthropic refuses the file name {filename[:80]!r}: {why}. A name has 1 to {MAX_FILENAME} characters and "
            f'none of < > : " | ? * \\ / or control characters ({FILES_DOC}#error-handling); pass filename= to '
            "upload it under another name"
        )


def file_path(file_id: str) -> str:
    """``/v1/files/{file_id}``; :class:`InputError` for an id that is not one (letters, digits, ``_`` and ``-``)."""
    text = file_id.strip()
    if not _ID.match(text):
        raise InputError(f"{file_id!r} is not an Anthropic file id (they look like file_011CNha8iCJcU1wXNR6q4V8w)")
    return f"/v1/files/{quote(text, safe='')}"


def mime_type(filename: str) -> str:
    """The part's content type (the documented types are PDF, plain text and images; JSONL is text)."""
    if filename.lower().endswith((".jsonl", ".txt", ".md", ".csv")):
        return "text/plain"
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


# --- the operations ---------------------------------------------------------------------------------------------


def upload(ep: Endpoint, facts: UploadFacts) -> Exchange[FileObject]:
    """``POST /v1/files``, multipart with one ``file`` part, the bytes streamed from disk.  Anthropic's files carry no
    checksum, so an upload whose answer was lost is looked for by name and size among the newest files and, when one
    is there, the core stops with ``MaybeUploaded`` rather than guess."""
    check_filename(facts.filename)
    content_type, body = multipart_body(
        [], [("file", facts.filename, mime_type(facts.filename), [FileRange(offset=0, length=facts.size)])]
    )
    request = ep.request("POST", ep.url("/v1/files"), headers={"Content-Type": content_type}, body=body)
    return ep.exchange(request, lambda r: read_file(ep, r), probe=probe(ep, facts))


def probe(ep: Endpoint, facts: UploadFacts) -> Probe:
    """The newest files with the upload's name and size."""

    def read(response: HttpResponse) -> Sequence[FileObject]:
        return [
            f for f in read_page(ep, response, None).files if f.filename == facts.filename and f.bytes == facts.size
        ]

    return Probe(
        request=ep.request("GET", ep.url("/v1/files", limit=PROBE_PAGE_SIZE)), read=guarded_read(ep.provider, read)
    )


def retrieve(ep: Endpoint, file_id: str) -> Exchange[FileObject]:
    return ep.exchange(ep.request("GET", ep.url(file_path(file_id))), lambda r: read_file(ep, r))


def delete(ep: Endpoint, file_id: str) -> Exchange[bool]:
    return ep.exchange(ep.request("DELETE", ep.url(file_path(file_id))), lambda r: read_deleted(ep, r, file_id))


def download(ep: Endpoint, file_id: str) -> Exchange[bool]:
    """``GET /v1/files/{file_id}/content``: Anthropic serves files made by skills or the code execution tool; a file
    that was uploaded is refused with Anthropic's own message."""
    return ep.exchange(ep.request("GET", ep.url(file_path(file_id) + "/content")), lambda r: True)


def list_page(
    ep: Endpoint, *, purpose: str | None, purposes: Sequence[str], cursor: str | None, limit: int | None
) -> Exchange[FilePage]:
    """One page of ``GET /v1/files`` (``after_id``, ``limit``).  Every file is one to use in messages, so a listing of
    one of those purposes lists them all, and of any other purpose none."""
    size = min(limit, MAX_PAGE_SIZE) if limit else None
    request = ep.request("GET", ep.url("/v1/files", after_id=cursor, limit=size))
    keep = purpose is None or purpose in purposes
    return ep.exchange(request, lambda r: read_page(ep, r, None) if keep else FilePage(files=()))


# --- answers ----------------------------------------------------------------------------------------------------


def file_object(ep: Endpoint, data: Mapping[str, Any]) -> FileObject:
    """A ``FileMetadata`` as llmfiles' :class:`FileObject`.  A field of the wrong type is a :class:`ProviderError`:
    a malformed answer must not become a plausible-looking file."""
    provider = ep.provider
    file_id, filename, size = data.get("id"), data.get("filename"), data.get("size_bytes")
    if not isinstance(file_id, str) or not file_id or data.get("type", "file") != "file":
        raise ProviderError(f"the answer is not a file's metadata: {dict(data)!r:.200}", provider=provider)
    if not isinstance(filename, str) or not isinstance(size, int) or isinstance(size, bool):
        raise ProviderError(
            f"the file's metadata has no filename or size_bytes of the right type: {dict(data)!r:.200}",
            provider=provider,
        )
    created = rfc3339_seconds(data.get("created_at"))
    if created is None:
        raise ProviderError(
            f"the file's created_at is not an RFC 3339 time: {data.get('created_at')!r}", provider=provider
        )
    return FileObject(
        id=file_id,
        provider=provider,
        filename=filename,
        purpose=ep.purpose,
        bytes=size,
        created_at=created,
        status="processed",  # a file can be used in messages as soon as it is uploaded
        expires_at=rfc3339_seconds(data.get("expires_at")),
        raw=dict(data),
    )


def read_file(ep: Endpoint, response: HttpResponse) -> FileObject:
    return file_object(ep, json_object(ep.provider, response))


def read_page(ep: Endpoint, response: HttpResponse, purpose: str | None) -> FilePage:
    """A listing: ``data``, and ``last_id`` as the next page's ``after_id`` while ``has_more``."""
    data = json_object(ep.provider, response)
    items = data.get("data")
    if not isinstance(items, list):
        raise ProviderError("the listing has no 'data' array", provider=ep.provider, status=response.status)
    files = tuple(file_object(ep, item) for item in items if isinstance(item, Mapping))
    cursor = None
    if data.get("has_more") and files:
        last = data.get("last_id")
        cursor = last if isinstance(last, str) and last else files[-1].id
    return FilePage(files=files, next_cursor=cursor)


def read_deleted(ep: Endpoint, response: HttpResponse, file_id: str) -> bool:
    data = json_object(ep.provider, response)
    if data.get("type") not in (None, "file_deleted"):
        raise ProviderError(
            f"unexpected answer to the deletion of {file_id}: {dict(data)!r:.200}",
            provider=ep.provider,
            status=response.status,
        )
    return True


def error(provider: str, response: HttpResponse) -> ProviderError:
    """Anthropic's error body (``error.type`` as the code, ``error.message``) and its request id (the ``request-id``
    header, or the body's ``request_id``)."""
    message, etype, request_id = None, None, response.header("request-id")
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            message = err.get("message") if isinstance(err.get("message"), str) else None
            etype = err.get("type") if isinstance(err.get("type"), str) else None
        if not request_id and isinstance(data.get("request_id"), str):
            request_id = data["request_id"]
    if not message:
        message = response.body[:300].decode("utf-8", "replace").strip() or f"HTTP {response.status} with an empty body"
    return ProviderError(message, provider=provider, status=response.status, code=etype, request_id=request_id)
