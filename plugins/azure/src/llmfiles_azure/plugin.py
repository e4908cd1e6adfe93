"""The ``azure`` provider: Azure OpenAI's Files and Uploads APIs, as one provider object.

The requests are built by :mod:`llmfiles_openai.wire` with an Azure :class:`~llmfiles_openai.wire.Endpoint`
(``{endpoint}/openai`` plus ``?api-version=...``, or ``{endpoint}/openai/v1``) whose ``sign`` adds the ``api-key``
header or a fresh Entra ID bearer token (:mod:`llmfiles_azure.auth`) to every request as it is built.  A
``fine-tune`` file without a UTF-8 BOM gets one in front of its bytes (:mod:`llmfiles_azure.bom`).  Nothing here
sends a request or reads the file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from llmfiles import hookimpl
from llmfiles.errors import FileTooLarge, InvalidPurpose, InvalidSetting, MissingSetting
from llmfiles.models import (
    Credentials,
    Operation,
    ProviderInfo,
    Settings,
    SettingSpec,
    Upload,
    UploadFacts,
    UploadParts,
)
from llmfiles.provider import BaseProvider, Exchange, Http, UploadProtocol
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
    # a BOM claims UTF-8: with validate=False the core still checks the encoding of fine-tuning files as they stream
    utf8_purposes=bom.BOM_PURPOSES,
    file_limits={"batch": checks.AZURE_BATCH_LIMITS},
)


# --- where to send ----------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Target:
    """The resolved endpoint and API flavour."""

    endpoint: str
    api_version: str

    @property
    def v1(self) -> bool:
        """Whether this is the v1 API (``{endpoint}/openai/v1``)."""
        return self.api_version == V1

    @property
    def purposes(self) -> tuple[str, ...]:
        """The upload purposes of this API flavour."""
        return V1_PURPOSES if self.v1 else CLASSIC_PURPOSES

    def wire_endpoint(self, sign: auth.Signer | None = None) -> wire.Endpoint:
        """The OpenAI-format endpoint: ``/openai`` with the api-version (every file listed in one answer, no
        paging parameters), or ``/openai/v1`` (paged); Azure's request-id headers, statuses and optional sizes;
        ``sign`` adds the credentials to every request as it is built."""
        common: dict[str, Any] = {
            "provider": NAME,
            "request_id_headers": REQUEST_ID_HEADERS,
            "status_map": STATUS_MAP,
            "sizes_optional": True,  # Azure's contract makes a file object's bytes and created_at optional
            "sign": sign,
        }
        if self.v1:
            return wire.Endpoint(base=f"{self.endpoint}/openai/v1", **common)
        return wire.Endpoint(
            base=f"{self.endpoint}/openai",
            query={"api-version": self.api_version},
            paged_listing=False,
            **common,
        )


def target(settings: Settings) -> Target:
    """The endpoint and api-version of these settings; a clear :class:`InvalidSetting` when they are unusable."""
    raw = settings.get("api_base")
    if raw is None or not str(raw).strip():
        raise MissingSetting(
            NAME,
            "api_base",
            what="its endpoint",
            example="https://RESOURCE.openai.azure.com",
            env=ENDPOINT_ENV,
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


def check_purpose(t: Target, purpose: str) -> None:
    """:class:`InvalidPurpose` when the API flavour in use does not take ``purpose``, naming the one that does."""
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


def refuse_large_on_v1(facts: UploadFacts, settings: Settings) -> FileTooLarge:
    """The error for a file above the multipart threshold on the v1 API, which has no Uploads API."""
    size = facts.size
    threshold = min(int(settings.get("multipart_threshold") or ONE_REQUEST_FILE_LIMIT), ONE_REQUEST_FILE_LIMIT)
    detail = (
        f"in one request with api_version='v1': the v1 API has no Uploads API for large files. Use the classic API, "
        f"api_version={DEFAULT_API_VERSION!r}, which uploads files of up to {MAX_FILE_SIZE:,} bytes in parts"
    )
    if size <= ONE_REQUEST_FILE_LIMIT:
        detail += f", or raise multipart_threshold to at least {size:,} to send it in one request"
    return FileTooLarge(facts.filename, size, threshold, NAME, detail=detail)


# --- the provider -------------------------------------------------------------------------------------------------


class AzureProvider(BaseProvider):
    """Azure OpenAI's Files API, and its Uploads API for files above the single-request limit."""

    info = INFO

    def credentials(self, settings: Settings, environ: Mapping[str, str], http: Http) -> Credentials:
        """An API key, or Entra ID (a credential or token provider passed in, else ``DefaultAzureCredential``,
        whose token requests go through ``http``): see :mod:`llmfiles_azure.auth`."""
        target(settings)  # a missing or malformed endpoint is reported before anything else happens
        return auth.resolve(NAME, settings, places_looked(INFO, ("api_key",)), http)

    def exchange(self, op: Operation, credentials: Credentials, settings: Settings) -> Exchange[Any] | UploadProtocol:
        """OpenAI's wire format at Azure's endpoint, signed; the BOM in front of a fine-tuning file without one."""
        t = target(settings)
        ep = t.wire_endpoint(sign=auth.signer(credentials, NAME))
        prefix = b""
        if isinstance(op, (Upload, UploadParts)):
            check_purpose(t, op.purpose)
            if isinstance(op, UploadParts) and t.v1:
                raise refuse_large_on_v1(op.file, settings)
            prefix = bom.prefix_for(op.file)
        return wire.exchange(ep, op, prefix=prefix, max_part_size=MAX_PART_SIZE, session_ttl=UPLOAD_TTL)

    def record_checker(self, purpose: str, settings: Settings) -> RecordChecker | None:
        """OpenAI's fine-tuning rules named for Azure (with a note about the BOM), and Azure's batch rules."""
        if purpose == "fine-tune":
            return checks.AzureFineTuneChecker(provider="Azure OpenAI", **checker_options(settings))
        if purpose == "batch":
            return BatchChecker(checks.AZURE_BATCH)
        return None


@hookimpl
def llmfiles_register_providers(register: Callable[[AzureProvider], None]) -> None:
    """Declare the ``azure`` provider (alias ``azure-openai``)."""
    register(AzureProvider())
