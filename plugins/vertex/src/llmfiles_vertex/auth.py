"""Credentials for Cloud Storage, through google-auth, over llmfiles' transport.

Four ways, the one from the highest-ranked source winning (argument > ``Client`` setting > environment), and in
this order between equals: ``credentials`` (a google-auth ``Credentials`` object), ``access_token`` (a token
string, sent as it is), ``credentials_file`` (``GOOGLE_APPLICATION_CREDENTIALS``: any credentials file
``google.auth.load_credentials_from_file`` reads), then Application Default Credentials (``google.auth.default()``:
gcloud's ADC file, the metadata server on Google Cloud).  The scope is ``cloud-platform``.

google-auth fetches and refreshes the tokens (and keeps them until they expire: the credentials objects are kept
by :class:`GoogleAuth` for the life of the provider), but every request it makes goes through the ``http`` object
the core passes to ``credentials()`` (see :mod:`llmfiles_vertex.google_transport`).  ``google.auth`` is imported
only on the paths that need it, so ``access_token`` users never load it.
"""

from __future__ import annotations

import importlib
import os
import threading
import warnings
import weakref
from typing import Any

from llmfiles.errors import AuthenticationError, InvalidSetting, MissingCredentials, advice
from llmfiles.models import Credentials, ProviderInfo, Secret, Settings
from llmfiles.provider import Http
from llmfiles.settings import places_looked

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
CREDENTIAL_SETTINGS = ("credentials", "access_token", "credentials_file")
EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
ADC = "Application Default Credentials"
_SOURCE_RANK = {"argument": 0, "Client": 1, "env": 2, "secret": 3}


def _google(module: str) -> Any:
    """A google-auth module, imported at first use (google-auth is untyped: it is used as ``Any``)."""
    return importlib.import_module(module)


def _rank(source: str) -> int:
    return _SOURCE_RANK.get(source.split(" ", 1)[0], 9)


class GoogleAuth:
    """The credentials of one provider object: resolves them (see the module documentation) and keeps the
    google-auth credentials loaded from files and ADC, so their tokens are fetched again only when they expire."""

    def __init__(self, info: ProviderInfo) -> None:
        self.info = info
        self._loaded: dict[tuple[Any, ...], tuple[Any, str | None]] = {}
        #: the scoped copy of each unscoped credentials object a caller passed, so its token is fetched once
        self._scoped: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self._lock = threading.RLock()

    def clear(self) -> None:
        """Forget the credentials loaded from files and ADC (their tokens are fetched again)."""
        with self._lock:
            self._loaded.clear()
            self._scoped.clear()

    def resolve(self, settings: Settings, http: Http) -> Credentials:
        """The credentials of one call.  ``Credentials.extra`` holds ``{"project": ...}`` when they name a project
        (service account keys, ADC), for recording with the files when no ``project`` setting is given."""
        candidates = []
        for order, name in enumerate(CREDENTIAL_SETTINGS):
            value = settings.values.get(name)
            if value is not None and value != "":
                candidates.append((_rank(settings.source(name)), order, name))
        if not candidates:
            if settings.source("api_base") == f"env {EMULATOR_ENV}":
                # as Google's own clients do: an emulator gets no credentials (and no real token is fetched for it)
                return Credentials(kind="anonymous", source=f"none (${EMULATOR_ENV} is set)")
            creds, project = self._adc(http)
            return _token(creds, ADC, self.info.name, http, self._lock, project)
        _, _, name = min(candidates)
        source = settings.source(name)
        value = settings.values[name]
        if name == "access_token":
            assert isinstance(value, Secret)
            return Credentials(kind="access_token", source=source, secret=value)
        if name == "credentials":
            creds = self._scoped_object(value, source)
            return _token(creds, source, self.info.name, http, self._lock, getattr(value, "project_id", None))
        creds, project = self._file(str(value), source, http)
        return _token(creds, source, self.info.name, http, self._lock, project)

    # -- where google-auth credentials come from ---------------------------------------------------------------

    def _scoped_object(self, obj: Any, source: str) -> Any:
        credentials = _google("google.auth.credentials")
        if not isinstance(obj, credentials.Credentials):
            raise InvalidSetting(
                f"credentials (from {source}) must be a google-auth Credentials object (for example "
                f"google.oauth2.service_account.Credentials.from_service_account_file(...)), not {type(obj).__name__}"
            )
        with self._lock:
            scoped = self._scoped.get(obj)
            if scoped is None:
                scoped = credentials.with_scopes_if_required(obj, [SCOPE])
                if scoped is not obj:
                    try:
                        self._scoped[obj] = scoped
                    except TypeError:  # not weakly referenceable: scoped again next time
                        pass
        return scoped

    def _file(self, path: str, source: str, http: Http) -> tuple[Any, str | None]:
        """google-auth's credentials from a credentials file (any kind its loader knows), kept per file version."""
        try:
            stat = os.stat(path)
        except OSError as exc:
            raise InvalidSetting(f"credentials_file (from {source}) {path!r} cannot be read: {exc.strerror}") from None
        key = ("file", os.path.abspath(path), stat.st_mtime_ns, stat.st_size)
        with self._lock:
            loaded = self._loaded.get(key)
            if loaded is None:
                loaded = self._loaded[key] = _load_file(path, source, http)
        return loaded

    def _adc(self, http: Http) -> tuple[Any, str | None]:
        key = ("adc", os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"), os.environ.get("CLOUDSDK_CONFIG"))
        with self._lock:
            loaded = self._loaded.get(key)
            if loaded is None:
                loaded = self._loaded[key] = self._default(http)
        return loaded

    def _default(self, http: Http) -> tuple[Any, str | None]:
        from llmfiles_vertex.google_transport import CoreRequest

        exceptions = _google("google.auth.exceptions")
        try:
            creds, project = _google("google.auth").default(scopes=[SCOPE], request=CoreRequest(http))
        except exceptions.DefaultCredentialsError as exc:
            text = " ".join(str(exc).split())
            said = [] if "default credentials were not found" in text else [f"  google-auth said: {text[:300]}"]
            raise MissingCredentials(
                self.info.name,
                "Google credentials",
                [
                    *places_looked(self.info, CREDENTIAL_SETTINGS),
                    f"{ADC} (google.auth.default(): gcloud's ADC file, the metadata server on Google Cloud)",
                    *said,
                ],
                hint="run `gcloud auth application-default login`, or "
                + advice("pass credentials_file=KEY.json", "pass -s credentials_file=KEY.json")
                + " (a service account key)",
            ) from None
        return creds, project


def _load_file(path: str, source: str, http: Http) -> tuple[Any, str | None]:
    """``google.auth.load_credentials_from_file``: the file is the caller's own setting (an argument or
    ``GOOGLE_APPLICATION_CREDENTIALS``, which ADC would read all the same), so its deprecation warning about
    credential files from elsewhere is not shown."""
    from llmfiles_vertex.google_transport import CoreRequest

    google_auth = _google("google.auth")
    exceptions = _google("google.auth.exceptions")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            creds, project = google_auth.load_credentials_from_file(path, scopes=[SCOPE], request=CoreRequest(http))
    except (exceptions.GoogleAuthError, ValueError, OSError) as exc:
        raise InvalidSetting(
            f"credentials_file (from {source}) {path!r} is not a credentials file google-auth can use: {exc}"
        ) from None
    return creds, project if isinstance(project, str) and project else None


def _token(
    creds: Any, source: str, provider: str, http: Http, lock: threading.RLock, project: str | None
) -> Credentials:
    """Make sure ``creds`` holds a valid token (google-auth refreshes it when needed, through ``http``) and wrap
    it with the quota project header and the project."""
    from llmfiles_vertex.google_transport import CoreRequest

    exceptions = _google("google.auth.exceptions")
    with lock:
        if http.offline and not creds.valid:  # a dry run: the credentials were found and read, no token is asked for
            return Credentials(
                kind="google-auth",
                source=f"{source} ({type(creds).__name__}; no token asked for in a dry run)",
                extra={"project": project} if project else None,
            )
        try:
            if not creds.valid:
                creds.refresh(CoreRequest(http))
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
        kind="google-auth",
        source=f"{source} ({type(creds).__name__})",
        secret=Secret(str(token)),
        headers=headers,
        extra={"project": project} if project else None,
    )
