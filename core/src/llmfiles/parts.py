"""The large-file engine: runs a provider's :class:`~llmfiles.provider.UploadProtocol` over the upload pipeline.

The engine owns threads, the part size, retries of a resumable session, progress, the resume journal and the
commit; the protocol only builds requests and reads answers.  Two shapes:

* :class:`~llmfiles.provider.PartsUpload`: parts in parallel (each streams its own range while a lead thread reads
  the file in order for the checks and whole-file digests), then ``complete`` once the pipeline's gate passed;
* :class:`~llmfiles.provider.ResumableUpload`: one session filled in order, from the offset the provider reports
  after each chunk; the final chunk goes only once the gate passed.

Memory is bounded by the concurrency times the read block, never by the part size.  An interrupted upload (Ctrl-C,
the network, a provider that stays down) keeps its session for the next run of the same upload; one that failed
for good (its checks, a changed file, a refusal) is aborted, and nothing is committed.
"""

from __future__ import annotations

import contextvars
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from attrs import frozen

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
from llmfiles.models import FileObject, Part, Receipt, UploadState
from llmfiles.provider import Exchange, PartLimits, PartsUpload, ResumableUpload, UploadProtocol

if TYPE_CHECKING:
    from llmfiles.pipeline import Pipeline
    from llmfiles.state import SavedSession
    from llmfiles.transport import BodySource

log = logging.getLogger("llmfiles.parts")
T = TypeVar("T")

#: a resumable session gives up after this many chunks in a row that moved the provider's offset no further
MAX_RESUMES_WITHOUT_PROGRESS = 5
#: answers that say the provider no longer has a session a resumed upload asked about
SESSION_GONE = frozenset({400, 404, 409, 410})
#: how many follow-up exchanges one step of a protocol may chain (see :meth:`_Run.send`)
MAX_FOLLOW_UPS = 8
#: answers to an abort that mean the session is over anyway (Cloud Storage answers a cancelled session with 499)
SESSION_ENDED = frozenset({404, 410, 499})


class Runner(Protocol):
    """Sends one exchange for the call and returns what its reader made of the answer (raising the provider's
    error for an error status).  ``retries=False`` sends it once."""

    def __call__(self, exchange: Exchange[T], *, body: BodySource | None = None, retries: bool = True) -> T: ...


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


# --- part sizes ------------------------------------------------------------------------------------------------


def choose_part_size(size: int, limits: PartLimits, requested: int, *, provider: str, path: str) -> int:
    """The part size to use: the requested one, within the limits, grown until the parts fit ``max_parts``."""
    if requested <= 0:
        raise InvalidSetting(f"part_size must be greater than 0 (got {requested})")
    part = max(requested, limits.minimum)
    if limits.maximum is not None:
        part = min(part, limits.maximum)
    if math.ceil(size / part) > limits.max_parts:
        part = math.ceil(size / limits.max_parts)
    if limits.alignment > 1:
        part = math.ceil(part / limits.alignment) * limits.alignment
        if limits.maximum is not None and part > limits.maximum:
            # rounding up crossed the cap: take the largest aligned size within it (checked against max_parts below)
            part = limits.maximum // limits.alignment * limits.alignment or part
    if limits.maximum is not None and (part > limits.maximum or math.ceil(size / part) > limits.max_parts):
        raise FileTooLarge(
            path,
            size,
            limits.maximum * limits.max_parts,
            provider,
            detail=f"(at most {limits.max_parts:,} parts of {limits.maximum:,} bytes)",
        )
    return part


def split(size: int, part_size: int) -> list[tuple[int, int]]:
    """``(offset, length)`` of each part; only the last may be shorter."""
    return [(off, min(part_size, size - off)) for off in range(0, size, part_size)] or [(0, 0)]


def can_resume_after(exc: BaseException) -> bool:
    """Whether an upload that stopped with ``exc`` keeps its session for a later run (the session itself is fine):
    interruptions, the network, the deadline, a provider that stayed overloaded or down."""
    if not isinstance(exc, Exception):
        return True  # KeyboardInterrupt, SystemExit
    if isinstance(exc, (NetworkError, DeadlineExceeded)):
        return True
    return isinstance(exc, ProviderError) and exc.status is not None and (exc.status in (408, 429) or exc.status >= 500)


# --- one run ---------------------------------------------------------------------------------------------------


@frozen(kw_only=True)
class Job:
    """One large upload: the protocol, the pipeline reading the file, how to send, and the knobs."""

    protocol: UploadProtocol
    pipeline: Pipeline
    run: Runner
    provider: str
    part_size: int
    max_concurrency: int
    journal: Journal | None = None
    clock_sleep: Callable[[float], None] = time.sleep
    max_retry_wait: float = 60.0


def upload_parts(job: Job) -> FileObject:
    """Upload the pipeline's file with ``job.protocol``; return the provider's file object.

    An unfinished session of the same upload recorded by an earlier run is continued (only what the provider does
    not have is sent); a session the provider no longer has is replaced by a new one.
    """
    journal = job.journal if job.protocol.resumable else None
    run = _Run(job, journal)
    saved = run.saved_session()
    if saved is not None:
        try:
            return run.resume(saved)
        except ProviderError as exc:
            if run.progressed or exc.status not in SESSION_GONE:
                raise
            log.info("the provider no longer has the unfinished session of %s (%s); starting anew", run.display, exc)
            if journal is not None:
                journal.discard()
            # the part size the pipeline's lead kept each part's CRC-32 by
            return run.fresh(saved.part_size)
    return run.fresh()


class _Run:
    """One run of a protocol: a new session (:meth:`fresh`) or the continuation of a recorded one (:meth:`resume`)."""

    def __init__(self, job: Job, journal: Journal | None) -> None:
        self.job = job
        self.protocol = job.protocol
        self.pipeline = job.pipeline
        self.source = job.pipeline.source
        self.display = self.source.display
        self.journal = journal
        self.resuming = False
        #: a request of a resumed session succeeded (the provider knows the session)
        self.progressed = False

    def send(self, exchange: Exchange[T], *, body: BodySource | None = None, retries: bool = True) -> T:
        value: Any = self.job.run(exchange, body=body, retries=retries)
        # a step of the protocol that takes more than one request (create a dataset, then ask where its bytes go):
        # a reader may answer with the next exchange, which is sent in turn (without the file's bytes)
        for _ in range(MAX_FOLLOW_UPS):
            if not isinstance(value, Exchange):
                break
            value = self.job.run(value, retries=retries)
        else:
            raise PluginError(f"provider {self.job.provider!r} chained more than {MAX_FOLLOW_UPS} follow-up requests")
        self.progressed = True
        return value  # type: ignore[no-any-return]

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
            why, abort = self._unusable(saved, journal)
        except BaseException:
            journal.keep()
            raise
        if why is None:
            return saved
        log.info("not continuing the unfinished upload of %s: %s; starting a new one", self.display, why)
        end = self.protocol.abort(saved.state) if abort else None
        if end is not None:
            try:
                self.job.run(end)
            except LLMFilesError as exc:
                log.info("the old upload session could not be aborted (%s); the provider ends it when it expires", exc)
        journal.discard()
        return None

    def _unusable(self, saved: SavedSession, journal: Journal) -> tuple[str | None, bool]:
        size = self.source.size
        if saved.expired():
            return "its session expired at the provider", False
        change = journal.change(saved)
        if change is not None:
            return f"the file changed since ({change})", True
        fitted = choose_part_size(
            size, self.protocol.limits, saved.part_size, provider=self.job.provider, path=self.display
        )
        if fitted != saved.part_size or len(split(size, saved.part_size)) != saved.parts:
            return "its parts do not fit the provider's limits any more", True
        return None, True

    # -- the two ways to run ----------------------------------------------------------------------------------

    def fresh(self, requested: int | None = None) -> FileObject:
        job, protocol = self.job, self.protocol
        size = self.source.size
        requested = requested or job.part_size
        part_size = choose_part_size(size, protocol.limits, requested, provider=job.provider, path=self.display)
        ranges = split(size, part_size)
        self._prepare(part_size)
        try:
            state = self.send(protocol.start())
        except BaseException:
            self.pipeline.stop()
            raise
        if self.journal is not None:
            self.journal.started(
                state,
                part_size=part_size,
                parts=len(ranges),
                destination=protocol.destination,
                ttl=protocol.session_ttl,
            )
        return self._go(state, part_size, {}, 0)

    def resume(self, saved: SavedSession) -> FileObject:
        protocol = self.protocol
        self.resuming = True
        state, part_size = saved.state, saved.part_size
        ranges = split(self.source.size, part_size)
        recorded = {
            i: p.receipt for i, p in saved.done.items() if 0 <= i < len(ranges) and ranges[i] == (p.offset, p.length)
        }
        self._prepare(part_size)
        offset = 0
        try:
            if isinstance(protocol, ResumableUpload):
                answer = self.send(protocol.query(state))
                if isinstance(answer, FileObject):
                    return self._finished_before(state, answer)
                offset = self._offset(answer)
                done: dict[int, Receipt] = {}
            else:
                assert isinstance(protocol, PartsUpload)
                done = self._still_there(protocol, state, recorded)
        except BaseException as exc:
            self._stopped(state, exc)
            raise
        if self.journal is not None:
            self.journal.forget_parts(sorted(set(saved.done) - set(done)))
        resumed = offset or sum(ranges[i][1] for i in done)
        log.info(
            "continuing the unfinished upload of %s (started %s): %s of %s bytes were already sent",
            self.display,
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(saved.created_at)),
            f"{resumed:,}",
            f"{self.source.size:,}",
        )
        return self._go(state, part_size, done, offset)

    def _prepare(self, part_size: int) -> None:
        if isinstance(self.protocol, PartsUpload):
            self.pipeline.inspection.part_size = part_size

    def _finished_before(self, state: UploadState, answer: FileObject) -> FileObject:
        """The provider has the whole file already (the last run's final answer was lost): it passes the gate all the
        same before it is taken."""
        try:
            self.pipeline.gate()
        except BaseException as exc:
            self._stopped(state, exc)
            raise
        if self.journal is not None:
            self.journal.discard()
        return answer

    def _still_there(
        self, protocol: PartsUpload, state: UploadState, recorded: dict[int, Receipt]
    ) -> dict[int, Receipt]:
        """The recorded parts the provider still holds (all of them when it cannot be asked)."""
        first = protocol.list_parts(state, None)
        if first is None:
            return recorded
        listed: dict[int, Receipt] = {}
        cursor: str | None = None
        exchange: Exchange[Any] | None = first
        for _ in range(protocol.limits.max_parts + 1):
            assert exchange is not None
            page, cursor = self.send(exchange)
            listed.update(page)
            if cursor is None:
                return {i: r for i, r in recorded.items() if i in listed and _same_receipt(listed[i], r)}
            exchange = protocol.list_parts(state, cursor)
        raise ProviderError("the listing of the upload's parts does not end", provider=self.job.provider)

    def _go(self, state: UploadState, part_size: int, done: Mapping[int, Receipt], offset: int) -> FileObject:
        protocol = self.protocol
        try:
            if isinstance(protocol, ResumableUpload):
                file_object = self._fill(protocol, state, part_size, offset)
            elif isinstance(protocol, PartsUpload):
                file_object = self._parts(protocol, state, part_size, done)
            else:
                raise PluginError(
                    f"provider {self.job.provider!r} returned a {type(protocol).__name__}, which is neither a "
                    "PartsUpload nor a ResumableUpload"
                )
        except BaseException as exc:
            if self._session_gone(exc):
                self.pipeline.halt()  # a new session follows: what the lead read and checked is kept for it
            else:
                self.pipeline.stop()
            self._stopped(state, exc)
            raise
        if self.journal is not None:
            self.journal.discard()
        return file_object

    # -- parts in parallel ------------------------------------------------------------------------------------

    def _parts(
        self, protocol: PartsUpload, state: UploadState, part_size: int, done: Mapping[int, Receipt]
    ) -> FileObject:
        pipeline, journal = self.pipeline, self.journal
        ranges = split(self.source.size, part_size)
        pipeline.counter.skip(sum(ranges[i][1] for i in done), parts=(len(done), len(ranges)))
        pipeline.start_lead()
        todo = [Part(index=i, offset=off, length=n) for i, (off, n) in enumerate(ranges) if i not in done]

        def send_part(part: Part) -> Receipt:
            body = _PartBody(pipeline, part, protocol.part_digests)
            receipt = self.send(protocol.part(state, part), body=body)
            if journal is not None:
                journal.part_done(part.index, part.offset, part.length, receipt, dict(part.sent))
            return receipt

        receipts: list[Receipt] = [done.get(i, {}) for i in range(len(ranges))]
        if not protocol.parallel or self.job.max_concurrency <= 1 or len(todo) <= 1:
            for part in todo:
                receipts[part.index] = send_part(part)
        else:
            for index, receipt in _in_parallel(send_part, todo, self.job.max_concurrency).items():
                receipts[index] = receipt
        inspected = pipeline.gate(sent_parts=[p.index for p in todo])
        digests = {n: inspected.digests[n] for n in protocol.digests if n in inspected.digests}
        return self.send(protocol.complete(state, receipts, digests))

    # -- one session, in order -------------------------------------------------------------------------------

    def _fill(self, protocol: ResumableUpload, state: UploadState, part_size: int, offset: int) -> FileObject:
        from urllib3.util.retry import Retry

        pipeline, journal = self.pipeline, self.journal
        size = self.source.size
        pipeline.inspect_until(offset)
        pipeline.counter.skip(offset)
        stalled = 0
        failures: list[LLMFilesError] = []
        backoff = Retry(total=None, backoff_factor=0.5, backoff_max=self.job.max_retry_wait)
        index = offset // part_size
        while True:
            length = min(part_size, size - offset)
            part = Part(index=index, offset=offset, length=length)
            final = offset + length >= size
            try:
                answer = self.send(protocol.chunk(state, part, final), body=pipeline, retries=False)
            except (NetworkError, ProviderError) as exc:
                if not can_resume_after(exc):
                    raise
                # not sent again from its start: the provider is asked how much of it arrived, after a pause
                failures.append(exc)
                backoff = backoff.increment(error=exc)
                self.job.clock_sleep(min(backoff.get_backoff_time(), self.job.max_retry_wait))
                log.info("a chunk of %s was interrupted (%s); asking the provider how far it got", self.display, exc)
                answer = self.send(protocol.query(state))
            if isinstance(answer, FileObject):
                if not final and offset + length < size:
                    pipeline.gate()  # a provider that calls the file complete early gets it checked all the same
                return answer
            committed = self._offset(answer)
            if journal is not None:
                journal.part_done(0, 0, committed, {"committed": committed}, {})
            stalled = stalled + 1 if committed <= offset else 0
            if committed > offset:
                failures.clear()
                backoff = Retry(total=None, backoff_factor=0.5, backoff_max=self.job.max_retry_wait)
            if stalled >= MAX_RESUMES_WITHOUT_PROGRESS:
                self._give_up(stalled, failures, committed)
            if committed != offset + length:
                pipeline.counter.restart((offset, length))
                pipeline.counter.skip(max(0, committed - offset))
            offset = committed
            index += 1

    def _offset(self, answer: int) -> int:
        size = self.source.size
        if not 0 <= answer <= size:
            raise UploadFailed(f"the provider reports {answer:,} bytes received of {size:,}; cannot continue")
        return answer

    def _give_up(self, stalled: int, failures: Sequence[LLMFilesError], committed: int) -> None:
        size = self.source.size
        if failures and len(failures) >= stalled:
            # the connection, not the provider: an error a later run can continue after
            raise RetriesExhausted(
                f"{failures[-1]} (sending {self.display} failed {stalled} times in a row without the provider keeping "
                f"more of it; it has {committed:,} of {size:,} bytes)",
                last=failures[-1],
                attempts=stalled,
            )
        raise UploadFailed(
            f"the provider kept no more of {self.display} after {stalled} attempts in a row "
            f"(it has {committed:,} of {size:,} bytes); giving up"
        )

    # -- stopping ----------------------------------------------------------------------------------------------

    def _session_gone(self, exc: BaseException) -> bool:
        """Whether the recorded session this run continues is unknown to the provider (``upload_parts`` then starts
        a new one)."""
        return self.resuming and not self.progressed and isinstance(exc, ProviderError) and exc.status in SESSION_GONE

    def _stopped(self, state: UploadState, exc: BaseException) -> None:
        """The run failed: keep the session for a later run, or end it for good."""
        journal = self.journal
        if self._session_gone(exc):
            return  # upload_parts starts a new session (and forgets this one)
        if journal is not None and journal.active and can_resume_after(exc):
            journal.keep()
            exc.add_note(
                "llmfiles: the upload session was kept: run the same upload again to continue where it stopped "
                "(`llmfiles uploads` lists unfinished uploads, `llmfiles abort ID` ends one)"
            )
            return
        _abort(self.protocol, state, self.job.run, exc)
        if journal is not None:
            journal.discard()


class _PartBody:
    """The body source of one part: its own range of the file, hashed for the part."""

    def __init__(self, pipeline: Pipeline, part: Part, names: Sequence[str]) -> None:
        self.pipeline = pipeline
        self.part = part
        self.names = names

    def stream(self, offset: int, length: int) -> Iterator[bytes | memoryview]:
        return self.pipeline.part_stream(offset, length, self.part.index, self.names, self.part.sent)


def _same_receipt(listed: Receipt, recorded: Receipt) -> bool:
    """Whether the provider's listing of a part agrees with the receipt recorded when it was sent."""
    common = set(listed) & set(recorded)
    return bool(common) and all(listed[k] == recorded[k] for k in common)


def _in_parallel(send_part: Callable[[Part], Receipt], todo: list[Part], max_concurrency: int) -> dict[int, Receipt]:
    from llmfiles.transport import cancellable

    pool = ThreadPoolExecutor(max_workers=min(max_concurrency, len(todo)), thread_name_prefix="llmfiles-part")
    pending: dict[Any, int] = {}
    with cancellable() as cancel:
        try:
            # each part runs in a copy of the caller's context, so progress callbacks see its contextvars (and the
            # parts' requests, the cancel)
            pending = {pool.submit(contextvars.copy_context().run, send_part, p): p.index for p in todo}
            finished, _ = wait(pending, return_when=FIRST_EXCEPTION)
            failed = [f for f in finished if f.exception() is not None]
            if failed:
                exc = failed[0].exception()
                assert exc is not None
                raise exc
            return {i: f.result() for f, i in pending.items()}
        except BaseException as exc:
            if not isinstance(exc, Exception):
                # Ctrl-C: the parts in flight are cut, not waited for (their answers may take minutes); a part that
                # failed leaves the others to finish, so that what they sent is recorded for the next run
                cancel.cancel()
            raise
        finally:
            for f in pending:
                f.cancel()
            pool.shutdown(wait=True, cancel_futures=True)


def _abort(protocol: UploadProtocol, state: UploadState, run: Runner, exc: BaseException) -> None:
    end = protocol.abort(state)
    if end is None:
        return
    try:
        run(end)
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
