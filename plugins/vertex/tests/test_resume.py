"""Resumable uploads that break on the way: our fault proxy cuts connections, loses answers and keeps less than
was sent between the client and gcp-storage-emulator; the upload asks the session how far it got
(``Content-Range: bytes */N``), continues from there — never from the start — and lands the exact bytes.  Across
runs too: after ``kill -9`` or Ctrl-C, running the same upload again continues the recorded session from the offset
Cloud Storage reports; a file changed in between, or a session Cloud Storage no longer has, starts a new one."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vertex_testlib import BUCKET, chat_file, expected_conversion

import llmfiles
from llmfiles.errors import UploadFailed
from llmfiles.models import Progress
from servers.fault_proxy import (
    DropAfter,
    DropResponse,
    FaultProxy,
    ForwardTruncated,
    ProxyRequest,
    ReplayDropped,
    Respond,
    Stall,
)

KiB = 1024
CHUNK = 256 * KiB
LARGE = {"multipart_threshold": CHUNK, "part_size": CHUNK}


@pytest.fixture
def client(vertex_settings: dict[str, Any]) -> Iterator[llmfiles.Client]:
    c = llmfiles.Client("vertex_ai", **vertex_settings)
    yield c
    c.close()


@pytest.fixture
def big(tmp_path: Path) -> Path:
    path = chat_file(tmp_path / "big.jsonl", records=6000)  # about 1 MiB: four or five chunks
    assert path.stat().st_size > 4 * CHUNK
    return path


def is_chunk(r: ProxyRequest) -> bool:
    cr = r.header("content-range") or ""
    return r.method == "PUT" and "upload_id" in r.query and not cr.startswith("bytes */")


def is_query(r: ProxyRequest) -> bool:
    return r.method == "PUT" and (r.header("content-range") or "").startswith("bytes */")


def sessions(proxy: FaultProxy) -> list[ProxyRequest]:
    return [r for r in proxy.requests if r.method == "POST" and r.query.get("uploadType") == ["resumable"]]


def span(r: ProxyRequest) -> tuple[int, int]:
    cr = r.header("content-range") or ""
    first, last = cr.removeprefix("bytes ").split("/")[0].split("-")
    return int(first), int(last)


def body_length(r: ProxyRequest) -> int:
    return int(r.headers["x-proxy-body-length"])


def assert_landed(client: llmfiles.Client, fo: llmfiles.FileObject, expected: bytes, tmp_path: Path) -> None:
    out = client.download(fo.id, tmp_path / "landed.jsonl")
    assert out.read_bytes() == expected
    assert fo.bytes == len(expected)
    assert fo.raw["md5Hash"] and hashlib.md5(expected).digest().hex() == gemini_md5_hex(fo.raw["md5Hash"])


def gemini_md5_hex(b64: str) -> str:
    import base64

    return base64.b64decode(b64).hex()


def test_a_connection_dropped_mid_chunk_resumes_where_the_session_got_to(
    client: llmfiles.Client, proxy: FaultProxy, big: Path, tmp_path: Path
) -> None:
    size = big.stat().st_size
    proxy.add_rule(is_chunk, DropAfter(100_000), skip=1)  # the second chunk dies after 100,000 bytes
    fo = client.upload(big, purpose="fine-tune", **LARGE)

    assert len(sessions(proxy)) == 1  # the same session all along: nothing started over
    chunks = [r for r in proxy.requests if is_chunk(r)]
    dropped = chunks[1]
    assert dropped.action == "drop after 100000 body bytes" and span(dropped)[0] == CHUNK
    after = proxy.requests[proxy.requests.index(dropped) + 1]
    assert is_query(after) and after.header("content-range") == f"bytes */{size}"
    assert after.header("authorization") is None and body_length(after) == 0
    # the emulator kept the 100,000 bytes that arrived; the next chunk starts right after them
    resumed = chunks[2]
    assert span(resumed)[0] == CHUNK + 100_000
    assert body_length(resumed) == CHUNK  # still a multiple of 256 KiB
    # every byte of the file reached the server exactly once
    assert sum(body_length(r) for r in chunks) == size
    assert_landed(client, fo, big.read_bytes(), tmp_path)


def test_the_final_answer_lost_is_found_by_asking_the_session(
    client: llmfiles.Client, proxy: FaultProxy, big: Path, tmp_path: Path
) -> None:
    size = big.stat().st_size
    proxy.add_rule(lambda r: is_chunk(r) and span(r)[1] == size - 1, DropResponse())
    # Cloud Storage answers the status query of a finished session with the object; the emulator forgets the
    # session (404), so the proxy gives the withheld answer, as Cloud Storage would
    proxy.add_rule(is_query, ReplayDropped())
    fo = client.upload(big, purpose="fine-tune", **LARGE)
    last = [r for r in proxy.requests if is_chunk(r) and span(r)[1] == size - 1]
    assert len(last) == 1 and last[0].action == "drop response"  # the last chunk was not sent again
    assert is_query(proxy.requests[-1]) and proxy.requests[-1].action == "replay dropped response"
    assert_landed(client, fo, big.read_bytes(), tmp_path)


def test_a_lost_308_does_not_resend_the_chunk(
    client: llmfiles.Client, proxy: FaultProxy, big: Path, tmp_path: Path
) -> None:
    proxy.add_rule(is_chunk, DropResponse(), skip=2)
    fo = client.upload(big, purpose="fine-tune", **LARGE)
    starts = [span(r)[0] for r in proxy.requests if is_chunk(r)]
    assert starts == sorted(set(starts))  # every chunk went once, in order
    assert starts[3] == 3 * CHUNK
    assert sum(1 for r in proxy.requests if is_query(r)) == 1
    assert_landed(client, fo, big.read_bytes(), tmp_path)


def test_a_server_that_kept_less_than_was_sent_gets_the_rest(
    client: llmfiles.Client, proxy: FaultProxy, big: Path, tmp_path: Path
) -> None:
    proxy.add_rule(is_chunk, ForwardTruncated(70_000), skip=1)
    fo = client.upload(big, purpose="fine-tune", **LARGE)
    chunks = [r for r in proxy.requests if is_chunk(r)]
    assert chunks[1].action == f"forward 70000 of {CHUNK} body bytes"
    assert span(chunks[2])[0] == CHUNK + 70_000  # continued from the 308's Range, not from the next chunk
    assert not any(is_query(r) for r in proxy.requests)  # a 308 says it all: no status query needed
    assert_landed(client, fo, big.read_bytes(), tmp_path)


def test_a_session_that_keeps_nothing_more_is_given_up(client: llmfiles.Client, proxy: FaultProxy, big: Path) -> None:
    proxy.add_rule(is_chunk, ForwardTruncated(0), skip=1, times=50)
    with pytest.raises(UploadFailed, match="kept no more"):
        client.upload(big, purpose="fine-tune", **LARGE)
    assert sum(1 for r in proxy.requests if is_chunk(r)) == 1 + 5


def test_a_converted_upload_resumes_too(client: llmfiles.Client, proxy: FaultProxy, big: Path, tmp_path: Path) -> None:
    expected = expected_conversion(big.read_bytes())
    proxy.add_rule(is_chunk, DropAfter(123_457), skip=2)
    fo = client.upload(big, purpose="fine-tune", convert="gemini", **LARGE)
    assert len(sessions(proxy)) == 1 and sum(1 for r in proxy.requests if is_query(r)) == 1
    # the core converted the file before sending it: the converted size is known from the start
    assert sessions(proxy)[0].header("x-upload-content-length") == str(len(expected)) != str(big.stat().st_size)
    assert fo.raw["metadata"]["llmfiles-format"] == "gemini"
    assert fo.id.startswith(f"gs://{BUCKET}/")
    assert_landed(client, fo, expected, tmp_path)


# --- across runs --------------------------------------------------------------------------------------------

UPLOAD_SCRIPT = """
import json, sys
import llmfiles
args = json.loads(sys.argv[1])
with llmfiles.Client("vertex_ai", **args["settings"]) as client:
    client.upload(args["path"], purpose="fine-tune", **args["large"])
"""


def test_kill_9_then_the_same_upload_continues_from_the_offset_cloud_storage_reports(
    vertex_settings: dict[str, Any], proxy: FaultProxy, big: Path, tmp_path: Path
) -> None:
    size = big.stat().st_size
    # the third chunk never gets an answer: the process is killed while Cloud Storage holds two chunks
    proxy.add_rule(lambda r: is_chunk(r) and span(r)[0] == 2 * CHUNK, Stall(120))
    args = {"settings": vertex_settings, "path": str(big), "large": LARGE}
    proc = subprocess.Popen([sys.executable, "-c", UPLOAD_SCRIPT, json.dumps(args)], env=dict(os.environ))
    try:
        deadline = time.monotonic() + 120
        while not any(r.action.startswith("stall") for r in proxy.requests):
            assert proc.poll() is None, f"the upload ended early with {proc.returncode}"
            assert time.monotonic() < deadline, "the upload never reached the third chunk"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    proxy.rules.clear()
    proxy.settle()
    before = len(proxy.requests)

    with llmfiles.Client("vertex_ai", **vertex_settings) as client:
        [left] = client.unfinished_uploads()
        assert left["provider"] == "vertex_ai" and not left["running"]
        fo = client.upload(big, purpose="fine-tune", **LARGE)
        assert client.unfinished_uploads() == []
    after = proxy.requests[before:]
    assert not [r for r in after if r in sessions(proxy)]  # the same session
    assert is_query(after[0]) and after[0].header("content-range") == f"bytes */{size}"
    chunks = [r for r in after if is_chunk(r)]
    assert span(chunks[0])[0] == 2 * CHUNK  # from where Cloud Storage got to, never from 0
    assert sum(body_length(r) for r in chunks) == size - 2 * CHUNK
    with llmfiles.Client("vertex_ai", **vertex_settings) as client:
        assert_landed(client, fo, big.read_bytes(), tmp_path)
        assert [f.id for f in client.list_files()] == [fo.id]


def test_ctrl_c_keeps_the_session_and_the_rerun_continues_it(
    client: llmfiles.Client, proxy: FaultProxy, big: Path, tmp_path: Path
) -> None:
    def ctrl_c(event: Progress) -> None:
        if event.done > CHUNK + CHUNK // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as info:
        client.upload(big, purpose="fine-tune", progress=ctrl_c, **LARGE)
    assert any("session was kept" in n for n in info.value.__notes__)
    proxy.settle()  # the interrupted chunk is recorded once the proxy is done with it
    assert not [r for r in proxy.requests if r.method == "DELETE"]
    before = len(proxy.requests)
    fo = client.upload(big, purpose="fine-tune", **LARGE)
    after = proxy.requests[before:]
    assert len(sessions(proxy)) == 1 and is_query(after[0])
    assert span(next(r for r in after if is_chunk(r)))[0] >= CHUNK  # the first chunk was not sent again
    assert_landed(client, fo, big.read_bytes(), tmp_path)


def test_a_file_changed_between_runs_cancels_the_old_session_and_starts_a_new_one(
    client: llmfiles.Client, proxy: FaultProxy, big: Path, tmp_path: Path
) -> None:
    def ctrl_c(event: Progress) -> None:
        if event.done > CHUNK:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        client.upload(big, purpose="fine-tune", progress=ctrl_c, **LARGE)
    old = {r.query["upload_id"][0] for r in proxy.requests if is_chunk(r)}
    with open(big, "ab") as fh:
        fh.write(big.read_bytes().splitlines(keepends=True)[0])
    fo = client.upload(big, purpose="fine-tune", **LARGE)
    [cancel] = [r for r in proxy.requests if r.method == "DELETE"]
    assert cancel.query["upload_id"][0] in old  # the old session is cancelled (the emulator answers 501)
    assert len(sessions(proxy)) == 2
    assert_landed(client, fo, big.read_bytes(), tmp_path)
    assert client.unfinished_uploads() == []


def test_a_session_cloud_storage_no_longer_has_is_replaced(
    client: llmfiles.Client, proxy: FaultProxy, big: Path, tmp_path: Path
) -> None:
    def ctrl_c(event: Progress) -> None:
        if event.done > CHUNK:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        client.upload(big, purpose="fine-tune", progress=ctrl_c, **LARGE)
    # an expired (or cancelled) session: Cloud Storage answers its status query with 404
    proxy.add_rule(is_query, Respond(404, {"Content-Type": "application/json"}, b'{"error": {"code": 404}}'))
    fo = client.upload(big, purpose="fine-tune", **LARGE)
    assert len(sessions(proxy)) == 2
    assert next(span(r)[0] for r in proxy.requests[proxy.requests.index(sessions(proxy)[1]) :] if is_chunk(r)) == 0
    assert_landed(client, fo, big.read_bytes(), tmp_path)
