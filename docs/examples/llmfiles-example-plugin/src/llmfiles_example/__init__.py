"""An in-house provider plugin: a company's OpenAI-compatible LLM gateway, as provider ``example``.

The model to copy when writing your own plugin.  A provider is one object: what it is (``info``), and what to send
for each operation (``exchange``); :class:`~llmfiles.provider.BaseProvider` supplies the rest (the key from the
settings chain, no record rules).  An OpenAI-compatible service needs no wire code of its own: it reuses
:mod:`llmfiles_openai.wire` (from the ``llmfiles-openai`` distribution) with its own name, settings and environment
variables.  It never sends HTTP and never reads the file: the core does both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmfiles import hookimpl
from llmfiles.models import Credentials, Operation, ProviderInfo, Settings, SettingSpec
from llmfiles.provider import BaseProvider, Exchange, UploadProtocol
from llmfiles_openai import wire

MiB = 1024 * 1024


class ExampleGateway(BaseProvider):
    """The in-house LLM gateway: OpenAI's Files and Uploads APIs at the gateway's address, with the gateway's key."""

    info = ProviderInfo(
        name="example",
        package="llmfiles-example-plugin",
        purposes=("assistants", "batch", "fine-tune"),
        description="the in-house LLM gateway (OpenAI-compatible)",
        settings=(
            SettingSpec(name="api_key", kind="secret", env=("EXAMPLE_API_KEY",), help="the gateway key"),
            SettingSpec(
                name="api_base",
                env=("EXAMPLE_API_BASE",),
                default="https://llm-gateway.example.internal/v1",
                help="the gateway's base URL",
            ),
        ),
        credential_settings=("api_key",),
        max_single_request_size=512 * MiB,
        default_multipart_threshold=512 * MiB,
        default_part_size=64 * MiB,
        supports_parts=True,
    )

    def exchange(self, op: Operation, credentials: Credentials, settings: Settings) -> Exchange[Any] | UploadProtocol:
        """One request per operation (the Uploads API's protocol for a large file), as OpenAI's wire format has it."""
        # no key only in a dry run (nothing is sent then); otherwise the core refused the call already
        headers = {"Authorization": f"Bearer {credentials.secret.reveal()}"} if credentials.secret else {}
        endpoint = wire.Endpoint(provider=self.info.name, base=str(settings["api_base"]), headers=headers)
        return wire.exchange(endpoint, op, max_part_size=64 * MiB)


@hookimpl
def llmfiles_register_providers(register: Callable[[ExampleGateway], None]) -> None:
    """Declare the provider (the entry point in group ``llmfiles`` names this module)."""
    register(ExampleGateway())
