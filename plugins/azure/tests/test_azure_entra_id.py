"""Entra ID through azure-identity's real code: ``DefaultAzureCredential`` and ``ManagedIdentityCredential`` get
their tokens from our managed-identity endpoint on 127.0.0.1 (``IDENTITY_ENDPOINT`` / ``IDENTITY_HEADER``), and
the bearer token must reach Prism (Azure's contract) and the stateful server on every request (parts, complete and
the probe of a lost answer included).  Token caching is azure-identity's: the endpoint must be asked once however
many calls follow.  The ``DefaultAzureCredential`` llmfiles makes sends its token requests through the core's
transport (the caller's TLS and timeout settings), never through azure-core's own.
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
from llmfiles.plugins import PluginManager
from llmfiles_azure import plugin as azure_plugin
from servers.fault_proxy import DropResponse, FaultProxy
from servers.managed_identity import ManagedIdentityEndpoint
from servers.openai_like import OpenAILikeServer
from servers.recording import Recorder

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
    assert plan["credentials"] == "Entra ID (DefaultAzureCredential); no token asked for in a dry run"
    assert accepting.requests == []  # a dry run sends nothing to Azure
    assert identity.requests == []  # nor to the identity endpoint


def test_entra_id_token_passes_azures_contract_in_prism(
    prism_azure: str, identity: ManagedIdentityEndpoint, make_jsonl: Any
) -> None:
    """Prism's copy of the contract accepts ``Authorization: Bearer``; every request carries azure-identity's token."""
    recorder = Recorder(azure_plugin.AzureProvider())
    pm = PluginManager(load_entry_points=False)
    pm.register(recorder, "recorder")
    with llmfiles.Client("azure", plugin_manager=pm, api_base=prism_azure, use_default_credential=True) as client:
        assert client.upload(make_jsonl(), purpose="fine-tune").id
        assert list(client.list_files())
        assert client.retrieve("file-abc123").id
    sent = recorder.requests
    assert [r.headers.get("Authorization") for r in sent] == [f"Bearer {identity.token}"] * 3
    assert all("api-key" not in r.headers for r in sent)
    assert recorder.statuses == [("upload", 201), ("list", 200), ("retrieve", 200)]
    assert len(identity.requests) == 1


def test_a_managed_identity_credential_passed_in(
    accepting: OpenAILikeServer, identity: ManagedIdentityEndpoint, make_batch_jsonl: Any
) -> None:
    from azure.identity import ManagedIdentityCredential

    credential = ManagedIdentityCredential()
    with _client(accepting.origin, credential=credential) as client:
        plan = client.describe_upload(make_batch_jsonl(), purpose="batch")
        assert plan["credentials"] == (
            "Entra ID (ManagedIdentityCredential, Client setting credential); no token asked for in a dry run"
        )
        assert identity.requests == [] and plan["ok"]
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
    assert plan["credentials"] == (
        "Entra ID (token provider, Client setting azure_ad_token_provider); no token asked for in a dry run"
    )
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


# --- token requests through the core's transport ----------------------------------------------------------------


def test_default_credential_token_requests_go_through_the_core_transport(
    accepting: OpenAILikeServer,
    identity: ManagedIdentityEndpoint,
    make_jsonl: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """azure-core's own transports are never used: each token request is one the core's transport sent."""
    from azure.core.pipeline.transport import RequestsTransport

    from llmfiles.transport import Transport

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("azure-core's RequestsTransport was used")

    monkeypatch.setattr(RequestsTransport, "send", forbidden)
    monkeypatch.setattr(RequestsTransport, "open", forbidden)
    urls: list[str] = []
    real_send = Transport.send

    def spy(self: Transport, request: Any, policy: Any, **kwargs: Any) -> Any:
        urls.append(request.url)
        return real_send(self, request, policy, **kwargs)

    monkeypatch.setattr(Transport, "send", spy)
    with _client(accepting.origin, use_default_credential=True) as client:
        fo = client.upload(make_jsonl(), purpose="fine-tune")
    assert fo.id in accepting.files
    token_requests = [u for u in urls if u.startswith(identity.url)]
    assert len(token_requests) == len(identity.requests) == 1
    assert identity.requests[0].query["resource"] == "https://cognitiveservices.azure.com"


def _self_signed(tmp_path: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 that no system trusts, and its key (files)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "llmfiles test identity")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "identity.pem", tmp_path / "identity.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_file), str(key_file)


def test_the_callers_ca_bundle_is_what_token_requests_trust(
    azure_server: OpenAILikeServer, make_jsonl: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An identity endpoint behind a certificate only the caller's CA bundle (verify=) trusts: the token comes
    through with verify=<that bundle>, and without it the certificate is refused (azure-core's own transport would
    trust the system's bundle, never llmfiles' setting)."""
    cert, key = _self_signed(tmp_path)
    with ManagedIdentityEndpoint(tls=(cert, key)) as endpoint:
        for name, value in endpoint.environment().items():
            monkeypatch.setenv(name, value)
        azure_server.bearer_tokens.add(endpoint.token)
        src = make_jsonl()
        with _client(azure_server.origin, use_default_credential=True) as client:
            with pytest.raises(llmfiles.MissingCredentials) as info:
                client.upload(src, purpose="fine-tune")
            assert "certificate" in str(info.value).lower() and endpoint.requests == []
            # the same (cached) DefaultAzureCredential: each call's own settings decide what its token requests trust
            fo = client.upload(src, purpose="fine-tune", verify=cert)
        assert len(endpoint.requests) == 1 and fo.id in azure_server.files
    (create,) = azure_server.requests_to("files.create")
    assert create.headers["authorization"] == f"Bearer {endpoint.token}"


# --- every request signed, the probe of a lost answer too ------------------------------------------------------


def test_the_probe_of_a_lost_answer_carries_a_token_and_finds_a_file_it_cannot_tell_apart(
    accepting: OpenAILikeServer, identity: ManagedIdentityEndpoint, make_jsonl: Any
) -> None:
    """Azure reports no checksum, so a file of the same name and size made since the upload started may be someone
    else's: MaybeUploaded, nothing sent again.  The lookup is signed like every other request."""
    with FaultProxy("127.0.0.1", accepting.port) as proxy:
        proxy.add_rule(lambda r: r.method == "POST" and r.path == "/openai/files", DropResponse())
        client = _client(proxy.url, use_default_credential=True, max_retry_wait=0.01)
        with client, pytest.raises(llmfiles.MaybeUploaded) as info:
            client.upload(make_jsonl("lost.jsonl"), purpose="fine-tune")
        seen = [(r.method, r.path, r.header("authorization")) for r in proxy.requests]
    (made,) = accepting.files.values()
    assert info.value.candidates == (made.id,)
    assert seen == [
        ("POST", "/openai/files", f"Bearer {identity.token}"),
        ("GET", "/openai/files", f"Bearer {identity.token}"),
    ]
    (probe,) = accepting.requests_to("files.list")
    assert probe.query == {"api-version": ["2024-10-21"], "purpose": ["fine-tune"]}  # the classic API: no paging


def test_every_request_is_signed_as_it_is_built_with_a_fresh_token(make_jsonl: Any) -> None:
    """start, each part, complete, the probe of complete and of a single upload, abort, and every other operation:
    the token provider is asked once per request built (azure-identity answers from its cache until it refreshes)."""
    from llmfiles.models import (
        Credentials,
        Delete,
        Download,
        ListFiles,
        Part,
        Retrieve,
        Settings,
        Upload,
        UploadFacts,
        UploadParts,
    )
    from llmfiles_azure import auth

    issued: list[str] = []

    def token() -> str:
        issued.append(f"token-{len(issued)}")
        return issued[-1]

    entra = auth.EntraToken(get=token, mode="token provider", scope=SCOPE, source="Entra ID (test)")
    credentials = Credentials(kind="entra_id", source=entra.source, extra=entra)
    settings = Settings(provider="azure", values={"api_base": "https://example.openai.azure.com"})
    provider = azure_plugin.AzureProvider()
    facts = UploadFacts(purpose="fine-tune", filename="t.jsonl", size=5 * MiB, head=b"{}")

    built = []
    upload = provider.exchange(Upload(file=facts), credentials, settings)
    built += [upload.request, upload.probe.request]
    protocol = provider.exchange(UploadParts(file=facts), credentials, settings)
    state = {"upload_id": "upload-1"}
    complete = protocol.complete(state, [{"part_id": "p1"}], {})
    built += [protocol.start().request, protocol.part(state, Part(index=0, offset=0, length=MiB)).request]
    built += [complete.request, complete.probe.request, protocol.abort(state).request]
    for op in (Retrieve(file_id="f"), Delete(file_id="f"), Download(file_id="f"), ListFiles()):
        built.append(provider.exchange(op, credentials, settings).request)
    sent = [r.headers.get("Authorization") for r in built]
    assert sorted(sent) == sorted(f"Bearer {t}" for t in issued)  # one fresh token each
    assert len(issued) == len(built) == 11 and all("api-key" not in r.headers for r in built)


# --- the transport adapter on its own --------------------------------------------------------------------------


class FakeHttp:
    """The core's ``Http``, answering from a script and keeping what it was asked."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls: list[tuple[Any, dict[str, Any]]] = []

    def send(self, request: Any, **kwargs: Any) -> Any:
        self.calls.append((request, kwargs))
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def test_the_adapter_sends_each_attempt_once_with_the_librarys_timeouts_tightening_the_calls() -> None:
    from azure.core.rest import HttpRequest as AzureRequest

    from llmfiles.models import HttpResponse
    from llmfiles_azure.identity import CoreTransport, using

    body = b'{"access_token": "t", "expires_in": 3600}'
    http = FakeHttp(HttpResponse(status=200, headers={"content-type": "application/json; charset=utf-8"}, body=body))
    request = AzureRequest(
        "POST", "https://login.example/token", data={"grant_type": "client_credentials", "scope": SCOPE}
    )
    with using(http):
        response = CoreTransport().send(request, connection_timeout=1, read_timeout=30, stream=False)
    ((sent, kwargs),) = http.calls
    assert kwargs == {"timeout": 30.0, "connect_timeout": 1.0, "retries": False}
    assert sent.method == "POST" and sent.url == "https://login.example/token"
    assert sent.body == b"grant_type=client_credentials&scope=https%3A%2F%2Fcognitiveservices.azure.com%2F.default"
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"access_token": "t", "expires_in": 3600} and response.encoding == "utf-8"
    assert response.read() == body and list(response.iter_bytes()) == [body] and response.reason == "OK"
    response.raise_for_status()


def test_the_adapter_turns_the_cores_network_errors_into_azure_cores() -> None:
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
    from azure.core.rest import HttpRequest as AzureRequest

    from llmfiles.errors import InsecureTransport, NetworkError, StallTimeout
    from llmfiles.models import HttpResponse
    from llmfiles_azure.identity import CoreTransport, using

    request = AzureRequest("GET", "http://127.0.0.1:1/msi/token")
    with pytest.raises(ServiceRequestError, match="outside an llmfiles call"):
        CoreTransport().send(request)
    for error, azure_error in (
        (NetworkError("cannot connect"), ServiceRequestError),
        (StallTimeout("no answer for 600 s"), ServiceResponseError),
    ):
        with using(FakeHttp(error)), pytest.raises(azure_error) as info:
            CoreTransport().send(request)
        assert info.value.inner_exception is error
    with using(FakeHttp(InsecureTransport("refusing plain http://"))), pytest.raises(InsecureTransport):
        CoreTransport().send(request)  # not a network failure to retry: the caller's settings forbid it
    with using(FakeHttp(HttpResponse(status=401, body=b'{"error": "unauthorized"}'))):
        response = CoreTransport().send(request)
    with pytest.raises(HttpResponseError):
        response.raise_for_status()


# --- quiet, short errors ----------------------------------------------------------------------------------------


def test_no_identity_prints_no_azure_logs_and_a_short_error(
    azure_server: OpenAILikeServer, make_jsonl: Any, clean_process_env: dict[str, str]
) -> None:
    """A program that configured no logging: azure-identity's report of every credential it tried is not printed;
    the error's first line says what failed and what to do, the places looked at follow, one a line."""
    from servers.prism import free_port

    src = make_jsonl()
    env = {
        **clean_process_env,
        "IDENTITY_ENDPOINT": f"http://127.0.0.1:{free_port()}/msi/token",
        "IDENTITY_HEADER": "no-identity-in-tests",
        "LLMFILES_AZURE_DEFAULT_CREDENTIAL": "1",
    }
    code = (
        "import llmfiles\n"
        f"c = llmfiles.Client('azure', api_base={azure_server.origin!r})\n"
        "try:\n"
        f"    c.upload({str(src)!r}, purpose='fine-tune')\n"
        "except llmfiles.MissingCredentials as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # no log record reached the terminal
    lines = out.stdout.splitlines()
    assert lines[0].startswith("Entra ID (DefaultAzureCredential) could not get a token for " + SCOPE)
    assert "Set AZURE_OPENAI_API_KEY" in lines[0] and lines[1] == "looked at:"
    assert "  env AZURE_OPENAI_API_KEY" in lines and "  DefaultAzureCredential, which tried:" in lines
    assert any(line.startswith("    ManagedIdentityCredential: ") for line in lines)
    assert all(len(line) <= 200 for line in lines) and len(lines) < 30, out.stdout
    assert "troubleshoot" not in out.stdout  # azure-identity's long report is not copied in
    assert azure_server.requests == []
