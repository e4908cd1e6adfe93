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
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from llmfiles.errors import (
    DeadlineExceeded,
    FileTooLarge,
    InvalidSetting,
    LLMFilesError,
    NetworkError,
    PluginError,
    ProviderError,
    RetriesExhausted,
    UploadFailed,
)
from llmfiles.models import (
    FileObject,
    HttpRequest,
    HttpResponse,
    Part,
    Receipt,
    Source,
    SourceRange,
    UploadPlan,
    UploadState,
)

if TYPE_CHECKING:
    from llmfiles.state import SavedSession

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


class Journal(Protocol):
    """Where the engine records an upload so that a later run can resume it (see :class:`llmfiles.state.Journal`)."""

    @property
    def active(self) -> bool: ...

    def find(self) -> SavedSession | None: ...

    def change(self, saved: SavedSession) -> str | None: ...

    def started(
        self, state: UploadState, *, part_size: int, parts: int, destination: str, ttl: float | None
    ) -> None: ...

    def part_done(self, index: int, offset: int, length: int, receipt: Receipt, digests: Mapping[str, str]) -> None: ...

    def forget_parts(self, indexes: list[int]) -> None: ...

    def keep(self) -> None: ...

    def discard(self) -> None: ...


#: errors after which an upload session is kept for a later run (the session itself is fine): interruptions, the
#: network, the deadline, a provider that stayed overloaded or down
def can_resume_after(exc: BaseException) -> bool:
    if not isinstance(exc, Exception):
        return True  # KeyboardInterrupt, SystemExit
    if isinstance(exc, (NetworkError, DeadlineExceeded)):
        return True
    return isinstance(exc, ProviderError) and exc.status is not None and (exc.status in (408, 429) or exc.status >= 500)


#: answers that say the provider no longer has a session a resumed upload asked about
_SESSION_GONE = (400, 404, 409, 410)


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
    journal: Journal | None = None,
    whole_digests: bool = True,
) -> FileObject:
    """Upload ``source`` with ``plan`` and return the provider's file object.

    Whole-file digests the plan asks for come from ``known_digests`` (computed in the check pass that reads the
    file anyway) or, for a sequential plan, from the bytes as they stream.  A parallel plan without them gets
    them from one sequential read that runs beside the upload; ``whole_digests=False`` (the ``checksum`` setting)
    computes none that are not known, and the provider gets none to check.  A plan with its own ``source`` uploads that
    instead of ``source`` (and ``known_digests``, which describe the caller's file, are not used).

    With a ``journal``, the session and each part are recorded as they happen, and an unfinished session of the same
    upload left by an earlier run is continued: only the parts the provider does not have are sent.  An interrupted
    upload (Ctrl-C, the network, a provider that stays down) keeps its session for the next run; an upload that
    failed for good aborts it.
    """
    if plan.source is not None:
        source, known_digests = plan.source, None
    plan = _guarded(plan, provider)
    if journal is not None and not plan.resumable:
        journal = None
    run = _Run(plan, source, exchange, max_concurrency, provider, known_digests, report, journal, whole_digests)
    saved = run.saved_session()
    if saved is not None:
        try:
            return run.resume(saved)
        except ProviderError as exc:
            if run.progressed or exc.status not in _SESSION_GONE:
                raise
            log.info(
                "the provider no longer has the unfinished upload session of %s (%s); starting a new one",
                source.display,
                exc,
            )
            if journal is not None:
                journal.discard()
            run.reset()
    return run.fresh(part_size)


class _Run:
    """One run of a plan: a new session (:meth:`fresh`) or the continuation of a recorded one (:meth:`resume`)."""

    def __init__(
        self,
        plan: UploadPlan,
        source: Source,
        exchange: Exchange,
        max_concurrency: int,
        provider: str,
        known_digests: Mapping[str, str] | None,
        report: Callable[[int, int], None] | None,
        journal: Journal | None,
        whole_digests: bool = True,
    ) -> None:
        self.plan = plan
        self.source = source
        self._exchange = exchange
        self.max_concurrency = max_concurrency
        self.provider = provider
        self.known = dict(known_digests or {})
        self.whole_digests = whole_digests
        self.report = report
        self.journal = journal
        self.reset()

    def reset(self) -> None:
        self.counter = _Counter(self.source.size, self.report)
        self.resuming = False
        #: a request of a resumed session succeeded (the provider knows the session)
        self.progressed = False

    def exchange(
        self,
        request: HttpRequest,
        *,
        on_chunk: Callable[[bytes], None] | None = None,
        on_restart: Callable[[], None] | None = None,
    ) -> HttpResponse:
        response = self._exchange(request, on_chunk=on_chunk, on_restart=on_restart)
        self.progressed = True
        return response

    # -- finding a recorded session ------------------------------------------------------------------------

    def saved_session(self) -> SavedSession | None:
        """The recorded session to continue, or ``None``; one that cannot be continued is ended and forgotten."""
        journal = self.journal
        if journal is None:
            return None
        saved = journal.find()
        if saved is None:
            return None
        try:
            return self._usable(saved, journal)
        except BaseException:
            journal.keep()
            raise

    def _usable(self, saved: SavedSession, journal: Journal) -> SavedSession | None:
        plan = self.plan
        size = self.source.size
        why: str | None = None
        abort = True
        if saved.expired():
            why, abort = "its session expired at the provider", False
        elif (change := journal.change(saved)) is not None:
            why = f"the file changed since ({change})"
        elif plan.sequential and plan.read_progress is not None and plan.query_progress is None:
            why = "the provider cannot be asked how much of it arrived"
        else:
            fitted = choose_part_size(size, plan, saved.part_size, provider=self.provider, path=self.source.display)
            if fitted != saved.part_size or len(split(size, saved.part_size)) != saved.parts:
                why = "its parts do not fit the provider's plan any more"
        if why is None:
            return saved
        log.info("not continuing the unfinished upload of %s: %s; starting a new one", self.source.display, why)
        if abort and plan.abort is not None:
            try:
                self._exchange(plan.abort(saved.state))
            except LLMFilesError as exc:
                log.info("the old upload session could not be aborted (%s); the provider ends it when it expires", exc)
        journal.discard()
        return None

    # -- the two ways to run ----------------------------------------------------------------------------------

    def fresh(self, requested_part_size: int) -> FileObject:
        plan, source = self.plan, self.source
        size = source.size
        part_size = choose_part_size(size, plan, requested_part_size, provider=self.provider, path=source.display)
        ranges = split(size, part_size)
        if len(ranges) > plan.max_parts:
            raise FileTooLarge(source.display, size, plan.max_parts * part_size, self.provider)
        if plan.start is not None:
            state = plan.read_start(self._exchange(plan.start))
            if self.journal is not None:
                self.journal.started(
                    state, part_size=part_size, parts=len(ranges), destination=plan.destination, ttl=plan.session_ttl
                )
        else:
            state, self.journal = {}, None  # no session: nothing to resume
        return self._run(state, part_size, ranges, {}, 0, None)

    def resume(self, saved: SavedSession) -> FileObject:
        plan, source = self.plan, self.source
        size = source.size
        self.resuming = True
        state, part_size = saved.state, saved.part_size
        ranges = split(size, part_size)
        recorded = {
            i: p.receipt for i, p in saved.done.items() if 0 <= i < len(ranges) and ranges[i] == (p.offset, p.length)
        }
        start_offset = 0
        final: HttpResponse | None = None
        try:
            if plan.sequential and plan.read_progress is not None and plan.query_progress is not None:
                response = self.exchange(plan.query_progress(state))
                start_offset = plan.read_progress(state, response)
                if not 0 <= start_offset <= size:
                    raise UploadFailed(
                        f"the provider reports {start_offset:,} bytes received of {size:,}; cannot continue"
                    )
                if start_offset >= size:
                    final = response
                done: dict[int, Receipt] = {}
            elif plan.list_parts is not None and plan.read_list_parts is not None:
                listed = self._listed_parts(state)
                done = {i: r for i, r in recorded.items() if i in listed and _same_receipt(listed[i], r)}
            else:
                done = recorded
        except BaseException as exc:
            self._stopped(state, exc)
            raise
        if self.journal is not None:
            self.journal.forget_parts(sorted(set(saved.done) - set(done)))
        log.info(
            "continuing the unfinished upload of %s (started %s): %s",
            source.display,
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(saved.created_at)),
            f"the provider has {start_offset:,} of {size:,} bytes"
            if plan.sequential and plan.read_progress is not None
            else f"{len(done)} of {len(ranges)} parts are done",
        )
        return self._run(state, part_size, ranges, done, start_offset, final)

    def _listed_parts(self, state: UploadState) -> dict[int, Receipt]:
        plan = self.plan
        assert plan.list_parts is not None and plan.read_list_parts is not None
        listed: dict[int, Receipt] = {}
        cursor: str | None = None
        for _ in range(plan.max_parts + 1):
            page, cursor = plan.read_list_parts(state, self.exchange(plan.list_parts(state, cursor)))
            listed.update(page)
            if cursor is None:
                return listed
        raise ProviderError("the listing of the upload's parts does not end", provider=self.provider)

    # -- sending ----------------------------------------------------------------------------------------------

    def _run(
        self,
        state: UploadState,
        part_size: int,
        ranges: list[tuple[int, int]],
        done: Mapping[int, Receipt],
        start_offset: int,
        final_response: HttpResponse | None,
    ) -> FileObject:
        plan, source, journal = self.plan, self.source, self.journal
        missing = tuple(d for d in plan.digests if d not in self.known) if self.whole_digests else ()
        # whole-file digests: from the bytes as they stream when a sequential plan sends the file from its start,
        # else from one read beside the upload
        in_stream = bool(missing) and plan.sequential and not done and start_offset == 0 and final_response is None
        stream_whole = _hashers(missing) if in_stream else {}
        side = _SideHash(source, missing) if (missing and not in_stream) else None
        stop = threading.Event()
        last_response: list[HttpResponse] = []
        sequential_progress = plan.sequential and plan.read_progress is not None
        try:
            if done:
                self.counter.add(sum(ranges[i][1] for i in done))
            elif start_offset:
                self.counter.add(start_offset)

            def send_part(index: int, offset: int, length: int) -> Receipt:
                part = Part(
                    index=index,
                    offset=offset,
                    length=length,
                    body=SourceRange(source=source, offset=offset, length=length),
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
                    self.counter.add(len(chunk))

                def on_restart() -> None:
                    nonlocal hs
                    hs = _hashers(plan.part_digests)
                    for n, h in whole_snapshot.items():
                        stream_whole[n] = h.copy()
                    self.counter.add(-sent[0])
                    sent[0] = 0

                response = self.exchange(plan.part(state, part), on_chunk=on_chunk, on_restart=on_restart)
                if plan.complete is None and index == len(ranges) - 1:
                    last_response.append(response)
                part_digests = {n: h.hexdigest() for n, h in hs.items()}
                receipt = plan.read_part(state, part, response, part_digests)
                if journal is not None:
                    journal.part_done(index, offset, length, receipt, part_digests)
                return receipt

            receipts: list[Receipt] = [done.get(i, {}) for i in range(len(ranges))]
            todo = [(i, off, length) for i, (off, length) in enumerate(ranges) if i not in done]
            final_part: HttpResponse | None = final_response
            if sequential_progress:
                if final_part is None:
                    receipts, final_part = _send_resumable(
                        plan, state, source, self.exchange, part_size, self.counter, stream_whole, start_offset, journal
                    )
                else:
                    receipts = []
            elif plan.sequential or self.max_concurrency <= 1 or len(todo) <= 1:
                for i, off, length in todo:
                    receipts[i] = send_part(i, off, length)
            else:
                receipts_by_index = _in_parallel(send_part, todo, self.max_concurrency, stop)
                for i, receipt in receipts_by_index.items():
                    receipts[i] = receipt
            digests = dict(self.known)
            digests.update({n: h.hexdigest() for n, h in stream_whole.items()})
            if side is not None:
                digests.update(side.result())
            if plan.complete is not None:
                final = self.exchange(plan.complete(state, receipts, digests))
            elif final_part is not None:
                final = final_part
            elif last_response:
                final = last_response[-1]
            else:
                # a resumed plan without a complete request whose last part was already sent: the recorded answer
                # is gone, so the last part goes again (parts may be resent freely)
                i, off, length = len(ranges) - 1, *ranges[-1]
                receipts[i] = send_part(i, off, length)
                final = last_response[-1]
            file_object = plan.read_complete(state, final)
            if plan.reported_digests is not None and "x-llmfiles-found-by-probe" not in final.headers:
                _compare_digests(plan.reported_digests(state, final), digests, file_object, source)
        except BaseException as exc:
            stop.set()
            if side is not None:
                side.cancel()
            self._stopped(state, exc)
            raise
        if journal is not None:
            journal.discard()
        return file_object

    def _stopped(self, state: UploadState, exc: BaseException) -> None:
        """The run failed: keep the session for a later run, or end it for good."""
        journal = self.journal
        if self.resuming and not self.progressed and isinstance(exc, ProviderError) and exc.status in _SESSION_GONE:
            return  # run_plan starts a new session (and forgets this one)
        if journal is not None and journal.active and can_resume_after(exc):
            journal.keep()
            exc.add_note(
                "llmfiles: the upload session was kept: run the same upload again to continue where it stopped "
                "(`llmfiles uploads` lists unfinished uploads, `llmfiles abort ID` ends one)"
            )
            return
        _abort(self.plan, state, self._exchange, exc)
        if journal is not None:
            journal.discard()


def _same_receipt(listed: Receipt, recorded: Receipt) -> bool:
    """Whether the provider's listing of a part agrees with the receipt recorded when it was sent."""
    common = set(listed) & set(recorded)
    return bool(common) and all(listed[k] == recorded[k] for k in common)


def _in_parallel(
    send_part: Callable[[int, int, int], Receipt],
    todo: list[tuple[int, int, int]],
    max_concurrency: int,
    stop: threading.Event,
) -> dict[int, Receipt]:
    pool = ThreadPoolExecutor(max_workers=min(max_concurrency, len(todo)), thread_name_prefix="llmfiles-part")
    pending: dict[Any, int] = {}
    try:
        # each part runs in a copy of the caller's context, so progress callbacks see its contextvars
        pending = {pool.submit(contextvars.copy_context().run, send_part, i, off, length): i for i, off, length in todo}
        done, _ = wait(pending, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:
            stop.set()
            exc = failed[0].exception()
            assert exc is not None
            raise exc
        return {i: f.result() for f, i in pending.items()}
    finally:
        if not stop.is_set() and any(not f.done() for f in pending):
            stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


class _SideHash:
    """Whole-file digests from one sequential read of the file, beside the upload (in a thread)."""

    def __init__(self, source: Source, names: tuple[str, ...]) -> None:
        self.source = source
        self.names = names
        self.digests: dict[str, str] = {}
        self.error: list[BaseException] = []
        self.cancelled = threading.Event()
        self.thread = threading.Thread(target=self._run, name="llmfiles-digest", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            hs = _hashers(self.names)
            for chunk in self.source.read_range(0, self.source.size, 1024 * 1024):
                if self.cancelled.is_set():
                    return
                for h in hs.values():
                    h.update(chunk)
            self.digests.update({n: h.hexdigest() for n, h in hs.items()})
        except BaseException as exc:  # reported after the parts
            self.error.append(exc)

    def cancel(self) -> None:
        self.cancelled.set()

    def result(self) -> dict[str, str]:
        self.thread.join()
        if self.error:
            raise UploadFailed(f"could not read {self.source.display} to compute its checksum: {self.error[0]}")
        return self.digests


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
    start: int = 0,
    journal: Journal | None = None,
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
    offset = start
    index = start // part_size
    stalled = 0
    failures: list[BaseException] = []  # why the attempts in a row that moved nothing were interrupted
    while True:
        response, receipt, committed, interrupted_by = _send_from(
            plan, state, source, exchange, index, offset, part_size, counter, stream_whole
        )
        index += 1
        if receipt is not None:
            receipts.append(receipt)
        if journal is not None and committed < size:
            # what the provider has persisted, as one range (the engine asks the provider again when it resumes)
            journal.part_done(0, 0, committed, {"committed": committed}, {})
        if committed >= size:
            return receipts, response
        stalled = stalled + 1 if committed <= offset else 0
        if committed > offset:
            failures.clear()
        elif interrupted_by is not None:
            failures.append(interrupted_by)
        if stalled >= MAX_RESUMES_WITHOUT_PROGRESS:
            if len(failures) == stalled:
                # the connection, not the provider: an error a later run can continue after
                raise RetriesExhausted(
                    f"{failures[-1]} (sending {source.display} failed {stalled} times in a row without the provider "
                    f"keeping more of it; it has {committed:,} of {size:,} bytes)",
                    last=failures[-1],
                    attempts=stalled,
                )
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
) -> tuple[HttpResponse, Receipt | None, int, BaseException | None]:
    """Send one part of a resumable plan from ``offset``; return the response, its receipt (``None`` when the
    part was interrupted and the provider was asked instead), the provider's offset afterwards and what interrupted
    the part (``None`` when it was not)."""
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
    interrupted_by: BaseException | None = None
    try:
        response = exchange(plan.part(state, part), on_chunk=on_chunk, on_restart=on_restart)
    except _Interrupted as exc:
        context = exc.__context__
        interrupted_by = getattr(context, "error", context)  # the transport's wrapper of a retryable error
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
    return response, receipt, committed, interrupted_by


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


_READERS = ("read_start", "read_part", "read_complete", "read_progress", "reported_digests", "read_list_parts")
_BUILDERS = ("part", "complete", "abort", "query_progress", "list_parts")


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
    if plan.abort is None or plan.start is None:
        return
    try:
        exchange(plan.abort(state))
    except ProviderError as abort_exc:
        if abort_exc.status in SESSION_ENDED:
            note = "llmfiles: the unfinished upload session was aborted at the provider (it had already ended)"
        else:
            note = f"llmfiles: the upload session could not be aborted ({abort_exc}); it may need cleaning up"
    except Exception as abort_exc:
        note = f"llmfiles: the upload session could not be aborted ({abort_exc}); it may need cleaning up"
    else:
        note = "llmfiles: the unfinished upload session was aborted at the provider"
    log.info(note)
    exc.add_note(note)


#: answers to an abort that mean the session is over anyway (Cloud Storage answers a cancelled session with 499)
SESSION_ENDED = frozenset({404, 410, 499})
