"""One streaming pass over a JSONL file: UTF-8, one JSON object per line, record rules, statistics, digests.

Constant memory whatever the file size: the file is read one block (1 MiB) at a time, a line is held only until it
is checked, a line longer than ``max_line`` (64 MiB) is reported and skipped without being held, duplicate lines are
found through 64-bit hashes in a bounded :class:`~llmfiles.validate.stats.HashIndex`, and the checksums a large
upload needs are computed from the same bytes (in a helper thread: hashlib releases the GIL on large buffers), so
the file is not read again for them.

Every line is parsed once, by orjson when it is installed (``llmfiles[fast]``), else by the standard library;
both give the same records and problems (see :mod:`llmfiles.validate.parse`).
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Iterable
from typing import Any

import attrs
from attrs import define, field

from llmfiles.models import Problem, Source
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
#: a line is keyed by its length and this many bytes at its start, middle and end (the whole line when shorter);
#: a key seen before is confirmed by comparing the two lines byte for byte
KEY_SAMPLE = 128
#: files smaller than this are hashed on the reading thread (a helper thread would cost more than it saves)
_THREADED_DIGESTS_FROM = 4 * BLOCK


@define(kw_only=True)
class Report:
    """What one check pass found: problems (the first ``max_problems`` listed, all counted) and statistics."""

    path: str
    records: int = 0
    errors: int = 0
    warnings: int = 0
    problems: list[Problem] = field(factory=list)
    has_bom: bool = False
    digests: dict[str, str] = field(factory=dict)
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
        }

    def summary(self) -> list[str]:
        """The statistics and notes as lines of text for people (``llmfiles validate`` prints them)."""
        out = [f"{self.records:,} records in {self.lines:,} lines, {self.bytes:,} bytes (parsed with {self.parser})"]
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


def parse_line(line_no: int, raw: bytes) -> tuple[dict[str, Any] | None, Problem | None]:
    """One line (without its newline) as a record, or the problem that stops it being one.

    The verdict of the standard library's :mod:`json` (the reference, see :mod:`llmfiles.validate.parse`).
    """
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if not raw or raw.isspace():
        return None, Problem(
            line=line_no, code="blank_line", message="blank line; remove it (one JSON object per line)"
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


def check_line(line_no: int, raw: bytes, report: Report, checker: RecordChecker | None) -> None:
    """Check one line (without its newline) and add its problems to ``report`` (the slow, simple path)."""
    record, problem = parse_line(line_no, raw)
    if problem is not None:
        report.add(problem)
        return
    assert record is not None
    report.records += 1
    if checker is not None:
        for p in _checked(checker, line_no, record):
            report.add(p)


def _checked(checker: RecordChecker, line_no: int, record: dict[str, Any]) -> list[Problem]:
    try:
        problems = list(checker.check(line_no, record))
    except Exception as exc:  # a plugin's bug must be a problem with a line number, not a crash
        return [_checker_failed(checker, line_no, exc)]
    return [p if p.line is not None else attrs.evolve(p, line=line_no) for p in problems]


def _checker_failed(checker: object, line_no: int | None, exc: BaseException) -> Problem:
    owner = type(checker).__module__.split(".")[0]
    return Problem(
        line=line_no,
        code="checker_failed",
        message=f"the record checker of {owner} failed on this record ({type(exc).__name__}: {exc}); "
        "this is a bug in that plugin: please report it with the record",
    )


class _Digests:
    """Checksums of the blocks, computed on a helper thread through a bounded queue (constant memory)."""

    def __init__(self, names: Iterable[str], *, threaded: bool) -> None:
        self.hashers = {name: hashlib.new(name) for name in names}
        self._queue: queue.Queue[bytes | None] | None = None
        self._thread: threading.Thread | None = None
        if threaded and self.hashers:
            self._queue = queue.Queue(maxsize=8)
            self._thread = threading.Thread(target=self._run, name="llmfiles-digests", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        assert self._queue is not None
        hashers = tuple(self.hashers.values())
        while (block := self._queue.get()) is not None:
            for h in hashers:
                h.update(block)

    def update(self, block: bytes) -> None:
        if self._queue is not None:
            self._queue.put(block)
        else:
            for h in self.hashers.values():
                h.update(block)

    def close(self) -> None:
        if self._queue is not None and self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._queue = None

    def result(self) -> dict[str, str]:
        self.close()
        return {name: h.hexdigest() for name, h in self.hashers.items()}


def check_jsonl(
    source: Source,
    *,
    checker: RecordChecker | None = None,
    digests: Iterable[str] = (),
    max_problems: int = 50,
    max_line: int = MAX_LINE,
) -> Report:
    """Check ``source`` as JSONL in one streaming pass; compute ``digests`` (hashlib names) of its bytes.

    ``checker`` (from ``llmfiles_record_checker``) sees every record; the report lists the first ``max_problems``
    problems and counts all of them.  Never raises for the content of the file, only for failures to read it.
    """
    report = Report(path=source.display, max_problems=max_problems, bytes=source.size, parser=PARSER)
    digester = _Digests(digests, threaded=source.size >= _THREADED_DIGESTS_FROM)
    start = getattr(checker, "start", None)
    check = checker.check if checker is not None else None
    seen = HashIndex(DUPLICATE_INDEX, with_offsets=True)
    add = report.add
    loads = fast_loads
    line_no = 0
    records = 0
    longest = 0
    pending: list[bytes] = []  # pieces of a line that goes on in the next block
    pending_len = 0
    skipping = False  # inside a line longer than max_line: its bytes are counted, not kept
    first = True

    def started() -> None:
        nonlocal start
        if start is None:
            return
        facts = FileFacts(display=source.display, size=source.size, has_bom=report.has_bom)
        fn, start = start, None
        try:
            for p in fn(facts):
                add(p)
        except Exception as exc:
            add(_checker_failed(checker, None, exc))

    def too_long(line: int, length: int) -> None:
        add(
            Problem(
                line=line,
                code="line_too_long",
                message=f"the line has {length:,} bytes, more than the {max_line:,} a line may have here; "
                "a training example or request this long is refused by every provider: split or shorten it",
            )
        )

    def lines_of(data: bytes, pos: int, stop: int, base: int) -> None:
        """Check every line of ``data[pos:stop]``; ``data[stop - 1]`` is a newline, ``data[0]`` is at file offset
        ``base``.  Lines are memoryviews of ``data`` (no copy) until one needs the slow path."""
        nonlocal line_no, records, longest
        view = memoryview(data)
        find = data.find
        sample = KEY_SAMPLE
        while pos < stop:
            nl = find(b"\n", pos, stop)
            raw = view[pos:nl]
            n = nl - pos
            start = pos
            pos = nl + 1
            line_no += 1
            longest = max(longest, n)
            if n > max_line:
                too_long(line_no, n)
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
            if n <= 3 * sample:
                key = hash(data[start:nl])
            else:
                mid = start + (n >> 1)
                key = hash((n, data[start : start + sample], data[mid : mid + sample], data[nl - sample : nl]))
            earlier = seen.add(key, line_no, base + start)
            if earlier and not same_line(seen.found_offset, raw):
                earlier = rekeyed(key, raw, line_no, base + start)
            if earlier:
                report.duplicate_lines += 1
                if len(report.duplicate_samples) < DUPLICATE_SAMPLES:
                    report.duplicate_samples.append((line_no, earlier))
            if check is not None:
                try:
                    problems = check(line_no, record)
                    if problems:
                        for p in problems:
                            add(p if p.line is not None else attrs.evolve(p, line=line_no))
                except Exception as exc:
                    add(_checker_failed(checker, line_no, exc))

    def one_line(pieces: list[bytes], offset: int) -> None:
        line = b"".join(pieces) + b"\n"
        lines_of(line, 0, len(line), offset)

    def rekeyed(key: int, raw: memoryview, line: int, at: int) -> int:
        """Two different lines share a sampled key: look for (or remember) this line under derived keys."""
        for attempt in range(1, 4):
            earlier = seen.add(hash((key, attempt)), line, at)
            if not earlier or same_line(seen.found_offset, raw):
                return earlier
        return 0

    def same_line(offset: int, raw: memoryview) -> bool:
        """Whether the line at ``offset`` of the file is ``raw`` (a sampled key matched: compare every byte)."""
        try:
            earlier = b"".join(source.read_range(offset, min(len(raw) + 1, source.size - offset), BLOCK))
        except OSError:
            return False
        return earlier[: len(raw)] == raw and earlier[len(raw) :] in (b"\n", b"")

    offset = 0  # file offset of the current block
    pending_at = 0  # file offset where the pending line starts
    try:
        for block in source.read_range(0, source.size, BLOCK):
            if type(block) is not bytes:  # lines are read-only memoryviews of the block
                block = bytes(block)
            digester.update(block)
            base = offset
            offset += len(block)
            if first:
                first = False
                if block.startswith(BOM):
                    report.has_bom = True
                    block = block[len(BOM) :]
                    base += len(BOM)
                started()
            nl = block.find(b"\n")
            if nl < 0:  # the whole block goes on with the current line
                if not pending and not skipping:
                    pending_at = base
                pending_len += len(block)
                if not skipping:
                    pending.append(block)
                    if pending_len > max_line:
                        skipping, pending = True, []
                continue
            begin = 0
            if pending or skipping:
                length = pending_len + nl
                if skipping or length > max_line:
                    line_no += 1
                    longest = max(longest, length)
                    too_long(line_no, length)
                else:
                    pending.append(block[:nl])
                    one_line(pending, pending_at)
                pending, pending_len, skipping = [], 0, False
                begin = nl + 1
            last = block.rfind(b"\n") + 1
            lines_of(block, begin, last, base)
            if last < len(block):
                tail = block[last:]
                pending, pending_len, pending_at = [tail], len(tail), base + last
        if first:
            started()
        if skipping:
            line_no += 1
            longest = max(longest, pending_len)
            too_long(line_no, pending_len)
        elif pending:
            one_line(pending, pending_at)
    finally:
        digester.close()
    report.records = records
    report.lines = line_no
    report.longest_line = longest
    if seen.full:
        report.duplicates_checked = seen.count
    if checker is not None:
        try:
            for p in checker.finish():
                add(p)
        except Exception as exc:
            add(_checker_failed(checker, None, exc))
        stats = getattr(checker, "stats", None)
        if isinstance(stats, ExampleStats):
            report.examples = stats
            report.notes.extend(stats.notes)
    if report.records == 0 and report.errors == 0:
        add(Problem(line=None, code="no_records", message="the file holds no JSON records"))
    report.digests = digester.result()
    return report
