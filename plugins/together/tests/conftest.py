"""Fixtures of the llmfiles-together tests: our Together server written from Together's documents, Prism serving
Together's published contracts, a clean environment, and no host but loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servers.prism import run_prism
from servers.together_like import TogetherLikeServer

CONTRACTS = Path(__file__).parent / "contract"
API_KEY = "together-test-key-0123456789abcdef"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's keys or llmfiles switches."""
    for name in ("TOGETHER_API_KEY", "TOGETHER_BASE_URL", "LLMFILES_DISABLE_PLUGINS", "LLMFILES_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    for name in ("MULTIPART_THRESHOLD", "PART_SIZE", "MAX_CONCURRENCY", "MAX_RETRIES", "MAX_RETRY_WAIT", "DEADLINE"):
        monkeypatch.delenv(f"LLMFILES_{name}", raising=False)
    monkeypatch.setenv("LLMFILES_HOME", str(tmp_path / "llmfiles-home"))


@pytest.fixture(autouse=True)
def _loopback_only(loopback_only: None) -> None:
    """No test here reaches a host that is not loopback (``llmfiles.testing.loopback_only``)."""


@pytest.fixture
def together_server() -> Iterator[TogetherLikeServer]:
    with TogetherLikeServer(api_key=API_KEY) as server:
        yield server
        assert not server.errors, f"the test server failed: {server.errors!r}"


@pytest.fixture
def together_settings(together_server: TogetherLikeServer) -> dict[str, Any]:
    return {"api_base": together_server.url, "api_key": API_KEY, "max_retry_wait": 0.01}


@pytest.fixture(scope="session")
def prism_together() -> Iterator[str]:
    """Prism serving Together's files contract (copied from specs/together-files.json); yields its origin (the
    contract's paths have no /v1)."""
    with run_prism(CONTRACTS / "together-files.json", ready_path="/files", headers={"Authorization": "Bearer x"}) as b:
        yield b


@pytest.fixture(scope="session")
def prism_together_multipart() -> Iterator[str]:
    """Prism serving Together's multipart contract (copied from specs/together-files-multipart.json)."""
    spec = CONTRACTS / "together-files-multipart.json"
    with run_prism(spec, ready_path="/files/multipart/abort", headers={"Authorization": "Bearer x"}) as base:
        yield base
