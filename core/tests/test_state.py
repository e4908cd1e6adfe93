"""The state database (``$LLMFILES_HOME/state.db``) and what it is for: ``if_exists`` (reuse a file already uploaded
with the same content), resuming large uploads, ``llmfiles uploads`` and ``llmfiles abort``; and the transport's
check before it resends an upload whose answer was lost."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from faultserver import FaultServer, respond

import llmfiles
import llmfiles.sources
from llmfiles import Client
from llmfiles.clock import FakeClock
from llmfiles.errors import AlreadyUploaded, AnswerLost, InvalidSetting, ProviderError
from llmfiles.models import HttpRequest, Progress, ProviderInfo, Secret, Settings, SettingSpec
from llmfiles.state import FileIdentity, Journal, StateDB, UploadedFile, account_fingerprint
from llmfiles.transport import Policy, Transport

KiB = 1024
MiB = 1024 * KiB
LARGE = {"multipart_threshold": 64 * KiB, "part_size": 64 * KiB, "max_concurrency": 1}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def client(home: Path) -> Client:
    return Client("local", environ={}, home=str(home))


def files_in_store(home: Path) -> list[str]:
    d = home / "local" / "files"
    return sorted(p.name for p in d.glob("*.json")) if d.is_dir() else []


# --- if_exists ------------------------------------------------------------------------------------------------


def test_by_default_every_upload_is_a_new_file(client: Client, make_jsonl: Callable[..., Path], home: Path) -> None:
    path = make_jsonl()
    a = client.upload(path, purpose="fine-tune")
    b = client.upload(path, purpose="fine-tune")
    assert a.id != b.id and len(files_in_store(home)) == 2


def test_reuse_returns_the_file_already_uploaded(client: Client, make_jsonl: Callable[..., Path], home: Path) -> None:
    path = make_jsonl()
    first = client.upload(path, purpose="fine-tune", if_exists="reuse")  # nothing recorded yet: uploaded, recorded
    again = client.upload(path, purpose="fine-tune", if_exists="reuse")
    assert again == first and len(files_in_store(home)) == 1
    # other content is another file
    other = make_jsonl("other.jsonl", records=13)
    assert client.upload(other, purpose="fine-tune", if_exists="reuse").id != first.id


def test_an_upload_with_if_exists_new_is_not_recorded(
    client: Client, make_jsonl: Callable[..., Path], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """v2: if_exists="new" reads the file once and computes no SHA-256, so it records nothing for a later reuse
    (v1 recorded the hash its separate check pass had computed)."""
    import hashlib

    hashed: list[str] = []
    original = hashlib.new

    def spy(name: str, *args: Any, **kw: Any) -> Any:
        hashed.append(name)
        return original(name, *args, **kw)

    monkeypatch.setattr(hashlib, "new", spy)
    path = make_jsonl()
    first = client.upload(path, purpose="fine-tune")
    assert "sha256" not in hashed
    assert not (home / "state.db").exists()
    second = client.upload(path, purpose="fine-tune", if_exists="reuse")
    assert second.id != first.id and len(files_in_store(home)) == 2
    assert client.upload(path, purpose="fine-tune", if_exists="reuse") == second


def test_error_refuses_a_second_copy(client: Client, make_jsonl: Callable[..., Path], home: Path) -> None:
    path = make_jsonl()
    first = client.upload(path, purpose="fine-tune", if_exists="reuse")
    with pytest.raises(AlreadyUploaded) as info:
        client.upload(path, purpose="fine-tune", if_exists="error")
    assert info.value.file == first and first.id in str(info.value) and "reuse" in str(info.value)
    assert info.value.exit_code == 2
    assert len(files_in_store(home)) == 1


def test_the_setting_comes_from_the_client_and_the_environment(make_jsonl: Callable[..., Path], home: Path) -> None:
    path = make_jsonl()
    Client("local", environ={}, home=str(home), if_exists="reuse").upload(path, purpose="fine-tune")
    assert Client("local", environ={}, home=str(home), if_exists="reuse").upload(path, purpose="fine-tune")
    env = Client("local", environ={"LLMFILES_IF_EXISTS": "error"}, home=str(home))
    with pytest.raises(AlreadyUploaded):
        env.upload(path, purpose="fine-tune")
    with pytest.raises(InvalidSetting, match="if_exists"):
        env.upload(path, purpose="fine-tune", if_exists="sometimes")


def test_a_file_gone_at_the_provider_is_uploaded_again(
    client: Client, make_jsonl: Callable[..., Path], home: Path
) -> None:
    path = make_jsonl()
    first = client.upload(path, purpose="fine-tune", if_exists="reuse")
    # deleted behind llmfiles' back: the record is found, the provider says it is gone, a new file is made
    (home / "local" / "files" / f"{first.id}.json").unlink()
    (home / "local" / "files" / f"{first.id}.data").unlink()
    second = client.upload(path, purpose="fine-tune", if_exists="reuse")
    assert second.id != first.id
    # deleted through llmfiles: forgotten at once
    client.delete(second.id)
    third = client.upload(path, purpose="fine-tune", if_exists="reuse")
    assert third.id not in (first.id, second.id)
    assert client.upload(path, purpose="fine-tune", if_exists="reuse") == third


def test_without_a_check_pass_the_file_is_hashed_only_for_if_exists(
    client: Client, tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "image.bin"
    path.write_bytes(os.urandom(100 * KiB))
    reads: list[tuple[int, int]] = []
    original = llmfiles.sources.PathSource.read_range

    def counting(self: Any, offset: int, length: int, blocksize: int) -> Any:
        reads.append((offset, length))
        return original(self, offset, length, blocksize)

    monkeypatch.setattr(llmfiles.sources.PathSource, "read_range", counting)
    first = client.upload(path, purpose="assistants")
    assert len(reads) == 1  # only the upload: no hash for if_exists="new"
    reads.clear()
    second = client.upload(path, purpose="assistants", if_exists="reuse")
    assert second.id != first.id  # the first upload had no hash to record
    assert len(reads) == 2  # the hash, then the upload
    reads.clear()
    assert client.upload(path, purpose="assistants", if_exists="reuse") == second
    assert len(reads) == 1  # the hash only: reused


def test_threads_uploading_the_same_file_with_reuse_make_one_file(
    client: Client, make_jsonl: Callable[..., Path], home: Path
) -> None:
    path = make_jsonl()
    ids: list[str] = []
    errors: list[BaseException] = []

    def go() -> None:
        try:
            ids.append(client.upload(path, purpose="fine-tune", if_exists="reuse").id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(ids)) == 1 and len(files_in_store(home)) == 1


def test_a_reused_training_file_is_not_deleted_when_the_validation_file_fails(
    client: Client, make_jsonl: Callable[..., Path], home: Path, tmp_path: Path
) -> None:
    train = make_jsonl()
    first = client.upload(train, purpose="fine-tune", if_exists="reuse")
    validation = make_jsonl("validation.jsonl", records=11)

    def broken(event: Progress) -> None:
        if event.filename == "validation.jsonl" and event.done:
            raise RuntimeError("the validation upload broke")

    with pytest.raises(RuntimeError) as info:
        client.upload_training_files(train, validation, if_exists="reuse", progress=broken)
    assert any("existed before" in n for n in info.value.__notes__)
    assert client.retrieve(first.id) == first


# --- the database itself --------------------------------------------------------------------------------------


def test_the_database_is_owner_only_and_never_holds_a_secret(
    client: Client, make_jsonl: Callable[..., Path], home: Path
) -> None:
    old = os.umask(0o022)
    try:
        client.upload(make_jsonl(), purpose="fine-tune", if_exists="reuse")
        db = home / "state.db"
        assert stat.S_IMODE(db.stat().st_mode) == 0o600
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        for extra in home.glob("state.db-*"):  # WAL and shared memory, while the database is open
            assert stat.S_IMODE(extra.stat().st_mode) & 0o077 == 0, extra
    finally:
        os.umask(old)


def test_an_existing_home_folder_is_not_changed(tmp_path: Path, make_jsonl: Callable[..., Path]) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    Client("local", environ={}, home=str(shared)).upload(make_jsonl(), purpose="fine-tune", if_exists="reuse")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755  # the user's folder: left as it is
    assert stat.S_IMODE((shared / "state.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((shared / "local").stat().st_mode) == 0o700


def test_the_account_fingerprint_is_a_hash_of_where_files_go_not_of_secrets() -> None:
    info = ProviderInfo(
        name="acme",
        package="acme",
        purposes=("fine-tune",),
        settings=(
            SettingSpec(name="api_key", kind="secret"),
            SettingSpec(name="api_base"),
            SettingSpec(name="credential", kind="object"),
            SettingSpec(name="model_for_checks", fingerprint=False),
        ),
    )

    def fp(**values: Any) -> str:
        base = {"api_key": Secret("sk-one"), "api_base": "https://a", "credential": object(), "model_for_checks": "x"}
        return account_fingerprint(info, Settings(provider="acme", values={**base, **values}))

    assert fp() == fp(api_key=Secret("sk-two"), credential=object(), model_for_checks="y", timeout=3)
    assert fp() != fp(api_base="https://b")
    assert "sk-one" not in fp() and len(fp()) == 32


def _hammer(path: str, worker: int, n: int) -> None:
    db = StateDB(Path(path))
    for i in range(n):
        db.record_upload(
            UploadedFile(
                sha256=f"{worker:02d}{i:062d}",
                provider="local",
                account="a",
                purpose="fine-tune",
                file_id=f"file-{worker}-{i}",
                filename="x",
                bytes=1,
                created_at=time.time(),
            )
        )
    db.close()


def test_several_processes_and_threads_write_at_once(tmp_path: Path) -> None:
    path = tmp_path / "home" / "state.db"
    StateDB(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(str(path), w, 100)) for w in range(4)]
    threads = [threading.Thread(target=_hammer, args=(str(path), 10 + w, 100)) for w in range(4)]
    for p in procs:
        p.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM uploaded").fetchone()[0] == 800


def test_a_session_a_live_process_holds_is_left_alone(
    client: Client, tmp_path: Path, home: Path, local_blob: Path
) -> None:
    def ctrl_c(event: Progress) -> None:
        if event.done > 100 * KiB:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        client.upload(local_blob, purpose="assistants", progress=ctrl_c, **LARGE)
    [left] = client.unfinished_uploads()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        with sqlite3.connect(home / "state.db") as conn:
            conn.execute("UPDATE sessions SET owner = ?", (f"{socket.gethostname()}:{sleeper.pid}:x",))
        [busy] = client.unfinished_uploads()
        assert busy["running"]
        # the same upload now: not continued (another process has it), done in a session of its own
        fo = client.upload(local_blob, purpose="assistants", **LARGE)
        assert client.download(fo.id, tmp_path / "out.bin").read_bytes() == local_blob.read_bytes()
        assert [u["id"] for u in client.unfinished_uploads()] == [left["id"]]
        with pytest.raises(llmfiles.InputError, match="running in another process"):
            client.abort_upload(left["id"])
    finally:
        sleeper.kill()
        sleeper.wait()
    # its owner is gone: the next run takes the session over and finishes it
    client.upload(local_blob, purpose="assistants", **LARGE)
    assert client.unfinished_uploads() == []


def test_a_database_that_cannot_be_written_does_not_stop_the_upload(
    tmp_path: Path, local_blob: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "state.db").mkdir()  # not a database: every use of it fails
    client = Client("local", environ={}, home=str(home))
    fo = client.upload(local_blob, purpose="assistants", **LARGE)
    assert client.download(fo.id, tmp_path / "out.bin").read_bytes() == local_blob.read_bytes()
    assert "cannot be resumed" in caplog.text


def test_journal_records_nothing_for_a_file_object(tmp_path: Path, local_blob: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    with open(local_blob, "rb") as fh:
        source = llmfiles.sources.open_source(fh)
        assert FileIdentity.of(source, None) is None
    ident = FileIdentity.of(llmfiles.sources.open_source(local_blob), None)
    assert ident is not None
    journal = Journal(db, provider="p", account="a", purpose="x", filename="f", identity=ident)
    assert journal.find() is None and not journal.active


@pytest.fixture
def local_blob(tmp_path: Path) -> Path:
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(MiB + 4321))
    return path


# --- the lost-answer check in the transport -------------------------------------------------------------------


def _create(server: FaultServer) -> HttpRequest:
    return HttpRequest(method="POST", url=server.url + "/create", body=b"x" * 1000)


def _policy(**kw: Any) -> Policy:
    return Policy(provider="p", max_retry_wait=0.01, clock=FakeClock(), **kw)


@pytest.mark.parametrize("found", [True, False])
def test_a_lost_answer_is_checked_before_the_request_is_sent_again(server: FaultServer, found: bool) -> None:
    server.script(respond(status=502, body=b"bad gateway"), respond(status=200, body=b"{}"))
    calls: list[str] = []

    def lost(why: str) -> str | None:
        calls.append(why)
        return "file-found" if found else None

    with _transport() as transport:
        sent = transport.send(_create(server), _policy(), lost=lost)
    assert calls == ["HTTP 502"]
    posts = [r for r in server.requests if r.method == "POST"]
    if found:
        assert len(posts) == 1 and sent.found == "file-found" and sent.found_by_probe
        assert sent.response is None and sent.attempts == 1
    else:
        assert len(posts) == 2 and sent.found is None and sent.attempts == 2
        assert sent.response is not None and sent.response.body == b"{}"


def test_a_rate_limit_is_not_a_lost_answer(server: FaultServer) -> None:
    server.script(respond(status=429, body=b"slow down"), respond(status=200, body=b"{}"))
    calls: list[str] = []
    with _transport() as transport:
        sent = transport.send(_create(server), _policy(), lost=calls.append)
    assert calls == [] and sent.attempts == 2


def test_when_the_check_fails_the_request_is_not_sent_again(server: FaultServer) -> None:
    server.script(respond(status=502, body=b"bad gateway"))

    def lost(why: str) -> None:
        raise ProviderError("the check answered 503", provider="p", status=503)

    with _transport() as transport, pytest.raises(AnswerLost, match="not sent again"):
        transport.send(_create(server), _policy(max_retries=1), lost=lost)
    assert len([r for r in server.requests if r.method == "POST"]) == 1


class _transport:
    def __enter__(self) -> Transport:
        self.t = Transport()
        return self.t

    def __exit__(self, *exc: object) -> None:
        self.t.close()


# --- the command line -----------------------------------------------------------------------------------------


@pytest.fixture
def run(home: Path, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMFILES_")}
    env["LLMFILES_HOME"] = str(home)
    others = sorted({ep.name for ep in entry_points(group="llmfiles")} - {"local"})
    if others:
        env["LLMFILES_DISABLE_PLUGINS"] = ",".join(others)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "llmfiles", *args],
            check=False,
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )

    return run


def test_cli_if_exists_uploads_and_abort(
    run: Callable[..., subprocess.CompletedProcess[str]], make_jsonl: Callable[..., Path], local_blob: Path, home: Path
) -> None:
    path = str(make_jsonl())
    first = json.loads(run("upload", path, "--if-exists", "reuse", "--json").stdout)
    again = json.loads(run("upload", path, "--if-exists", "reuse", "--json").stdout)
    assert again["id"] == first["id"]
    refused = run("upload", path, "--if-exists", "error")
    assert refused.returncode == 2 and first["id"] in refused.stderr

    assert run("uploads").stderr.strip() == "no unfinished uploads"
    assert json.loads(run("uploads", "--json").stdout) == []
    # leave an unfinished upload behind, as Ctrl-C would
    client = Client("local", environ={}, home=str(home))

    def ctrl_c(event: Progress) -> None:
        if event.done > 100 * KiB:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        client.upload(local_blob, purpose="assistants", progress=ctrl_c, **LARGE)
    client.close()
    listed = json.loads(run("uploads", "--json").stdout)
    assert len(listed) == 1 and listed[0]["file"] == str(local_blob) and listed[0]["bytes"] == local_blob.stat().st_size
    text = run("uploads").stdout
    assert listed[0]["id"] in text and str(local_blob) in text
    assert run("abort", "nosuch").returncode == 2
    done = run("abort", listed[0]["id"][:5], "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["aborted"] is True
    assert json.loads(run("uploads", "--json").stdout) == []
    assert list((home / "local" / "uploads").iterdir()) == []


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux's /proc to tell a zombie")
def test_a_killed_process_not_yet_reaped_holds_no_session() -> None:
    import signal

    from llmfiles.state import _HOST, _owner_alive

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = f"{_HOST}:{proc.pid}:token"
        assert _owner_alive(owner, time.time())
        os.kill(proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _owner_alive(owner, time.time()) and time.monotonic() < deadline:
            time.sleep(0.05)  # not reaped: only /proc tells it is gone
        assert not _owner_alive(owner, time.time())
    finally:
        proc.kill()
        proc.wait()
