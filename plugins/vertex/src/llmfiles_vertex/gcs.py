"""The Cloud Storage JSON API, as pure functions: requests out, llmfiles data in.

Small files go up in one ``uploadType=multipart`` request (``multipart/related``: the object's metadata, then its
bytes streamed from disk); large ones through a resumable session (``uploadType=resumable``), one chunk after the
other, each a multiple of 256 KiB except the last, which carries the total size.  Every object is created with
``ifGenerationMatch=0``, so nothing is ever overwritten.
"""

from __future__ import annotations

import base64
import binascii
import json
import mimetypes
import re
import secrets
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import attrs
from attrs import field, frozen

from llmfiles.errors import InputError, ProviderError
from llmfiles.models import (
    FileObject,
    FilePage,
    HttpRequest,
    HttpResponse,
    Operation,
    Part,
    Receipt,
    Source,
    SourceRange,
    UploadPlan,
    UploadState,
)

DEFAULT_API_BASE = "https://storage.googleapis.com"
#: resumable chunks are multiples of this (except the last)
CHUNK_ALIGNMENT = 256 * 1024
#: Cloud Storage keeps a resumable upload session for a week
SESSION_TTL = 7 * 24 * 3600
#: custom metadata keys (object metadata, so retrieve and list give them back)
META_PURPOSE = "llmfiles-purpose"
META_FILENAME = "llmfiles-filename"
META_FORMAT = "llmfiles-format"
META_PROJECT = "llmfiles-vertex-project"
META_LOCATION = "llmfiles-vertex-location"
REQUEST_ID_HEADER = "x-guploader-uploadid"

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@frozen(kw_only=True)
class Endpoint:
    """Where and how to reach the Cloud Storage JSON API (the base URL and the auth headers)."""

    provider: str
    base: str = DEFAULT_API_BASE
    headers: Mapping[str, str] = field(factory=dict, repr=False)

    def _query(self, params: Mapping[str, Any]) -> str:
        query = {k: str(v) for k, v in params.items() if v is not None}
        return f"?{urlencode(query)}" if query else ""

    def objects_url(self, bucket: str, name: str | None = None, **params: Any) -> str:
        path = f"/storage/v1/b/{quote(bucket, safe='')}/o"
        if name is not None:
            path += "/" + quote(name, safe="")
        return f"{self.base}{path}{self._query(params)}"

    def upload_url(self, bucket: str, **params: Any) -> str:
        return f"{self.base}/upload/storage/v1/b/{quote(bucket, safe='')}/o{self._query(params)}"

    def request(self, method: str, url: str, **kw: Any) -> HttpRequest:
        headers = dict(self.headers)
        headers.update(kw.pop("headers", {}))
        return HttpRequest(method=method, url=url, headers=headers, **kw)


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
    if filename.lower().endswith(".jsonl"):
        return "application/jsonl"
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def md5_base64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def md5_hex(b64: str) -> str | None:
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 16 else None


# --- uploads ------------------------------------------------------------------------------------------------


def upload_request(
    ep: Endpoint, bucket: str, metadata: Mapping[str, Any], body: Source, *, media_type: str
) -> HttpRequest:
    """``uploadType=multipart``: one ``multipart/related`` request, metadata (JSON) then the bytes from disk.

    ``metadata`` should carry ``md5Hash``: Cloud Storage then refuses the upload when the bytes it got differ.
    """
    boundary = f"llmfiles-{secrets.token_hex(16)}"
    head = (
        f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
        f"{json.dumps(metadata, ensure_ascii=False)}\r\n"
        f"--{boundary}\r\nContent-Type: {media_type}\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    name = metadata["name"]
    md5 = metadata.get("md5Hash")

    # the object's name is unique to this upload: if an attempt's answer is lost, the object is looked up by name
    # (a second attempt would only meet ifGenerationMatch=0 and fail with 412)
    def probe() -> HttpRequest:
        return retrieve_request(ep, bucket, name)

    def read_probe(resp: HttpResponse) -> HttpResponse | None:
        if resp.status == 404:
            return None
        if resp.status != 200:
            raise error(ep.provider, Operation(name="retrieve"), resp)
        found = json_object(ep.provider, resp)
        if md5 and found.get("md5Hash") not in (md5, None):
            raise ProviderError(
                f"gs://{bucket}/{name} exists with other content than this upload sent", provider=ep.provider
            )
        return resp

    return attrs.evolve(
        ep.request(
            "POST",
            ep.upload_url(bucket, uploadType="multipart", ifGenerationMatch=0, name=name),
            headers={"Content-Type": f"multipart/related; boundary={boundary}"},
            body=(head, SourceRange(source=body, offset=0, length=body.size), tail),
        ),
        probe=probe,
        read_probe=read_probe,
    )


def _range_end(resp: HttpResponse) -> int:
    """Bytes persisted, from a 308's ``Range: bytes=0-N`` header (no header: none yet)."""
    value = resp.header("range")
    if not value:
        return 0
    m = re.fullmatch(r"\s*bytes=0-(\d+)\s*", value)
    if m is None:
        raise ProviderError(f"unexpected Range header {value!r} in a resumable upload answer", provider="vertex_ai")
    return int(m.group(1)) + 1


def resumable_plan(
    ep: Endpoint,
    bucket: str,
    op: Operation,
    metadata: Mapping[str, Any],
    *,
    media_type: str,
    part_size: int,
    converted: Source | None = None,
) -> UploadPlan:
    """A Cloud Storage resumable upload as a sequential :class:`UploadPlan`.

    Start: ``POST ...?uploadType=resumable`` with the metadata, answered with the session URI (``Location``).
    Parts: ``PUT <session>`` with ``Content-Range: bytes a-b/total``; Cloud Storage answers ``308`` with
    ``Range: bytes=0-N`` (what it has persisted, which may be less than was sent) until the last chunk, whose
    answer is the object.  Progress query: ``PUT <session>`` with ``Content-Range: bytes */total``.  The session
    URI is the credential of these requests, so they carry no ``Authorization`` header.  The MD5 Cloud Storage
    reports for the object is compared with the MD5 of the bytes sent.
    """
    assert op.source is not None
    data = converted if converted is not None else op.source
    provider = ep.provider
    headers = {"Content-Type": "application/json; charset=UTF-8", "X-Upload-Content-Type": media_type}
    if converted is None:
        headers["X-Upload-Content-Length"] = str(op.source.size)
    start = ep.request(
        "POST",
        ep.upload_url(bucket, uploadType="resumable", ifGenerationMatch=0, name=metadata["name"]),
        headers=headers,
        body=json.dumps(metadata, ensure_ascii=False).encode(),
    )

    def read_start(resp: HttpResponse) -> UploadState:
        session = resp.header("location")
        if not session:
            raise ProviderError(
                "the resumable upload was started without a session URI (Location header)",
                provider=provider,
                status=resp.status,
            )
        # the file's bytes go to the session URI: only where the session was asked for (same scheme, host, port)
        asked, got = urlsplit(start.url), urlsplit(session)
        if (got.scheme, got.hostname, got.port) != (asked.scheme, asked.hostname, asked.port):
            raise ProviderError(
                f"the resumable upload's session URI points to another place ({got.scheme}://{got.hostname}) than "
                f"the upload was started at ({asked.scheme}://{asked.hostname}); not sending the file there",
                provider=provider,
                status=resp.status,
            )
        return {"session": session}

    def part(state: UploadState, p: Part) -> HttpRequest:
        total = data.size
        if p.length == 0:
            content_range = f"bytes */{total}"
        else:
            content_range = f"bytes {p.offset}-{p.offset + p.length - 1}/{total}"
        return HttpRequest(method="PUT", url=state["session"], headers={"Content-Range": content_range}, body=(p.body,))

    def read_part(state: UploadState, p: Part, resp: HttpResponse, digests: Mapping[str, str]) -> Receipt:
        return {"status": resp.status}

    def read_progress(state: UploadState, resp: HttpResponse) -> int:
        if resp.status in (200, 201):
            return data.size
        if resp.status == 308:
            return _range_end(resp)
        raise ProviderError(
            f"unexpected answer to a resumable upload chunk: {resp.body[:200]!r}", provider=provider, status=resp.status
        )

    def query_progress(state: UploadState) -> HttpRequest:
        return HttpRequest(method="PUT", url=state["session"], headers={"Content-Range": f"bytes */{data.size}"})

    def read_complete(state: UploadState, resp: HttpResponse) -> FileObject:
        return file_object(provider, json_object(provider, resp))

    def reported_digests(state: UploadState, resp: HttpResponse) -> Mapping[str, str]:
        reported = json_object(provider, resp).get("md5Hash")
        digest = md5_hex(reported) if isinstance(reported, str) else None
        return {"md5": digest} if digest else {}

    def abort(state: UploadState) -> HttpRequest:
        # Cloud Storage answers 499 when it cancelled the session (the engine counts that, and 404, as ended)
        return HttpRequest(method="DELETE", url=state["session"])

    aligned = max(CHUNK_ALIGNMENT, part_size // CHUNK_ALIGNMENT * CHUNK_ALIGNMENT)
    return UploadPlan(
        destination=f"gs://{bucket}/{metadata['name']}",
        start=start,
        read_start=read_start,
        part=part,
        read_part=read_part,
        complete=None,
        read_complete=read_complete,
        abort=abort,
        query_progress=query_progress,
        read_progress=read_progress,
        reported_digests=reported_digests,
        session_ttl=SESSION_TTL,
        part_size=aligned,
        min_part_size=CHUNK_ALIGNMENT,
        alignment=CHUNK_ALIGNMENT,
        max_parts=100_000,
        sequential=True,
        digests=("md5",),
        source=converted,
    )


# --- other operations ---------------------------------------------------------------------------------------


def retrieve_request(ep: Endpoint, bucket: str, name: str) -> HttpRequest:
    return ep.request("GET", ep.objects_url(bucket, name))


def delete_request(ep: Endpoint, bucket: str, name: str) -> HttpRequest:
    return ep.request("DELETE", ep.objects_url(bucket, name))


def download_request(ep: Endpoint, bucket: str, name: str) -> HttpRequest:
    return ep.request("GET", ep.objects_url(bucket, name, alt="media"))


def list_request(ep: Endpoint, bucket: str, prefix: str, *, cursor: str | None, limit: int | None) -> HttpRequest:
    return ep.request("GET", ep.objects_url(bucket, prefix=prefix or None, pageToken=cursor, maxResults=limit))


# --- responses ----------------------------------------------------------------------------------------------


def json_object(provider: str, resp: HttpResponse) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        raise ProviderError(
            f"expected a JSON object, got {resp.body[:200]!r}", provider=provider, status=resp.status
        ) from None
    if not isinstance(data, dict):
        raise ProviderError(
            f"expected a JSON object, got a {type(data).__name__}", provider=provider, status=resp.status
        )
    return data


def _timestamp(value: Any) -> int:
    if not isinstance(value, str) or not value:
        return 0
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def file_object(provider: str, data: Mapping[str, Any]) -> FileObject:
    """A Cloud Storage object resource as llmfiles' :class:`FileObject` (id ``gs://bucket/object``)."""
    bucket, name = data.get("bucket"), data.get("name")
    if not isinstance(bucket, str) or not isinstance(name, str) or not bucket or not name:
        raise ProviderError(f"the object resource has no bucket or name: {dict(data)!r:.200}", provider=provider)
    meta = data.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    size = data.get("size")
    return FileObject(
        id=f"gs://{bucket}/{name}",
        provider=provider,
        filename=str(meta.get(META_FILENAME) or name.rsplit("/", 1)[-1]),
        purpose=str(meta.get(META_PURPOSE) or ""),
        bytes=int(size) if isinstance(size, (int, str)) and str(size).isdigit() else 0,
        created_at=_timestamp(data.get("timeCreated")),
        status="processed",
        raw=dict(data),
    )


def file_page(provider: str, op: Operation, resp: HttpResponse) -> FilePage:
    data = json_object(provider, resp)
    items = data.get("items") or []
    if not isinstance(items, list):
        raise ProviderError("the listing's items are not a list", provider=provider, status=resp.status)
    files = []
    for item in items:
        if not isinstance(item, Mapping) or str(item.get("name", "")).endswith("/"):
            continue  # folder placeholders
        fo = file_object(provider, item)
        if op.purpose is None or fo.purpose == op.purpose:
            files.append(fo)
    token = data.get("nextPageToken")
    return FilePage(files=tuple(files), next_cursor=token if isinstance(token, str) and token else None)


def error(provider: str, op: Operation, resp: HttpResponse) -> ProviderError:
    """Cloud Storage's error body (``error.message``, ``error.errors[0].reason``) as a :class:`ProviderError`."""
    message: str | None = None
    reason: str | None = None
    try:
        data = resp.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        err = data["error"]
        message = err.get("message") if isinstance(err.get("message"), str) else None
        errors = err.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            reason = errors[0].get("reason")
    if resp.status == 412 and op.name in ("upload", "upload_parts"):
        message = (
            "the object already exists (uploads never overwrite: ifGenerationMatch=0). Names are unique per "
            "upload, so an earlier attempt of this same upload most likely stored it before its answer was lost; "
            "list the files to find it"
        )
    if not message:
        if resp.status == 404 and op.file_id:
            message = f"no such object: {op.file_id}"
        elif resp.status == 404:
            message = "not found: does the bucket exist?"
        else:
            message = resp.body[:300].decode("utf-8", "replace").strip() or f"HTTP {resp.status} with an empty body"
    return ProviderError(
        message,
        provider=provider,
        status=resp.status,
        code=str(reason) if reason else None,
        request_id=resp.header(REQUEST_ID_HEADER),
    )


def normalize(provider: str, op: Operation, resp: HttpResponse) -> FileObject | FilePage | ProviderError | bool:
    """The answer to ``op`` as llmfiles data (see ``llmfiles_normalize_response``)."""
    if resp.status >= 400:
        return error(provider, op, resp)
    if op.name in ("upload", "retrieve"):
        return file_object(provider, json_object(provider, resp))
    if op.name == "list":
        return file_page(provider, op, resp)
    return True
