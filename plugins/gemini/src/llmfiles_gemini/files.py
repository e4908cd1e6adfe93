"""The Gemini API's Files API (the Developer API at ``generativelanguage.googleapis.com``, not Vertex AI), as pure
functions and one resumable protocol: exchanges out, llmfiles data in.  Nothing here sends a request or reads a file.

Where each behaviour comes from:

* the endpoints, ``GET``/``DELETE /v1beta/files/{id}``, ``GET /v1beta/files`` (``pageSize`` at most 100,
  ``pageToken``), ``GET /download/v1beta/files/{id}:download``, and the ``File`` resource (``sizeBytes`` as a
  string, ``sha256Hash`` in base64, ``state``, ``expirationTime``): the published contract,
  ``google/ai/generativelanguage/v1beta/file_service.proto`` and ``file.proto`` (copied into the tests), and
  https://ai.google.dev/api/files;
* the upload endpoint ``POST /upload/v1beta/files`` and its resumable protocol (``X-Goog-Upload-Protocol:
  resumable``, command ``start`` with ``X-Goog-Upload-Header-Content-Length``/``-Content-Type`` and a JSON body
  ``{"file": {"display_name": ...}}``, the session's ``X-Goog-Upload-URL``, then ``upload`` / ``upload, finalize``
  with ``X-Goog-Upload-Offset``, the last answer holding ``{"file": File}``): https://ai.google.dev/gemini-api/docs/files
  (the REST sample) and the batch guide https://ai.google.dev/gemini-api/docs/batch-api#input-file;
* the rest of that protocol, which the Gemini pages do not spell out: ``X-Goog-Upload-Chunk-Granularity`` (every
  chunk but the last a multiple of it), the ``query`` command answered with ``X-Goog-Upload-Status`` and
  ``X-Goog-Upload-Size-Received``, and ``cancel``: Google's description of the same ``X-Goog-Upload`` protocol,
  https://developers.google.com/photos/library/guides/resumable-uploads (the Gemini upload server answers a start
  with a granularity of 8 MiB, which Google's SDK's 8 MiB chunks match);
* one-request uploads: ``X-Goog-Upload-Protocol: multipart`` with a ``multipart/related`` body (the ``File``
  metadata as JSON, then the bytes), Google's upload protocol for metadata plus media in one request, listed as
  ``upload_protocol`` of ``media.upload`` in the API's discovery document;
* the key in ``x-goog-api-key``: https://ai.google.dev/gemini-api/docs/api-key; errors as
  ``{"error": {"code", "message", "status"}}``: https://ai.google.dev/gemini-api/docs/troubleshooting.

Files get a name made fresh for each upload (``files/<purpose>-<24 hex digits>``; the contract lets a create name
the file: up to 40 lowercase letters, digits or dashes), so an upload whose answer was lost is found by looking
that name up, and a file's purpose - which Gemini does not keep - is read back from its name.
"""

from __future__ import annotations

import base64
import binascii
import json
import mimetypes
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from attrs import frozen

from llmfiles.errors import AuthenticationError, InputError, ProviderError
from llmfiles.models import FileObject, FilePage, FileRange, HttpRequest, HttpResponse, Part, UploadFacts, UploadState
from llmfiles.provider import Endpoint as BaseEndpoint
from llmfiles.provider import (
    Exchange,
    PartLimits,
    Probe,
    ResumableUpload,
    guarded_error,
    guarded_read,
    json_object,
    rfc3339_seconds,
)

T = TypeVar("T")

DEFAULT_API_BASE = "https://generativelanguage.googleapis.com"
VERSION = "v1beta"
KEY_HEADER = "x-goog-api-key"
KiB = 1024
MiB = 1024 * KiB
#: Google's resumable uploads take chunks in multiples of 256 KiB (the smallest granularity a session declares)
CHUNK_ALIGNMENT = 256 * KiB
#: the chunk size of Google's own SDK, and the granularity the Gemini upload server declares
DEFAULT_CHUNK = 8 * MiB
#: chunks of at least 256 KiB: a 2 GB file needs fewer than 8,000 of them
MAX_CHUNKS = 100_000
#: ``files.list`` returns at most this many files a page (file_service.proto: "Maximum page_size is 100")
MAX_PAGE_SIZE = 100
#: the longest display name a File may have (file.proto: "no more than 512 characters")
MAX_DISPLAY_NAME = 512
#: where a Google server puts the id of a request besides the error's ``google.rpc.RequestInfo`` detail.  Not the upload
#: server's ``X-GUploader-UploadID``: it names the upload session, whose URL works as a credential
REQUEST_ID_HEADERS = ("x-request-id",)
#: the purpose a file has when its name does not say (a file another tool uploaded)
DEFAULT_PURPOSE = "user_data"
#: Gemini's File states (file.proto) onto llmfiles' statuses
STATUS_MAP: Mapping[str, str] = {
    "STATE_UNSPECIFIED": "uploaded",
    "PROCESSING": "pending",
    "ACTIVE": "processed",
    "FAILED": "error",
}
#: file.proto: "The ID ... can contain up to 40 characters that are lowercase alphanumeric or dashes (-). The ID cannot
#: start or end with a dash."
_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")


@frozen(kw_only=True)
class Endpoint(BaseEndpoint):
    """The Gemini API's endpoint: the base URL and the key header (plus any a credential plugin gave)."""

    base: str = DEFAULT_API_BASE
    #: where the key came from ("env GOOGLE_API_KEY"), said when Gemini refuses it - never the key itself
    key_source: str | None = None

    def error(self, response: HttpResponse) -> ProviderError:
        return error_reader(self.provider, None, self.key_source)(response)

    def exchange(
        self,
        request: HttpRequest,
        read: Callable[[HttpResponse], T],
        *,
        file_id: str | None = None,
        probe: Probe | None = None,
    ) -> Exchange[T]:
        """``request`` with its reader and the Gemini error reader (guarded: an answer of a shape they do not expect
        is a ``ProviderError`` saying so, never a bare ``KeyError``)."""
        return Exchange(
            request=request,
            read=guarded_read(self.provider, read),
            error=guarded_error(self.provider, error_reader(self.provider, file_id, self.key_source)),
            probe=probe,
        )


# --- names --------------------------------------------------------------------------------------------------------


def normalize_api_base(value: str) -> str:
    """The API's base URL (``https://host[/prefix]``), from a value that may end with ``/v1beta``."""
    text = value.strip().rstrip("/")
    for suffix in (f"/upload/{VERSION}", f"/{VERSION}"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
    return text


def _slug(purpose: str) -> str:
    return purpose.replace("_", "-")


def new_file_name(purpose: str) -> str:
    """A name made fresh for one upload: ``files/<purpose>-<24 hex digits>`` (its id at most 40 characters)."""
    return f"files/{_slug(purpose)}-{secrets.token_hex(12)}"


def purpose_of(name: str, purposes: Sequence[str]) -> str:
    """The purpose llmfiles put in a file's name, or :data:`DEFAULT_PURPOSE` for a file named otherwise."""
    file_id = name.removeprefix("files/")
    for purpose in sorted(purposes, key=len, reverse=True):
        if file_id.startswith(_slug(purpose) + "-"):
            return purpose
    return DEFAULT_PURPOSE


def file_name(file_id: str) -> str:
    """``files/<id>`` from ``files/<id>``, ``<id>`` or the file's ``uri``; :class:`InputError` for anything that is
    not a Gemini file id (the contract's rule: up to 40 lowercase letters, digits or dashes)."""
    text = file_id.strip()
    if "://" in text:
        path = urlsplit(text).path
        text = path[path.find("/files/") + 1 :] if "/files/" in path else path
    bare = text.removeprefix("files/")
    if not _ID.match(bare):
        raise InputError(
            f"{file_id!r} is not a Gemini file id: use the file's name, files/<id>, where <id> is up to 40 lowercase "
            "letters, digits or dashes"
        )
    return f"files/{bare}"


def mime_type(filename: str) -> str:
    """The MIME type the upload declares: ``application/jsonl`` for JSONL, else guessed from the name."""
    if filename.lower().endswith(".jsonl"):
        return "application/jsonl"
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def metadata(facts: UploadFacts, name: str) -> dict[str, Any]:
    """The ``CreateFileRequest`` body: the fresh name and the file's name as display name (at most 512 characters)."""
    return {"file": {"name": name, "display_name": facts.filename[:MAX_DISPLAY_NAME]}}


# --- one request --------------------------------------------------------------------------------------------------


def upload(ep: Endpoint, facts: UploadFacts, name: str, purposes: Sequence[str]) -> Exchange[FileObject]:
    """``POST /upload/v1beta/files`` with ``X-Goog-Upload-Protocol: multipart``: the metadata, then the bytes.

    The name is unique to this upload, so an attempt whose answer was lost is looked up by it: found, it is this
    upload's (the core then compares its ``sha256Hash`` with the bytes sent)."""
    boundary = f"llmfiles-{secrets.token_hex(16)}"
    head = (
        f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
        f"{json.dumps(metadata(facts, name), ensure_ascii=False)}\r\n"
        f"--{boundary}\r\nContent-Type: {mime_type(facts.filename)}\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    request = ep.request(
        "POST",
        ep.url(f"/upload/{VERSION}/files"),
        headers={"X-Goog-Upload-Protocol": "multipart", "Content-Type": f"multipart/related; boundary={boundary}"},
        body=(head, FileRange(offset=0, length=facts.size), tail),
    )
    provider = ep.provider
    return ep.exchange(request, lambda r: read_created(provider, r, purposes), probe=lookup_probe(ep, name, purposes))


def lookup_probe(ep: Endpoint, name: str, purposes: Sequence[str]) -> Probe:
    """Find the file an upload named ``name`` made, if its answer was lost: ``GET`` it (404: it made none)."""
    provider = ep.provider

    def found(response: HttpResponse) -> Sequence[FileObject]:
        return [] if response.status == 404 else [read_file(provider, response, purposes)]

    return Probe(
        request=ep.request("GET", ep.url(f"/{VERSION}/{quote(name, safe='/')}")),
        read=guarded_read(provider, found),
        unique=True,
    )


# --- the resumable session ----------------------------------------------------------------------------------------


class GeminiResumable(ResumableUpload):
    """The Files API's resumable upload: ``start`` opens a session at the upload URL, ``upload`` commands fill it in
    order, the one that says ``finalize`` makes the file.  After a failure the session is asked (``query``) how many
    bytes it holds, and the upload continues from there, in this run or a later one.  The upload URL works as a
    credential: it is kept in the resume state and never shown (its ``upload_id`` is masked wherever a URL is
    logged)."""

    def __init__(self, ep: Endpoint, facts: UploadFacts, name: str, purposes: Sequence[str], *, part_size: int) -> None:
        self.ep = ep
        self.facts = facts
        self.name = name
        self.purposes = tuple(purposes)
        self.size = facts.size
        self.destination = ep.url(f"/upload/{VERSION}/files")
        # the part_size setting, rounded down to a multiple of 256 KiB
        self.chunk_size = max(CHUNK_ALIGNMENT, part_size // CHUNK_ALIGNMENT * CHUNK_ALIGNMENT)
        self.limits = PartLimits(
            preferred=self.chunk_size, minimum=CHUNK_ALIGNMENT, alignment=CHUNK_ALIGNMENT, max_parts=MAX_CHUNKS
        )

    def start(self) -> Exchange[UploadState]:
        """``start``: the metadata; the answer's ``X-Goog-Upload-URL`` is where the bytes go.  A session holds nothing
        until bytes arrive, so a start whose answer was lost is simply sent again (the first session expires)."""
        headers = {
            "X-Goog-Upload-Protocol": "resumable",
            "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Header-Content-Length": str(self.size),
            "X-Goog-Upload-Header-Content-Type": mime_type(self.facts.filename),
            "Content-Type": "application/json",
        }
        body = json.dumps(metadata(self.facts, self.name), ensure_ascii=False).encode()
        request = self.ep.request("POST", self.destination, headers=headers, body=body, idempotent=True)
        return self.ep.exchange(request, self._read_start)

    def _read_start(self, response: HttpResponse) -> UploadState:
        provider = self.ep.provider
        url = response.header("x-goog-upload-url")
        if not url:
            raise ProviderError(
                "the resumable upload was started without an upload URL (X-Goog-Upload-URL header)",
                provider=provider,
                status=response.status,
            )
        granularity = _int_header(response, "x-goog-upload-chunk-granularity", provider) or 0
        if granularity > 0 and self.size > self.chunk_size and self.chunk_size % granularity:
            raise ProviderError(
                f"the upload server takes chunks in multiples of {granularity:,} bytes and the part size is "
                f"{self.chunk_size:,}: set part_size to a multiple of {granularity:,} (the default, 8 MiB, is one)",
                provider=provider,
                status=response.status,
            )
        try:
            upload_url = rebase(url, self.ep.base)
        except ValueError:  # the URL is a credential: not quoted
            raise ProviderError(
                "the resumable upload was started with an upload URL that is no URL (X-Goog-Upload-URL header)",
                provider=provider,
                status=response.status,
            ) from None
        return {"upload_url": upload_url, "name": self.name, "granularity": granularity}

    def chunk(self, state: UploadState, part: Part, final: bool) -> Exchange[int | FileObject]:
        """``upload`` (``upload, finalize`` for the last bytes) at ``X-Goog-Upload-Offset``."""
        command = "upload, finalize" if final else "upload"
        request = self.ep.request(
            "POST",
            str(state["upload_url"]),
            headers={"X-Goog-Upload-Command": command, "X-Goog-Upload-Offset": str(part.offset)},
            body=(part.body,),
        )
        end = part.offset + part.length
        provider, purposes = self.ep.provider, self.purposes
        return self.ep.exchange(request, lambda r: read_progress(provider, r, purposes, sent_to=end, final=final))

    def query(self, state: UploadState) -> Exchange[int | FileObject]:
        """``query``: how many bytes the session holds (``X-Goog-Upload-Size-Received``), or the file when it is
        final."""
        request = self.ep.request(
            "POST", str(state["upload_url"]), headers={"X-Goog-Upload-Command": "query"}, idempotent=True
        )
        provider, purposes, name = self.ep.provider, self.purposes, str(state["name"])
        return self.ep.exchange(request, lambda r: read_query(provider, r, purposes, name))

    def abort(self, state: UploadState) -> Exchange[object]:
        """``cancel``: end the session."""
        request = self.ep.request(
            "POST", str(state["upload_url"]), headers={"X-Goog-Upload-Command": "cancel"}, idempotent=True
        )
        return self.ep.exchange(request, lambda r: True)


def rebase(upload_url: str, base: str) -> str:
    """The session's upload URL on the configured API base (its path and query kept), as Google's SDK does: the file's
    bytes go where every other request goes - through a proxy when ``api_base`` is one - never to another host."""
    got, at = urlsplit(upload_url), urlsplit(base)
    path = got.path or "/"
    if at.path and not path.startswith(at.path.rstrip("/") + "/"):
        path = at.path.rstrip("/") + path
    return f"{at.scheme}://{at.netloc}{path}" + (f"?{got.query}" if got.query else "")


def _int_header(response: HttpResponse, name: str, provider: str) -> int | None:
    value = response.header(name)
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        number = -1
    if number < 0:
        raise ProviderError(f"unexpected {name} header {value!r} in the upload server's answer", provider=provider)
    return number


def read_progress(
    provider: str, response: HttpResponse, purposes: Sequence[str], *, sent_to: int, final: bool
) -> int | FileObject:
    """An ``upload`` answer: the file once the session is ``final``; else how many bytes the session holds
    (``X-Goog-Upload-Size-Received`` when the server says it, else all that was sent, as Google's SDK counts)."""
    status = (response.header("x-goog-upload-status") or "").strip().lower()
    if status == "final" or (not status and final):
        return read_created(provider, response, purposes)
    if status == "cancelled":
        # the session is over: 410 (Gone) lets a resumed upload start a new one
        raise ProviderError("the upload session was cancelled", provider=provider, status=410)
    if status != "active":
        raise ProviderError(
            f"unexpected upload status {status or '(none)'!r} in the upload server's answer",
            provider=provider,
            status=response.status,
        )
    if final:
        raise ProviderError(
            "the upload server did not finalize the file after its last bytes (its status is still 'active')",
            provider=provider,
            status=response.status,
        )
    received = _int_header(response, "x-goog-upload-size-received", provider)
    return sent_to if received is None else received


def read_query(provider: str, response: HttpResponse, purposes: Sequence[str], name: str) -> int | FileObject:
    """A ``query`` answer: the bytes the session holds, or the file when the session is ``final``."""
    status = (response.header("x-goog-upload-status") or "").strip().lower()
    if status == "final":
        try:
            return read_created(provider, response, purposes)
        except ProviderError:
            raise ProviderError(
                f"the upload session is complete, but its answer no longer holds the file: it is {name}; "
                "retrieve it to see it",
                provider=provider,
                status=response.status,
            ) from None
    if status == "cancelled":
        raise ProviderError("the upload session was cancelled", provider=provider, status=410)
    received = _int_header(response, "x-goog-upload-size-received", provider)
    if status != "active" or received is None:
        raise ProviderError(
            "unexpected answer to the upload session's status query (status "
            f"{status or '(none)'!r}, X-Goog-Upload-Size-Received {response.header('x-goog-upload-size-received')!r})",
            provider=provider,
            status=response.status,
        )
    return received


# --- other operations ---------------------------------------------------------------------------------------------


def retrieve(ep: Endpoint, name: str, purposes: Sequence[str]) -> Exchange[FileObject]:
    """``GET /v1beta/files/{id}``."""
    provider = ep.provider
    request = ep.request("GET", ep.url(f"/{VERSION}/{quote(name, safe='/')}"))
    return ep.exchange(request, lambda r: read_file(provider, r, purposes), file_id=name)


def delete(ep: Endpoint, name: str) -> Exchange[bool]:
    """``DELETE /v1beta/files/{id}`` (answered with an empty object)."""
    return ep.exchange(
        ep.request("DELETE", ep.url(f"/{VERSION}/{quote(name, safe='/')}")), lambda r: True, file_id=name
    )


def download(ep: Endpoint, name: str) -> Exchange[bool]:
    """``GET /download/v1beta/files/{id}:download?alt=media``, as the batch guide fetches a batch's results.  Gemini
    serves the content of files it made (batch results); a file that was uploaded is refused with its own message."""
    url = ep.url(f"/download/{VERSION}/{quote(name, safe='/')}:download", alt="media")
    return ep.exchange(ep.request("GET", url), lambda r: True, file_id=name)


def list_page(
    ep: Endpoint, *, purpose: str | None, cursor: str | None, limit: int | None, purposes: Sequence[str]
) -> Exchange[FilePage]:
    """One page of ``GET /v1beta/files`` (``pageSize`` at most 100); Gemini keeps no purpose, so the purpose filter is
    applied to the names llmfiles gave."""
    size = min(limit, MAX_PAGE_SIZE) if limit else MAX_PAGE_SIZE
    request = ep.request("GET", ep.url(f"/{VERSION}/files", pageSize=size, pageToken=cursor))
    provider = ep.provider
    return ep.exchange(request, lambda r: read_page(provider, r, purpose, purposes))


# --- answers ------------------------------------------------------------------------------------------------------


def sha256_hex(value: Any) -> str | None:
    """``sha256Hash`` (``bytes`` in the contract, so base64 in JSON) as hex.  The service has been seen to put the
    hex digest's text in those bytes (88 base64 characters) as well as the raw digest (44): both are read; anything
    else is no checksum at all (``None``), never a wrong one."""
    if not isinstance(value, str) or not value:
        return None
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            raw = decode(value.encode("ascii"), validate=True) if decode is base64.b64decode else decode(value)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            continue
        if len(raw) == 32:
            return raw.hex()
        if len(raw) == 64 and re.fullmatch(rb"[0-9a-fA-F]{64}", raw):
            return raw.decode("ascii").lower()
    return None


def file_object(provider: str, data: Mapping[str, Any], purposes: Sequence[str]) -> FileObject:
    """A ``File`` resource as llmfiles' :class:`FileObject`: its name is the id, its display name the file name, its
    ``state`` the status, ``expirationTime`` (48 hours after the upload) ``expires_at``, and ``sha256Hash`` the
    ``sha256`` checksum the core compares with the bytes it sent."""
    name = data.get("name")
    if not isinstance(name, str) or not name.startswith("files/") or len(name) <= len("files/"):
        raise ProviderError(f"the File has no name (files/<id>): {dict(data)!r:.200}", provider=provider)
    size = data.get("sizeBytes")
    try:
        size_bytes = int(size) if size is not None and not isinstance(size, bool) else 0
    except (TypeError, ValueError):
        raise ProviderError(f"the File's sizeBytes is {size!r}, not a number", provider=provider) from None
    state = data.get("state")
    error = data.get("error")
    details = error.get("message") if isinstance(error, Mapping) else None
    display = data.get("displayName")
    digest = sha256_hex(data.get("sha256Hash"))
    return FileObject(
        id=name,
        provider=provider,
        filename=display if isinstance(display, str) and display else name.removeprefix("files/"),
        purpose=purpose_of(name, purposes),
        bytes=size_bytes,
        created_at=rfc3339_seconds(data.get("createTime")) or 0,
        status=STATUS_MAP.get(state if isinstance(state, str) else "", "pending"),  # type: ignore[arg-type]
        expires_at=rfc3339_seconds(data.get("expirationTime")),
        status_details=str(details) if details else None,
        checksums={"sha256": digest} if digest else {},
        raw=dict(data),
    )


def read_file(provider: str, response: HttpResponse, purposes: Sequence[str]) -> FileObject:
    """An answer holding one ``File``."""
    return file_object(provider, json_object(provider, response), purposes)


def read_created(provider: str, response: HttpResponse, purposes: Sequence[str]) -> FileObject:
    """An upload's last answer: ``{"file": File}`` (``CreateFileResponse``)."""
    data = json_object(provider, response)
    created = data.get("file")
    if not isinstance(created, Mapping):
        raise ProviderError(
            f"the upload's answer holds no file: {response.body[:200]!r}", provider=provider, status=response.status
        )
    return file_object(provider, created, purposes)


def read_page(provider: str, response: HttpResponse, purpose: str | None, purposes: Sequence[str]) -> FilePage:
    """A ``ListFilesResponse`` (``files``, ``nextPageToken``), filtered on ``purpose``."""
    data = json_object(provider, response)
    items = data.get("files") or []
    if not isinstance(items, list):
        raise ProviderError("the listing's files are not a list", provider=provider, status=response.status)
    files = [file_object(provider, item, purposes) for item in items if isinstance(item, Mapping)]
    if purpose is not None:
        files = [f for f in files if f.purpose == purpose]
    token = data.get("nextPageToken")
    return FilePage(files=tuple(files), next_cursor=token if isinstance(token, str) and token else None)


def error_reader(
    provider: str, file_id: str | None = None, key_source: str | None = None
) -> Callable[[HttpResponse], ProviderError]:
    """Google's error body (``error.message``, ``error.status`` such as ``NOT_FOUND``) and its request id as a
    :class:`ProviderError`; ``file_id`` names the file of a 404 that says nothing.  Google answers a key it does not
    know with 400 and the reason ``API_KEY_INVALID``: that is an :class:`AuthenticationError` naming where the key came
    from (``key_source``)."""

    def read(response: HttpResponse) -> ProviderError:
        message, status = None, None
        try:
            data = response.json()
        except ValueError:
            data = None
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict):
            message = err.get("message") if isinstance(err.get("message"), str) else None
            status = err.get("status") if isinstance(err.get("status"), str) else None
        if not message:
            text = response.body[:300].decode("utf-8", "replace").strip()
            if response.status == 404 and file_id and not text:
                text = f"no such file: {file_id}"
            message = text or f"HTTP {response.status} with an empty body"
        details = err.get("details") if isinstance(err, dict) else None
        request_id = _request_info(details) or next(
            (response.header(h) for h in REQUEST_ID_HEADERS if response.header(h)), None
        )
        cls = ProviderError
        if _reason(details) == "API_KEY_INVALID":
            cls = AuthenticationError
            message = f"{message} (the key came from {key_source or 'the settings'}; check it is a Gemini API key)"
        return cls(
            message, provider=provider, status=response.status, code=status, request_id=request_id, details=details
        )

    return read


def _request_info(details: Any) -> str | None:
    """The ``requestId`` of a ``google.rpc.RequestInfo`` among an error's details (Google's error model)."""
    if not isinstance(details, list):
        return None
    for item in details:
        if isinstance(item, Mapping) and str(item.get("@type", "")).endswith("google.rpc.RequestInfo"):
            value = item.get("requestId")
            if isinstance(value, str) and value:
                return value
    return None


def _reason(details: Any) -> str | None:
    """The ``reason`` of a ``google.rpc.ErrorInfo`` among an error's details (``API_KEY_INVALID``, ...)."""
    if not isinstance(details, list):
        return None
    for item in details:
        if isinstance(item, Mapping) and str(item.get("@type", "")).endswith("google.rpc.ErrorInfo"):
            reason = item.get("reason")
            return reason if isinstance(reason, str) else None
    return None
