"""Azure OpenAI credentials: an API key (``api-key`` header) or Entra ID bearer tokens from azure-identity.

Which one is used follows the settings chain: of ``api_key``, ``credential`` and ``azure_ad_token_provider``, the
one from the strongest source wins (explicit argument > ``Client`` setting > environment > secret hooks); two
given at the same level (say both as arguments) are a configuration error rather than a silent choice.  With
none of them, ``DefaultAzureCredential`` is used (unless ``use_default_credential=False``).

Tokens are never cached here.  A ``credential`` is wrapped with azure-identity's ``get_bearer_token_provider``
(azure-core's ``BearerTokenCredentialPolicy``, which keeps the token until shortly before it expires), and the
``DefaultAzureCredential`` llmfiles makes is created once per process and environment so its cache, and the
policy's, live on between calls.  A token is asked for once when the credentials are resolved - so a missing
identity fails before the file is read - and again for every request as it is built, which is a cache hit until
azure-identity decides to refresh it: a multi-hour upload keeps getting valid tokens.

The ``DefaultAzureCredential`` llmfiles makes sends its token requests through the core's transport
(:mod:`llmfiles_azure.identity`): the caller's TLS, timeout and deadline settings apply to them.  A ``credential``
the caller passes is used as it is, with its own transport.

``azure.identity`` is imported only on the Entra ID paths, and its log records never reach the terminal of a
program that configured no logging (they say at length what the error message says in a few lines).
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from attrs import field, frozen

from llmfiles.errors import AuthenticationError, InvalidSetting, MissingCredentials, advice
from llmfiles.models import Credentials, HttpRequest, Secret, Settings
from llmfiles.provider import Http

#: the Entra ID scope of Azure OpenAI (Cognitive Services)
COGNITIVE_SCOPE = "https://cognitiveservices.azure.com/.default"
#: the settings that select how to authenticate, in the order they are reported
AUTH_SETTINGS = ("api_key", "credential", "azure_ad_token_provider")
#: environment variables that change what ``DefaultAzureCredential`` does (a new one is made when they change)
_IDENTITY_ENV_PREFIXES = ("AZURE_", "IDENTITY_", "MSI_", "IMDS_")
#: the most of a credential library's message an error quotes
_REASON_CHARS = 240

TokenProvider = Callable[[], Any]
Signer = Callable[[HttpRequest], HttpRequest]


@frozen(kw_only=True)
class EntraToken:
    """How to get a bearer token for a request; kept in :attr:`Credentials.extra`."""

    get: TokenProvider = field(repr=False)
    #: what is used, for messages: "DefaultAzureCredential", "ManagedIdentityCredential", "token provider" ...
    mode: str
    scope: str
    #: where it came from, for messages ("Entra ID (DefaultAzureCredential)")
    source: str


class EntraIdUnavailable(MissingCredentials):
    """No Entra ID token could be had where one was looked for.  The message's first line says what failed and the
    one thing to do; the places looked at follow, one a line."""

    def __init__(self, provider: str, failed: str, todo: str, looked_at: Sequence[str]) -> None:
        super().__init__(provider, "Entra ID token", looked_at, hint=todo)
        lines = [f"{failed}. {todo}", "looked at:", *(f"  {place}" for place in looked_at)]
        self.args = ("\n".join(lines),)


# --- choosing the mode ---------------------------------------------------------------------------------------

_RANK = {"argument": 0, "Client": 1, "env": 2, "secret": 3}


def _rank(source: str) -> int:
    return _RANK.get(source.split(" ", 1)[0], 9)


def resolve(provider: str, settings: Settings, key_places: Sequence[str], http: Http) -> Credentials:
    """The :class:`Credentials` for these settings; Entra ID modes fetch their first token here.

    ``key_places`` lists where the API key was looked for; ``http`` is the core's transport for this call, used by
    the ``DefaultAzureCredential`` llmfiles makes.
    """
    given = [name for name in AUTH_SETTINGS if settings.values.get(name) is not None]
    scope = str(settings.get("token_scope") or COGNITIVE_SCOPE)
    if given:
        name = _chosen(provider, settings, given)
        if name == "api_key":
            key = settings.values["api_key"]
            assert isinstance(key, Secret)
            return Credentials(kind="api_key", source=settings.source("api_key"), secret=key)
        return _given_entra(provider, settings, name, scope, offline=http.offline)
    looked_at = [
        *key_places,
        "argument credential= / Client(credential=...)",
        "argument azure_ad_token_provider= / Client(azure_ad_token_provider=...)",
    ]
    if not settings.get("use_default_credential", True):
        where = settings.source("use_default_credential")
        raise EntraIdUnavailable(
            provider,
            f"no credentials for provider {provider!r} (DefaultAzureCredential not tried: "
            f"use_default_credential=False, from {where})",
            advice(
                "Set AZURE_OPENAI_API_KEY, pass api_key=..., or pass credential=<an azure-identity credential>",
                "Set AZURE_OPENAI_API_KEY, or pass -s api_key=...",
            ),
            looked_at,
        )
    from llmfiles_azure.identity import bound

    entra = EntraToken(
        get=bound(http, _default_provider(scope)),
        mode="DefaultAzureCredential",
        scope=scope,
        source="Entra ID (DefaultAzureCredential)",
    )
    if http.offline:
        return _untried(entra)
    fetch_token(entra, provider=provider, looked_at=[*looked_at, "DefaultAzureCredential"])
    return Credentials(kind="entra_id", source=entra.source, extra=entra)


def _untried(entra: EntraToken) -> Credentials:
    """For a dry run, which sends nothing: Entra ID without a token (its requests are built unsigned)."""
    return Credentials(kind="entra_id", source=f"{entra.source}; no token asked for in a dry run")


def _chosen(provider: str, settings: Settings, given: list[str]) -> str:
    best = min(_rank(settings.source(n)) for n in given)
    chosen = [n for n in given if _rank(settings.source(n)) == best]
    if len(chosen) > 1:
        where = ", ".join(f"{n} (from {settings.source(n)})" for n in chosen)
        raise InvalidSetting(f"provider {provider!r} got more than one way to authenticate: {where}; pass only one")
    return chosen[0]


def _given_entra(provider: str, settings: Settings, name: str, scope: str, *, offline: bool) -> Credentials:
    """Credentials from a ``credential`` or an ``azure_ad_token_provider`` the caller gave (used as they are)."""
    if name == "credential":
        cred = settings.values["credential"]
        mode = type(cred).__name__
        get = _credential_provider(cred, scope, settings)
    else:
        get = settings.values["azure_ad_token_provider"]
        _check_token_provider(get, settings)
        mode = "token provider"
    source = f"Entra ID ({mode}, {settings.source(name)})"
    entra = EntraToken(get=get, mode=mode, scope=scope, source=source)
    if offline:
        return _untried(entra)
    fetch_token(entra, provider=provider, looked_at=[source])
    return Credentials(kind="entra_id", source=source, extra=entra)


def _credential_provider(cred: Any, scope: str, settings: Settings) -> TokenProvider:
    get_token = getattr(cred, "get_token", None)
    if not callable(get_token):
        raise InvalidSetting(
            f"credential (from {settings.source('credential')}) is a {type(cred).__name__}, not a token credential; "
            "pass an azure-identity credential such as DefaultAzureCredential() or ManagedIdentityCredential()"
        )
    if inspect.iscoroutinefunction(get_token):
        raise InvalidSetting(
            f"credential (from {settings.source('credential')}) is an async credential ({type(cred).__name__}); "
            "pass the synchronous one from azure.identity, not azure.identity.aio"
        )
    from azure.identity import get_bearer_token_provider

    _quiet_identity_logs()
    provider: TokenProvider = get_bearer_token_provider(cred, scope)
    return provider


def _check_token_provider(fn: Any, settings: Settings) -> None:
    where = settings.source("azure_ad_token_provider")
    if not callable(fn):
        raise InvalidSetting(
            f"azure_ad_token_provider (from {where}) must be a callable returning a token, not a {type(fn).__name__}; "
            f"for example azure.identity.get_bearer_token_provider(credential, {COGNITIVE_SCOPE!r})"
        )
    if inspect.iscoroutinefunction(fn):
        raise InvalidSetting(
            f"azure_ad_token_provider (from {where}) is an async function; pass a synchronous callable"
        )


# --- DefaultAzureCredential, one per environment ------------------------------------------------------------

_defaults: dict[tuple[str, str], TokenProvider] = {}
_defaults_lock = threading.Lock()


def _identity_fingerprint() -> str:
    """A digest of the environment variables DefaultAzureCredential reads (values never kept in clear)."""
    items = sorted((k, v) for k, v in os.environ.items() if k.startswith(_IDENTITY_ENV_PREFIXES))
    return hashlib.sha256(repr(items).encode()).hexdigest()


def _default_provider(scope: str) -> TokenProvider:
    """A token provider over one ``DefaultAzureCredential`` per process, environment and scope, whose token requests
    go through the core's transport of the call asking (:mod:`llmfiles_azure.identity`).

    Reusing the credential is what lets azure-identity's own token cache work across calls; when the identity
    environment variables change, a new credential is made.
    """
    key = (_identity_fingerprint(), scope)
    with _defaults_lock:
        provider = _defaults.get(key)
        if provider is None:
            from azure.identity import DefaultAzureCredential, get_bearer_token_provider

            from llmfiles_azure.identity import CoreTransport

            _quiet_identity_logs()
            provider = get_bearer_token_provider(DefaultAzureCredential(transport=CoreTransport()), scope)
            _defaults[key] = provider
        return provider


def reset_default_credentials() -> None:
    """Forget the ``DefaultAzureCredential`` objects made so far (tests, or after a change of identity)."""
    with _defaults_lock:
        _defaults.clear()


def _quiet_identity_logs() -> None:
    """azure-identity logs every failed attempt of a credential chain at length (warnings that Python prints when
    the program configured no logging); a ``NullHandler`` keeps them off such a terminal, while a program that
    configured logging still gets them.  The error llmfiles raises says what failed, in a few lines."""
    for name in ("azure.identity", "msal"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())


# --- tokens and signing --------------------------------------------------------------------------------------


def _first(text: str, limit: int = _REASON_CHARS) -> str:
    """The first line of ``text`` (without its final full stop), cut short at ``limit`` characters."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "").rstrip(". ")
    return first if len(first) <= limit else first[: limit - 3] + "..."


def explain(exc: BaseException) -> tuple[str, list[str]]:
    """What a credential library's error says, briefly: a reason for the first line of a message, or (for a chain
    such as ``DefaultAzureCredential``, whose message reports every credential it tried at length) one line per
    credential tried, each cut to a line)."""
    text = str(exc)
    head, marker, rest = text.partition("Attempted credentials:")
    if not marker:
        return _first(text) or type(exc).__name__, []
    tried = []
    for line in rest.splitlines():
        if line.startswith("\t"):  # an entry; lines that do not start with a tab continue the one before
            name, _, why = line.strip().partition(": ")
            tried.append(f"{name}: {_first(why, 120)}")
    return _first(head) or type(exc).__name__, tried


def fetch_token(entra: EntraToken, *, provider: str, looked_at: Sequence[str] | None = None) -> str:
    """A bearer token from ``entra`` (azure-identity answers from its cache until the token nears expiry).

    With ``looked_at`` (when credentials are resolved) a failure is :class:`MissingCredentials` (the places looked
    at, and what each credential of a chain said, on lines of their own); later (a refresh during a long upload) it
    is :class:`AuthenticationError`.
    """
    try:
        token: Any = entra.get()
    except Exception as exc:
        reason, tried = explain(exc)
        failed = f"{entra.source} could not get a token for {entra.scope}"
        if looked_at is None:
            raise AuthenticationError(f"{failed} ({'; '.join(tried) or reason})", provider=provider) from None
        todo = (
            "Set AZURE_OPENAI_API_KEY, or sign in to Entra ID (az login, or a managed identity)"
            if entra.mode == "DefaultAzureCredential"
            else f"Check the {entra.mode} that was passed, or pass api_key=... instead"
        )
        places = [p for p in looked_at if not (tried and p == entra.mode)]
        if tried:
            places += [f"{entra.mode}, which tried:", *(f"  {t}" for t in tried)]
        else:
            failed += f" ({reason})"
        raise EntraIdUnavailable(provider, failed, todo, places) from None
    if inspect.isawaitable(token):
        close = getattr(token, "close", None)
        if callable(close):
            close()
        raise InvalidSetting(f"the Entra ID {entra.mode} returned an awaitable; pass a synchronous one")
    if not isinstance(token, str) or not token.strip():
        raise AuthenticationError(
            f"the Entra ID {entra.mode} returned {type(token).__name__}, not a token string", provider=provider
        )
    return token.strip()


def signer(credentials: Credentials, provider: str) -> Signer:
    """A function that adds the auth headers of ``credentials`` to a request as it is built, fetching a token each
    time for Entra ID.  Credentials from another plugin (an in-house vault answering ``llmfiles_credentials``) work
    too: a ``secret`` goes into ``api-key`` (or ``Authorization: Bearer`` for kinds "bearer" and "entra_id"), and
    their ``headers`` are added as they are."""
    extra = credentials.extra
    fixed = dict(credentials.headers)
    if isinstance(extra, EntraToken):

        def sign_entra(request: HttpRequest) -> HttpRequest:
            token = fetch_token(extra, provider=provider)
            return _with_headers(request, {"Authorization": f"Bearer {token}", **fixed})

        return sign_entra
    if credentials.secret is not None:
        value = credentials.secret.reveal()
        if credentials.kind in ("bearer", "entra_id"):
            fixed = {"Authorization": f"Bearer {value}", **fixed}
        else:
            fixed = {"api-key": value, **fixed}

    def sign_static(request: HttpRequest) -> HttpRequest:
        return _with_headers(request, fixed) if fixed else request

    return sign_static


def _with_headers(request: HttpRequest, headers: dict[str, str]) -> HttpRequest:
    return attrs.evolve(request, headers={**request.headers, **headers})
