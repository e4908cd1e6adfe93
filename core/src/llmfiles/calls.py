"""One call, resolved: the provider, its settings (explicit > ``Client`` > environment > config > secret hooks), its
credentials and how to send; and the one place where a provider's code meets the core (:func:`plugin_boundary`).

Every exchange of every operation runs through :meth:`Call.run`: the ``llmfiles_request`` hook sees the request,
the transport sends it, a lost answer is looked for through the exchange's probe (never guessed), an error status
becomes the provider's error (specialized, redacted, with the number of attempts), and the reader turns a success
into data.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, TypeVar

import attrs

from llmfiles.errors import (
    AuthenticationError,
    FileNotFound,
    LLMFilesError,
    MaybeUploaded,
    PluginError,
    ProviderError,
    UploadFailed,
)
from llmfiles.models import (
    NO_CREDENTIALS,
    Credentials,
    FileObject,
    HttpRequest,
    HttpResponse,
    Operation,
    ProviderInfo,
    Settings,
    operation_name,
)
from llmfiles.provider import Exchange, InProcessServer, Probe, Provider, Registered, UploadProtocol
from llmfiles.redact import redact, redact_url
from llmfiles.settings import SettingsCache
from llmfiles.transport import BodySource, Policy, Sent, Transport

if TYPE_CHECKING:
    from llmfiles.clock import Clock
    from llmfiles.config import ConfigFile, Profile
    from llmfiles.plugins import PluginManager
    from llmfiles.transport import RetryNotice

log = logging.getLogger("llmfiles")
T = TypeVar("T")
#: seconds a provider's clock may be behind ours when a file it made is compared with when a request started
CLOCK_TOLERANCE = 2


@contextlib.contextmanager
def plugin_boundary(plugin: str, what: str, secrets: Sequence[str], *, reading: bool = False) -> Iterator[None]:
    """Where a provider's code runs: its llmfiles errors pass through; anything else is its bug (a
    :class:`PluginError` naming it) or, while it reads an answer, an answer it could not read (a
    :class:`ProviderError`).  Never a bare third-party exception, never a secret in the message."""
    try:
        yield
    except LLMFilesError:
        raise
    except Exception as exc:
        text = redact(f"{type(exc).__name__}: {exc}", secrets)
        if reading:
            raise ProviderError(f"could not read the provider's answer ({what}): {text}", provider=plugin) from None
        raise PluginError(f"plugin {plugin!r} failed in {what}: {text}") from exc


class CallHttp:
    """:class:`~llmfiles.provider.Http` for credential libraries and secret managers: the core's transport with
    the call's policy (plain ``http://`` is allowed to link-local addresses too, where instance metadata and
    managed identity endpoints answer)."""

    def __init__(self, transport: Transport, policy: Policy, *, offline: bool = False) -> None:
        self._transport = transport
        self._policy = attrs.evolve(policy, link_local_http=True)
        self._offline = offline

    @property
    def offline(self) -> bool:
        """Whether this is a dry run's, which sends nothing."""
        return self._offline

    def send(
        self,
        request: HttpRequest,
        *,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        retries: bool = True,
    ) -> HttpResponse:
        if self._offline:
            raise LLMFilesError(f"a dry run sends nothing (not even {request.method} {redact_url(request.url)})")
        policy = self._policy
        if timeout is not None and timeout > 0:
            policy = attrs.evolve(policy, timeout=min(policy.timeout, timeout))
        if (connect_timeout is not None and connect_timeout > 0) or timeout is not None:
            limits = (policy.connect_timeout, connect_timeout, policy.timeout)
            policy = attrs.evolve(policy, connect_timeout=min(t for t in limits if t is not None and t > 0))
        if not retries:
            policy = _once(policy)
        response = self._transport.send(request, policy).response
        assert response is not None
        return response


def make_policy(
    provider: str,
    values: Mapping[str, Any],
    secrets: Sequence[str],
    *,
    clock: Clock,
    on_retry: Callable[[RetryNotice], None] | None,
    deadline_at: float | None = None,
) -> Policy:
    """The transport policy of a call from its (core) settings."""
    return Policy(
        provider=provider,
        timeout=float(values["timeout"]),
        connect_timeout=min(float(values.get("connect_timeout") or 15.0), float(values["timeout"])),
        max_retries=int(values["max_retries"]),
        max_retry_wait=float(values["max_retry_wait"]),
        deadline_at=deadline_at,
        allow_insecure_http=bool(values["allow_insecure_http"]),
        verify=values["verify"],
        secrets=tuple(secrets),
        on_retry=on_retry,
        clock=clock,
    )


class Call:
    """The provider, settings and credentials of one call, and :meth:`run`, which sends one exchange."""

    def __init__(
        self,
        *,
        provider: Provider,
        plugin: str,
        settings: Settings,
        credentials: Credentials,
        policy: Policy,
        transport: Transport,
        plugins: PluginManager,
        server: InProcessServer | None = None,
    ) -> None:
        self.provider = provider
        self.plugin = plugin
        self.info: ProviderInfo = provider.info
        self.name = self.info.name
        self.settings = settings
        self.credentials = credentials
        self.policy = policy
        self.transport = transport
        self.plugins = plugins
        self.secrets = policy.secrets
        self.server = server
        self.clock = policy.clock

    # -- the provider's pillars, behind the boundary ---------------------------------------------------------

    def exchange(self, op: Operation) -> Exchange[Any] | UploadProtocol:
        """What the provider sends for ``op``."""
        with plugin_boundary(self.plugin, f"exchange({operation_name(op)})", self.secrets):
            built = self.provider.exchange(op, self.credentials, self.settings)
        want_protocol = operation_name(op) == "upload_parts"
        if want_protocol and not isinstance(built, UploadProtocol):
            raise PluginError(
                f"provider {self.name!r} returned {type(built).__name__} for a large upload, not an UploadProtocol"
            )
        if not want_protocol and not isinstance(built, Exchange):
            raise PluginError(
                f"provider {self.name!r} returned {type(built).__name__} for {operation_name(op)!r}, not an Exchange"
            )
        return built

    # -- sending -----------------------------------------------------------------------------------------------

    def run(
        self,
        exchange: Exchange[T],
        *,
        body: BodySource | None = None,
        retries: bool = True,
        sink: IO[bytes] | None = None,
        on_sink_chunk: Callable[[bytes], None] | None = None,
        digests: Callable[[], Mapping[str, str]] | None = None,
        file_id: str | None = None,
    ) -> T:
        """Send ``exchange`` and return what its reader made of the answer.

        ``digests`` gives the digests of the file's bytes as sent (for a lost answer's probe); ``file_id`` is the
        file the request is about (a 404 is then :class:`FileNotFound`).  A provider error leaves with every echo of
        a secret masked, in its message and each of its fields, and without the errors it was raised from (a JSON
        parser's error keeps the whole answer it could not parse).
        """
        try:
            return self._run(exchange, body, retries, sink, on_sink_chunk, digests, file_id)
        except ProviderError as exc:
            failed = exc.redacted(self.secrets)
        raise failed  # out of the ``except``: it carries no context

    def _run(
        self,
        exchange: Exchange[T],
        body: BodySource | None,
        retries: bool,
        sink: IO[bytes] | None,
        on_sink_chunk: Callable[[bytes], None] | None,
        digests: Callable[[], Mapping[str, str]] | None,
        file_id: str | None,
    ) -> T:
        with plugin_boundary(self.plugin, "llmfiles_request", self.secrets):
            request = self.plugins.prepare_request(self.name, exchange.request)
        policy = self.policy if retries else _once(self.policy)
        started = self.clock.time()
        probe = exchange.probe
        lost = None
        if probe is not None:

            def lost(why: str) -> FileObject | None:
                return self._look(probe, started, digests, why)

        for second_try in (False, True):
            sent = self.transport.send(
                request, policy, body=body, sink=sink, on_sink_chunk=on_sink_chunk, lost=lost, server=self.server
            )
            if sent.found is not None:
                return sent.found  # type: ignore[return-value]  # a probe only answers for an Exchange[FileObject]
            response = sent.response
            assert response is not None
            if response.status >= 400:
                raise self._error(exchange, response, sent.attempts, file_id)
            try:
                with plugin_boundary(self.name, "the answer", self.secrets, reading=True):
                    return exchange.read(response)
            except ProviderError as exc:
                unreadable = exc.redacted(self.secrets)
            if probe is None or second_try:
                raise unreadable
            # a create answered 2xx with a body that cannot be read: the file may exist; look before sending again
            found = self._look(probe, started, digests, f"an unreadable answer ({unreadable.message})")
            if found is not None:
                return found  # type: ignore[return-value]
        raise AssertionError("unreachable")

    def _error(
        self, exchange: Exchange[Any], response: HttpResponse, attempts: int, file_id: str | None
    ) -> LLMFilesError:
        """The provider's error for an error status: read by the exchange, specialized, redacted."""
        try:
            with plugin_boundary(self.name, "an error answer", self.secrets, reading=True):
                err = exchange.error(response)
            if not isinstance(err, ProviderError):
                raise TypeError(f"the error reader returned {type(err).__name__}")
        except (ProviderError, TypeError):
            text = response.body[:500].decode("utf-8", "replace").strip() or "(empty body)"
            err = ProviderError(text, provider=self.name, status=response.status)
        if err.status is None:
            err.status = response.status
        # a refusal from a provider that takes no credentials (the local store) is not about a credential
        credentialed = self.credentials.kind != "none"
        if response.status in (401, 403) and credentialed and not isinstance(err, AuthenticationError):
            err = err.becoming(
                AuthenticationError,
                f"{err.message} (the credential used came from {self.credentials.source}; check it is valid and "
                "allowed to use this endpoint)",
            )
        elif response.status == 404 and file_id is not None and not isinstance(err, FileNotFound):
            err = err.becoming(FileNotFound)
        if attempts > 1:
            err.add_note(f"llmfiles: gave up after {attempts} attempts")
        return err.redacted(self.secrets)

    # -- lost answers --------------------------------------------------------------------------------------------

    def _look(
        self,
        probe: Probe,
        started: float,
        digests: Callable[[], Mapping[str, str]] | None,
        why: str,
    ) -> FileObject | None:
        """What a create whose answer was lost made, from its probe: the file, ``None`` when it made none, or
        :class:`MaybeUploaded` when that cannot be told."""
        log.info("looking for what a request whose answer was lost (%s) created", why)
        with plugin_boundary(self.plugin, "llmfiles_request", self.secrets):
            request = self.plugins.prepare_request(self.name, probe.request)
        sent: Sent[object] = self.transport.send(request, self.policy, server=self.server)
        response = sent.response
        assert response is not None
        if response.status >= 400 and response.status != 404:
            raise ProviderError(
                f"the lookup for what the lost request created failed with HTTP {response.status}",
                provider=self.name,
                status=response.status,
            )
        with plugin_boundary(self.name, "the probe's answer", self.secrets, reading=True):
            candidates = list(probe.read(response))
        for c in candidates:
            if not isinstance(c, FileObject):
                raise PluginError(f"provider {self.name!r}'s probe returned {type(c).__name__}, not FileObject")
        return decide(candidates, unique=probe.unique, started=started, digests=digests() if digests else {})


def decide(
    candidates: Sequence[FileObject], *, unique: bool, started: float, digests: Mapping[str, str]
) -> FileObject | None:
    """The file a create whose answer was lost made, among the ``candidates`` its probe found (see
    :class:`~llmfiles.provider.Probe`): never one made before the request started, and never one that cannot be told
    apart from another upload (:class:`MaybeUploaded`)."""
    fresh = [c for c in candidates if unique or c.created_at >= int(started) - CLOCK_TOLERANCE]
    if not fresh:
        return None
    if unique:
        found = max(fresh, key=lambda c: c.created_at)
        if compare(found, digests) is False:
            raise UploadFailed(
                f"the provider has {found.id}, made by this upload, but with other content than was sent "
                f"({_differences(found, digests)}); delete it and upload again"
            )
        return found
    matching = [c for c in fresh if compare(c, digests)]
    if matching:
        return max(matching, key=lambda c: c.created_at)
    unknown = [c for c in fresh if compare(c, digests) is None]
    if unknown:
        ids = ", ".join(c.id for c in unknown)
        raise MaybeUploaded(
            f"the answer to the upload was lost, and the provider now has {ids} with the same name and size, made "
            "since the upload started; whether it holds these bytes cannot be told from the provider's answers, so "
            f"nothing was sent again. The file may already be uploaded as {unknown[0].id}: check it, or delete it and "
            "upload again",
            [c.id for c in unknown],
        )
    return None


def compare(file: FileObject, digests: Mapping[str, str]) -> bool | None:
    """Whether the checksums the provider reports for ``file`` match ``digests`` (``None``: nothing to compare)."""
    common = [k for k in file.checksums if k in digests]
    if not common:
        return None
    return all(file.checksums[k].lower() == digests[k].lower() for k in common)


def _differences(file: FileObject, digests: Mapping[str, str]) -> str:
    return ", ".join(
        f"{k} {file.checksums[k]} stored, {digests[k]} sent"
        for k in file.checksums
        if k in digests and file.checksums[k].lower() != digests[k].lower()
    )


def verify_stored(file: FileObject, digests: Mapping[str, str], display: str) -> None:
    """:class:`UploadFailed` when the provider reports a checksum for what it stored that differs from the bytes
    that were sent."""
    if compare(file, digests) is False:
        raise UploadFailed(
            f"{file.id}: the provider stored other bytes than llmfiles sent from {display} "
            f"({_differences(file, digests)}): the data changed on the way"
        )


def _once(policy: Policy) -> Policy:
    return attrs.evolve(policy, max_retries=0)


class Resolver:
    """Turns ``(provider, explicit settings)`` into a :class:`Call`: finds the provider, resolves its settings
    through the chain and its credentials (a plugin's ``llmfiles_credentials`` first, then the provider's own)."""

    def __init__(
        self,
        *,
        plugins: PluginManager,
        transport: Transport,
        client_settings: Mapping[str, Any],
        environ: Callable[[], Mapping[str, str]],
        default_provider: str | None,
        clock: Clock,
        on_retry: Callable[[RetryNotice], None] | None = None,
        config: ConfigFile | None = None,
    ) -> None:
        self.plugins = plugins
        self.transport = transport
        self.client_settings = client_settings
        self.environ = environ
        self.default_provider = default_provider
        self.clock = clock
        self.on_retry = on_retry
        self.config = config
        self._kept = SettingsCache()

    def profile(self) -> Profile | None:
        """The config file's chosen profile (``None``: no config file)."""
        return self.config.profile() if self.config is not None else None

    def provider_name(self, provider: str | None) -> str:
        """The provider of a call: its argument, else the client's, else ``$LLMFILES_PROVIDER``, else the config
        profile's, else ``local``."""
        if provider is not None and not isinstance(provider, str):
            raise TypeError(f"provider must be a provider's name (a str), not {type(provider).__name__}")
        found = provider or self.default_provider or self.environ().get("LLMFILES_PROVIDER")
        if not found:
            profile = self.profile()
            found = profile.provider if profile is not None else None
        return found or "local"

    def registered(self, provider: str | None) -> Registered:
        return self.plugins.get(self.provider_name(provider))

    def settings(self, info: ProviderInfo, explicit: Mapping[str, Any]) -> Settings:
        """The settings of a call to ``info``'s provider (kept for the next call with the same inputs)."""
        from llmfiles.settings import resolve_settings

        asked: list[str] = []

        def get_secret(name: str, provider: str, core: Mapping[str, Any]) -> str | None:
            if not self.plugins.has_secret_hooks():
                return None
            asked.append(name)
            http = CallHttp(self.transport, self._policy(provider, core, ()))
            with plugin_boundary("secret hooks", "llmfiles_get_secret", ()):
                return self.plugins.get_secret(name, provider, http)

        environ = self.environ()
        profile = self.profile()
        key = self._kept.key(info, explicit, environ, profile)
        kept = self._kept.get(key, info, profile) if key is not None else None
        if kept is not None:
            return kept
        config: dict[str, Any] = {}
        if profile is not None:
            from llmfiles.config import values_for
            from llmfiles.settings import all_specs

            specs = {spec.name: spec for spec in all_specs(info)}
            config = values_for(profile, specs, info.name, (info.name, *info.aliases))
        settings = resolve_settings(info, explicit, self.client_settings, environ, get_secret=get_secret, config=config)
        if key is not None and not asked:
            self._kept.put(key, info, profile, settings)
        return settings

    def _policy(self, provider: str, values: Mapping[str, Any], secrets: Sequence[str]) -> Policy:
        deadline = values.get("deadline")
        deadline_at = self.clock.monotonic() + float(deadline) if deadline else None
        return make_policy(provider, values, secrets, clock=self.clock, on_retry=self.on_retry, deadline_at=deadline_at)

    def credentials(
        self, registered: Registered, settings: Settings, policy: Policy, *, offline: bool = False
    ) -> Credentials:
        provider = registered.provider
        name = provider.info.name
        environ = self.environ()
        http = CallHttp(self.transport, policy, offline=offline)
        with plugin_boundary("credential hooks", "llmfiles_credentials", policy.secrets):
            found = self.plugins.credentials(name, settings, environ, http)
        if found is not None:
            return found
        with plugin_boundary(registered.plugin, "credentials", policy.secrets):
            return provider.credentials(settings, environ, http)

    def call(self, provider: str | None, explicit: Mapping[str, Any], *, credentials: bool = True) -> Call:
        """The resolved call; without ``credentials`` none are looked for (a dry run, offline checks)."""
        registered = self.registered(provider)
        info = registered.provider.info
        settings = self.settings(info, explicit)
        call = Call(
            provider=registered.provider,
            plugin=registered.plugin,
            settings=settings,
            credentials=NO_CREDENTIALS,
            policy=self._policy(info.name, settings.values, settings.secrets()),
            transport=self.transport,
            plugins=self.plugins,
            server=registered.server,
        )
        return self.authorize(call) if credentials else call

    def authorize(self, call: Call, *, offline: bool = False) -> Call:
        """``call`` with its credentials resolved (``offline``: for a dry run, without asking for a token)."""
        registered = Registered(provider=call.provider, plugin=call.plugin)
        creds = self.credentials(registered, call.settings, call.policy, offline=offline)
        policy = call.policy
        if creds.secrets():
            policy = attrs.evolve(policy, secrets=(*policy.secrets, *creds.secrets()))
        return Call(
            provider=call.provider,
            plugin=call.plugin,
            settings=call.settings,
            credentials=creds,
            policy=policy,
            transport=self.transport,
            plugins=self.plugins,
            server=call.server,
        )
