from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servers.openai_like import OpenAILikeServer
from servers.prism import run_prism

CONTRACT = Path(__file__).parent / "contract" / "openai-files.json"


@pytest.fixture(scope="session")
def prism_openai() -> Iterator[str]:
    """Prism serving OpenAI's published Files/Uploads contract; yields the API base (``.../v1``)."""
    with run_prism(CONTRACT, ready_path="/v1/files", headers={"Authorization": "Bearer ready"}) as base:
        yield base + "/v1"


API_KEY = "sk-openai-test-0123456789abcdef"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's keys or llmfiles switches."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    for name in ("MULTIPART_THRESHOLD", "PART_SIZE", "MAX_CONCURRENCY", "MAX_RETRIES", "MAX_RETRY_WAIT", "DEADLINE"):
        monkeypatch.delenv(f"LLMFILES_{name}", raising=False)
    monkeypatch.delenv("LLMFILES_DISABLE_PLUGINS", raising=False)
    monkeypatch.setenv("LLMFILES_HOME", str(tmp_path / "llmfiles-home"))


@pytest.fixture
def openai_server() -> Iterator[OpenAILikeServer]:
    """A fresh stateful OpenAI-compatible server of ours on 127.0.0.1 for each test."""
    with OpenAILikeServer(api_key=API_KEY) as server:
        yield server
        assert not server.errors, f"the test server failed: {server.errors!r}"


@pytest.fixture
def openai_settings(openai_server: OpenAILikeServer) -> dict[str, Any]:
    """Settings that point the ``openai`` provider at the test server (retries wait at most 10 ms)."""
    return {"api_base": openai_server.url, "api_key": openai_server.api_key, "max_retry_wait": 0.01}


@pytest.fixture(autouse=True)
def _loopback_only(loopback_only: None) -> None:
    """No test here reaches a host that is not loopback (``llmfiles.testing.loopback_only``)."""
