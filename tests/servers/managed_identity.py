"""A managed-identity token endpoint on 127.0.0.1, the way Azure App Service serves one (stdlib only).

azure-identity's real ``ManagedIdentityCredential`` and ``DefaultAzureCredential`` use it when
``IDENTITY_ENDPOINT`` is its :attr:`~ManagedIdentityEndpoint.url` and ``IDENTITY_HEADER`` its
:attr:`~ManagedIdentityEndpoint.secret` (see :meth:`~ManagedIdentityEndpoint.environment`): they send
``GET ?api-version=2019-08-01&resource=<scope without /.default>`` with the header ``X-IDENTITY-HEADER`` and accept
``{"access_token", "expires_on", "resource", "token_type"}``.  Every request is kept in
:attr:`~ManagedIdentityEndpoint.requests`, so a test can count how often a token was fetched (once, when
azure-identity's cache works).  Keep ``AZURE_CLIENT_SECRET`` and ``AZURE_FEDERATED_TOKEN_FILE`` unset in such
tests, so ``DefaultAzureCredential`` gets to the managed identity.

``tls=(certfile, keyfile)`` serves it over https (for tests of whose CA bundle the token request trusts).

Usage::

    with ManagedIdentityEndpoint(token="entra-token") as identity:
        for name, value in identity.environment().items():
            monkeypatch.setenv(name, value)
        ...
        assert len(identity.requests) == 1
"""

from __future__ import annotations

import http.server
import json
import secrets
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class TokenRequest:
    """One request the endpoint answered: its query, its ``X-IDENTITY-HEADER`` and the status it got."""

    query: dict[str, str]
    identity_header: str | None
    status: int


class ManagedIdentityEndpoint:
    """Issues ``token`` (valid for ``lifetime`` seconds) to callers that present the right identity header."""

    def __init__(self, *, token: str | None = None, lifetime: int = 3600, tls: tuple[str, str] | None = None) -> None:
        self.token = token or "entra-" + secrets.token_urlsafe(24)
        self.secret = "identity-header-" + secrets.token_hex(8)
        self.lifetime = lifetime
        #: ``(certificate file, key file)``: serve https with them (a client must trust the certificate)
        self.tls = tls
        self.requests: list[TokenRequest] = []
        self._lock = threading.Lock()
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "the endpoint is not running"
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._httpd.server_address[1]}/msi/token"

    def environment(self) -> dict[str, str]:
        """The variables that point azure-identity's managed identity at this endpoint."""
        return {"IDENTITY_ENDPOINT": self.url, "IDENTITY_HEADER": self.secret}

    def start(self) -> ManagedIdentityEndpoint:
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                split = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(split.query).items()}
                header = self.headers.get("X-IDENTITY-HEADER")
                status, body = endpoint._answer(split.path, query, header)
                with endpoint._lock:
                    endpoint.requests.append(TokenRequest(query=query, identity_header=header, status=status))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="managed-identity", daemon=True
        )
        self._thread.start()
        return self

    def _answer(self, path: str, query: dict[str, str], header: str | None) -> tuple[int, dict[str, Any]]:
        if path != "/msi/token":
            return 404, {"error": "not_found", "error_description": f"no such path {path}"}
        if header != self.secret:
            return 401, {"error": "unauthorized", "error_description": "X-IDENTITY-HEADER is missing or wrong"}
        resource = query.get("resource")
        if query.get("api-version") != "2019-08-01" or not resource:
            return 400, {"error": "invalid_request", "error_description": "api-version and resource are required"}
        return 200, {
            "access_token": self.token,
            "expires_on": str(int(time.time()) + self.lifetime),
            "resource": resource,
            "token_type": "Bearer",
        }

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> ManagedIdentityEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
