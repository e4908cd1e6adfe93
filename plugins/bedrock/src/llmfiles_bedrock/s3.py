"""S3's REST API as pure functions and one protocol class: exchanges out, data in.

Every request is built here and signed through the ``sign`` function of an :class:`Endpoint` (botocore's SigV4
signer, see :mod:`llmfiles_bedrock.aws`); none is sent here, and the file's bytes are never read here: bodies carry
:class:`~llmfiles.models.FileRange` segments the core streams.  Each reader is a closure over what it needs to know
(the object's location, size and purpose), so nothing travels in URLs or headers to find its way back.  XML answers
are read with the standard library.
"""

from __future__ import annotations

import email.utils
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit
from xml.etree import ElementTree as ET

import attrs
from attrs import field, frozen

from llmfiles.errors import InputError, InvalidSetting, ProviderError, UploadFailed
from llmfiles.models import (
    FileObject,
    FilePage,
    FileRange,
    HttpRequest,
    HttpResponse,
    Part,
    Receipt,
    UploadFacts,
    UploadState,
)
from llmfiles.provider import (
    Exchange,
    PartLimits,
    PartListing,
    PartsUpload,
    Probe,
    guarded_error,
    guarded_read,
    rfc3339_seconds,
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
_MD5_RE = re.compile(r"[0-9a-f]{32}")
_NS = "http://s3.amazonaws.com/doc/2006-03-01/"

#: ``sign(method, url, headers, body, unsigned_payload) -> signed headers``
Signer = Callable[[str, str, Mapping[str, str], "bytes | None", bool], dict[str, str]]


# --- where files go ------------------------------------------------------------------------------------------


@frozen(kw_only=True)
class Location:
    """One S3 object: its bucket and key."""

    bucket: str
    key: str

    @property
    def uri(self) -> str:
        """``s3://bucket/key``: the file id."""
        return f"s3://{self.bucket}/{self.key}"


def check_bucket(bucket: Any, where: str) -> str:
    """The bucket name, if Bedrock accepts it in an S3 URI; :class:`InvalidSetting` otherwise."""
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


@frozen(kw_only=True)
class Endpoint:
    """Where S3 is (AWS by region, or a custom endpoint) and how to sign for it."""

    region: str
    sign: Signer = field(eq=False, repr=False)
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
        """The object's URL (virtual-hosted on AWS, path-style on a custom endpoint or for a dotted bucket)."""
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
        stream: tuple[FileRange, ...] | None = None,
        idempotent: bool | None = None,
    ) -> HttpRequest:
        """A signed request.  ``body`` (in memory) is signed by its SHA-256; a ``stream`` body (the file's bytes,
        streamed by the core) is signed as ``UNSIGNED-PAYLOAD`` and sent with an exact ``Content-Length``."""
        signed = self.sign(method, url, dict(headers or {}), body, stream is not None)
        sent: Any = stream if stream is not None else body
        return HttpRequest(method=method, url=url, headers=signed, body=sent, idempotent=idempotent)

    def error(self, response: HttpResponse) -> ProviderError:
        """S3's error answer as a :class:`ProviderError`."""
        return error_from(response, self.provider)

    def exchange(
        self, request: HttpRequest, read: Callable[[HttpResponse], Any], probe: Probe | None = None
    ) -> Exchange[Any]:
        """``request`` with its reader; answers that are not 2xx (S3's 301 for a bucket in another region) are
        errors."""

        def checked(response: HttpResponse) -> Any:
            if not 200 <= response.status < 300:
                raise self.error(response)
            return read(response)

        return Exchange(
            request=request,
            read=guarded_read(self.provider, checked),
            error=guarded_error(self.provider, self.error),
            probe=probe,
        )


def check_api_base(value: Any, where: str) -> str:
    """An endpoint URL setting, checked (scheme, host; no query or fragment)."""
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
    """S3's request id of an answer (``x-amz-request-id``)."""
    return response.header("x-amz-request-id") or response.header("x-amzn-requestid")


def _http_date(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(email.utils.parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError, IndexError):
        return None


def _error_fields(body: bytes) -> tuple[str | None, str, str | None, dict[str, Any]]:
    """``(code, message, request id, details)`` of an S3 XML error body."""
    try:
        root = _xml(body)
    except (ValueError, ET.ParseError):
        return None, body[:300].decode("utf-8", "replace").strip(), None, {}
    el = root if _local(root.tag) == "Error" else next(_children(root, "Error"), root)
    details: dict[str, Any] = {}
    for name in ("Key", "BucketName", "UploadId", "Region", "Endpoint"):
        value = _child_text(el, name)
        if value:
            details[name] = value
    return _child_text(el, "Code"), (_child_text(el, "Message") or "").strip(), _child_text(el, "RequestId"), details


def error_from(response: HttpResponse, provider: str) -> ProviderError:
    """The :class:`~llmfiles.errors.ProviderError` for an S3 error answer (XML body, or none for HEAD), with S3's
    code, message and request id; a bucket in another region names that region."""
    code, message, rid, details = _error_fields(response.body) if response.body else (None, "", None, {})
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
    return ProviderError(
        message,
        provider=provider,
        status=status,
        code=code,
        request_id=rid or request_id(response),
        details=details or None,
    )


def _etag(value: str | None) -> str:
    return (value or "").strip().strip('"').lower()


def _etag_is_md5(response: HttpResponse) -> bool:
    """With SSE-KMS (or DSSE-KMS) or SSE-C, an ETag is not the MD5 of the bytes."""
    sse = (response.header("x-amz-server-side-encryption") or "").lower()
    return not sse.startswith("aws:kms") and not response.header("x-amz-server-side-encryption-customer-algorithm")


def etag_md5(response: HttpResponse) -> str | None:
    """The MD5 of the object's bytes from the ``ETag`` of a PutObject or HeadObject answer, when it is one: a plain
    32-hex ETag of an object not encrypted with SSE-KMS or SSE-C (a multipart object's ETag ends with ``-N``)."""
    etag = _etag(response.header("etag"))
    return etag if _MD5_RE.fullmatch(etag) and _etag_is_md5(response) else None


def _file_object(
    provider: str,
    loc: Location,
    *,
    size: int,
    purpose: str | None,
    created_at: int | None,
    raw: Mapping[str, Any],
    md5: str | None = None,
) -> FileObject:
    return FileObject(
        id=loc.uri,
        provider=provider,
        filename=os.path.basename(loc.key),
        purpose=purpose or purpose_of(loc.key) or "unknown",
        bytes=size,
        created_at=created_at or int(time.time()),
        status="processed",
        checksums={"md5": md5} if md5 else {},
        raw=dict(raw),
    )


def _written(response: HttpResponse) -> int | None:
    # S3's answer to a write has no Last-Modified; its Date is S3's clock when the object was stored
    return _http_date(response.header("last-modified")) or _http_date(response.header("date"))


def file_from_put(provider: str, loc: Location, size: int, purpose: str, response: HttpResponse) -> FileObject:
    """The file a PutObject stored (its ETag, when it is an MD5, as ``checksums["md5"]``)."""
    return _file_object(
        provider,
        loc,
        size=size,
        purpose=purpose,
        created_at=_written(response),
        md5=etag_md5(response),
        raw={
            "bucket": loc.bucket,
            "key": loc.key,
            "etag": response.header("etag"),
            "version_id": response.header("x-amz-version-id"),
        },
    )


def file_from_head(provider: str, loc: Location, response: HttpResponse) -> FileObject:
    """The file a HeadObject answer describes (size, metadata, ETag)."""
    size = response.header("content-length")
    return _file_object(
        provider,
        loc,
        size=int(size) if size and size.isdigit() else 0,
        purpose=response.header("x-amz-meta-purpose"),
        created_at=_http_date(response.header("last-modified")),
        md5=etag_md5(response),
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
    No checksum is reported: a listing does not say whether an ETag is an MD5 (SSE-KMS).
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
                created_at=rfc3339_seconds(_child_text(item, "LastModified")),
                raw={"bucket": bucket, "key": key, "etag": _child_text(item, "ETag")},
            )
        )
    truncated = (_child_text(root, "IsTruncated") or "").lower() == "true"
    token = _child_text(root, "NextContinuationToken") if truncated else None
    if truncated and not token:
        raise ProviderError("S3 said the listing is truncated but gave no continuation token", provider=provider)
    return FilePage(files=tuple(files), next_cursor=token or None)


# --- one-request operations ----------------------------------------------------------------------------------


def content_type(filename: str) -> str:
    """``application/jsonl`` for JSONL files, else ``application/octet-stream``."""
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


def head_probe(ep: Endpoint, loc: Location) -> Probe:
    """How to find out what a lost PutObject (or CompleteMultipartUpload) made: HeadObject of its key, which is
    made fresh for each upload (``unique``): a 404 means nothing was created, an object found is the upload's."""

    def read(response: HttpResponse) -> Sequence[FileObject]:
        if response.status == 404:
            return []
        if not 200 <= response.status < 300:
            raise ep.error(response)
        return [file_from_head(ep.provider, loc, response)]

    return Probe(request=ep.request("HEAD", ep.object_url(loc)), read=guarded_read(ep.provider, read), unique=True)


def put_object(ep: Endpoint, loc: Location, facts: UploadFacts, fmt: str | None) -> Exchange[FileObject]:
    """PutObject: the whole file in one request, streamed (``UNSIGNED-PAYLOAD``), with its exact length.

    Not sent again blindly after a lost answer: the core asks :func:`head_probe` first.  The ETag S3 answers is
    reported as the MD5 of what it stored, which the core compares with the MD5 of what it sent.
    """
    request = ep.request(
        "PUT",
        ep.object_url(loc),
        headers=object_headers(facts.filename, facts.purpose, fmt),
        stream=(FileRange(offset=0, length=facts.size),),
        idempotent=False,
    )

    def read(response: HttpResponse) -> FileObject:
        return file_from_put(ep.provider, loc, facts.size, facts.purpose, response)

    return ep.exchange(request, read, probe=head_probe(ep, loc))


def head_object(ep: Endpoint, loc: Location) -> Exchange[FileObject]:
    """HeadObject: the file object of ``loc``."""
    return ep.exchange(ep.request("HEAD", ep.object_url(loc)), lambda r: file_from_head(ep.provider, loc, r))


def get_object(ep: Endpoint, loc: Location) -> Exchange[bool]:
    """GetObject: the core streams the content to the download's target."""
    return ep.exchange(ep.request("GET", ep.object_url(loc)), _true)


def delete_object(ep: Endpoint, loc: Location) -> Exchange[bool]:
    """DeleteObject (S3 answers 204 for a missing object too)."""
    return ep.exchange(ep.request("DELETE", ep.object_url(loc)), _true)


def _true(response: HttpResponse) -> bool:
    return True


def _query(params: Mapping[str, Any]) -> str:
    return urlencode({k: v for k, v in params.items() if v is not None}, quote_via=quote, safe="~")


def list_objects(
    ep: Endpoint, bucket: str, prefix: str, *, cursor: str | None, limit: int | None, purpose: str | None
) -> Exchange[FilePage]:
    """ListObjectsV2 under ``prefix``; ``cursor`` is S3's continuation token."""
    params: dict[str, Any] = {"list-type": "2", "prefix": prefix, "encoding-type": "url"}
    if limit is not None:
        params["max-keys"] = max(1, min(int(limit), 1000))
    if cursor:
        params["continuation-token"] = cursor
    request = ep.request("GET", f"{ep.bucket_url(bucket)}?{_query(params)}")
    return ep.exchange(request, lambda r: page_from_list(ep.provider, r, purpose))


# --- multipart upload ----------------------------------------------------------------------------------------


class Multipart(PartsUpload):
    """S3 multipart upload: CreateMultipartUpload, the parts in parallel (each part's ETag compared with the MD5 of
    the bytes sent for it), CompleteMultipartUpload with the checked ETags (a 200 answer carrying ``<Error>`` is a
    failure), ListParts to resume, AbortMultipartUpload when the upload fails for good.

    Every request after the start is built from the state (bucket, key, upload id, purpose, size), so a later process
    continues the upload; only the endpoint and the signer come from the call.
    """

    limits = PartLimits(minimum=MIN_PART, maximum=MAX_PART, max_parts=MAX_PARTS)
    part_digests = ("md5",)
    checksums = ()  # a multipart object's ETag is no MD5 of it: each part's is checked instead

    def __init__(self, ep: Endpoint, loc: Location, facts: UploadFacts, fmt: str | None) -> None:
        self.ep = ep
        self.loc = loc
        self.facts = facts
        self.fmt = fmt
        self.destination = loc.uri

    @staticmethod
    def _where(state: UploadState) -> Location:
        return Location(bucket=str(state["bucket"]), key=str(state["key"]))

    def _url(self, state: UploadState, **params: Any) -> str:
        query = _query({**params, "uploadId": state["upload_id"]})
        return f"{self.ep.object_url(self._where(state))}?{query}"

    def start(self) -> Exchange[UploadState]:
        """CreateMultipartUpload, with the object's metadata; the state keeps what every later request needs."""
        ep, loc, facts = self.ep, self.loc, self.facts
        headers = object_headers(facts.filename, facts.purpose, self.fmt)
        request = ep.request("POST", f"{ep.object_url(loc)}?uploads", headers=headers)

        def read(response: HttpResponse) -> UploadState:
            upload_id = _child_text(_xml(response.body), "UploadId")
            if not upload_id:
                raise ProviderError("CreateMultipartUpload answered without an UploadId", provider=ep.provider)
            return {
                "upload_id": upload_id,
                "bucket": loc.bucket,
                "key": loc.key,
                "purpose": facts.purpose,
                "bytes": facts.size,
            }

        return ep.exchange(request, read)

    def part(self, state: UploadState, part: Part) -> Exchange[Receipt]:
        """UploadPart (``UNSIGNED-PAYLOAD``); its ETag must be the MD5 of the bytes sent (``part.sent["md5"]``)."""
        ep = self.ep
        request = ep.request("PUT", self._url(state, partNumber=part.number), stream=(part.body,), idempotent=True)
        uri = self._where(state).uri

        def read(response: HttpResponse) -> Receipt:
            etag = _etag(response.header("etag"))
            if not etag:
                raise UploadFailed(f"S3 answered part {part.number} of {uri} without an ETag")
            sent = part.sent.get("md5")
            if not _etag_is_md5(response):
                log.debug("part %d: the ETag is not an MD5 (SSE-KMS or SSE-C); MD5 check skipped", part.number)
            elif sent is None:
                log.debug("part %d: no MD5 of the bytes sent; MD5 check skipped", part.number)
            elif etag != sent.lower():
                raise UploadFailed(
                    f"part {part.number} of {uri}: S3 stored bytes whose MD5 is {etag}, but the bytes sent have MD5 "
                    f"{sent}; the part was changed on the way, so the upload is not completed"
                )
            return {"part_number": part.number, "etag": f'"{etag}"'}

        return ep.exchange(request, read)

    def complete(
        self, state: UploadState, receipts: Sequence[Receipt], digests: Mapping[str, str]
    ) -> Exchange[FileObject]:
        """CompleteMultipartUpload with the parts' checked ETags, in order."""
        ep, where = self.ep, self._where(state)
        parts = "".join(
            f"<Part><PartNumber>{int(r['part_number'])}</PartNumber><ETag>{r['etag']}</ETag></Part>" for r in receipts
        )
        xml = f'<CompleteMultipartUpload xmlns="{_NS}">{parts}</CompleteMultipartUpload>'.encode()
        request = ep.request("POST", self._url(state), headers={"Content-Type": "application/xml"}, body=xml)

        def read(response: HttpResponse) -> FileObject:
            root = _complete_result(ep, response)
            fo = file_from_put(ep.provider, where, int(state["bytes"]), str(state["purpose"]), response)
            # a multipart object's ETag (in the body) is no MD5 of its bytes: no checksum is reported
            raw = {**fo.raw, "etag": _child_text(root, "ETag"), "upload_id": state["upload_id"]}
            return attrs.evolve(fo, raw=raw, checksums={})

        # a completed upload is gone (NoSuchUpload): if the answer is lost, the object (its key is unique to this
        # upload) is looked up instead of completing again
        return ep.exchange(request, read, probe=head_probe(ep, where))

    def list_parts(self, state: UploadState, cursor: str | None) -> Exchange[PartListing]:
        """ListParts, a page at a time (``cursor``: the part-number marker), to resume."""
        ep = self.ep
        request = ep.request("GET", self._url(state, **{"max-parts": 1000, "part-number-marker": cursor}))
        return ep.exchange(request, lambda r: read_list_parts(ep, r))

    def abort(self, state: UploadState) -> Exchange[object]:
        """AbortMultipartUpload: S3 drops the parts it holds."""
        return self.ep.exchange(self.ep.request("DELETE", self._url(state)), _true)


def _complete_result(ep: Endpoint, response: HttpResponse) -> ET.Element:
    """The ``CompleteMultipartUploadResult`` of an answer; S3 may answer 200 and report an error in the body (it
    starts answering before the object is built): that is the failure it is."""
    try:
        root = _xml(response.body)
    except (ValueError, ET.ParseError) as exc:
        raise ProviderError(
            f"CompleteMultipartUpload answered {response.status} with an unreadable body ({exc}); the upload is not "
            "complete",
            provider=ep.provider,
            status=response.status,
            request_id=request_id(response),
        ) from None
    if _local(root.tag) == "Error":
        err = error_from(response, ep.provider)
        raise err.with_message(f"CompleteMultipartUpload failed after answering HTTP {response.status}: {err.message}")
    if _local(root.tag) != "CompleteMultipartUploadResult":
        raise ProviderError(
            f"CompleteMultipartUpload answered with <{_local(root.tag)}>, not CompleteMultipartUploadResult",
            provider=ep.provider,
            status=response.status,
        )
    return root


def read_list_parts(ep: Endpoint, response: HttpResponse) -> PartListing:
    """One page of ListParts: ``{part index: receipt}`` and the next part-number marker."""
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
