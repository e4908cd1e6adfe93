"""The public API: what may be uploaded, what is refused and when, async twins, the JSON form, secret hygiene."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from echo import SECRET, answer, fo_json
from echo import echo_client as make_echo_client
from faultserver import FaultServer, respond

import llmfiles
import llmfiles.local
from llmfiles import Client
from llmfiles.clock import FakeClock
from llmfiles.converter import from_dict, to_dict
from llmfiles.errors import (
    AuthenticationError,
    BadFile,
    InvalidPurpose,
    ProviderError,
    ProviderNotInstalled,
    ValidationError,
)
from llmfiles.models import (
    Credentials,
    FileObject,
    HttpRequest,
    Problem,
    Progress,
    Secret,
    Settings,
    TrainingFiles,
)
from llmfiles.plugins import PluginManager

MiB = 1024 * 1024


@pytest.fixture
def client(tmp_path: Path) -> Client:
    return Client("local", environ={}, home=str(tmp_path / "home"))


@pytest.fixture
def train(make_jsonl: Any) -> Path:
    return make_jsonl("train.jsonl")  # type: ignore[no-any-return]


def stored(client: Client) -> list[FileObject]:
    return list(client.list_files())


# --- what can be uploaded ------------------------------------------------------------------------------------


def test_upload_a_str_path(client: Client, train: Path) -> None:
    fo = client.upload(str(train), purpose="fine-tune")
    assert fo.filename == "train.jsonl" and fo.bytes == train.stat().st_size and fo.provider == "local"


def test_upload_a_pathlib_path_with_another_name(client: Client, train: Path) -> None:
    fo = client.upload(train, purpose="fine-tune", filename="renamed.jsonl")
    assert fo.filename == "renamed.jsonl"


def test_upload_an_open_binary_file(client: Client, train: Path, tmp_path: Path) -> None:
    with open(train, "rb") as fh:
        fo = client.upload(fh, purpose="fine-tune")
    assert fo.filename == "train.jsonl"
    assert client.download(fo.id, tmp_path / "back.jsonl").read_bytes() == train.read_bytes()


def test_upload_bytesio_from_its_position(client: Client, train: Path, tmp_path: Path) -> None:
    data = train.read_bytes()
    buf = io.BytesIO(b"IGNORED" + data)
    buf.seek(7)
    fo = client.upload(buf, purpose="fine-tune")
    assert fo.filename == "upload.jsonl" and fo.bytes == len(data)
    assert client.download(fo.id, tmp_path / "back.jsonl").read_bytes() == data


def test_upload_bytesio_in_parts(client: Client, tmp_path: Path) -> None:
    data = os.urandom(MiB)
    fo = client.upload(io.BytesIO(data), purpose="assistants", multipart_threshold=65536, part_size=65536)
    assert fo.filename == "upload" and fo.bytes == len(data)
    assert client.download(fo.id, tmp_path / "back.bin").read_bytes() == data


def test_text_mode_files_are_refused(client: Client, train: Path) -> None:
    with open(train, encoding="utf-8") as fh, pytest.raises(BadFile) as info:
        client.upload(fh, purpose="fine-tune")
    assert "'rb'" in str(info.value)
    with pytest.raises(BadFile):
        client.upload(io.StringIO('{"a": 1}\n'), purpose="fine-tune")


def test_non_seekable_files_are_refused(client: Client) -> None:
    r, w = os.pipe()
    os.write(w, b'{"a": 1}\n')
    os.close(w)
    with open(r, "rb") as fh, pytest.raises(BadFile) as info:
        client.upload(fh, purpose="fine-tune")
    assert "not seekable" in str(info.value)


@pytest.mark.parametrize("kind", ["missing", "directory", "empty", "exhausted", "not-a-file"])
def test_bad_files_are_refused(client: Client, tmp_path: Path, kind: str) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    exhausted = io.BytesIO(b'{"a": 1}\n')
    exhausted.read()
    file: Any = {
        "missing": tmp_path / "nope.jsonl",
        "directory": tmp_path,
        "empty": empty,
        "exhausted": exhausted,
        "not-a-file": 12345,
    }[kind]
    with pytest.raises(BadFile):
        client.upload(file, purpose="fine-tune")
    assert stored(client) == []


def test_invalid_jsonl_is_refused_before_sending(client: Client, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"ok": 1}\n[1, 2]\nnot json\n')
    with pytest.raises(ValidationError) as info:
        client.upload(bad, purpose="fine-tune")
    assert [p.line for p in info.value.problems] == [2, 3]
    assert stored(client) == []
    # the same file goes up when checks are off, or for a purpose without JSONL rules
    assert client.upload(bad, purpose="fine-tune", validate=False).bytes == bad.stat().st_size
    assert client.upload(bad, purpose="assistants").bytes == bad.stat().st_size


# --- refused before the file is opened -----------------------------------------------------------------------


@pytest.mark.parametrize("purpose", ["nope", "Fine-Tune", "", None])
def test_purpose_is_checked_before_the_file(client: Client, tmp_path: Path, purpose: Any) -> None:
    with pytest.raises(InvalidPurpose) as info:
        client.upload(tmp_path / "does-not-exist.jsonl", purpose=purpose)
    for accepted in llmfiles.local.PURPOSES:
        assert accepted in str(info.value)
    assert info.value.exit_code == 2


def test_unknown_provider_names_the_package_to_install(train: Path) -> None:
    pm = PluginManager(load_entry_points=False, environ={})
    pm.register(llmfiles.local, name="local")
    client = Client(plugin_manager=pm, environ={})
    with pytest.raises(ProviderNotInstalled) as info:
        client.upload(train, purpose="fine-tune", provider="openai")
    assert "pip install llmfiles-openai" in str(info.value)
    assert "local" in str(info.value)  # what is installed
    with pytest.raises(ProviderNotInstalled) as info:
        client.upload(train, purpose="fine-tune", provider="acme")
    assert "entry point" in str(info.value) and "pip install" not in str(info.value)


def test_default_provider_comes_from_the_environment(tmp_path: Path, train: Path) -> None:
    client = Client(environ={"LLMFILES_PROVIDER": "nosuch"}, home=str(tmp_path))
    with pytest.raises(ProviderNotInstalled):
        client.upload(train, purpose="fine-tune")
    assert Client(environ={}, home=str(tmp_path)).upload(train, purpose="fine-tune").provider == "local"


# --- training + validation -----------------------------------------------------------------------------------


def test_upload_training_files_returns_both(client: Client, make_jsonl: Any) -> None:
    result = client.upload_training_files(make_jsonl("t.jsonl"), make_jsonl("v.jsonl", records=5))
    assert isinstance(result, TrainingFiles)
    assert result.training.filename == "t.jsonl" and result.validation is not None
    assert result.validation.filename == "v.jsonl"
    assert {f.id for f in stored(client)} == {result.training.id, result.validation.id}
    only = client.upload_training_files(make_jsonl("t2.jsonl"))
    assert only.validation is None


def test_both_files_are_checked_before_either_is_sent(client: Client, make_jsonl: Any, tmp_path: Path) -> None:
    bad = tmp_path / "v.jsonl"
    bad.write_bytes(b'{"a": 1}\n\n')
    with pytest.raises(ValidationError):
        client.upload_training_files(make_jsonl("t.jsonl"), bad)
    assert stored(client) == []


@pytest.mark.parametrize("keep", [False, True])
def test_a_failed_validation_upload_removes_the_training_file(client: Client, make_jsonl: Any, keep: bool) -> None:
    class Boom(Exception):
        pass

    def progress(event: Progress) -> None:
        if event.filename == "v.jsonl" and event.done > 0:
            raise Boom

    with pytest.raises(Boom) as info:
        client.upload_training_files(
            make_jsonl("t.jsonl"), make_jsonl("v.jsonl"), progress=progress, keep_on_error=keep
        )
    notes = " ".join(getattr(info.value, "__notes__", ()))
    left = stored(client)
    if keep:
        assert [f.filename for f in left] == ["t.jsonl"] and "kept" in notes
    else:
        assert left == [] and "deleted again" in notes


def test_module_level_functions_use_the_environment(llmfiles_home: Path, train: Path, tmp_path: Path) -> None:
    fo = llmfiles.upload(train, purpose="fine-tune", provider="local")
    assert (llmfiles_home / "local" / "files" / f"{fo.id}.data").exists()
    assert llmfiles.retrieve(fo.id, provider="local") == fo
    assert fo.id in {f.id for f in llmfiles.list_files(provider="local")}
    assert llmfiles.download(fo.id, tmp_path / "x.jsonl", provider="local").read_bytes() == train.read_bytes()
    assert llmfiles.delete(fo.id, provider="local") is True


# --- async ---------------------------------------------------------------------------------------------------

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


@pytest.mark.parametrize("large", [False, True], ids=["single", "parts"])
def test_async_upload_runs_with_the_callers_context(client: Client, tmp_path: Path, large: bool) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(MiB if large else 1000))
    seen: set[str] = set()

    async def go() -> FileObject:
        request_id.set("req-42")
        return await client.aupload(
            path,
            purpose="assistants",
            progress=lambda e: seen.add(request_id.get()),
            multipart_threshold=65536,
            part_size=65536,
            max_concurrency=4,
        )

    fo = asyncio.run(go())
    assert fo.bytes == path.stat().st_size
    assert seen == {"req-42"}


def test_sync_parts_upload_progress_runs_with_the_callers_context(client: Client, tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(MiB))
    seen: set[str] = set()
    token = request_id.set("sync-7")
    try:
        client.upload(
            path,
            purpose="assistants",
            progress=lambda e: seen.add(request_id.get()),
            multipart_threshold=65536,
            part_size=65536,
            max_concurrency=4,
        )
    finally:
        request_id.reset(token)
    assert seen == {"sync-7"}


def test_aupload_under_gather(client: Client, make_jsonl: Any, tmp_path: Path) -> None:
    paths = [make_jsonl(f"g{i}.jsonl", records=5 + i) for i in range(6)]

    async def go() -> list[FileObject]:
        return list(await asyncio.gather(*(client.aupload(p, purpose="fine-tune") for p in paths)))

    results = asyncio.run(go())
    assert [r.filename for r in results] == [p.name for p in paths]
    assert [r.bytes for r in results] == [p.stat().st_size for p in paths]
    assert len({r.id for r in results}) == 6
    assert {f.id for f in stored(client)} == {r.id for r in results}


def test_async_twins(client: Client, train: Path, tmp_path: Path) -> None:
    async def go() -> None:
        both = await client.aupload_training_files(train, train)
        fo = both.training
        assert (await client.aretrieve(fo.id)) == fo
        ids = [f.id async for f in client.alist_files(page_size=1)]
        assert sorted(ids) == sorted([fo.id, both.validation.id])  # type: ignore[union-attr]
        out = await client.adownload(fo.id, tmp_path / "a.jsonl")
        assert out.read_bytes() == train.read_bytes()
        assert await client.adelete(fo.id) is True

    asyncio.run(go())


def test_module_level_async_functions(llmfiles_home: Path, train: Path) -> None:
    async def go() -> None:
        fo = await llmfiles.aupload(train, purpose="fine-tune", provider="local")
        assert (await llmfiles.aretrieve(fo.id, provider="local")).id == fo.id
        assert fo.id in [f.id async for f in llmfiles.alist_files(provider="local")]
        assert await llmfiles.adelete(fo.id, provider="local")

    asyncio.run(go())


# --- the JSON form and equality ------------------------------------------------------------------------------


def file_object(**over: Any) -> FileObject:
    fields: dict[str, Any] = dict(
        id="file-1",
        provider="local",
        filename="t.jsonl",
        purpose="fine-tune",
        bytes=10,
        created_at=1700000000,
        status="processed",
        raw={"secret_field": "provider internals"},
    )
    fields.update(over)
    return FileObject(**fields)


def test_file_object_json_omits_raw_and_round_trips() -> None:
    fo = file_object(expires_at=1800000000, status_details="fine", checksums={"md5": "0" * 32})
    data = to_dict(fo)
    assert "raw" not in data
    assert data == {
        "id": "file-1",
        "provider": "local",
        "filename": "t.jsonl",
        "purpose": "fine-tune",
        "bytes": 10,
        "created_at": 1700000000,
        "status": "processed",
        "object": "file",
        "expires_at": 1800000000,
        "status_details": "fine",
        "checksums": {"md5": "0" * 32},  # v2: what the provider reports for the stored bytes
    }
    back = from_dict(json.loads(json.dumps(data)), FileObject)
    assert back == fo and back.raw == {} and back.checksums == {"md5": "0" * 32}


def test_file_object_equality_and_repr_ignore_raw() -> None:
    a, b = file_object(raw={"x": 1}), file_object(raw={"y": 2})
    assert a == b and hash(a) == hash(b)
    assert "provider internals" not in repr(file_object())
    assert a != file_object(bytes=11)


def test_other_models_to_json() -> None:
    tf = TrainingFiles(training=file_object())
    assert to_dict(tf)["validation"] is None and "raw" not in to_dict(tf)["training"]
    assert to_dict(Problem(line=3, code="blank_line", message="m")) == {
        "line": 3,
        "code": "blank_line",
        "message": "m",
        "severity": "error",
        "path": "",
    }


def test_reprs_never_show_secrets() -> None:
    secret = Secret(SECRET)
    assert SECRET not in repr(secret) and SECRET not in str(secret) and secret.reveal() == SECRET
    assert SECRET not in f"{secret}" and SECRET not in repr([secret])
    creds = Credentials(kind="api_key", source="env X", secret=secret, headers={"Authorization": f"Bearer {SECRET}"})
    assert SECRET not in repr(creds) and "env X" in repr(creds)
    req = HttpRequest(method="POST", url="https://h/", headers={"api-key": SECRET, "Authorization": SECRET}, body=b"")
    assert SECRET not in repr(req)
    settings = Settings(provider="p", values={"api_key": secret, "plain": SECRET}, sources={"api_key": "env X"})
    assert SECRET not in repr(settings)
    client = make_echo_client("http://127.0.0.1:9", api_key=SECRET)
    assert SECRET not in repr(client)


# --- secrets in provider errors ------------------------------------------------------------------------------


@pytest.fixture
def echo_client(server: FaultServer) -> Client:
    return make_echo_client(server.url, clock=FakeClock())


@pytest.mark.parametrize("status", [400, 401, 404])
def test_secrets_quoted_by_the_provider_are_redacted(echo_client: Client, server: FaultServer, status: int) -> None:
    server.script(respond(status, error=f"the key {SECRET} is not valid here"))
    with pytest.raises(ProviderError) as info:
        echo_client.retrieve("file-1")
    exc = info.value
    assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    assert exc.status == status
    if status == 401:
        assert isinstance(exc, AuthenticationError) and "env ECHO_API_KEY" in str(exc)
    for text in (str(exc), repr(exc), exc.message, *getattr(exc, "__notes__", ())):
        assert SECRET not in text
    assert "***" in str(exc)


def test_secrets_in_unreadable_answers_are_redacted(echo_client: Client, server: FaultServer) -> None:
    server.script(respond(200, body=f"<html>{SECRET}</html>".encode()))
    with pytest.raises(ProviderError) as info:
        echo_client.retrieve("file-1")
    assert SECRET not in str(info.value)
    assert "could not read" in str(info.value)


def test_secrets_in_unreadable_error_answers_are_redacted(echo_client: Client, server: FaultServer) -> None:
    server.script(respond(502, body=f"<html>bad gateway {SECRET}</html>".encode()))
    with pytest.raises(ProviderError) as info:
        echo_client.retrieve("file-1", max_retries=0)
    # the error reader could not read it: the body is the message, redacted
    assert info.value.status == 502 and "bad gateway ***" in str(info.value)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("mode", "needle"), [("explode", "RuntimeError"), ("decline", "NoneType"), ("wrong-type", "dict")]
)
def test_plugin_bugs_become_plugin_errors(echo_client: Client, server: FaultServer, mode: str, needle: str) -> None:
    from llmfiles.errors import PluginError

    with pytest.raises(PluginError) as info:
        echo_client.retrieve("file-1", mode=mode)
    assert needle in str(info.value) and "'echo'" in str(info.value)
    assert SECRET not in str(info.value)
    assert server.requests == []


def test_upload_over_http_sends_an_exact_multipart_body(
    echo_client: Client, server: FaultServer, tmp_path: Path
) -> None:
    import email.parser
    import email.policy

    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(300_000))
    server.script(answer(fo_json(bytes=300_000)))
    fo = echo_client.upload(path, purpose="assistants")
    assert fo.provider == "echo" and fo.bytes == 300_000
    (req,) = server.requests
    assert req.complete and int(req.headers["content-length"]) == len(req.body)
    head = f"Content-Type: {req.headers['content-type']}\r\n\r\n".encode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + bytes(req.body))
    purpose, file = msg.iter_parts()  # type: ignore[attr-defined]
    assert purpose.get_payload(decode=True) == b"assistants"
    assert file.get_filename() == "data.bin"
    assert file.get_payload(decode=True) == path.read_bytes()


def test_wait_polls_until_processed(echo_client: Client, server: FaultServer, tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"abc")
    server.script(answer(fo_json("uploaded")), answer(fo_json("processed")))
    fo = echo_client.upload(path, purpose="assistants", wait=True)
    assert fo.status == "processed"
    assert [(r.method, r.path) for r in server.requests] == [("POST", "/files"), ("GET", "/files/file-9")]


def test_wait_reports_a_processing_error(echo_client: Client, server: FaultServer, tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"abc")
    server.script(answer(fo_json("error", status_details="bad rows")))
    with pytest.raises(ProviderError) as info:
        echo_client.upload(path, purpose="assistants", wait=True)
    assert info.value.code == "processing_error" and "bad rows" in str(info.value)


def test_wait_gives_up_after_wait_timeout(echo_client: Client, server: FaultServer, tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"abc")
    server.script(answer(fo_json("pending")))
    server.default = answer(fo_json("pending"))
    with pytest.raises(ProviderError) as info:
        echo_client.upload(path, purpose="assistants", wait=True, wait_timeout=30)
    assert "still 'pending'" in str(info.value)
    # polled with a backoff from 0.5 s to 10 s on the client's clock, within the wait timeout
    gets = [r for r in server.requests if r.method == "GET"]
    assert 3 <= len(gets) <= 6


def test_an_error_after_retries_says_how_many_attempts_it_took(echo_client: Client, server: FaultServer) -> None:
    server.default = respond(503, error="overloaded")
    with pytest.raises(ProviderError) as info:
        echo_client.retrieve("file-1", max_retries=2)
    assert info.value.status == 503 and info.value.code == "echoed" and "overloaded" in str(info.value)
    assert "llmfiles: gave up after 3 attempts" in info.value.__notes__
    assert len(server.requests) == 3
    server.script(respond(404, error="no such file"))
    with pytest.raises(llmfiles.FileNotFound) as missing:  # a 404 about the file asked for
        echo_client.retrieve("file-1")
    assert not getattr(missing.value, "__notes__", None)


def test_the_client_tells_on_retry_and_sleeps_on_its_clock(server: FaultServer) -> None:
    from llmfiles.transport import RetryNotice

    clock = FakeClock()
    notices: list[RetryNotice] = []
    client = make_echo_client(server.url, clock=clock, on_retry=notices.append)
    server.script(respond(503, headers={"Retry-After": "4"}, error="busy"), respond(500, error="oops"))
    server.default = answer(fo_json())
    assert client.retrieve("file-9").id == "file-9"
    assert [(n.attempt, n.attempts, n.reason) for n in notices] == [(2, 6, "HTTP 503"), (3, 6, "HTTP 500")]
    assert clock.sleeps[0] == 4.0 and [n.wait for n in notices] == clock.sleeps
    assert all(n.request == f"GET {server.url}/files/file-9" for n in notices)


def test_the_deadline_setting_stops_before_a_wait_that_would_pass_it(server: FaultServer) -> None:
    from llmfiles.errors import DeadlineExceeded

    clock = FakeClock()
    client = make_echo_client(server.url, clock=clock)
    server.default = respond(429, headers={"Retry-After": "30"}, error="slow down")
    with pytest.raises(DeadlineExceeded, match="deadline"):
        client.retrieve("file-9", deadline=10)
    assert clock.sleeps == [] and len(server.requests) == 1
    with pytest.raises(ProviderError) as info:  # without a deadline: waits (capped), retries, gives up
        client.retrieve("file-9", max_retries=2, max_retry_wait=5)
    assert info.value.status == 429 and clock.sleeps == [5.0, 5.0]
