"""Checks of a large file in a worker process: chosen at ``pipeline.WORKER_FROM``, the same report as in-process
checking, a fallback to in-process checking when the checker cannot go to the worker, and a worker that dies makes
the upload fail with nothing committed."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from recordcheckers import DiesInTheWorker, LostInTheWorker, Rules, Unpicklable

import llmfiles.local
from llmfiles import Client, hookimpl, pipeline
from llmfiles.errors import LLMFilesError, ValidationError
from llmfiles.local import LocalProvider
from llmfiles.models import Settings
from llmfiles.plugins import PluginManager
from llmfiles.sources import PathSource
from llmfiles.validate import worker as worker_mod
from llmfiles.validate.jsonl import BLOCK, JsonlChecker, Report
from llmfiles.validate.worker import WorkerChecker

KiB = 1024


def write(path: Path, records: int = 3000, *, broken_at: tuple[int, ...] = ()) -> Path:
    lines = []
    for i in range(1, records + 1):
        if i in broken_at:
            lines.append(json.dumps({"no": "messages", "i": i}) if i % 2 else "not json")
        else:
            lines.append(json.dumps({"messages": [{"role": "user", "content": f"q{i} " + "x" * (i % 50)}]}))
    lines.append(lines[10])  # a duplicate line
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def check_with(checks: Any, path: Path) -> Report:
    data = path.read_bytes()
    for offset in range(0, len(data), 64 * KiB):
        checks.feed(data[offset : offset + 64 * KiB])
    report: Report = checks.finish()
    return report


def same(a: Report, b: Report) -> None:
    assert a.as_dict() == b.as_dict()
    assert a.problems == b.problems and a.records == b.records and a.duplicate_samples == b.duplicate_samples


@pytest.fixture
def worker_from_1k(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "WORKER_FROM", 1024)


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[WorkerChecker]:
    """Every WorkerChecker made (the upload's checks are in a worker process)."""
    seen: list[WorkerChecker] = []

    class Spy(WorkerChecker):
        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, **kw)
            seen.append(self)

    monkeypatch.setattr(worker_mod, "WorkerChecker", Spy)
    return seen


def test_a_large_file_is_checked_in_a_worker_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "t.jsonl", 50)
    source = PathSource(str(path), "t.jsonl")
    assert isinstance(pipeline.make_checks(source, Rules()), JsonlChecker)  # far below WORKER_FROM
    monkeypatch.setattr(pipeline, "WORKER_FROM", source.size)
    checks = pipeline.make_checks(source, Rules())
    assert isinstance(checks, WorkerChecker)  # at the threshold
    assert checks._proc.pid != os.getpid() and checks._proc.poll() is None
    check_with(checks, path)
    assert checks._proc.wait(timeout=30) == 0
    assert isinstance(pipeline.make_checks(source, Rules(), worker=False), JsonlChecker)  # check_worker=False
    monkeypatch.setattr(pipeline, "WORKER_FROM", source.size + 1)
    assert isinstance(pipeline.make_checks(source, Rules()), JsonlChecker)  # just below it
    source.close()


@pytest.mark.parametrize("broken", [(), (7, 8, 2000)], ids=["clean", "broken"])
def test_the_worker_gives_the_same_report_as_checking_in_process(tmp_path: Path, broken: tuple[int, ...]) -> None:
    path = write(tmp_path / "t.jsonl", broken_at=broken)
    size = path.stat().st_size
    here = check_with(JsonlChecker("t.jsonl", size, checker=Rules(), max_problems=20), path)
    there = check_with(WorkerChecker("t.jsonl", size, checker=Rules(), max_problems=20), path)
    same(here, there)
    assert there.warnings > 900 and there.errors == len(broken) and there.examples is not None
    assert there.duplicate_lines == 1


@pytest.mark.parametrize("checker", [Unpicklable, LostInTheWorker], ids=["unpicklable", "not-importable-there"])
def test_a_checker_the_worker_cannot_take_is_run_in_process_with_the_same_report(
    tmp_path: Path, worker_from_1k: None, checker: Callable[[], Rules]
) -> None:
    path = write(tmp_path / "t.jsonl", broken_at=(5, 6))
    source = PathSource(str(path), "t.jsonl")
    checks = pipeline.make_checks(source, checker())
    if checker is Unpicklable:
        assert isinstance(checks, JsonlChecker)  # it cannot even be handed over
    else:
        assert isinstance(checks, WorkerChecker)  # handed over, refused there, checked here
    report = check_with(checks, path)
    same(report, check_with(JsonlChecker(source.display, source.size, checker=Rules()), path))
    source.close()


# --- through an upload -------------------------------------------------------------------------------------------


class Strict(LocalProvider):
    """The local provider with record rules for fine-tune files."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make

    def record_checker(self, purpose: str, settings: Settings) -> Any:
        return self.make() if purpose == "fine-tune" else None


class Registers:
    def __init__(self, provider: LocalProvider) -> None:
        self.provider = provider

    @hookimpl
    def llmfiles_register_providers(self, register: Callable[[Any], None]) -> None:
        register(self.provider)


def strict_client(tmp_path: Path, make: Callable[[], Any]) -> Client:
    pm = PluginManager(load_entry_points=False, environ={})
    pm.register(Registers(Strict(make)), name="local")
    return Client("local", plugin_manager=pm, environ={}, home=str(tmp_path / "home"))


def nothing_stored(tmp_path: Path, client: Client) -> bool:
    root = tmp_path / "home" / "local"
    left = [p for d in ("files", "uploads", "tmp") if (root / d).is_dir() for p in (root / d).iterdir()]
    return left == [] and client.unfinished_uploads() == []


SIZES = {"single": {}, "parts": {"multipart_threshold": "64KiB", "part_size": "64KiB"}}


@pytest.mark.parametrize("mode", sorted(SIZES))
def test_an_upload_checks_a_large_file_in_a_worker_with_the_same_verdict(
    tmp_path: Path, worker_from_1k: None, made: list[WorkerChecker], mode: str
) -> None:
    client = strict_client(tmp_path, Rules)
    bad = write(tmp_path / "bad.jsonl", broken_at=(100, 131))
    with pytest.raises(ValidationError) as there:
        client.upload(bad, purpose="fine-tune", **SIZES[mode])
    assert len(made) == 1
    with pytest.raises(ValidationError) as here:
        client.upload(bad, purpose="fine-tune", check_worker=False, **SIZES[mode])
    assert len(made) == 1  # check_worker=False: in this process
    assert there.value.problems == here.value.problems
    assert [p.line for p in there.value.problems if p.severity == "error"] == [100, 131]
    assert nothing_stored(tmp_path, client)
    good = write(tmp_path / "good.jsonl")
    fo = client.upload(good, purpose="fine-tune", **SIZES[mode])
    assert len(made) == 2 and fo.bytes == good.stat().st_size


@pytest.mark.parametrize("mode", sorted(SIZES))
def test_a_worker_that_dies_fails_the_upload_and_commits_nothing(
    tmp_path: Path, worker_from_1k: None, made: list[WorkerChecker], mode: str
) -> None:
    path = write(tmp_path / "t.jsonl", records=20_000)
    assert path.stat().st_size > BLOCK  # several blocks: the worker dies in the middle
    client = strict_client(tmp_path, lambda: DiesInTheWorker(line=1500))
    with pytest.raises(LLMFilesError, match=r"the process that checks .* failed") as info:
        client.upload(path, purpose="fine-tune", **SIZES[mode])
    assert not isinstance(info.value, ValidationError)
    (checks,) = made
    assert checks._proc.returncode == 7
    assert nothing_stored(tmp_path, client)
    assert list(client.list_files()) == []


def test_the_local_provider_has_no_record_rules() -> None:
    assert llmfiles.local.LocalProvider().record_checker("fine-tune", Settings(provider="local", values={})) is None


@pytest.mark.skipif(not hasattr(__import__("fcntl"), "F_GETPIPE_SZ"), reason="pipe sizes are Linux's")
def test_the_pipe_to_the_worker_holds_a_whole_block(tmp_path: Path) -> None:
    """A 1 MiB block through Linux's default 64 KiB pipe took sixteen wake-ups of both processes: measured on the
    benchmark's capped link, 1 GiB went up in 5.6 s with the default pipe and 4.0 s with this one."""
    import fcntl

    limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    path = write(tmp_path / "t.jsonl", 50)
    wc = WorkerChecker("t.jsonl", path.stat().st_size, checker=Rules())
    try:
        assert wc._proc.stdin is not None
        size = fcntl.fcntl(wc._proc.stdin.fileno(), fcntl.F_GETPIPE_SZ)
        assert size >= min(worker_mod.PIPE_BYTES, limit) and worker_mod.PIPE_BYTES >= BLOCK
    finally:
        wc.feed(path.read_bytes())
        assert wc.finish().ok


# --- a parts upload: the worker reads the file itself --------------------------------------------------------------


@pytest.fixture
def fed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the blocks this process handed to a worker through the pipe."""
    sizes: list[int] = []
    real = WorkerChecker.feed

    def feed(self: WorkerChecker, block: bytes | memoryview) -> None:
        sizes.append(len(block))
        real(self, block)

    monkeypatch.setattr(WorkerChecker, "feed", feed)
    return sizes


def test_a_parts_upload_has_the_worker_read_check_and_hash_the_file_itself(
    tmp_path: Path, worker_from_1k: None, made: list[WorkerChecker], fed: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    completed: list[dict[str, str]] = []
    real = llmfiles.local.LocalParts.complete

    def complete(self: Any, state: Any, receipts: Any, digests: Any) -> Any:
        completed.append(dict(digests))
        return real(self, state, receipts, digests)

    monkeypatch.setattr(llmfiles.local.LocalParts, "digests", ("md5",), raising=False)
    monkeypatch.setattr(llmfiles.local.LocalParts, "complete", complete)
    client = strict_client(tmp_path, Rules)
    good = write(tmp_path / "good.jsonl", records=20_000)
    fo = client.upload(good, purpose="fine-tune", **SIZES["parts"])
    (checks,) = made
    assert fed == []  # not one byte went through the pipe: the worker read the file from its own descriptor
    assert checks._remote is not None and checks._remote.read == good.stat().st_size
    # the MD5 the worker computed is the one the upload was completed with
    assert checks._remote.digests == {"md5": hashlib.md5(good.read_bytes()).hexdigest()}
    assert completed == [checks._remote.digests] and fo.bytes == good.stat().st_size
    assert len(checks._remote.part_crcs) == -(-good.stat().st_size // (64 * KiB))
    # the same file in one request: the blocks go to the worker as they are sent (nothing else reads the file)
    client.upload(good, purpose="fine-tune")
    assert sum(fed) == good.stat().st_size


def test_a_parts_upload_stops_as_soon_as_the_worker_finds_an_error(
    tmp_path: Path, worker_from_1k: None, made: list[WorkerChecker], fed: list[int]
) -> None:
    import time

    sent: list[int] = []

    def progress(p: Any) -> None:
        if p.done and not any(sent):  # the first bytes sent wait until the worker reported the error
            deadline = time.monotonic() + 30
            while not made[0].errors and time.monotonic() < deadline:
                time.sleep(0.01)
        sent.append(p.done)

    client = strict_client(tmp_path, Rules)
    bad = write(tmp_path / "bad.jsonl", records=60_000, broken_at=(3,))
    with pytest.raises(ValidationError) as info:
        client.upload(bad, purpose="fine-tune", progress=progress, max_concurrency=1, **SIZES["parts"])
    assert [p.line for p in info.value.problems if p.severity == "error"] == [3]
    assert fed == [] and made[0]._remote is not None
    assert max(sent) <= 64 * KiB < bad.stat().st_size  # the parts stopped in the first one
    assert nothing_stored(tmp_path, client)


@pytest.mark.parametrize("how", ["in place", "renamed over"])
def test_a_file_edited_while_the_worker_reads_it_is_not_committed(
    tmp_path: Path, worker_from_1k: None, made: list[WorkerChecker], how: str
) -> None:
    from llmfiles.errors import FileChanged

    client = strict_client(tmp_path, Rules)
    path = write(tmp_path / "t.jsonl", records=20_000)
    edited: list[bool] = []

    def edit(progress: Any) -> None:
        if not edited and progress.done > 0:
            edited.append(True)
            data = bytearray(path.read_bytes())
            data[len(data) // 2] = ord("x") if data[len(data) // 2] != ord("x") else ord("y")
            if how == "in place":
                with open(path, "r+b") as fh:
                    fh.write(data)
            else:
                (tmp_path / "new").write_bytes(data)
                os.replace(tmp_path / "new", path)

    with pytest.raises(FileChanged) as info:
        client.upload(path, purpose="fine-tune", progress=edit, max_concurrency=1, resume=False, **SIZES["parts"])
    assert edited and str(path) in str(info.value)
    assert made[0]._remote is not None
    assert nothing_stored(tmp_path, client)


def test_a_checker_the_worker_cannot_take_is_fed_here_in_a_parts_upload(
    tmp_path: Path, worker_from_1k: None, made: list[WorkerChecker], fed: list[int]
) -> None:
    client = strict_client(tmp_path, LostInTheWorker)
    bad = write(tmp_path / "bad.jsonl", broken_at=(100, 131))
    with pytest.raises(ValidationError) as info:
        client.upload(bad, purpose="fine-tune", **SIZES["parts"])
    assert [p.line for p in info.value.problems if p.severity == "error"] == [100, 131]
    (checks,) = made
    assert checks._remote is None and checks._fallback is not None and sum(fed) == bad.stat().st_size
    assert nothing_stored(tmp_path, client)
    good = write(tmp_path / "good.jsonl")
    assert client.upload(good, purpose="fine-tune", **SIZES["parts"]).bytes == good.stat().st_size


def test_the_worker_reads_a_file_object_from_its_own_start(
    tmp_path: Path, worker_from_1k: None, made: list[WorkerChecker], fed: list[int]
) -> None:
    """A file object the caller opened and moved into: the worker reads the same descriptor, from that position."""
    import io

    client = strict_client(tmp_path, Rules)
    good = write(tmp_path / "good.jsonl", records=20_000)
    junk = b"not part of the upload\n" * 10
    both = tmp_path / "both.bin"
    both.write_bytes(junk + good.read_bytes())
    with open(both, "rb") as fh:
        fh.seek(len(junk))
        fo = client.upload(fh, purpose="fine-tune", filename="good.jsonl", **SIZES["parts"])
    assert fo.bytes == good.stat().st_size and fed == []
    assert made[0]._remote is not None and made[0]._remote.read == good.stat().st_size
    client.download(fo.id, tmp_path / "back.jsonl")
    assert (tmp_path / "back.jsonl").read_bytes() == good.read_bytes()
    # an in-memory file has no descriptor to hand over: its blocks go through the pipe
    client.upload(io.BytesIO(good.read_bytes()), purpose="fine-tune", filename="mem.jsonl", **SIZES["parts"])
    assert made[1]._remote is None and sum(fed) == good.stat().st_size
