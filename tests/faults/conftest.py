"""Fixtures of the fault suite: every provider's test server behind our fault proxy, and a clean environment.

The OpenAI-like server (OpenAI and Azure flavours) is started per test; gcp-storage-emulator and moto once per
session (each test writes under a prefix of its own).  Every request goes through a :class:`FaultProxy` that
records it and breaks the ones a test asks it to.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultlib import GCS_BUCKET, PROVIDERS, REGION, S3_BUCKET, Harness, make_harness
from loopback import sitecustomize as loopback

os.environ["NO_GCE_CHECK"] = "true"  # google-auth never probes a metadata server here
#: every process the suite starts imports this folder's ``sitecustomize``: it looks up loopback names only
LOOPBACK_GUARD = str(Path(loopback.__file__).parent)
loopback.install()  # and so does this one

_KEEP = ("LLMFILES_PRISM",)
_PREFIXES = ("AWS_", "AZURE_", "IDENTITY_", "MSI_", "IMDS_", "GOOGLE_", "OPENAI_", "LLMFILES_")
_OTHER = ("STORAGE_EMULATOR_HOST", "GCS_BUCKET_NAME")


@pytest.fixture(autouse=True)
def _fault_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's keys, endpoints, identities or llmfiles settings; none can reach a real
    identity service or instance metadata; none (nor any process it starts) looks up a name that is not loopback."""
    for name in list(os.environ):
        if (name.startswith(_PREFIXES) or name in _OTHER) and name not in _KEEP:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LLMFILES_HOME", str(tmp_path / "llmfiles-home"))
    monkeypatch.setenv("LLMFILES_AZURE_DEFAULT_CREDENTIAL", "0")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws" / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws" / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (LOOPBACK_GUARD, os.environ.get("PYTHONPATH")) if p))
    from llmfiles.api import _reset_default_client

    _reset_default_client()
    loopback.REFUSED.clear()
    yield
    _reset_default_client()
    refused, loopback.REFUSED[:] = list(loopback.REFUSED), []
    assert not refused, f"the test looked up names that are not loopback: {refused}"


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from servers.gcs_emulator import run_gcs_emulator

    with run_gcs_emulator(GCS_BUCKET, tmp_path_factory.mktemp("gcs") / "emulator.log") as url:
        yield url


@pytest.fixture(scope="session")
def moto() -> Iterator[str]:
    import boto3

    from servers.moto_server import run_moto

    with run_moto() as url:
        s3 = boto3.client("s3", endpoint_url=url, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="y")
        s3.create_bucket(Bucket=S3_BUCKET)
        yield url


@pytest.fixture
def prefix() -> str:
    return f"f-{uuid.uuid4().hex[:10]}/"


@pytest.fixture(params=PROVIDERS)
def harness(request: pytest.FixtureRequest, prefix: str) -> Iterator[Harness]:
    """Each provider in turn, behind the fault proxy."""
    yield from make_harness(request.param, request, prefix)
