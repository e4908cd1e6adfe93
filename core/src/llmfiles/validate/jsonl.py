"""Checking JSONL as it streams: UTF-8, one JSON object per line, record rules, statistics.

:class:`JsonlChecker` is fed the file's blocks in order (the upload pipeline feeds it the blocks it reads to send;
``validate`` reads them for it), so checking a file costs one read of it, shared with everything else that needs
its bytes.  Constant memory whatever the file size: a line is held only until it is checked, a line longer than
``max_line`` (64 MiB) is reported and skipped without being held, and duplicate lines are found through 64-bit
hashes of whole lines in a bounded :class:`~llmfiles.validate.stats.HashIndex` (two different lines share a hash
with odds of about one in 10^13 for a million lines; a duplicate is a statistic, never an error).

Every line is parsed once, by orjson (see :mod:`llmfiles.validate.parse`: the standard library's verdict stands
for every line orjson refuses, so both give the same records and problems).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from attrs import define, field

from llmfiles.models import Problem
from llmfiles.sources import Source
from llmfiles.validate.parse import PARSER, fast_loads, reference_loads
from llmfiles.validate.records import RecordChecker
from llmfiles.validate.stats import ExampleStats, FileFacts, HashIndex

BOM = b"\xef\xbb\xbf"
BLOCK = 1024 * 1024
#: the longest line checked; a longer one is a problem, skipped without being held in memory
MAX_LINE = 64 * 1024 * 1024
#: duplicate lines listed in the report (all are counted)
DUPLICATE_SAMPLES = 5
#: lines remembered for finding duplicates: 262,144 (a 1 GiB chat file has about 180,000), in at most 10 MiB
#: (20 bytes a slot, at most twice as many slots); beyond it the report says how many records were compared
DUPLICATE_INDEX = 1 << 18


@define(kw_only=True)
class Report:
    """What one check pass found: problems (the first ``max_problems`` listed, all counted) and statistics."""

    path: str
    records: int = 0
    errors: int = 0
    warnings: int = 0
    problems: list[Problem] = field(factory=list)
    has_bom: bool = False
    max_problems: int = 50
    #: the file's size and its number of lines
    bytes: int = 0
    lines: int = 0
    longest_line: int = 0
    #: lines identical to an earlier line, and the first few as (line, earlier line)
    duplicate_lines: int = 0
    duplicate_samples: list[tuple[int, int]] = field(factory=list)
    #: records compared for duplicates, when the bounded index filled up before the end (``None``: all of them)
    duplicates_checked: int | None = None
    #: the JSON parser used ("orjson" or "json")
    parser: str = ""
    #: per-example statistics of the provider's checker, when it keeps some
    examples: ExampleStats | None = None
    notes: list[str] = field(factory=list)
    #: what was checked (the JSONL framing, whose record rules), when the caller says (``Client.validate`` does)
    checks: list[str] = field(factory=list)
    #: whether a provider's record rules ran (``None``: not said; ``False``: the JSONL framing only)
    record_rules: bool | None = None

    @property
    def ok(self) -> bool:
        return self.errors == 0

    @property
    def total(self) -> int:
        return self.errors + self.warnings

    @property
    def hidden(self) -> int:
        """Problems counted but not listed (beyond ``max_problems``)."""
        return self.total - len(self.problems)

    def add(self, problem: Problem) -> None:
        if problem.severity == "error":
            self.errors += 1
        else:
            self.warnings += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(problem)

    def stats(self) -> dict[str, Any]:
        """The statistics as plain data (the ``"stats"`` of :meth:`as_dict`)."""
        out: dict[str, Any] = {
            "bytes": self.bytes,
            "lines": self.lines,
            "records": self.records,
            "longest_line": self.longest_line,
            "duplicate_lines": self.duplicate_lines,
            "duplicate_samples": [{"line": a, "same_as": b} for a, b in self.duplicate_samples],
            "duplicates_checked": self.duplicates_checked,
            "parser": self.parser,
        }
        if self.examples is not None:
            out["examples"] = self.examples.as_dict()
        return out

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
            "problems_not_shown": self.hidden,
            "has_bom": self.has_bom,
            "stats": self.stats(),
            "notes": list(self.notes),
            "checks": list(self.checks),
            "record_rules": self.record_rules,
        }

    def summary(self) -> list[str]:
        """What was checked, the statistics and notes as lines of text for people (``llmfiles validate`` prints
        them)."""
        out = [f"checked: {'; '.join(self.checks)}"] if self.checks else []
        out += [f"{self.records:,} records in {self.lines:,} lines, {self.bytes:,} bytes (parsed with {self.parser})"]
        if self.duplicate_lines:
            first = ", ".join(f"line {a} = line {b}" for a, b in self.duplicate_samples)
            out.append(
                f"duplicate lines: {self.duplicate_lines:,} ({first}{', ...' if self.duplicate_lines > 5 else ''})"
            )
        else:
            out.append("duplicate lines: none")
        if self.duplicates_checked is not None:
            out.append(f"  (duplicates looked for among the first {self.duplicates_checked:,} records only)")
        ex = self.examples
        if ex is not None and ex.examples:
            formats = ", ".join(f"{k} {v:,}" for k, v in ex.formats.items())
            out.append(f"{ex.unit}: {ex.examples:,}" + (f" ({formats})" if formats else ""))
            m = ex.messages_summary()
            if m is not None:
                out.append(f"messages per {_singular(ex.unit)}: min {m['min']:,}, mean {m['mean']:,}, max {m['max']:,}")
            t = ex.tokens_summary()
            if t is not None:
                label = "tokens" if ex.tokens_exact else "estimated tokens"
                out.append(
                    f"{label} per {_singular(ex.unit)}: min {t['min']:,}, mean {t['mean']:,}, max {t['max']:,}, "
                    f"total {t['total']:,} ({ex.token_method})"
                )
            if ex.roles:
                out.append("roles: " + ", ".join(f"{k} {v:,}" for k, v in sorted(ex.roles.items())))
        out.extend(f"note: {n}" for n in self.notes)
        return out


def _singular(unit: str) -> str:
    return unit[:-1] if unit.endswith("s") else unit


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


#: how much of the start of a file is looked at to tell a binary file from text
BINARY_SNIFF = 8192


def binary_problem(head: bytes) -> Problem | None:
    """The one problem of a file that is no UTF-8 text at all, from its first bytes (``None`` for text).

    A UTF-16 file (its byte order mark) is text in the wrong encoding; a NUL byte, which no JSON text holds
    (RFC 8259 escapes every control character in strings) and every compressed file, image, spreadsheet or
    executable has near its start, marks a binary file - the test ``git`` and ``grep`` use.  Either is said once,
    instead of a problem on every line.  Latin-1 or Windows-1252 text is not binary: its lines get ``not_utf8``.
    """
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return Problem(
            line=None,
            code="not_utf8",
            message="the file is UTF-16 text (it starts with a UTF-16 byte order mark), not UTF-8: save it as "
            "UTF-8 (for example: iconv -f UTF-16 -t UTF-8 in.jsonl > out.jsonl)",
        )
    if b"\x00" in head[:BINARY_SNIFF]:
        return Problem(
            line=None,
            code="binary_file",
            message="the file looks binary, not text (it holds NUL bytes, as compressed files, images, "
            "spreadsheets and databases do): give the JSONL file itself, UTF-8 text with one JSON object per "
            "line (unpack or export it first)",
        )
    return None


def parse_line(line_no: int, raw: bytes) -> tuple[dict[str, Any] | None, Problem | None]:
    """One line (without its newline) as a record, or the problem that stops it being one.

    The verdict of the standard library's :mod:`json` (the reference, see :mod:`llmfiles.validate.parse`).

    A blank line is an error wherever it is, a trailing one (a file ending in two newlines) included: JSON Lines
    (https://jsonlines.org/, "Each Line is a Valid JSON Value") lets the last line end with a newline, once, and
    every provider asks for one JSON object a line (OpenAI's "Supervised fine-tuning" guide, Vertex AI's "Prepare
    supervised fine-tuning data for Gemini models", Amazon Bedrock's "Prepare data for fine-tuning your models":
    "each line is a JSON object").  A blank line is no JSON value (the OpenAI cookbook's checks cannot parse it);
    that AWS's Nova validator lets it pass is that tool's leniency, not a documented rule.
    """
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if not raw or raw.isspace():
        return None, Problem(
            line=line_no,
            code="blank_line",
            message="blank line; remove it (one JSON object per line; only the last line's newline may end the file)",
        )
    try:
        record = reference_loads(raw)
    except UnicodeDecodeError as exc:
        return None, _utf8_problem(line_no, raw, exc)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply for the parser
        msg = getattr(exc, "msg", str(exc))
        col = getattr(exc, "colno", None)
        where = f" at column {col}" if col else ""
        return None, Problem(
            line=line_no,
            code="invalid_json",
            message=f"not valid JSON{where}: {msg}; each line must be one JSON object",
        )
    if not isinstance(record, dict):
        kind = {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(record), "number")
        return None, Problem(
            line=line_no,
            code="not_object",
            message=f"the line is a JSON {kind} ({type(record).__name__}), not an object; "
            "each line must be one JSON object",
        )
    return record, None


def _checker_failed(checker: object, line_no: int | None, exc: BaseException) -> Problem:
    owner = type(checker).__module__.split(".")[0]
    return Problem(
        line=line_no,
        code="checker_failed",
        message=f"the record checker of {owner} failed on this record ({type(exc).__name__}: {exc}); "
        "this is a bug in that plugin: please report it with the record",
    )


class JsonlChecker:
    """Checks a JSONL file fed to it block by block, in order: UTF-8, one JSON object per line, the record rules of
    a ``checker``, statistics.  Constant memory whatever the file size (see the module documentation).

    ``feed(block)`` takes the next bytes of the file; :attr:`errors` counts the errors found so far (so a sender can
    stop early); :meth:`finish` returns the :class:`Report`.  Never raises for the content of the file.
    """

    def __init__(
        self,
        display: str,
        size: int,
        *,
        checker: RecordChecker | None = None,
        max_problems: int = 50,
        max_line: int = MAX_LINE,
    ) -> None:
        self.report = Report(path=display, max_problems=max_problems, bytes=size, parser=PARSER)
        self.checker = checker
        self.max_line = max_line
        self._size = size
        self._start = getattr(checker, "start", None)
        self._check = checker.check if checker is not None else None
        self._seen = HashIndex(DUPLICATE_INDEX)
        self._line_no = 0
        self._records = 0
        self._longest = 0
        self._pending: list[bytes] = []  # pieces of a line that goes on in the next block
        self._pending_len = 0
        self._skipping = False  # inside a line longer than max_line: its bytes are counted, not kept
        self._first = True
        self._binary = False  # the file is not text: said once, its lines not checked

    @property
    def errors(self) -> int:
        return self.report.errors

    def _started(self) -> None:
        start, self._start = self._start, None
        if start is None:
            return
        facts = FileFacts(display=self.report.path, size=self._size, has_bom=self.report.has_bom)
        try:
            for p in start(facts):
                self.report.add(p)
        except Exception as exc:
            self.report.add(_checker_failed(self.checker, None, exc))

    def _too_long(self, line: int, length: int) -> None:
        self.report.add(
            Problem(
                line=line,
                code="line_too_long",
                message=f"the line has {length:,} bytes, more than the {self.max_line:,} a line may have here; "
                "a training example or request this long is refused by every provider: split or shorten it",
            )
        )

    def _lines(self, data: bytes, pos: int, stop: int) -> None:
        """Check every line of ``data[pos:stop]`` (``data[stop - 1]`` is a newline).  Lines are memoryviews of
        ``data`` (no copy) until one needs the slow path."""
        add = self.report.add
        check = self.check_record
        seen = self._seen
        loads = fast_loads
        max_line = self.max_line
        view = memoryview(data)
        find = data.find
        line_no, records, longest = self._line_no, self._records, self._longest
        while pos < stop:
            nl = find(b"\n", pos, stop)
            raw = view[pos:nl]
            n = nl - pos
            pos = nl + 1
            line_no += 1
            longest = max(longest, n)
            if n > max_line:
                self._too_long(line_no, n)
                continue
            try:
                record = loads(raw)
            except Exception:
                record, problem = parse_line(line_no, bytes(raw))
                if problem is not None:
                    add(problem)
                    continue
            if type(record) is not dict:
                _, problem = parse_line(line_no, bytes(raw))
                if problem is not None:
                    add(problem)
                continue
            records += 1
            earlier = seen.add(hash(raw), line_no)
            if earlier:
                self.report.duplicate_lines += 1
                if len(self.report.duplicate_samples) < DUPLICATE_SAMPLES:
                    self.report.duplicate_samples.append((line_no, earlier))
            if check is not None:
                check(line_no, record)
        self._line_no, self._records, self._longest = line_no, records, longest

    def check_record(self, line_no: int, record: dict[str, Any]) -> None:
        """Run the record rules on one parsed record (the checker's bugs become problems)."""
        check = self._check
        if check is None:
            return
        try:
            problems = check(line_no, record)
            if problems:
                for p in problems:
                    self.report.add(p if p.line is not None else attrs.evolve(p, line=line_no))
        except Exception as exc:
            self.report.add(_checker_failed(self.checker, line_no, exc))

    def _one_line(self, pieces: list[bytes]) -> None:
        line = b"".join(pieces) + b"\n"
        self._lines(line, 0, len(line))

    def feed(self, block: bytes | memoryview) -> None:
        """Check the next ``block`` of the file."""
        if type(block) is not bytes:  # lines are read-only memoryviews of the block
            block = bytes(block)
        if self._first:
            self._first = False
            if block.startswith(BOM):
                self.report.has_bom = True
                block = block[len(BOM) :]
            self._started()
            binary = binary_problem(block)
            if binary is not None:
                self._binary = True
                self.report.add(binary)
        if self._binary:
            self._line_no += block.count(b"\n")
            return
        nl = block.find(b"\n")
        if nl < 0:  # the whole block goes on with the current line
            self._pending_len += len(block)
            if not self._skipping:
                self._pending.append(block)
                if self._pending_len > self.max_line:
                    self._skipping, self._pending = True, []
            return
        begin = 0
        if self._pending or self._skipping:
            length = self._pending_len + nl
            if self._skipping or length > self.max_line:
                self._line_no += 1
                self._longest = max(self._longest, length)
                self._too_long(self._line_no, length)
            else:
                self._pending.append(block[:nl])
                self._one_line(self._pending)
            self._pending, self._pending_len, self._skipping = [], 0, False
            begin = nl + 1
        last = block.rfind(b"\n") + 1
        self._lines(block, begin, last)
        if last < len(block):
            tail = block[last:]
            self._pending, self._pending_len = [tail], len(tail)

    def finish_records(self, *, records: int, lines: int, size: int) -> Report:
        """The report of records given to :meth:`check_record` one by one (not fed as bytes): the file-level rules
        and statistics, with the counts of the file they came from."""
        self._records, self._line_no = records, lines
        self.report.bytes = self._size = size
        self._first = False
        self._started()  # file-level rules (the size) once it is known
        return self.finish()

    def finish(self) -> Report:
        """The report, once the whole file was fed."""
        report = self.report
        if self._first:
            self._started()
        if self._binary:
            report.lines = self._line_no
            return report
        if self._skipping:
            self._line_no += 1
            self._longest = max(self._longest, self._pending_len)
            self._too_long(self._line_no, self._pending_len)
        elif self._pending:
            self._one_line(self._pending)
            self._pending, self._pending_len = [], 0
        report.records = self._records
        report.lines = self._line_no
        report.longest_line = self._longest
        if self._seen.full:
            report.duplicates_checked = self._seen.count
        checker = self.checker
        if checker is not None:
            try:
                for p in checker.finish():
                    report.add(p)
            except Exception as exc:
                report.add(_checker_failed(checker, None, exc))
            stats = getattr(checker, "stats", None)
            if isinstance(stats, ExampleStats):
                report.examples = stats
                report.notes.extend(stats.notes)
        if report.records == 0 and report.errors == 0:
            report.add(Problem(line=None, code="no_records", message="the file holds no JSON records"))
        return report


def check_jsonl(
    source: Source,
    *,
    checker: RecordChecker | None = None,
    max_problems: int = 50,
    max_line: int = MAX_LINE,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Check ``source`` as JSONL in one streaming pass (the offline ``validate``); see :class:`JsonlChecker`.

    ``progress`` is told how many bytes were checked so far.  Never raises for the content of the file, only for
    failures to read it.
    """
    jc = JsonlChecker(source.display, source.size, checker=checker, max_problems=max_problems, max_line=max_line)
    done = 0
    for block in source.read_range(0, source.size, BLOCK):
        jc.feed(block)
        done += len(block)
        if progress is not None:
            progress(done)
    return jc.finish()
