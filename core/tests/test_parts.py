"""The large-file engine: part sizes, splitting, and whole uploads through the local provider's parts protocol."""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmfiles.local
from llmfiles import Client, hookimpl
from llmfiles.errors import FileTooLarge, InvalidSetting, ProviderError
from llmfiles.local import LocalParts, LocalProvider
from llmfiles.models import Credentials, HttpRequest, HttpResponse, Operation, Progress, Settings
from llmfiles.parts import choose_part_size, split
from llmfiles.plugins import PluginManager
from llmfiles.provider import Exchange, PartLimits, PartsUpload

KiB = 1024
MiB = 1024 * 1024


def choose(size: int, requested: int, **limits: Any) -> int:
    return choose_part_size(size, PartLimits(**limits), requested, provider="p", path="f")


# --- choosing the part size ----------------------------------------------------------------------------------


def test_the_requested_part_size_is_kept_when_it_fits() -> None:
    assert choose(10 * MiB, 2 * MiB) == 2 * MiB


def test_part_size_grows_until_the_parts_fit_the_limit() -> None:
    assert choose(10_000, 100, max_parts=10) == 1000
    assert choose(10_001, 100, max_parts=10) == 1001
    assert math.ceil(10_001 / 1001) == 10


def test_part_size_respects_min_and_max() -> None:
    assert choose(1000, 10, minimum=100) == 100
    assert choose(10_000, 5000, maximum=1000) == 1000


def test_part_size_is_aligned() -> None:
    assert choose(1000, 100, alignment=256) == 256
    assert choose(10_001, 100, max_parts=10, alignment=256) == 1024
    assert choose(5 * MiB, 1_000_000, alignment=256 * KiB) == 1 * MiB


def test_a_file_beyond_the_part_limits_is_too_large() -> None:
    with pytest.raises(FileTooLarge) as info:
        choose(10_000, 100, max_parts=10, maximum=500)
    assert "5,000" in str(info.value)  # the most the plan can carry


@pytest.mark.parametrize("requested", [0, -1])
def test_part_size_must_be_positive(requested: int) -> None:
    with pytest.raises(InvalidSetting):
        choose(1000, requested)


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(
    size=st.integers(1, 10**12),
    requested=st.integers(1, 10**10),
    max_parts=st.integers(1, 10_000),
    alignment=st.sampled_from([1, 2, 256, 256 * KiB]),
    min_part=st.integers(1, 10 * MiB),
    max_part=st.one_of(st.none(), st.integers(10 * MiB, 10**10)),
)
def test_chosen_part_sizes_obey_every_constraint(
    size: int, requested: int, max_parts: int, alignment: int, min_part: int, max_part: int | None
) -> None:
    constraints = dict(max_parts=max_parts, alignment=alignment, minimum=min_part, maximum=max_part)
    try:
        part = choose(size, requested, **constraints)
    except FileTooLarge:
        # only when no aligned part size within the bounds carries the file in max_parts parts
        biggest = (max_part // alignment) * alignment if max_part is not None else None
        assert biggest is not None
        assert biggest == 0 or biggest * max_parts < size
        return
    assert part % alignment == 0
    assert max_part is None or part <= max_part
    assert math.ceil(size / part) <= max_parts


# --- splitting -----------------------------------------------------------------------------------------------


def test_split() -> None:
    assert split(10, 3) == [(0, 3), (3, 3), (6, 3), (9, 1)]
    assert split(9, 3) == [(0, 3), (3, 3), (6, 3)]
    assert split(2, 5) == [(0, 2)]
    assert split(0, 5) == [(0, 0)]


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(size=st.integers(1, 10**12), part=st.integers(1, 10**10))
def test_split_covers_the_file_exactly(size: int, part: int) -> None:
    if size // part > 10_000:
        part = size // 10_000 + 1
    ranges = split(size, part)
    assert ranges[0][0] == 0
    for (off, length), (next_off, _) in itertools.pairwise(ranges):
        assert next_off == off + length
        assert length == part
    assert sum(length for _, length in ranges) == size
    assert 0 < ranges[-1][1] <= part
    assert len(ranges) == math.ceil(size / part)


# --- through the local provider ------------------------------------------------------------------------------


@pytest.fixture
def blob(tmp_path: Path) -> Path:
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(MiB + 12_345))
    return path


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def store_contents(home: Path) -> dict[str, list[str]]:
    root = home / "local"
    return {d: sorted(os.listdir(root / d)) if (root / d).is_dir() else [] for d in ("files", "uploads", "tmp")}


PARTS = {"multipart_threshold": 64 * KiB, "part_size": 64 * KiB}


class LocalWith(LocalProvider):
    """The local provider with its parts protocol changed (as an in-house provider built on it would)."""

    def __init__(self, change: Callable[[LocalParts], None]) -> None:
        self.change = change
        self.protocols: list[LocalParts] = []

    def exchange(self, op: Operation, credentials: Credentials, settings: Settings) -> Exchange[Any] | PartsUpload:
        built = super().exchange(op, credentials, settings)
        if isinstance(built, LocalParts):
            self.change(built)
            self.protocols.append(built)
        return built


class Registers:
    def __init__(self, provider: LocalProvider) -> None:
        self.provider = provider

    @hookimpl
    def llmfiles_register_providers(self, register: Callable[[Any], None]) -> None:
        register(self.provider)


def client_with(tmp_path: Path, change: Callable[[LocalParts], None] | None = None) -> Client:
    pm = PluginManager(load_entry_points=False, environ={})
    pm.register(llmfiles.local if change is None else Registers(LocalWith(change)), name="local")
    return Client("local", plugin_manager=pm, environ={}, home=str(tmp_path / "home"))


@pytest.fixture
def local_requests(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """Record every request the local store answers: (method, path)."""
    from urllib.parse import urlsplit

    seen: list[tuple[str, str]] = []
    lock = threading.Lock()
    original = llmfiles.local.handle_local_request

    def handle(request: HttpRequest, *args: Any) -> HttpResponse:
        with lock:
            seen.append((request.method, urlsplit(request.url).path + "?" + urlsplit(request.url).query))
        return original(request, *args)

    monkeypatch.setattr(llmfiles.local, "handle_local_request", handle)
    yield seen


@pytest.mark.parametrize("concurrency", [1, 4])
def test_large_upload_round_trips_byte_exact(
    tmp_path: Path, blob: Path, concurrency: int, local_requests: list[tuple[str, str]]
) -> None:
    client = client_with(tmp_path)
    events: list[Progress] = []
    fo = client.upload(blob, purpose="assistants", progress=events.append, max_concurrency=concurrency, **PARTS)
    assert fo.bytes == blob.stat().st_size
    parts = [p for m, p in local_requests if m == "PUT" and "/parts" in p]
    assert len(parts) == math.ceil(blob.stat().st_size / (64 * KiB)) == 17
    out = client.download(fo.id, tmp_path / "back.bin")
    assert md5(out) == md5(blob)
    assert store_contents(tmp_path / "home")["uploads"] == []

    done = [e.done for e in events]
    assert done == sorted(done), "progress went backwards"
    assert done[0] == 0 and done[-1] == blob.stat().st_size
    assert {e.total for e in events} == {blob.stat().st_size}
    assert {e.operation for e in events} == {"upload"} and {e.filename for e in events} == {"blob.bin"}


def test_large_jsonl_upload_is_validated_and_round_trips(tmp_path: Path, make_jsonl: Any) -> None:
    src = make_jsonl("big.jsonl", min_bytes=300 * KiB)
    client = client_with(tmp_path)
    fo = client.upload(src, purpose="fine-tune", **PARTS)
    assert fo.filename == "big.jsonl" and fo.purpose == "fine-tune"
    assert md5(client.download(fo.id, tmp_path / "big-back.jsonl")) == md5(src)


def test_below_the_threshold_one_request_is_sent(
    tmp_path: Path, blob: Path, local_requests: list[tuple[str, str]]
) -> None:
    client = client_with(tmp_path)
    client.upload(blob, purpose="assistants", multipart_threshold=blob.stat().st_size, part_size=64 * KiB)
    assert [m for m, _ in local_requests] == ["POST"]


def test_a_protocol_that_is_not_parallel_sends_parts_in_order(
    tmp_path: Path, blob: Path, local_requests: list[tuple[str, str]]
) -> None:
    def sequential(protocol: LocalParts) -> None:
        protocol.parallel = False

    client = client_with(tmp_path, sequential)
    fo = client.upload(blob, purpose="assistants", max_concurrency=8, **PARTS)
    offsets = [int(p.rsplit("offset=", 1)[1].split("&")[0]) for m, p in local_requests if "/parts" in p]
    assert offsets == [i * 64 * KiB for i in range(17)]
    assert md5(client.download(fo.id, tmp_path / "seq.bin")) == md5(blob)


@pytest.mark.parametrize("parallel", [False, True])
def test_whole_file_digests_reach_complete(tmp_path: Path, blob: Path, parallel: bool) -> None:
    seen: list[dict[str, str]] = []

    def change(protocol: LocalParts) -> None:
        complete = protocol.complete

        def recording_complete(state: Any, receipts: Any, digests: Any) -> Exchange[Any]:
            seen.append(dict(digests))
            return complete(state, receipts, digests)

        protocol.digests = ("sha256", "md5")
        protocol.parallel = parallel
        protocol.complete = recording_complete  # type: ignore[method-assign]

    client = client_with(tmp_path, change)
    client.upload(blob, purpose="assistants", **PARTS)
    data = blob.read_bytes()
    assert seen == [
        {"sha256": hashlib.sha256(data).hexdigest(), "md5": hashlib.md5(data, usedforsecurity=False).hexdigest()}
    ]


def test_without_the_checksum_setting_no_digest_is_computed(tmp_path: Path, blob: Path) -> None:
    seen: list[dict[str, str]] = []

    def change(protocol: LocalParts) -> None:
        complete = protocol.complete
        protocol.digests = ("sha256",)
        protocol.complete = lambda state, receipts, digests: (
            seen.append(dict(digests))
            or complete(  # type: ignore[method-assign]
                state, receipts, digests
            )
        )

    client_with(tmp_path, change).upload(blob, purpose="assistants", checksum=False, **PARTS)
    assert seen == [{}]


def test_a_failing_part_aborts_the_upload_and_leaves_nothing(tmp_path: Path, blob: Path) -> None:
    aborted: list[Any] = []

    def change(protocol: LocalParts) -> None:
        part, abort = protocol.part, protocol.abort

        def broken_part(state: Any, p: Any) -> Exchange[Any]:
            exchange = part(state, p)
            if p.index == 5:  # the store has no such route: 404, not retried
                request = attrs.evolve(exchange.request, url=exchange.request.url.replace("/parts", "/broken"))
                return attrs.evolve(exchange, request=request)
            return exchange

        def recording_abort(state: Any) -> Exchange[Any]:
            aborted.append(state)
            return abort(state)

        protocol.part = broken_part  # type: ignore[method-assign]
        protocol.abort = recording_abort  # type: ignore[method-assign]

    client = client_with(tmp_path, change)
    with pytest.raises(ProviderError) as info:
        client.upload(blob, purpose="assistants", max_concurrency=4, **PARTS)
    assert info.value.status == 404
    assert len(aborted) == 1
    assert any("aborted" in note for note in getattr(info.value, "__notes__", ()))
    assert store_contents(tmp_path / "home") == {"files": [], "uploads": [], "tmp": []}
    assert list(client.list_files()) == []


def test_an_interrupted_large_upload_keeps_its_session_and_the_next_run_finishes_it(
    tmp_path: Path, blob: Path, local_requests: list[tuple[str, str]]
) -> None:
    def interrupt(event: Progress) -> None:
        if event.done > 300 * KiB:
            raise KeyboardInterrupt

    client = client_with(tmp_path)
    with pytest.raises(KeyboardInterrupt) as info:
        client.upload(blob, purpose="assistants", progress=interrupt, max_concurrency=1, **PARTS)
    assert any("session was kept" in note for note in info.value.__notes__)
    assert len(store_contents(tmp_path / "home")["uploads"]) == 1  # not aborted: Ctrl-C is not a failure
    [left] = client.unfinished_uploads()
    assert left["provider"] == "local" and left["bytes_done"] >= 4 * 64 * KiB and not left["running"]
    sent_before = [p for _, p in local_requests if "/parts" in p]
    local_requests.clear()

    fo = client.upload(blob, purpose="assistants", max_concurrency=1, **PARTS)
    starts = [p for _, p in local_requests if p.startswith("/uploads?")]
    parts = [p for _, p in local_requests if "/parts" in p]
    assert starts == []  # the same session
    assert len(parts) + len(sent_before) - 1 <= 17  # only the parts that were missing (one may have been cut)
    assert md5(client.download(fo.id, tmp_path / "resumed.bin")) == md5(blob)
    assert client.unfinished_uploads() == []
    assert store_contents(tmp_path / "home")["uploads"] == []


def test_without_resume_an_interrupted_large_upload_is_aborted(tmp_path: Path, blob: Path) -> None:
    def interrupt(event: Progress) -> None:
        if event.done > 300 * KiB:
            raise KeyboardInterrupt

    client = client_with(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        client.upload(blob, purpose="assistants", progress=interrupt, resume=False, **PARTS)
    assert store_contents(tmp_path / "home") == {"files": [], "uploads": [], "tmp": []}
    assert client.unfinished_uploads() == []


def test_a_part_is_retried_after_a_transient_failure(
    tmp_path: Path, blob: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The third part fails once with 503 after the store read half of it; the transport sends it again, the
    engine restarts its checksum and progress, and the file arrives intact."""
    original = llmfiles.local.handle_local_request
    attempts: dict[str, int] = {}
    lock = threading.Lock()

    def flaky(request: HttpRequest, body: Iterator[bytes], *args: Any) -> HttpResponse:
        if "/parts" in request.url and f"offset={2 * 64 * KiB}&" in request.url + "&":
            with lock:
                attempts["third"] = attempts.get("third", 0) + 1
                first = attempts["third"] == 1
            if first:
                next(body)  # consume some of the part, as a server that fails midway would
                return HttpResponse(status=503, body=b'{"error": {"message": "try again", "code": "busy"}}')
        return original(request, body, *args)

    monkeypatch.setattr(llmfiles.local, "handle_local_request", flaky)
    events: list[Progress] = []
    client = client_with(tmp_path)
    fo = client.upload(
        blob, purpose="assistants", progress=events.append, max_concurrency=1, max_retry_wait=0.01, **PARTS
    )
    assert attempts == {"third": 2}
    assert events[-1].done == blob.stat().st_size
    assert max(e.done for e in events) == blob.stat().st_size  # the failed attempt's bytes are not counted twice
    assert md5(client.download(fo.id, tmp_path / "retried.bin")) == md5(blob)


def test_a_part_failing_every_time_gives_up_and_keeps_the_session_for_the_next_run(
    tmp_path: Path, blob: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = llmfiles.local.handle_local_request
    tries = [0]

    def failing(request: HttpRequest, *args: Any) -> HttpResponse:
        if "/parts" in request.url and "offset=0&" in request.url + "&":
            tries[0] += 1
            return HttpResponse(status=503, body=b'{"error": {"message": "down", "code": "busy"}}')
        return original(request, *args)

    monkeypatch.setattr(llmfiles.local, "handle_local_request", failing)
    client = client_with(tmp_path)
    with pytest.raises(ProviderError) as info:
        client.upload(blob, purpose="assistants", max_retries=2, max_retry_wait=0.01, max_concurrency=1, **PARTS)
    assert info.value.status == 503
    assert tries[0] == 3
    # a provider that stays down is no reason to throw the work away: the next run continues the session
    assert any("session was kept" in note for note in info.value.__notes__)
    assert len(store_contents(tmp_path / "home")["uploads"]) == 1
    monkeypatch.setattr(llmfiles.local, "handle_local_request", original)
    fo = client.upload(blob, purpose="assistants", max_concurrency=1, **PARTS)
    assert md5(client.download(fo.id, tmp_path / "later.bin")) == md5(blob)
    assert store_contents(tmp_path / "home")["uploads"] == []


def test_too_many_parts_for_the_plan_is_file_too_large(tmp_path: Path, blob: Path) -> None:
    def few_parts(protocol: LocalParts) -> None:
        protocol.limits = PartLimits(max_parts=4, maximum=64 * KiB)

    client = client_with(tmp_path, few_parts)
    with pytest.raises(FileTooLarge):
        client.upload(blob, purpose="assistants", **PARTS)
    assert store_contents(tmp_path / "home")["files"] == []


def test_progress_stays_in_order_when_parts_run_in_parallel(tmp_path: Path, blob: Path) -> None:
    """Parts report from several threads; the callback must still see the count grow (a frequent thread switch
    makes an unordered report show up within a few uploads)."""
    client = client_with(tmp_path)
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(5):
            events: list[Progress] = []
            client.upload(
                blob,
                purpose="assistants",
                progress=events.append,
                max_concurrency=8,
                multipart_threshold=16 * KiB,
                part_size=16 * KiB,
            )
            done = [e.done for e in events]
            assert done == sorted(done)
            assert done[-1] == blob.stat().st_size
    finally:
        sys.setswitchinterval(previous)


def open_files_under(folder: Path) -> list[str]:
    """The descriptors of this process open on files under ``folder`` (a baseline no other test or thread moves:
    only this test's files are there)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile (the listing's own descriptor)
        if target.startswith(str(folder)):
            found.append(target)
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc (Linux)")
def test_concurrent_uploads_leave_no_descriptor_open(tmp_path: Path, blob: Path, make_jsonl: Any) -> None:
    import gc

    client = client_with(tmp_path)
    small = make_jsonl("small.jsonl")
    gc.collect()
    assert open_files_under(tmp_path) == []
    errors: list[BaseException] = []

    def go(i: int) -> None:
        try:
            if i % 2:
                client.upload(blob, purpose="assistants", max_concurrency=4, **PARTS)
            else:
                client.upload(small, purpose="fine-tune", if_exists="reuse")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    client.close()
    gc.collect()
    assert open_files_under(tmp_path) == []


def test_a_session_the_provider_no_longer_has_is_replaced_by_a_new_one(
    tmp_path: Path, blob: Path, local_requests: list[tuple[str, str]]
) -> None:
    def interrupt(event: Progress) -> None:
        if event.done > 300 * KiB:
            raise KeyboardInterrupt

    client = client_with(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        client.upload(blob, purpose="assistants", progress=interrupt, max_concurrency=1, **PARTS)
    assert len(client.unfinished_uploads()) == 1
    uploads = tmp_path / "home" / "local" / "uploads"
    for session in uploads.iterdir():  # the provider forgot it (it expired, someone aborted it)
        shutil.rmtree(session)
    local_requests.clear()
    events: list[Progress] = []
    fo = client.upload(blob, purpose="assistants", progress=events.append, max_concurrency=2, **PARTS)
    assert md5(client.download(fo.id, tmp_path / "anew.bin")) == md5(blob)
    assert events[-1].done == blob.stat().st_size and max(e.done for e in events) == blob.stat().st_size
    assert events[-1].resumed == 0
    assert [p for _, p in local_requests if p.startswith("/uploads?")] != []  # a new session was started
    assert client.unfinished_uploads() == [] and store_contents(tmp_path / "home")["uploads"] == []


# --- a step of more than one request ----------------------------------------------------------------------------


def _chained_start(times: int) -> Callable[[LocalParts], None]:
    """The local protocol's start made of ``times`` + 1 requests: each start's reader answers with another start,
    as a provider that creates something and then asks where the bytes go answers with its second request."""

    def change(protocol: LocalParts) -> None:
        start = protocol.start
        left = [times]

        def chained() -> Exchange[Any]:
            first = start()
            read = first.read

            def follow(response: HttpResponse) -> Any:
                if left[0] > 0:
                    left[0] -= 1
                    return chained()
                return read(response)

            return attrs.evolve(first, read=follow)

        protocol.start = chained  # type: ignore[method-assign]

    return change


def test_a_reader_may_answer_with_the_next_request_of_its_step(
    tmp_path: Path, blob: Path, local_requests: list[tuple[str, str]]
) -> None:
    client = client_with(tmp_path, _chained_start(2))
    fo = client.upload(blob, purpose="assistants", **PARTS)
    starts = [p for m, p in local_requests if m == "POST" and "/parts" not in p and "/complete" not in p]
    assert len(starts) == 3  # the start, then the two follow-ups its readers answered with
    assert md5(client.download(fo.id, tmp_path / "back.bin")) == md5(blob)


def test_follow_ups_that_never_end_are_a_plugin_error(tmp_path: Path, blob: Path) -> None:
    from llmfiles.errors import PluginError

    client = client_with(tmp_path, _chained_start(10_000))
    with pytest.raises(PluginError, match="follow-up"):
        client.upload(blob, purpose="assistants", resume=False, **PARTS)
