"""Fixtures of the llmfiles-bedrock tests: moto's server (behind our fault proxy) and a clean AWS environment."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmfiles_bedrock import aws, secrets
from servers.fault_proxy import FaultProxy
from servers.moto_server import run_moto

BUCKET = "llmfiles-bedrock-test"
REGION = "us-east-1"
#: moto accepts any key while it does not check signatures (the auth tests use a key moto's IAM issued)
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def boto3_client(service: str, url: str, **kw: Any) -> Any:
    """A boto3 client for moto at ``url`` (tests only: llmfiles itself never uses boto3)."""
    import boto3

    kw.setdefault("aws_access_key_id", KEY_ID)
    kw.setdefault("aws_secret_access_key", SECRET)
    return boto3.client(service, endpoint_url=url, region_name=REGION, **kw)


def bedrock_s3_uri_pattern() -> re.Pattern[str]:
    """The pattern of ``S3Uri`` in Bedrock's API model (as botocore ships it), the one CreateModelCustomizationJob
    enforces for ``trainingDataConfig.s3Uri``."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("bedrock")
    shape = model.operation_model("CreateModelCustomizationJob").input_shape
    return re.compile(shape.members["trainingDataConfig"].members["s3Uri"].metadata["pattern"])


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's AWS keys, profiles, region, endpoints or llmfiles settings, and botocore never
    probes the EC2 instance metadata service (it is not on 127.0.0.1)."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "LLMFILES_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws" / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws" / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("LLMFILES_HOME", str(tmp_path / "llmfiles-home"))
    aws.clear_cache()
    secrets.clear_cache()
    yield
    aws.clear_cache()
    secrets.clear_cache()


@pytest.fixture(scope="session")
def moto() -> Iterator[str]:
    """moto's server on a free port of 127.0.0.1 (signatures not checked), with the test bucket."""
    with run_moto() as url:
        boto3_client("s3", url).create_bucket(Bucket=BUCKET)
        yield url


@pytest.fixture
def s3(moto: str) -> Any:
    """boto3's S3 client on moto, to look at what llmfiles stored from the outside."""
    return boto3_client("s3", moto)


@pytest.fixture
def proxy(moto: str) -> Iterator[FaultProxy]:
    """Our fault proxy in front of moto: records every request, breaks the ones a test asks it to."""
    port = int(moto.rsplit(":", 1)[1])
    with FaultProxy("127.0.0.1", port, keep_bodies=True) as p:
        yield p
        assert not p.errors, f"the fault proxy failed: {p.errors!r}"


@pytest.fixture
def prefix() -> str:
    """A folder of its own for each test, so listings see only the test's files."""
    return f"t-{uuid.uuid4().hex[:10]}/"


@pytest.fixture
def bedrock_settings(proxy: FaultProxy, prefix: str) -> dict[str, Any]:
    """Settings that point ``bedrock`` at moto through the proxy; retries wait at most 10 ms."""
    return {
        "api_base": proxy.url,
        "aws_region": REGION,
        "bucket": BUCKET,
        "prefix": prefix,
        "aws_access_key_id": KEY_ID,
        "aws_secret_access_key": SECRET,
        "max_retry_wait": 0.01,
    }
