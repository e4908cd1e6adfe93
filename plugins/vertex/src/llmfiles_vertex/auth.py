"""Credentials for Cloud Storage, through google-auth only.

Four ways, the one from the highest-ranked source winning (argument > ``Client`` setting > environment), and in
this order between equals: ``credentials`` (a google-auth ``Credentials`` object), ``access_token`` (a token
string, sent as it is), ``credentials_file`` (``GOOGLE_APPLICATION_CREDENTIALS``: a service account key or an
authorized-user file; other kinds only through ``GOOGLE_APPLICATION_CREDENTIALS``, which google-auth's ADC
reads), then Application Default Credentials
(``google.auth.default()``: gcloud's ADC file, the metadata server on Google Cloud).  The scope is
``cloud-platform``.  google-auth fetches and refreshes tokens itself (its own HTTP); every Cloud Storage request
is still built by the plugin and sent by llmfiles' transport.  ``google.auth`` is imported only on the paths
that need it, so ``access_token`` users never load it.
"""

from __future__ import annotations

import importlib
import json
import os
import threading
import weakref
from collections.abc import Mapping
from typing import Any

from llmfiles.errors import AuthenticationError, InvalidSetting, MissingCredentials
from llmfiles.models import Credentials, ProviderInfo, Secret, Settings
from llmfiles.settings import places_looked

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
CREDENTIAL_SETTINGS = ("credentials", "access_token", "credentials_file")
EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
_SOURCE_RANK = {"argument": 0, "Client": 1, "env": 2, "secret": 3}

_cache: dict[tuple[Any, ...], tuple[Any, str | None]] = {}
#: the scoped copy of each unscoped credentials object a caller passed, so its token is fetched once, not per call
_scoped: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def clear_cache() -> None:
    """Forget the google-auth credentials loaded from files and ADC (their tokens are fetched again)."""
    with _lock:
        _cache.clear()
        _scoped.clear()


def _google(module: str) -> Any:
    """A google-auth module, imported at first use (google-auth is only partly typed: it is used as ``Any``)."""
    return importlib.import_module(module)


def _rank(source: str) -> int:
    return _SOURCE_RANK.get(source.split(" ", 1)[0], 9)


def _http(settings: Settings) -> Any:
    """The urllib3 pool google-auth uses for its own token requests (TLS and timeout as llmfiles' transport)."""
    import urllib3

    verify = settings.get("verify", True)
    kw: dict[str, Any] = {}
    if verify is False:
        kw["cert_reqs"] = "CERT_NONE"
    else:
        kw["cert_reqs"] = "CERT_REQUIRED"
        if isinstance(verify, str):
            kw["ca_certs"] = verify
    timeout = float(settings.get("timeout", 600.0))
    return urllib3.PoolManager(timeout=urllib3.Timeout(connect=timeout, read=timeout), retries=False, **kw)


def _request(settings: Settings) -> Any:
    return _google("google.auth.transport.urllib3").Request(_http(settings))


def _token(creds: Any, source: str, provider: str, settings: Settings) -> Credentials:
    """Make sure ``creds`` holds a valid token (google-auth refreshes it when needed) and wrap it."""
    exceptions = _google("google.auth.exceptions")
    with _lock:
        try:
            if not creds.valid:
                creds.refresh(_request(settings))
        except (exceptions.GoogleAuthError, ValueError, OSError) as exc:
            raise AuthenticationError(
                f"google-auth could not get an access token with the credentials from {source}: {exc}",
                provider=provider,
            ) from None
        token = creds.token
    if not token:
        raise AuthenticationError(f"the credentials from {source} gave no access token", provider=provider)
    headers: dict[str, str] = {}
    quota_project = getattr(creds, "quota_project_id", None)
    if quota_project:
        headers["x-goog-user-project"] = str(quota_project)
    return Credentials(
        kind="google-auth", source=f"{source} ({type(creds).__name__})", secret=Secret(str(token)), headers=headers
    )


def _from_object(obj: Any, source: str, provider: str, settings: Settings) -> Credentials:
    credentials = _google("google.auth.credentials")
    if not isinstance(obj, credentials.Credentials):
        raise InvalidSetting(
            f"credentials (from {source}) must be a google-auth Credentials object (for example "
            f"google.oauth2.service_account.Credentials.from_service_account_file(...)), not {type(obj).__name__}"
        )
    with _lock:
        creds = _scoped.get(obj)
    if creds is None:
        creds = credentials.with_scopes_if_required(obj, [SCOPE])
        if creds is not obj:
            try:
                with _lock:
                    _scoped[obj] = creds
            except TypeError:  # not weakly referenceable: scoped again next time
                pass
    return _token(creds, source, provider, settings)


def _load_file(path: str, source: str) -> tuple[Any, str | None] | None:
    """google-auth credentials from a service account key or an authorized-user file (``None``: another kind)."""
    try:
        with open(path, encoding="utf-8") as fh:
            info = json.load(fh)
    except OSError as exc:
        raise InvalidSetting(f"credentials_file (from {source}) {path!r} cannot be read: {exc.strerror}") from None
    except ValueError:
        raise InvalidSetting(f"credentials_file (from {source}) {path!r} is not a JSON credentials file") from None
    kind = info.get("type") if isinstance(info, dict) else None
    try:
        if kind == "service_account":
            creds = _google("google.oauth2.service_account").Credentials.from_service_account_info(info, scopes=[SCOPE])
            return creds, info.get("project_id")
        if kind == "authorized_user":
            creds = _google("google.oauth2.credentials").Credentials.from_authorized_user_info(info, scopes=[SCOPE])
            return creds, None
    except ValueError as exc:
        raise InvalidSetting(
            f"credentials_file (from {source}) {path!r} is not a {kind} file google-auth can use: {exc}"
        ) from None
    return None


def _from_file(
    info: ProviderInfo, path: str, source: str, provider: str, settings: Settings
) -> tuple[Credentials, str | None]:
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise InvalidSetting(f"credentials_file (from {source}) {path!r} cannot be read: {exc.strerror}") from None
    key = ("file", os.path.abspath(path), stat.st_mtime_ns, stat.st_size)
    with _lock:
        cached = _cache.get(key)
    if cached is None:
        cached = _load_file(path, source)
        if cached is None:
            if source == "env GOOGLE_APPLICATION_CREDENTIALS":
                # another kind (workload identity federation, impersonation...): google-auth's own ADC reads it
                return _from_adc(info, provider, settings)
            raise InvalidSetting(
                f"credentials_file (from {source}) {path!r} is neither a service account key nor an authorized-user "
                "file. For other kinds (workload identity federation, impersonation) create the google-auth object "
                "yourself (after checking the file comes from you) and pass credentials=..., or point "
                "GOOGLE_APPLICATION_CREDENTIALS at it"
            )
        with _lock:
            _cache[key] = cached
    return _token(cached[0], source, provider, settings), cached[1]


def _from_adc(info: ProviderInfo, provider: str, settings: Settings) -> tuple[Credentials, str | None]:
    key = ("adc", os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"), os.environ.get("CLOUDSDK_CONFIG"))
    with _lock:
        cached = _cache.get(key)
    if cached is None:
        exceptions = _google("google.auth.exceptions")
        try:
            creds, project = _google("google.auth").default(scopes=[SCOPE], request=_request(settings))
        except exceptions.DefaultCredentialsError as exc:
            text = str(exc)
            reason = "" if "default credentials were not found" in text else f" (google-auth: {text})"
            raise MissingCredentials(
                provider,
                "Google credentials",
                [
                    *places_looked(info, CREDENTIAL_SETTINGS),
                    "Application Default Credentials (google.auth.default(): gcloud's ADC file, the metadata "
                    "server on Google Cloud)",
                ],
                hint="run `gcloud auth application-default login`, or pass credentials_file= (a service account "
                f"key), access_token= or credentials={reason}",
            ) from None
        cached = (creds, project)
        with _lock:
            _cache[key] = cached
    return _token(cached[0], "Application Default Credentials", provider, settings), cached[1]


def resolve(info: ProviderInfo, settings: Settings, environ: Mapping[str, str]) -> Credentials:
    """The credentials for one call (see the module docstring for the order).

    ``Credentials.extra`` holds ``{"project": ...}`` when the credentials name a project (service account keys,
    ADC), for recording with the files when no ``project`` setting is given.
    """
    provider = info.name
    candidates: list[tuple[int, int, str]] = []
    for order, name in enumerate(CREDENTIAL_SETTINGS):
        value = settings.values.get(name)
        if value is not None and value != "":
            candidates.append((_rank(settings.source(name)), order, name))
    project: str | None = None
    if candidates:
        _, _, name = min(candidates)
        source = settings.source(name)
        if name == "access_token":
            token = settings.values[name]
            assert isinstance(token, Secret)
            return Credentials(kind="access_token", source=source, secret=token)
        if name == "credentials":
            creds = _from_object(settings.values[name], source, provider, settings)
            project = getattr(settings.values[name], "project_id", None)
        else:
            creds, project = _from_file(info, str(settings.values[name]), source, provider, settings)
    elif settings.source("api_base") == f"env {EMULATOR_ENV}":
        # as Google's own clients do: an emulator gets no credentials (and no real token is fetched for it)
        return Credentials(kind="anonymous", source=f"none (${EMULATOR_ENV} is set)")
    else:
        creds, project = _from_adc(info, provider, settings)
    if project:
        return Credentials(
            kind=creds.kind, source=creds.source, secret=creds.secret, headers=creds.headers, extra={"project": project}
        )
    return creds
