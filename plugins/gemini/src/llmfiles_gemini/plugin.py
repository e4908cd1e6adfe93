"""The ``gemini`` provider: the Gemini Developer API's Files API, as one provider object.

The wire format is in :mod:`llmfiles_gemini.files`, the Batch API's record rules in :mod:`llmfiles_gemini.batch`.
Vertex AI's Gemini is another provider (``vertex_ai``, in llmfiles-vertex): its files live in Cloud Storage.
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
    UploadParts,
)
from llmfiles.provider import BaseProvider, Exchange, UploadProtocol
from llmfiles.validate.convert import Converter
from llmfiles.validate.records import RecordChecker
from llmfiles_gemini import batch, files

NAME = "gemini"
#: a file to use in prompts, and a Batch API input file
PURPOSES = ("user_data", "batch")
MiB = 1024 * 1024
#: https://ai.google.dev/gemini-api/docs/files: "You can store up to 20 GB of files per project, with a per-file
#: maximum size of 2 GB" (taken as 2,000,000,000 bytes: the page does not say GiB)
MAX_FILE_SIZE = 2 * 1000**3
#: the same page: "Files are stored for 48 hours"
FILE_TTL = 48 * 3600
DOCS_FILES = "https://ai.google.dev/gemini-api/docs/files"

SETTINGS = (
    SettingSpec(
        name="api_key",
        kind="secret",
        # https://ai.google.dev/gemini-api/docs/api-key: with both set, GOOGLE_API_KEY takes precedence
        env=("GOOGLE_API_KEY", "GEMINI_API_KEY"),
        help="the Gemini API key, sent as the x-goog-api-key header; never printed or logged",
    ),
    SettingSpec(
        name="api_base",
        env=("GOOGLE_GEMINI_BASE_URL",),
        default=files.DEFAULT_API_BASE,
        help="the API's base URL (a proxy, a test server); the upload URL the API answers with is sent there too",
    ),
)

INFO = ProviderInfo(
    name=NAME,
    package="llmfiles-gemini",
    purposes=PURPOSES,
    description="Gemini API (Developer API) Files: resumable uploads, files kept 48 hours, Batch API input files",
    settings=SETTINGS,
    credential_settings=("api_key",),
    max_file_size=MAX_FILE_SIZE,
    default_multipart_threshold=files.DEFAULT_CHUNK,
    default_part_size=files.DEFAULT_CHUNK,
    supports_parts=True,
    jsonl_purposes=("batch",),
    file_limits={"batch": batch.BATCH_LIMITS},
    checksums=("sha256",),
    conversions=("gemini-batch",),
    purpose_notes={
        "fine-tune": "the Gemini API has no model left to tune (https://ai.google.dev/gemini-api/docs/model-tuning); "
        "Gemini tuning is on Vertex AI: pip install llmfiles-vertex and use provider 'vertex_ai'",
    },
)


def endpoint(credentials: Credentials, settings: Settings) -> files.Endpoint:
    """The Gemini endpoint for these settings: the base URL and the key header, plus the headers of credentials
    another plugin gave (``llmfiles_credentials``)."""
    headers: dict[str, str] = {}
    if credentials.secret is not None:
        headers[files.KEY_HEADER] = credentials.secret.reveal()
    headers.update(credentials.headers)
    return files.Endpoint(
        provider=NAME,
        base=files.normalize_api_base(str(settings["api_base"])),
        headers=headers,
        key_source=credentials.source,
    )


class GeminiProvider(BaseProvider):
    """The Gemini API's files: one ``multipart`` request for small files, the resumable protocol above the
    threshold (resumed across runs), Batch API record rules for ``batch`` files."""

    info = INFO

    def exchange(self, op: Operation, credentials: Credentials, settings: Settings) -> Exchange[Any] | UploadProtocol:
        """The request (or resumable session) for ``op``."""
        ep = endpoint(credentials, settings)
        if isinstance(op, (Upload, UploadParts)):
            name = files.new_file_name(op.purpose)
            if isinstance(op, UploadParts):
                return files.GeminiResumable(ep, op.file, name, PURPOSES, part_size=int(settings["part_size"]))
            return files.upload(ep, op.file, name, PURPOSES)
        if isinstance(op, ListFiles):
            return files.list_page(ep, purpose=op.purpose, cursor=op.cursor, limit=op.limit, purposes=PURPOSES)
        name = files.file_name(op.file_id)
        if isinstance(op, Retrieve):
            return files.retrieve(ep, name, PURPOSES)
        if isinstance(op, Delete):
            return files.delete(ep, name)
        assert isinstance(op, Download)
        return files.download(ep, name)

    def record_checker(self, purpose: str, settings: Settings) -> RecordChecker | None:
        """The Batch API's input rules for ``batch`` files; files to use in prompts may be anything."""
        return batch.BatchChecker() if purpose == "batch" else None


@hookimpl
def llmfiles_register_providers(register: Callable[[GeminiProvider], None]) -> None:
    """Register the ``gemini`` provider."""
    register(GeminiProvider())


@hookimpl
def llmfiles_register_converters(register: Callable[[Converter], None]) -> None:
    """``gemini-batch`` (OpenAI batch lines to Batch API input lines; ``convert=gemini-batch`` on batch uploads) and
    ``openai-from-gemini`` (Batch API results back to OpenAI batch output lines)."""
    from llmfiles.validate.openai_batch import requests_converter, results_converter
    from llmfiles_gemini import conversions

    register(
        requests_converter(
            name=conversions.TO_BATCH,
            prepare=conversions.prepare_batch,
            checker=batch.BatchChecker,
            description="Gemini Batch API input lines {key: custom_id, request: GenerateContentRequest}",
            package="llmfiles-gemini",
            provider=NAME,
        )
    )
    register(
        results_converter(
            name=conversions.FROM_RESULTS,
            prepare=conversions.prepare_results,
            reads="Gemini Batch API results ({key, response: GenerateContentResponse} or {key, error: Status})",
            package="llmfiles-gemini",
            provider=NAME,
        )
    )
