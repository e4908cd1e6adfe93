"""The ``openai`` provider: OpenAI's Files and Uploads APIs (the wire format is in :mod:`llmfiles_openai.wire`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmfiles import hookimpl
from llmfiles.errors import InvalidSetting
from llmfiles.models import Credentials, Operation, ProviderInfo, Settings, SettingSpec
from llmfiles.provider import BaseProvider, Exchange, UploadProtocol
from llmfiles.validate.records import RecordChecker
from llmfiles_openai import checks, presets, tokens, wire

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


INFO = ProviderInfo(
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
    file_limits={"batch": checks.OPENAI_BATCH_LIMITS},
)


def endpoint(credentials: Credentials, settings: Settings) -> wire.Endpoint:
    """The OpenAI endpoint for these settings: base URL plus Authorization/organization/project headers, and the
    headers of credentials another plugin gave (``llmfiles_credentials``: a vault, a gateway's own header)."""
    headers: dict[str, str] = {}
    if credentials.secret is not None:
        headers["Authorization"] = f"Bearer {credentials.secret.reveal()}"
    headers.update(credentials.headers)
    if settings.get("organization"):
        headers["OpenAI-Organization"] = str(settings["organization"])
    if settings.get("project"):
        headers["OpenAI-Project"] = str(settings["project"])
    return wire.Endpoint(provider=NAME, base=str(settings["api_base"]), headers=headers)


def expires_after(settings: Settings) -> int | None:
    """The ``expires_after`` setting, checked (OpenAI takes 3600 to 2592000 seconds)."""
    value = settings.get("expires_after")
    if value is None:
        return None
    if not 3600 <= int(value) <= 2_592_000:
        raise InvalidSetting(f"expires_after (from {settings.source('expires_after')}) must be 3600 to 2592000 seconds")
    return int(value)


def checker_options(settings: Settings) -> dict[str, Any]:
    """The fine-tuning checker's options from the ``fine_tune_model`` and ``tokenizer`` settings."""
    tokenizer = settings.get("tokenizer") or "auto"
    if str(tokenizer).strip().lower() not in tokens.TOKENIZERS:
        raise InvalidSetting(f"tokenizer: {tokenizer!r} is not one of {', '.join(tokens.TOKENIZERS)}")
    model = settings.get("fine_tune_model")
    return {"model": str(model) if model else None, "tokenizer": str(tokenizer)}


class OpenAIProvider(BaseProvider):
    """OpenAI's Files API, and its Uploads API for files above the single-request limit."""

    info = INFO

    def exchange(self, op: Operation, credentials: Credentials, settings: Settings) -> Exchange[Any] | UploadProtocol:
        return wire.exchange(
            endpoint(credentials, settings), op, expires_after=expires_after(settings), max_part_size=MAX_PART_SIZE
        )

    def record_checker(self, purpose: str, settings: Settings) -> RecordChecker | None:
        if purpose == "fine-tune":
            return checks.FineTuneChecker(provider="OpenAI", **checker_options(settings))
        if purpose == "batch":
            return checks.BatchChecker(checks.OPENAI_BATCH)
        return None


@hookimpl
def llmfiles_register_providers(register: Callable[[BaseProvider], None]) -> None:
    """Register ``openai`` and a provider for each OpenAI-compatible platform of ``presets.toml``."""
    register(OpenAIProvider())
    presets.register_all(register)
