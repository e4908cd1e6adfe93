"""``upload(file, provider=[...])``: one file to several providers at once, each with its own settings.

Every provider is checked first (installed, takes the purpose, knows the settings it is given), before any byte is
sent.  The uploads then run in parallel; one that fails does not stop or undo the others, and the result has one
entry per provider, in the order given: its file object (or :class:`~llmfiles.shards.SplitUpload`) or its error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from attrs import evolve, frozen

from llmfiles.errors import InputError, InvalidSetting, did_you_mean
from llmfiles.models import FileObject, Progress, ProviderInfo
from llmfiles.shards import SplitUpload

ProgressCallback = Callable[[Progress], None]


@frozen(kw_only=True)
class ProviderResult:
    """One provider's outcome: ``result`` (a FileObject, or a SplitUpload with ``split``) or ``error``."""

    provider: str
    result: FileObject | SplitUpload | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        """Whether this provider's upload succeeded."""
        return self.error is None


@frozen(kw_only=True)
class FanOut:
    """What ``upload(file, provider=[...])`` returns: one :class:`ProviderResult` per provider, in the order given."""

    results: tuple[ProviderResult, ...]

    @property
    def ok(self) -> bool:
        """Whether every provider's upload succeeded."""
        return all(r.ok for r in self.results)

    @property
    def failed(self) -> list[ProviderResult]:
        """The providers whose upload failed."""
        return [r for r in self.results if not r.ok]

    def __getitem__(self, provider: str) -> ProviderResult:
        for r in self.results:
            if r.provider == provider:
                return r
        raise KeyError(provider)

    def __iter__(self) -> Iterator[ProviderResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)


def provider_names(value: Any) -> list[str] | None:
    """The providers of a fan-out (a list or a tuple of names), or ``None`` for a single provider."""
    if not isinstance(value, (list, tuple)):
        return None
    names = [str(v).strip() for v in value]
    if not names or any(not n for n in names):
        raise InputError(f"provider={value!r}: name each provider, such as ['openai', 'vertex_ai']")
    if len(set(names)) != len(names):
        raise InputError(f"provider={value!r}: a provider is named twice")
    return names


def plan_settings(
    providers: Mapping[str, ProviderInfo],
    core: set[str],
    common: Mapping[str, Any],
    per_provider: Mapping[str, Mapping[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Each provider's explicit settings: the common ones it (or the core) knows, then its own.

    A common setting no provider of the list knows, per-provider settings of a provider not in the list, or a
    per-provider setting its provider does not know: :class:`InvalidSetting`, before anything is sent."""
    infos = list(providers.values())
    names = set(providers) | {i.name for i in infos} | {a for i in infos for a in i.aliases}
    for key in per_provider:
        if key not in names:
            raise InvalidSetting(
                f"settings for {key!r}, which is not one of the providers of this upload ({', '.join(sorted(names))})"
                + did_you_mean(key, sorted(names))
            )
    known = {i.name: core | {s.name for s in i.settings} for i in infos}
    for name in common:
        if not any(name in k for k in known.values()):
            raise InvalidSetting(f"{name!r} is a setting of none of the providers {', '.join(known)}")
    out: dict[str, dict[str, Any]] = {}
    for given, info in providers.items():
        own: dict[str, Any] = {}
        for key in {info.name, *info.aliases, given}:
            own.update(per_provider.get(key, {}))
        unknown = sorted(set(own) - known[info.name])
        if unknown:
            raise InvalidSetting(f"{info.name}: {', '.join(unknown)} is no setting of the core or of {info.name}")
        out[given] = {**{k: v for k, v in common.items() if k in known[info.name]}, **own}
    return out


def run(
    upload: Callable[..., FileObject | SplitUpload],
    names: Sequence[str],
    settings: Mapping[str, Mapping[str, Any]],
    progress: ProgressCallback | None,
) -> FanOut:
    """Call ``upload(provider=name, **settings[name])`` for every provider at once; one result per provider."""
    pool = ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="llmfiles-fanout")
    futures: list[tuple[str, Future[FileObject | SplitUpload]]] = []
    try:
        for name in names:
            futures.append(
                (name, pool.submit(upload, provider=name, progress=_labelled(progress, name), **settings[name]))
            )
        results = []
        for name, future in futures:
            error = future.exception()
            if error is None:
                results.append(ProviderResult(provider=name, result=future.result()))
            elif isinstance(error, Exception):
                results.append(ProviderResult(provider=name, error=error))
            else:
                raise error
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return FanOut(results=tuple(results))


def _labelled(progress: ProgressCallback | None, provider: str) -> ProgressCallback | None:
    """``progress`` with each event's file named after its provider (``openai: data.jsonl``)."""
    if progress is None:
        return None

    def report(event: Progress) -> None:
        progress(evolve(event, filename=f"{provider}: {event.filename}"))

    return report


def summary(fanout: FanOut) -> str:
    """One line per provider: its file id (or shards) or its error's first line."""
    lines = []
    for r in fanout.results:
        if r.error is not None:
            first = str(r.error).split("\n", 1)[0]
            lines.append(f"{r.provider}: FAILED: {type(r.error).__name__}: {first}")
        elif isinstance(r.result, SplitUpload):
            lines.append(f"{r.provider}: {len(r.result.files)} shards: {', '.join(f.id for f in r.result.files)}")
        elif r.result is not None:
            lines.append(f"{r.provider}: {r.result.id}")
    return "\n".join(lines)
