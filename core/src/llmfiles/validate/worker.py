"""Checking a large file on another core: a worker process that runs the JSONL checks on the blocks the upload
reads, so parsing never competes with sending for the interpreter lock.

The parent (:class:`WorkerChecker`) starts ``python -m llmfiles.validate.worker`` (not :mod:`multiprocessing`,
which would import the caller's ``__main__`` again in the child), sends it the pickled record checker, then either
each block of the file as it is read, or one command to read the whole file itself: the worker inherits the
parent's open descriptor of the file (the same open file, never a file renamed over it meanwhile) and computes the
whole-file digests and the parts' CRC-32s beside the checks, so that the parent neither reads nor hashes the file
nor hands every byte through a pipe (a parts upload, whose senders read their own ranges; the CRC-32s prove they
sent the bytes the worker checked).  The worker reports when it finds the first error (so the upload can stop
early) and sends the :class:`~llmfiles.validate.jsonl.Report` back at the end.  Frames on both pipes are an 8-byte
length and a payload (a length with the top bit set marks a command rather than a block).  If the worker cannot
start or cannot rebuild the checker, the checks run in a thread of the parent instead, on blocks the parent reads;
nothing is lost.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import IO, Any

from attrs import frozen

from llmfiles.blockdigests import BlockHasher, PartCrcs, RemoteInspection
from llmfiles.errors import LLMFilesError
from llmfiles.validate.jsonl import BLOCK, MAX_LINE, JsonlChecker, Report
from llmfiles.validate.records import RecordChecker

log = logging.getLogger("llmfiles.validate")

_LEN = struct.Struct(">Q")
#: the top bit of a frame's length: the frame is a pickled command, not a block of the file
_COMMAND = 1 << 63
#: blocks waiting for the worker (each up to the pipeline's block size): the memory the hand-over may take
QUEUE_BLOCKS = 8
#: the pipe buffer asked for (Linux's default limit for unprivileged users, /proc/sys/fs/pipe-max-size)
PIPE_BYTES = 1024 * 1024
#: seconds the worker may take to start and rebuild the checker before the checks move into this process
START_TIMEOUT = 60.0


def _write(out: IO[bytes], payload: bytes) -> None:
    out.write(_LEN.pack(len(payload)))
    out.write(payload)


def _read(inp: IO[bytes]) -> bytes | None:
    frame = _read_frame(inp)
    return None if frame is None else frame[1]


def _read_frame(inp: IO[bytes]) -> tuple[bool, bytes] | None:
    """The next frame: (whether it is a command, its payload); ``None`` at the end of the pipe."""
    head = inp.read(_LEN.size)
    if len(head) < _LEN.size:
        return None
    (n,) = _LEN.unpack(head)
    command, n = bool(n & _COMMAND), n & ~_COMMAND
    data = inp.read(n)
    if len(data) < n:
        return None
    return command, data


@frozen
class _ReadFile:
    """The command to read the whole file from the inherited descriptor: with these digests, and the CRC-32 of each
    ``part_size`` range (``None``: no parts)."""

    digests: tuple[str, ...]
    part_size: int | None


def _widen(pipe: IO[bytes] | None) -> None:
    """Let the pipe hold a whole block where the system allows it (Linux: ``F_SETPIPE_SZ``): with the default
    64 KiB, every 1 MiB block costs the two processes sixteen wake-ups."""
    import fcntl

    setsize = getattr(fcntl, "F_SETPIPE_SZ", None)
    if pipe is None or setsize is None:
        return
    try:
        fcntl.fcntl(pipe.fileno(), setsize, PIPE_BYTES)
    except OSError:  # above /proc/sys/fs/pipe-max-size for an unprivileged user: keep the default
        pass


def _send(out: IO[bytes], message: tuple[Any, ...]) -> None:
    _write(out, pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
    out.flush()


def main() -> int:
    """The worker: rebuild the checker, check every block (sent, or read from the file), send the report."""
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    header = _read(inp)
    if header is None:
        return 1
    try:
        display, size, checker, max_problems, max_line, file = pickle.loads(header)  # noqa: S301 - our parent's
        jc = JsonlChecker(display, size, checker=checker, max_problems=max_problems, max_line=max_line)
    except Exception as exc:
        _send(out, ("failed", f"{type(exc).__name__}: {exc}"))
        return 0
    _send(out, ("ready",))
    told = False
    while (frame := _read_frame(inp)) is not None and frame[1]:
        command, payload = frame
        if command:
            remote = _read_file(jc, file, size, pickle.loads(payload), out)  # noqa: S301 - our own parent's data
            _send(out, ("done", jc.finish(), remote))
            return 0
        told = _check(jc, payload, out, told)
    _send(out, ("done", jc.finish(), None))
    return 0


def _check(jc: JsonlChecker, block: bytes, out: IO[bytes], told: bool) -> bool:
    """Check ``block``; the first error found is told to the parent at once (``told``: it was already)."""
    jc.feed(block)
    if not told and jc.errors:
        _send(out, ("errors", jc.errors))
        return True
    return told


def _read_file(
    jc: JsonlChecker, file: tuple[int, int], size: int, command: _ReadFile, out: IO[bytes]
) -> RemoteInspection:
    """Read the file from the inherited descriptor, in order: checked, hashed (on a helper thread: hashlib lets the
    checks run meanwhile) and the CRC-32 of each part kept; the first error is reported at once."""
    fd, start = file
    hasher = BlockHasher(command.digests, threaded=True)
    crcs = PartCrcs(command.part_size) if command.part_size else None
    told = False
    pos = 0
    while pos < size:
        block = os.pread(fd, min(BLOCK, size - pos), start + pos)
        if not block:  # the file shrank: the parent reports it
            break
        hasher.update(block)
        if crcs is not None:
            crcs.update(pos, block)
        told = _check(jc, block, out, told)
        pos += len(block)
    return RemoteInspection(read=pos, digests=hasher.result(), part_crcs=crcs.crcs if crcs is not None else {})


class WorkerChecker:
    """:class:`~llmfiles.validate.jsonl.JsonlChecker`'s interface, with the work done in a worker process.

    Raises (in the constructor) only when the checker cannot be pickled; the caller then checks in-process.
    """

    def __init__(
        self,
        display: str,
        size: int,
        *,
        checker: RecordChecker | None,
        max_problems: int = 50,
        max_line: int = MAX_LINE,
        file: tuple[int, int] | None = None,
    ) -> None:
        self._args: tuple[str, int, RecordChecker | None, int, int] = (display, size, checker, max_problems, max_line)
        #: (descriptor, offset of the first byte) the worker may read the file from (see :meth:`inspect_file`)
        self._file = file if os.name == "posix" else None
        self._header = pickle.dumps((*self._args, self._file), protocol=pickle.HIGHEST_PROTOCOL)
        self._queue: queue.Queue[bytes | _ReadFile | None] = queue.Queue(maxsize=QUEUE_BLOCKS)
        self._ready = threading.Event()
        self._done = threading.Event()
        self._answered = threading.Event()  # the answer to a _ReadFile: from the worker, or the fallback's refusal
        self._remote: RemoteInspection | None = None
        self._on_errors: Callable[[], None] | None = None
        self._command_sent = False
        self._fallback: JsonlChecker | None = None
        self._report: Report | None = None
        self._failure: str | None = None
        self._stderr: list[bytes] = []
        self._errors = 0
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "llmfiles.validate.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            pass_fds=(self._file[0],) if self._file is not None else (),
        )
        self._threads = [
            threading.Thread(target=self._writer, name="llmfiles-check-writer", daemon=True),
            threading.Thread(target=self._reader, name="llmfiles-check-reader", daemon=True),
            threading.Thread(target=self._drain_stderr, name="llmfiles-check-stderr", daemon=True),
        ]
        _widen(self._proc.stdin)
        for t in self._threads:
            t.start()

    @property
    def checker(self) -> RecordChecker | None:
        """The record checker the worker runs."""
        return self._args[2]

    @property
    def errors(self) -> int:
        fallback = self._fallback
        return fallback.errors if fallback is not None else self._errors

    def feed(self, block: bytes | memoryview) -> None:
        self._queue.put(bytes(block) if type(block) is not bytes else block)

    def inspect_file(
        self, digests: Sequence[str], part_size: int | None, on_errors: Callable[[], None]
    ) -> RemoteInspection | None:
        """Have the worker read the whole file itself (nothing may have been fed), checked and hashed with
        ``digests``, the CRC-32 of each ``part_size`` range kept; ``on_errors`` is called (from another thread) when
        the checks find their first error.  Returns once the whole file was read; ``None`` when the worker cannot
        read it (no descriptor to hand over, or the checks moved into this process): then feed the blocks."""
        if self._file is None:
            return None
        self._on_errors = on_errors
        self._queue.put(_ReadFile(tuple(digests), part_size))
        self._answered.wait()
        if self._fallback is not None:
            return None
        if self._remote is None:
            raise LLMFilesError(self._failed())
        return self._remote

    def finish(self) -> Report:
        self._queue.put(None)
        self._threads[0].join()
        if self._fallback is not None:
            return self._fallback.finish()
        self._done.wait()
        self._proc.wait()
        self._threads[2].join(timeout=5)
        if self._report is None:
            raise LLMFilesError(self._failed())
        return self._report

    def _failed(self) -> str:
        self._proc.wait()
        self._threads[2].join(timeout=5)
        tail = b"".join(self._stderr).decode("utf-8", "replace").strip().splitlines()[-5:]
        detail = "; ".join(tail) if tail else f"exit status {self._proc.returncode}"
        return f"the process that checks {self._args[0]} failed ({self._failure or detail})"

    def close(self) -> None:
        """Stop the worker (after a failure elsewhere)."""
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    # -- threads ---------------------------------------------------------------------------------------------

    def _writer(self) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            _write(stdin, self._header)
            stdin.flush()
            if not self._ready.wait(START_TIMEOUT) or self._failure is not None:
                self._check_here()
                return
            while (block := self._queue.get()) is not None:
                if isinstance(block, _ReadFile):  # the worker reads the rest itself
                    self._command_sent = True
                    payload = pickle.dumps(block, protocol=pickle.HIGHEST_PROTOCOL)
                    stdin.write(_LEN.pack(len(payload) | _COMMAND))
                    stdin.write(payload)
                    stdin.close()
                    return
                _write(stdin, block)
            _write(stdin, b"")
            stdin.close()
        except (BrokenPipeError, OSError) as exc:
            self._failure = self._failure or f"the worker went away: {exc}"
            self._answered.set()  # a waiting inspect_file learns that the worker is gone
            self._drop()

    def _check_here(self) -> None:
        """The worker could not take the checks: run them in this thread, on every block, from the first."""
        log.info("checking %s in this process (%s)", self._args[0], self._failure or "the worker did not start")
        self.close()
        display, size, checker, max_problems, max_line = self._args
        jc = JsonlChecker(display, size, checker=checker, max_problems=max_problems, max_line=max_line)
        self._fallback = jc
        while (block := self._queue.get()) is not None:
            if isinstance(block, _ReadFile):  # refused: the caller feeds the blocks here instead
                self._answered.set()
                continue
            jc.feed(block)

    def _drop(self) -> None:
        while (block := self._queue.get()) is not None:
            if isinstance(block, _ReadFile):
                self._answered.set()

    def _reader(self) -> None:
        stdout = self._proc.stdout
        assert stdout is not None
        try:
            while (frame := _read(stdout)) is not None:
                message = pickle.loads(frame)  # noqa: S301 - our own worker's data
                kind = message[0]
                if kind == "ready":
                    self._ready.set()
                elif kind == "errors":
                    self._errors = int(message[1])
                    if self._on_errors is not None:
                        self._on_errors()
                elif kind == "failed":
                    self._failure = str(message[1])
                    self._ready.set()
                elif kind == "done":
                    self._report, self._remote = message[1], message[2]
                    self._errors = self._report.errors if self._report is not None else self._errors
        except Exception as exc:
            self._failure = f"its answer could not be read: {type(exc).__name__}: {exc}"
        finally:
            if not self._ready.is_set():
                self._failure = self._failure or "it stopped before it was ready"
                self._ready.set()
            self._done.set()
            if self._command_sent:  # the worker read the file, or died trying: either way it answered
                self._answered.set()

    def _drain_stderr(self) -> None:
        stderr = self._proc.stderr
        assert stderr is not None
        kept = 0
        for line in stderr:
            if kept < 64 * 1024:
                self._stderr.append(line)
                kept += len(line)


if __name__ == "__main__":
    raise SystemExit(main())
