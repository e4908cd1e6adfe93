"""Converting a JSONL file record by record with a conversion a plugin provides, streaming and atomically.

A plugin declares its conversions with the ``llmfiles_register_converters`` hook: each is a :class:`Converter`, a
name (``gemini``, ``claude``, ...) with a function from one record to one record and a factory of the checker
that holds the target format's rules.  :func:`convert_file` reads the input once, line by line (constant
memory), writes the converted records to a temporary file next to the output, checks that file with the target
format's rules, and only then renames it to the output: the output is never half-written, and a conversion with
errors leaves no output at all.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs
from attrs import define, field, frozen

from llmfiles.models import PathSource, Problem, Source
from llmfiles.validate.jsonl import BLOCK, BOM, MAX_LINE, Report, check_jsonl, parse_line
from llmfiles.validate.parse import fast_loads
from llmfiles.validate.records import RecordChecker

#: a conversion of one record: the converted record (``None`` when it cannot be converted) and problems; problems
#: with ``line=None`` are given the record's line, errors stop the output from being written
ConvertFn = Callable[[dict[str, Any]], tuple[dict[str, Any] | None, Iterable[Problem]]]

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_ASCII_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))


@frozen(kw_only=True)
class Converter:
    """A conversion a plugin registers through ``llmfiles_register_converters``.

    ``name`` is what ``llmfiles convert --to NAME`` and :meth:`llmfiles.Client.convert` take.  ``convert`` turns
    one record into one record (see :data:`ConvertFn`); it must not raise for any input (return an error
    :class:`~llmfiles.models.Problem` instead).  ``checker`` makes a fresh
    :class:`~llmfiles.validate.records.RecordChecker` for the target format, run over the converted file before it
    is kept.  ``reads`` says which records it takes, ``description`` what it produces.
    """

    name: str
    convert: ConvertFn = field(eq=False)
    checker: Callable[[], RecordChecker | None] | None = field(default=None, eq=False)
    description: str = ""
    reads: str = "OpenAI chat fine-tuning records ({'messages': [...]})"
    package: str = ""


@define(kw_only=True)
class ConvertResult:
    """What :func:`convert_file` did: the conversion pass, the check of its output, whether the output was kept."""

    converter: str
    output_path: str
    #: the pass over the input: its problems are at input lines (unreadable lines, records that cannot convert)
    conversion: Report
    #: the converted file checked with the target format's rules (``None`` when the conversion had errors);
    #: its lines are the input's lines, one record each
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
    overwrite: bool = False,
    max_problems: int = 50,
    max_line: int = MAX_LINE,
) -> ConvertResult:
    """Convert ``source`` into ``output`` with ``converter``; see the module's documentation.

    Raises :class:`~llmfiles.errors.InputError` when ``output`` exists (unless ``overwrite``) or its folder does
    not; problems in the content are in the returned :class:`ConvertResult`, never raised.
    """
    from llmfiles.errors import InputError

    target = Path(output)
    if target.is_dir():
        raise InputError(f"{target} is a folder; give the path of the output file")
    if target.exists() and not overwrite:
        raise InputError(f"{target} already exists; pass overwrite=True (CLI: --force) to replace it")
    if not target.parent.is_dir():
        raise InputError(f"{target.parent} is not a folder; create it first")
    tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
    conversion = Report(path=source.display, max_problems=max_problems, bytes=source.size)
    result = ConvertResult(converter=converter.name, output_path=str(target), conversion=conversion)
    convert = converter.convert
    encode = _ENCODER.encode
    kept = False
    try:
        with open(tmp, "xb", buffering=BLOCK) as out:  # "x": never follows or reuses an existing file
            for line_no, raw, length in _lines(source, max_line):
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
                    continue
                try:
                    record = fast_loads(raw)
                except Exception:
                    record = None
                if type(record) is not dict:
                    record, problem = parse_line(line_no, raw)
                    if problem is not None:
                        conversion.add(problem)
                        continue
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
                    continue  # keep reading to report every problem; nothing more is written
                try:
                    text = encode(converted)
                    try:
                        data = text.encode("utf-8")
                    except UnicodeEncodeError:  # a lone surrogate ("\ud800" in the input): keep it escaped
                        data = _ASCII_ENCODER.encode(converted).encode("ascii")
                    out.write(data + b"\n")
                except (TypeError, ValueError, RecursionError) as exc:
                    conversion.add(_fail(converter, line_no, exc))
            if conversion.records == 0 and conversion.errors == 0:
                conversion.add(Problem(line=None, code="no_records", message="the file holds no JSON records"))
            out.flush()
            os.fsync(out.fileno())
        if not conversion.ok:
            return result
        checker = converter.checker() if converter.checker is not None else None
        converted_source = PathSource(str(tmp), target.name, tmp.stat().st_size)
        converted_source.display = str(target)
        report = check_jsonl(converted_source, checker=checker, max_problems=max_problems, max_line=max_line)
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


# --- a converted file as an upload source ---------------------------------------------------------------------

#: converts one line (no newline, no CR, never blank) into its output line with its newline, or problems
LineConverter = Callable[[int, bytes], "bytes | list[Problem]"]


class ConvertedSource(Source):
    """A file converted line by line as it is read, usable as the body of an upload.

    Providers need the length (and often the MD5) of a body before it is sent, so the first use of :attr:`size`
    converts the whole file once without keeping it: it learns the converted size, its MD5, the record count and
    where every ``checkpoint_every`` bytes of output start in the input.  Any range then streams in constant memory
    by converting again from the nearest checkpoint, so parts run in parallel and a retried part starts near its
    offset.  Lines that cannot be converted fail that first pass with a :class:`~llmfiles.errors.ValidationError`
    naming their line numbers, before any byte is sent; a file that changes afterwards fails the read with
    ``OSError``.  A UTF-8 BOM is dropped, CRLF line ends become LF and blank lines are left out.
    """

    def __init__(
        self,
        inner: Source,
        convert_line: LineConverter,
        *,
        label: str,
        max_problems: int = 50,
        checkpoint_every: int = BLOCK,
        blocksize: int = BLOCK,
    ) -> None:
        self.inner = inner
        self.convert_line = convert_line
        self.name = inner.name
        self.display = f"{inner.display} ({label})"
        self.path = None
        self.replayable = inner.replayable
        self.max_problems = max_problems
        self.checkpoint_every = checkpoint_every
        self.blocksize = blocksize
        self.records = 0
        #: (output offset, input offset, line number) at the start of a line, about every ``checkpoint_every``
        self.checkpoints: list[tuple[int, int, int]] = [(0, 0, 1)]
        self._md5 = ""
        self._size: int | None = None
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        if self._size is None:
            with self._lock:
                if self._size is None:
                    self._measure()
        assert self._size is not None
        return self._size

    @size.setter
    def size(self, value: int) -> None:  # Source declares a plain attribute
        self._size = value

    @property
    def md5(self) -> str:
        """The hex MD5 of the converted bytes."""
        _ = self.size
        return self._md5

    def _lines(self, start: int, line_no: int) -> Iterator[tuple[int, int, bytes]]:
        """``(input offset, line number, line without its newline)`` of each line from input offset ``start``."""
        inner = self.inner
        pos = start
        rest = b""
        for block in inner.read_range(start, inner.size - start, self.blocksize):
            if pos == 0 and block.startswith(BOM):
                block = block[len(BOM) :]
                pos = len(BOM)
            data = rest + block if rest else block
            begin = 0
            while (nl := data.find(b"\n", begin)) >= 0:
                yield pos + begin, line_no, data[begin:nl]
                line_no += 1
                begin = nl + 1
            pos += begin
            rest = data[begin:]
        if rest:
            yield pos, line_no, rest

    def _pieces(self, start: int, line_no: int) -> Iterator[tuple[int, int, bytes | list[Problem]]]:
        for in_offset, n, raw in self._lines(start, line_no):
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            yield in_offset, n, (self.convert_line(n, raw) if raw.strip() else b"")

    def _measure(self) -> None:
        import hashlib

        from llmfiles.errors import ValidationError

        out = last = records = total_problems = 0
        problems: list[Problem] = []
        h = hashlib.md5(usedforsecurity=False)
        checkpoints = [(0, 0, 1)]
        for in_offset, line_no, piece in self._pieces(0, 1):
            if out - last >= self.checkpoint_every:
                checkpoints.append((out, in_offset, line_no))
                last = out
            if isinstance(piece, list):
                total_problems += len(piece)
                problems.extend(piece[: self.max_problems - len(problems)])
            elif piece:
                records += 1
                h.update(piece)
                out += len(piece)
        if problems:
            raise ValidationError(self.inner.display, problems, total_problems)
        if records == 0:
            raise ValidationError(
                self.inner.display, [Problem(line=None, code="no_records", message="no records to convert")]
            )
        self.checkpoints, self.records, self._md5, self._size = checkpoints, records, h.hexdigest(), out

    def read_range(self, offset: int, length: int, blocksize: int) -> Iterator[bytes]:
        import bisect

        end = min(offset + length, self.size)
        k = max(bisect.bisect_right(self.checkpoints, (offset, float("inf"), 0)) - 1, 0)
        out, in_offset, line_no = self.checkpoints[k]
        pending = bytearray()
        emitted = 0
        if offset < end:
            for _, n, piece in self._pieces(in_offset, line_no):
                if isinstance(piece, list):  # converted fine when the size was measured: the file changed since
                    raise OSError(f"{self.inner.display} changed while it was being converted (line {n})")
                piece_end = out + len(piece)
                if piece_end > offset:
                    pending += piece[max(0, offset - out) : end - out]
                out = piece_end
                while len(pending) >= blocksize:
                    emitted += blocksize
                    yield bytes(pending[:blocksize])
                    del pending[:blocksize]
                if out >= end:
                    break
        if pending:
            emitted += len(pending)
            yield bytes(pending)
        if emitted != length:
            raise OSError(
                f"{self.inner.display} changed while it was being converted and uploaded "
                f"({emitted:,} bytes where {length:,} were expected)"
            )
