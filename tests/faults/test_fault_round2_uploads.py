"""Round 2 of the adversarial review, uploads: a lost answer must never return an older file (2), ``if_exists`` must
hold across processes (5), a file cut short while it is sent is the user's file, not the network (6), and a ``200``
whose body cannot be read is a lost answer (8).

2. Upload a file, edit it keeping its size, upload it again through a gateway that answers the create with a 502
   without forwarding it: the probe found the older file (same name and size) and returned it, and the new content
   was never uploaded.
5. Several processes uploading one file with ``--if-exists error`` (or ``reuse``) and one ``LLMFILES_HOME`` all
   uploaded it.
6. A file truncated during an upload was reported as a network failure and retried six times.
8. A ``200`` whose body is not JSON on a create was an error although the server stored the file; the rerun made a
   second one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from faultlib import Harness, OpenAIHarness, chat_file, cli_env

import llmfiles
import llmfiles.local
import llmfiles.models
from llmfiles.errors import LLMFilesError
from llmfiles.models import Progress
from servers.fault_proxy import ReplaceResponse, Respond, Stall

# --- 2: a lost answer never returns an older file ------------------------------------------------------------------


def edit_keeping_size(path: Path) -> bytes:
    """Change the file's content, not its size or name."""
    data = path.read_bytes()
    at = data.index(b"question 0")
    edited = data[:at] + b"QUESTION 0" + data[at + len(b"question 0") :]
    assert len(edited) == len(data) and edited != data
    path.write_bytes(edited)
    return edited


def upload_edited_through_a_gateway(h: Harness, path: Path, age: int = 0) -> tuple[llmfiles.FileObject, bytes]:
    """Upload ``path``, make that file ``age`` seconds older (OpenAI's test server), edit ``path`` keeping its size,
    and upload it again through a gateway that answers the create with a 502 without forwarding it; the first file
    and the edited bytes (the second upload is left to the caller: ``h.proxy`` holds the rule)."""
    with h.client() as client:
        older = client.upload(path, purpose="fine-tune")
    if age and isinstance(h, OpenAIHarness):
        h.server.files[older.id].created_at -= age
    edited = edit_keeping_size(path)
    h.proxy.add_rule(h.is_upload, Respond(502, {"Content-Type": "text/html"}, b"<h1>502</h1>"))
    return older, edited


def assert_new_content_uploaded(
    h: Harness, older: llmfiles.FileObject, newer: llmfiles.FileObject, edited: bytes
) -> None:
    assert newer.id != older.id
    stored = h.stored()
    assert stored[newer.id] == h.expected(edited)
    assert set(stored) == {older.id, newer.id}


@pytest.mark.parametrize("harness", ["openai", "azure"], indirect=True)  # only their test server can age a file
def test_a_lost_answer_never_returns_an_older_file_of_the_same_name_and_size(harness: Harness, tmp_path: Path) -> None:
    """The gateway answers the second create with a 502 and never forwards it.  The older file (a minute old) was
    made before the request started: it is not what the lost create made; the new content is uploaded."""
    path = chat_file(tmp_path / "train.jsonl", min_bytes=20_000)
    older, edited = upload_edited_through_a_gateway(harness, path, age=60)
    with harness.client() as client:
        newer = client.upload(path, purpose="fine-tune")
    assert_new_content_uploaded(harness, older, newer, edited)


def test_a_lost_answer_never_takes_a_file_of_the_same_name_and_size_it_cannot_tell_apart(
    harness: Harness, tmp_path: Path
) -> None:
    """The same, with the older file made a moment earlier (within the clock tolerance): a name unique to each
    upload, or a checksum the provider reports, tells it apart (the new content is uploaded); where nothing can
    (OpenAI, Azure) the upload stops with MaybeUploaded naming it.  Never is the older file returned as if it held
    the new content."""
    path = chat_file(tmp_path / "train.jsonl", min_bytes=20_000)
    older, edited = upload_edited_through_a_gateway(harness, path)
    with harness.client() as client:
        try:
            newer = client.upload(path, purpose="fine-tune")
        except LLMFilesError as exc:
            assert type(exc).__name__ == "MaybeUploaded", repr(exc)
            assert not harness.tells_lost_answers
            assert f"may already be uploaded as {older.id}" in str(exc)
            assert set(harness.stored()) == {older.id}  # and nothing was sent again
            return
    assert_new_content_uploaded(harness, older, newer, edited)


def test_a_lost_answer_never_returns_an_older_file_of_the_local_store(tmp_path: Path) -> None:
    """The local store reports the MD5 of what it stored: a file of the same name and size but other bytes is not
    the one a lost create made."""
    path = tmp_path / "notes.txt"
    path.write_bytes(b"version 1\n" * 100)
    with llmfiles.Client("local") as client:
        older = client.upload(path, purpose="assistants")
        edited = b"version 2\n" * 100
        path.write_bytes(edited)
        real = llmfiles.local.handle_local_request
        answered = [0]

        def gateway_502_once(request: Any, body: Any, sink: Any) -> Any:
            if request.method == "POST" and "/files?" in request.url and not answered[0]:
                answered[0] += 1
                for _ in body:  # the request was read, never acted on
                    pass
                return llmfiles.models.HttpResponse(status=502, body=b"bad gateway", url="local:")
            return real(request, body, sink)

        llmfiles.local.handle_local_request = gateway_502_once
        try:
            newer = client.upload(path, purpose="assistants")
        finally:
            llmfiles.local.handle_local_request = real
        assert newer.id != older.id
        out = client.download(newer.id, tmp_path / "out.txt")
    assert out.read_bytes() == edited


# --- 5: if_exists holds across processes ---------------------------------------------------------------------------

RACE = """
import os, sys, time
go = sys.argv[1]
while not os.path.exists(go):
    time.sleep(0.01)
from llmfiles.cli import main
sys.exit(main(sys.argv[2:]))
"""


def race(h: Harness, n: int, args: list[str], tmp_path: Path) -> list[subprocess.CompletedProcess[str]]:
    """Start ``n`` processes running ``llmfiles ARGS`` (one ``LLMFILES_HOME``), and let them go at once."""
    go = tmp_path / "go"
    env = {**cli_env(h), "LLMFILES_TIMEOUT": "60"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(go), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    time.sleep(1.0)  # (not needed for correctness: the processes have imported llmfiles by now, most likely)
    go.touch()
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        out.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    return out


@pytest.mark.parametrize(("mode", "n"), [("error", 3), ("reuse", 8)])
@pytest.mark.parametrize("harness", ["openai"], indirect=True)  # the lock is the core's
def test_if_exists_holds_across_processes(harness: Harness, tmp_path: Path, mode: str, n: int) -> None:
    """Every create takes a second (the proxy holds its answer back), so processes that did not wait for each other
    would each find nothing and each upload: exactly one file must be made."""
    path = chat_file(tmp_path / "train.jsonl", min_bytes=20_000)
    harness.proxy.add_rule(harness.is_upload, Stall(1.0, forward=True), times=n)
    done = race(harness, n, ["upload", str(path), "--provider", "openai", "--if-exists", mode, "--json"], tmp_path)
    assert len(harness.stored()) == 1, f"{len(harness.stored())} files for {n} processes"
    (only,) = harness.stored()
    codes = sorted(d.returncode for d in done)
    if mode == "error":
        assert codes == [0] + [2] * (n - 1), [d.stderr for d in done]
        # under --json the error is one JSON object on stdout, naming the file already there
        refused = [json.loads(d.stdout)["error"] for d in done if d.returncode == 2]
        assert all(e["type"] == "AlreadyUploaded" and e["file"]["id"] == only and only in e["message"] for e in refused)
    else:
        assert codes == [0] * n, [d.stderr for d in done]
        assert {json.loads(d.stdout)["id"] for d in done} == {only}


HOLDER = """
import sys
import llmfiles
with llmfiles.Client("openai", api_base=sys.argv[1], api_key=sys.argv[2], timeout=600) as client:
    client.upload(sys.argv[3], purpose="fine-tune", if_exists="reuse")
"""


@pytest.mark.parametrize("harness", ["openai"], indirect=True)
def test_the_lock_of_a_process_that_died_is_taken_over(harness: Harness, tmp_path: Path) -> None:
    """A process holding the lock is killed (-9) while its create hangs; the next upload of the same content takes
    the lock over instead of waiting for ever, and makes the one file."""
    path = chat_file(tmp_path / "train.jsonl", min_bytes=20_000)
    harness.proxy.add_rule(harness.is_upload, Stall(120))  # never forwarded: the server gets nothing
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, harness.settings["api_base"], harness.settings["api_key"], str(path)],
        env=dict(os.environ),
    )
    try:
        deadline = time.monotonic() + 60
        while not harness.requests(harness.is_upload):
            assert holder.poll() is None and time.monotonic() < deadline, "the holder never sent its upload"
            time.sleep(0.05)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
    with harness.client() as client:
        fo = client.upload(path, purpose="fine-tune", if_exists="reuse", deadline=60)
    assert set(harness.stored()) == {fo.id}


# --- 6: a file cut short while it is sent ------------------------------------------------------------------------


@pytest.mark.parametrize("large", [False, True], ids=["one request", "parts"])
def test_a_file_truncated_during_the_upload_is_the_files_fault_not_the_networks(
    harness: Harness, tmp_path: Path, large: bool
) -> None:
    """Cut to a third of its size once the first MiB is sent: FileChanged at once, no retry, nothing committed."""
    size = max(3 * 1024 * 1024, harness.large_bytes) if large else 3 * 1024 * 1024
    path = chat_file(tmp_path / "train.jsonl", min_bytes=size)
    cut = [False]

    def truncate(event: Progress) -> None:
        if event.done >= 1024 * 1024 and not cut[0]:
            cut[0] = True
            os.truncate(path, path.stat().st_size // 3)

    settings: dict[str, Any] = {**harness.large, "max_concurrency": 1} if large else {}
    with harness.client() as client, pytest.raises(LLMFilesError) as info:
        client.upload(path, purpose="fine-tune", progress=truncate, **settings)
    assert cut[0]
    assert type(info.value).__name__ == "FileChanged", repr(info.value)
    assert "changed" in str(info.value) or "shrank" in str(info.value)
    harness.proxy.settle()
    if large:
        assert len(harness.requests(harness.is_start)) == 1
        assert not harness.requests(harness.is_complete)
        assert harness.unfinished_sessions() in (0, None)
    else:
        assert len(harness.requests(harness.is_upload)) == 1, [r.action for r in harness.requests(harness.is_upload)]
    assert harness.stored() == {}


# --- 8: a 2xx that cannot be read is a lost answer ---------------------------------------------------------------


def test_an_unreadable_200_to_a_create_does_not_lead_to_a_second_file(harness: Harness, tmp_path: Path) -> None:
    """The server stored the file; the answer is an HTML page.  The upload returns the stored file, or (OpenAI,
    Azure: nothing tells it from another of the same name and size) stops with MaybeUploaded naming it, so that a
    rerun is not needed to have the file, and nothing is sent twice."""
    path = chat_file(tmp_path / "train.jsonl", min_bytes=20_000)
    harness.proxy.add_rule(
        harness.is_upload, ReplaceResponse(200, {"Content-Type": "text/html"}, b"<html>captive portal</html>")
    )
    with harness.client() as client:
        try:
            fo = client.upload(path, purpose="fine-tune")
        except LLMFilesError as exc:
            assert type(exc).__name__ == "MaybeUploaded", repr(exc)
            (stored,) = harness.stored()
            assert f"may already be uploaded as {stored}" in str(exc)
            named = stored
        else:
            named = fo.id
    assert set(harness.stored()) == {named}
    assert harness.stored()[named] == harness.expected(path.read_bytes())
    assert len(harness.requests(harness.is_upload)) == 1
