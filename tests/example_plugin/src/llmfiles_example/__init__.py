"""The in-house example provider plugin: provider ``example``, an OpenAI-compatible Files and Uploads API.

It is the model for real provider plugins, and it is what the cross-distribution tests install.  Like every
llmfiles plugin it takes data and returns data: it declares the provider, resolves credentials from settings,
builds :class:`~llmfiles.models.HttpRequest` objects (or an :class:`~llmfiles.models.UploadPlan` for large
files) and reads :class:`~llmfiles.models.HttpResponse` objects.  It never sends HTTP and never reads the file:
the upload body names the file as a :class:`~llmfiles.models.SourceRange` that the core's transport streams.

The wire format is OpenAI's:

* ``POST {api_base}/files`` (multipart/form-data ``purpose`` and ``file``) for files up to the threshold;
* ``GET /files``, ``GET /files/{id}``, ``DELETE /files/{id}``, ``GET /files/{id}/content``;
* the Uploads API for larger files: ``POST /uploads``, ``POST /uploads/{id}/parts`` (multipart ``data``, in
  parallel, at most 64 MiB each), ``POST /uploads/{id}/complete`` with the ordered part ids and the file's MD5,
  and ``POST /uploads/{id}/cancel`` when the upload fails for good.

Upload options (``options=`` of :func:`llmfiles.upload`): ``expires_after={"anchor": "created_at", "seconds": N}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote, urlencode

from attrs import field, frozen

from llmfiles.errors import InputError, MissingCredentials, ProviderError
from llmfiles.models import (
    Credentials,
    FileObject,
    FilePage,
    HttpRequest,
    HttpResponse,
    Operation,
    Part,
    ProviderInfo,
    Receipt,
    Secret,
    Settings,
    SettingSpec,
    Source,
    SourceRange,
    Status,
    UploadPlan,
    UploadState,
)
from llmfiles.multipart import multipart_body
from llmfiles.pluginapi import hookimpl
from llmfiles.settings import places_looked

__version__ = "0.1.0"

NAME: Final = "example"
PACKAGE: Final = "llmfiles-example-plugin"
PURPOSES: Final = ("assistants", "batch", "fine-tune")
MiB: Final = 1024 * 1024
GiB: Final = 1024 * MiB
DEFAULT_API_BASE: Final = "http://127.0.0.1:9/v1"
#: ``POST /files`` takes files up to 512 MB; the Uploads API up to 8 GB, in parts of at most 64 MB
MAX_SINGLE_REQUEST: Final = 512 * MiB
MAX_UPLOAD: Final = 8 * GiB
MAX_PART_SIZE: Final = 64 * MiB
UPLOAD_OPTIONS: Final = ("expires_after",)

INFO: Final = ProviderInfo(
    name=NAME,
    package=PACKAGE,
    purposes=PURPOSES,
    description="an OpenAI-compatible Files and Uploads API (the in-house example plugin)",
    settings=(
        SettingSpec(
            name="api_key",
            kind="secret",
            env=("EXAMPLE_API_KEY",),
            help="the API key, sent as 'Authorization: Bearer <key>'",
        ),
        SettingSpec(
            name="api_base",
            kind="str",
            env=("EXAMPLE_API_BASE",),
            default=DEFAULT_API_BASE,
            help="the API's base URL, up to and including /v1",
        ),
    ),
    credential_settings=("api_key",),
    max_file_size=MAX_UPLOAD,
    max_single_request_size=MAX_SINGLE_REQUEST,
    default_multipart_threshold=512 * MiB,
    default_part_size=8 * MiB,
    supports_parts=True,
    upload_digests=("md5",),
)

_STATUSES: Final[Mapping[str, Status]] = {
    "uploaded": "uploaded",
    "processed": "processed",
    "pending": "pending",
    "error": "error",
    "deleted": "deleted",
}


# --- the hooks -----------------------------------------------------------------------------------------------


@hookimpl
def llmfiles_register_providers(register: Callable[[ProviderInfo], None]) -> None:
    register(INFO)


@hookimpl
def llmfiles_resolve_credentials(provider: str, settings: Settings, environ: Mapping[str, str]) -> Credentials | None:
    if provider != NAME:
        return None
    key = settings.get("api_key")
    if not isinstance(key, Secret) or not key:
        raise MissingCredentials(
            NAME,
            "API key",
            places_looked(INFO, INFO.credential_settings),
            hint="set EXAMPLE_API_KEY, or pass api_key=...",
        )
    return Credentials(kind="api_key", source=settings.source("api_key"), secret=key)


@hookimpl
def llmfiles_build_request(
    provider: str, operation: Operation, credentials: Credentials, settings: Settings
) -> HttpRequest | UploadPlan | None:
    if provider != NAME:
        return None
    api = _Api(base=str(settings.get("api_base", DEFAULT_API_BASE)).rstrip("/"), auth=_auth_headers(credentials))
    match operation.name:
        case "upload":
            return api.upload(operation)
        case "upload_parts":
            return api.upload_plan(operation, part_size=int(settings["part_size"]))
        case "retrieve":
            return HttpRequest(method="GET", url=api.file_url(operation), headers=api.headers())
        case "delete":
            return HttpRequest(method="DELETE", url=api.file_url(operation), headers=api.headers())
        case "download":
            return HttpRequest(
                method="GET",
                url=api.file_url(operation) + "/content",
                headers=api.headers(accept="application/octet-stream"),
            )
        case "list":
            return api.list(operation)
    return None


@hookimpl
def llmfiles_normalize_response(
    provider: str, operation: Operation, response: HttpResponse
) -> FileObject | FilePage | Exception | bool | None:
    if provider != NAME:
        return None
    if response.status >= 400:
        return provider_error(response)
    match operation.name:
        case "upload" | "retrieve":
            return file_object(_json_object(response), response)
        case "list":
            return file_page(_json_object(response), response)
        case "delete":
            data = _json_object(response)
            if data.get("deleted") is not True:
                raise ProviderError(
                    f"the provider did not confirm that {operation.file_id} was deleted",
                    provider=NAME,
                    status=response.status,
                    request_id=response.header("x-request-id"),
                )
            return True
        case "download":
            return True
    return None


# --- building requests ---------------------------------------------------------------------------------------


def _auth_headers(credentials: Credentials) -> dict[str, str]:
    # Credentials from another plugin (a vault, a proxy) may come as ready headers instead of a secret.
    headers = dict(credentials.headers)
    if credentials.secret is not None:
        headers["Authorization"] = f"Bearer {credentials.secret.reveal()}"
    return headers


def _mime_type(filename: str) -> str:
    return "text/jsonl" if filename.lower().endswith(".jsonl") else "application/octet-stream"


def _expires_after(options: Mapping[str, Any]) -> dict[str, Any] | None:
    unknown = sorted(set(options) - set(UPLOAD_OPTIONS))
    if unknown:
        raise InputError(
            f"provider {NAME!r} has no upload option {', '.join(map(repr, unknown))}; "
            f"its options are: {', '.join(UPLOAD_OPTIONS)}"
        )
    value = options.get("expires_after")
    if value is None:
        return None
    if (
        not isinstance(value, Mapping)
        or value.get("anchor", "created_at") != "created_at"
        or not isinstance(value.get("seconds"), int)
        or isinstance(value.get("seconds"), bool)
    ):
        raise InputError(f'expires_after must look like {{"anchor": "created_at", "seconds": 3600}}, not {value!r}')
    return {"anchor": "created_at", "seconds": value["seconds"]}


def _json_body(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def _source(operation: Operation) -> Source:
    if operation.source is None:
        raise InputError(f"{operation.name!r} needs a file to upload")
    return operation.source


@frozen(kw_only=True)
class _Api:
    """Where the API is and how to authenticate; builds the requests of one call."""

    base: str
    auth: Mapping[str, str] = field(repr=False)

    def headers(self, *, accept: str = "application/json", content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": accept, "User-Agent": f"{PACKAGE}/{__version__}", **self.auth}
        if content_type is not None:
            headers["Content-Type"] = content_type
        return headers

    def file_url(self, operation: Operation) -> str:
        if not operation.file_id:
            raise InputError(f"{operation.name!r} needs a file id")
        return f"{self.base}/files/{quote(operation.file_id, safe='')}"

    def list(self, operation: Operation) -> HttpRequest:
        query = {"after": operation.cursor, "limit": operation.limit, "purpose": operation.purpose}
        qs = urlencode({k: v for k, v in query.items() if v is not None})
        return HttpRequest(method="GET", url=f"{self.base}/files" + (f"?{qs}" if qs else ""), headers=self.headers())

    def upload(self, operation: Operation) -> HttpRequest:
        source = _source(operation)
        filename = operation.filename or source.name
        fields = [("purpose", str(operation.purpose))]
        expires = _expires_after(operation.options)
        if expires is not None:
            fields.append(("expires_after[anchor]", expires["anchor"]))
            fields.append(("expires_after[seconds]", str(expires["seconds"])))
        whole_file = SourceRange(source=source, offset=0, length=source.size)
        content_type, body = multipart_body(fields, [("file", filename, _mime_type(filename), (whole_file,))])
        return HttpRequest(
            method="POST", url=f"{self.base}/files", headers=self.headers(content_type=content_type), body=body
        )

    def upload_plan(self, operation: Operation, *, part_size: int) -> UploadPlan:
        source = _source(operation)
        filename = operation.filename or source.name
        start: dict[str, Any] = {
            "filename": filename,
            "purpose": operation.purpose,
            "bytes": source.size,
            "mime_type": _mime_type(filename),
        }
        expires = _expires_after(operation.options)
        if expires is not None:
            start["expires_after"] = expires
        uploads = _Uploads(api=self, filename=filename)
        return UploadPlan(
            destination=f"{self.base}/uploads",
            start=HttpRequest(
                method="POST",
                url=f"{self.base}/uploads",
                headers=self.headers(content_type="application/json"),
                body=_json_body(start),
            ),
            read_start=uploads.read_start,
            part=uploads.part,
            read_part=uploads.read_part,
            complete=uploads.complete,
            read_complete=uploads.read_complete,
            abort=uploads.cancel,
            part_size=part_size,
            max_part_size=MAX_PART_SIZE,
            sequential=False,
            digests=("md5",),
        )


@frozen(kw_only=True)
class _Uploads:
    """The Uploads API as pure functions from responses to the next requests (see :class:`UploadPlan`)."""

    api: _Api
    filename: str

    def _url(self, state: UploadState, action: str) -> str:
        return f"{self.api.base}/uploads/{quote(str(state['upload_id']), safe='')}/{action}"

    def read_start(self, response: HttpResponse) -> UploadState:
        data = _json_object(response)
        return {"upload_id": _text(data, "id", response)}

    def part(self, state: UploadState, part: Part) -> HttpRequest:
        content_type, body = multipart_body(
            [], [("data", f"{self.filename}.part{part.number}", "application/octet-stream", (part.body,))]
        )
        return HttpRequest(
            method="POST",
            url=self._url(state, "parts"),
            headers=self.api.headers(content_type=content_type),
            body=body,
        )

    def read_part(self, state: UploadState, part: Part, response: HttpResponse, digests: Mapping[str, str]) -> Receipt:
        data = _json_object(response)
        return {"part_id": _text(data, "id", response), "number": part.number}

    def complete(self, state: UploadState, receipts: Sequence[Receipt], digests: Mapping[str, str]) -> HttpRequest:
        payload: dict[str, Any] = {"part_ids": [r["part_id"] for r in receipts]}
        if "md5" in digests:
            payload["md5"] = digests["md5"]
        return HttpRequest(
            method="POST",
            url=self._url(state, "complete"),
            headers=self.api.headers(content_type="application/json"),
            body=_json_body(payload),
        )

    def read_complete(self, state: UploadState, response: HttpResponse) -> FileObject:
        data = _json_object(response)
        file = data.get("file")
        if data.get("status") != "completed" or not isinstance(file, Mapping):
            raise ProviderError(
                f"upload {state.get('upload_id')} ended with status {data.get('status')!r} and no file",
                provider=NAME,
                status=response.status,
                request_id=response.header("x-request-id"),
            )
        return file_object(file, response)

    def cancel(self, state: UploadState) -> HttpRequest:
        return HttpRequest(method="POST", url=self._url(state, "cancel"), headers=self.api.headers())


# --- reading responses ---------------------------------------------------------------------------------------


def provider_error(response: HttpResponse) -> ProviderError:
    """The :class:`ProviderError` for an error answer: OpenAI's ``{"error": {message, type, param, code}}``."""
    error: Any = None
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        pass
    message: str | None = None
    code = error_type = param = None
    if isinstance(error, Mapping):
        message = str(error["message"]) if error.get("message") else None
        code = str(error["code"]) if error.get("code") is not None else None
        error_type = str(error["type"]) if error.get("type") is not None else None
        param = str(error["param"]) if error.get("param") is not None else None
    if message is None:
        message = response.body[:500].decode("utf-8", "replace").strip() or f"HTTP {response.status} without a body"
    return ProviderError(
        message,
        provider=NAME,
        status=response.status,
        code=code,
        error_type=error_type,
        param=param,
        request_id=response.header("x-request-id"),
    )


def _malformed(response: HttpResponse | None, what: str) -> ProviderError:
    return ProviderError(
        f"unexpected answer from the provider: {what}",
        provider=NAME,
        status=response.status if response is not None else None,
        request_id=response.header("x-request-id") if response is not None else None,
    )


def _json_object(response: HttpResponse) -> Mapping[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise _malformed(response, "the body is not JSON") from None
    if not isinstance(data, Mapping):
        raise _malformed(response, f"expected a JSON object, got {type(data).__name__}")
    return data


def _text(data: Mapping[str, Any], key: str, response: HttpResponse | None) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise _malformed(response, f"{key!r} is missing or not a string")
    return value


def _integer(data: Mapping[str, Any], key: str, response: HttpResponse | None) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _malformed(response, f"{key!r} is missing or not an integer")
    return value


def _status(value: Any) -> Status:
    # OpenAI deprecated the field: a file without one is usable as it is; an unknown value is still in progress
    if value is None:
        return "processed"
    return _STATUSES.get(str(value), "pending")


def file_object(data: Mapping[str, Any], response: HttpResponse | None = None) -> FileObject:
    """A :class:`FileObject` from OpenAI's file object."""
    expires_at = data.get("expires_at")
    details = data.get("status_details")
    return FileObject(
        id=_text(data, "id", response),
        provider=NAME,
        filename=_text(data, "filename", response),
        purpose=_text(data, "purpose", response),
        bytes=_integer(data, "bytes", response),
        created_at=_integer(data, "created_at", response),
        status=_status(data.get("status")),
        expires_at=expires_at if isinstance(expires_at, int) else None,
        status_details=str(details) if details is not None else None,
        raw=dict(data),
    )


def file_page(data: Mapping[str, Any], response: HttpResponse | None = None) -> FilePage:
    """A :class:`FilePage` from OpenAI's list object; the cursor of the next page is the last id (``after``)."""
    items = data.get("data")
    if not isinstance(items, list):
        raise _malformed(response, "'data' is missing or not a list")
    files = tuple(file_object(item, response) for item in items if isinstance(item, Mapping))
    next_cursor = None
    if data.get("has_more") and files:
        last = data.get("last_id")
        next_cursor = last if isinstance(last, str) and last else files[-1].id
    return FilePage(files=files, next_cursor=next_cursor)
