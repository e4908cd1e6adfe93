"""Fixtures of the llmfiles-gemini tests: our stateful Gemini Files fake (behind our fault proxy where a test breaks
connections), a clean environment, and no name but loopback resolvable (a test that would leave the machine fails)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gemini_testlib import API_KEY

from servers.fault_proxy import FaultProxy
from servers.gemini_like import GeminiLikeServer

KiB = 1024


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's keys, base URL or llmfiles settings."""
    for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith("LLMFILES_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LLMFILES_HOME", str(tmp_path / "llmfiles-home"))


@pytest.fixture(autouse=True)
def _loopback_only(loopback_only: None) -> None:
    """No test here reaches a host that is not loopback (``llmfiles.testing.loopback_only``)."""


@pytest.fixture
def gemini_server() -> Iterator[GeminiLikeServer]:
    """A fresh fake for each test, with chunks of 256 KiB so that small files take several."""
    with GeminiLikeServer(api_key=API_KEY, granularity=256 * KiB) as server:
        yield server
        assert not server.errors, f"the test server failed: {server.errors!r}"


@pytest.fixture
def proxy(gemini_server: GeminiLikeServer) -> Iterator[FaultProxy]:
    """Our fault proxy in front of the fake: records every request, breaks the ones a test asks it to."""
    with FaultProxy("127.0.0.1", gemini_server.port) as p:
        yield p
        assert not p.errors, f"the fault proxy failed: {p.errors!r}"


@pytest.fixture
def gemini_settings(gemini_server: GeminiLikeServer) -> dict[str, Any]:
    """Settings that point ``gemini`` at the fake (retries wait at most 10 ms)."""
    return {"api_base": gemini_server.url, "api_key": API_KEY, "max_retry_wait": 0.01}


@pytest.fixture
def proxied_settings(proxy: FaultProxy) -> dict[str, Any]:
    """The same through the fault proxy."""
    return {"api_base": proxy.url, "api_key": API_KEY, "max_retry_wait": 0.01}
