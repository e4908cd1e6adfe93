"""One read of the file: each byte of an upload is read once (a single request, a resumable session), parts and
the lead read each range once; a bad file creates nothing; ``check_first`` sends nothing of a bad file; a file
that changes while it is uploaded is refused and nothing is committed."""

from __future__ import annotations

import json
import os
import threading
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from echo import answer, fo_json
from echo import echo_client as make_echo_client
from faultserver import FaultServer
from session import Session, session_client

import llmfiles.local
import llmfiles.uploads
from llmfiles import Client, hookimpl
from llmfiles.errors import FileChanged, ValidationError
from llmfiles.models import HttpRequest, HttpResponse, Progress
from llmfiles.pipeline import HEAD_BYTES
from llmfiles.plugins import PluginManager
from llmfiles.sources import Source

KiB = 1024
MiB = 1024 * KiB
PARTS = {"multipart_threshold": 64 * KiB, "part_size": 64 * KiB, "max_concurrency": 4}
LINE = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]}) + "\n"


class CountingSource(Source):
    """A :class:`Source` that reads through another and records every read: (thread name, offset, bytes)."""

    def __init__(self, inner: Source) -> None:
        self.inner = inner
        self.name, self.size, self.display = inner.name, inner.size, inner.display
        self.path, self.identity = inner.path, inner.identity
        self.reads: list[tuple[str, int, int]] = []
        self._lock = threading.Lock()

    def pread(self, n: int, offset: int) -> bytes:
        data = self.inner.pread(n, offset)
        with self._lock:
            self.reads.append((threading.current_thread().name, offset, len(data)))
        return data

    def current_identity(self) -> Any:
        return self.inner.current_identity()

    def close(self) -> None:
        self.inner.close()

    def times_read(self, who: Callable[[str], bool] = lambda name: True, *, skip_head: bool = True) -> set[int]:
        """How many times each byte was read by the threads ``who`` accepts (the set of those counts)."""
        counts = array("H", bytes(2 * self.size))
        reads = list(self.reads)
        if skip_head:  # the head: the file's first bytes, read once before anything is sent
            reads.remove(next(r for r in reads if r[1:] == (0, min(HEAD_BYTES, self.size))))
        for thread, offset, n in reads:
            if who(thread):
                for i in range(offset, offset + n):
                    counts[i] += 1
        return set(counts)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[CountingSource]:
    """Every file an upload opens, counting its reads."""
    opened: list[CountingSource] = []
    original = llmfiles.uploads.open_source

    def open_source(*args: Any, **kw: Any) -> Source:
        source = CountingSource(original(*args, **kw))
        opened.append(source)
        return source

    monkeypatch.setattr(llmfiles.uploads, "open_source", open_source)
    return opened


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def client(home: Path) -> Client:
    return Client("local", environ={}, home=str(home))


@pytest.fixture
def blob(tmp_path: Path) -> Path:
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(3 * MiB + 4321))
    return path


@pytest.fixture
def jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text(LINE * (3 * MiB // len(LINE)), encoding="utf-8")
    return path


def nothing_stored(home: Path, client: Client) -> bool:
    root = home / "local"
    left = [p for d in ("files", "uploads", "tmp") if (root / d).is_dir() for p in (root / d).iterdir()]
    return left == [] and client.unfinished_uploads() == []


# --- each byte once ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("purpose", ["assistants", "fine-tune"])
def test_a_single_request_reads_each_byte_once(
    client: Client, counted: list[CountingSource], blob: Path, jsonl: Path, purpose: str
) -> None:
    path = jsonl if purpose == "fine-tune" else blob
    client.upload(path, purpose=purpose, multipart_threshold="1GiB")
    (source,) = counted
    assert source.reads[0][1:] == (0, min(HEAD_BYTES, source.size))  # the head, read before anything is sent
    assert source.times_read() == {1}  # then every byte once: checked, hashed and sent from the same read


def test_parts_and_the_lead_read_each_range_once(client: Client, counted: list[CountingSource], jsonl: Path) -> None:
    fo = client.upload(jsonl, purpose="fine-tune", **PARTS)
    assert fo.bytes == jsonl.stat().st_size
    (source,) = counted
    threads = {t for t, _, _ in source.reads[1:]}
    assert "llmfiles-lead" in threads and any(t.startswith("llmfiles-part") for t in threads)
    assert source.times_read(lambda t: t == "llmfiles-lead") == {1}  # the checks and whole-file digests
    assert source.times_read(lambda t: t.startswith("llmfiles-part")) == {1}  # what was sent
    assert source.times_read() == {2}


def test_parts_with_nothing_to_inspect_read_each_byte_once(
    client: Client, counted: list[CountingSource], jsonl: Path
) -> None:
    """``validate=False, checksum=False``: no checks, no digests, so no in-order read beside the parts (it would
    read the whole file a second time and CRC every byte twice, for nothing to compare)."""
    fo = client.upload(jsonl, purpose="fine-tune", validate=False, checksum=False, **PARTS)
    assert fo.bytes == jsonl.stat().st_size
    (source,) = counted
    threads = {t for t, _, _ in source.reads[1:]}
    assert "llmfiles-lead" not in threads and any(t.startswith("llmfiles-part") for t in threads)
    assert source.times_read() == {1}


def test_a_resumable_session_reads_each_byte_once(
    server: FaultServer, counted: list[CountingSource], jsonl: Path, tmp_path: Path
) -> None:
    session = Session()
    server.default = session
    fo = session_client(server.url, home=str(tmp_path / "h")).upload(jsonl, purpose="fine-tune")
    assert bytes(session.stored) == jsonl.read_bytes() and fo.bytes == jsonl.stat().st_size
    (source,) = counted
    assert source.times_read() == {1}


def test_if_exists_reads_the_file_once_more_for_its_hash(
    client: Client, counted: list[CountingSource], blob: Path
) -> None:
    client.upload(blob, purpose="assistants", if_exists="reuse")
    (source,) = counted
    assert source.times_read() == {2}  # the SHA-256 it is recorded by, before anything is sent; then the upload


# --- a bad file creates nothing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("large", [False, True], ids=["single", "parts"])
def test_a_broken_last_line_creates_nothing(
    client: Client, home: Path, jsonl: Path, large: bool, counted: list[CountingSource]
) -> None:
    with open(jsonl, "a", encoding="utf-8") as fh:
        fh.write('{"messages": [{"role": "user"')
    with pytest.raises(ValidationError) as info:
        client.upload(jsonl, purpose="fine-tune", **(PARTS if large else {}))
    assert info.value.problems[-1].line == len(jsonl.read_text().splitlines())
    assert nothing_stored(home, client)
    assert list(client.list_files()) == []


@pytest.fixture
def store_requests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    original = llmfiles.local.handle_local_request

    def handle(request: HttpRequest, *args: Any) -> HttpResponse:
        seen.append(request.method)
        return original(request, *args)

    monkeypatch.setattr(llmfiles.local, "handle_local_request", handle)
    return seen


@pytest.mark.parametrize("large", [False, True], ids=["single", "parts"])
def test_check_first_sends_no_byte_of_a_bad_file(
    client: Client, home: Path, jsonl: Path, large: bool, store_requests: list[str], counted: list[CountingSource]
) -> None:
    with open(jsonl, "a", encoding="utf-8") as fh:
        fh.write("not json\n" + LINE)
    with pytest.raises(ValidationError):
        client.upload(jsonl, purpose="fine-tune", check_first=True, **(PARTS if large else {}))
    assert store_requests == []  # not even a session was started
    assert nothing_stored(home, client)
    assert counted[0].times_read() == {1}  # the checks read it once, whole (the whole report)


def test_check_first_sends_nothing_over_http(server: FaultServer, jsonl: Path) -> None:
    with open(jsonl, "a", encoding="utf-8") as fh:
        fh.write("[1, 2]\n")
    with pytest.raises(ValidationError):
        make_echo_client(server.url).upload(jsonl, purpose="fine-tune", check_first=True)
    assert server.requests == []


# --- a file that changes while it is uploaded ----------------------------------------------------------------------


def edit_in_place(path: Path) -> None:
    with open(path, "r+b") as fh:
        fh.seek(10)
        fh.write(b"\0" * 16)


def truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 3)


def grow(path: Path) -> None:
    with open(path, "ab") as fh:
        fh.write(os.urandom(1000))


def replace_by_rename(path: Path) -> None:
    other = path.with_name("other.bin")
    other.write_bytes(os.urandom(path.stat().st_size))
    os.replace(other, path)


CHANGES = {"edited": edit_in_place, "truncated": truncate, "grown": grow, "replaced": replace_by_rename}


def change_once(path: Path, change: Callable[[Path], None], after: int) -> Callable[[Progress], None]:
    done = threading.Event()

    def progress(event: Progress) -> None:
        if event.done >= after and not done.is_set():
            done.set()
            change(path)

    return progress


@pytest.mark.parametrize("large", [False, True], ids=["single", "parts"])
@pytest.mark.parametrize("how", sorted(CHANGES))
@pytest.mark.parametrize("raw", [False, True], ids=["checked", "raw"])
def test_a_file_that_changes_during_the_upload_is_refused(
    client: Client, home: Path, blob: Path, how: str, large: bool, raw: bool
) -> None:
    progress = change_once(blob, CHANGES[how], after=MiB)
    settings: dict[str, Any] = {**PARTS, "max_concurrency": 2} if large else {}
    if raw:  # nothing inspected: the file's identity alone tells
        settings.update(validate=False, checksum=False)
    with pytest.raises(FileChanged) as info:
        client.upload(blob, purpose="assistants", progress=progress, **settings)
    assert str(blob) in str(info.value) and "nothing was committed" in str(info.value)
    assert info.value.exit_code == 2
    assert nothing_stored(home, client)


@pytest.mark.parametrize("how", sorted(CHANGES))
def test_a_resumable_session_of_a_changed_file_commits_nothing(
    server: FaultServer, blob: Path, tmp_path: Path, how: str
) -> None:
    session = Session()
    server.default = session
    client = session_client(server.url, home=str(tmp_path / "h"))
    with pytest.raises(FileChanged):
        client.upload(blob, purpose="assistants", progress=change_once(blob, CHANGES[how], after=MiB))
    assert session.file is None and session.aborted
    assert client.unfinished_uploads() == []


def test_a_file_truncated_while_it_is_sent_is_reported_at_once_never_retried(server: FaultServer, blob: Path) -> None:
    server.default = answer(fo_json(bytes=blob.stat().st_size))
    with pytest.raises(FileChanged, match="shrank") as info:
        make_echo_client(server.url).upload(blob, purpose="assistants", progress=change_once(blob, truncate, MiB))
    assert str(blob) in str(info.value)
    deadline = time.monotonic() + 10  # the server's thread may not have read the request's head yet
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert [r.method for r in server.requests] == ["POST"]  # one attempt, never a second


def test_a_single_request_is_cut_short_before_its_last_block_when_the_checks_fail(
    server: FaultServer, jsonl: Path
) -> None:
    """v2: the checks run while the request is sent; its last block goes only once they passed, so the provider
    never gets a whole body of a bad file (and makes no file of it)."""
    with open(jsonl, "a", encoding="utf-8") as fh:
        fh.write('{"messages": [')
    server.default = answer(fo_json(bytes=jsonl.stat().st_size))
    with pytest.raises(ValidationError):
        make_echo_client(server.url).upload(jsonl, purpose="fine-tune")
    deadline = time.monotonic() + 10
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    (request,) = server.requests
    assert int(request.headers["content-length"]) > jsonl.stat().st_size
    assert not request.complete and len(request.body) < jsonl.stat().st_size


class Utf8Local(llmfiles.local.LocalProvider):
    """The local provider, as a provider whose fine-tune files must be UTF-8 even unchecked (Azure's, with a BOM)."""

    info = attrs.evolve(llmfiles.local.INFO, utf8_purposes=("fine-tune",))


class Registers:
    @hookimpl
    def llmfiles_register_providers(self, register: Callable[[Any], None]) -> None:
        register(Utf8Local())


@pytest.mark.parametrize("large", [False, True], ids=["single", "parts"])
def test_a_file_that_is_not_utf8_is_refused_for_a_utf8_purpose_even_unchecked(
    home: Path, jsonl: Path, large: bool
) -> None:
    pm = PluginManager(load_entry_points=False, environ={})
    pm.register(Registers(), name="local")
    client = Client("local", plugin_manager=pm, environ={}, home=str(home))
    data = jsonl.read_bytes()
    jsonl.write_bytes(data[: 2 * MiB] + b'{"text": "caf\xe9"}\n' + data[2 * MiB :])
    with pytest.raises(ValidationError) as info:
        client.upload(jsonl, purpose="fine-tune", validate=False, **(PARTS if large else {}))
    assert info.value.problems[0].code == "not_utf8" and f"byte {2 * MiB + 14:,}" in info.value.problems[0].message
    assert nothing_stored(home, client)
    assert client.upload(jsonl, purpose="assistants", validate=False).bytes == jsonl.stat().st_size  # not its rule


@pytest.mark.parametrize("large", [False, True], ids=["single", "parts"])
def test_check_first_uploads_a_good_file(
    client: Client, jsonl: Path, large: bool, counted: list[CountingSource]
) -> None:
    fo = client.upload(jsonl, purpose="fine-tune", check_first=True, **(PARTS if large else {}))
    assert fo.bytes == jsonl.stat().st_size
    assert counted[0].times_read() == {2}  # once for the checks before anything is sent, once to send
