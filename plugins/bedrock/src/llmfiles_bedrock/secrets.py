"""AWS Secrets Manager as the last link of llmfiles' settings chain (the ``llmfiles_get_secret`` hook).

With ``LLMFILES_AWS_SECRETS_PREFIX`` set (for example ``llmfiles/``), a secret setting that no argument, ``Client``
setting or environment variable supplied is looked up as the secret ``{prefix}{NAME}`` (``llmfiles/OPENAI_API_KEY``)
with ``GetSecretValue``: the JSON protocol, signed with SigV4 by botocore, sent through the ``http`` the hook is
given (the core's transport with the caller's TLS, CA bundle, timeout, retry and ``allow_insecure_http`` settings).

The hook has no provider settings (it runs while they are being resolved), so everything else comes from the process
environment and botocore's credential chain: region ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` / the profile,
endpoint ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` / ``AWS_ENDPOINT_URL``.  Values are cached in memory only, for
``LLMFILES_AWS_SECRETS_TTL`` seconds (default 300; 0 turns the cache off); nothing is written to disk.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
import time
from typing import Any

from llmfiles.errors import AuthenticationError, ConfigurationError, LLMFilesError, ProviderError
from llmfiles.models import HttpRequest
from llmfiles.provider import Http
from llmfiles_bedrock import aws

PREFIX_ENV = "LLMFILES_AWS_SECRETS_PREFIX"
TTL_ENV = "LLMFILES_AWS_SECRETS_TTL"
SERVICE = "secretsmanager"
PROVIDER = "aws-secretsmanager"
DEFAULT_TTL = 300.0

_cache: dict[tuple[str, str, str], tuple[float, str | None]] = {}
_lock = threading.Lock()


def _ttl() -> float:
    raw = os.environ.get(TTL_ENV, "").strip()
    if not raw:
        return DEFAULT_TTL
    try:
        return max(0.0, float(raw))
    except ValueError:
        raise ConfigurationError(f"env {TTL_ENV}: {raw!r} is not a number of seconds") from None


def clear_cache() -> None:
    """Forget every cached secret value."""
    with _lock:
        _cache.clear()


def endpoint(region: str) -> str:
    """Secrets Manager's URL: ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` / ``AWS_ENDPOINT_URL``, else AWS's for the
    region."""
    for var in ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL"):
        value = os.environ.get(var, "").strip()
        if value:
            return value.rstrip("/")
    return f"https://secretsmanager.{region}.{aws.dns_suffix(region)}"


def get_secret(name: str, http: Http) -> str | None:
    """The value of the secret ``{prefix}{name}``, or ``None`` when no prefix is set or the secret does not exist;
    asked through ``http``."""
    prefix = os.environ.get(PREFIX_ENV, "").strip()
    if not prefix:
        return None
    secret_id = prefix + name
    region, where = aws.env_region()
    if region is None:
        region = aws.profile_region(None)
        where = "the profile's region"
    if not region:
        raise ConfigurationError(
            f"{PREFIX_ENV} is set, but no AWS region was found for Secrets Manager: set AWS_REGION "
            "(or AWS_DEFAULT_REGION, or 'region' in the profile of ~/.aws/config)"
        )
    region = aws.check_region(region, where)
    url = endpoint(region) + "/"
    key = (url, region, secret_id)
    ttl = _ttl()
    now = time.monotonic()
    if ttl > 0:
        with _lock:
            hit = _cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
    value = _fetch(http, url, region, secret_id, name)
    if ttl > 0:
        with _lock:
            _cache[key] = (now + ttl, value)
    return value


def _fetch(http: Http, url: str, region: str, secret_id: str, name: str) -> str | None:
    identity = aws.default_identity(None, provider=PROVIDER, looked_first=(f"(asked because {PREFIX_ENV} is set)",))
    body = json.dumps({"SecretId": secret_id}).encode()
    headers = aws.sign(
        identity,
        service=SERVICE,
        region=region,
        method="POST",
        url=url,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "secretsmanager.GetSecretValue"},
        body=body,
    )
    # GetSecretValue changes nothing: it may be sent again after a failure
    response = http.send(HttpRequest(method="POST", url=url, headers=headers, body=body, idempotent=True))
    data: Any
    try:
        data = response.json()
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    if response.status >= 400:
        kind = str(data.get("__type") or response.header("x-amzn-errortype") or "").rsplit("#", 1)[-1].split(":")[0]
        message = str(data.get("message") or data.get("Message") or response.body[:200].decode("utf-8", "replace"))
        if kind == "ResourceNotFoundException":
            return None
        cls = (
            AuthenticationError
            if response.status in (401, 403) or "Denied" in kind or "Signature" in kind
            else ProviderError
        )
        raise cls(
            f"GetSecretValue for {secret_id!r} failed: {message} (credentials from {identity.source})",
            provider=PROVIDER,
            status=response.status,
            code=kind or None,
            request_id=response.header("x-amzn-requestid"),
        )
    return _value(data, secret_id, name)


def _value(data: dict[str, Any], secret_id: str, name: str) -> str | None:
    text = data.get("SecretString")
    if text is None and data.get("SecretBinary") is not None:
        try:
            text = base64.b64decode(str(data["SecretBinary"])).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise LLMFilesError(f"secret {secret_id!r} is binary, not UTF-8 text") from None
    if not isinstance(text, str):
        return None
    # a key/value secret made in the console holds JSON: {"OPENAI_API_KEY": "sk-..."}
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            obj = json.loads(stripped)
        except ValueError:
            return text
        if isinstance(obj, dict):
            value = obj.get(name)
            if isinstance(value, str):
                return value
            if len(obj) == 1:
                only = next(iter(obj.values()))
                return only if isinstance(only, str) else None
    return text
