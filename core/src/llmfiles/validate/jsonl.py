"""One streaming pass over a JSONL file: UTF-8, one JSON object per line, record rules, digests.

Constant memory (one block and one line at a time), every problem with its line number, and the checksums a
large upload needs computed from the same bytes, so the file is not read again for them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from attrs import define, field

from llmfiles.models import Problem, Source
from llmfiles.validate.records import RecordChecker

BOM = b"\xef\xbb\xbf"
BLOCK = 1024 * 1024


@define(kw_only=True)
class Report:
    """What one check pass found."""

    path: str
    records: int = 0
    errors: int = 0
    warnings: int = 0
    problems: list[Problem] = field(factory=list)
    has_bom: bool = False
    digests: dict[str, str] = field(factory=dict)
    max_problems: int = 50

    @property
    def ok(self) -> bool:
        return self.errors == 0

    @property
    def total(self) -> int:
        return self.errors + self.warnings

    def add(self, problem: Problem) -> None:
        if problem.severity == "error":
            self.errors += 1
        else:
            self.warnings += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(problem)

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.path,
            "ok": self.ok,
            "records": self.records,
            "errors": self.errors,
            "warnings": self.warnings,
            "problems": [
                {"line": p.line, "path": p.path, "code": p.code, "severity": p.severity, "message": p.message}
                for p in self.problems
            ],
            "problems_not_shown": self.total - len(self.problems),
        }


def _utf8_problem(line_no: int, raw: bytes, exc: UnicodeDecodeError) -> Problem:
    bad = raw[exc.start : exc.start + 4]
    return Problem(
        line=line_no,
        code="not_utf8",
        message=(
            f"byte {exc.start + 1} of the line ({bad!r}) is not valid UTF-8; save the file as UTF-8 "
            "(for example: iconv -f LATIN1 -t UTF-8 in.jsonl > out.jsonl)"
        ),
    )


def check_line(line_no: int, raw: bytes, report: Report, checker: RecordChecker | None) -> None:
    """Check one line (without its newline) and add its problems to ``report``."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if not raw.strip():
        report.add(Problem(line=line_no, code="blank_line", message="blank line; remove it (one JSON object per line)"))
        return
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        report.add(_utf8_problem(line_no, raw, exc))
        return
    try:
        record = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply for the parser
        msg = getattr(exc, "msg", str(exc))
        col = getattr(exc, "colno", None)
        where = f" at column {col}" if col else ""
        report.add(
            Problem(
                line=line_no,
                code="invalid_json",
                message=f"not valid JSON{where}: {msg}; each line must be one JSON object",
            )
        )
        return
    if not isinstance(record, dict):
        report.add(
            Problem(
                line=line_no,
                code="not_object",
                message=f"the line is a JSON {type(record).__name__}, not an object; each line must be one JSON object",
            )
        )
        return
    report.records += 1
    if checker is not None:
        for problem in checker.check(line_no, record):
            report.add(problem)


def check_jsonl(
    source: Source,
    *,
    checker: RecordChecker | None = None,
    digests: Iterable[str] = (),
    max_problems: int = 50,
) -> Report:
    """Check ``source`` as JSONL in one streaming pass; compute ``digests`` (hashlib names) of its bytes."""
    report = Report(path=source.display, max_problems=max_problems)
    hashers = {name: hashlib.new(name) for name in digests}
    rest = b""
    line_no = 0
    first = True
    for block in source.read_range(0, source.size, BLOCK):
        for h in hashers.values():
            h.update(block)
        if first:
            first = False
            if block.startswith(BOM):
                report.has_bom = True
                block = block[len(BOM) :]
        lines = block.split(b"\n")
        if rest:
            lines[0] = rest + lines[0]
        rest = lines.pop()
        for raw in lines:
            line_no += 1
            check_line(line_no, raw, report, checker)
    if rest:
        line_no += 1
        check_line(line_no, rest, report, checker)
    if checker is not None:
        for problem in checker.finish():
            report.add(problem)
    if report.records == 0 and report.errors == 0:
        report.add(Problem(line=None, code="no_records", message="the file holds no JSON records"))
    report.digests = {n: h.hexdigest() for n, h in hashers.items()}
    return report
