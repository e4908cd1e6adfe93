"""Fixtures of the llmfiles-fireworks tests: our Together server written from Together's documents, Prism serving
Together's published contracts, a clean environment, and no host but loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servers.fireworks_like import FireworksLikeServer
from servers.prism import run_prism

CONTRACTS = Path(__file__).parent / "contract"
API_KEY = "fw-test-key-0123456789abcdef"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's keys or llmfiles switches."""
    for name in (
        "FIREWORKS_API_KEY",
        "FIREWORKS_ACCOUNT_ID",
        "FIREWORKS_API_BASE",
        "LLMFILES_DISABLE_PLUGINS",
        "LLMFILES_PROVIDER",
    ):
        monkeypatch.delenv(name, raising=False)
    for name in ("MULTIPART_THRESHOLD", "PART_SIZE", "MAX_CONCURRENCY", "MAX_RETRIES", "MAX_RETRY_WAIT", "DEADLINE"):
        monkeypatch.delenv(f"LLMFILES_{name}", raising=False)
    monkeypatch.setenv("LLMFILES_HOME", str(tmp_path / "llmfiles-home"))


@pytest.fixture(autouse=True)
def _loopback_only(loopback_only: None) -> None:
    """No test here reaches a host that is not loopback (``llmfiles.testing.loopback_only``)."""


ACCOUNT = "acct-test"


@pytest.fixture
def fireworks_server() -> Iterator[FireworksLikeServer]:
    with FireworksLikeServer(api_key=API_KEY) as server:
        yield server
        assert not server.errors, f"the test server failed: {server.errors!r}"


@pytest.fixture
def fireworks_settings(fireworks_server: FireworksLikeServer) -> dict[str, Any]:
    return {"api_base": fireworks_server.url, "api_key": API_KEY, "account_id": ACCOUNT, "max_retry_wait": 0.01}


@pytest.fixture(scope="session")
def prism_fireworks() -> Iterator[str]:
    """Prism serving Fireworks' datasets contract (copied from specs/fireworks-files.json)."""
    spec = CONTRACTS / "fireworks-files.json"
    with run_prism(spec, ready_path="/v1/accounts/a/datasets", headers={"Authorization": "Bearer x"}) as base:
        yield base
