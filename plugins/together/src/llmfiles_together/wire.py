"""Together AI's Files API as pure functions and one protocol class: exchanges out, data in.

Sources (each behaviour below names its own):

* the files contract: ``togethercomputer/openapi`` ``openapi.yaml`` at 090263aa (``GET /files``,
  ``POST /files/upload`` as multipart with ``purpose``, ``file_name``, ``file_type`` and ``file``, ``GET`` and
  ``DELETE /files/{id}``, ``GET /files/{id}/content``);
* the multipart contract: the same repository at b4dc3a8f (``POST /files/multipart/initiate`` with ``filename``,
  ``file_size``, ``num_parts`` 1 to 250, ``purpose``, ``file_type``, answered with ``upload_id``, ``file_id`` and
  ``parts[]`` of ``{PartNumber, URL, Headers}``; ``/complete`` with ``parts[]`` of ``{PartNumber, ETag}``;
  ``/abort``), the path Together's SDK takes for files above 5 GB (``together-python`` ``filemanager.py``,
  ``constants.py``: parts of 5 MiB at least, 250 parts at most, files up to 50.1 GiB).

Nothing here sends a request or reads the file.  The presigned part URLs work as credentials until they expire: they
live only in the upload's state (owner-only on disk), never in a message, a log line or ``destination``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlsplit

from attrs import frozen

from llmfiles.errors import InputError, ProviderError, UploadFailed
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
from llmfiles.parts import choose_part_size
from llmfiles.provider import Endpoint as BaseEndpoint
from llmfiles.provider import Exchange, PartLimits, PartsUpload, Probe, json_object

log = logging.getLogger("llmfiles.together")
T = TypeVar("T")

MiB = 1024 * 1024
GiB = 1024 * MiB
#: Together's SDK: parts of at least 5 MiB, 250 MiB wanted, at most 250 of them; multipart above 5 GiB; 50.1 GiB
MIN_PART = 5 * MiB
TARGET_PART = 250 * MiB
MAX_PARTS = 250
SINGLE_REQUEST_LIMIT = 5 * GiB
MAX_FILE_SIZE = int(50.1 * GiB)
#: how long presigned part URLs are taken to live when they do not say (S3's presigning default is an hour)
DEFAULT_URL_TTL = 3600.0
#: the file types Together takes, by extension (``FileType`` of the contract)
FILE_TYPES = {".jsonl": "jsonl", ".parquet": "parquet", ".csv": "csv"}
_MD5 = re.compile(r"[0-9a-f]{32}")


@frozen(kw_only=True)
class Endpoint(BaseEndpoint):
    """Where Together's API is and the headers every request to it carries (``Authorization``)."""

    provider: str = "together"

    def api_request(self, method: str, path: str, *, body: Any = None, content_type: str | None = None) -> HttpRequest:
        """A request to ``path`` of the API."""
        headers = {"Content-Type": content_type} if content_type else None
        return self.request(method, self.url(path), headers=headers, body=body)

    def json_request(self, path: str, payload: Mapping[str, Any]) -> HttpRequest:
        """A ``POST`` of ``payload`` as JSON to ``path``."""
        return self.api_request("POST", path, body=json.dumps(payload).encode(), content_type="application/json")

    def error(self, response: HttpResponse) -> ProviderError:
        """Together's error body (``ErrorData``: ``error.message``, ``type``, ``param``, ``code``)."""
        return error(self.provider, response)


def file_type(filename: str) -> str:
    """The contract's ``file_type`` of ``filename``; :class:`InputError` for a type Together does not take."""
    for ext, kind in FILE_TYPES.items():
        if filename.lower().endswith(ext):
            return kind
    raise InputError(f"Together takes .jsonl, .parquet and .csv files; {filename!r} is none of them")


def _file_path(file_id: str) -> str:
    return f"/files/{quote(file_id, safe='')}"


# --- every operation -----------------------------------------------------------------------------------------


def exchange(ep: Endpoint, op: Operation, *, part_size: int | None) -> Exchange[Any] | Multipart:
    """What to send for ``op``."""
    if isinstance(op, Upload):
        return upload(ep, op.file)
    if isinstance(op, UploadParts):
        return Multipart(ep, op.file, part_size)
    if isinstance(op, Retrieve):
        return ep.exchange(ep.api_request("GET", _file_path(op.file_id)), lambda r: file_object(ep.provider, r.json()))
    if isinstance(op, Delete):
        return ep.exchange(ep.api_request("DELETE", _file_path(op.file_id)), lambda r: read_deleted(ep, r, op.file_id))
    if isinstance(op, Download):
        return ep.exchange(ep.api_request("GET", _file_path(op.file_id) + "/content"), lambda r: True)
    assert isinstance(op, ListFiles)
    # GET /files takes no parameters: one answer holds every file (the purpose is filtered here)
    return ep.exchange(ep.api_request("GET", "/files"), lambda r: read_page(ep, r, op.purpose))


#: purposes llmfiles names as every provider does, and Together's name for them on the wire
#: (https://docs.together.ai/reference/upload-file: ``batch-api`` is the Batch API's input file)
WIRE_PURPOSES = {"batch": "batch-api"}
_OUR_PURPOSES = {wire: ours for ours, wire in WIRE_PURPOSES.items()}


def wire_purpose(purpose: str) -> str:
    """Together's name for the llmfiles purpose ``purpose``."""
    return WIRE_PURPOSES.get(purpose, purpose)


def our_purpose(purpose: str) -> str:
    """The llmfiles name of Together's purpose ``purpose`` (``batch-api`` is ``batch``)."""
    return _OUR_PURPOSES.get(purpose, purpose)


def upload(ep: Endpoint, facts: UploadFacts) -> Exchange[FileObject]:
    """``POST /files/upload``: multipart/form-data with ``purpose``, ``file_name``, ``file_type`` and the file."""
    kind = file_type(facts.filename)
    content_type, body = multipart_body(
        [("purpose", wire_purpose(facts.purpose)), ("file_name", facts.filename), ("file_type", kind)],
        [("file", facts.filename, "application/octet-stream", [FileRange(offset=0, length=facts.size)])],
    )
    request = ep.api_request("POST", "/files/upload", body=body, content_type=content_type)
    return ep.exchange(request, lambda r: read_file(ep, r), probe=listing_probe(ep, facts))


def listing_probe(ep: Endpoint, facts: UploadFacts) -> Probe:
    """After a lost ``POST /files/upload``: the files of the same name, size and purpose.  Together reports no
    checksum, so such a file cannot be told from an earlier upload of the same bytes and the core stops with
    ``MaybeUploaded`` (unless the file was made before the request started, which the core rules out)."""

    def read(response: HttpResponse) -> Sequence[FileObject]:
        page = read_page(ep, response, facts.purpose)
        return [f for f in page.files if f.filename == facts.filename and f.bytes == facts.size]

    return Probe(request=ep.api_request("GET", "/files"), read=read)


# --- the multipart protocol ----------------------------------------------------------------------------------


def plan_part_size(size: int, requested: int | None) -> int:
    """The part size of a multipart upload of ``size`` bytes: the requested one (Together's SDK wants 250 MiB),
    at least 5 MiB, grown until the file fits in 250 parts."""
    limits = PartLimits(minimum=MIN_PART, maximum=SINGLE_REQUEST_LIMIT, max_parts=MAX_PARTS)
    return choose_part_size(size, limits, requested or TARGET_PART, provider="together", path="-")


def urls_expire_at(urls: Sequence[str], now: float) -> float:
    """When the first of the presigned ``urls`` expires: SigV4's ``X-Amz-Date`` + ``X-Amz-Expires``, or Cloud
    Storage's ``X-Goog-Date`` + ``X-Goog-Expires``, or ``Expires`` (epoch seconds); an hour from ``now`` for a URL
    that says nothing."""
    ends = []
    for url in urls:
        query = {k.lower(): v for k, v in parse_qsl(urlsplit(url).query)}
        end = now + DEFAULT_URL_TTL
        for prefix in ("x-amz-", "x-goog-"):
            if f"{prefix}expires" in query:
                try:
                    start = datetime.strptime(query.get(f"{prefix}date", ""), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
                    end = start.timestamp() + float(query[f"{prefix}expires"])
                except ValueError:
                    end = now + float(query[f"{prefix}expires"]) if query[f"{prefix}expires"].isdigit() else end
        if "expires" in query and query["expires"].isdigit():
            end = float(query["expires"])
        ends.append(end)
    return min(ends, default=now + DEFAULT_URL_TTL)


class Multipart(PartsUpload):
    """Together's multipart upload: ``/files/multipart/initiate`` (the number of parts is fixed there), each part
    ``PUT`` to its presigned URL in parallel (its ETag compared with the MD5 of the bytes sent), ``/complete`` with
    the ETags in order, ``/abort`` when the upload fails for good.

    The state keeps the upload and file ids and every part's URL and headers, so a later run continues the upload;
    the session lives as long as the URLs do (``session_ttl``, read from the URLs when they say): a later run after
    they expired starts a new upload.  Together cannot be asked which parts it holds (no ``list_parts``): the parts
    recorded by the earlier run are trusted while the URLs live.
    """

    part_digests = ("md5",)

    def __init__(self, ep: Endpoint, facts: UploadFacts, part_size: int | None) -> None:
        self.ep = ep
        self.facts = facts
        self.kind = file_type(facts.filename)
        self.part_size = plan_part_size(facts.size, part_size)
        self.num_parts = max(1, math.ceil(facts.size / self.part_size))
        # the number of parts is told at initiate: the engine must cut exactly these parts
        self.limits = PartLimits(
            preferred=self.part_size, minimum=self.part_size, maximum=self.part_size, max_parts=MAX_PARTS
        )
        self.destination = ep.url("/files/multipart")
        self.session_ttl: float | None = DEFAULT_URL_TTL

    def start(self) -> Exchange[UploadState]:
        facts = self.facts
        payload = {
            "filename": facts.filename,
            "file_size": facts.size,
            "num_parts": self.num_parts,
            "purpose": wire_purpose(facts.purpose),
            "file_type": self.kind,
        }
        ep, num_parts = self.ep, self.num_parts

        def read(response: HttpResponse) -> UploadState:
            state = read_initiate(ep, response, num_parts)
            now = time.time()
            # the journal keeps the session while the first URL lives (read right after this answer)
            self.session_ttl = max(0.0, urls_expire_at([p["url"] for p in state["parts"].values()], now) - now)
            return {**state, "bytes": facts.size, "filename": facts.filename, "purpose": facts.purpose}

        return ep.exchange(ep.json_request("/files/multipart/initiate", payload), read)

    def part(self, state: UploadState, part: Part) -> Exchange[Receipt]:
        where = state["parts"].get(str(part.number))
        if where is None:
            raise UploadFailed(f"Together gave no URL for part {part.number} of {state['filename']}")
        # the presigned URL carries its own authorization: Together's key is not sent to the storage host
        headers = {str(k): str(v) for k, v in (where.get("headers") or {}).items()}
        request = HttpRequest(method="PUT", url=where["url"], headers=headers, body=(part.body,), idempotent=True)

        def read(response: HttpResponse) -> Receipt:
            return read_part(response, part, str(state["filename"]))

        return Exchange(request=request, read=read, error=storage_error)

    def complete(
        self, state: UploadState, receipts: Sequence[Receipt], digests: Mapping[str, str]
    ) -> Exchange[FileObject]:
        payload = {
            "upload_id": state["upload_id"],
            "file_id": state["file_id"],
            "parts": [{"PartNumber": int(r["PartNumber"]), "ETag": r["ETag"]} for r in receipts],
        }
        ep = self.ep
        request = ep.json_request("/files/multipart/complete", payload)
        return ep.exchange(request, lambda r: read_completed(ep, r), probe=file_probe(ep, state))

    def abort(self, state: UploadState) -> Exchange[object]:
        payload = {"upload_id": state["upload_id"], "file_id": state["file_id"]}
        return self.ep.exchange(self.ep.json_request("/files/multipart/abort", payload), lambda r: True)


def file_probe(ep: Endpoint, state: UploadState) -> Probe:
    """After a lost ``/complete``: the file id was made for this upload at initiate, so the file found under it,
    with all the bytes, is this upload's (``unique``); a 404 means it was not completed."""
    size = int(state["bytes"])

    def read(response: HttpResponse) -> Sequence[FileObject]:
        if response.status == 404:
            return []
        if response.status >= 400:
            raise ep.error(response)
        found = file_object(ep.provider, response.json())
        return [found] if found.bytes == size else []

    return Probe(request=ep.api_request("GET", _file_path(str(state["file_id"]))), read=read, unique=True)


def read_initiate(ep: Endpoint, response: HttpResponse, num_parts: int) -> dict[str, Any]:
    """``{upload_id, file_id, parts: {"1": {url, headers}, ...}}`` from initiate's answer, checked: one URL per
    part, numbered 1 to ``num_parts``."""
    data = json_object(ep.provider, response)
    upload_id, file_id, parts = data.get("upload_id"), data.get("file_id"), data.get("parts")
    if not isinstance(upload_id, str) or not upload_id or not isinstance(file_id, str) or not file_id:
        raise ProviderError("the multipart upload was initiated without an upload_id or file_id", provider=ep.provider)
    if not isinstance(parts, list):
        raise ProviderError("the multipart upload was initiated without its parts' URLs", provider=ep.provider)
    urls: dict[str, dict[str, Any]] = {}
    for item in parts:
        number = item.get("PartNumber") if isinstance(item, Mapping) else None
        url = item.get("URL") if isinstance(item, Mapping) else None
        if not isinstance(number, int) or not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            raise ProviderError("a part of the initiated upload has no number or URL", provider=ep.provider)
        headers = item.get("Headers") if isinstance(item.get("Headers"), Mapping) else {}
        urls[str(number)] = {"url": url, "headers": dict(headers)}
    if sorted(urls, key=int) != [str(n) for n in range(1, num_parts + 1)]:
        raise ProviderError(
            f"Together answered {len(urls)} part URLs for the {num_parts} parts asked for", provider=ep.provider
        )
    return {"upload_id": upload_id, "file_id": file_id, "parts": urls}


def read_part(response: HttpResponse, part: Part, filename: str) -> Receipt:
    """A part's receipt: its number and ETag; the ETag must be the MD5 of the bytes sent when it is a plain MD5
    (object storage's ETag of a part; an encrypted store's is not, and is then only recorded)."""
    etag = (response.header("etag") or "").strip()
    if not etag:
        raise UploadFailed(f"the storage answered part {part.number} of {filename} without an ETag")
    bare = etag.strip('"').lower()
    sent = part.sent.get("md5")
    if sent is not None and _MD5.fullmatch(bare) and bare != sent.lower():
        raise UploadFailed(
            f"part {part.number} of {filename}: the storage kept bytes whose MD5 is {bare}, but the bytes sent have "
            f"MD5 {sent}; the part was changed on the way, so the upload is not completed"
        )
    return {"PartNumber": part.number, "ETag": etag}


def read_completed(ep: Endpoint, response: HttpResponse) -> FileObject:
    """The file a completed upload made (the SDK reads it from ``file`` when the answer wraps it)."""
    data = json_object(ep.provider, response)
    inner = data.get("file")
    return file_object(ep.provider, inner if isinstance(inner, Mapping) else data)


def storage_error(response: HttpResponse) -> ProviderError:
    """A part's refusal by the object storage (its XML ``Code`` and ``Message`` when there are; never the URL)."""
    text = response.body[:2000].decode("utf-8", "replace")
    code = re.search(r"<Code>([^<]{1,100})</Code>", text)
    message = re.search(r"<Message>([^<]{1,300})</Message>", text)
    detail = message.group(1) if message else (text.strip()[:200] or f"HTTP {response.status}")
    hint = " (its presigned URL may have expired: run the upload again to start anew)" if response.status == 403 else ""
    return ProviderError(
        f"the storage refused a part: {detail}{hint}",
        provider="together",
        status=response.status,
        code=code.group(1) if code else None,
    )


# --- answers -------------------------------------------------------------------------------------------------


def _int(data: Mapping[str, Any], name: str, provider: str) -> int:
    value = data.get(name)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProviderError(f"unexpected answer: the file's {name!r} is not an integer", provider=provider)
    return value


def file_object(provider: str, data: Any) -> FileObject:
    """Together's ``FileResponse`` as a :class:`FileObject`: ``Processed`` true is ``processed``, false
    ``uploaded`` (not yet checked for fine-tuning)."""
    if not isinstance(data, Mapping):
        raise ProviderError("unexpected answer: the file is not a JSON object", provider=provider)
    file_id, filename, purpose = data.get("id"), data.get("filename"), data.get("purpose")
    if not isinstance(file_id, str) or not file_id or not isinstance(filename, str) or not isinstance(purpose, str):
        raise ProviderError("unexpected answer: the file has no id, filename or purpose", provider=provider)
    return FileObject(
        id=file_id,
        provider=provider,
        filename=filename,
        purpose=our_purpose(purpose),
        bytes=_int(data, "bytes", provider),
        created_at=_int(data, "created_at", provider),
        status="processed" if data.get("Processed") is not False else "uploaded",
        raw=dict(data),
    )


def read_file(ep: Endpoint, response: HttpResponse) -> FileObject:
    return file_object(ep.provider, json_object(ep.provider, response))


def read_page(ep: Endpoint, response: HttpResponse, purpose: str | None) -> FilePage:
    """``FileList``: every file in one answer (``data``), filtered by ``purpose`` here."""
    items = json_object(ep.provider, response).get("data")
    if not isinstance(items, list):
        raise ProviderError("the listing has no 'data' array", provider=ep.provider, status=response.status)
    files = tuple(file_object(ep.provider, item) for item in items)
    return FilePage(files=tuple(f for f in files if purpose is None or f.purpose == purpose))


def read_deleted(ep: Endpoint, response: HttpResponse, file_id: str) -> bool:
    if json_object(ep.provider, response).get("deleted") is False:
        raise ProviderError(f"Together did not delete {file_id}", provider=ep.provider, status=response.status)
    return True


def error(provider: str, response: HttpResponse) -> ProviderError:
    message, code, etype, param = None, None, None, None
    try:
        data = response.json()
    except ValueError:
        data = None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        message, code, etype, param = err.get("message"), err.get("code"), err.get("type"), err.get("param")
    elif isinstance(data, dict) and isinstance(data.get("message"), str):
        message = data["message"]
    if not message:
        message = response.body[:300].decode("utf-8", "replace").strip() or f"HTTP {response.status} with an empty body"
    return ProviderError(
        str(message),
        provider=provider,
        status=response.status,
        code=str(code) if code is not None else None,
        error_type=str(etype) if etype is not None else None,
        param=str(param) if param is not None else None,
        request_id=response.header("x-request-id"),
    )
