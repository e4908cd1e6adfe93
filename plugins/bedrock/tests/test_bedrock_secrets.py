"""AWS Secrets Manager as the last link of the settings chain: ``OPENAI_API_KEY`` kept in moto's Secrets Manager
reaches the openai provider (and an OpenAI-like server checks it), found with GetSecretValue signed by botocore and
sent through the core's transport with the caller's TLS and plain-HTTP settings."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import KEY_ID, REGION, SECRET, boto3_client

import llmfiles
from llmfiles.calls import CallHttp
from llmfiles.provider import Http
from llmfiles.transport import Policy, Transport
from llmfiles_bedrock import secrets
from servers.fault_proxy import FaultProxy, Respond
from servers.openai_like import OpenAILikeServer
from servers.tls_front import TlsFront

API_KEY = "sk-from-secrets-manager-0123456789"


@pytest.fixture
def secret_prefix(moto: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh secrets prefix, with the environment that points the hook at moto (credentials from botocore's
    chain: the environment)."""
    prefix = f"llmfiles-{uuid.uuid4().hex[:8]}/"
    monkeypatch.setenv("LLMFILES_AWS_SECRETS_PREFIX", prefix)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    yield prefix


@pytest.fixture
def sm(moto: str) -> Any:
    return boto3_client("secretsmanager", moto)


@pytest.fixture
def http() -> Iterator[Http]:
    """What the core gives the hook: its transport with a call's policy (here the defaults, quick retries)."""
    transport = Transport()
    yield CallHttp(transport, Policy(provider="openai", max_retry_wait=0.01))
    transport.close()


@pytest.fixture
def openai_server() -> Iterator[OpenAILikeServer]:
    with OpenAILikeServer(api_key=API_KEY) as server:
        yield server


def test_openai_key_from_secrets_manager(
    secret_prefix: str, sm: Any, openai_server: OpenAILikeServer, make_jsonl: Any
) -> None:
    sm.create_secret(Name=f"{secret_prefix}OPENAI_API_KEY", SecretString=API_KEY)
    with llmfiles.Client("openai", api_base=openai_server.url) as client:
        plan = client.describe_upload(make_jsonl(), purpose="fine-tune")
        assert plan["credentials"] == "secret OPENAI_API_KEY"
        fo = client.upload(make_jsonl(), purpose="fine-tune")
    assert fo.provider == "openai" and fo.id.startswith("file-")
    assert openai_server.requests[-1].headers["authorization"] == f"Bearer {API_KEY}"


def test_the_environment_still_comes_first(
    secret_prefix: str, sm: Any, monkeypatch: pytest.MonkeyPatch, make_jsonl: Any
) -> None:
    sm.create_secret(Name=f"{secret_prefix}OPENAI_API_KEY", SecretString=API_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    with llmfiles.Client("openai") as client:
        assert client.describe_upload(make_jsonl(), purpose="fine-tune")["credentials"] == "env OPENAI_API_KEY"


def test_a_missing_secret_leaves_the_chain_empty(secret_prefix: str, make_jsonl: Any) -> None:
    with llmfiles.Client("openai") as client, pytest.raises(llmfiles.MissingCredentials) as info:
        client.upload(make_jsonl(), purpose="fine-tune")
    assert "secret hooks for OPENAI_API_KEY" in str(info.value)


def test_key_value_secrets(secret_prefix: str, sm: Any, http: Http) -> None:
    sm.create_secret(Name=f"{secret_prefix}OPENAI_API_KEY", SecretString=json.dumps({"OPENAI_API_KEY": API_KEY}))
    sm.create_secret(Name=f"{secret_prefix}OTHER", SecretBinary=b"binary-value")
    assert secrets.get_secret("OPENAI_API_KEY", http) == API_KEY
    assert secrets.get_secret("OTHER", http) == "binary-value"


def test_values_are_cached_in_memory_for_a_while(
    secret_prefix: str, sm: Any, monkeypatch: pytest.MonkeyPatch, http: Http
) -> None:
    name = f"{secret_prefix}OPENAI_API_KEY"
    sm.create_secret(Name=name, SecretString=API_KEY)
    assert secrets.get_secret("OPENAI_API_KEY", http) == API_KEY
    sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    assert secrets.get_secret("OPENAI_API_KEY", http) == API_KEY  # from memory
    monkeypatch.setenv("LLMFILES_AWS_SECRETS_TTL", "0")
    assert secrets.get_secret("OPENAI_API_KEY", http) is None


def test_secrets_manager_errors_are_clear(
    secret_prefix: str, moto: str, monkeypatch: pytest.MonkeyPatch, http: Http
) -> None:
    port = int(moto.rsplit(":", 1)[1])
    denied = json.dumps({"__type": "AccessDeniedException", "message": "not allowed: secretsmanager:GetSecretValue"})
    with FaultProxy("127.0.0.1", port) as proxy:
        proxy.add_rule(lambda r: True, Respond(400, {"Content-Type": "application/x-amz-json-1.1"}, denied.encode()))
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", proxy.url)
        with pytest.raises(llmfiles.AuthenticationError) as info:
            secrets.get_secret("OPENAI_API_KEY", http)
        (req,) = proxy.requests
    assert "not allowed" in str(info.value) and "env AWS_ACCESS_KEY_ID" in str(info.value)
    assert req.header("x-amz-target") == "secretsmanager.GetSecretValue"
    assert (req.header("authorization") or "").startswith(f"AWS4-HMAC-SHA256 Credential={KEY_ID}/")
    assert f"/{REGION}/secretsmanager/aws4_request" in (req.header("authorization") or "")
    assert SECRET not in str(info.value)
    monkeypatch.delenv("AWS_REGION")
    with pytest.raises(llmfiles.ConfigurationError, match="AWS_REGION"):
        secrets.get_secret("ANOTHER", http)


def test_the_secret_manager_is_asked_with_the_callers_tls_settings(
    secret_prefix: str,
    sm: Any,
    moto: str,
    openai_server: OpenAILikeServer,
    make_jsonl: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    sm.create_secret(Name=f"{secret_prefix}OPENAI_API_KEY", SecretString=API_KEY)
    with TlsFront(int(moto.rsplit(":", 1)[1]), tmp_path / "tls") as front:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", front.url)
        # a private CA is not trusted by default: the lookup fails on TLS, it does not go around it
        client = llmfiles.Client("openai", api_base=openai_server.url)
        with client, pytest.raises(llmfiles.NetworkError, match="TLS"):
            client.upload(make_jsonl(), purpose="fine-tune")
        assert front.accepted == 0
        deadline = time.monotonic() + 30
        while front.refused == 0 and time.monotonic() < deadline:  # the server's side of the failed handshake
            time.sleep(0.05)
        assert front.refused >= 1
        # the caller's CA bundle reaches the secret manager's requests
        with llmfiles.Client("openai", api_base=openai_server.url, verify=str(front.ca_file)) as client:
            assert client.describe_upload(make_jsonl(), purpose="fine-tune")["credentials"] == "secret OPENAI_API_KEY"
        assert front.accepted == 1
        secrets.clear_cache()
        monkeypatch.setenv("LLMFILES_CA_BUNDLE", str(front.ca_file))  # the same setting from the environment
        with llmfiles.Client("openai", api_base=openai_server.url) as client:
            fo = client.upload(make_jsonl(), purpose="fine-tune")
        assert front.accepted == 2
    assert fo.provider == "openai"
    assert openai_server.requests[-1].headers["authorization"] == f"Bearer {API_KEY}"


def test_plain_http_to_a_secret_manager_that_is_not_loopback_needs_allow_insecure_http(
    secret_prefix: str,
    sm: Any,
    moto: str,
    openai_server: OpenAILikeServer,
    make_jsonl: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sm.create_secret(Name=f"{secret_prefix}OPENAI_API_KEY", SecretString=API_KEY)
    real = socket.getaddrinfo
    looked_up: list[str] = []

    def loopback_only(host: Any, *args: Any, **kw: Any) -> Any:
        # the test never leaves the machine: the made-up name is moto on 127.0.0.1, any other name is refused
        looked_up.append(str(host))
        if host == "secrets.llmfiles.test":
            host = "127.0.0.1"
        elif host not in ("127.0.0.1", "::1", "localhost"):
            raise socket.gaierror(f"the test refuses to resolve {host!r}")
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://secrets.llmfiles.test:{moto.rsplit(':', 1)[1]}")
    client = llmfiles.Client("openai", api_base=openai_server.url)
    with client, pytest.raises(llmfiles.errors.InsecureTransport, match=r"secrets\.llmfiles\.test"):
        client.upload(make_jsonl(), purpose="fine-tune")
    assert "secrets.llmfiles.test" not in looked_up  # refused before any connection
    with llmfiles.Client("openai", api_base=openai_server.url, allow_insecure_http=True) as client:
        fo = client.upload(make_jsonl(), purpose="fine-tune")
    assert "secrets.llmfiles.test" in looked_up and fo.provider == "openai"
    assert openai_server.requests[-1].headers["authorization"] == f"Bearer {API_KEY}"


def test_the_secret_manager_is_asked_with_the_callers_retries(
    secret_prefix: str, sm: Any, moto: str, monkeypatch: pytest.MonkeyPatch, make_jsonl: Any
) -> None:
    sm.create_secret(Name=f"{secret_prefix}OPENAI_API_KEY", SecretString=API_KEY)
    with FaultProxy("127.0.0.1", int(moto.rsplit(":", 1)[1])) as proxy:
        proxy.add_rule(lambda r: True, Respond(503, {"Content-Type": "application/x-amz-json-1.1"}, b"{}"), times=2)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", proxy.url)
        with llmfiles.Client("openai", max_retries=0) as client, pytest.raises(llmfiles.ProviderError) as info:
            client.describe_upload(make_jsonl(), purpose="fine-tune")
        assert info.value.status == 503 and len(proxy.requests) == 1
        with llmfiles.Client("openai", max_retries=1, max_retry_wait=0.01) as client:
            assert client.describe_upload(make_jsonl(), purpose="fine-tune")["credentials"] == "secret OPENAI_API_KEY"
        assert [r.action for r in proxy.requests] == ["respond", "respond", "forward"]


def test_without_a_prefix_the_hook_does_nothing(http: Http) -> None:
    assert secrets.get_secret("OPENAI_API_KEY", http) is None


def test_import_stays_cheap() -> None:
    """``import llmfiles``, listing providers and resolving settings (the secret hook included, no prefix set) load
    no botocore."""
    code = (
        "import sys, llmfiles\n"
        "c = llmfiles.Client(environ={})\n"
        "assert c.provider_info('bedrock').name == 'bedrock'\n"
        "c._resolver.settings(c.provider_info('openai'), {})\n"
        "c._resolver.settings(c.provider_info('bedrock'), {})\n"
        "assert 'botocore' not in sys.modules, sorted(m for m in sys.modules if m.startswith('botocore'))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
