"""Fixtures of the llmfiles-mistral tests: Stoplight Prism serving Mistral's published contract, our stateful fake
for round trips, a clean environment, and no name but loopback resolvable (a test that would leave the machine fails
instead)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mistral_testlib import API_KEY

from servers.fault_proxy import FaultProxy
from servers.mistral_like import MistralLikeServer
from servers.prism import run_prism

CONTRACT = Path(__file__).parent / "contract" / "mistral-files.json"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's key, base URL or llmfiles settings."""
    for name in ("MISTRAL_API_KEY", "MISTRAL_API_BASE"):
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith("LLMFILES_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LLMFILES_HOME", str(tmp_path / "llmfiles-home"))


@pytest.fixture(autouse=True)
def _loopback_only(loopback_only: None) -> None:
    """No test here reaches a host that is not loopback (``llmfiles.testing.loopback_only``)."""


@pytest.fixture(scope="session")
def prism_mistral() -> Iterator[str]:
    """Prism serving Mistral's published Files contract; yields the base URL (its paths carry /v1)."""
    with run_prism(CONTRACT, ready_path="/v1/files", headers={"Authorization": "Bearer ready"}) as base:
        yield base


@pytest.fixture
def mistral_server() -> Iterator[MistralLikeServer]:
    with MistralLikeServer(api_key=API_KEY) as server:
        yield server
        assert not server.errors, f"the test server failed: {server.errors!r}"


@pytest.fixture
def mistral_settings(mistral_server: MistralLikeServer) -> dict[str, Any]:
    """Settings that point ``mistral`` at the fake (retries wait at most 10 ms)."""
    return {"api_base": mistral_server.url, "api_key": API_KEY, "max_retry_wait": 0.01}


@pytest.fixture
def proxy(mistral_server: MistralLikeServer) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", mistral_server.port) as p:
        yield p
        assert not p.errors, f"the fault proxy failed: {p.errors!r}"
