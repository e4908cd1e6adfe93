"""The ``anthropic`` provider: Anthropic's Files API (files to use in Claude messages), as one provider object.

The wire format is in :mod:`llmfiles_anthropic.files`.  Anthropic's files carry no purpose: the purposes that mean
"a file to use in messages" are accepted (``user_data``, and ``assistants`` as another name for it), every file is
reported as ``user_data``, and ``fine-tune`` and ``batch`` are refused before the file is opened, saying what
Anthropic offers instead.
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
from llmfiles_anthropic import files

NAME = "anthropic"
#: "a file to use in messages": the one thing Anthropic's files are; ``assistants`` is OpenAI's name for the same
PURPOSES = ("user_data", "assistants")
PURPOSE = "user_data"

SETTINGS = (
    SettingSpec(
        name="api_key",
        kind="secret",
        env=("ANTHROPIC_API_KEY",),
        help="the API key, sent as the x-api-key header; never printed or logged",
    ),
    SettingSpec(
        name="api_base",
        env=("ANTHROPIC_BASE_URL",),
        default=files.DEFAULT_API_BASE,
        help="the API's base URL (a proxy, a test server); a trailing /v1 is dropped",
    ),
    SettingSpec(
        name="anthropic_version",
        default=files.API_VERSION,
        help="the anthropic-version header (https://platform.claude.com/docs/en/api/versioning)",
        fingerprint=False,
    ),
    SettingSpec(
        name="anthropic_beta",
        default=files.FILES_BETA,
        help="the anthropic-beta header the Files API needs while it is in beta",
        fingerprint=False,
    ),
)

INFO = ProviderInfo(
    name=NAME,
    package="llmfiles-anthropic",
    purposes=PURPOSES,
    description="Anthropic Files API: files to use in Claude messages (up to 500 MB each)",
    settings=SETTINGS,
    credential_settings=("api_key",),
    max_file_size=files.MAX_FILE_SIZE,
    max_single_request_size=files.MAX_FILE_SIZE,
    # no file of a purpose Anthropic takes is a JSONL file with rules: documents, images, datasets
    jsonl_purposes=(),
    purpose_notes={
        "fine-tune": "the Claude API offers no fine-tuning "
        "(https://platform.claude.com/docs/en/about-claude/glossary); Claude models are fine-tuned on Amazon "
        "Bedrock: pip install llmfiles-bedrock and use provider 'bedrock'",
        "batch": "Anthropic's Message Batches API takes its requests in the JSON body of the call that creates the "
        "batch, not as an uploaded file (https://platform.claude.com/docs/en/build-with-claude/batch-processing); "
        "upload the documents those requests use with purpose 'user_data' and refer to them by file_id",
    },
)


def endpoint(credentials: Credentials, settings: Settings) -> files.Endpoint:
    """The Files API endpoint for these settings: the base URL, the key, the version and beta headers, and the headers
    of credentials another plugin gave (``llmfiles_credentials``)."""
    headers = {
        "anthropic-version": str(settings.get("anthropic_version") or files.API_VERSION),
        "anthropic-beta": str(settings.get("anthropic_beta") or files.FILES_BETA),
    }
    if credentials.secret is not None:
        headers["x-api-key"] = credentials.secret.reveal()
    headers.update(credentials.headers)
    return files.Endpoint(
        provider=NAME, purpose=PURPOSE, base=files.normalize_api_base(str(settings["api_base"])), headers=headers
    )


class AnthropicProvider(BaseProvider):
    """Anthropic's Files API: one multipart request per file (no large-file protocol: 500 MB fit in one)."""

    info = INFO

    def exchange(self, op: Operation, credentials: Credentials, settings: Settings) -> Exchange[Any]:
        """The request for ``op``."""
        ep = endpoint(credentials, settings)
        if isinstance(op, Upload):
            return files.upload(ep, op.file)
        if isinstance(op, ListFiles):
            return files.list_page(ep, purpose=op.purpose, purposes=PURPOSES, cursor=op.cursor, limit=op.limit)
        if isinstance(op, Retrieve):
            return files.retrieve(ep, op.file_id)
        if isinstance(op, Delete):
            return files.delete(ep, op.file_id)
        if isinstance(op, Download):
            return files.download(ep, op.file_id)
        raise TypeError(f"{NAME} has no large-file protocol ({type(op).__name__})")


@hookimpl
def llmfiles_register_providers(register: Callable[[AnthropicProvider], None]) -> None:
    """Register the ``anthropic`` provider."""
    register(AnthropicProvider())
