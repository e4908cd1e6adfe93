"""Fixtures of the llmfiles-anthropic tests: our stateful Anthropic Files fake, a clean environment, and no name but
loopback resolvable (a test that would leave the machine fails instead)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from anthropic_testlib import API_KEY

from servers.anthropic_like import AnthropicLikeServer
from servers.fault_proxy import FaultProxy


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's key, base URL or llmfiles settings."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith("LLMFILES_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LLMFILES_HOME", str(tmp_path / "llmfiles-home"))


@pytest.fixture(autouse=True)
def _loopback_only(loopback_only: None) -> None:
    """No test here reaches a host that is not loopback (``llmfiles.testing.loopback_only``)."""


@pytest.fixture
def anthropic_server() -> Iterator[AnthropicLikeServer]:
    with AnthropicLikeServer(api_key=API_KEY) as server:
        yield server
        assert not server.errors, f"the test server failed: {server.errors!r}"


@pytest.fixture
def anthropic_settings(anthropic_server: AnthropicLikeServer) -> dict[str, Any]:
    """Settings that point ``anthropic`` at the fake (retries wait at most 10 ms)."""
    return {"api_base": anthropic_server.url, "api_key": API_KEY, "max_retry_wait": 0.01}


@pytest.fixture
def proxy(anthropic_server: AnthropicLikeServer) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", anthropic_server.port) as p:
        yield p
        assert not p.errors, f"the fault proxy failed: {p.errors!r}"
