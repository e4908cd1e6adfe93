"""llmfiles' conformance kit against our stateful Anthropic Files fake.

The kit's round trip downloads what it uploaded; Anthropic serves only files made by skills or the code execution
tool, so the fake is told to serve uploads too here (``download_uploads=True``); ``test_anthropic_behaviour`` shows
the refusal Anthropic gives instead.  Anthropic has no large-file protocol (500 MB go in one request), so the kit's
parts cases are skipped, as it skips them for every provider that declares none."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from anthropic_testlib import API_KEY

from llmfiles.testing import ProviderConformance
from servers.anthropic_like import AnthropicLikeServer


@pytest.fixture
def conformance_server() -> Iterator[AnthropicLikeServer]:
    with AnthropicLikeServer(api_key=API_KEY, download_uploads=True) as server:
        yield server
        assert not server.errors, f"the test server failed: {server.errors!r}"


class TestAnthropicConformance(ProviderConformance):
    provider = "anthropic"
    purpose = "user_data"

    @pytest.fixture
    def provider_settings(self, conformance_server: AnthropicLikeServer) -> dict[str, Any]:
        return {"api_base": conformance_server.url, "api_key": API_KEY, "max_retry_wait": 0.01}

    def missing_file_id(self) -> str:
        return "file_011CNha8iCJcU1wXNR6q4V8w"
