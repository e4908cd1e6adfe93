"""The large-file engine: split a file into byte ranges and run a provider's :class:`UploadPlan`.

The engine owns threads, part retries (through the transport), checksums, progress and clean completion or
abort; the plan only turns responses into the next requests.  Memory is bounded by ``max_concurrency`` times
the transport's read block, never by the part size: each part streams from its offset on disk.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import logging
import math
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any, Protocol

import attrs

from llmfiles.errors import FileTooLarge, InvalidSetting, LLMFilesError, PluginError, ProviderError, UploadFailed
from llmfiles.models import FileObject, HttpRequest, HttpResponse, Part, Receipt, Source, SourceRange, UploadPlan

log = logging.getLogger("llmfiles.parts")

#: a resumable plan gives up after this many parts in a row that moved the provider's offset no further
MAX_RESUMES_WITHOUT_PROGRESS = 5


class Exchange(Protocol):
    """Sends one request and returns its successful response (raising on an error status)."""

    def __call__(
        self,
        request: HttpRequest,
        *,
        on_chunk: Callable[[bytes], None] | None = ...,
        on_restart: Callable[[], None] | None = ...,
    ) -> HttpResponse: ...


def choose_part_size(size: int, plan: UploadPlan, requested: int, *, provider: str, path: str) -> int:
    """The part size to use: the requested one, within the plan's bounds, grown until the parts fit the limit."""
    if requested <= 0:
        raise InvalidSetting(f"part_size must be greater than 0 (got {requested})")
    part = max(requested, plan.min_part_size)
    if plan.max_part_size is not None:
        part = min(part, plan.max_part_size)
    if math.ceil(size / part) > plan.max_parts:
        part = math.ceil(size / plan.max_parts)
    if plan.alignment > 1:
        part = math.ceil(part / plan.alignment) * plan.alignment
        if plan.max_part_size is not None and part > plan.max_part_size:
            # rounding up crossed the cap: take the largest aligned size within it (checked against max_parts below)
            part = plan.max_part_size // plan.alignment * plan.alignment or part
    if plan.max_part_size is not None and (part > plan.max_part_size or math.ceil(size / part) > plan.max_parts):
        raise FileTooLarge(
            path,
            size,
            plan.max_part_size * plan.max_parts,
            provider,
            detail=f"(at most {plan.max_parts:,} parts of {plan.max_part_size:,} bytes)",
        )
    return part


def split(size: int, part_size: int) -> list[tuple[int, int]]:
    """``(offset, length)`` of each part; only the last may be shorter."""
    return [(off, min(part_size, size - off)) for off in range(0, size, part_size)] or [(0, 0)]


class _Counter:
    def __init__(self, total: int, report: Callable[[int, int], None] | None) -> None:
        self.total = total
        self.done = 0
        self.report = report
        self.lock = threading.Lock()

    def add(self, n: int) -> None:
        with self.lock:
            self.done += n
            # reported under the lock, so the callback sees the counts in order although parts run in threads
            if self.report is not None:
                self.report(self.done, self.total)


def _hashers(names: tuple[str, ...]) -> dict[str, Any]:
    return {n: hashlib.new(n) for n in names}


def run_plan(
    plan: UploadPlan,
    source: Source,
    *,
    exchange: Exchange,
    part_size: int,
    max_concurrency: int,
    provider: str,
    known_digests: Mapping[str, str] | None = None,
    report: Callable[[int, int], None] | None = None,
) -> FileObject:
    """Upload ``source`` with ``plan`` and return the provider's file object.

    Whole-file digests the plan asks for come from ``known_digests`` (computed in the check pass that reads the
    file anyway) or, for a sequential plan, from the bytes as they stream.  A parallel plan without them gets
    them from one sequential read that runs beside the upload.  A plan with its own ``source`` uploads that
    instead of ``source`` (and ``known_digests``, which describe the caller's file, are not used).
    """
    if plan.source is not None:
        source, known_digests = plan.source, None
    plan = _guarded(plan, provider)
    size = source.size
    part_size = choose_part_size(size, plan, part_size, provider=provider, path=source.display)
    ranges = split(size, part_size)
    if len(ranges) > plan.max_parts:
        raise FileTooLarge(source.display, size, plan.max_parts * part_size, provider)
    counter = _Counter(size, report)
    known = dict(known_digests or {})
    missing = tuple(d for d in plan.digests if d not in known)
    stream_whole = _hashers(missing) if (missing and plan.sequential) else {}
    side_hash: dict[str, str] = {}
    side_thread: threading.Thread | None = None
    side_error: list[BaseException] = []
    if missing and not plan.sequential:

        def _side() -> None:
            try:
                hs = _hashers(missing)
                for chunk in source.read_range(0, size, 1024 * 1024):
                    for h in hs.values():
                        h.update(chunk)
                side_hash.update({n: h.hexdigest() for n, h in hs.items()})
            except BaseException as exc:  # reported after the parts
                side_error.append(exc)

        side_thread = threading.Thread(target=_side, name="llmfiles-digest", daemon=True)
        side_thread.start()

    state: Mapping[str, Any] | None = None
    stop = threading.Event()
    last_response: list[HttpResponse] = []

    def send_part(index: int, offset: int, length: int) -> Receipt:
        assert state is not None
        part = Part(
            index=index, offset=offset, length=length, body=SourceRange(source=source, offset=offset, length=length)
        )
        hs = _hashers(plan.part_digests)
        whole_snapshot = {n: h.copy() for n, h in stream_whole.items()}
        sent = [0]

        def on_chunk(chunk: bytes) -> None:
            if stop.is_set():
                raise UploadFailed("stopped: another part of the upload failed")
            for h in hs.values():
                h.update(chunk)
            for h in stream_whole.values():
                h.update(chunk)
            sent[0] += len(chunk)
            counter.add(len(chunk))

        def on_restart() -> None:
            nonlocal hs
            hs = _hashers(plan.part_digests)
            for n, h in whole_snapshot.items():
                stream_whole[n] = h.copy()
            counter.add(-sent[0])
            sent[0] = 0

        response = exchange(plan.part(state, part), on_chunk=on_chunk, on_restart=on_restart)
        if plan.complete is None and index == len(ranges) - 1:
            last_response.append(response)
        return plan.read_part(state, part, response, {n: h.hexdigest() for n, h in hs.items()})

    if plan.start is not None:
        state = plan.read_start(exchange(plan.start))
    else:
        state = {}
    try:
        receipts: list[Receipt] = [{}] * len(ranges)
        final_part: HttpResponse | None = None
        if plan.sequential and plan.read_progress is not None:
            receipts, final_part = _send_resumable(plan, state, source, exchange, part_size, counter, stream_whole)
        elif plan.sequential or max_concurrency <= 1 or len(ranges) == 1:
            for i, (off, length) in enumerate(ranges):
                receipts[i] = send_part(i, off, length)
        else:
            pool = ThreadPoolExecutor(max_workers=min(max_concurrency, len(ranges)), thread_name_prefix="llmfiles-part")
            pending: dict[Any, int] = {}
            try:
                # each part runs in a copy of the caller's context, so progress callbacks see its contextvars
                pending = {
                    pool.submit(contextvars.copy_context().run, send_part, i, off, length): i
                    for i, (off, length) in enumerate(ranges)
                }
                done, _ = wait(pending, return_when=FIRST_EXCEPTION)
                failed = [f for f in done if f.exception() is not None]
                if failed:
                    stop.set()
                    exc = failed[0].exception()
                    assert exc is not None
                    raise exc
                for f, i in pending.items():
                    receipts[i] = f.result()
            finally:
                if not stop.is_set() and any(not f.done() for f in pending):
                    stop.set()
                pool.shutdown(wait=True, cancel_futures=True)
        digests = dict(known)
        digests.update({n: h.hexdigest() for n, h in stream_whole.items()})
        if side_thread is not None:
            side_thread.join()
            if side_error:
                raise UploadFailed(f"could not read {source.display} to compute its checksum: {side_error[0]}")
            digests.update(side_hash)
        if plan.complete is not None:
            final = exchange(plan.complete(state, receipts, digests))
        else:
            final = final_part if final_part is not None else last_response[-1]
        file_object = plan.read_complete(state, final)
        if plan.reported_digests is not None:
            _compare_digests(plan.reported_digests(state, final), digests, file_object, source)
        return file_object
    except BaseException as exc:
        _abort(plan, state, exchange, exc)
        raise


def _compare_digests(
    reported: Mapping[str, str], computed: Mapping[str, str], file_object: FileObject, source: Source
) -> None:
    for name, value in reported.items():
        mine = computed.get(name)
        if mine is not None and value.lower() != mine.lower():
            raise UploadFailed(
                f"{file_object.id}: the provider stored bytes whose {name} is {value}, but the {name} of "
                f"{source.display} as sent is {mine}: the data changed on the way or the file changed while it "
                f"was read. Delete {file_object.id} and upload again"
            )


class _Interrupted(Exception):
    """Internal: the transport is about to resend a part of a resumable plan; ask the provider how far it got."""


def _send_resumable(
    plan: UploadPlan,
    state: Mapping[str, Any],
    source: Source,
    exchange: Exchange,
    part_size: int,
    counter: _Counter,
    stream_whole: dict[str, Any],
) -> tuple[list[Receipt], HttpResponse]:
    """Send a sequential plan from the offset the provider reports after each part (``plan.read_progress``).

    A part whose connection fails is not resent from its start when the plan can ``query_progress``: the engine
    asks the provider how many bytes it has and continues from there.  Whole-file digests computed in-stream are
    brought back in line with the provider's offset by re-reading (never re-sending) the bytes in between.
    Returns the receipts in send order and the final response (the one after which the provider has it all).
    """
    assert plan.read_progress is not None
    size = source.size
    receipts: list[Receipt] = []
    offset = 0
    index = 0
    stalled = 0
    while True:
        response, receipt, committed = _send_from(
            plan, state, source, exchange, index, offset, part_size, counter, stream_whole
        )
        index += 1
        if receipt is not None:
            receipts.append(receipt)
        if committed >= size:
            return receipts, response
        stalled = stalled + 1 if committed <= offset else 0
        if stalled >= MAX_RESUMES_WITHOUT_PROGRESS:
            raise UploadFailed(
                f"the provider kept no more of {source.display} after {stalled} attempts in a row "
                f"(it has {committed:,} of {size:,} bytes); giving up"
            )
        offset = committed


def _send_from(
    plan: UploadPlan,
    state: Mapping[str, Any],
    source: Source,
    exchange: Exchange,
    index: int,
    offset: int,
    part_size: int,
    counter: _Counter,
    stream_whole: dict[str, Any],
) -> tuple[HttpResponse, Receipt | None, int]:
    """Send one part of a resumable plan from ``offset``; return the response, its receipt (``None`` when the
    part was interrupted and the provider was asked instead) and the provider's offset afterwards."""
    assert plan.read_progress is not None
    size = source.size
    length = min(part_size, size - offset)
    part = Part(
        index=index, offset=offset, length=length, body=SourceRange(source=source, offset=offset, length=length)
    )
    snapshot = {n: h.copy() for n, h in stream_whole.items()}
    hs = _hashers(plan.part_digests)
    sent = 0

    def on_chunk(chunk: bytes) -> None:
        nonlocal sent
        for h in hs.values():
            h.update(chunk)
        for h in stream_whole.values():
            h.update(chunk)
        sent += len(chunk)
        counter.add(len(chunk))

    def on_restart() -> None:
        nonlocal hs, sent
        if plan.query_progress is not None:
            raise _Interrupted
        hs = _hashers(plan.part_digests)
        _rewind(stream_whole, snapshot, source, offset, offset)
        counter.add(-sent)
        sent = 0

    receipt: Receipt | None = None
    try:
        response = exchange(plan.part(state, part), on_chunk=on_chunk, on_restart=on_restart)
    except _Interrupted:
        assert plan.query_progress is not None
        response = exchange(plan.query_progress(state))
        committed = plan.read_progress(state, response)
        log.info(
            "part %d (bytes %d-%d) was interrupted; the provider has %d bytes, continuing from there",
            part.number,
            offset,
            offset + length - 1,
            committed,
        )
    else:
        receipt = plan.read_part(state, part, response, {n: h.hexdigest() for n, h in hs.items()})
        committed = plan.read_progress(state, response)
    if not 0 <= committed <= size:
        raise UploadFailed(f"the provider reports {committed:,} bytes received of {size:,}; cannot continue")
    if committed != offset + sent:
        _rewind(stream_whole, snapshot, source, offset, committed)
    counter.add(committed - offset - sent)
    return response, receipt, committed


def _rewind(hashers: dict[str, Any], snapshot: Mapping[str, Any], source: Source, start: int, committed: int) -> None:
    """Make ``hashers`` cover exactly the bytes ``[0, committed)``; ``snapshot`` covers ``[0, start)``."""
    if not hashers:
        return
    if committed >= start:
        base, begin = snapshot, start
    else:
        base, begin = _hashers(tuple(hashers)), 0
    for name in hashers:
        hashers[name] = base[name].copy()
    if committed > begin:
        for chunk in source.read_range(begin, committed - begin, 1024 * 1024):
            for h in hashers.values():
                h.update(chunk)


_READERS = ("read_start", "read_part", "read_complete", "read_progress", "reported_digests")
_BUILDERS = ("part", "complete", "abort", "query_progress")


def _guarded(plan: UploadPlan, provider: str) -> UploadPlan:
    """The plan with its functions wrapped so that a plugin bug or a malformed answer becomes an llmfiles error
    (a ``ProviderError`` for readers of responses, a ``PluginError`` for request builders), never a bare one."""

    def guard(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def call(*args: Any) -> Any:
            try:
                return fn(*args)
            except LLMFilesError:
                raise
            except Exception as exc:
                text = f"{type(exc).__name__}: {exc}"
                if name in _READERS:
                    raise ProviderError(
                        f"could not read the provider's answer in the upload plan's {name}: {text}", provider=provider
                    ) from exc
                raise PluginError(f"the {provider} upload plan failed in {name}: {text}") from exc

        return call

    changes: dict[str, Any] = {
        name: guard(name, fn) for name in (*_READERS, *_BUILDERS) if (fn := getattr(plan, name)) is not None
    }
    return attrs.evolve(plan, **changes)


def _abort(plan: UploadPlan, state: Mapping[str, Any], exchange: Exchange, exc: BaseException) -> None:
    if plan.abort is None:
        return
    try:
        exchange(plan.abort(state))
    except Exception as abort_exc:
        note = f"llmfiles: the upload session could not be aborted ({abort_exc}); it may need cleaning up"
    else:
        note = "llmfiles: the unfinished upload session was aborted at the provider"
    log.info(note)
    exc.add_note(note)
