"""Azure OpenAI credentials: an API key (``api-key`` header) or Entra ID bearer tokens from azure-identity.

Which one is used follows the settings chain: of ``api_key``, ``credential`` and ``azure_ad_token_provider``, the
one from the strongest source wins (explicit argument > ``Client`` setting > environment > secret hooks); two
given at the same level (say both as arguments) are a configuration error rather than a silent choice.  With
none of them, ``DefaultAzureCredential`` is used (unless ``use_default_credential=False``).

Tokens are never cached here.  A ``credential`` is wrapped with azure-identity's ``get_bearer_token_provider``
(azure-core's ``BearerTokenCredentialPolicy``, which keeps the token until shortly before it expires), and
``DefaultAzureCredential`` is created once per process and environment so its cache, and the policy's, live on
between calls.  A token is asked for once when the credentials are resolved — so a missing identity fails before
the file is read — and again for every request, which is a cache hit until azure-identity decides to refresh it:
a multi-hour upload keeps getting valid tokens.

``azure.identity`` is imported only on the Entra ID paths.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from attrs import field, frozen

from llmfiles.errors import AuthenticationError, InvalidSetting, MissingCredentials
from llmfiles.models import Credentials, HttpRequest, Secret, Settings

#: the Entra ID scope of Azure OpenAI (Cognitive Services)
COGNITIVE_SCOPE = "https://cognitiveservices.azure.com/.default"
#: the settings that select how to authenticate, in the order they are reported
AUTH_SETTINGS = ("api_key", "credential", "azure_ad_token_provider")
#: environment variables that change what ``DefaultAzureCredential`` does (a new one is made when they change)
_IDENTITY_ENV_PREFIXES = ("AZURE_", "IDENTITY_", "MSI_", "IMDS_")

TokenProvider = Callable[[], str]


@frozen(kw_only=True)
class EntraToken:
    """How to get a bearer token for a request; kept in :attr:`Credentials.extra`."""

    get: TokenProvider = field(repr=False)
    #: what is used, for messages: "DefaultAzureCredential", "ManagedIdentityCredential", "token provider" ...
    mode: str
    scope: str


# --- choosing the mode ---------------------------------------------------------------------------------------

_RANK = {"argument": 0, "Client": 1, "env": 2, "secret": 3}


def _rank(source: str) -> int:
    return _RANK.get(source.split(" ", 1)[0], 9)


def resolve(provider: str, settings: Settings, key_places: Sequence[str]) -> Credentials:
    """The :class:`Credentials` for these settings; Entra ID modes fetch their first token here.

    ``key_places`` lists where the API key was looked for (for :class:`MissingCredentials`).
    """
    given = [name for name in AUTH_SETTINGS if settings.values.get(name) is not None]
    scope = str(settings.get("token_scope") or COGNITIVE_SCOPE)
    if given:
        best = min(_rank(settings.source(n)) for n in given)
        chosen = [n for n in given if _rank(settings.source(n)) == best]
        if len(chosen) > 1:
            where = ", ".join(f"{n} (from {settings.source(n)})" for n in chosen)
            raise InvalidSetting(
                f"provider {provider!r} got more than one way to authenticate: {where}; pass only one of them"
            )
        name = chosen[0]
        if name == "api_key":
            key = settings.values["api_key"]
            assert isinstance(key, Secret)
            return Credentials(kind="api_key", source=settings.source("api_key"), secret=key)
        if name == "credential":
            cred = settings.values["credential"]
            entra = EntraToken(get=_credential_provider(cred, scope, settings), mode=type(cred).__name__, scope=scope)
            source = f"Entra ID ({entra.mode}, {settings.source('credential')})"
        else:
            fn = settings.values["azure_ad_token_provider"]
            _check_token_provider(fn, settings)
            entra = EntraToken(get=fn, mode="token provider", scope=scope)
            source = f"Entra ID (token provider, {settings.source('azure_ad_token_provider')})"
        creds = Credentials(kind="entra_id", source=source, extra=entra)
        fetch_token(entra, provider=provider, looked_at=[source])
        return creds
    looked_at = [
        *key_places,
        "argument credential= / Client(credential=...)",
        "argument azure_ad_token_provider= / Client(azure_ad_token_provider=...)",
    ]
    if not settings.get("use_default_credential", True):
        raise MissingCredentials(
            provider,
            "credentials",
            [
                *looked_at,
                f"DefaultAzureCredential (not tried: use_default_credential=False, from "
                f"{settings.source('use_default_credential')})",
            ],
            hint="set AZURE_OPENAI_API_KEY, pass api_key=..., or pass credential=<an azure-identity credential>",
        )
    entra = EntraToken(get=_default_provider(scope), mode="DefaultAzureCredential", scope=scope)
    fetch_token(entra, provider=provider, looked_at=[*looked_at, "DefaultAzureCredential"])
    return Credentials(kind="entra_id", source="Entra ID (DefaultAzureCredential)", extra=entra)


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

    provider: TokenProvider = get_bearer_token_provider(cred, scope)
    return provider


def _check_token_provider(fn: Any, settings: Settings) -> None:
    where = settings.source("azure_ad_token_provider")
    if not callable(fn):
        raise InvalidSetting(
            f"azure_ad_token_provider (from {where}) must be a callable returning a token, not a {type(fn).__name__}; "
            "for example azure.identity.get_bearer_token_provider(credential, "
            f"{COGNITIVE_SCOPE!r})"
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
    """A token provider over one ``DefaultAzureCredential`` per process, environment and scope.

    Reusing the credential is what lets azure-identity's own token cache work across calls; when the identity
    environment variables change, a new credential is made.
    """
    key = (_identity_fingerprint(), scope)
    with _defaults_lock:
        provider = _defaults.get(key)
        if provider is None:
            from azure.identity import DefaultAzureCredential, get_bearer_token_provider

            provider = get_bearer_token_provider(DefaultAzureCredential(), scope)
            _defaults[key] = provider
        return provider


def reset_default_credentials() -> None:
    """Forget the ``DefaultAzureCredential`` objects made so far (tests, or after a change of identity)."""
    with _defaults_lock:
        _defaults.clear()


# --- tokens and signing --------------------------------------------------------------------------------------


def _why(exc: BaseException) -> str:
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text or type(exc).__name__


def fetch_token(entra: EntraToken, *, provider: str, looked_at: Sequence[str] | None = None) -> str:
    """A bearer token from ``entra`` (azure-identity answers from its cache until the token nears expiry).

    With ``looked_at`` (when credentials are resolved) a failure is :class:`MissingCredentials`; later (a refresh
    during a long upload) it is :class:`AuthenticationError`.
    """
    try:
        token: Any = entra.get()
    except Exception as exc:
        why = _why(exc)
        if looked_at is not None:
            raise MissingCredentials(
                provider,
                "Entra ID token",
                looked_at,
                hint=f"{entra.mode} could not get a token for {entra.scope}: {why}",
            ) from exc
        raise AuthenticationError(
            f"{entra.mode} could not get a token for {entra.scope}: {why}", provider=provider
        ) from exc
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


Signer = Callable[[HttpRequest], HttpRequest]


def signer(credentials: Credentials, provider: str) -> Signer:
    """A function that adds the auth headers of ``credentials`` to a request, fetching a token each time for
    Entra ID.  Credentials from another plugin (an in-house vault answering ``llmfiles_resolve_credentials``
    first) work too: a ``secret`` goes into ``api-key`` (or ``Authorization: Bearer`` for kinds "bearer" and
    "entra_id"), and their ``headers`` are added as they are."""
    extra = credentials.extra
    fixed = dict(credentials.headers)
    if isinstance(extra, EntraToken):

        def sign_entra(request: HttpRequest) -> HttpRequest:
            token = fetch_token(extra, provider=provider)
            return _with_headers(request, {"Authorization": f"Bearer {token}", **fixed})

        return _signing_probes(sign_entra)
    if credentials.secret is not None:
        value = credentials.secret.reveal()
        if credentials.kind in ("bearer", "entra_id"):
            fixed = {"Authorization": f"Bearer {value}", **fixed}
        else:
            fixed = {"api-key": value, **fixed}

    def sign_static(request: HttpRequest) -> HttpRequest:
        return _with_headers(request, fixed) if fixed else request

    return _signing_probes(sign_static)


def _signing_probes(sign: Signer) -> Signer:
    """``sign``, also for the probe a request may carry (built later, when an answer was lost: signed then)."""

    def sign_with_probe(request: HttpRequest) -> HttpRequest:
        signed = sign(request)
        probe = request.probe
        if probe is None:
            return signed
        import attrs

        return attrs.evolve(signed, probe=lambda: sign(probe()))

    return sign_with_probe


def _with_headers(request: HttpRequest, headers: dict[str, str]) -> HttpRequest:
    import attrs

    return attrs.evolve(request, headers={**request.headers, **headers})
