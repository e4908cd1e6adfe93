"""What botocore is the reference for: credentials, the region of a profile, and SigV4 signatures.

botocore is imported here, lazily, on first use: ``import llmfiles`` and ``llmfiles providers`` never load it.
Requests are not sent by botocore: :func:`sign` signs a request llmfiles built (botocore's
:class:`~botocore.auth.S3SigV4Auth` / :class:`~botocore.auth.SigV4Auth` on an
:class:`~botocore.awsrequest.AWSRequest`) and returns its headers; the core's transport sends it.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmfiles.errors import ConfigurationError, InvalidSetting, MissingCredentials

PROVIDER = "bedrock"
_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z0-9]+)+-\d{1,2}$")
_SESSIONS: dict[tuple[str | None, str], Any] = {}
_SESSIONS_LOCK = threading.Lock()
_MAX_SESSIONS = 8
_UNSIGNED_CONFIG: Any = None

#: where botocore's chain reads credentials from (named in errors, in botocore's own order)
CHAIN_PLACES = (
    "env AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN)",
    "env AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN",
    "the profile (env AWS_PROFILE, else 'default') in AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials) and "
    "AWS_CONFIG_FILE (~/.aws/config): keys, role_arn, sso_session / sso_*, credential_process",
    "container credentials (env AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / AWS_CONTAINER_CREDENTIALS_FULL_URI)",
    "EC2 instance metadata (IMDS)",
)


def botocore(module: str) -> Any:
    """``botocore.<module>``, imported on first use (botocore ships no type information: it is typed ``Any``)."""
    _quiet_signer()
    return importlib.import_module(f"botocore.{module}")


#: botocore's signer logs, at DEBUG, the canonical request (with the session token header), the string to sign and
#: the signature itself: those records are dropped, whatever the application's logging configuration
_SIGNING_RECORDS = ("CanonicalRequest", "StringToSign", "Signature", "String to sign")


class _NoSigningSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(_SIGNING_RECORDS))


_QUIET = False


def _quiet_signer() -> None:
    global _QUIET
    if not _QUIET:
        _QUIET = True
        logging.getLogger("botocore.auth").addFilter(_NoSigningSecrets())


@dataclass(frozen=True)
class AwsIdentity:
    """AWS credentials (botocore's object: refreshable ones refresh themselves) and where they came from."""

    credentials: Any = field(repr=False)
    source: str

    def frozen(self) -> Any:
        """A consistent (access key, secret key, token) snapshot, refreshed by botocore when near expiry."""
        getter = getattr(self.credentials, "get_frozen_credentials", None)
        if getter is None:
            return self.credentials
        try:
            return getter()
        except Exception as exc:  # botocore refresh errors (expired SSO token, IMDS down, ...)
            raise ConfigurationError(
                f"the AWS credentials from {self.source} could not be refreshed: {type(exc).__name__}: {exc}"
            ) from None


def _env_fingerprint() -> str:
    """A digest of the AWS_* environment, so a cached botocore session follows changes to it."""
    h = hashlib.sha256()
    for k in sorted(k for k in os.environ if k.startswith("AWS_")):
        h.update(f"{k}={os.environ[k]}\0".encode())
    return h.hexdigest()


def session(profile: str | None) -> Any:
    """A botocore session for ``profile`` (``None``: botocore's default), cached in memory per AWS_* environment."""
    key = (profile, _env_fingerprint())
    with _SESSIONS_LOCK:
        found = _SESSIONS.get(key)
        if found is None:
            found = botocore("session").Session(profile=profile)
            if len(_SESSIONS) >= _MAX_SESSIONS:
                _SESSIONS.pop(next(iter(_SESSIONS)))
            _SESSIONS[key] = found
    return found


def clear_cache() -> None:
    """Forget cached botocore sessions (and the credentials they hold)."""
    with _SESSIONS_LOCK:
        _SESSIONS.clear()


def _profile_label(profile: str | None) -> str:
    name = profile or os.environ.get("AWS_PROFILE") or os.environ.get("AWS_DEFAULT_PROFILE") or "default"
    return f"profile {name!r}"


def default_identity(
    profile: str | None, *, provider: str = PROVIDER, looked_first: tuple[str, ...] = ()
) -> AwsIdentity:
    """Credentials from botocore's default chain (env, web identity, profiles and SSO, container, IMDS)."""
    bx = botocore("exceptions")

    try:
        creds = session(profile).get_credentials()
    except bx.ProfileNotFound:
        raise InvalidSetting(
            f"AWS {_profile_label(profile)} is not in ~/.aws/config or ~/.aws/credentials "
            "(or the files AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE name)"
        ) from None
    except bx.BotoCoreError as exc:  # expired SSO token, failing credential_process, bad role chain ...
        raise ConfigurationError(f"botocore could not load AWS credentials for {provider!r}: {exc}") from None
    if creds is None:
        raise _missing(provider, looked_first)
    where = _where(getattr(creds, "method", None) or "chain", profile)
    return AwsIdentity(credentials=creds, source=f"{where} (botocore credential chain)")


#: the links of botocore's chain that only read the environment and files (named by their ``METHOD``)
_LOCAL_METHODS = frozenset({"env", "shared-credentials-file", "config-file", "ec2-credentials-file", "boto-config"})


def offline_identity(
    profile: str | None, *, provider: str = PROVIDER, looked_first: tuple[str, ...] = ()
) -> AwsIdentity | str:
    """For a dry run, which sends nothing and runs nothing: the credentials the links of botocore's chain that read
    only the environment and files find; else, when a link that would ask a server or run a command could give
    some, what it is (a string, for the dry run to report); else :class:`MissingCredentials`, as
    :func:`default_identity` says it."""
    bx = botocore("exceptions")
    try:
        found = session(profile)
        resolver = found.get_component("credential_provider")
        for link in resolver.providers:
            if getattr(link, "METHOD", None) in _LOCAL_METHODS:
                creds = link.load()
                if creds is not None:
                    return AwsIdentity(
                        credentials=creds, source=_where(link.METHOD, profile) + " (botocore credential chain)"
                    )
        scoped = found.get_scoped_config()
    except bx.ProfileNotFound:
        raise InvalidSetting(
            f"AWS {_profile_label(profile)} is not in ~/.aws/config or ~/.aws/credentials "
            "(or the files AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE name)"
        ) from None
    except bx.BotoCoreError as exc:
        raise ConfigurationError(f"botocore could not read the AWS credentials for {provider!r}: {exc}") from None
    remote = _remote_links(scoped, profile)
    if remote:
        return "botocore credential chain: " + ", ".join(remote) + " (not asked in a dry run, which sends nothing)"
    raise _missing(provider, looked_first)


def _remote_links(scoped: Mapping[str, Any], profile: str | None) -> list[str]:
    """The links of botocore's chain that would ask a server or run a command, given the profile's settings
    (``scoped``) and the environment."""
    env = os.environ
    label = _profile_label(profile)
    out = []
    if env.get("AWS_WEB_IDENTITY_TOKEN_FILE") or scoped.get("web_identity_token_file"):
        out.append("web identity")
    if scoped.get("role_arn"):
        out.append(f"the role of {label}")
    if scoped.get("sso_session") or scoped.get("sso_start_url"):
        out.append(f"SSO of {label}")
    if scoped.get("credential_process"):
        out.append(f"credential_process of {label}")
    if env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") or env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        out.append("container credentials")
    if env.get("AWS_EC2_METADATA_DISABLED", "").strip().lower() != "true":
        out.append("EC2 instance metadata")
    return out


def _missing(provider: str, looked_first: tuple[str, ...]) -> MissingCredentials:
    places = list(looked_first) + [f"botocore's chain: {p}" for p in CHAIN_PLACES]
    if os.environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        places[-1] += " (off: AWS_EC2_METADATA_DISABLED=true)"
    return MissingCredentials(
        provider,
        "AWS credentials",
        places,
        hint="run `aws configure` (or `aws sso login`), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    )


def _where(method: str, profile: str | None) -> str:
    """Where botocore's link ``method`` found credentials, in words."""
    return {
        "env": "env AWS_ACCESS_KEY_ID",
        "shared-credentials-file": f"{_profile_label(profile)} in the shared credentials file",
        "config-file": f"{_profile_label(profile)} in the config file",
        "sso": f"SSO of {_profile_label(profile)}",
        "assume-role": f"the role of {_profile_label(profile)}",
        "assume-role-with-web-identity": "web identity (AWS_WEB_IDENTITY_TOKEN_FILE)",
        "container-role": "container credentials",
        "iam-role": "EC2 instance metadata",
        "custom-process": f"credential_process of {_profile_label(profile)}",
    }.get(method, method)


def explicit_identity(access_key: str, secret_key: str, token: str | None, source: str) -> AwsIdentity:
    """Credentials given as settings."""
    credentials = botocore("credentials").Credentials(access_key, secret_key, token or None)
    return AwsIdentity(credentials=credentials, source=source)


def check_region(region: str, where: str) -> str:
    region = region.strip()
    if not _REGION_RE.match(region):
        raise InvalidSetting(f"aws_region (from {where}): {region!r} is not an AWS region such as 'us-east-1'")
    return region


def profile_region(profile: str | None) -> str | None:
    """The ``region`` of the profile in the config file (not the environment: that is read as a setting)."""
    bx = botocore("exceptions")

    try:
        value = session(profile).get_scoped_config().get("region")
    except bx.ProfileNotFound:
        raise InvalidSetting(f"AWS {_profile_label(profile)} is not in ~/.aws/config or ~/.aws/credentials") from None
    return str(value) if value else None


def resolve_region(region: Any, where: str, profile: str | None, *, provider: str = PROVIDER) -> tuple[str, str]:
    """``(region, where it came from)``: the setting (argument, Client, AWS_REGION, AWS_DEFAULT_REGION), else the
    profile's ``region``; never a silent default."""
    if region:
        return check_region(str(region), where), where
    found = profile_region(profile)
    if found:
        return check_region(found, f"{_profile_label(profile)}"), f"region of {_profile_label(profile)}"
    from llmfiles.errors import setting_advice

    places = ["argument aws_region=", "Client(aws_region=...)", "env AWS_REGION", "env AWS_DEFAULT_REGION"]
    places += [f"config file [PROFILE.{provider}] aws_region"]
    places += [f"'region' of {_profile_label(profile)} in ~/.aws/config"]
    raise ConfigurationError(
        f"no AWS region for provider {provider!r} (S3 buckets and Bedrock jobs live in one; llmfiles does not guess "
        f"it): set AWS_REGION, for example us-east-1, or {setting_advice('aws_region', 'us-east-1', provider)}\n"
        "looked at:\n" + "\n".join(f"  {p}" for p in places)
    )


def env_region() -> tuple[str | None, str]:
    """The region from the process environment (for the secret hook, which has no settings)."""
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        value = os.environ.get(var, "").strip()
        if value:
            return value, f"env {var}"
    return None, "none"


def sign(
    identity: AwsIdentity | None,
    *,
    service: str,
    region: str,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None = None,
    unsigned_payload: bool = False,
) -> dict[str, str]:
    """The headers of the request signed with SigV4 by botocore (``identity=None``: the headers unchanged).

    ``body`` is the payload when it is in memory (its SHA-256 is signed).  ``unsigned_payload=True`` signs
    ``UNSIGNED-PAYLOAD`` instead, for S3 bodies streamed from disk (see the README: reading a part twice to hash
    it first would double the disk reads).
    """
    if identity is None:
        return dict(headers)
    auth = botocore("auth")
    request = botocore("awsrequest").AWSRequest(method=method, url=url, headers=dict(headers), data=body or b"")
    if unsigned_payload:
        request.context["client_config"] = _unsigned_config()
    auth_cls = auth.S3SigV4Auth if service == "s3" else auth.SigV4Auth
    auth_cls(identity.frozen(), service, region).add_auth(request)
    return {str(k): str(v) for k, v in request.headers.items()}


def _unsigned_config() -> Any:
    global _UNSIGNED_CONFIG
    if _UNSIGNED_CONFIG is None:
        _UNSIGNED_CONFIG = botocore("config").Config(s3={"payload_signing_enabled": False})
    return _UNSIGNED_CONFIG


def dns_suffix(region: str) -> str:
    """The DNS suffix of a region's partition (aws, aws-cn); other partitions need ``api_base``."""
    return "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
