"""Checking a file offline, as an upload would before committing it: ``llmfiles validate`` and
:meth:`llmfiles.Client.validate`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from llmfiles.calls import Resolver, plugin_boundary
from llmfiles.conversions import check_purpose_converts, usual_conversion
from llmfiles.models import Problem, Progress
from llmfiles.sources import Source, open_source
from llmfiles.uploads import check_purpose
from llmfiles.validate.jsonl import Report, check_jsonl
from llmfiles.validate.records import RecordChecker

log = logging.getLogger("llmfiles.validate")

if TYPE_CHECKING:
    from llmfiles.validate.convert import Converter, ConvertFn
    from llmfiles.validate.stats import FileFacts


def validate(
    resolver: Resolver,
    file: Any,
    *,
    purpose: str,
    provider: str | None,
    max_problems: int,
    progress: Callable[[Progress], None] | None,
    explicit: Mapping[str, Any],
) -> Report:
    """The report of the checks ``upload`` runs on ``file`` for ``purpose`` at ``provider`` (offline).

    With ``convert=NAME`` each record is checked as it will be uploaded: converted, then checked with the rules an
    upload of the converted file meets (the conversion's target format and the provider's), in one pass over
    ``file``, so every problem is reported at its line in ``file`` (records that cannot be converted, what the
    conversion warns about, what the converted records break), and the statistics are those of the converted
    examples.  A conversion a purpose does not take is refused as ``upload`` refuses it.
    """
    info = resolver.registered(provider).provider.info
    purpose = check_purpose(info, purpose)
    call = resolver.call(provider, explicit, credentials=False)
    with plugin_boundary(call.plugin, "record_checker", call.secrets):
        checker = call.provider.record_checker(purpose, call.settings)
    name = usual_conversion(resolver.plugins, call, purpose)
    notes: list[str] = []
    if name is not None:
        converter = resolver.plugins.get_converter(name)
        check_purpose_converts(converter, purpose)
        with plugin_boundary(name, "the conversion's checker", ()):
            convert = converter.prepare(call.settings)  # a missing setting (model=...): InvalidSetting, raised
            target = converter.checker() if converter.checker is not None else None
        checker = ConvertingChecker(converter, [c for c in (checker, target) if c is not None], convert)
        notes.append(f"checked as converted to {name!r} (the file itself is not changed)")
    source = open_source(file, default_name="upload.jsonl")
    try:
        report = check_jsonl(source, checker=checker, max_problems=max_problems, progress=_teller(progress, source))
    finally:
        source.close()
    report.notes.extend(notes)
    report.checks = _checks_run(resolver, info.name, purpose, checker, name)
    report.record_rules = checker is not None
    return report


def _checks_run(
    resolver: Resolver, checked_by: str, purpose: str, checker: RecordChecker | None, conversion: str | None
) -> list[str]:
    """What the check of a file ran, for the report (``Report.checks``): the JSONL framing, and the provider's
    record rules or, when it has none for ``purpose``, the providers that have some."""
    framing = "UTF-8 JSONL, one JSON object per line"
    if checker is not None:
        converted = f", as converted to {conversion!r}" if conversion else ""
        return [framing, f"{checked_by}'s rules for {purpose!r} records{converted}"]
    others = [name for name in _providers_with_rules(resolver, purpose) if name not in (checked_by,)]
    where = (
        f"record rules for {purpose!r} files come with {', '.join(others)} (--provider NAME, provider=NAME)"
        if others
        else f"no installed provider has record rules for {purpose!r} files"
    )
    return [framing + " only", f"no record rules: provider {checked_by!r} has none for {purpose!r} files; {where}"]


def _providers_with_rules(resolver: Resolver, purpose: str) -> list[str]:
    """The installed providers that check the records of ``purpose`` files (asked with no settings at all: no
    environment, no secret lookups)."""
    from llmfiles.models import Settings

    out = []
    for name, registered in sorted(resolver.plugins.providers().items()):
        if purpose not in registered.provider.info.purposes:
            continue
        try:
            checker = registered.provider.record_checker(purpose, Settings(provider=name, values={}))
        except Exception as exc:  # a provider that cannot answer without its settings is not named
            log.debug("provider %s: no record checker without settings (%s)", name, exc)
            continue
        if checker is not None:
            out.append(name)
    return out


class ConvertingChecker:
    """A :class:`~llmfiles.validate.records.RecordChecker` of records as a conversion will make them: each record
    converted by ``convert`` (the conversion ``converter`` made for the call's settings; the conversion's problems
    at its line), then checked by ``checkers`` (a problem two of them report alike is listed once); the statistics
    are the first checker's."""

    def __init__(self, converter: Converter, checkers: list[RecordChecker], convert: ConvertFn) -> None:
        self.converter = converter
        self.convert = convert
        self.checkers = checkers
        self.stats = getattr(checkers[0], "stats", None) if checkers else None

    def start(self, facts: FileFacts) -> Iterable[Problem]:
        """The checkers' problems of the file as a whole, before its first record: the facts of the converted file,
        which is what is uploaded (written without a BOM, whatever the input had)."""
        facts = attrs.evolve(facts, has_bom=False)
        out: list[Problem] = []
        for checker in self.checkers:
            begin = getattr(checker, "start", None)
            if begin is not None:
                out.extend(begin(facts))
        return self._once(out)

    def check(self, line_no: int, record: dict[str, Any]) -> Iterable[Problem]:
        """The conversion's problems of the record, then the checkers' of the converted record."""
        try:
            converted, problems = self.convert(record)
            out = list(problems)
        except Exception as exc:
            converted, out = None, [_converter_failed(self.converter, exc)]
        if converted is None:
            if not any(p.severity == "error" for p in out):
                out.append(_converter_failed(self.converter, ValueError("no record and no error")))
            return out
        for checker in self.checkers:
            out.extend(checker.check(line_no, converted))
        return self._once(out, line_no)

    def finish(self) -> Iterable[Problem]:
        """The checkers' problems of the file as a whole."""
        return self._once([p for checker in self.checkers for p in checker.finish()])

    def _once(self, problems: list[Problem], line_no: int | None = None) -> list[Problem]:
        if len(self.checkers) < 2:
            return problems
        seen: set[tuple[Any, ...]] = set()
        out = []
        for p in problems:
            key = (p.line if p.line is not None else line_no, p.code, p.path, p.severity, p.message)
            if key not in seen:
                seen.add(key)
                out.append(p)
        return out


def _converter_failed(converter: Converter, exc: BaseException) -> Problem:
    return Problem(
        line=None,
        code="converter_failed",
        message=f"the {converter.name} conversion failed on this record ({type(exc).__name__}: {exc}); this is a "
        f"bug in {converter.package or 'its plugin'}: please report it with the record",
    )


def _teller(progress: Callable[[Progress], None] | None, source: Source) -> Callable[[int], None] | None:
    if progress is None:
        return None
    cb = progress

    def tell(done: int) -> None:
        cb(Progress(operation="check", filename=source.name, done=done, total=source.size))

    return tell
