"""The engine's path for resumable, strictly sequential plans (``read_progress``, ``query_progress``), the
comparison of provider-reported digests (``reported_digests``) and plans that upload their own ``source``.

A scripted in-memory "session" stands in for the provider (Cloud Storage resumable uploads, tus): it keeps what
it is told to keep, answers 308 with how much it has, and 200 once it has everything.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from llmfiles import parts
from llmfiles.errors import UploadFailed
from llmfiles.models import FileObject, HttpRequest, HttpResponse, Part, PathSource, Source, SourceRange, UploadPlan

SIZE = 1_000_003
PART = 100_000


class Session:
    """The provider side: ``keep(part_index, sent)`` says how many bytes of a part it keeps; ``cut(part_index)``
    how many it receives before the connection breaks (``None``: it does not break)."""

    def __init__(self) -> None:
        self.stored = bytearray()
        self.keep: Callable[[int, int], int] = lambda index, sent: sent
        self.cut: Callable[[int], int | None] = lambda index: None
        self.log: list[str] = []
        self.corrupt = False

    def exchange(
        self,
        request: HttpRequest,
        *,
        on_chunk: Callable[[bytes], None] | None = None,
        on_restart: Callable[[], None] | None = None,
    ) -> HttpResponse:
        if request.url == "start":
            self.log.append("start")
            return HttpResponse(status=200, headers={"location": "session"})
        if request.url == "query":
            self.log.append(f"query {len(self.stored)}")
            return self._answer()
        index = int(request.headers["x-index"])
        offset = int(request.headers["x-offset"])
        assert offset == len(self.stored), f"part {index} starts at {offset}, the session has {len(self.stored)}"
        while True:
            data = self._read(request, on_chunk)
            cut = self.cut(index)
            if cut is None:
                break
            self.stored += data[:cut]
            self.log.append(f"part {index} cut after {cut}")
            assert on_restart is not None
            on_restart()  # what the transport does before it would resend the body
            self.log.append(f"part {index} sent again")
            self.cut = lambda i, _old=self.cut, _idx=index: None if i == _idx else _old(i)
        kept = self.keep(index, len(data))
        self.stored += data[:kept]
        self.log.append(f"part {index} kept {kept} of {len(data)}")
        return self._answer()

    @staticmethod
    def _read(request: HttpRequest, on_chunk: Callable[[bytes], None] | None) -> bytes:
        out = bytearray()
        assert isinstance(request.body, tuple)
        for seg in request.body:
            assert isinstance(seg, SourceRange)
            for chunk in seg.source.read_range(seg.offset, seg.length, 65536):
                if on_chunk is not None:
                    on_chunk(chunk)
                out += chunk
        return bytes(out)

    def _answer(self) -> HttpResponse:
        if len(self.stored) >= self.total:
            return HttpResponse(status=200, headers={"x-stored": str(len(self.stored))})
        return HttpResponse(status=308, headers={"x-stored": str(len(self.stored))})

    total = SIZE


def make_plan(session: Session, *, query: bool = True, **kw: Any) -> UploadPlan:
    def part(state: Mapping[str, Any], p: Part) -> HttpRequest:
        return HttpRequest(
            method="PUT",
            url=state["session"],
            headers={"x-index": str(p.index), "x-offset": str(p.offset)},
            body=(p.body,),
        )

    def read_complete(state: Mapping[str, Any], resp: HttpResponse) -> FileObject:
        assert resp.status == 200
        return FileObject(
            id="f",
            provider="t",
            filename="f",
            purpose="fine-tune",
            bytes=len(session.stored),
            created_at=1,
            status="processed",
        )

    def reported(state: Mapping[str, Any], resp: HttpResponse) -> Mapping[str, str]:
        data = bytes(session.stored)
        if session.corrupt:
            data = b"x" + data[1:]
        return {"md5": hashlib.md5(data).hexdigest()}

    def read_progress(state: Mapping[str, Any], resp: HttpResponse) -> int:
        return int(resp.headers["x-stored"])

    defaults: dict[str, Any] = dict(
        destination="test",
        start=HttpRequest(method="POST", url="start"),
        read_start=lambda resp: {"session": resp.headers["location"]},
        part=part,
        read_part=lambda state, p, resp, digests: {"status": resp.status},
        complete=None,
        read_complete=read_complete,
        query_progress=(lambda state: HttpRequest(method="PUT", url="query")) if query else None,
        read_progress=read_progress,
        reported_digests=reported,
        sequential=True,
        digests=("md5",),
    )
    defaults.update(kw)
    return UploadPlan(**defaults)


@pytest.fixture
def blob(tmp_path: Path) -> Path:
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(SIZE))
    return path


def run(
    session: Session, plan: UploadPlan, source: Source, known: Mapping[str, str] | None = None
) -> tuple[FileObject, list[int]]:
    events: list[int] = []
    fo = parts.run_plan(
        plan,
        source,
        exchange=session.exchange,  # type: ignore[arg-type]
        part_size=PART,
        max_concurrency=4,
        provider="t",
        known_digests=known,
        report=lambda done, total: events.append(done),
    )
    return fo, events


def source_of(path: Path) -> PathSource:
    return PathSource(str(path), path.name, path.stat().st_size)


def test_parts_continue_from_what_the_provider_kept(blob: Path) -> None:
    session = Session()
    session.keep = lambda index, sent: sent - 12_345 if index % 3 == 1 else sent
    fo, events = run(session, make_plan(session), source_of(blob))
    assert bytes(session.stored) == blob.read_bytes() and fo.bytes == SIZE
    assert "query" not in " ".join(session.log)
    assert events[-1] == SIZE


def test_a_broken_part_is_continued_after_asking_not_resent(blob: Path) -> None:
    session = Session()
    session.cut = lambda index: 40_000 if index in (2, 5) else None
    _, events = run(session, make_plan(session), source_of(blob))
    assert bytes(session.stored) == blob.read_bytes()
    assert "part 2 cut after 40000" in session.log and "query 240000" in session.log
    assert "part 2 sent again" not in session.log
    assert events[-1] == SIZE


def test_without_query_progress_a_broken_part_is_sent_again_from_its_start(blob: Path) -> None:
    session = Session()
    session.cut = lambda index: 0 if index == 3 else None  # nothing kept of the broken attempt
    run(session, make_plan(session, query=False), source_of(blob))
    assert "part 3 sent again" in session.log and not any(e.startswith("query") for e in session.log)
    assert bytes(session.stored) == blob.read_bytes()


@pytest.mark.parametrize("known", [False, True])
def test_the_reported_digest_is_compared_with_the_bytes_sent(blob: Path, known: bool) -> None:
    digests = {"md5": hashlib.md5(blob.read_bytes()).hexdigest()} if known else None
    session = Session()
    session.keep = lambda index, sent: sent // 2 if index == 1 else sent
    session.cut = lambda index: 77 if index == 4 else None
    run(session, make_plan(session), source_of(blob), digests)  # in-stream digests rewound to what was kept

    session = Session()
    session.corrupt = True
    with pytest.raises(UploadFailed, match="md5"):
        run(session, make_plan(session), source_of(blob), digests)


def test_a_provider_that_keeps_nothing_more_is_given_up(blob: Path) -> None:
    session = Session()
    session.keep = lambda index, sent: 0 if index >= 2 else sent
    with pytest.raises(UploadFailed, match="kept no more"):
        run(session, make_plan(session), source_of(blob))
    assert sum(1 for e in session.log if e.endswith(f"kept 0 of {PART}")) == parts.MAX_RESUMES_WITHOUT_PROGRESS


class Doubled(Source):
    """A derived stream (as a format conversion would be): every byte of the file twice."""

    def __init__(self, inner: PathSource) -> None:
        self.inner = inner
        self.name = inner.name
        self.size = inner.size * 2
        self.display = "doubled"

    def read_range(self, offset: int, length: int, blocksize: int) -> Iterator[bytes]:
        data = bytes(b for block in self.inner.read_range(0, self.inner.size, 1 << 20) for b in block for _ in (0, 1))
        for i in range(offset, offset + length, blocksize):
            yield data[i : min(i + blocksize, offset + length)]


def test_a_plan_with_its_own_source_uploads_that(tmp_path: Path) -> None:
    path = tmp_path / "small.bin"
    path.write_bytes(os.urandom(30_000))
    doubled = Doubled(source_of(path))
    session = Session()
    session.total = doubled.size
    wrong = {"md5": "0" * 32}  # digests of the caller's file do not describe what the plan sends
    fo, events = run(session, make_plan(session, source=doubled), source_of(path), wrong)
    assert bytes(session.stored) == b"".join(doubled.read_range(0, doubled.size, 4096)) and fo.bytes == 60_000
    assert events[-1] == 60_000


def test_plans_without_read_progress_are_unchanged(blob: Path) -> None:
    session = Session()
    plan = make_plan(session, read_progress=None, query_progress=None, reported_digests=None)
    run(session, plan, source_of(blob))
    assert bytes(session.stored) == blob.read_bytes()
    assert session.log[1:] == [
        f"part {i} kept {min(PART, SIZE - i * PART)} of {min(PART, SIZE - i * PART)}" for i in range(11)
    ]
