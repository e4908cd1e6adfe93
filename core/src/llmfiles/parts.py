"""The large-file engine: split a file into byte ranges and run a provider's :class:`UploadPlan`.

The engine owns threads, part retries (through the transport), checksums, progress and clean completion or
abort; the plan only turns responses into the next requests.  Memory is bounded by ``max_concurrency`` times
the transport's read block, never by the part size: each part streams from its offset on disk.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any, Protocol

from llmfiles.errors import FileTooLarge, InvalidSetting, LLMFilesError, UploadFailed
from llmfiles.models import FileObject, HttpRequest, HttpResponse, Part, Receipt, Source, SourceRange, UploadPlan

log = logging.getLogger("llmfiles.parts")


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
            done = self.done
        if self.report is not None:
            self.report(done, self.total)


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
    them from one sequential read that runs beside the upload.
    """
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
        if plan.sequential or max_concurrency <= 1 or len(ranges) == 1:
            for i, (off, length) in enumerate(ranges):
                receipts[i] = send_part(i, off, length)
        else:
            pool = ThreadPoolExecutor(max_workers=min(max_concurrency, len(ranges)), thread_name_prefix="llmfiles-part")
            pending: dict[Any, int] = {}
            try:
                pending = {pool.submit(send_part, i, off, length): i for i, (off, length) in enumerate(ranges)}
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
            final = last_response[-1]
        return plan.read_complete(state, final)
    except BaseException as exc:
        _abort(plan, state, exchange, exc)
        raise


def _abort(plan: UploadPlan, state: Mapping[str, Any], exchange: Exchange, exc: BaseException) -> None:
    if plan.abort is None:
        return
    try:
        exchange(plan.abort(state))
    except LLMFilesError as abort_exc:
        note = f"llmfiles: the upload session could not be aborted ({abort_exc}); it may need cleaning up"
    else:
        note = "llmfiles: the unfinished upload session was aborted at the provider"
    log.info(note)
    exc.add_note(note)
