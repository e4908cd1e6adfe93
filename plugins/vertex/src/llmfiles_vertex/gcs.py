"""The Cloud Storage JSON API, as pure functions and one protocol class: exchanges out, llmfiles data in.

Small files go up in one ``uploadType=multipart`` request (``multipart/related``: the object's metadata, then the
file's bytes, which the core streams into the body's :class:`~llmfiles.models.FileRange`); large ones through a
resumable session (:class:`ResumableSession`), one chunk after the other, each a multiple of 256 KiB except the last,
which carries the total size.  Every object is created with ``ifGenerationMatch=0`` under a name made fresh for the
upload, so nothing is ever overwritten and a lost answer is found by looking the name up.  Cloud Storage reports
the MD5 of what it stored (``md5Hash``): it becomes ``FileObject.checksums["md5"]``, which the core compares with
the MD5 of the bytes it sent.  Nothing here sends a request or reads a file.
"""

from __future__ import annotations

import base64
import binascii
import json
import mimetypes
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

from attrs import frozen

from llmfiles.errors import InputError, ProviderError
from llmfiles.models import (
    FileObject,
    FilePage,
    FileRange,
    HttpRequest,
    HttpResponse,
    Part,
    UploadFacts,
    UploadState,
)
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
from llmfiles.urls import Origin, origin

T = TypeVar("T")

DEFAULT_API_BASE = "https://storage.googleapis.com"
#: resumable chunks are multiples of this (except the last)
CHUNK_ALIGNMENT = 256 * 1024
#: Cloud Storage keeps an unfinished resumable upload session for a week
SESSION_TTL = 7 * 24 * 3600
#: a session's chunks grow so that a file fits in this many (Cloud Storage itself sets no count)
MAX_CHUNKS = 100_000
#: custom metadata keys (object metadata, so retrieve and list give them back)
META_PURPOSE = "llmfiles-purpose"
META_FILENAME = "llmfiles-filename"
META_FORMAT = "llmfiles-format"
META_PROJECT = "llmfiles-vertex-project"
META_LOCATION = "llmfiles-vertex-location"
REQUEST_ID_HEADER = "x-guploader-uploadid"

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_RANGE_RE = re.compile(r"\s*bytes=0-(\d+)\s*")


@frozen(kw_only=True)
class Endpoint(BaseEndpoint):
    """The Cloud Storage JSON API's endpoint: the base URL and the auth headers."""

    base: str = DEFAULT_API_BASE

    def objects_url(self, bucket: str, name: str | None = None, **params: Any) -> str:
        """``/storage/v1/b/<bucket>/o[/<object>]`` with ``params`` as the query."""
        path = f"/storage/v1/b/{quote(bucket, safe='')}/o"
        if name is not None:
            path += "/" + quote(name, safe="")
        return self.url(path, **params)

    def upload_url(self, bucket: str, **params: Any) -> str:
        """``/upload/storage/v1/b/<bucket>/o`` with ``params`` as the query."""
        return self.url(f"/upload/storage/v1/b/{quote(bucket, safe='')}/o", **params)

    def error(self, response: HttpResponse) -> ProviderError:
        return error_reader(self.provider, False, None)(response)

    def exchange(
        self,
        request: HttpRequest,
        read: Callable[[HttpResponse], T],
        *,
        upload: bool = False,
        file_id: str | None = None,
        probe: Probe | None = None,
    ) -> Exchange[T]:
        """``request`` with its reader and Cloud Storage's error reader (``upload``/``file_id`` say what it is)."""
        return Exchange(
            request=request,
            read=guarded_read(self.provider, read),
            error=guarded_error(self.provider, error_reader(self.provider, upload, file_id)),
            probe=probe,
        )


# --- names and ids ------------------------------------------------------------------------------------------


def normalize_api_base(value: str) -> str:
    """``api_base`` or ``STORAGE_EMULATOR_HOST`` (which may be a bare ``host:port``) as a base URL."""
    text = value.strip().rstrip("/")
    if "://" not in text:
        text = f"http://{text}"
    for suffix in ("/storage/v1", "/upload/storage/v1"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
    return text


def check_bucket(value: str, where: str) -> str:
    """A bucket name (``gs://`` and a trailing slash are tolerated); raises ``InputError`` when malformed."""
    name = value.strip()
    if name.startswith("gs://"):
        name = name[5:]
    name = name.rstrip("/")
    if "/" in name:
        raise InputError(
            f"bucket (from {where}) {value!r} holds a path; give the bucket name alone and the folder as prefix= "
            "(env LLMFILES_GCS_PREFIX)"
        )
    if not _BUCKET_RE.match(name):
        raise InputError(
            f"bucket (from {where}) {value!r} is not a Cloud Storage bucket name "
            "(3-63 lowercase letters, digits, '-', '_' or '.')"
        )
    return name


def normalize_prefix(value: str | None) -> str:
    """The folder objects go under: no leading slash, one trailing slash (or empty for the bucket's root)."""
    text = (value or "").strip().lstrip("/")
    if not text:
        return ""
    if any(part in (".", "..") for part in text.split("/")):
        raise InputError(f"prefix {value!r} may not contain '.' or '..' segments")
    return text if text.endswith("/") else text + "/"


def safe_filename(filename: str) -> str:
    """``filename`` with only ``A-Z a-z 0-9 . _ -`` (anything else becomes ``_``), as the last part of a name."""
    cleaned = _UNSAFE.sub("_", filename).strip("._") or "upload.jsonl"
    return cleaned[-200:]


def object_name(prefix: str, filename: str) -> str:
    """A fresh object name: ``<prefix><UTC time>-<12 random hex digits>/<safe filename>``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"{prefix}{stamp}-{secrets.token_hex(6)}/{safe_filename(filename)}"


def parse_file_id(file_id: str, default_bucket: str | None) -> tuple[str, str]:
    """``gs://bucket/object`` (or an object name in the configured bucket) as ``(bucket, object)``."""
    text = file_id.strip()
    if text.startswith("gs://"):
        bucket, _, name = text[5:].partition("/")
        if not bucket or not name:
            raise InputError(f"{file_id!r} is not a gs://bucket/object id")
        return bucket, name
    if default_bucket is None:
        raise InputError(f"{file_id!r} is not a gs://bucket/object id (and no bucket is set to look it up in)")
    return default_bucket, text.lstrip("/")


def content_type(filename: str) -> str:
    """The object's content type: ``application/jsonl`` for JSONL files."""
    if filename.lower().endswith(".jsonl"):
        return "application/jsonl"
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def md5_hex(b64: str) -> str | None:
    """Cloud Storage's base64 ``md5Hash`` as hex (``None`` when it is not a base64 MD5)."""
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 16 else None


# --- one request ----------------------------------------------------------------------------------------------


def upload(ep: Endpoint, bucket: str, metadata: Mapping[str, Any], facts: UploadFacts) -> Exchange[FileObject]:
    """``uploadType=multipart``: one ``multipart/related`` request, the metadata (JSON) then the file's bytes.

    The object's name is unique to this upload, so an attempt whose answer was lost is looked up by that name (a
    second attempt would only meet ``ifGenerationMatch=0`` and fail with 412): found, it is this upload's.
    """
    boundary = f"llmfiles-{secrets.token_hex(16)}"
    head = (
        f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
        f"{json.dumps(metadata, ensure_ascii=False)}\r\n"
        f"--{boundary}\r\nContent-Type: {metadata['contentType']}\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    name = str(metadata["name"])
    request = ep.request(
        "POST",
        ep.upload_url(bucket, uploadType="multipart", ifGenerationMatch=0, name=name),
        headers={"Content-Type": f"multipart/related; boundary={boundary}"},
        body=(head, FileRange(offset=0, length=facts.size), tail),
    )
    provider = ep.provider

    def found(response: HttpResponse) -> Sequence[FileObject]:
        return [] if response.status == 404 else [read_file(provider, response)]

    probe = Probe(
        request=ep.request("GET", ep.objects_url(bucket, name)), read=guarded_read(provider, found), unique=True
    )
    return ep.exchange(request, lambda r: read_file(provider, r), upload=True, probe=probe)


# --- the resumable session ------------------------------------------------------------------------------------


class ResumableSession(ResumableUpload):
    """A Cloud Storage resumable upload.

    Start: ``POST ...?uploadType=resumable`` with the metadata, answered with the session URI (``Location``), which
    must point where the session was asked for.  Chunks: ``PUT <session>`` with ``Content-Range: bytes a-b/total``;
    Cloud Storage answers ``308`` with ``Range: bytes=0-N`` (what it has persisted, which may be less than was
    sent) until the last chunk, whose answer is the object.  Status: ``PUT <session>`` with
    ``Content-Range: bytes */total``.  Abort: ``DELETE <session>`` (answered 499 once cancelled).  The session URI
    is the credential of these requests: they carry no ``Authorization`` header, and it is never shown (its
    ``upload_id`` is masked wherever a URL is logged).
    """

    def __init__(
        self, ep: Endpoint, bucket: str, metadata: Mapping[str, Any], facts: UploadFacts, *, part_size: int
    ) -> None:
        self.ep = ep
        self.bucket = bucket
        self.metadata = dict(metadata)
        self.size = facts.size
        self.destination = f"gs://{bucket}/{metadata['name']}"
        self.session_ttl = SESSION_TTL
        # the part_size setting, rounded down to a multiple of 256 KiB (the engine grows it to fit MAX_CHUNKS)
        preferred = max(CHUNK_ALIGNMENT, part_size // CHUNK_ALIGNMENT * CHUNK_ALIGNMENT)
        self.limits = PartLimits(
            preferred=preferred, minimum=CHUNK_ALIGNMENT, alignment=CHUNK_ALIGNMENT, max_parts=MAX_CHUNKS
        )

    def start(self) -> Exchange[UploadState]:
        """``POST ...?uploadType=resumable`` with the object's metadata; the state is the session URI."""
        ep = self.ep
        headers = {
            "Content-Type": "application/json; charset=UTF-8",
            "X-Upload-Content-Type": str(self.metadata["contentType"]),
            "X-Upload-Content-Length": str(self.size),
        }
        request = ep.request(
            "POST",
            ep.upload_url(self.bucket, uploadType="resumable", ifGenerationMatch=0, name=self.metadata["name"]),
            headers=headers,
            body=json.dumps(self.metadata, ensure_ascii=False).encode(),
        )
        return ep.exchange(request, lambda r: read_session(ep.provider, request.url, r), upload=True)

    def chunk(self, state: UploadState, part: Part, final: bool) -> Exchange[int | FileObject]:
        """``PUT <session>`` with the part's bytes and ``Content-Range: bytes a-b/total``."""
        content_range = f"bytes {part.offset}-{part.offset + part.length - 1}/{self.size}"
        request = HttpRequest(
            method="PUT", url=state["session"], headers={"Content-Range": content_range}, body=(part.body,)
        )
        provider = self.ep.provider
        return self.ep.exchange(request, lambda r: read_progress(provider, r), upload=True)

    def query(self, state: UploadState) -> Exchange[int | FileObject]:
        """``PUT <session>`` with ``Content-Range: bytes */total``: how much the session holds."""
        request = HttpRequest(method="PUT", url=state["session"], headers={"Content-Range": f"bytes */{self.size}"})
        provider, size = self.ep.provider, self.size
        return self.ep.exchange(request, lambda r: read_progress(provider, r, status_of=size), upload=True)

    def abort(self, state: UploadState) -> Exchange[object]:
        """``DELETE <session>`` (Cloud Storage answers 499 once it cancelled the session)."""
        return self.ep.exchange(HttpRequest(method="DELETE", url=state["session"]), lambda r: True)


def read_session(provider: str, start_url: str, response: HttpResponse) -> UploadState:
    """The session URI of a started resumable upload, refused unless it is where the upload was started (the
    file's bytes go there)."""
    session = response.header("location")
    if not session:
        raise ProviderError(
            "the resumable upload was started without a session URI (Location header)",
            provider=provider,
            status=response.status,
        )
    asked = origin(start_url)
    try:
        got: Origin | None = origin(session)
    except Exception:  # not a URL urllib3 can parse
        got = None
    if got is None or got != asked:
        where = f"{got.scheme}://{got.host}" if got is not None and got.host else "an address that is not a URL"
        raise ProviderError(
            f"the resumable upload's session URI points to another place ({where}) than the upload was started "
            f"at ({asked.scheme}://{asked.host}); not sending the file there",
            provider=provider,
            status=response.status,
        )
    return {"session": session}


def read_progress(provider: str, response: HttpResponse, *, status_of: int | None = None) -> int | FileObject:
    """A session's answer: the object when it is complete (200/201), else the bytes it has persisted (308).

    ``status_of`` (the file's size) marks the answer to a status query: a session that holds nothing answers it
    without ``Range`` (Cloud Storage) or with ``Range: bytes=0-0`` (gcp-storage-emulator), which is read as nothing
    too, since chunks are multiples of 256 KiB and a session never holds just the first byte of a longer file.
    """
    if response.status in (200, 201):
        return read_file(provider, response)
    if response.status != 308:
        raise ProviderError(
            f"unexpected answer to a resumable upload request: {response.body[:200]!r}",
            provider=provider,
            status=response.status,
        )
    value = response.header("range")
    if not value:
        return 0
    m = _RANGE_RE.fullmatch(value)
    if m is None:
        raise ProviderError(f"unexpected Range header {value!r} in a resumable upload answer", provider=provider)
    kept = int(m.group(1)) + 1
    if status_of is not None and kept == 1 and status_of > 1:
        return 0
    return kept


# --- other operations ---------------------------------------------------------------------------------------


def retrieve(ep: Endpoint, bucket: str, name: str, file_id: str) -> Exchange[FileObject]:
    """The object's metadata."""
    provider = ep.provider
    return ep.exchange(
        ep.request("GET", ep.objects_url(bucket, name)), lambda r: read_file(provider, r), file_id=file_id
    )


def delete(ep: Endpoint, bucket: str, name: str, file_id: str) -> Exchange[bool]:
    """Delete the object."""
    return ep.exchange(ep.request("DELETE", ep.objects_url(bucket, name)), lambda r: True, file_id=file_id)


def download(ep: Endpoint, bucket: str, name: str, file_id: str) -> Exchange[bool]:
    """The object's content (``alt=media``), streamed by the core."""
    request = ep.request("GET", ep.objects_url(bucket, name, alt="media"))
    return ep.exchange(request, lambda r: True, file_id=file_id)


def list_page(
    ep: Endpoint, bucket: str, prefix: str, *, purpose: str | None, cursor: str | None, limit: int | None
) -> Exchange[FilePage]:
    """One page of the objects under ``prefix`` (filtered on the purpose recorded with each)."""
    request = ep.request("GET", ep.objects_url(bucket, prefix=prefix or None, pageToken=cursor, maxResults=limit))
    provider = ep.provider
    return ep.exchange(request, lambda r: read_page(provider, r, purpose))


# --- answers --------------------------------------------------------------------------------------------------


def file_object(provider: str, data: Mapping[str, Any]) -> FileObject:
    """A Cloud Storage object resource as llmfiles' :class:`FileObject` (id ``gs://bucket/object``; the MD5 it
    reports, ``md5Hash`` in base64, as ``checksums["md5"]`` in hex)."""
    bucket, name = data.get("bucket"), data.get("name")
    if not isinstance(bucket, str) or not isinstance(name, str) or not bucket or not name:
        raise ProviderError(f"the object resource has no bucket or name: {dict(data)!r:.200}", provider=provider)
    meta = data.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    size = data.get("size")
    reported = data.get("md5Hash")
    md5 = md5_hex(reported) if isinstance(reported, str) else None
    return FileObject(
        id=f"gs://{bucket}/{name}",
        provider=provider,
        filename=str(meta.get(META_FILENAME) or name.rsplit("/", 1)[-1]),
        purpose=str(meta.get(META_PURPOSE) or ""),
        bytes=int(size) if isinstance(size, (int, str)) and str(size).isdigit() else 0,
        created_at=rfc3339_seconds(data.get("timeCreated")) or 0,
        status="processed",
        checksums={"md5": md5} if md5 else {},
        raw=dict(data),
    )


def read_file(provider: str, response: HttpResponse) -> FileObject:
    """An answer holding one object resource."""
    return file_object(provider, json_object(provider, response))


def read_page(provider: str, response: HttpResponse, purpose: str | None) -> FilePage:
    """A listing (``items``, ``nextPageToken``); folder placeholders are skipped."""
    data = json_object(provider, response)
    items = data.get("items") or []
    if not isinstance(items, list):
        raise ProviderError("the listing's items are not a list", provider=provider, status=response.status)
    files = []
    for item in items:
        if not isinstance(item, Mapping) or str(item.get("name", "")).endswith("/"):
            continue
        fo = file_object(provider, item)
        if purpose is None or fo.purpose == purpose:
            files.append(fo)
    token = data.get("nextPageToken")
    return FilePage(files=tuple(files), next_cursor=token if isinstance(token, str) and token else None)


def error_reader(
    provider: str, upload: bool = False, file_id: str | None = None
) -> Callable[[HttpResponse], ProviderError]:
    """Cloud Storage's error body (``error.message``, ``error.errors[0].reason``) as a :class:`ProviderError`;
    ``upload`` explains a 412, ``file_id`` names the object of a 404 (the emulator's 404 bodies are empty)."""

    def read(response: HttpResponse) -> ProviderError:
        message, reason = _error_body(response)
        if response.status == 412 and upload:
            message = (
                "the object already exists (uploads never overwrite: ifGenerationMatch=0). Names are unique per "
                "upload, so an earlier attempt of this same upload most likely stored it before its answer was "
                "lost; list the files to find it"
            )
        if not message:
            if response.status == 404 and file_id:
                message = f"no such object: {file_id}"
            elif response.status == 404:
                message = "not found: does the bucket exist?"
            else:
                text = response.body[:300].decode("utf-8", "replace").strip()
                message = text or f"HTTP {response.status} with an empty body"
        return ProviderError(
            message,
            provider=provider,
            status=response.status,
            code=reason,
            request_id=response.header(REQUEST_ID_HEADER),
        )

    return read


def _error_body(response: HttpResponse) -> tuple[str | None, str | None]:
    try:
        data = response.json()
    except ValueError:
        return None, None
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        return None, None
    message = err.get("message") if isinstance(err.get("message"), str) else None
    errors = err.get("errors")
    reason = errors[0].get("reason") if isinstance(errors, list) and errors and isinstance(errors[0], dict) else None
    return message, str(reason) if reason else None
