"""The settings chain: explicit argument > ``Client`` settings > environment variables > the config file (the chosen
profile, :mod:`llmfiles.config`) > secret hooks > the default.

Every value remembers where it came from, so errors can say "the key from env OPENAI_API_KEY was refused"
without ever showing the key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from llmfiles.errors import InvalidSetting
from llmfiles.models import ProviderInfo, Secret, Settings, SettingSpec

MiB = 1024 * 1024

#: Settings every provider understands; a provider's own ``ProviderInfo.settings`` come after these.
CORE_SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec(
        name="timeout",
        kind="float",
        env=("LLMFILES_TIMEOUT",),
        default=600.0,
        help="seconds a connect, or any stall while sending or receiving, may last (not the whole transfer)",
    ),
    SettingSpec(
        name="connect_timeout",
        kind="float",
        env=("LLMFILES_CONNECT_TIMEOUT",),
        default=15.0,
        help="seconds opening a connection (DNS, TCP, TLS) may take, at most (and never more than timeout)",
    ),
    SettingSpec(
        name="deadline",
        kind="float",
        env=("LLMFILES_DEADLINE",),
        help="seconds the whole operation may take, retries included (default: no limit)",
    ),
    SettingSpec(
        name="max_retries",
        kind="int",
        env=("LLMFILES_MAX_RETRIES",),
        default=5,
        help="retries of a failed request (connection errors, 408, 409, 429, 5xx)",
    ),
    SettingSpec(
        name="max_retry_wait",
        kind="float",
        env=("LLMFILES_MAX_RETRY_WAIT",),
        default=60.0,
        help="the longest wait between two retries, Retry-After included",
    ),
    SettingSpec(
        name="multipart_threshold",
        kind="size",
        env=("LLMFILES_MULTIPART_THRESHOLD",),
        help="files larger than this use the provider's large-file protocol (default: the provider's)",
    ),
    SettingSpec(
        name="part_size",
        kind="size",
        env=("LLMFILES_PART_SIZE",),
        help="size of each part of a large upload (default: the provider's; grown to fit the part limit)",
    ),
    SettingSpec(
        name="max_concurrency",
        kind="int",
        env=("LLMFILES_MAX_CONCURRENCY",),
        default=4,
        help="parts of one large upload sent at the same time",
    ),
    SettingSpec(
        name="allow_insecure_http",
        kind="bool",
        env=("LLMFILES_ALLOW_INSECURE_HTTP",),
        default=False,
        help="allow plain http:// to hosts that are not loopback",
    ),
    SettingSpec(
        name="verify",
        kind="object",
        env=("LLMFILES_CA_BUNDLE",),
        default=True,
        help="verify TLS certificates (True), or the path of a CA bundle",
    ),
    SettingSpec(
        name="validate",
        kind="bool",
        env=("LLMFILES_VALIDATE",),
        default=True,
        help="check fine-tune and batch files before upload",
    ),
    SettingSpec(
        name="check_first",
        kind="bool",
        env=("LLMFILES_CHECK_FIRST",),
        default=False,
        help="check the whole file before its first byte is sent (no byte of a bad file leaves the machine), "
        "instead of checking while sending and committing only once the checks passed",
    ),
    SettingSpec(
        name="check_worker",
        kind="bool",
        env=("LLMFILES_CHECK_WORKER",),
        default=True,
        help="check large files (64 MiB and more) in a separate process, so checking runs on another core than sending",
    ),
    SettingSpec(
        name="convert",
        kind="object",
        env=("LLMFILES_CONVERT",),
        help="convert the file with this conversion (see `llmfiles convert`) before it is uploaded; True: the "
        "provider's usual one",
    ),
    SettingSpec(
        name="checksum",
        kind="bool",
        env=("LLMFILES_CHECKSUM",),
        default=True,
        help="compute the checksums a provider verifies (the MD5 of OpenAI's and Azure's Uploads API) or reports "
        "(Cloud Storage, S3) for what it stored, and compare them; off saves about 1.3 CPU seconds per GiB",
    ),
    SettingSpec(
        name="if_exists",
        env=("LLMFILES_IF_EXISTS",),
        default="new",
        help="when the provider already has a file with the same content and purpose (SHA-256, recorded by earlier "
        "uploads): 'new' uploads another copy, 'reuse' returns the existing file, 'error' refuses",
    ),
    SettingSpec(
        name="resume",
        kind="bool",
        env=("LLMFILES_RESUME",),
        default=True,
        help="record large uploads in $LLMFILES_HOME/state.db, so that an interrupted one continues where it stopped "
        "when it is run again",
    ),
)
IF_EXISTS = ("new", "reuse", "error")
CORE_NAMES = frozenset(s.name for s in CORE_SETTINGS)

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)\s*$", re.IGNORECASE)
_SIZE_POWER = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_size(value: Any, *, name: str = "size") -> int:
    """Parse ``8388608``, ``"8MiB"``, ``"8 MB"`` (decimal), ``"8M"`` (binary) into bytes."""
    if isinstance(value, bool):
        raise InvalidSetting(f"{name}: {value!r} is not a size; use bytes or a value such as 8MiB")
    if isinstance(value, int):
        if value < 0:
            raise InvalidSetting(f"{name}: {value} is negative; use a size such as 8MiB")
        return value
    if isinstance(value, float) and value.is_integer():
        return parse_size(int(value), name=name)
    m = _SIZE_RE.match(str(value))
    if not m:
        raise InvalidSetting(f"{name}: {value!r} is not a size; use bytes or a value such as 8MiB, 512KiB, 1GB")
    number, unit, binary, b = m.groups()
    power = _SIZE_POWER[unit.lower()]
    # "8MB" is decimal; "8MiB" and a bare "8M" are binary, as in most command-line tools.
    base = 1000 if (unit and b and not binary) else 1024
    return int(float(number) * base**power)


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(value)
    return value


def _to_secret(value: Any, label: str) -> Secret | None:
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str):
        raise InvalidSetting(f"{label}: expected a string")
    return Secret(value.strip()) if value.strip() else None


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(value)


def _to_object(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.lower() in {"true", "1", "yes"}:
        return True
    if text.lower() in {"false", "0", "no"}:
        return False
    return text


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "int": lambda v: int(_no_bool(v)),
    "float": lambda v: float(_no_bool(v)),
    "bool": _to_bool,
    "path": os.fspath,
    "object": _to_object,
}


def _convert(spec: SettingSpec, value: Any, where: str) -> Any:
    label = f"{spec.name} (from {where})"
    if value is None:
        return None
    if isinstance(value, Secret) and spec.kind != "secret":
        value = value.reveal()  # a Client kept it hidden by its name; this provider does not call it a secret
    try:
        if spec.kind == "secret":
            return _to_secret(value, label)
        if spec.kind == "size":
            return parse_size(value, name=label)
        convert = _CONVERTERS.get(spec.kind)
        return convert(value) if convert is not None else value
    except InvalidSetting:
        raise
    except (TypeError, ValueError):
        # the value may be a secret: never echo it
        shown = "<hidden>" if spec.secret else repr(value)
        raise InvalidSetting(f"{label}: {shown} is not a valid {spec.kind}") from None


def all_specs(info: ProviderInfo) -> tuple[SettingSpec, ...]:
    """The core's settings followed by the provider's own (a provider may override a core default)."""
    own = {s.name: s for s in info.settings}
    merged = [own.pop(s.name, s) for s in CORE_SETTINGS]
    return (*merged, *own.values())


#: asked for a secret no argument, Client setting or environment variable gave: (name, provider, the core settings
#: resolved so far, for the transport the secret manager talks through) -> the value or None
SecretLookup = Callable[[str, str, Mapping[str, Any]], "str | None"]


def resolve_settings(
    info: ProviderInfo,
    explicit: Mapping[str, Any],
    client: Mapping[str, Any],
    environ: Mapping[str, str],
    get_secret: SecretLookup | None = None,
    config: Mapping[str, tuple[Any, str]] | None = None,
) -> Settings:
    """Resolve every setting of ``info`` through the chain and return them with their sources.

    ``config`` holds what the config file's profile gives this provider (name -> (value, where)).  Unknown explicit
    settings are refused (a typo must not be ignored); ``Client`` settings a provider does not know are left alone,
    since one ``Client`` may serve several providers.  The core's settings resolve first, so a
    secret manager asked for a provider's key talks through a transport with the caller's timeout and TLS settings.
    """
    specs = all_specs(info)
    environ = dict(environ)  # one snapshot: looking each variable up in os.environ costs more than copying it
    known = {s.name for s in specs}
    unknown = sorted(k for k, v in explicit.items() if k not in known)
    if unknown:
        from llmfiles.errors import did_you_mean

        raise InvalidSetting(
            f"provider {info.name!r} has no setting {', '.join(map(repr, unknown))}"
            f"{did_you_mean(unknown[0], sorted(known))}\nits settings: {', '.join(sorted(known))}"
        )
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for spec in specs:
        value, where = _lookup(spec, info, explicit, client, environ, config or {}, get_secret, values)
        values[spec.name] = _convert(spec, value, where)
        sources[spec.name] = where
    if values.get("multipart_threshold") is None:
        values["multipart_threshold"] = info.default_multipart_threshold or info.max_single_request_size
    if values.get("part_size") is None:
        values["part_size"] = info.default_part_size
    _check_numbers(values, sources)
    if_exists = str(values.get("if_exists") or "new").strip().lower()
    if if_exists not in IF_EXISTS:
        raise InvalidSetting(
            f"if_exists (from {sources['if_exists']}) must be one of {', '.join(IF_EXISTS)}, "
            f"not {values['if_exists']!r}"
        )
    values["if_exists"] = if_exists
    return Settings(provider=info.name, values=values, sources=sources)


class SettingsCache:
    """Resolved settings kept per provider, explicit arguments, the values of the environment variables the
    provider's settings read, and the config file's profile, so that a client's next call with the same inputs
    does not resolve them again (resolving cost a tenth of a small upload).  Settings a secret hook was asked for
    are never kept: a secret manager's answer may change between calls."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._entries: dict[Any, tuple[ProviderInfo, object, Settings]] = {}
        #: per provider: the environment variables its settings read, and the names of its secret settings
        self._names: dict[int, tuple[ProviderInfo, tuple[str, ...], frozenset[str]]] = {}

    def key(self, info: ProviderInfo, explicit: Mapping[str, Any], environ: Mapping[str, str], profile: object) -> Any:
        """What the settings of one call are resolved from, or ``None`` when an explicit value cannot be a key.
        A secret given as an argument is kept as a :class:`Secret`, which never shows it."""
        names = self._names.get(id(info))
        if names is None or names[0] is not info:
            specs = all_specs(info)
            env = tuple(dict.fromkeys(var for spec in specs for var in spec.env))
            names = (info, env, frozenset(spec.name for spec in specs if spec.secret))
            self._names[id(info)] = names
        secret = names[2]
        given = tuple((k, Secret(v) if k in secret and isinstance(v, str) else v) for k, v in explicit.items())
        key = (id(info), id(profile), given, tuple(map(environ.get, names[1])))
        try:
            hash(key)
        except TypeError:  # an unhashable explicit value (a credential object, a list)
            return None
        return key

    def get(self, key: Any, info: ProviderInfo, profile: object) -> Settings | None:
        """The settings kept for ``key`` (the ``info`` and ``profile`` objects they were resolved with), or ``None``."""
        found = self._entries.get(key)
        if found is None or found[0] is not info or found[1] is not profile:
            return None
        return found[2]

    def put(self, key: Any, info: ProviderInfo, profile: object, settings: Settings) -> None:
        """Keep ``settings`` for ``key`` (all are forgotten once ``size`` are kept)."""
        if len(self._entries) >= self._size:
            self._entries.clear()
        self._entries[key] = (info, profile, settings)


def _lookup(
    spec: SettingSpec,
    info: ProviderInfo,
    explicit: Mapping[str, Any],
    client: Mapping[str, Any],
    environ: Mapping[str, str],
    config: Mapping[str, tuple[Any, str]],
    get_secret: SecretLookup | None,
    resolved: Mapping[str, Any],
) -> tuple[Any, str]:
    """The value of one setting from the first link of the chain that has it, and where it came from."""
    if explicit.get(spec.name) is not None:
        return explicit[spec.name], f"argument {spec.name}"
    if client.get(spec.name) is not None:
        return client[spec.name], f"Client setting {spec.name}"
    for var in spec.env:
        raw = environ.get(var)
        if raw is not None and raw.strip() != "":
            return raw, f"env {var}"
    if spec.name in config:
        return config[spec.name]
    if spec.secret and get_secret is not None:
        for secret_name in spec.lookup_secret_names:
            found = get_secret(secret_name, info.name, resolved)
            if found:
                return found, f"secret {secret_name}"
    return spec.default, "default"


def _check_numbers(values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    """Numbers that make no sense are configuration errors, not surprises later (``nan``, ``inf``, 0 or less)."""
    import math

    for name in ("timeout", "connect_timeout", "deadline", "max_retry_wait"):
        value = values.get(name)
        if value is None:
            continue
        allow_zero = name == "max_retry_wait"
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            need = "0 or more" if allow_zero else "greater than 0"
            raise InvalidSetting(f"{name} (from {sources[name]}) must be a number of seconds {need}, not {value!r}")
    if values["max_concurrency"] <= 0:
        raise InvalidSetting(f"max_concurrency (from {sources['max_concurrency']}) must be greater than 0")
    if values["max_retries"] < 0:
        raise InvalidSetting(f"max_retries (from {sources['max_retries']}) must be 0 or more")


def places_looked(info: ProviderInfo, names: tuple[str, ...]) -> list[str]:
    """Every place the chain looked for ``names`` (argument, Client, env vars, the config file, secret names), for
    errors."""
    from llmfiles.errors import advice, cli_setting

    out: list[str] = []
    specs = {s.name: s for s in all_specs(info)}
    for name in names:
        spec = specs[name]
        # the command line has one way to give a setting, Python two; a Python object is given in Python only
        python_only = spec.kind == "object"
        cli = [] if python_only else [f"-s {cli_setting(name, info.name)}=..."]
        out.extend(advice([f"argument {name}=", f"Client({name}=...)"], cli))
        out.extend(f"env {v}" for v in spec.env)
        if not python_only:
            out.append(f"config file [PROFILE.{info.name}] {name}")
        if spec.lookup_secret_names:
            out.append("secret hooks for " + ", ".join(spec.lookup_secret_names))
    return out


#: names a ``Client`` takes besides settings: ``home`` is its data folder (and the ``local`` store's)
CLIENT_NAMES = frozenset({"home"})


def check_client_settings(settings: Mapping[str, Any], providers: Callable[[], Sequence[ProviderInfo]]) -> None:
    """Refuse the ``Client(...)`` settings that no provider could use: a name that is no setting of the core or of
    any installed provider (``providers()`` lists them, loaded only when a name is not a core setting), or a value
    its setting cannot take (``max_concurrency="x"``).  Checked when the client is made, not at its first call."""
    from llmfiles.errors import did_you_mean

    core = {spec.name: spec for spec in CORE_SETTINGS}
    own = {k: v for k, v in settings.items() if k in core}
    if own:  # converted and checked as a call would (numbers in range, if_exists...)
        resolve_settings(_CORE_ONLY, {}, own, {})
    others = [k for k in settings if k not in core and k not in CLIENT_NAMES]
    if not others:
        return
    specs: dict[str, list[SettingSpec]] = {}
    for info in providers():
        for spec in info.settings:
            specs.setdefault(spec.name, []).append(spec)
    for name in others:
        found = specs.get(name)
        if not found:
            raise InvalidSetting(
                f"Client setting {name!r} is not a setting of the core or of any installed provider"
                f"{did_you_mean(name, sorted({*core, *specs}))}"
            )
        problems: list[InvalidSetting] = []
        for spec in found:
            try:
                _convert(spec, settings[name], f"Client setting {name}")
                break
            except InvalidSetting as exc:
                problems.append(exc)
        else:
            raise problems[0]


_CORE_ONLY = ProviderInfo(name="core", package="llmfiles", purposes=())
