"""Converting a JSONL file record by record with a conversion a plugin provides, streaming and atomically.

A plugin declares its conversions with the ``llmfiles_register_converters`` hook: each is a :class:`Converter`, a
name (``gemini``, ``claude``, ``bedrock-batch``, ...) with a function that makes, for the target provider's
settings (``model=...``), the conversion of one record into one record, and a factory of the checker that holds
the target format's rules.  :func:`convert_file` reads the input once, line by line (constant
memory), checks each converted record with the target format's rules as it writes it to a temporary file next to
the output, and only then renames it to the output: the output is never half-written, and a conversion with errors
leaves no output at all.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs
from attrs import define, field, frozen

from llmfiles.models import Problem, Settings
from llmfiles.sources import Source
from llmfiles.validate.jsonl import BINARY_SNIFF, BLOCK, BOM, MAX_LINE, JsonlChecker, Report, binary_problem, parse_line
from llmfiles.validate.parse import fast_loads
from llmfiles.validate.records import RecordChecker

#: a conversion of one record: the converted record (``None`` when it cannot be converted) and problems; problems
#: with ``line=None`` are given the record's line, errors stop the output from being written
ConvertFn = Callable[[dict[str, Any]], tuple[dict[str, Any] | None, Iterable[Problem]]]
#: what a :class:`Converter` is made of: the conversion of one record for these settings (the target provider's,
#: resolved); raises :class:`~llmfiles.errors.InvalidSetting` when a setting it needs is missing or wrong
PrepareFn = Callable[[Settings], ConvertFn]

#: the settings of a conversion run with none given (``Converter.prepare`` always gets a :class:`Settings`)
NO_SETTINGS = Settings(provider="", values={})


def settings_free(convert: ConvertFn) -> PrepareFn:
    """The ``prepare`` of a conversion that reads no setting: ``convert`` whatever the settings."""

    def prepare(settings: Settings) -> ConvertFn:
        return convert

    return prepare


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_ASCII_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))


@frozen(kw_only=True)
class Converter:
    """A conversion a plugin registers through ``llmfiles_register_converters``.

    ``name`` is what ``llmfiles convert --to NAME`` and :meth:`llmfiles.Client.convert` take.  ``prepare(settings)``
    is called once per file with the target provider's resolved settings and returns the conversion of one record
    into one record (see :data:`ConvertFn`; :func:`settings_free` wraps one that reads no setting); ``prepare``
    raises :class:`~llmfiles.errors.InvalidSetting` when a setting it needs is missing, the record conversion must
    not raise for any input (return an error :class:`~llmfiles.models.Problem` instead).  ``checker`` makes a fresh
    :class:`~llmfiles.validate.records.RecordChecker` for the target format, run over the converted file before it
    is kept.  ``reads`` says which records it takes, ``description`` what it produces.  ``purposes`` are the files
    ``convert=NAME`` converts while uploading; ``provider`` is the provider whose settings ``llmfiles convert``
    resolves for it (its ``-s NAME=VALUE``, config file and environment); ``settings`` names those that change its
    output (a converted file is made again when one of them changes).
    """

    name: str
    prepare: PrepareFn = field(eq=False)
    checker: Callable[[], RecordChecker | None] | None = field(default=None, eq=False)
    description: str = ""
    reads: str = "OpenAI chat fine-tuning records ({'messages': [...]})"
    package: str = ""
    purposes: tuple[str, ...] = ("fine-tune",)
    provider: str = ""
    settings: tuple[str, ...] = ()


@define(kw_only=True)
class ConvertResult:
    """What :func:`convert_file` did: the conversion pass, the check of its output, whether the output was kept."""

    converter: str
    output_path: str
    #: the pass over the input: its problems are at input lines (unreadable lines, records that cannot convert)
    conversion: Report
    #: the converted file checked with the target format's rules (``None`` when the conversion had errors);
    #: its problems are at the input's lines (one record each) and it is named after the input
    output: Report | None = None
    written: bool = False

    @property
    def ok(self) -> bool:
        return self.written

    def as_dict(self) -> dict[str, Any]:
        return {
            "converter": self.converter,
            "output": self.output_path,
            "written": self.written,
            "ok": self.ok,
            "conversion": self.conversion.as_dict(),
            "check": self.output.as_dict() if self.output is not None else None,
        }


def _lines(source: Source, max_line: int) -> Iterator[tuple[int, bytes | None, int]]:
    """``(line number, line or None when it is longer than max_line, its length)`` of every line, streaming."""
    pending: list[bytes] = []
    pending_len = 0
    skipping = False
    line_no = 0
    first = True
    for block in source.read_range(0, source.size, BLOCK):
        if first:
            first = False
            if block.startswith(BOM):
                block = block[len(BOM) :]
        start = 0
        while True:
            nl = block.find(b"\n", start)
            if nl < 0:
                piece = block[start:]
                pending_len += len(piece)
                if not skipping and piece:
                    pending.append(piece)
                    if pending_len > max_line:
                        skipping, pending = True, []
                break
            piece = block[start:nl]
            length = pending_len + len(piece)
            line_no += 1
            if skipping or length > max_line:
                yield line_no, None, length
            else:
                pending.append(piece)
                yield line_no, b"".join(pending), length
            pending, pending_len, skipping = [], 0, False
            start = nl + 1
    if skipping:
        yield line_no + 1, None, pending_len
    elif pending:
        yield line_no + 1, b"".join(pending), pending_len


def _fail(converter: Converter, line_no: int, exc: BaseException) -> Problem:
    return Problem(
        line=line_no,
        code="converter_failed",
        message=f"the {converter.name} conversion failed on this record ({type(exc).__name__}: {exc}); this is a "
        f"bug in {converter.package or 'its plugin'}: please report it with the record",
    )


def convert_file(
    source: Source,
    output: str | os.PathLike[str],
    converter: Converter,
    *,
    settings: Settings = NO_SETTINGS,
    overwrite: bool = False,
    max_problems: int = 50,
    max_line: int = MAX_LINE,
) -> ConvertResult:
    """Convert ``source`` into ``output`` with ``converter`` made for ``settings``; see the module's documentation.

    Raises :class:`~llmfiles.errors.InputError` when ``output`` exists (unless ``overwrite``) or its folder does
    not, :class:`~llmfiles.errors.InvalidSetting` when the conversion lacks a setting it needs; problems in the
    content are in the returned :class:`ConvertResult`, never raised.
    """
    from llmfiles.errors import InputError, advice

    target = Path(output)
    if target.is_dir():
        raise InputError(f"{target} is a folder; give the path of the output file")
    if target.exists() and not overwrite:
        raise InputError(f"{target} already exists; {advice('pass overwrite=True', 'pass --force')} to replace it")
    if not target.parent.is_dir():
        raise InputError(f"{target.parent} is not a folder; create it first")
    convert = converter.prepare(settings)
    tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
    conversion = Report(path=source.display, max_problems=max_problems, bytes=source.size)
    result = ConvertResult(converter=converter.name, output_path=str(target), conversion=conversion)
    kept = False
    checker = converter.checker() if converter.checker is not None else None
    # the converted records are checked as they are written; their lines are the input's lines, one record each,
    # so the report is named after the input (its problems are the input's records', as converted)
    check = JsonlChecker(source.display, 0, checker=checker, max_problems=max_problems, max_line=max_line)
    binary = binary_problem(source.pread(BINARY_SNIFF, 0).removeprefix(BOM))
    if binary is not None:  # said once, as validate says it, instead of a problem on every line
        conversion.add(binary)
        return result
    try:
        with open(tmp, "xb", buffering=BLOCK) as out:  # "x": never follows or reuses an existing file
            for line_no, raw, length in _lines(source, max_line):
                data = _convert_line(converter, convert, conversion, line_no, raw, length, max_line)
                if data is not None:
                    out.write(data)
                    check.check_record(line_no, fast_loads(data))
            if conversion.records == 0 and conversion.errors == 0:
                conversion.add(Problem(line=None, code="no_records", message="the file holds no JSON records"))
            out.flush()
            os.fsync(out.fileno())
        if not conversion.ok:
            return result
        report = check.finish_records(records=conversion.records, lines=conversion.lines, size=tmp.stat().st_size)
        report.notes.append(
            f"the records of {source.display} as converted to {converter.name!r} (at its lines), checked by the "
            f"rules of that format; written to {target} only when they pass"
        )
        result.output = report
        if report.ok:
            os.replace(tmp, target)
            kept = True
            result.written = True
        return result
    finally:
        if not kept:
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass


def _convert_line(
    converter: Converter,
    convert: ConvertFn,
    conversion: Report,
    line_no: int,
    raw: bytes | None,
    length: int,
    max_line: int,
) -> bytes | None:
    """One input line converted to its output line (with its newline), or ``None`` when it cannot be (its problems
    are added to ``conversion``; once there is an error, nothing more is written but every line is still read)."""
    conversion.lines = line_no
    conversion.longest_line = max(conversion.longest_line, length)
    if raw is None:
        conversion.add(
            Problem(
                line=line_no,
                code="line_too_long",
                message=f"the line has {length:,} bytes, more than the {max_line:,} a line may have",
            )
        )
        return None
    try:
        record = fast_loads(raw)
    except Exception:
        record = None
    if type(record) is not dict:
        record, problem = parse_line(line_no, raw)
        if problem is not None:
            conversion.add(problem)
            return None
    assert record is not None
    conversion.records += 1
    try:
        converted, problems = convert(record)
        problems = [p if p.line is not None else attrs.evolve(p, line=line_no) for p in problems]
    except Exception as exc:
        converted, problems = None, [_fail(converter, line_no, exc)]
    failed = False
    for p in problems:
        conversion.add(p)
        failed = failed or p.severity == "error"
    if converted is None and not failed:
        conversion.add(_fail(converter, line_no, ValueError("no record and no error")))
        failed = True
    if failed or conversion.errors:
        return None
    try:
        try:
            data = _ENCODER.encode(converted).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate ("\ud800" in the input): keep it escaped
            data = _ASCII_ENCODER.encode(converted).encode("ascii")
    except (TypeError, ValueError, RecursionError) as exc:
        conversion.add(_fail(converter, line_no, exc))
        return None
    return data + b"\n"
