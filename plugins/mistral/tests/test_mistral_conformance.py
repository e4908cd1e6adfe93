"""llmfiles' conformance kit against our stateful Mistral Files fake (Prism keeps nothing between calls, so the
round trips cannot run on it: the contract tests are in ``test_mistral_contract``).  Mistral has no large-file
protocol (512 MB go in one request), so the kit's parts cases are skipped, as it skips them for every provider that
declares none."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mistral_testlib import API_KEY, batch_file, chat_file

from llmfiles.testing import ProviderConformance
from servers.mistral_like import MistralLikeServer

MISSING = "00000000-0000-4000-8000-000000000000"


def _settings(server: MistralLikeServer) -> dict[str, Any]:
    return {"api_base": server.url, "api_key": API_KEY, "max_retry_wait": 0.01}


class TestMistralFineTuneConformance(ProviderConformance):
    provider = "mistral"
    purpose = "fine-tune"

    @pytest.fixture
    def provider_settings(self, mistral_server: MistralLikeServer) -> dict[str, Any]:
        return _settings(mistral_server)

    @pytest.fixture
    def make_jsonl(self, tmp_path: Path) -> Callable[..., Path]:
        def make(name: str = "train.jsonl", records: int = 12, min_bytes: int = 0) -> Path:
            return chat_file(tmp_path / name, records, min_bytes=min_bytes)

        return make

    def missing_file_id(self) -> str:
        return MISSING


class TestMistralBatchConformance(ProviderConformance):
    provider = "mistral"
    purpose = "batch"

    @pytest.fixture
    def provider_settings(self, mistral_server: MistralLikeServer) -> dict[str, Any]:
        return _settings(mistral_server)

    @pytest.fixture
    def make_jsonl(self, tmp_path: Path) -> Callable[..., Path]:
        def make(name: str = "batch.jsonl", records: int = 12, min_bytes: int = 0) -> Path:
            path = batch_file(tmp_path / name, records)
            while path.stat().st_size < min_bytes:
                batch_file(path, records * 2)
                records *= 2
            return path

        return make

    def missing_file_id(self) -> str:
        return MISSING
