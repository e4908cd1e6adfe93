"""Entra ID through azure-identity's real code: ``DefaultAzureCredential`` and ``ManagedIdentityCredential`` get
their tokens from our managed-identity endpoint on 127.0.0.1 (``IDENTITY_ENDPOINT`` / ``IDENTITY_HEADER``), and
the bearer token must reach Prism (Azure's contract) and the stateful server.  Token caching is azure-identity's:
the endpoint must be asked once however many calls follow.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import llmfiles
from llmfiles.errors import InvalidSetting
from llmfiles.models import HttpRequest
from llmfiles.plugins import PluginManager
from llmfiles_azure import plugin as azure_plugin
from servers.managed_identity import ManagedIdentityEndpoint
from servers.openai_like import OpenAILikeServer

MiB = 1024 * 1024
SCOPE = "https://cognitiveservices.azure.com/.default"


@pytest.fixture
def accepting(azure_server: OpenAILikeServer, identity: ManagedIdentityEndpoint) -> OpenAILikeServer:
    """The stateful server, accepting the token our identity endpoint issues (and the api key)."""
    azure_server.bearer_tokens.add(identity.token)
    return azure_server


def _client(endpoint: str, **settings: Any) -> llmfiles.Client:
    # the environment is the process's (azure-identity reads os.environ): the autouse fixture cleaned it
    return llmfiles.Client("azure", api_base=endpoint, **settings)


def _auth_headers(server: OpenAILikeServer) -> list[tuple[str | None, str | None]]:
    return [(r.headers.get("authorization"), r.headers.get("api-key")) for r in server.requests]


def test_default_azure_credential_token_reaches_the_server_and_is_cached(
    accepting: OpenAILikeServer, identity: ManagedIdentityEndpoint, make_jsonl: Any, tmp_path: Path
) -> None:
    src = make_jsonl()
    with _client(accepting.origin, use_default_credential=True) as client:
        fo = client.upload(src, purpose="fine-tune")
        assert client.retrieve(fo.id).id == fo.id
    with _client(accepting.origin, use_default_credential=True) as again:  # a second client, later calls
        assert fo.id in {f.id for f in again.list_files()}
        again.download(fo.id, tmp_path / "back.jsonl")
    assert len(accepting.requests) == 4
    assert set(_auth_headers(accepting)) == {(f"Bearer {identity.token}", None)}  # no api-key header anywhere
    assert len(identity.requests) == 1  # azure-identity's cache answered every later call
    (token_request,) = identity.requests
    assert token_request.status == 200
    assert token_request.query == {"api-version": "2019-08-01", "resource": "https://cognitiveservices.azure.com"}
    assert token_request.identity_header == identity.secret


def test_default_azure_credential_is_named_as_the_source(
    accepting: OpenAILikeServer, identity: ManagedIdentityEndpoint, make_jsonl: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMFILES_AZURE_DEFAULT_CREDENTIAL", "1")  # the env var turns it on too
    with _client(accepting.origin) as client:
        plan = client.describe_upload(make_jsonl(), purpose="fine-tune")
    assert plan["credentials"] == "Entra ID (DefaultAzureCredential)"
    assert accepting.requests == []  # a dry run sends nothing to Azure


def test_entra_id_token_passes_azures_contract_in_prism(
    prism_azure: str, identity: ManagedIdentityEndpoint, make_jsonl: Any
) -> None:
    """Prism's copy of the contract accepts ``Authorization: Bearer``; every request carries azure-identity's token."""
    sent: list[HttpRequest] = []

    class Keep:
        @llmfiles.hookimpl(wrapper=True)
        def llmfiles_build_request(self, provider: str, operation: Any, credentials: Any, settings: Any) -> Any:
            built = yield
            if isinstance(built, HttpRequest):
                sent.append(built)
            return built

    pm = PluginManager(load_entry_points=False)
    pm.register(azure_plugin, "azure")
    pm.register(Keep(), "keep")
    with llmfiles.Client("azure", plugin_manager=pm, api_base=prism_azure, use_default_credential=True) as client:
        assert client.upload(make_jsonl(), purpose="fine-tune").id
        assert list(client.list_files())
        assert client.retrieve("file-abc123").id
    assert [r.headers.get("Authorization") for r in sent] == [f"Bearer {identity.token}"] * 3
    assert all("api-key" not in r.headers for r in sent)
    assert len(identity.requests) == 1


def test_a_managed_identity_credential_passed_in(
    accepting: OpenAILikeServer, identity: ManagedIdentityEndpoint, make_batch_jsonl: Any
) -> None:
    from azure.identity import ManagedIdentityCredential

    credential = ManagedIdentityCredential()
    with _client(accepting.origin, credential=credential) as client:
        plan = client.describe_upload(make_batch_jsonl(), purpose="batch")
        assert plan["credentials"] == "Entra ID (ManagedIdentityCredential, Client setting credential)"
        fo = client.upload(make_batch_jsonl(), purpose="batch")
    with _client(accepting.origin) as other:
        assert other.retrieve(fo.id, credential=credential).id == fo.id
    assert set(_auth_headers(accepting)) == {(f"Bearer {identity.token}", None)}
    assert len(identity.requests) == 1


def test_a_token_provider_callable(
    accepting: OpenAILikeServer, identity: ManagedIdentityEndpoint, make_jsonl: Any
) -> None:
    from azure.identity import ManagedIdentityCredential, get_bearer_token_provider

    calls: list[int] = []
    inner = get_bearer_token_provider(ManagedIdentityCredential(), SCOPE)

    def provider() -> str:
        calls.append(1)
        return inner()

    with _client(accepting.origin, azure_ad_token_provider=provider) as client:
        fo = client.upload(make_jsonl(), purpose="fine-tune")
        plan = client.describe_upload(make_jsonl(), purpose="fine-tune")
    assert plan["credentials"] == "Entra ID (token provider, Client setting azure_ad_token_provider)"
    assert accepting.files[fo.id].purpose == "fine-tune"
    assert set(_auth_headers(accepting)) == {(f"Bearer {identity.token}", None)}
    assert len(calls) >= 2  # asked when resolving and for each request: the provider does the caching
    assert len(identity.requests) == 1


def test_every_part_of_a_large_upload_carries_a_token(
    accepting: OpenAILikeServer, identity: ManagedIdentityEndpoint, make_jsonl: Any
) -> None:
    src = make_jsonl("big.jsonl", min_bytes=3 * MiB + 1)
    with _client(accepting.origin, use_default_credential=True) as client:
        fo = client.upload(src, purpose="fine-tune", multipart_threshold=MiB, part_size=MiB)
    assert accepting.files[fo.id].via == "uploads"
    routes = [r.route for r in accepting.requests]
    assert routes.count("uploads.parts") == 4 and routes[-1] == "uploads.complete"
    assert set(_auth_headers(accepting)) == {(f"Bearer {identity.token}", None)}
    assert len(identity.requests) == 1


def test_an_api_key_from_the_environment_wins_over_default_credential(
    accepting: OpenAILikeServer,
    identity: ManagedIdentityEndpoint,
    monkeypatch: pytest.MonkeyPatch,
    make_batch_jsonl: Any,
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", accepting.api_key)
    with _client(accepting.origin, use_default_credential=True) as client:
        assert client.describe_upload(make_batch_jsonl(), purpose="batch")["credentials"] == "env AZURE_OPENAI_API_KEY"
        client.upload(make_batch_jsonl(), purpose="batch")
    assert _auth_headers(accepting) == [(None, accepting.api_key)]
    assert identity.requests == []  # Entra ID was never asked


def test_a_credential_argument_wins_over_a_key_in_the_environment(
    accepting: OpenAILikeServer,
    identity: ManagedIdentityEndpoint,
    monkeypatch: pytest.MonkeyPatch,
    make_batch_jsonl: Any,
) -> None:
    from azure.identity import ManagedIdentityCredential

    monkeypatch.setenv("AZURE_API_KEY", "a-key-that-must-not-be-used")
    with _client(accepting.origin) as client:
        client.upload(make_batch_jsonl(), purpose="batch", credential=ManagedIdentityCredential())
    assert _auth_headers(accepting) == [(f"Bearer {identity.token}", None)]


def test_two_ways_to_authenticate_at_the_same_level_are_refused(accepting: OpenAILikeServer) -> None:
    from azure.identity import ManagedIdentityCredential

    with pytest.raises(InvalidSetting) as info, _client(accepting.origin) as client:
        client.retrieve("file-x", api_key="k" * 10, credential=ManagedIdentityCredential())
    assert "api_key (from argument api_key)" in str(info.value)
    assert "credential (from argument credential)" in str(info.value)
    assert "k" * 10 not in str(info.value)
    assert accepting.requests == []


def test_no_identity_is_a_clear_missing_credentials_error_before_any_request(
    azure_server: OpenAILikeServer, make_jsonl: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the autouse fixture points the managed identity at a closed port on 127.0.0.1
    src = make_jsonl()
    client = _client(azure_server.origin, use_default_credential=True)
    with client, pytest.raises(llmfiles.MissingCredentials) as info:
        client.upload(src, purpose="fine-tune")
    message = str(info.value)
    for place in (
        "AZURE_OPENAI_API_KEY",
        "AZURE_API_KEY",
        "credential=",
        "azure_ad_token_provider=",
        "DefaultAzureCredential",
    ):
        assert place in message
    assert "could not get a token for https://cognitiveservices.azure.com/.default" in message
    assert azure_server.requests == []


def test_a_refused_identity_header_is_reported(
    azure_server: OpenAILikeServer, identity: ManagedIdentityEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azure.identity import ManagedIdentityCredential

    monkeypatch.setenv("IDENTITY_HEADER", "wrong-header")
    client = _client(azure_server.origin, credential=ManagedIdentityCredential())
    with client, pytest.raises(llmfiles.MissingCredentials) as info:
        client.retrieve("file-x")
    assert "Entra ID (ManagedIdentityCredential, Client setting credential)" in str(info.value)
    assert identity.requests and all(r.status == 401 for r in identity.requests)
    assert azure_server.requests == []


class _AsyncCredential:
    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:  # pragma: no cover - never awaited
        raise AssertionError


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"credential": _AsyncCredential()}, "async credential"),
        ({"credential": object()}, "not a token credential"),
        ({"azure_ad_token_provider": "a-string"}, "must be a callable"),
    ],
)
def test_unusable_credentials_are_configuration_errors(
    azure_server: OpenAILikeServer, settings: dict[str, Any], expected: str
) -> None:
    with _client(azure_server.origin, **settings) as client, pytest.raises(InvalidSetting) as info:
        client.retrieve("file-x")
    assert expected in str(info.value)
    assert azure_server.requests == []


@pytest.mark.parametrize(
    ("provider", "expected"),
    [(lambda: "", "not a token string"), (lambda: None, "not a token string")],
)
def test_a_token_provider_that_returns_no_token(
    azure_server: OpenAILikeServer, provider: Callable[[], Any], expected: str
) -> None:
    client = _client(azure_server.origin, azure_ad_token_provider=provider)
    with client, pytest.raises(llmfiles.AuthenticationError) as info:
        client.retrieve("file-x")
    assert expected in str(info.value)
    assert azure_server.requests == []


def test_a_rejected_token_names_its_source(azure_server: OpenAILikeServer) -> None:
    """The server does not accept this token: 401 becomes AuthenticationError saying where the token came from."""
    client = _client(azure_server.origin, azure_ad_token_provider=lambda: "not-accepted-token")
    with client, pytest.raises(llmfiles.AuthenticationError) as info:
        client.retrieve("file-x", max_retries=0)
    assert info.value.status == 401
    assert "Entra ID (token provider, argument azure_ad_token_provider)" not in str(info.value)
    assert "Entra ID (token provider, Client setting azure_ad_token_provider)" in str(info.value)
    assert "not-accepted-token" not in str(info.value)


@pytest.fixture
def clean_process_env() -> Iterator[dict[str, str]]:
    import os

    yield {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "IDENTITY_"))}


def test_azure_identity_is_imported_only_for_entra_id(
    clean_process_env: dict[str, str], tmp_path: Path, make_jsonl: Any
) -> None:
    """An api-key run never imports azure.identity (import cost, and no credential probing)."""
    src = make_jsonl()
    code = (
        "import sys, llmfiles\n"
        "c = llmfiles.Client('azure', api_key='k' * 12, api_base='https://example.openai.azure.com')\n"
        f"c.describe_upload({str(src)!r}, purpose='fine-tune')\n"
        "assert 'llmfiles_azure.plugin' in sys.modules\n"
        "print('azure.identity' in sys.modules, 'azure.core' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=clean_process_env, timeout=120
    )
    assert out.stdout.split() == ["False", "False"]
