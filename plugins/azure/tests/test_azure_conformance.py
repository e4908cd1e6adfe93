"""The conformance kit (:class:`llmfiles.testing.ProviderConformance`) against the stateful Azure test server.

The kit checks that what it downloads is byte for byte what it uploaded.  A ``fine-tune`` file without a BOM is
deliberately stored with three more bytes (Azure wants the BOM), so the ``fine-tune`` run uses files written with
a BOM — the shape Azure asks for, sent as they are — and a second run covers ``batch`` with plain files (no BOM
added).  The server refuses ``fine-tune`` files without a BOM, as Azure's documentation says the service does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llmfiles.testing import ProviderConformance, write_chat_jsonl
from servers.openai_like import OpenAILikeServer

BOM = b"\xef\xbb\xbf"


def _settings(server: OpenAILikeServer) -> dict[str, Any]:
    return {
        "api_base": server.origin,
        "api_key": server.api_key,
        # the kit's missing-credentials test removes api_key: it must then fail, not try DefaultAzureCredential
        "use_default_credential": False,
        "max_retry_wait": 0.01,
    }


class TestAzureConformance(ProviderConformance):
    provider = "azure"
    purpose = "fine-tune"

    @pytest.fixture
    def provider_settings(self, azure_server: OpenAILikeServer) -> dict[str, Any]:
        return _settings(azure_server)

    @pytest.fixture
    def make_jsonl(self, tmp_path: Path) -> Callable[..., Path]:
        """The kit's chat JSONL files, written with a UTF-8 BOM as Azure wants fine-tuning files."""

        def make(name: str = "train.jsonl", records: int = 12, min_bytes: int = 0) -> Path:
            path = write_chat_jsonl(tmp_path / name, records, min_bytes=min_bytes)
            path.write_bytes(BOM + path.read_bytes())
            return path

        return make


class TestAzureBatchConformance(ProviderConformance):
    provider = "azure"
    purpose = "batch"

    @pytest.fixture
    def make_jsonl(self, make_batch_jsonl: Callable[..., Path]) -> Callable[..., Path]:
        """Batch files in Azure's format: the round trip validates them before they are sent."""
        return make_batch_jsonl

    @pytest.fixture
    def provider_settings(self, azure_server: OpenAILikeServer) -> dict[str, Any]:
        return _settings(azure_server)
