"""The plugin manager: a typed facade over pluggy that finds plugins through entry points, at first use.

Plugins are loaded by pluggy's ``load_setuptools_entrypoints`` (group ``llmfiles``); the built-in ``local``
provider is an entry point of the ``llmfiles`` distribution itself, so it loads exactly like a third-party plugin.
``LLMFILES_DISABLE_PLUGINS=name,...`` blocks entry points by name (pluggy's ``set_blocked``).  Providers and
conversions are collected through the registration hooks; the cross-cutting hooks are called through typed
methods that check what plugins answer.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from llmfiles.errors import InputError, PluginError, ProviderNotInstalled
from llmfiles.pluginapi import hookimpl

if TYPE_CHECKING:
    import pluggy

    from llmfiles.models import Credentials, HttpRequest, Settings
    from llmfiles.provider import Http, Provider, Registered
    from llmfiles.validate.convert import Converter

ENTRY_POINT_GROUP = "llmfiles"
DISABLE_ENV = "LLMFILES_DISABLE_PLUGINS"
#: the plugin that gives the core's own answers to hooks (the innermost ``llmfiles_request``)
CORE_PLUGIN = "llmfiles-core"

#: The distributions (and their folders in the source tree) of the providers the project knows of.
KNOWN_PACKAGES = {
    "openai": ("llmfiles-openai", "plugins/openai"),
    "azure": ("llmfiles-azure", "plugins/azure"),
    "vertex_ai": ("llmfiles-vertex", "plugins/vertex"),
    "vertex": ("llmfiles-vertex", "plugins/vertex"),
    "bedrock": ("llmfiles-bedrock", "plugins/bedrock"),
    "together": ("llmfiles-together", "plugins/together"),
    "fireworks": ("llmfiles-fireworks", "plugins/fireworks"),
    "openai_compatible": ("llmfiles-openai", "plugins/openai"),
    "groq": ("llmfiles-openai", "plugins/openai"),
    "xai": ("llmfiles-openai", "plugins/openai"),
    "perplexity": ("llmfiles-openai", "plugins/openai"),
    "novita": ("llmfiles-openai", "plugins/openai"),
    "gemini": ("llmfiles-gemini", "plugins/gemini"),
    "anthropic": ("llmfiles-anthropic", "plugins/anthropic"),
    "mistral": ("llmfiles-mistral", "plugins/mistral"),
    "local": ("llmfiles", "core"),
}
#: folders of plugins that need other plugins of this repository: installed from a checkout, they go in the same
#: ``pip install`` command, before the plugin (pip cannot find an unpublished dependency anywhere else)
CHECKOUT_NEEDS = {"plugins/azure": ("plugins/openai",), "plugins/vertex": ("plugins/gemini",)}


def install_commands(provider: str) -> tuple[str, str] | None:
    """How to install the known ``provider``: from the package index, and from a checkout of llmfiles (run at its
    top); ``None`` for a provider the project does not know."""
    known = KNOWN_PACKAGES.get(provider)
    if known is None:
        return None
    dist, folder = known
    folders = dict.fromkeys(["./core", *(f"./{f}" for f in CHECKOUT_NEEDS.get(folder, ())), f"./{folder}"])
    return f"pip install {dist}", "pip install " + " ".join(folders)


#: The distributions that provide the known conversions.
KNOWN_CONVERTERS = {
    "gemini": "llmfiles-vertex",
    "claude": "llmfiles-bedrock",
    "nova": "llmfiles-bedrock",
    "prompt-completion": "llmfiles-bedrock",
    "vertex-batch": "llmfiles-vertex",
    "openai-from-vertex": "llmfiles-vertex",
    "gemini-batch": "llmfiles-gemini",
    "openai-from-gemini": "llmfiles-gemini",
    "bedrock-batch": "llmfiles-bedrock",
    "openai-from-bedrock": "llmfiles-bedrock",
    "mistral-batch": "llmfiles-mistral",
    "openai-from-mistral": "llmfiles-mistral",
}


class _CorePlugin:
    """The core's own hook implementations: the request hook's innermost answer."""

    @hookimpl(trylast=True)
    def llmfiles_request(self, provider: str, request: HttpRequest) -> HttpRequest:
        return request


class PluginManager:
    """Loads plugins once and keeps the registered providers and conversions."""

    def __init__(self, *, environ: Mapping[str, str] | None = None, load_entry_points: bool = True) -> None:
        self._environ = environ
        self._load_entry_points = load_entry_points
        self._lock = threading.RLock()
        self._pm: pluggy.PluginManager | None = None
        self._providers: dict[str, Registered] = {}
        self._aliases: dict[str, str] = {}
        self._extra: list[tuple[str, object]] = []
        self._converters: dict[str, tuple[Converter, str]] | None = None
        self._request_hook = False

    # -- loading ---------------------------------------------------------------------------------------------

    def register(self, plugin: object, name: str) -> None:
        """Register a plugin object (a module or an object with hook implementations) by hand."""
        with self._lock:
            if self._pm is None:
                self._extra.append((name, plugin))
                return
            self._register(self._pm, plugin, name)
            self._converters = None
            try:
                self._check_pending(self._pm)
                self._collect(self._pm)
            except PluginError:
                self._pm.unregister(name=name)
                self._collect(self._pm)
                raise

    @property
    def pm(self) -> pluggy.PluginManager:
        """The underlying pluggy manager, loading the plugins on first use."""
        pm = self._pm
        if pm is not None:
            return pm
        with self._lock:
            if self._pm is None:
                self._pm = self._load()
            return self._pm

    def _load(self) -> pluggy.PluginManager:
        import pluggy

        from llmfiles import hookspecs

        pm = pluggy.PluginManager("llmfiles")
        pm.add_hookspecs(hookspecs)
        environ = os.environ if self._environ is None else self._environ
        disabled = {n.strip() for n in environ.get(DISABLE_ENV, "").split(",") if n.strip()}
        for name in disabled:
            pm.set_blocked(name)
        self._register(pm, _CorePlugin(), CORE_PLUGIN)
        if self._load_entry_points:
            try:
                pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
            except Exception as exc:  # a broken plugin must not hide behind a traceback
                raise _load_failure(pm, exc) from exc
        for name, plugin in self._extra:
            if not pm.is_blocked(name):
                self._register(pm, plugin, name)
        self._check_pending(pm)
        self._collect(pm)
        return pm

    @staticmethod
    def _check_pending(pm: pluggy.PluginManager) -> None:
        import pluggy

        try:
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            name = pm.get_name(exc.plugin) or repr(exc.plugin)
            raise PluginError(f"plugin {name!r} implements a hook that does not exist: {exc}") from exc

    @staticmethod
    def _register(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
        import pluggy

        try:
            pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {name!r} is not a valid llmfiles plugin: {exc}") from exc
        except ValueError as exc:
            raise PluginError(f"plugin {name!r} is registered twice: {exc}") from exc

    def _collect(self, pm: pluggy.PluginManager) -> None:
        from llmfiles.provider import InProcessServer, Provider, Registered

        providers: dict[str, Registered] = {}
        aliases: dict[str, str] = {}

        def registrar(plugin: str) -> Callable[[Any], None]:
            def register(provider: Provider) -> None:
                if not isinstance(provider, Provider):
                    raise PluginError(
                        f"plugin {plugin!r} registered {provider!r}, which is not a provider (an object with info, "
                        "credentials, exchange and record_checker: see llmfiles.provider.BaseProvider)"
                    )
                info = provider.info
                for name in (info.name, *info.aliases):
                    if name in aliases:
                        raise _claimed_twice(f"provider name {name!r}", providers[aliases[name]].plugin, plugin)
                    aliases[name] = info.name
                server = provider if isinstance(provider, InProcessServer) else None
                providers[info.name] = Registered(provider=provider, plugin=plugin, server=server)

            return register

        _each_registration(pm, "llmfiles_register_providers", registrar)
        self._providers, self._aliases = providers, aliases
        own = [i for i in pm.hook.llmfiles_request.get_hookimpls() if i.plugin_name != CORE_PLUGIN]
        self._request_hook = bool(own)

    # -- providers -------------------------------------------------------------------------------------------

    def providers(self) -> dict[str, Registered]:
        """Every registered provider by its canonical name."""
        self.pm  # noqa: B018 - loads the plugins
        return dict(self._providers)

    def get(self, name: str) -> Registered:
        """The provider called ``name`` (or an alias); :class:`ProviderNotInstalled` if none is."""
        self.pm  # noqa: B018
        canonical = self._aliases.get(name)
        if canonical is None:
            from llmfiles.errors import did_you_mean

            known = KNOWN_PACKAGES.get(name)
            commands = install_commands(name)
            raise ProviderNotInstalled(
                name,
                package=known[0] if known else None,
                installed=sorted(self._providers),
                checkout=commands[1] if commands else None,
                suggestion=did_you_mean(name, sorted({*self._aliases, *KNOWN_PACKAGES})),
            )
        return self._providers[canonical]

    # -- the cross-cutting hooks, typed ----------------------------------------------------------------------

    def has_secret_hooks(self) -> bool:
        """Whether any plugin implements ``llmfiles_get_secret``."""
        return bool(self.pm.hook.llmfiles_get_secret.get_hookimpls())

    def get_secret(self, name: str, provider: str, http: Http) -> str | None:
        """The first secret-manager plugin's answer for ``name`` (``None``: none has it)."""
        value = self.pm.hook.llmfiles_get_secret(name=name, provider=provider, http=http)
        if value is not None and not isinstance(value, str):
            raise PluginError(f"a llmfiles_get_secret hook answered {type(value).__name__} for {name!r}, not str")
        return value

    def credentials(
        self, provider: str, settings: Settings, environ: Mapping[str, str], http: Http
    ) -> Credentials | None:
        """Credentials a plugin gives for ``provider`` instead of the provider's own resolution (``None``: none)."""
        from llmfiles.models import Credentials

        found = self.pm.hook.llmfiles_credentials(provider=provider, settings=settings, environ=environ, http=http)
        if found is not None and not isinstance(found, Credentials):
            raise PluginError(f"a llmfiles_credentials hook answered {type(found).__name__}, not Credentials")
        return found

    def prepare_request(self, provider: str, request: HttpRequest) -> HttpRequest:
        """``request`` as the ``llmfiles_request`` hooks leave it (unchanged when no plugin implements it)."""
        if not self._request_hook:
            return request
        from llmfiles.models import HttpRequest

        changed = self.pm.hook.llmfiles_request(provider=provider, request=request)
        if not isinstance(changed, HttpRequest):
            raise PluginError(f"a llmfiles_request hook answered {type(changed).__name__}, not an HttpRequest")
        return changed

    # -- conversions -----------------------------------------------------------------------------------------

    def converters(self) -> dict[str, Converter]:
        """Every registered conversion by name (asked of the plugins on first use)."""
        return {name: conv for name, (conv, _) in self._collect_converters().items()}

    def get_converter(self, name: str) -> Converter:
        """The conversion called ``name``; an :class:`InputError` naming the package to install if there is none."""
        converters = self._collect_converters()
        key = name.strip().lower()
        if key in converters:
            return converters[key][0]
        known = ", ".join(sorted(converters)) or "none"
        package = KNOWN_CONVERTERS.get(key)
        hint = ""
        if package:
            from importlib.metadata import PackageNotFoundError, version

            try:
                hint = f"; {package} {version(package)} is installed but does not provide it: upgrade it"
            except PackageNotFoundError:
                hint = f"; pip install {package} to get it"
        raise InputError(f"no conversion called {name!r} is installed (installed: {known}){hint}")

    def _collect_converters(self) -> dict[str, tuple[Converter, str]]:
        found = self._converters
        if found is not None:
            return found
        from llmfiles.validate.convert import Converter

        pm = self.pm
        with self._lock:
            collected: dict[str, tuple[Converter, str]] = {}

            def registrar(plugin: str) -> Callable[[Any], None]:
                def register(conv: Converter) -> None:
                    if not isinstance(conv, Converter):
                        raise PluginError(f"plugin {plugin!r} registered {conv!r}, which is not a Converter")
                    key = conv.name.strip().lower()
                    if key in collected:
                        raise _claimed_twice(f"conversion {conv.name!r}", collected[key][1], plugin)
                    collected[key] = (conv, plugin)

                return register

            _each_registration(pm, "llmfiles_register_converters", registrar)
            self._converters = collected
            return collected


def _load_failure(pm: pluggy.PluginManager, exc: Exception) -> PluginError:
    """Name the entry point that failed to load (pluggy's loop does not say which one it was)."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if pm.is_blocked(ep.name) or pm.get_plugin(ep.name) is not None:
            continue
        try:
            ep.load()
        except Exception as again:
            dist = ep.dist.name if ep.dist is not None else "?"
            return PluginError(
                f"plugin {ep.name!r} (distribution {dist}, {ep.value}) failed to load: {type(again).__name__}: "
                f"{again}. Fix or uninstall it, or skip it with {DISABLE_ENV}={ep.name}"
            )
    return PluginError(f"a plugin failed to load: {type(exc).__name__}: {exc}")


def _each_registration(pm: pluggy.PluginManager, hook: str, registrar: Callable[[str], Callable[[Any], None]]) -> None:
    """Call every plugin's ``hook`` with the ``register`` callback ``registrar`` makes for that plugin; a plugin
    that fails in it is named in a :class:`PluginError`."""
    for impl in getattr(pm.hook, hook).get_hookimpls():
        try:
            impl.function(register=registrar(impl.plugin_name))
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"plugin {impl.plugin_name!r} failed in {hook}: {type(exc).__name__}: {exc}") from exc


def _claimed_twice(what: str, first: str, second: str) -> PluginError:
    return PluginError(
        f"{what} is claimed by two plugins, {first!r} and {second!r}; uninstall one of them or disable it with "
        f"{DISABLE_ENV}=<entry point name>"
    )


_default: PluginManager | None = None
_default_lock = threading.Lock()


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager (created, not loaded, on first call)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = PluginManager()
    return _default


def reset_plugin_manager() -> None:
    """Forget the loaded plugins, so the next use loads them again (for tests and long-running shells)."""
    global _default
    with _default_lock:
        _default = None
