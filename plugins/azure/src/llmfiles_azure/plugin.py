"""The ``azure`` provider's hook implementations: Azure OpenAI's Files and Uploads APIs.

The requests are built by :mod:`llmfiles_openai.wire` with an Azure :class:`~llmfiles_openai.wire.Endpoint`
(``{endpoint}/openai`` plus ``?api-version=...``, or ``{endpoint}/openai/v1``) and then signed by
:mod:`llmfiles_azure.auth` (``api-key`` header or an Entra ID bearer token).  Nothing here sends a request.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs

from llmfiles import hookimpl
from llmfiles.errors import FileTooLarge, InvalidPurpose, InvalidSetting, ProviderError
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
    Settings,
    SettingSpec,
    UploadPlan,
    UploadState,
)
from llmfiles.settings import places_looked
from llmfiles.validate.records import RecordChecker
from llmfiles_azure import auth, bom, checks
from llmfiles_openai import wire
from llmfiles_openai.checks import BatchChecker
from llmfiles_openai.plugin import CHECK_SETTINGS, checker_options

NAME = "azure"
#: the GA api-version of the classic API
DEFAULT_API_VERSION = "2024-10-21"
#: ``api_version`` value that selects the v1 API (``{endpoint}/openai/v1``, no api-version query)
V1 = "v1"
#: upload purposes of the classic API (api-version 2024-10-21) and of the v1 API
CLASSIC_PURPOSES = ("fine-tune", "fine-tune-results", "assistants", "assistants_output", "batch")
V1_PURPOSES = ("assistants", "batch", "fine-tune", "evals")
PURPOSES = tuple(dict.fromkeys(CLASSIC_PURPOSES + V1_PURPOSES))
MB = 1000 * 1000
GB = 1000 * MB
#: one ``POST /files`` takes at most 512 MB; the Uploads API at most 9 GB, in parts of at most 64 MB
SINGLE_REQUEST_LIMIT = 512 * MB
#: the largest file sent in one request: room is kept for the BOM a fine-tuning file may get on the way
ONE_REQUEST_FILE_LIMIT = SINGLE_REQUEST_LIMIT - len(bom.BOM)
MAX_FILE_SIZE = 9 * GB
MAX_PART_SIZE = 64 * MB
#: Azure OpenAI keeps an unfinished upload for two hours
UPLOAD_TTL = 2 * 3600
#: Azure's file statuses (and those of api-versions before 2024) onto llmfiles' normalized ones
STATUS_MAP: Mapping[str, str] = {
    **wire.STATUS_MAP,
    "notRunning": "pending",
    "succeeded": "processed",
    "failed": "error",
    "canceled": "error",
    "cancelled": "error",
}
#: Azure API Management's request id first; the others appear on some responses
REQUEST_ID_HEADERS = ("apim-request-id", "x-request-id", "x-ms-request-id")
ENDPOINT_ENV = ("AZURE_OPENAI_ENDPOINT", "AZURE_API_BASE")
_DATED_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")

SETTINGS = (
    SettingSpec(
        name="api_key",
        kind="secret",
        env=("AZURE_OPENAI_API_KEY", "AZURE_API_KEY"),
        help="the resource's key, sent as the api-key header; without it Entra ID is used",
    ),
    SettingSpec(
        name="api_base",
        env=ENDPOINT_ENV,
        help="the resource endpoint, e.g. https://NAME.openai.azure.com (required)",
    ),
    SettingSpec(
        name="api_version",
        env=("OPENAI_API_VERSION", "AZURE_API_VERSION"),
        default=DEFAULT_API_VERSION,
        help="a dated api-version for {endpoint}/openai/...?api-version=..., or 'v1' for {endpoint}/openai/v1",
    ),
    SettingSpec(
        name="credential",
        kind="object",
        help="an azure-identity TokenCredential (DefaultAzureCredential(), ManagedIdentityCredential(), ...)",
    ),
    SettingSpec(
        name="azure_ad_token_provider",
        kind="object",
        help="a callable returning an Entra ID token, e.g. azure.identity.get_bearer_token_provider(...)",
    ),
    SettingSpec(
        name="use_default_credential",
        kind="bool",
        env=("LLMFILES_AZURE_DEFAULT_CREDENTIAL",),
        default=True,
        help="use DefaultAzureCredential when no api_key, credential or token provider is given",
        fingerprint=False,  # how to sign in, not where files go
    ),
    SettingSpec(
        name="token_scope",
        default=auth.COGNITIVE_SCOPE,
        help="the Entra ID scope of the tokens",
        fingerprint=False,
    ),
    *CHECK_SETTINGS,
)

INFO = ProviderInfo(
    name=NAME,
    package="llmfiles-azure",
    purposes=PURPOSES,
    aliases=("azure-openai",),
    description="Azure OpenAI Files and Uploads APIs (API key or Entra ID)",
    settings=SETTINGS,
    credential_settings=("api_key",),
    max_file_size=MAX_FILE_SIZE,
    max_single_request_size=ONE_REQUEST_FILE_LIMIT,
    default_multipart_threshold=ONE_REQUEST_FILE_LIMIT,
    default_part_size=MAX_PART_SIZE,
    supports_parts=True,
    upload_digests=("md5",),
)


@hookimpl
def llmfiles_register_providers(register: Callable[[ProviderInfo], None]) -> None:
    register(INFO)


# --- where to send ----------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Target:
    """The resolved endpoint and API flavour."""

    endpoint: str
    api_version: str

    @property
    def v1(self) -> bool:
        return self.api_version == V1

    @property
    def purposes(self) -> tuple[str, ...]:
        return V1_PURPOSES if self.v1 else CLASSIC_PURPOSES

    def wire_endpoint(self) -> wire.Endpoint:
        if self.v1:
            return wire.Endpoint(
                provider=NAME, base=f"{self.endpoint}/openai/v1", request_id_headers=REQUEST_ID_HEADERS
            )
        return wire.Endpoint(
            provider=NAME,
            base=f"{self.endpoint}/openai",
            query={"api-version": self.api_version},
            request_id_headers=REQUEST_ID_HEADERS,
            probe_params={},  # the classic API lists every file in one answer, without after/limit/order
        )


def target(settings: Settings) -> Target:
    """The endpoint and api-version of these settings; a clear :class:`InvalidSetting` when they are unusable."""
    raw = settings.get("api_base")
    if raw is None or not str(raw).strip():
        raise InvalidSetting(
            f"no endpoint for provider {NAME!r}: pass api_base='https://<resource>.openai.azure.com' or set the "
            f"environment variable {' or '.join(ENDPOINT_ENV)}"
        )
    endpoint = str(raw).strip().rstrip("/")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
        raise InvalidSetting(
            f"api_base (from {settings.source('api_base')}) {endpoint!r} is not an endpoint URL; "
            "use the resource endpoint, e.g. https://<resource>.openai.azure.com"
        )
    if endpoint.lower().endswith("/openai/v1"):
        raise InvalidSetting(
            f"api_base (from {settings.source('api_base')}) ends with /openai/v1; give the resource endpoint "
            f"({endpoint[: -len('/openai/v1')]}) and api_version='v1'"
        )
    if endpoint.lower().endswith("/openai"):
        endpoint = endpoint[: -len("/openai")]
    version = str(settings.get("api_version") or DEFAULT_API_VERSION).strip()
    if version.lower() == V1:
        version = V1
    elif not _DATED_VERSION.fullmatch(version):
        raise InvalidSetting(
            f"api_version (from {settings.source('api_version')}) {version!r} is not an Azure OpenAI api-version; "
            f"use a dated one such as {DEFAULT_API_VERSION!r} (GA) or '2025-04-01-preview', or 'v1'"
        )
    return Target(endpoint=endpoint, api_version=version)


# --- hooks ------------------------------------------------------------------------------------------------------


@hookimpl
def llmfiles_resolve_credentials(provider: str, settings: Settings, environ: Mapping[str, str]) -> Credentials | None:
    if provider != NAME:
        return None
    target(settings)  # a missing or malformed endpoint is reported before anything else happens
    return auth.resolve(NAME, settings, places_looked(INFO, ("api_key",)))


def _check_purpose(t: Target, operation: Operation) -> None:
    purpose = operation.purpose or ""
    if purpose in t.purposes:
        return
    if t.v1:
        context = (
            f"with api_version='v1' (purpose {purpose!r} needs a dated api_version such as {DEFAULT_API_VERSION!r})"
        )
    else:
        context = f"with api_version={t.api_version!r}" + (
            f" (purpose {purpose!r} needs api_version='v1')" if purpose in V1_PURPOSES else ""
        )
    raise InvalidPurpose(NAME, purpose, t.purposes, context=context)


def _refuse_large_on_v1(operation: Operation, settings: Settings) -> FileTooLarge:
    assert operation.source is not None
    size = operation.source.size
    threshold = min(int(settings.get("multipart_threshold") or ONE_REQUEST_FILE_LIMIT), ONE_REQUEST_FILE_LIMIT)
    detail = (
        f"in one request with api_version='v1': the v1 API has no Uploads API for large files. Use the classic API, "
        f"api_version={DEFAULT_API_VERSION!r}, which uploads files of up to {MAX_FILE_SIZE:,} bytes in parts"
    )
    if size <= ONE_REQUEST_FILE_LIMIT:
        detail += f", or raise multipart_threshold to at least {size:,} to send it in one request"
    return FileTooLarge(operation.source.display, size, threshold, NAME, detail=detail)


def _signed_plan(plan: UploadPlan, sign: auth.Signer) -> UploadPlan:
    """The plan with every request it builds signed at the time it is built (fresh tokens for late parts)."""
    part_fn, complete_fn, abort_fn = plan.part, plan.complete, plan.abort

    def part(state: UploadState, p: Part) -> HttpRequest:
        return sign(part_fn(state, p))

    def complete(state: UploadState, receipts: Sequence[Receipt], digests: Mapping[str, str]) -> HttpRequest:
        assert complete_fn is not None
        return sign(complete_fn(state, receipts, digests))

    def abort(state: UploadState) -> HttpRequest:
        assert abort_fn is not None
        return sign(abort_fn(state))

    return attrs.evolve(
        plan,
        start=sign(plan.start) if plan.start is not None else None,
        part=part,
        complete=complete if complete_fn is not None else None,
        abort=abort if abort_fn is not None else None,
    )


@hookimpl
def llmfiles_build_request(
    provider: str, operation: Operation, credentials: Credentials, settings: Settings
) -> HttpRequest | UploadPlan | None:
    if provider != NAME:
        return None
    t = target(settings)
    ep = t.wire_endpoint()
    sign = auth.signer(credentials, NAME)
    if operation.name in ("upload", "upload_parts"):
        _check_purpose(t, operation)
        if operation.name == "upload_parts" and t.v1:
            raise _refuse_large_on_v1(operation, settings)
        prefix = bom.prefix_for(operation, settings)
        if operation.name == "upload":
            return sign(wire.upload_request(ep, operation, prefix=prefix))
        plan = wire.uploads_plan(
            ep,
            operation,
            part_size=settings["part_size"],
            max_part_size=MAX_PART_SIZE,
            status_map=STATUS_MAP,
            prefix=prefix,
            session_ttl=UPLOAD_TTL,
        )
        assert operation.source is not None
        declared = operation.source.size + len(prefix)

        def read_complete(state: UploadState, response: HttpResponse) -> FileObject:
            data = _json_object(response)
            status, file_data = data.get("status"), data.get("file")
            if status != "completed" or not isinstance(file_data, Mapping):
                raise ProviderError(
                    f"the upload {state['upload_id']} ended with status {status!r} and no file object",
                    provider=NAME,
                    status=response.status,
                )
            return file_object(file_data, size=declared)

        return _signed_plan(attrs.evolve(plan, read_complete=read_complete), sign)
    if operation.name == "list" and not t.v1:
        # the classic API lists every file in one answer; it has no after/limit parameters
        return sign(ep.request("GET", "/files", purpose=operation.purpose))
    return sign(wire.one_shot_request(ep, operation))


def _with_inner_error(err: ProviderError) -> ProviderError:
    """Azure's ``innererror.code`` (for example a content filter's) added to the message."""
    inner = err.details
    code = inner.get("code") if isinstance(inner, Mapping) else None
    if not code:
        return err
    return err.with_message(f"{err.message} (inner error: {code})")


# --- responses ----------------------------------------------------------------------------------------------------


def _json_object(response: HttpResponse) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ProviderError(
            f"unexpected answer: expected a JSON object, got {response.body[:200]!r}",
            provider=NAME,
            status=response.status,
        )
    return data


def file_object(data: Mapping[str, Any], *, size: int | None = None) -> FileObject:
    """An Azure file object as a :class:`FileObject`.

    Azure's contract makes ``bytes`` and ``created_at`` optional, and its upload answers have been seen without
    ``bytes`` (or with ``"bytes": null``): then ``size``, the number of bytes that were sent, stands in (0 when it is
    unknown, as for a listing), and ``created_at`` is 0.  ``raw`` keeps Azure's answer as it was.
    """
    filled = dict(data)
    if filled.get("bytes") is None:
        filled["bytes"] = size if size is not None else 0
    if filled.get("created_at") is None:
        filled["created_at"] = 0
    return attrs.evolve(wire.file_object(NAME, filled, STATUS_MAP), raw=dict(data))


def _sent_size(operation: Operation) -> int | None:
    """How many bytes an upload sent: the file, plus the BOM when one was added."""
    source = operation.source
    if source is None:
        return None
    added = operation.purpose in bom.BOM_PURPOSES and not bom.starts_with_bom(source)
    return source.size + (len(bom.BOM) if added else 0)


def file_page(response: HttpResponse) -> FilePage:
    """A listing: every file of the classic API in one answer, or a page of the v1 API (``has_more``)."""
    data = _json_object(response)
    items = data.get("data")
    if not isinstance(items, list):
        raise ProviderError("the listing has no 'data' array", provider=NAME, status=response.status)
    files = tuple(file_object(item) for item in items if isinstance(item, Mapping))
    cursor = None
    if data.get("has_more") and files:
        last = data.get("last_id")
        cursor = last if isinstance(last, str) and last else files[-1].id
    return FilePage(files=files, next_cursor=cursor)


@hookimpl
def llmfiles_normalize_response(
    provider: str, operation: Operation, response: HttpResponse
) -> FileObject | FilePage | Exception | bool | None:
    if provider != NAME:
        return None
    if response.status >= 400:
        return _with_inner_error(wire.error(NAME, response, REQUEST_ID_HEADERS))
    if operation.name == "upload":
        return file_object(_json_object(response), size=_sent_size(operation))
    if operation.name == "retrieve":
        return file_object(_json_object(response))
    if operation.name == "list":
        return file_page(response)
    return wire.normalize(NAME, operation, response, status_map=STATUS_MAP, request_id_headers=REQUEST_ID_HEADERS)


@hookimpl
def llmfiles_record_checker(provider: str, purpose: str, settings: Mapping[str, Any]) -> RecordChecker | None:
    if provider != NAME:
        return None
    if purpose == "fine-tune":
        return checks.AzureFineTuneChecker(provider="Azure OpenAI", **checker_options(settings))
    if purpose == "batch":
        return BatchChecker(checks.AZURE_BATCH)
    return None
