"""llmfiles' conformance kit against our stateful Gemini Files fake: Batch API input files (checked by the Batch
API's rules) and files to use in prompts (not checked).

The kit's round trip downloads what it uploaded; Gemini serves only the files it generated (batch results), so the
fake is told to serve uploads too here (``download_uploads=True``); ``test_gemini_behaviour`` shows the refusal
Gemini gives instead.  The kit's large-file cases use parts of 1 MiB, so the fake declares a chunk granularity of
256 KiB, which divides them (the real service declares 8 MiB, the default part size)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gemini_testlib import API_KEY, batch_file

from llmfiles.testing import ProviderConformance
from servers.gemini_like import GeminiLikeServer

KiB = 1024


@pytest.fixture
def conformance_server() -> Iterator[GeminiLikeServer]:
    with GeminiLikeServer(api_key=API_KEY, granularity=256 * KiB, download_uploads=True) as server:
        yield server
        assert not server.errors, f"the test server failed: {server.errors!r}"


def _settings(server: GeminiLikeServer) -> dict[str, Any]:
    return {"api_base": server.url, "api_key": API_KEY, "max_retry_wait": 0.01}


class TestGeminiBatchConformance(ProviderConformance):
    provider = "gemini"
    purpose = "batch"

    @pytest.fixture
    def provider_settings(self, conformance_server: GeminiLikeServer) -> dict[str, Any]:
        return _settings(conformance_server)

    @pytest.fixture
    def make_jsonl(self, tmp_path: Path) -> Callable[..., Path]:
        """Batch API input files in Gemini's format: the round trip checks them before they are sent."""

        def make(name: str = "batch.jsonl", records: int = 12, min_bytes: int = 0) -> Path:
            return batch_file(tmp_path / name, records, min_bytes=min_bytes)

        return make

    def missing_file_id(self) -> str:
        return "files/batch-000000000000000000000000"


class TestGeminiUserDataConformance(ProviderConformance):
    provider = "gemini"
    purpose = "user_data"

    @pytest.fixture
    def provider_settings(self, conformance_server: GeminiLikeServer) -> dict[str, Any]:
        return _settings(conformance_server)

    def missing_file_id(self) -> str:
        return "files/missing0000"
