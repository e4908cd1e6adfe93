"""The ``together`` provider: Together AI's Files API (the wire format is in :mod:`llmfiles_together.wire`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmfiles import hookimpl
from llmfiles.errors import InvalidSetting
from llmfiles.models import Credentials, Operation, ProviderInfo, Settings, SettingSpec
from llmfiles.provider import BaseProvider, Exchange, UploadProtocol
from llmfiles.validate.records import RecordChecker
from llmfiles_together import checks, wire

NAME = "together"
#: the contract's ``FilePurpose``, ``batch-api`` (Batch API input) named ``batch`` as for every provider
PURPOSES = ("fine-tune", "batch", "eval", "eval-sample", "eval-output", "eval-summary", "batch-generated")
DEFAULT_API_BASE = "https://api.together.xyz/v1"

INFO = ProviderInfo(
    name=NAME,
    package="llmfiles-together",
    purposes=PURPOSES,
    description="Together AI Files API (large files through Together's multipart protocol)",
    settings=(
        SettingSpec(name="api_key", kind="secret", env=("TOGETHER_API_KEY",), help="the API key"),
        SettingSpec(
            name="api_base",
            env=("TOGETHER_BASE_URL",),
            default=DEFAULT_API_BASE,
            help="the API's base URL",
        ),
    ),
    credential_settings=("api_key",),
    max_file_size=wire.MAX_FILE_SIZE,
    max_single_request_size=wire.SINGLE_REQUEST_LIMIT,
    default_multipart_threshold=wire.SINGLE_REQUEST_LIMIT,
    default_part_size=wire.TARGET_PART,
    jsonl_purposes=("fine-tune", "batch"),
    purpose_notes={
        "batch-api": "llmfiles calls Together's 'batch-api' files purpose 'batch', as for every provider: "
        "use purpose 'batch'"
    },
    file_limits={"batch": checks.BATCH_LIMITS},
    supports_parts=True,
)


def endpoint(credentials: Credentials, settings: Settings) -> wire.Endpoint:
    """Together's API for these settings, with the key as ``Authorization: Bearer``."""
    headers: dict[str, str] = {}
    if credentials.secret is not None:
        headers["Authorization"] = f"Bearer {credentials.secret.reveal()}"
    headers.update(credentials.headers)
    base = str(settings["api_base"]).rstrip("/")
    if not base.startswith(("https://", "http://")):
        raise InvalidSetting(f"api_base (from {settings.source('api_base')}): {base!r} is not an http(s) URL")
    return wire.Endpoint(base=base, headers=headers)


class TogetherProvider(BaseProvider):
    """Together AI's Files API: ``POST /files/upload``, Together's multipart protocol above 5 GiB."""

    info = INFO

    def exchange(self, op: Operation, credentials: Credentials, settings: Settings) -> Exchange[Any] | UploadProtocol:
        part_size = settings.get("part_size")
        return wire.exchange(endpoint(credentials, settings), op, part_size=int(part_size) if part_size else None)

    def record_checker(self, purpose: str, settings: Settings) -> RecordChecker | None:
        if purpose == "fine-tune":
            return checks.FineTuneChecker()
        if purpose == "batch":
            return checks.BatchChecker()
        return None


@hookimpl
def llmfiles_register_providers(register: Callable[[TogetherProvider], None]) -> None:
    """Register ``together``."""
    register(TogetherProvider())
