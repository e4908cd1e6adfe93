"""S3's REST API as pure functions: object keys, requests, the multipart plan, and reading S3's answers.

Every request is built here and signed through the ``sign`` function of an :class:`Endpoint` (botocore's SigV4
signer, see :mod:`llmfiles_bedrock.aws`); none is sent here.  XML answers are read with the standard library.
"""

from __future__ import annotations

import email.utils
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit
from xml.etree import ElementTree as ET

import attrs

from llmfiles.errors import (
    FileNotFound,
    InputError,
    InvalidSetting,
    ProviderError,
    UploadFailed,
)
from llmfiles.models import (
    FileObject,
    FilePage,
    HttpRequest,
    HttpResponse,
    Operation,
    Part,
    Receipt,
    Source,
    UploadPlan,
    UploadState,
)

log = logging.getLogger("llmfiles.bedrock")

MiB = 1024 * 1024
GiB = 1024 * MiB
#: S3's limits: a PutObject body, a part (5 MiB to 5 GiB, the last may be smaller), the parts of one upload
MAX_PUT = 5 * GiB
MIN_PART = 5 * MiB
MAX_PART = 5 * GiB
MAX_PARTS = 10_000
MAX_OBJECT = 5 * 1024 * GiB
#: the S3 URI pattern of Bedrock's API (CreateModelCustomizationJob, S3Uri)
BEDROCK_S3_URI = re.compile(r"s3://[a-z0-9][-.a-z0-9]{1,61}[a-z0-9](/[-!_*'().a-zA-Z0-9]+)*/?")
_BUCKET_RE = re.compile(r"[a-z0-9][-.a-z0-9]{1,61}[a-z0-9]")
_SEGMENT_RE = re.compile(r"[-!_*'().a-zA-Z0-9]+")
_UNIQUE_RE = re.compile(r"(?:^|/)(?P<purpose>[a-z][-a-z]*)/\d{8}T\d{6}Z-[0-9a-f]{16}/[^/]+$")
_NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]+")
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"

Signer = Callable[[str, str, Mapping[str, str], "bytes | None", bool], dict[str, str]]


# --- where files go ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Location:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def check_bucket(bucket: Any, where: str) -> str:
    name = str(bucket).strip()
    if not _BUCKET_RE.fullmatch(name) or ".." in name:
        raise InvalidSetting(
            f"bucket (from {where}): {name!r} is not a bucket name Bedrock accepts "
            "(3-63 characters: lower-case letters, digits, '-' and '.')"
        )
    return name


def check_prefix(prefix: Any, where: str) -> str:
    """The key prefix as a folder: '' or segments Bedrock accepts, ending with '/'."""
    text = "" if prefix is None else str(prefix).strip().strip("/")
    if not text:
        return ""
    for seg in text.split("/"):
        if not _SEGMENT_RE.fullmatch(seg) or seg in (".", ".."):
            raise InvalidSetting(
                f"prefix (from {where}): segment {seg!r} of {prefix!r} has characters Bedrock refuses in S3 URIs; "
                "use letters, digits and - _ . ! * ' ( )"
            )
    return text + "/"


def safe_name(filename: str) -> str:
    """A file name Bedrock accepts in an S3 URI: letters, digits, '_', '-' and '.', no spaces."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = _NAME_BAD.sub("-", base).strip("-")[:200]
    return "upload.jsonl" if name in ("", ".", "..") else name


def new_key(prefix: str, purpose: str, filename: str, now: float | None = None) -> str:
    """``{prefix}{purpose}/{UTC time}-{16 random hex}/{file name}``: unique per upload, valid for Bedrock."""
    stamp = datetime.fromtimestamp(time.time() if now is None else now, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{prefix}{purpose}/{stamp}-{secrets.token_hex(8)}/{safe_name(filename)}"


def parse_file_id(file_id: str) -> Location:
    """``s3://bucket/key`` -> :class:`Location`; anything else is an :class:`~llmfiles.errors.InputError`."""
    if not isinstance(file_id, str) or not file_id.startswith("s3://"):
        raise InputError(f"bedrock file ids are S3 URIs such as s3://bucket/llmfiles/.../train.jsonl, not {file_id!r}")
    bucket, _, key = file_id[5:].partition("/")
    if not bucket or not key or key.endswith("/"):
        raise InputError(f"{file_id!r} does not name an object: expected s3://bucket/key")
    return Location(bucket=bucket, key=key)


def purpose_of(key: str) -> str | None:
    """The purpose recorded in a key llmfiles made (``.../{purpose}/{stamp}-{hex}/{name}``)."""
    m = _UNIQUE_RE.search(key)
    return m.group("purpose") if m else None


# --- endpoint and signing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """Where S3 is (AWS by region, or a custom endpoint) and how to sign for it."""

    region: str
    sign: Signer
    base: str | None = None
    suffix: str = "amazonaws.com"
    provider: str = "bedrock"

    def _virtual(self, bucket: str) -> bool:
        return self.base is None and "." not in bucket

    def bucket_url(self, bucket: str) -> str:
        """The bucket's URL, to which a query string is appended (``.../`` virtual-hosted, ``.../bucket`` path)."""
        if self._virtual(bucket):
            return f"https://{bucket}.s3.{self.region}.{self.suffix}/"
        return f"{self._root()}/{bucket}"

    def object_url(self, loc: Location) -> str:
        key = quote(loc.key, safe="/~")
        if self._virtual(loc.bucket):
            return f"https://{loc.bucket}.s3.{self.region}.{self.suffix}/{key}"
        return f"{self._root()}/{loc.bucket}/{key}"

    def _root(self) -> str:
        return (self.base or f"https://s3.{self.region}.{self.suffix}").rstrip("/")

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        stream: tuple[Any, ...] | None = None,
        length: int | None = None,
        fragment: str = "",
        idempotent: bool | None = None,
    ) -> HttpRequest:
        """A signed request.  ``body`` (in memory) is signed by its SHA-256; a ``stream`` body (segments streamed
        from disk) is signed as ``UNSIGNED-PAYLOAD`` and sent with an exact ``Content-Length``.

        ``fragment`` is appended to the URL after ``#``: a URL fragment is never sent (the transport sends only
        path and query) but comes back as :attr:`HttpResponse.url`, so the answer to a PutObject says which object
        it is about without parsing the endpoint's addressing style.
        """
        h = dict(headers or {})
        signed = self.sign(method, url, h, body, stream is not None)
        sent_body: Any = stream if stream is not None else body
        full = f"{url}#{fragment}" if fragment else url
        return HttpRequest(method=method, url=full, headers=signed, body=sent_body, idempotent=idempotent)


def check_api_base(value: Any, where: str) -> str:
    text = str(value).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise InvalidSetting(f"api_base (from {where}): {text!r} is not an endpoint URL such as https://s3.example.com")
    return text.rstrip("/")


# --- reading S3's answers ------------------------------------------------------------------------------------


def _xml(body: bytes) -> ET.Element:
    head = body[:2048].lower()
    if b"<!doctype" in head or b"<!entity" in head:
        raise ValueError("XML with a DTD is refused (S3 never sends one)")
    return ET.fromstring(body)  # noqa: S314 - no DTD (checked above); ElementTree resolves no external entities


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child_text(el: ET.Element, name: str) -> str | None:
    for child in el:
        if _local(child.tag) == name:
            return child.text or ""
    return None


def _children(el: ET.Element, name: str) -> Iterator[ET.Element]:
    return (child for child in el if _local(child.tag) == name)


def request_id(response: HttpResponse) -> str | None:
    return response.header("x-amz-request-id") or response.header("x-amzn-requestid")


def _http_date(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(email.utils.parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError, IndexError):
        return None


def _iso_date(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


def error_from(response: HttpResponse, provider: str, operation: Operation | None = None) -> ProviderError:
    """The :class:`~llmfiles.errors.ProviderError` for an S3 error answer (XML body, or none for HEAD)."""
    code: str | None = None
    message = ""
    rid = request_id(response)
    details: dict[str, Any] = {}
    if response.body:
        try:
            root = _xml(response.body)
        except (ValueError, ET.ParseError):
            message = response.body[:300].decode("utf-8", "replace").strip()
        else:
            el = root if _local(root.tag) == "Error" else next(_children(root, "Error"), root)
            code = _child_text(el, "Code")
            message = (_child_text(el, "Message") or "").strip()
            rid = _child_text(el, "RequestId") or rid
            for name in ("Key", "BucketName", "UploadId", "Region", "Endpoint"):
                value = _child_text(el, name)
                if value:
                    details[name] = value
    status = response.status
    if not message:
        # HEAD answers carry no body: say what the status means for S3
        code = code or {301: "PermanentRedirect", 400: "BadRequest", 403: "Forbidden", 404: "NotFound"}.get(status)
        message = {
            301: "the bucket is in another region",
            403: "access denied (S3 sends no details for HEAD): check the credentials and their S3 permissions",
            404: "no such object (or bucket)",
        }.get(status, f"S3 answered HTTP {status} with no details")
    region = response.header("x-amz-bucket-region") or details.get("Region")
    if region and status in (301, 400):
        message += f"; the bucket is in region {region}: set aws_region={region}"
    cls: type[ProviderError] = ProviderError
    if status == 404 and operation is not None and operation.file_id is not None:
        cls = FileNotFound
    return cls(message, provider=provider, status=status, code=code, request_id=rid, details=details or None)


def _file_object(
    provider: str,
    loc: Location,
    *,
    size: int,
    purpose: str | None,
    created_at: int | None,
    raw: Mapping[str, Any],
) -> FileObject:
    return FileObject(
        id=loc.uri,
        provider=provider,
        filename=os.path.basename(loc.key),
        purpose=purpose or purpose_of(loc.key) or "unknown",
        bytes=size,
        created_at=created_at or int(time.time()),
        status="processed",
        raw=dict(raw),
    )


def _written(response: HttpResponse) -> int | None:
    # S3's answer to a write has no Last-Modified; its Date is S3's clock when the object was stored
    return _http_date(response.header("last-modified")) or _http_date(response.header("date"))


def file_from_put(provider: str, loc: Location, size: int, purpose: str, response: HttpResponse) -> FileObject:
    return _file_object(
        provider,
        loc,
        size=size,
        purpose=purpose,
        created_at=_written(response),
        raw={
            "bucket": loc.bucket,
            "key": loc.key,
            "etag": response.header("etag"),
            "version_id": response.header("x-amz-version-id"),
        },
    )


def file_from_head(provider: str, loc: Location, response: HttpResponse) -> FileObject:
    size = response.header("content-length")
    return _file_object(
        provider,
        loc,
        size=int(size) if size and size.isdigit() else 0,
        purpose=response.header("x-amz-meta-purpose"),
        created_at=_http_date(response.header("last-modified")),
        raw={
            "bucket": loc.bucket,
            "key": loc.key,
            "etag": response.header("etag"),
            "version_id": response.header("x-amz-version-id"),
            "content_type": response.header("content-type"),
            "original_filename": unquote(response.header("x-amz-meta-filename") or "") or None,
            "format": response.header("x-amz-meta-format"),
        },
    )


def page_from_list(provider: str, response: HttpResponse, purpose: str | None = None) -> FilePage:
    """A :class:`FilePage` from a ListObjectsV2 answer (``encoding-type=url``: keys are percent-encoded).

    A listing has no metadata: the purpose comes from the key llmfiles made, or from the listed ``purpose`` folder.
    """
    root = _xml(response.body)
    encoded = (_child_text(root, "EncodingType") or "").lower() == "url"
    bucket = _child_text(root, "Name") or ""
    files: list[FileObject] = []
    for item in _children(root, "Contents"):
        key = _child_text(item, "Key") or ""
        if encoded:
            key = unquote(key)
        if not key or key.endswith("/"):
            continue  # "folder" markers
        size = _child_text(item, "Size") or "0"
        files.append(
            _file_object(
                provider,
                Location(bucket=bucket, key=key),
                size=int(size) if size.isdigit() else 0,
                purpose=purpose_of(key) or purpose,
                created_at=_iso_date(_child_text(item, "LastModified")),
                raw={"bucket": bucket, "key": key, "etag": _child_text(item, "ETag")},
            )
        )
    truncated = (_child_text(root, "IsTruncated") or "").lower() == "true"
    token = _child_text(root, "NextContinuationToken") if truncated else None
    if truncated and not token:
        raise ProviderError("S3 said the listing is truncated but gave no continuation token", provider=provider)
    return FilePage(files=tuple(files), next_cursor=token or None)


# --- requests for one-shot operations ------------------------------------------------------------------------


def content_type(filename: str) -> str:
    return "application/jsonl" if filename.lower().endswith((".jsonl", ".ndjson")) else "application/octet-stream"


def object_headers(filename: str, purpose: str, fmt: str | None) -> dict[str, str]:
    """Content-Type and the metadata kept with the object (``x-amz-meta-*``: purpose, original name, format)."""
    headers = {
        "Content-Type": content_type(filename),
        "x-amz-meta-purpose": purpose,
        "x-amz-meta-filename": quote(filename, safe=""),
    }
    if fmt:
        headers["x-amz-meta-format"] = fmt
    return headers


def put_object(
    ep: Endpoint, loc: Location, *, body: tuple[Any, ...], size: int, purpose: str, filename: str, fmt: str | None
) -> HttpRequest:
    """PutObject: the whole body in one request, streamed (``UNSIGNED-PAYLOAD``), with its exact length."""
    fragment = urlencode({"id": loc.uri, "bytes": size, "purpose": purpose})
    return ep.request(
        "PUT",
        ep.object_url(loc),
        headers=object_headers(filename, purpose, fmt),
        stream=body,
        fragment=fragment,
        idempotent=True,
    )


def put_target(response: HttpResponse) -> tuple[Location, int, str]:
    """What a PutObject answer is about, from the fragment :func:`put_object` put on the URL."""
    fragment = urlsplit(response.url).fragment
    data = parse_qs(fragment)
    try:
        loc = parse_file_id(data["id"][0])
        return loc, int(data["bytes"][0]), data["purpose"][0]
    except (KeyError, IndexError, ValueError, InputError):
        raise ValueError(
            "the answer to the upload lost the URL fragment that names the object; "
            "a wrapper plugin may have rebuilt the request URL"
        ) from None


def head_object(ep: Endpoint, loc: Location) -> HttpRequest:
    return ep.request("HEAD", ep.object_url(loc))


def get_object(ep: Endpoint, loc: Location) -> HttpRequest:
    return ep.request("GET", ep.object_url(loc))


def delete_object(ep: Endpoint, loc: Location) -> HttpRequest:
    return ep.request("DELETE", ep.object_url(loc))


def _query(params: Mapping[str, Any]) -> str:
    return urlencode({k: v for k, v in params.items() if v is not None}, quote_via=quote, safe="~")


def list_objects(ep: Endpoint, bucket: str, prefix: str, *, cursor: str | None, limit: int | None) -> HttpRequest:
    """ListObjectsV2 under ``prefix``; ``cursor`` is S3's continuation token."""
    params: dict[str, Any] = {"list-type": "2", "prefix": prefix, "encoding-type": "url"}
    if limit is not None:
        params["max-keys"] = max(1, min(int(limit), 1000))
    if cursor:
        params["continuation-token"] = cursor
    return ep.request("GET", f"{ep.bucket_url(bucket)}?{_query(params)}")


# --- the multipart plan --------------------------------------------------------------------------------------


def _etag(value: str | None) -> str:
    return (value or "").strip().strip('"').lower()


def _etag_is_md5(response: HttpResponse) -> bool:
    """With SSE-KMS or SSE-C, a part's ETag is not the MD5 of its bytes."""
    sse = (response.header("x-amz-server-side-encryption") or "").lower()
    return not sse.startswith("aws:kms") and not response.header("x-amz-server-side-encryption-customer-algorithm")


def multipart_plan(
    ep: Endpoint,
    loc: Location,
    *,
    body: Source,
    own_source: bool,
    purpose: str,
    filename: str,
    fmt: str | None,
) -> UploadPlan:
    """S3 multipart upload as an :class:`UploadPlan`: parts in parallel from disk, each part's MD5 (computed by the
    engine from the bytes as they are sent) checked against the ETag S3 returns, CompleteMultipartUpload with the
    verified ETags (a 200 answer carrying ``<Error>`` is a failure), AbortMultipartUpload when the upload fails.

    ``body`` is the caller's file, or (``own_source=True``) a converted stream the engine reads instead of it.

    Every request after the start is built from the state (bucket, key, upload id), so a later process continues
    the upload: ``ListParts`` tells which recorded parts S3 still has (with the same ETag).
    """
    base = ep.object_url(loc)

    def where(state: UploadState) -> Location:
        return Location(bucket=state["bucket"], key=state["key"])

    def url(state: UploadState, **params: Any) -> str:
        return f"{ep.object_url(where(state))}?{_query({**params, 'uploadId': state['upload_id']})}"

    def read_start(response: HttpResponse) -> UploadState:
        root = _xml(response.body)
        upload_id = _child_text(root, "UploadId")
        if not upload_id:
            raise ProviderError("CreateMultipartUpload answered without an UploadId", provider=ep.provider)
        return {"upload_id": upload_id, "bucket": loc.bucket, "key": loc.key}

    def part(state: UploadState, p: Part) -> HttpRequest:
        return ep.request("PUT", url(state, partNumber=p.number), stream=(p.body,), idempotent=True)

    def read_part(state: UploadState, p: Part, response: HttpResponse, digests: Mapping[str, str]) -> Receipt:
        etag = _etag(response.header("etag"))
        uri = where(state).uri
        if not etag:
            raise UploadFailed(f"S3 answered part {p.number} of {uri} without an ETag")
        md5 = digests.get("md5", "")
        if _etag_is_md5(response):
            if etag != md5:
                raise UploadFailed(
                    f"part {p.number} of {uri}: S3 stored bytes whose MD5 is {etag}, but the bytes sent have MD5 "
                    f"{md5}; the part was changed on the way, so the upload is not completed"
                )
        else:
            log.debug("part %d: the ETag is not an MD5 (SSE-KMS or SSE-C); MD5 check skipped", p.number)
        return {"part_number": p.number, "etag": f'"{etag}"', "md5": md5}

    def complete(state: UploadState, receipts: Sequence[Receipt], digests: Mapping[str, str]) -> HttpRequest:
        parts = "".join(
            f"<Part><PartNumber>{int(r['part_number'])}</PartNumber><ETag>{r['etag']}</ETag></Part>" for r in receipts
        )
        xml = f'<CompleteMultipartUpload xmlns="{_NS[1:-1]}">{parts}</CompleteMultipartUpload>'.encode()
        request = ep.request("POST", url(state), headers={"Content-Type": "application/xml"}, body=xml)
        target = where(state)

        # a completed upload is gone (NoSuchUpload): if the answer is lost, the object (its key is unique to this
        # upload) is looked up instead of completing again
        def probe() -> HttpRequest:
            return head_object(ep, target)

        def read_probe(response: HttpResponse) -> HttpResponse | None:
            if response.status == 404:
                return None
            if response.status != 200:
                raise error_from(response, ep.provider)
            etag = (response.header("etag") or "").replace("&", "&amp;").replace("<", "&lt;")
            result = (
                f'<CompleteMultipartUploadResult xmlns="{_NS[1:-1]}"><ETag>{etag}</ETag>'
                "</CompleteMultipartUploadResult>"
            )
            headers = {k: v for k, v in response.headers.items() if k in ("date", "last-modified", "x-amz-version-id")}
            return HttpResponse(status=200, headers=headers, body=result.encode(), url=response.url)

        return attrs.evolve(request, probe=probe, read_probe=read_probe)

    def read_complete(state: UploadState, response: HttpResponse) -> FileObject:
        # S3 may answer 200 and then report an error in the body (the answer starts before the object is built)
        try:
            root = _xml(response.body)
        except (ValueError, ET.ParseError) as exc:
            raise ProviderError(
                f"CompleteMultipartUpload answered 200 with an unreadable body ({exc}); the upload is not complete",
                provider=ep.provider,
                status=response.status,
                request_id=request_id(response),
            ) from None
        if _local(root.tag) == "Error":
            err = error_from(response, ep.provider)
            raise err.with_message(f"CompleteMultipartUpload failed after answering HTTP 200: {err.message}")
        if _local(root.tag) != "CompleteMultipartUploadResult":
            raise ProviderError(
                f"CompleteMultipartUpload answered with <{_local(root.tag)}>, not CompleteMultipartUploadResult",
                provider=ep.provider,
                status=response.status,
            )
        fo = file_from_put(ep.provider, where(state), body.size, purpose, response)
        raw = {**fo.raw, "etag": _child_text(root, "ETag"), "upload_id": state["upload_id"]}
        return attrs.evolve(fo, raw=raw)

    def abort(state: UploadState) -> HttpRequest:
        return ep.request("DELETE", url(state))

    def list_parts(state: UploadState, cursor: str | None) -> HttpRequest:
        return ep.request("GET", url(state, **{"max-parts": 1000, "part-number-marker": cursor}))

    def read_list_parts(state: UploadState, response: HttpResponse) -> tuple[dict[int, Receipt], str | None]:
        root = _xml(response.body)
        if _local(root.tag) not in ("ListPartsResult", "ListPartsResponse"):  # S3, moto
            raise ProviderError(f"ListParts answered with <{_local(root.tag)}>", provider=ep.provider)
        listed: dict[int, Receipt] = {}
        for el in _children(root, "Part"):
            number = int(_child_text(el, "PartNumber") or "0")
            if 1 <= number <= MAX_PARTS:
                listed[number - 1] = {"part_number": number, "etag": f'"{_etag(_child_text(el, "ETag"))}"'}
        truncated = (_child_text(root, "IsTruncated") or "").lower() == "true"
        marker = _child_text(root, "NextPartNumberMarker") if truncated else None
        return listed, marker or None

    return UploadPlan(
        destination=loc.uri,
        start=ep.request("POST", f"{base}?uploads", headers=object_headers(filename, purpose, fmt)),
        read_start=read_start,
        part=part,
        read_part=read_part,
        complete=complete,
        read_complete=read_complete,
        abort=abort,
        list_parts=list_parts,
        read_list_parts=read_list_parts,
        min_part_size=MIN_PART,
        max_part_size=MAX_PART,
        max_parts=MAX_PARTS,
        part_digests=("md5",),
        source=body if own_source else None,
    )
