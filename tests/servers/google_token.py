"""A Google OAuth 2 token endpoint on 127.0.0.1 for google-auth's service-account flow, stdlib + cryptography.

google-auth's ``service_account.Credentials.refresh()`` POSTs ``grant_type=urn:ietf:params:oauth:grant-type:
jwt-bearer`` with an RS256-signed JWT ``assertion`` to the key file's ``token_uri``.  This server checks that
assertion as Google does — signature against the service account's public key (so a wrong key is refused),
issuer, audience, scope and lifetime — and answers ``{"access_token", "expires_in", "token_type"}``.  Every token
it issued and every claim set it accepted are recorded.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_service_account_key(
    path: Path, key: rsa.RSAPrivateKey, *, token_uri: str, email: str = "trainer@llmfiles-test.iam.gserviceaccount.com"
) -> dict[str, Any]:
    """Write a service account key file (the JSON Google hands out) for ``key``; return its content."""
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "llmfiles-test",
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": email,
        "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "universe_domain": "googleapis.com",
    }
    path.write_text(json.dumps(info))
    return info


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class GoogleTokenServer:
    """``with GoogleTokenServer(public_key, email) as server: ... server.token_uri ...``"""

    def __init__(self, public_key: rsa.RSAPublicKey, email: str = "trainer@llmfiles-test.iam.gserviceaccount.com"):
        self.public_key = public_key
        self.email = email
        self.issued: list[str] = []
        self.claims: list[dict[str, Any]] = []
        self.refused: list[str] = []
        self.errors: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                try:
                    answer = server.grant(self.path, form)
                    status = 200
                except ValueError as exc:
                    server.refused.append(str(exc))
                    answer = {"error": "invalid_grant", "error_description": str(exc)}
                    status = 400
                except Exception as exc:  # recorded for the test to see
                    server.errors.append(f"{type(exc).__name__}: {exc}")
                    answer, status = {"error": "server_error"}, 500
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.token_uri = f"{self.url}/token"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> GoogleTokenServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def grant(self, path: str, form: dict[str, list[str]]) -> dict[str, Any]:
        """Check one token request; return the token answer or raise ``ValueError`` saying why not."""
        if path != "/token":
            raise ValueError(f"no token endpoint at {path}")
        if form.get("grant_type") != [JWT_BEARER]:
            raise ValueError(f"unsupported grant_type {form.get('grant_type')}")
        assertion = (form.get("assertion") or [""])[0]
        try:
            head_b64, claims_b64, sig_b64 = assertion.split(".")
            header = json.loads(_b64decode(head_b64))
            claims = json.loads(_b64decode(claims_b64))
        except ValueError:
            raise ValueError("the assertion is not a JWT") from None
        if header.get("alg") != "RS256":
            raise ValueError(f"the assertion is signed with {header.get('alg')}, not RS256")
        try:
            self.public_key.verify(
                _b64decode(sig_b64), f"{head_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            raise ValueError("Invalid JWT Signature.") from None
        now = time.time()
        if claims.get("iss") != self.email:
            raise ValueError(f"the assertion's issuer is {claims.get('iss')!r}, not {self.email!r}")
        # google-auth always addresses the assertion to Google's token endpoint, whatever the key's token_uri
        if claims.get("aud") not in (GOOGLE_TOKEN_AUDIENCE, self.token_uri):
            raise ValueError(f"the assertion's audience is {claims.get('aud')!r}")
        if not (claims.get("iat", 0) <= now + 300 and claims.get("exp", 0) >= now - 300):
            raise ValueError("the assertion has expired or is not valid yet")
        scopes = str(claims.get("scope", "")).split()
        if "https://www.googleapis.com/auth/cloud-platform" not in scopes:
            raise ValueError(f"the assertion asks for scopes {scopes}, not cloud-platform")
        token = f"ya29.llmfiles-test-{secrets.token_hex(16)}"
        self.issued.append(token)
        self.claims.append(claims)
        return {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}
