"""The config file: per-provider defaults and named profiles, for the values otherwise exported every time.

One TOML file (``$LLMFILES_CONFIG``, else ``config.toml`` in the platform's user config folder, see
:func:`llmfiles.paths.config_path`); each top-level table is a profile, ``[default]`` the one used unless
``Client(profile=...)``, ``--profile`` or ``$LLMFILES_PROFILE`` names another.  In a profile, ``provider`` is the
provider of calls that name none, other keys are core settings for every provider, and a sub-table per provider
holds that provider's settings::

    [default]
    provider = "vertex_ai"
    max_concurrency = 8

    [default.vertex_ai]
    bucket = "my-training-files"
    project = "my-project"

    [work.bedrock]
    bucket = "acme-bedrock-files"
    aws_region = "eu-west-1"

A named profile does not inherit from ``[default]`` (as with AWS profiles).  The file is the fourth link of the
settings chain: an explicit argument, a ``Client`` setting and the environment all win over it, and it wins over
the secret-manager hooks.  A secret setting (``api_key``...) is read from it only from a file that only its owner
can read; otherwise the call is refused.
"""

from __future__ import annotations

import os
import stat
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attrs import field, frozen

from llmfiles.errors import ConfigurationError, InvalidSetting, did_you_mean

PROFILE_ENV = "LLMFILES_PROFILE"
DEFAULT_PROFILE = "default"
_SCALARS = (str, int, float, bool)


@frozen(kw_only=True)
class Profile:
    """One profile of the config file: its default provider, its core settings and its providers' tables."""

    path: Path
    name: str
    provider: str | None = None
    settings: Mapping[str, Any] = field(factory=dict, repr=False)
    providers: Mapping[str, Mapping[str, Any]] = field(factory=dict, repr=False)
    #: whether only the file's owner can read it (always true where POSIX modes do not apply)
    private: bool = True

    def where(self, table: str | None = None) -> str:
        """How a value from this profile is named in messages and ``Settings.source()``."""
        section = self.name if table is None else f"{self.name}.{table}"
        return f"config file {self.path} [{section}]"

    def table_for(self, names: tuple[str, ...]) -> tuple[str | None, Mapping[str, Any]]:
        """The provider table of the first of ``names`` (a provider's name and aliases) the profile has."""
        found = [n for n in names if n in self.providers]
        if len(found) > 1:
            raise ConfigurationError(
                f"{self.where()} has tables for {', '.join(found)}, which are one provider: keep one of them"
            )
        return (found[0], self.providers[found[0]]) if found else (None, {})

    def private_or_refuse(self, what: str) -> None:
        """Refuse to read the secret ``what`` from a file that others can read."""
        if not self.private:
            raise ConfigurationError(
                f"{self.path} holds {what}, and users other than its owner can read the file: run "
                f"`chmod 600 {self.path}`, or keep the secret in the environment instead"
            )


class ConfigFile:
    """The config file of a client: read when first needed and again when it changes (by size and mtime)."""

    def __init__(self, profile: str | None, environ: Any) -> None:
        #: the profile the client was made with (``None``: ``$LLMFILES_PROFILE``, else ``default``)
        self.chosen = profile
        self._environ = environ
        self._lock = threading.Lock()
        self._cache: tuple[Any, Profile | None] | None = None

    def profile(self) -> Profile | None:
        """The chosen profile, or ``None`` when there is no config file (or no ``[default]`` in it)."""
        environ: Mapping[str, str] = self._environ()
        from llmfiles.paths import CONFIG_ENV, config_path

        path = config_path(environ)
        name = self.chosen or environ.get(PROFILE_ENV, "").strip() or None
        named_by = "profile=" if self.chosen else f"env {PROFILE_ENV}" if name else None
        try:
            st = os.stat(path)
        except FileNotFoundError:
            if environ.get(CONFIG_ENV):
                raise ConfigurationError(f"{CONFIG_ENV} names {path}, which does not exist") from None
            if name is not None:
                raise ConfigurationError(
                    f"no profile {name!r} (from {named_by}): there is no config file {path}; create it with a "
                    f"[{name}] table (see the concepts page: the config file)"
                ) from None
            return None
        except OSError as exc:
            raise ConfigurationError(f"the config file {path} cannot be read: {exc.strerror}") from None
        key = (str(path), name, st.st_mtime_ns, st.st_size, st.st_mode, st.st_ino)
        with self._lock:
            if self._cache is not None and self._cache[0] == key:
                return self._cache[1]
            found = load(path, name, named_by, st)
            self._cache = (key, found)
            return found


def load(path: Path, name: str | None, named_by: str | None, st: os.stat_result | None = None) -> Profile | None:
    """The profile ``name`` (``None``: ``default``, which may be missing) of the config file at ``path``."""
    import tomllib

    st = st or os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise ConfigurationError(f"the config file {path} is not a regular file")
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"the config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigurationError(f"the config file {path} cannot be read: {exc.strerror}") from None
    chosen = name or DEFAULT_PROFILE
    table = data.get(chosen)
    if table is None:
        if name is None:
            return None
        profiles = [k for k, v in data.items() if isinstance(v, dict)]
        raise ConfigurationError(
            f"no profile {name!r} (from {named_by}) in the config file {path}{did_you_mean(name, profiles)} "
            f"(profiles: {', '.join(profiles) or 'none'})"
        )
    if not isinstance(table, dict):
        raise ConfigurationError(f"the config file {path}: [{chosen}] must be a table of settings, not a value")
    return _profile(path, chosen, table, _private(st))


def _profile(path: Path, name: str, table: Mapping[str, Any], private: bool) -> Profile:
    provider = table.get("provider")
    if provider is not None and not isinstance(provider, str):
        raise ConfigurationError(f"the config file {path}: [{name}] provider must be a provider's name (a string)")
    settings: dict[str, Any] = {}
    providers: dict[str, Mapping[str, Any]] = {}
    for key, value in table.items():
        if key == "provider":
            continue
        if isinstance(value, dict):
            for k, v in value.items():
                _check_value(path, f"{name}.{key}", k, v)
            providers[key] = value
        else:
            _check_value(path, name, key, value)
            settings[key] = value
    return Profile(path=path, name=name, provider=provider, settings=settings, providers=providers, private=private)


def _check_value(path: Path, table: str, key: str, value: Any) -> None:
    if not isinstance(value, _SCALARS):
        raise ConfigurationError(
            f"the config file {path}: [{table}] {key} must be a string, a number or true/false, not a "
            f"{type(value).__name__}"
        )


def _private(st: os.stat_result) -> bool:
    """Whether only the owner (who must be this user) can read the file; always true on Windows, where POSIX modes
    say nothing about who can read a file."""
    if sys.platform == "win32":
        return True
    getuid = getattr(os, "getuid", None)
    owned = getuid is None or st.st_uid == getuid()
    return owned and not st.st_mode & 0o077


def values_for(profile: Profile, specs: Mapping[str, Any], provider: str, names: tuple[str, ...]) -> dict[str, Any]:
    """The settings ``profile`` gives the provider called ``names`` (its name and aliases) whose settings are
    ``specs`` (name -> SettingSpec): ``{name: (value, where)}``.  A key that is no setting is refused (a typo
    must not be ignored), as is a secret from a file that others can read."""
    from llmfiles.settings import CORE_NAMES

    out: dict[str, Any] = {}
    for key, value in profile.settings.items():
        if key not in CORE_NAMES:
            hint = did_you_mean(key, sorted(CORE_NAMES)) or (
                f"; a setting of {provider!r} goes under [{profile.name}.{provider}]" if key in specs else ""
            )
            raise InvalidSetting(f"{profile.where()}: {key!r} is not a setting of every provider{hint}")
        out[key] = (value, profile.where())
    table, own = profile.table_for(names)
    for key, value in own.items():
        spec = specs.get(key)
        if spec is None:
            raise InvalidSetting(
                f"{profile.where(table)}: provider {provider!r} has no setting {key!r}"
                f"{did_you_mean(key, sorted(specs))}"
            )
        if spec.secret:
            profile.private_or_refuse(f"the secret {key} (in [{profile.name}.{table}])")
        out[key] = (value, profile.where(table))
    return out
