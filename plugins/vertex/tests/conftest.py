"""Fixtures of the llmfiles-vertex tests: gcp-storage-emulator behind our fault proxy, a clean environment, and
no name but loopback resolvable (a test that would leave the machine fails instead)."""

from __future__ import annotations

import ipaddress
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vertex_testlib import BUCKET, TOKEN, provider

from servers.fault_proxy import FaultProxy
from servers.gcs_emulator import run_gcs_emulator

# google-auth reads these when google.auth.compute_engine is first imported: it never probes a metadata server
# here, and if it did, the metadata server would be a closed port of this machine
os.environ["NO_GCE_CHECK"] = "true"
os.environ["GCE_METADATA_HOST"] = "127.0.0.1:1"
os.environ["GCE_METADATA_IP"] = "127.0.0.1:1"


_ENV = (
    "LLMFILES_GCS_BUCKET",
    "GCS_BUCKET_NAME",
    "LLMFILES_GCS_PREFIX",
    "VERTEXAI_PROJECT",
    "VERTEXAI_LOCATION",
    "GOOGLE_CLOUD_PROJECT",
    "GCLOUD_PROJECT",
    "GOOGLE_CLOUD_QUOTA_PROJECT",
    "GOOGLE_OAUTH_ACCESS_TOKEN",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "STORAGE_EMULATOR_HOST",
    "LLMFILES_PROVIDER",
    "LLMFILES_DISABLE_PLUGINS",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's buckets, tokens, gcloud credentials or llmfiles settings."""
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith("LLMFILES_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("LLMFILES_HOME", str(tmp_path / "llmfiles-home"))
    provider().auth.clear()
    yield
    provider().auth.clear()


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolving any name but a loopback one fails the test (google-auth, a redirect, a bug: nothing leaves)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kw: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        try:
            loopback = ipaddress.ip_address(name.strip("[]")).is_loopback
        except ValueError:
            loopback = name == "localhost"
        if not loopback:
            raise OSError(f"the tests resolve loopback names only, not {name!r}")
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """gcp-storage-emulator on a free port of 127.0.0.1, in memory, with the test bucket."""
    log = tmp_path_factory.mktemp("gcs-emulator") / "emulator.log"
    with run_gcs_emulator(BUCKET, log) as url:
        yield url


@pytest.fixture
def proxy(gcs_emulator: str) -> Iterator[FaultProxy]:
    """Our fault proxy in front of the emulator: records every request, breaks the ones a test asks it to."""
    port = int(gcs_emulator.rsplit(":", 1)[1])
    with FaultProxy("127.0.0.1", port) as p:
        yield p
        assert not p.errors, f"the fault proxy failed: {p.errors!r}"


@pytest.fixture
def prefix() -> str:
    """A folder of its own for each test, so listings see only the test's files."""
    return f"t-{uuid.uuid4().hex[:10]}/"


@pytest.fixture
def vertex_settings(proxy: FaultProxy, prefix: str) -> dict[str, Any]:
    """Settings that point ``vertex_ai`` at the emulator (through the proxy) with a passed access token."""
    return {"api_base": proxy.url, "bucket": BUCKET, "prefix": prefix, "access_token": TOKEN, "max_retry_wait": 0.01}
