"""The ``mistral`` provider: Mistral's Files API, as one provider object.

The wire format is in :mod:`llmfiles_mistral.files`, Mistral's fine-tuning and batch rules in
:mod:`llmfiles_mistral.checks`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmfiles import hookimpl
from llmfiles.models import (
    Credentials,
    Delete,
    Download,
    ListFiles,
    Operation,
    ProviderInfo,
    Retrieve,
    Settings,
    SettingSpec,
    Upload,
)
from llmfiles.provider import BaseProvider, Exchange
from llmfiles.validate.convert import Converter
from llmfiles.validate.records import RecordChecker
from llmfiles_mistral import checks, files

NAME = "mistral"
#: the contract's FilePurpose
PURPOSES = ("fine-tune", "batch", "ocr")

SETTINGS = (
    SettingSpec(
        name="api_key",
        kind="secret",
        env=("MISTRAL_API_KEY",),
        help="the API key, sent as Authorization: Bearer; never printed or logged",
    ),
    SettingSpec(
        name="api_base",
        env=("MISTRAL_API_BASE",),
        default=files.DEFAULT_API_BASE,
        help="the API's base URL (a proxy, a test server); a trailing /v1 is dropped",
    ),
)

INFO = ProviderInfo(
    name=NAME,
    package="llmfiles-mistral",
    purposes=PURPOSES,
    description="Mistral Files API: fine-tuning, batch and OCR files (up to 512 MB each), Mistral's own rules checked",
    settings=SETTINGS,
    credential_settings=("api_key",),
    max_file_size=files.MAX_FILE_SIZE,
    max_single_request_size=files.MAX_FILE_SIZE,
    # OCR files are documents and images, not JSONL
    jsonl_purposes=("fine-tune", "batch"),
    conversions=("mistral-batch",),
    file_limits={"batch": checks.BATCH_LIMITS},
)


def endpoint(credentials: Credentials, settings: Settings) -> files.Endpoint:
    """The Files API endpoint for these settings: the base URL and the bearer key, plus the headers of credentials
    another plugin gave (``llmfiles_credentials``)."""
    headers: dict[str, str] = {}
    if credentials.secret is not None:
        headers["Authorization"] = f"Bearer {credentials.secret.reveal()}"
    headers.update(credentials.headers)
    return files.Endpoint(provider=NAME, base=files.normalize_api_base(str(settings["api_base"])), headers=headers)


class MistralProvider(BaseProvider):
    """Mistral's Files API: one multipart request per file (512 MB fit in one), Mistral's record rules."""

    info = INFO

    def exchange(self, op: Operation, credentials: Credentials, settings: Settings) -> Exchange[Any]:
        """The request for ``op``."""
        ep = endpoint(credentials, settings)
        if isinstance(op, Upload):
            return files.upload(ep, op.file)
        if isinstance(op, ListFiles):
            return files.list_page(ep, purpose=op.purpose, cursor=op.cursor, limit=op.limit)
        if isinstance(op, Retrieve):
            return files.retrieve(ep, op.file_id)
        if isinstance(op, Delete):
            return files.delete(ep, op.file_id)
        if isinstance(op, Download):
            return files.download(ep, op.file_id)
        raise TypeError(f"{NAME} has no large-file protocol ({type(op).__name__})")

    def record_checker(self, purpose: str, settings: Settings) -> RecordChecker | None:
        """Mistral's fine-tuning rules for ``fine-tune``, its batch rules for ``batch``; OCR files are documents."""
        if purpose == "fine-tune":
            return checks.FineTuneChecker()
        if purpose == "batch":
            return checks.BatchChecker()
        return None


@hookimpl
def llmfiles_register_providers(register: Callable[[MistralProvider], None]) -> None:
    """Register the ``mistral`` provider."""
    register(MistralProvider())


@hookimpl
def llmfiles_register_converters(register: Callable[[Converter], None]) -> None:
    """``mistral-batch`` (OpenAI batch lines to Mistral's batch lines; ``convert=mistral-batch`` on batch uploads)
    and ``openai-from-mistral`` (Mistral's batch results back to OpenAI batch output lines)."""
    from llmfiles.validate.openai_batch import requests_converter, results_converter
    from llmfiles_mistral import conversions

    register(
        requests_converter(
            name=conversions.TO_BATCH,
            prepare=conversions.prepare_batch,
            checker=checks.BatchChecker,
            description="Mistral batch lines {custom_id, body} (random_seed, max_tokens; no method or url)",
            package="llmfiles-mistral",
            provider=NAME,
        )
    )
    register(
        results_converter(
            name=conversions.FROM_RESULTS,
            prepare=conversions.prepare_results,
            reads="Mistral batch results ({id, custom_id, response: {status_code, body}, error})",
            package="llmfiles-mistral",
            provider=NAME,
        )
    )
