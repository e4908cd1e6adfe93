"""The ``openai`` provider's hook implementations."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from llmfiles import hookimpl
from llmfiles.errors import InvalidSetting
from llmfiles.models import (
    Credentials,
    FileObject,
    FilePage,
    HttpRequest,
    HttpResponse,
    Operation,
    ProviderInfo,
    Secret,
    Settings,
    SettingSpec,
    UploadPlan,
)
from llmfiles.validate.records import RecordChecker
from llmfiles_openai import checks, tokens, wire

NAME = "openai"

#: settings of the content checks, shared with llmfiles-azure
CHECK_SETTINGS = (
    SettingSpec(
        name="fine_tune_model",
        env=("LLMFILES_FINE_TUNE_MODEL",),
        help="the model the file will fine-tune (e.g. gpt-4o-mini-2024-07-18): its per-example token limit and "
        "tokenizer are used by the checks",
        fingerprint=False,
    ),
    SettingSpec(
        name="tokenizer",
        env=("LLMFILES_TOKENIZER",),
        default="auto",
        help="how the checks count tokens: auto (an estimate, and tiktoken for an example that may be over the "
        "limit), tiktoken (every example exactly: about ten times slower), or estimate",
        fingerprint=False,
    ),
)
PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
UPLOADS_PURPOSES = ("assistants", "batch", "fine-tune", "vision")
MB = 1000 * 1000
GB = 1000 * MB
#: the Files API takes at most 512 MB in one request; the Uploads API at most 8 GB, in parts of at most 64 MiB
SINGLE_REQUEST_LIMIT = 512 * MB
MAX_FILE_SIZE = 8 * GB
MAX_PART_SIZE = 64 * 1024 * 1024  # what OpenAI's own SDK sends
DEFAULT_API_BASE = "https://api.openai.com/v1"

SETTINGS = (
    SettingSpec(name="api_key", kind="secret", env=("OPENAI_API_KEY",), help="the API key"),
    SettingSpec(
        name="api_base",
        env=("OPENAI_BASE_URL", "OPENAI_API_BASE"),
        default=DEFAULT_API_BASE,
        help="the API's base URL; any OpenAI-compatible server works",
    ),
    SettingSpec(name="organization", env=("OPENAI_ORG_ID",), help="the organization id (OpenAI-Organization)"),
    SettingSpec(name="project", env=("OPENAI_PROJECT_ID",), help="the project id (OpenAI-Project)"),
    SettingSpec(
        name="expires_after",
        kind="int",
        help="seconds after creation when the file expires (3600 to 2592000)",
        fingerprint=False,
    ),
    *CHECK_SETTINGS,
)


@hookimpl
def llmfiles_register_providers(register: Callable[[ProviderInfo], None]) -> None:
    register(
        ProviderInfo(
            name=NAME,
            package="llmfiles-openai",
            purposes=PURPOSES,
            description="OpenAI Files and Uploads APIs (any OpenAI-compatible server via api_base)",
            settings=SETTINGS,
            credential_settings=("api_key",),
            max_file_size=MAX_FILE_SIZE,
            max_single_request_size=SINGLE_REQUEST_LIMIT,
            default_multipart_threshold=SINGLE_REQUEST_LIMIT,
            default_part_size=MAX_PART_SIZE,
            large_purposes=UPLOADS_PURPOSES,
            supports_parts=True,
            upload_digests=("md5",),
        )
    )


@hookimpl
def llmfiles_resolve_credentials(provider: str, settings: Settings, environ: Mapping[str, str]) -> Credentials | None:
    if provider != NAME:
        return None
    key = settings.values.get("api_key")
    if not isinstance(key, Secret) or not key:
        return None  # the core raises MissingCredentials naming every place it looked
    return Credentials(kind="api_key", source=settings.source("api_key"), secret=key)


def endpoint(credentials: Credentials, settings: Settings) -> wire.Endpoint:
    """The OpenAI endpoint for these settings: base URL plus Authorization/organization/project headers."""
    headers: dict[str, str] = {}
    if credentials.secret is not None:
        headers["Authorization"] = f"Bearer {credentials.secret.reveal()}"
    if settings.get("organization"):
        headers["OpenAI-Organization"] = str(settings["organization"])
    if settings.get("project"):
        headers["OpenAI-Project"] = str(settings["project"])
    return wire.Endpoint(provider=NAME, base=str(settings["api_base"]), headers=headers)


def _expires_after(settings: Settings) -> int | None:
    value = settings.get("expires_after")
    if value is None:
        return None
    if not 3600 <= int(value) <= 2_592_000:
        raise InvalidSetting(f"expires_after (from {settings.source('expires_after')}) must be 3600 to 2592000 seconds")
    return int(value)


@hookimpl
def llmfiles_build_request(
    provider: str, operation: Operation, credentials: Credentials, settings: Settings
) -> HttpRequest | UploadPlan | None:
    if provider != NAME:
        return None
    ep = endpoint(credentials, settings)
    if operation.name == "upload":
        return wire.upload_request(ep, operation, expires_after=_expires_after(settings))
    if operation.name == "upload_parts":
        return wire.uploads_plan(
            ep,
            operation,
            part_size=settings["part_size"],
            max_part_size=MAX_PART_SIZE,
            expires_after=_expires_after(settings),
        )
    return wire.one_shot_request(ep, operation)


@hookimpl
def llmfiles_normalize_response(
    provider: str, operation: Operation, response: HttpResponse
) -> FileObject | FilePage | Exception | bool | None:
    if provider != NAME:
        return None
    return wire.normalize(NAME, operation, response)


def checker_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The fine-tuning checker's options from the ``fine_tune_model`` and ``tokenizer`` settings."""
    tokenizer = settings.get("tokenizer") or "auto"
    if str(tokenizer).strip().lower() not in tokens.TOKENIZERS:
        raise InvalidSetting(f"tokenizer: {tokenizer!r} is not one of {', '.join(tokens.TOKENIZERS)}")
    model = settings.get("fine_tune_model")
    return {"model": str(model) if model else None, "tokenizer": str(tokenizer)}


@hookimpl
def llmfiles_record_checker(provider: str, purpose: str, settings: Mapping[str, Any]) -> RecordChecker | None:
    if provider != NAME:
        return None
    if purpose == "fine-tune":
        return checks.FineTuneChecker(provider="OpenAI", **checker_options(settings))
    if purpose == "batch":
        return checks.BatchChecker(checks.OPENAI_BATCH)
    return None
