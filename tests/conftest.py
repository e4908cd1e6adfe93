"""Fixtures of the cross-distribution tests: the OpenAI-like server and settings for the ``example`` provider."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servers.openai_like import OpenAILikeServer

API_KEY = "sk-example-test-0123456789abcdef"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's keys, provider defaults or plugin switches."""
    for name in ("EXAMPLE_API_KEY", "EXAMPLE_API_BASE", "LLMFILES_DISABLE_PLUGINS", "LLMFILES_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    for name in ("MULTIPART_THRESHOLD", "PART_SIZE", "MAX_CONCURRENCY", "MAX_RETRIES", "MAX_RETRY_WAIT", "DEADLINE"):
        monkeypatch.delenv(f"LLMFILES_{name}", raising=False)
    monkeypatch.setenv("LLMFILES_HOME", str(tmp_path / "llmfiles-home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-home"))  # no config file of the developer's
    for name in ("LLMFILES_CONFIG", "LLMFILES_PROFILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def openai_server() -> Iterator[OpenAILikeServer]:
    """A fresh OpenAI-compatible server on 127.0.0.1 for each test."""
    with OpenAILikeServer(api_key=API_KEY) as server:
        yield server
        assert not server.errors, f"the test server failed: {server.errors!r}"


@pytest.fixture
def example_settings(openai_server: OpenAILikeServer) -> dict[str, Any]:
    """Settings that point the ``example`` provider at the test server (retries wait at most 10 ms)."""
    return {"api_base": openai_server.url, "api_key": openai_server.api_key, "max_retry_wait": 0.01}
