"""The OpenAI Files and Uploads wire format, as pure functions: requests out, normalized data in.

Azure OpenAI speaks the same format with other paths, query parameters, auth headers and statuses, so every
function takes an :class:`Endpoint` that says those things; ``llmfiles-azure`` reuses this module.
"""

from __future__ import annotations

import json
import mimetypes
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

import attrs
from attrs import field, frozen

from llmfiles.errors import ProviderError
from llmfiles.models import (
    FileObject,
    FilePage,
    HttpRequest,
    HttpResponse,
    Operation,
    Part,
    Receipt,
    SourceRange,
    UploadPlan,
    UploadState,
)
from llmfiles.multipart import multipart_body

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


@frozen(kw_only=True)
class Endpoint:
    """Where and how to reach an OpenAI-format Files API."""

    provider: str
    base: str
    query: Mapping[str, str] = field(factory=dict)
    headers: Mapping[str, str] = field(factory=dict, repr=False)
    request_id_headers: tuple[str, ...] = ("x-request-id",)
    uploads_path: str = "/uploads"
    #: query parameters of the listing that looks for a file whose upload answer was lost (newest first)
    probe_params: Mapping[str, Any] = field(factory=lambda: {"limit": 100, "order": "desc"})

    def url(self, path: str, **params: Any) -> str:
        query = dict(self.query)
        query.update({k: str(v) for k, v in params.items() if v is not None})
        tail = f"?{urlencode(query)}" if query else ""
        return f"{self.base.rstrip('/')}{path}{tail}"

    def request(
        self, method: str, path: str, *, body: Any = None, content_type: str | None = None, **params: Any
    ) -> HttpRequest:
        headers = dict(self.headers)
        if content_type:
            headers["Content-Type"] = content_type
        return HttpRequest(method=method, url=self.url(path, **params), headers=headers, body=body)


def _file_path(file_id: str | None) -> str:
    if not file_id:
        raise ValueError("a file id is required")
    return f"/files/{quote(file_id, safe='')}"


def mime_type(filename: str) -> str:
    """The MIME type OpenAI expects for ``filename`` (JSONL files are ``text/jsonl``)."""
    if filename.lower().endswith(".jsonl"):
        return "text/jsonl"
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def expires_after_fields(seconds: Any) -> list[tuple[str, str]]:
    """Form fields for a file expiration policy (``expires_after[anchor]``, ``expires_after[seconds]``)."""
    if seconds is None:
        return []
    return [("expires_after[anchor]", "created_at"), ("expires_after[seconds]", str(int(seconds)))]


#: how far the provider's clock may be behind ours when a file is looked for by its creation time
CLOCK_SKEW = 300
#: OpenAI keeps an unfinished upload for an hour (Azure OpenAI: two hours)
UPLOAD_TTL = 3600


def probe_for_file(
    ep: Endpoint, *, purpose: str, filename: str, size: int, answer: Callable[[Mapping[str, Any]], Any] | None = None
) -> dict[str, Any]:
    """``probe``/``read_probe`` for a request that creates a file (``POST /files``, an upload's ``complete``): list
    the newest files of ``purpose`` and take the newest with the same name and size created since now (less
    :data:`CLOCK_SKEW`).  ``answer(file_json)`` makes the answer of the lost request from it (default: the file).

    The Files API has no idempotency key, so this is a heuristic: a file with the same name and size uploaded by
    someone else in those few minutes would be taken for this one.
    """
    since = int(time.time()) - CLOCK_SKEW

    def probe() -> HttpRequest:
        return ep.request("GET", "/files", purpose=purpose, **ep.probe_params)

    def read_probe(resp: HttpResponse) -> HttpResponse | None:
        if resp.status != 200:
            raise error(ep.provider, resp, ep.request_id_headers)
        data = _json_object(ep.provider, resp)
        items = data.get("data")
        if not isinstance(items, list):
            raise ProviderError("the listing has no 'data' array", provider=ep.provider, status=resp.status)
        found = [
            item
            for item in items
            if isinstance(item, Mapping)
            and item.get("filename") == filename
            and item.get("purpose") in (purpose, None)
            and item.get("bytes") in (size, None)
            and isinstance(item.get("created_at"), int)
            and item["created_at"] >= since
            and item.get("status") not in ("error", "deleted", "deleting")
        ]
        if not found:
            return None
        newest = max(found, key=lambda item: item["created_at"])
        body = answer(newest) if answer is not None else newest
        return HttpResponse(status=200, headers={"content-type": "application/json"}, body=json.dumps(body).encode())

    return {"probe": probe, "read_probe": read_probe}


# --- one-shot requests ---------------------------------------------------------------------------------------


def upload_request(ep: Endpoint, op: Operation, *, expires_after: Any = None, prefix: bytes = b"") -> HttpRequest:
    """``POST /files`` as multipart/form-data; the file is streamed from disk, never read into memory.

    ``prefix`` is sent before the file's bytes (Azure uses it to add a UTF-8 BOM on the fly).
    """
    assert op.source is not None and op.filename is not None and op.purpose is not None
    segments: list[Any] = [prefix] if prefix else []
    segments.append(SourceRange(source=op.source, offset=0, length=op.source.size))
    content_type, body = multipart_body(
        [("purpose", op.purpose), *expires_after_fields(expires_after)],
        [("file", op.filename, "application/octet-stream", segments)],
    )
    request = ep.request("POST", "/files", body=body, content_type=content_type)
    # POST /files is not idempotent: an attempt whose answer was lost is looked for before it is sent again
    size = op.source.size + len(prefix)
    return attrs.evolve(request, **probe_for_file(ep, purpose=op.purpose, filename=op.filename, size=size))


def one_shot_request(ep: Endpoint, op: Operation) -> HttpRequest:
    """retrieve, delete, download and list."""
    if op.name == "retrieve":
        return ep.request("GET", _file_path(op.file_id))
    if op.name == "delete":
        return ep.request("DELETE", _file_path(op.file_id))
    if op.name == "download":
        return ep.request("GET", _file_path(op.file_id) + "/content")
    if op.name == "list":
        return ep.request("GET", "/files", purpose=op.purpose, after=op.cursor, limit=op.limit)
    raise ValueError(f"not a one-shot operation: {op.name}")


# --- the Uploads API as a plan -------------------------------------------------------------------------------


def uploads_plan(
    ep: Endpoint,
    op: Operation,
    *,
    part_size: int,
    max_part_size: int,
    expires_after: Any = None,
    send_md5: bool = True,
    status_map: Mapping[str, str] = STATUS_MAP,
    prefix: bytes = b"",
    session_ttl: float = UPLOAD_TTL,
) -> UploadPlan:
    """The Uploads API: ``POST /uploads``, parts in parallel (``data`` field), ``complete`` with the ordered
    part ids and the file's MD5, ``cancel`` on failure.

    ``prefix`` is sent before the file's bytes, in the first part (Azure uses it to add a UTF-8 BOM on the fly);
    the declared ``bytes`` include it.  The whole-file MD5 the engine knows is that of the file on disk, not of
    prefix + file, so no MD5 is sent when there is a prefix (the field is optional).
    """
    assert op.source is not None and op.filename is not None and op.purpose is not None
    filename, purpose, size = op.filename, op.purpose, op.source.size + len(prefix)
    send_md5 = send_md5 and not prefix
    # only the first part carries the prefix, but every part is kept within the limit with room for it
    max_part_size -= len(prefix)
    start_body: dict[str, Any] = {
        "filename": filename,
        "purpose": purpose,
        "bytes": size,
        "mime_type": mime_type(filename),
    }
    if expires_after is not None:
        start_body["expires_after"] = {"anchor": "created_at", "seconds": int(expires_after)}
    base = ep.uploads_path

    def read_start(resp: HttpResponse) -> UploadState:
        data = _json_object(ep.provider, resp)
        upload_id = data.get("id")
        if not isinstance(upload_id, str) or not upload_id:
            raise ProviderError("the upload was created without an id", provider=ep.provider, status=resp.status)
        return {"upload_id": upload_id, "expires_at": data.get("expires_at")}

    def part(state: UploadState, p: Part) -> HttpRequest:
        segments: list[Any] = [prefix, p.body] if (prefix and p.index == 0) else [p.body]
        content_type, body = multipart_body([], [("data", f"part-{p.number}", "application/octet-stream", segments)])
        return ep.request(
            "POST", f"{base}/{quote(state['upload_id'], safe='')}/parts", body=body, content_type=content_type
        )

    def read_part(state: UploadState, p: Part, resp: HttpResponse, digests: Mapping[str, str]) -> Receipt:
        data = _json_object(ep.provider, resp)
        part_id = data.get("id")
        if not isinstance(part_id, str) or not part_id:
            raise ProviderError(f"part {p.number} was accepted without an id", provider=ep.provider, status=resp.status)
        receipt: dict[str, Any] = {"part_id": part_id}
        if "azure_block_id" in data:
            receipt["azure_block_id"] = data["azure_block_id"]
        return receipt

    def complete(state: UploadState, receipts: Sequence[Receipt], digests: Mapping[str, str]) -> HttpRequest:
        payload: dict[str, Any] = {"part_ids": [r["part_id"] for r in receipts]}
        if send_md5 and "md5" in digests:
            payload["md5"] = digests["md5"]
        request = ep.request(
            "POST",
            f"{base}/{quote(state['upload_id'], safe='')}/complete",
            body=json.dumps(payload).encode(),
            content_type="application/json",
        )
        # a completed upload cannot be completed again: if the answer is lost, the file is looked for instead

        def answer(file_json: Mapping[str, Any]) -> dict[str, Any]:
            return {"id": state["upload_id"], "object": "upload", "status": "completed", "file": dict(file_json)}

        return attrs.evolve(request, **probe_for_file(ep, purpose=purpose, filename=filename, size=size, answer=answer))

    def read_complete(state: UploadState, resp: HttpResponse) -> FileObject:
        data = _json_object(ep.provider, resp)
        status = data.get("status")
        file_data = data.get("file")
        if status != "completed" or not isinstance(file_data, Mapping):
            raise ProviderError(
                f"the upload {state['upload_id']} ended with status {status!r} and no file object",
                provider=ep.provider,
                status=resp.status,
            )
        return file_object(ep.provider, file_data, status_map)

    def abort(state: UploadState) -> HttpRequest:
        return ep.request("POST", f"{base}/{quote(state['upload_id'], safe='')}/cancel")

    return UploadPlan(
        destination=ep.url(base),
        start=ep.request("POST", base, body=json.dumps(start_body).encode(), content_type="application/json"),
        read_start=read_start,
        part=part,
        read_part=read_part,
        complete=complete,
        read_complete=read_complete,
        abort=abort,
        part_size=min(part_size, max_part_size),
        max_part_size=max_part_size,
        max_parts=10_000,
        digests=("md5",) if send_md5 else (),
        session_ttl=session_ttl,
    )


# --- responses -----------------------------------------------------------------------------------------------


def _json_object(provider: str, resp: HttpResponse) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        raise ProviderError(
            f"unexpected answer: expected a JSON object, got {resp.body[:200]!r}", provider=provider, status=resp.status
        ) from None
    if not isinstance(data, dict):
        raise ProviderError(
            f"unexpected answer: expected a JSON object, got a {type(data).__name__}",
            provider=provider,
            status=resp.status,
        )
    return data


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


def file_object(provider: str, data: Mapping[str, Any], status_map: Mapping[str, str] = STATUS_MAP) -> FileObject:
    """An OpenAI-format file object as llmfiles' :class:`FileObject`.

    A field of the wrong type, or a missing required one, is a :class:`ProviderError` (a malformed or hostile
    answer must not become a plausible-looking file object).
    """
    file_id = _field(provider, data, "id", str)
    if not file_id:
        raise ProviderError("unexpected answer: the file object has an empty id", provider=provider)
    raw_status = _field(provider, data, "status", str, optional=True) or "processed"
    details = data.get("status_details")
    return FileObject(
        id=file_id,
        provider=provider,
        filename=_field(provider, data, "filename", str),
        purpose=_field(provider, data, "purpose", str),
        bytes=_field(provider, data, "bytes", int),
        created_at=_field(provider, data, "created_at", int),
        status=status_map.get(raw_status, "pending"),  # type: ignore[arg-type]
        expires_at=_field(provider, data, "expires_at", int, optional=True),
        status_details=str(details) if details else None,
        raw=dict(data),
    )


def file_page(provider: str, resp: HttpResponse, status_map: Mapping[str, str] = STATUS_MAP) -> FilePage:
    data = _json_object(provider, resp)
    items = data.get("data")
    if not isinstance(items, list):
        raise ProviderError("the listing has no 'data' array", provider=provider, status=resp.status)
    files = tuple(file_object(provider, item, status_map) for item in items if isinstance(item, Mapping))
    cursor = None
    if data.get("has_more") and files:
        last = data.get("last_id")
        cursor = last if isinstance(last, str) and last else files[-1].id
    return FilePage(files=files, next_cursor=cursor)


def error(provider: str, resp: HttpResponse, request_id_headers: Sequence[str] = ("x-request-id",)) -> ProviderError:
    """The provider's error body (``error.message/type/code/param``, or Azure's ``code/message/innererror``)."""
    request_id = next((resp.header(h) for h in request_id_headers if resp.header(h)), None)
    message, code, etype, param, details = None, None, None, None, None
    try:
        data = resp.json()
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
        message = resp.body[:300].decode("utf-8", "replace").strip() or f"HTTP {resp.status} with an empty body"
    return ProviderError(
        str(message),
        provider=provider,
        status=resp.status,
        code=str(code) if code is not None else None,
        error_type=str(etype) if etype is not None else None,
        param=str(param) if param is not None else None,
        request_id=request_id,
        details=details,
    )


def normalize(
    provider: str,
    op: Operation,
    resp: HttpResponse,
    *,
    status_map: Mapping[str, str] = STATUS_MAP,
    request_id_headers: Sequence[str] = ("x-request-id",),
) -> FileObject | FilePage | ProviderError | bool:
    """The answer to ``op`` as llmfiles data (see ``llmfiles_normalize_response``)."""
    if resp.status >= 400:
        return error(provider, resp, request_id_headers)
    if op.name in ("upload", "retrieve"):
        return file_object(provider, _json_object(provider, resp), status_map)
    if op.name == "list":
        return file_page(provider, resp, status_map)
    if op.name == "delete":
        data = _json_object(provider, resp)
        if data.get("deleted") is False:
            raise ProviderError(f"the provider did not delete {op.file_id}", provider=provider, status=resp.status)
        return True
    return True


Builder = Callable[[Endpoint, Operation], HttpRequest]
