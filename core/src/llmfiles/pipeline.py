"""One read of the file: checked, hashed and sent.

An upload reads its file once, in order, in large blocks.  Each block goes to the record checks (in this thread,
or for a large file in a worker process on another core), the digests the call needs and the sender, so checking
overlaps sending.  The commit waits: the last block of a single request (or of a resumable session's final chunk),
and the ``complete`` of a parts upload, go only once the checks of the whole file passed and the file's identity
(device, inode, size, mtime, ctime) is unchanged; otherwise the request is cut short, or the session aborted, and
nothing exists at the provider.

Parts sent in parallel each stream their own range, so several connections can be busy at once; the in-order read
that feeds the checks and whole-file digests runs beside them (a "lead" thread), over the same open descriptor,
and a CRC-32 of each part as the lead read it is compared with the CRC-32 of the bytes its sender sent before the
upload is completed: what was checked and hashed is what was sent.  When the checks run in a worker process, the
lead hands the whole in-order read to it (:meth:`Inspection.inspect_remotely`): the worker reads the inherited
descriptor itself and computes the digests and the CRC-32s beside the checks, so this process reads each byte once.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from attrs import define, field

from llmfiles.blockdigests import BlockHasher, PartCrcs, RemoteInspection
from llmfiles.errors import FileChanged, LLMFilesError, ValidationError
from llmfiles.models import Problem, Progress
from llmfiles.sources import Source
from llmfiles.validate.jsonl import BLOCK, JsonlChecker, Report

log = logging.getLogger("llmfiles.pipeline")

#: files at least this large are checked in a worker process (when the ``check_worker`` setting allows it)
WORKER_FROM = 64 * 1024 * 1024
#: files at least this large are hashed in a helper thread (hashlib releases the interpreter lock on big buffers)
THREADED_DIGESTS_FROM = 4 * 1024 * 1024
#: the first bytes of a file, read before anything is sent and kept for sending (a BOM, a format's first line)
HEAD_BYTES = 4096


class Checks(Protocol):
    """The JSONL checks as the pipeline drives them (:class:`~llmfiles.validate.jsonl.JsonlChecker` or its worker
    process)."""

    @property
    def errors(self) -> int: ...

    def feed(self, block: bytes | memoryview) -> None: ...

    def finish(self) -> Report: ...


def make_checks(source: Source, checker: Any, *, max_problems: int = 50, worker: bool = True) -> Checks:
    """The checks of ``source`` with the record ``checker``: in a worker process for a large file when ``worker``
    allows it (and the checker can be handed over), else in this process."""
    if worker and source.size >= WORKER_FROM:
        from llmfiles.validate.worker import WorkerChecker

        try:
            return WorkerChecker(
                source.display, source.size, checker=checker, max_problems=max_problems, file=source.descriptor()
            )
        except Exception as exc:  # a checker that cannot be pickled, no interpreter to start
            log.info("checking %s in this process (%s: %s)", source.display, type(exc).__name__, exc)
    return JsonlChecker(source.display, source.size, checker=checker, max_problems=max_problems)


@define
class Inspected:
    """What the read of the whole file found: the checks' report (``None`` when none ran), the digests, and the
    CRC-32 of each part's bytes (when parts were declared)."""

    report: Report | None
    digests: dict[str, str] = field(factory=dict)
    part_crcs: dict[int, int] = field(factory=dict)


class Inspection:
    """Everything that looks at the file's bytes as they are read, once each, in order: the JSONL checks, the UTF-8
    check, the whole-file digests and the CRC-32 of each part.  Bytes fed again (a retried request) are skipped."""

    def __init__(
        self,
        source: Source,
        *,
        checks: Checks | None = None,
        utf8: bool = False,
        digests: Sequence[str] = (),
        part_size: int | None = None,
    ) -> None:
        self.source = source
        self.checks = checks
        self.done = 0
        self._hasher = BlockHasher(digests, threaded=source.size >= THREADED_DIGESTS_FROM)
        self._utf8 = codecs.getincrementaldecoder("utf-8")() if utf8 else None
        self._utf8_problem: Problem | None = None
        #: the part size of a parts upload (set before the first byte): a CRC-32 is kept per part
        self.part_size = part_size
        self._crcs: PartCrcs | None = None
        #: what the checks' worker process found when it read the whole file itself (see :meth:`inspect_remotely`)
        self._remote: RemoteInspection | None = None
        self._lock = threading.Lock()
        self._finish_lock = threading.Lock()
        self._result: Inspected | None = None
        self._failure: LLMFilesError | None = None

    @property
    def idle(self) -> bool:
        """Whether there is nothing to inspect: no checks, no digests, no UTF-8 check (``validate=False,
        checksum=False``).  Then no byte needs reading but the ones sent, and no part's CRC-32 proves anything."""
        return self.checks is None and not self._hasher.hashers and self._utf8 is None

    @property
    def failing(self) -> bool:
        """Whether the checks already found an error (the upload can stop early)."""
        return self._utf8_problem is not None or (self.checks is not None and self.checks.errors > 0)

    def feed(self, offset: int, block: bytes | memoryview) -> None:
        """The bytes ``[offset, offset + len(block))``: only those beyond what was already inspected are used."""
        with self._lock:
            end = offset + len(block)
            if end <= self.done:
                return
            if offset < self.done:
                block = block[self.done - offset :]
                offset = self.done
            if offset != self.done:
                raise AssertionError(f"the file was inspected out of order ({offset} after {self.done})")
            self._hasher.update(block)
            if self.checks is not None:
                self.checks.feed(block)
            if self._utf8 is not None and self._utf8_problem is None:
                self._decode(block, final=end == self.source.size)
            if self.part_size:
                if self._crcs is None:
                    self._crcs = PartCrcs(self.part_size)
                self._crcs.update(offset, block)
            self.done = end

    def inspect_remotely(self, on_errors: Callable[[], None]) -> bool:
        """Have the checks' worker process read the whole file itself and compute the digests and the parts'
        CRC-32s beside the checks (``on_errors`` is called from another thread when the checks find the first
        error).  ``False`` when it cannot (the checks run here, nothing was read yet, or the worker did not start):
        then the caller feeds the blocks.  Reading in the worker spares this process the read, the digests and the
        hand-over of every byte through a pipe."""
        inspect = getattr(self.checks, "inspect_file", None)
        if inspect is None or self.done or self._utf8 is not None:
            return False
        remote: RemoteInspection | None = inspect(sorted(self._hasher.hashers), self.part_size, on_errors)
        if remote is None:
            return False
        if remote.read < self.source.size:
            raise self.source.shrank(remote.read)
        with self._lock:
            self._remote = remote
            self.done = remote.read
        return True

    def _decode(self, block: bytes | memoryview, final: bool) -> None:
        assert self._utf8 is not None
        # the decoder keeps the start of a sequence a block cut in two: its errors count from there
        pending = len(self._utf8.getstate()[0])
        try:
            self._utf8.decode(block, final=final)
        except UnicodeDecodeError as exc:
            line = None
            self._utf8_problem = Problem(
                line=line,
                code="not_utf8",
                message=f"the file is not valid UTF-8 (byte {self.done - pending + exc.start + 1:,} of the file, "
                f"{bytes(exc.object[exc.start : exc.start + 4])!r}); save it as UTF-8, for example: "
                "iconv -f LATIN1 -t UTF-8 in.jsonl > out.jsonl",
            )

    def finish(self) -> Inspected:
        """Wait for the checks of the whole file; raise :class:`ValidationError` when they found errors (the same
        answer however often, from whichever thread, it is asked)."""
        with self._finish_lock:
            if self._failure is not None:
                raise self._failure
            if self._result is None:
                try:
                    self._result = self._finish()
                except LLMFilesError as exc:
                    self._failure = exc
                    raise
            return self._result

    def _finish(self) -> Inspected:
        if self.done != self.source.size and not self.idle:
            raise AssertionError(f"the inspection ended at byte {self.done} of {self.source.size}")
        report = self.checks.finish() if self.checks is not None else None
        digests = self._hasher.result()
        crcs = dict(self._crcs.crcs) if self._crcs is not None else {}
        if self._remote is not None:
            digests, crcs = dict(self._remote.digests), dict(self._remote.part_crcs)
        problems = [self._utf8_problem] if self._utf8_problem is not None else []
        if report is not None and not report.ok:
            raise ValidationError(self.source.display, report.problems, report.total)
        if problems:
            raise ValidationError(self.source.display, problems)
        if report is not None and report.warnings:
            shown = "; ".join(p.describe() for p in report.problems[:3])
            more = report.warnings - min(3, len(report.problems))
            log.warning(
                "%s: %d warning(s): %s%s",
                self.source.display,
                report.warnings,
                shown,
                f" (and {more} more: `llmfiles validate` lists them)" if more > 0 else "",
            )
        return Inspected(report=report, digests=digests, part_crcs=crcs)

    def abandon(self) -> None:
        """Stop the checks (the upload failed elsewhere)."""
        close = getattr(self.checks, "close", None)
        if close is not None:
            close()


class Counter:
    """Bytes sent, reported to a ``progress`` callback; a range sent again (a retry) is counted once."""

    def __init__(self, callback: Callable[[Progress], None] | None, filename: str, total: int) -> None:
        self.callback = callback
        self.filename = filename
        self.total = total
        self.done = 0
        self.resumed = 0
        #: the parts of a parts upload, and how many an earlier run had sent
        self.parts = self.parts_resumed = 0
        self._ranges: dict[tuple[int, int], int] = {}
        self._lock = threading.Lock()

    def report(self) -> None:
        if self.callback is not None:
            self.callback(
                Progress(
                    operation="upload",
                    filename=self.filename,
                    done=self.done,
                    total=self.total,
                    resumed=self.resumed,
                    parts=self.parts,
                    parts_resumed=self.parts_resumed,
                )
            )

    def restart(self, key: tuple[int, int]) -> None:
        """The range ``key`` is sent again from its start: take back what its last attempt counted."""
        with self._lock:
            self.done -= self._ranges.pop(key, 0)

    def add(self, key: tuple[int, int], n: int) -> None:
        with self._lock:
            self._ranges[key] = self._ranges.get(key, 0) + n
            self.done += n
            # reported under the lock, so the callback sees the counts in order although parts run in threads
            self.report()

    def reset(self) -> None:
        """Nothing is sent yet (a new start of the upload)."""
        with self._lock:
            self.done = self.resumed = self.parts = self.parts_resumed = 0
            self._ranges.clear()

    def skip(self, n: int, parts: tuple[int, int] | None = None) -> None:
        """``n`` bytes an earlier run already sent (a resumed upload); ``parts``: (parts already sent, parts)."""
        with self._lock:
            self.done += n
            self.resumed += n
            if parts is not None:
                self.parts_resumed, self.parts = parts
            self.report()


class Pipeline:
    """The read of one upload's file: the streams the transport sends, feeding the :class:`Inspection`, and the
    gate before the commit."""

    def __init__(self, source: Source, inspection: Inspection, counter: Counter, *, gate_last: bool) -> None:
        self.source = source
        self.inspection = inspection
        self.counter = counter
        self.gate_last = gate_last
        self._lead: threading.Thread | None = None
        self._lead_error: BaseException | None = None
        self._stop = threading.Event()  # the parts stop (the checks found an error, or the upload failed)
        self._abandon = threading.Event()  # the lead stops too (the upload failed)
        self._sent_crcs: dict[int, int] = {}

    # -- the single request and the resumable session: the stream is the in-order read ------------------------

    def stream(self, offset: int, length: int) -> Iterator[bytes | memoryview]:
        """The bytes ``[offset, offset + length)`` for a request body: inspected as they are read; before the
        file's last block goes out, the gate (when ``gate_last``)."""
        key = (offset, length)
        self.counter.restart(key)
        end = offset + length
        size = self.source.size
        pos = offset
        for block in self._read(offset, length, kept=not self.inspection.idle):
            self.inspection.feed(pos, block)
            if self.inspection.failing:
                self.gate()  # raises the ValidationError, once the checks read the rest of the file
            pos += len(block)
            if pos == size and end == size and self.gate_last:
                self.gate()
            self.counter.add(key, len(block))
            yield block

    def _read(self, offset: int, length: int, *, kept: bool) -> Iterator[bytes | memoryview]:
        """The blocks of a range; into one reused buffer when nothing but the sending looks at them (``kept``:
        something may hold on to a block after the next is read, so each is a block of its own)."""
        if kept:
            return self.source.read_range(offset, length, BLOCK)
        return self.source.read_range_into(offset, length, bytearray(min(BLOCK, max(length, 1))))

    def inspect_until(self, offset: int) -> None:
        """Inspect (without sending) the bytes before ``offset``: a resumed session continues after bytes an earlier
        run sent, which are checked and hashed all the same."""
        if self.inspection.idle:
            return
        pos = self.inspection.done
        if pos < offset:
            for block in self.source.read_range(pos, offset - pos, BLOCK):
                if self._abandon.is_set():
                    return
                self.inspection.feed(pos, block)
                pos += len(block)
                if self.inspection.failing:
                    self._stop.set()  # the parts stop; the checks go on to the end, for the whole report

    # -- parts in parallel: the lead reads in order, each part streams its own range ---------------------------

    def start_lead(self) -> None:
        """Start the in-order read that feeds the inspection beside the parts (none when it has nothing to do)."""
        if self.inspection.idle:
            return
        self._lead = threading.Thread(target=self._run_lead, name="llmfiles-lead", daemon=True)
        self._lead.start()

    def _run_lead(self) -> None:
        try:
            if not self.inspection.inspect_remotely(self._stop.set):
                self.inspect_until(self.source.size)
        except BaseException as exc:  # reported by the gate or by the parts
            self._lead_error = exc
            self._stop.set()

    def part_stream(
        self, offset: int, length: int, index: int, names: Sequence[str], out: dict[str, str]
    ) -> Iterator[bytes | memoryview]:
        """A part's bytes, read on their own, with the digests ``names`` of them put into ``out`` once they were all
        read, and their CRC-32 kept for the gate to compare with what the lead read."""
        key = (offset, length)
        self.counter.restart(key)
        crc = 0
        compare = not self.inspection.idle  # with nothing inspected there is no read to compare the part with
        hashers = [(n, hashlib.new(n)) for n in names]
        # nothing keeps a part's block once it is sent (its CRC-32 and digests are taken here, at once)
        for block in self._read(offset, length, kept=False):
            if self._stop.is_set():
                self._stopped()
            if compare:
                crc = zlib.crc32(block, crc)
            for _, h in hashers:
                h.update(block)
            self.counter.add(key, len(block))
            yield block
        if compare:
            self._sent_crcs[index] = crc
        out.update({n: h.hexdigest() for n, h in hashers})

    def halt(self) -> None:
        """Stop the parts' streams (they have all returned) and let the lead finish its read, keeping what it
        inspected, for a new start of the same upload (the provider no longer had the session being continued)."""
        self._stop.set()
        if self._lead is not None:
            self._lead.join()
            self._lead = None
        if self._lead_error is None and not self.inspection.failing:
            self._stop.clear()  # else the new start stops at its first part, for the same reason
        self.counter.reset()

    def stop(self) -> None:
        """Stop the streams and the lead (the upload failed)."""
        self._stop.set()
        self._abandon.set()
        self.inspection.abandon()  # first: a worker reading the file itself stops, and with it the lead waiting on it
        if self._lead is not None:
            self._lead.join()

    def _stopped(self) -> None:
        if self._lead_error is not None:
            raise self._lead_error
        if self.inspection.failing:
            self.gate()
        raise LLMFilesError("stopped: another part of the upload failed")

    # -- the commit ------------------------------------------------------------------------------------------

    def gate(self, sent_parts: Sequence[int] = ()) -> Inspected:
        """What must hold before the commit: the whole file inspected and its checks passed, the file unchanged
        (:class:`FileChanged`), and each part in ``sent_parts`` sent with the bytes the lead read."""
        if self._lead is not None:
            self._lead.join()
        elif self.inspection.done < self.source.size and self._lead_error is None:
            try:
                self.inspect_until(self.source.size)
            except LLMFilesError as exc:
                self._lead_error = exc
        # a changed file first: problems the checks found in it may be the change's own doing
        self.source.check_unchanged()
        if self._lead_error is not None:
            raise self._lead_error
        result = self.inspection.finish()
        for index in sent_parts:
            sent, read = self._sent_crcs.get(index), result.part_crcs.get(index)
            if sent is not None and read is not None and sent != read:
                raise FileChanged(
                    f"{self.source.display} changed while it was being uploaded (part {index + 1} was sent with other "
                    "bytes than were checked); nothing was committed at the provider. Upload it again once nothing "
                    "writes to it"
                )
        return result


def sha256_of(source: Source) -> str:
    """The SHA-256 of the whole file (one read: what ``if_exists`` looks uploads up by)."""
    h = hashlib.sha256()
    for block in source.read_range(0, source.size, BLOCK):
        h.update(block)
    return h.hexdigest()


def read_head(source: Source) -> bytes:
    """The file's first bytes (at most :data:`HEAD_BYTES`)."""
    return source.pread(min(HEAD_BYTES, source.size), 0)
