"""OpenAI-compatible platforms as data: each row of ``presets.toml`` is one provider (Groq, xAI, Perplexity, Novita
AI, and ``openai_compatible`` for any server at an ``api_base`` of your choice).

A row (:class:`Preset`) says where the platform is, which environment variable holds its key, which purposes it
takes and its documented limits; :class:`PresetProvider` turns a row into a provider with no code of its own: the
requests are :mod:`llmfiles_openai.wire`'s, the limits become the :class:`~llmfiles.models.ProviderInfo` (size and
purposes, checked before the file is opened) and a record checker (lines per batch file, their format), so every
limit is checked before any byte is sent.

An in-house gateway is one row away: ``openai_compatible`` with ``api_base=...`` (``OPENAI_COMPATIBLE_API_BASE``),
or a plugin of one line that registers ``PresetProvider(Preset(name="acme", ...))``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from attrs import evolve, field, frozen

from llmfiles.errors import InvalidSetting
from llmfiles.models import Credentials, FileLimits, Operation, Problem, ProviderInfo, Settings, SettingSpec
from llmfiles.provider import BaseProvider, Exchange, UploadProtocol
from llmfiles.validate.records import RecordChecker
from llmfiles.validate.stats import ExampleStats, FileFacts, HashIndex
from llmfiles_openai import checks, wire

PACKAGE = "llmfiles-openai"
#: the ways a row's records are checked
RECORD_RULES = ("openai", "preset")


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(str(v) for v in value)


@frozen(kw_only=True)
class Preset:
    """One OpenAI-compatible platform, as data (a row of ``presets.toml``; see its header for each field)."""

    name: str
    title: str
    description: str
    api_base: str
    key_env: tuple[str, ...] = field(converter=_strings)
    purposes: tuple[str, ...] = field(converter=_strings)
    base_env: tuple[str, ...] = field(default=(), converter=_strings)
    jsonl_purposes: tuple[str, ...] = field(default=(), converter=_strings)
    max_file_size: int | None = None
    batch_max_lines: int | None = None
    batch_endpoints: tuple[str, ...] = field(default=(), converter=_strings)
    batch_same_model: str = ""
    record_rules: str = "preset"
    paged_listing: bool = False
    retention: str = ""
    docs: tuple[str, ...] = field(default=(), converter=_strings)

    def __attrs_post_init__(self) -> None:
        if self.record_rules not in RECORD_RULES:
            raise ValueError(f"preset {self.name}: record_rules must be one of {RECORD_RULES}")
        if self.batch_same_model not in ("", "error", "warning"):
            raise ValueError(f"preset {self.name}: batch_same_model must be '', 'error' or 'warning'")
        if not set(self.jsonl_purposes) <= set(self.purposes):
            raise ValueError(f"preset {self.name}: jsonl_purposes must be among its purposes")

    def file_limits(self) -> dict[str, FileLimits]:
        """The row's documented batch limits (``max_file_size`` and ``batch_max_lines``), for ``llmfiles split``."""
        if "batch" not in self.jsonl_purposes or (self.max_file_size is None and self.batch_max_lines is None):
            return {}
        docs = self.docs[0] if self.docs else ""
        return {"batch": FileLimits(max_bytes=self.max_file_size, max_records=self.batch_max_lines, docs=docs)}

    def info(self) -> ProviderInfo:
        """The provider's description: its settings, purposes and limits (one request per file: these platforms
        document no Uploads API)."""
        settings = (
            SettingSpec(name="api_key", kind="secret", env=self.key_env, help=f"the {self.title} API key"),
            SettingSpec(
                name="api_base",
                env=self.base_env,
                default=self.api_base or None,
                help="the API's base URL" + ("" if self.api_base else " (required)"),
            ),
        )
        return ProviderInfo(
            name=self.name,
            package=PACKAGE,
            purposes=self.purposes,
            description=self.description,
            settings=settings,
            credential_settings=("api_key",),
            max_file_size=self.max_file_size,
            max_single_request_size=self.max_file_size,
            jsonl_purposes=self.jsonl_purposes,
            file_limits=self.file_limits(),
        )


def load(text: str | None = None) -> tuple[Preset, ...]:
    """The rows of ``presets.toml`` (or of ``text``, a document of the same shape)."""
    if text is None:
        text = resources.files("llmfiles_openai").joinpath("presets.toml").read_text(encoding="utf-8")
    rows = tomllib.loads(text).get("preset", [])
    return tuple(Preset(**row) for row in rows)


def api_base(preset: Preset, settings: Settings) -> str:
    """The base URL to use: the ``api_base`` setting, or the row's; a clear error when there is none."""
    value = settings.get("api_base") or preset.api_base
    if not value:
        raise InvalidSetting(
            f"{preset.name} needs api_base: the base URL of the OpenAI-compatible server, such as "
            f"http://localhost:4000/v1 (set {', '.join(preset.base_env) or 'api_base=...'})"
        )
    parts = urlsplit(str(value))
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise InvalidSetting(
            f"api_base (from {settings.source('api_base')}): {str(value)!r} is not a base URL such as "
            "https://api.example.com/v1"
        )
    return str(value).rstrip("/")


class PresetProvider(BaseProvider):
    """A provider made of one :class:`Preset` row: OpenAI's wire format at the row's base URL."""

    def __init__(self, preset: Preset) -> None:
        self.preset = preset
        self.info = preset.info()

    def exchange(self, op: Operation, credentials: Credentials, settings: Settings) -> Exchange[Any] | UploadProtocol:
        headers: dict[str, str] = {}
        if credentials.secret is not None:
            headers["Authorization"] = f"Bearer {credentials.secret.reveal()}"
        headers.update(credentials.headers)
        endpoint = wire.Endpoint(
            provider=self.preset.name,
            base=api_base(self.preset, settings),
            headers=headers,
            paged_listing=self.preset.paged_listing,
        )
        return wire.exchange(endpoint, op)

    def record_checker(self, purpose: str, settings: Settings) -> RecordChecker | None:
        preset = self.preset
        if purpose not in preset.jsonl_purposes:
            return None
        if preset.record_rules == "openai":
            if purpose == "fine-tune":
                return checks.FineTuneChecker(provider=preset.title)
            rules = evolve(checks.OPENAI_BATCH, name=preset.name)
            return checks.BatchChecker(rules) if purpose == "batch" else None
        if purpose != "batch":
            return None
        if preset.batch_endpoints:
            rules = checks.BatchRules.of(
                self.info.file_limits.get("batch") or FileLimits(),
                provider=preset.title,
                name=preset.name,
                endpoints=preset.batch_endpoints,
                same_model="error" if preset.batch_same_model == "error" else "warning",
            )
            return checks.BatchChecker(rules)
        return RequestLines(preset)


#: a limit no file reaches (a row that documents none)
UNLIMITED = checks.UNLIMITED


class RequestLines:
    """The lines of a batch input file whose platform documents ``{"custom_id", "body"}`` lines (the request's
    endpoint is given when the batch is created, not on each line): ``custom_id`` a unique non-empty string,
    ``body`` an object naming its ``model`` (one model per file when the row says so), at most the row's number of
    lines and bytes."""

    def __init__(self, preset: Preset) -> None:
        self.preset = preset
        self.lines = 0
        self.ids = HashIndex(max_items=min(preset.batch_max_lines or 1 << 20, 1 << 24) + 1)
        self.model: str | None = None
        self.model_line = 0
        self.stats = ExampleStats(unit="requests")

    def start(self, facts: FileFacts) -> Iterable[Problem]:
        limit = self.preset.max_file_size
        if limit is not None and facts.size > limit:
            yield _problem(
                "",
                "file_too_large",
                f"the file has {facts.size:,} bytes; a {self.preset.title} batch file may have at most {limit:,}",
            )

    def check(self, line_no: int, record: dict[str, Any]) -> list[Problem]:
        self.lines += 1
        out = list(self._custom_id(line_no, record.get("custom_id")))
        body = record.get("body")
        if type(body) is not dict:
            out.append(_problem("body", "bad_body", "body must be an object: the request's JSON body"))
            return out
        model = body.get("model")
        if type(model) is not str or not model:
            out.append(_problem("body.model", "missing_model", "body.model is missing: name the model"))
        elif self.model is None:
            self.model, self.model_line = model, line_no
        elif model != self.model and self.preset.batch_same_model:
            out.append(
                _problem(
                    "body.model",
                    "mixed_models",
                    f"this request uses model {checks.short(model)} but line {self.model_line} uses "
                    f"{checks.short(self.model)}; {self.preset.title} runs a batch file with one model",
                    severity="error" if self.preset.batch_same_model == "error" else "warning",
                )
            )
        self.stats.add(messages=len(body["messages"]) if type(body.get("messages")) is list else None)
        return out

    def _custom_id(self, line_no: int, cid: Any) -> Iterator[Problem]:
        if type(cid) is not str or not cid:
            yield _problem(
                "custom_id",
                "missing_custom_id" if cid is None else "bad_custom_id",
                f'custom_id must be a non-empty string, unique in the file (such as "request-{line_no}")',
            )
            return
        earlier = self.ids.add(hash(cid), line_no)
        if earlier:
            yield _problem(
                "custom_id",
                "duplicate_custom_id",
                f"custom_id {checks.short(cid)} is already used on line {earlier}; every request needs its own id",
            )

    def finish(self) -> list[Problem]:
        limit = self.preset.batch_max_lines
        if limit is not None and self.lines > limit:
            return [
                _problem(
                    "",
                    "too_many_requests",
                    f"the file has {self.lines:,} requests; a {self.preset.title} batch file takes at most "
                    f"{limit:,}: cut it into files that fit with: llmfiles split FILE -p {self.preset.name} "
                    "--purpose batch -o DIR",
                )
            ]
        return []


def _problem(path: str, code: str, message: str, severity: str = "error") -> Problem:
    return Problem(line=None, code=code, message=message, path=path, severity=severity)  # type: ignore[arg-type]


def providers(rows: Iterable[Preset] | None = None) -> list[PresetProvider]:
    """One provider per row (the rows of ``presets.toml`` by default)."""
    return [PresetProvider(row) for row in (load() if rows is None else rows)]


def by_name() -> Mapping[str, Preset]:
    """The packaged rows by provider name."""
    return {row.name: row for row in load()}


def register_all(register: Callable[[PresetProvider], None]) -> None:
    """Register a provider for each packaged row (called by the plugin's ``llmfiles_register_providers``)."""
    for provider in providers():
        register(provider)
