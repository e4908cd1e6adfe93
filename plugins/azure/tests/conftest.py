from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from llmfiles.testing import write_batch_jsonl
from llmfiles_azure import auth
from servers.managed_identity import ManagedIdentityEndpoint
from servers.openai_like import OpenAILikeServer
from servers.prism import free_port, run_prism

CONTRACT = Path(__file__).parent / "contract" / "azure-openai-files.oas3.json"
API_KEY = "azure-test-key-0123456789abcdef"
API_VERSION = "2024-10-21"
_IDENTITY_PREFIXES = ("AZURE_", "IDENTITY_", "MSI_", "IMDS_", "LLMFILES_")
_OTHER = ("OPENAI_API_VERSION",)
_KEEP = ("LLMFILES_PRISM",)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's keys, endpoints or identity, and none can reach a real identity service.

    ``DefaultAzureCredential`` is off unless a test turns it on, and the managed identity points at a closed port on
    127.0.0.1: a test that reached it by mistake fails fast instead of probing the instance metadata service.
    """
    for name in list(os.environ):
        if (name.startswith(_IDENTITY_PREFIXES) or name in _OTHER) and name not in _KEEP:
            monkeypatch.delenv(name)
    monkeypatch.setenv("LLMFILES_HOME", str(tmp_path / "llmfiles-home"))
    monkeypatch.setenv("LLMFILES_AZURE_DEFAULT_CREDENTIAL", "0")
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"http://127.0.0.1:{free_port()}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "no-identity-in-tests")
    auth.reset_default_credentials()
    yield
    auth.reset_default_credentials()


@pytest.fixture
def make_batch_jsonl(tmp_path: Path) -> Callable[..., Path]:
    """The kit's batch files with Azure's endpoint path (``/chat/completions``) and a deployment name."""

    def make(name: str = "batch.jsonl", records: int = 12, min_bytes: int = 0, **kw: Any) -> Path:
        kw.setdefault("url", "/chat/completions")
        kw.setdefault("model", "gpt-4o-mini-batch")
        return write_batch_jsonl(tmp_path / name, records, min_bytes=min_bytes, **kw)

    return make


@pytest.fixture(scope="session")
def prism_azure() -> Iterator[str]:
    """Prism serving Azure's published Files/Uploads contract; yields the endpoint (``http://127.0.0.1:PORT``)."""
    with run_prism(
        CONTRACT, ready_path=f"/openai/files?api-version={API_VERSION}", headers={"api-key": "ready"}
    ) as base:
        yield base


@pytest.fixture
def azure_server() -> Iterator[OpenAILikeServer]:
    """A stateful Azure OpenAI server (classic API) that refuses fine-tune files without a BOM."""
    with OpenAILikeServer.azure(api_key=API_KEY, require_bom=True) as server:
        yield server
        assert not server.errors, f"the test server failed: {server.errors!r}"


@pytest.fixture
def azure_v1_server() -> Iterator[OpenAILikeServer]:
    """The same, serving the v1 API (``/openai/v1``, no Uploads API)."""
    with OpenAILikeServer.azure(api_key=API_KEY, v1=True, require_bom=True) as server:
        yield server
        assert not server.errors, f"the test server failed: {server.errors!r}"


@pytest.fixture
def identity(monkeypatch: pytest.MonkeyPatch) -> Iterator[ManagedIdentityEndpoint]:
    """Our managed-identity token endpoint, with azure-identity pointed at it through the environment."""
    with ManagedIdentityEndpoint() as endpoint:
        for name, value in endpoint.environment().items():
            monkeypatch.setenv(name, value)
        yield endpoint


@pytest.fixture(autouse=True)
def _loopback_only(loopback_only: None) -> None:
    """No test here reaches a host that is not loopback (``llmfiles.testing.loopback_only``)."""
