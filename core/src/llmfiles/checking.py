"""Checking a file offline, as an upload would before committing it: ``llmfiles validate`` and
:meth:`llmfiles.Client.validate`."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from llmfiles.calls import Resolver, plugin_boundary
from llmfiles.conversions import check_purpose_converts, conversion_name
from llmfiles.models import Progress
from llmfiles.sources import Source, open_source
from llmfiles.uploads import check_purpose
from llmfiles.validate.jsonl import Report, check_jsonl


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

    With ``convert=NAME`` the file is converted first (into a temporary file) and the converted records are checked;
    records that cannot be converted are reported at their lines in ``file``, and the conversion's warnings (what it
    had to drop, say) come with the report.  A conversion a purpose does not take is refused as ``upload`` refuses it.
    """
    info = resolver.registered(provider).provider.info
    purpose = check_purpose(info, purpose)
    call = resolver.call(provider, explicit, credentials=False)
    with plugin_boundary(call.plugin, "record_checker", call.secrets):
        checker = call.provider.record_checker(purpose, call.settings)
    source = open_source(file, default_name="upload.jsonl")
    try:
        name = conversion_name(info, call.settings.get("convert"))
        if name is None:
            return check_jsonl(source, checker=checker, max_problems=max_problems, progress=_teller(progress, source))
        check_purpose_converts(info, name, purpose)
        from llmfiles.validate.convert import convert_file

        converter = resolver.plugins.get_converter(name)
        with tempfile.TemporaryDirectory(prefix="llmfiles-validate-") as tmp:
            out = Path(tmp) / source.name
            result = convert_file(source, out, converter, max_problems=max_problems)
            if not result.written:
                return result.output if result.conversion.ok and result.output is not None else result.conversion
            converted = open_source(out)
            try:
                report = check_jsonl(converted, checker=checker, max_problems=max_problems)
            finally:
                converted.close()
            report.path = source.display
            report.notes.append(f"checked as converted to {name!r} (the file itself is not changed)")
            return _with_conversion_warnings(report, result.conversion)
    finally:
        source.close()


def _with_conversion_warnings(report: Report, conversion: Report) -> Report:
    """``report`` with the warnings of the conversion pass first (a conversion that passed has no errors; its
    problems are at the lines of the input, which are the lines of the converted file)."""
    listed = [p for p in conversion.problems if p.severity == "warning"]
    report.problems[:0] = listed
    del report.problems[report.max_problems :]
    report.warnings += conversion.warnings
    return report


def _teller(progress: Callable[[Progress], None] | None, source: Source) -> Callable[[int], None] | None:
    if progress is None:
        return None
    cb = progress

    def tell(done: int) -> None:
        cb(Progress(operation="check", filename=source.name, done=done, total=source.size))

    return tell
