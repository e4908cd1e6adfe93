"""google-auth's requests go through llmfiles' transport: the token endpoint is reached by the core (a spy on the
transport sees it; google-auth's own transports are never used), with the caller's TLS settings (a token endpoint
behind a private CA works with ``verify=<its CA>`` and is refused without), and the metadata server of Google Cloud
is asked the way google-auth asks it (its quick probe sent once within google-auth's own timeout), its token used."""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from test_auth import EMAIL, bearer
from vertex_testlib import BUCKET, chat_file

import llmfiles
from llmfiles.calls import CallHttp
from llmfiles.errors import AuthenticationError, DeadlineExceeded
from llmfiles.transport import Policy, Transport
from llmfiles_vertex import google_transport
from servers.fault_proxy import FaultProxy
from servers.google_token import GoogleTokenServer, new_key, write_service_account_key

SCOPE = "https://www.googleapis.com/auth/cloud-platform"


@pytest.fixture
def base(proxy: FaultProxy, prefix: str) -> dict[str, Any]:
    return {"api_base": proxy.url, "bucket": BUCKET, "prefix": prefix, "max_retry_wait": 0.01}


@pytest.fixture
def no_google_transports(monkeypatch: pytest.MonkeyPatch) -> None:
    """google-auth's own transports fail the test if anything uses them."""
    import google.auth.transport.requests
    import google.auth.transport.urllib3

    def refuse(self: Any, *args: Any, **kw: Any) -> Any:
        raise AssertionError("google-auth used a transport of its own")

    monkeypatch.setattr(google.auth.transport.requests.Request, "__call__", refuse)
    monkeypatch.setattr(google.auth.transport.urllib3.Request, "__call__", refuse)


@pytest.fixture
def sent_by_the_core(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs llmfiles' transport sent requests to."""
    urls: list[str] = []
    real = Transport.send

    def send(self: Transport, request: Any, *args: Any, **kw: Any) -> Any:
        urls.append(request.url)
        return real(self, request, *args, **kw)

    monkeypatch.setattr(Transport, "send", send)
    return urls


def test_the_token_request_goes_through_the_cores_transport(
    base: dict[str, Any],
    tmp_path: Path,
    proxy: FaultProxy,
    sent_by_the_core: list[str],
    no_google_transports: None,
) -> None:
    key = new_key()
    with GoogleTokenServer(key.public_key(), EMAIL) as server:
        write_service_account_key(tmp_path / "sa.json", key, token_uri=server.token_uri, email=EMAIL)
        with llmfiles.Client("vertex_ai", credentials_file=str(tmp_path / "sa.json"), **base) as client:
            client.upload(chat_file(tmp_path / "train.jsonl"), purpose="fine-tune")
    [token] = server.issued
    assert sent_by_the_core[0] == server.token_uri  # first the token, then the upload: all sent by the core
    assert sent_by_the_core.count(server.token_uri) == 1
    assert bearer(proxy) == {f"Bearer {token}"}


# --- TLS: the caller's CA bundle --------------------------------------------------------------------------------


def _certificate(subject: str, key: Any, issuer: x509.Name | None, signer: Any, *, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A CA of our own and a certificate it signed for 127.0.0.1: (CA bundle, server cert, server key)."""
    folder = tmp_path_factory.mktemp("ca")
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_cert = _certificate("llmfiles test CA", ca_key, None, ca_key, ca=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _certificate("127.0.0.1", key, ca_cert.subject, ca_key, ca=False)
    (folder / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


@pytest.fixture
def tls_token_server(private_ca: tuple[Path, Path, Path], tmp_path: Path) -> Iterator[tuple[GoogleTokenServer, Path]]:
    """Our token endpoint behind TLS with a certificate of the private CA; and a key file pointing at it."""
    _, cert, key_pem = private_ca
    key = new_key()
    server = GoogleTokenServer(key.public_key(), EMAIL)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key_pem)
    server._httpd.socket = context.wrap_socket(server._httpd.socket, server_side=True)
    token_uri = server.token_uri.replace("http://", "https://")
    write_service_account_key(tmp_path / "sa.json", key, token_uri=token_uri, email=EMAIL)
    with server:
        yield server, tmp_path / "sa.json"


def test_the_token_endpoint_is_reached_with_the_callers_ca_bundle(
    base: dict[str, Any],
    tmp_path: Path,
    proxy: FaultProxy,
    private_ca: tuple[Path, Path, Path],
    tls_token_server: tuple[GoogleTokenServer, Path],
    no_google_transports: None,
) -> None:
    server, key_file = tls_token_server
    ca_bundle, _, _ = private_ca
    src = chat_file(tmp_path / "train.jsonl")
    # without the CA the certificate is refused, as for every request llmfiles sends
    with (
        llmfiles.Client("vertex_ai", credentials_file=str(key_file), max_retries=0, **base) as client,
        pytest.raises(AuthenticationError, match="TLS") as info,
    ):
        client.upload(src, purpose="fine-tune")
    assert "verify=" in str(info.value) and server.issued == [] and proxy.requests == []
    # with verify=<the CA bundle> (LLMFILES_CA_BUNDLE) google-auth's token request gets through
    with llmfiles.Client("vertex_ai", credentials_file=str(key_file), verify=str(ca_bundle), **base) as client:
        client.upload(src, purpose="fine-tune")
    assert bearer(proxy) == {f"Bearer {server.issued[0]}"}


def test_the_calls_deadline_ends_a_token_request(
    base: dict[str, Any], tmp_path: Path, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = new_key()
    release = threading.Event()
    with GoogleTokenServer(key.public_key(), EMAIL) as server:
        grant = server.grant
        monkeypatch.setattr(server, "grant", lambda path, form: release.wait(30) and grant(path, form))
        write_service_account_key(tmp_path / "sa.json", key, token_uri=server.token_uri, email=EMAIL)
        try:
            with (
                llmfiles.Client("vertex_ai", credentials_file=str(tmp_path / "sa.json"), deadline=1, **base) as c,
                pytest.raises(DeadlineExceeded),
            ):
                c.upload(chat_file(tmp_path / "train.jsonl"), purpose="fine-tune")
        finally:
            release.set()
    assert proxy.requests == []


# --- the metadata server (Application Default Credentials on Google Cloud) -------------------------------------


class MetadataServer:
    """A Compute Engine metadata server on 127.0.0.1: the probe, the project, the default service account and its
    token, for requests that carry ``Metadata-Flavor: Google``."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.issued: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append((self.path, self.headers.get("Host", "")))
                status, body, kind = owner.answer(self.path, self.headers.get("Metadata-Flavor"))
                self.send_response(status)
                self.send_header("Metadata-Flavor", "Google")
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def answer(self, path: str, flavor: str | None) -> tuple[int, bytes, str]:
        if flavor != "Google":
            return 403, b"Missing Metadata-Flavor:Google header.", "text/plain"
        route = path.split("?", 1)[0].removeprefix("/computeMetadata/v1/")
        if route in ("", "/"):
            return 200, b"", "text/plain"
        if route == "project/project-id":
            return 200, b"meta-project", "text/plain"
        if route == "universe/universe-domain":
            return 200, b"googleapis.com", "text/plain"
        if route.startswith("instance/service-accounts/") and route.endswith("/token"):
            token = f"ya29.metadata-token-{len(self.issued)}"
            self.issued.append(token)
            body = {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}
            return 200, json.dumps(body).encode(), "application/json"
        if route.startswith("instance/service-accounts/"):
            info = {"email": "vm@meta-project.iam.gserviceaccount.com", "scopes": [SCOPE], "aliases": ["default"]}
            return 200, json.dumps(info).encode(), "application/json"
        return 404, b"not here", "text/plain"

    def __enter__(self) -> MetadataServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def metadata_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[MetadataServer]:
    """The machine's metadata server, where google-auth looks for it (its host is read when it is imported)."""
    from google.auth.compute_engine import _metadata

    with MetadataServer() as server:
        monkeypatch.setattr(_metadata, "_NO_GCE_CHECK", False)
        monkeypatch.setattr(_metadata, "_GCE_METADATA_HOST", server.host)
        monkeypatch.setenv("GCE_METADATA_IP", server.host)
        yield server


def test_application_default_credentials_from_the_metadata_server(
    base: dict[str, Any], tmp_path: Path, proxy: FaultProxy, metadata_server: MetadataServer, no_google_transports: None
) -> None:
    with llmfiles.Client("vertex_ai", **base) as client:
        fo = client.upload(chat_file(tmp_path / "train.jsonl"), purpose="fine-tune")
        client.upload(chat_file(tmp_path / "train.jsonl"), purpose="fine-tune")
    [token] = metadata_server.issued  # one token for both uploads: google-auth keeps it until it expires
    assert bearer(proxy) == {f"Bearer {token}"}
    assert fo.raw["metadata"]["llmfiles-vertex-project"] == "meta-project"
    paths = [p for p, _ in metadata_server.requests]
    assert paths[0] == "/" and any(p.endswith("/token") or "/token?" in p for p in paths)


def test_the_metadata_probe_is_sent_once_within_google_auths_timeout() -> None:
    """google-auth probes the metadata server with a timeout of its own and retries the probe itself: the adapter
    sends each probe once (the call's retries would multiply google-auth's), within that timeout."""

    import google.auth.exceptions

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        transport = Transport()
        http = CallHttp(transport, Policy(provider="vertex_ai", timeout=600, max_retries=5, max_retry_wait=0.01))
        request = google_transport.CoreRequest(http)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        with pytest.raises(google.auth.exceptions.TransportError, match=r"0\.2s"):
            request(url=url, method="GET", headers={"Metadata-Flavor": "Google"}, timeout=0.2)
        accepted = 0
        silent.settimeout(0.5)
        while True:
            try:
                conn, _ = silent.accept()
            except TimeoutError:
                break
            conn.close()
            accepted += 1
        assert accepted == 1
        transport.close()
    finally:
        silent.close()


def test_the_metadata_host_name_is_asked_at_its_link_local_address() -> None:
    url, headers = google_transport._metadata_address("http://metadata.google.internal/computeMetadata/v1/x?a=1")
    assert url == "http://169.254.169.254/computeMetadata/v1/x?a=1"
    assert headers == {"Host": "metadata.google.internal"}
    for other in ("https://oauth2.googleapis.com/token", "http://127.0.0.1:8080/computeMetadata/v1/"):
        assert google_transport._metadata_address(other) == (other, {})
