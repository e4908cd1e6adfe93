"""The plugin manager: finds provider plugins through entry points, lazily, at first use.

Built-in providers (``local``) are declared as entry points of the ``llmfiles`` distribution itself, so they
load exactly like third-party plugins.  ``LLMFILES_DISABLE_PLUGINS=name,...`` skips entry points by name.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from llmfiles.errors import PluginError, ProviderNotInstalled

if TYPE_CHECKING:
    import pluggy

    from llmfiles.models import ProviderInfo
    from llmfiles.validate.convert import Converter

ENTRY_POINT_GROUP = "llmfiles"
DISABLE_ENV = "LLMFILES_DISABLE_PLUGINS"

#: The distributions that provide the planned providers, for "pip install ..." hints.
KNOWN_PACKAGES = {
    "openai": "llmfiles-openai",
    "azure": "llmfiles-azure",
    "vertex_ai": "llmfiles-vertex",
    "vertex": "llmfiles-vertex",
    "bedrock": "llmfiles-bedrock",
    "local": "llmfiles",
}
#: The distributions that provide the planned conversions, for "pip install ..." hints.
KNOWN_CONVERTERS = {
    "gemini": "llmfiles-vertex",
    "claude": "llmfiles-bedrock",
    "nova": "llmfiles-bedrock",
    "prompt-completion": "llmfiles-bedrock",
}


class PluginManager:
    """A typed facade over pluggy's manager: loads plugins once, keeps the registered providers."""

    def __init__(self, *, environ: Mapping[str, str] | None = None, load_entry_points: bool = True) -> None:
        self._environ = environ
        self._load_entry_points = load_entry_points
        self._lock = threading.RLock()
        self._pm: pluggy.PluginManager | None = None
        self._providers: dict[str, ProviderInfo] = {}
        self._aliases: dict[str, str] = {}
        self._owners: dict[str, str] = {}
        self._extra: list[tuple[str, object]] = []
        self._converters: dict[str, tuple[Converter, str]] | None = None

    # -- loading ---------------------------------------------------------------------------------------------

    def register(self, plugin: object, name: str) -> None:
        """Register a plugin object (a module or a class instance with hook implementations) by hand."""
        with self._lock:
            if self._pm is None:
                self._extra.append((name, plugin))
            else:
                self._register(self._pm, plugin, name)
                self._converters = None
                try:
                    self._check_pending(self._pm)
                    self._collect_providers(self._pm)
                except PluginError:
                    self._pm.unregister(name=name)
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

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def _load(self) -> pluggy.PluginManager:
        import pluggy

        from llmfiles import hookspecs

        pm = pluggy.PluginManager("llmfiles")
        pm.add_hookspecs(hookspecs)
        environ = os.environ if self._environ is None else self._environ
        disabled = {n.strip() for n in environ.get(DISABLE_ENV, "").split(",") if n.strip()}
        if self._load_entry_points:
            from importlib.metadata import entry_points

            seen: set[str] = set()
            for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
                if ep.name in disabled or ep.name in seen:
                    continue
                seen.add(ep.name)
                dist = ep.dist.name if ep.dist is not None else "?"
                try:
                    plugin = ep.load()
                except Exception as exc:  # a broken plugin must not hide behind a traceback
                    raise PluginError(
                        f"plugin {ep.name!r} (distribution {dist}, {ep.value}) failed to load: "
                        f"{type(exc).__name__}: {exc}. Fix or uninstall it, or skip it with "
                        f"{DISABLE_ENV}={ep.name}"
                    ) from exc
                self._register(pm, plugin, ep.name)
        for name, plugin in self._extra:
            if name not in disabled:
                self._register(pm, plugin, name)
        self._check_pending(pm)
        self._collect_providers(pm)
        return pm

    @staticmethod
    def _check_pending(pm: pluggy.PluginManager) -> None:
        import pluggy

        try:
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            name = pm.get_name(exc.plugin) or repr(exc.plugin)
            raise PluginError(f"plugin {name!r} implements a hook that does not exist: {exc}") from exc

    def _register(self, pm: pluggy.PluginManager, plugin: object, name: str) -> None:
        import pluggy

        try:
            pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {name!r} is not a valid llmfiles plugin: {exc}") from exc
        except ValueError as exc:
            raise PluginError(f"plugin {name!r} is registered twice: {exc}") from exc

    def _collect_providers(self, pm: pluggy.PluginManager) -> None:
        from llmfiles.models import ProviderInfo

        providers: dict[str, ProviderInfo] = {}
        aliases: dict[str, str] = {}
        owners: dict[str, str] = {}

        def registrar(plugin: str) -> Callable[[ProviderInfo], None]:
            def register(info: ProviderInfo) -> None:
                if not isinstance(info, ProviderInfo):
                    raise PluginError(f"plugin {plugin!r} registered {info!r}, which is not a ProviderInfo")
                for name in (info.name, *info.aliases):
                    if name in aliases:
                        raise _claimed_twice(f"provider name {name!r}", owners[aliases[name]], plugin)
                    aliases[name] = info.name
                providers[info.name] = info
                owners[info.name] = plugin

            return register

        _each_registration(pm, "llmfiles_register_providers", registrar)
        self._providers, self._aliases, self._owners = providers, aliases, owners

    # -- providers -------------------------------------------------------------------------------------------

    def providers(self) -> dict[str, ProviderInfo]:
        """Every registered provider by its canonical name."""
        self.pm  # noqa: B018 - loads the plugins
        return dict(self._providers)

    def owner(self, provider: str) -> str:
        """The name of the plugin that registered ``provider``."""
        self.pm  # noqa: B018
        return self._owners[self._aliases.get(provider, provider)]

    def get_provider(self, name: str) -> ProviderInfo:
        """The :class:`ProviderInfo` for ``name`` (or an alias); :class:`ProviderNotInstalled` if none."""
        self.pm  # noqa: B018
        canonical = self._aliases.get(name)
        if canonical is None:
            raise ProviderNotInstalled(name, package=KNOWN_PACKAGES.get(name), installed=sorted(self._providers))
        return self._providers[canonical]

    # -- conversions -----------------------------------------------------------------------------------------

    def converters(self) -> dict[str, Converter]:
        """Every registered conversion by name (asked of the plugins on first use)."""
        return {name: conv for name, (conv, _) in self._collect_converters().items()}

    def get_converter(self, name: str) -> Converter:
        """The conversion called ``name``; an :class:`InputError` naming the package to install if there is none."""
        from llmfiles.errors import InputError

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

            def registrar(plugin: str) -> Callable[[Converter], None]:
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
