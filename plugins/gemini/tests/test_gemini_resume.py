"""Resumable uploads that break on the way, through the core's resumable engine: our fault proxy cuts connections and
loses answers between the client and our Gemini fake; the upload asks the session how far it got
(``X-Goog-Upload-Command: query`` -> ``X-Goog-Upload-Size-Received``), continues from there - never from the start -
and lands the exact bytes.  Across runs too: after ``kill -9`` or Ctrl-C, running the same upload again continues the
recorded session from the offset Gemini reports; a changed file, or a session Gemini no longer has, starts anew."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from gemini_testlib import CHUNK, batch_file

import llmfiles
from llmfiles.errors import ProviderError
from llmfiles.models import Progress
from servers.fault_proxy import DropAfter, DropResponse, FaultProxy, ProxyRequest, Respond, Stall
from servers.gemini_like import GeminiLikeServer
from servers.stateful import StatefulServer

LARGE = {"multipart_threshold": CHUNK, "part_size": CHUNK}


@pytest.fixture
def client(proxied_settings: dict[str, Any]) -> Any:
    with llmfiles.Client("gemini", environ={}, **proxied_settings) as c:
        yield c


@pytest.fixture
def big(tmp_path: Path) -> Path:
    path = batch_file(tmp_path / "big.jsonl", min_bytes=4 * CHUNK + 12_345)  # five chunks
    assert 4 * CHUNK < path.stat().st_size < 5 * CHUNK
    return path


def command(r: ProxyRequest) -> str:
    return (r.header("x-goog-upload-command") or "").replace(" ", "")


def is_chunk(r: ProxyRequest) -> bool:
    return "upload_id" in r.query and command(r).startswith("upload")


def is_query(r: ProxyRequest) -> bool:
    return "upload_id" in r.query and command(r) == "query"


def starts(proxy: FaultProxy) -> list[ProxyRequest]:
    return [r for r in proxy.requests if command(r) == "start"]


def offset(r: ProxyRequest) -> int:
    return int(r.header("x-goog-upload-offset") or -1)


def length(r: ProxyRequest) -> int:
    return int(r.headers["x-proxy-body-length"])


def landed(server: GeminiLikeServer, fo: Any, expected: bytes) -> None:
    assert server.files[fo.id].content == expected
    assert fo.bytes == len(expected) and fo.checksums["sha256"] == hashlib.sha256(expected).hexdigest()


def test_a_connection_dropped_mid_chunk_resumes_where_the_session_got_to(
    client: Any, proxy: FaultProxy, gemini_server: GeminiLikeServer, big: Path
) -> None:
    size = big.stat().st_size
    proxy.add_rule(is_chunk, DropAfter(CHUNK // 2 + 5), skip=1)  # the second chunk dies half way
    fo = client.upload(big, purpose="batch", **LARGE)
    assert len(starts(proxy)) == 1  # one session all along
    chunks = [r for r in proxy.requests if is_chunk(r)]
    assert chunks[1].action.startswith("drop after") and offset(chunks[1]) == CHUNK
    after = proxy.requests[proxy.requests.index(chunks[1]) + 1]
    assert is_query(after) and length(after) == 0
    # the session kept no part of the cut chunk (it keeps whole 256 KiB multiples): the chunk is sent again
    assert offset(chunks[2]) == CHUNK and length(chunks[2]) == CHUNK
    assert sum(length(r) for r in chunks if not r.action.startswith("drop after")) == size
    landed(gemini_server, fo, big.read_bytes())


@pytest.mark.parametrize("slow_server", [False, True], ids=["server-on-time", "server-late-with-the-cut-chunk"])
def test_a_session_that_kept_part_of_a_cut_chunk_continues_after_it(
    client: Any,
    proxy: FaultProxy,
    gemini_server: GeminiLikeServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    slow_server: bool,
) -> None:
    if slow_server:
        # the client hears of the cut before the server has read to its end: the query must still count what arrived
        # (our fake answers a request once the ones that arrived before it are in; without that this case fails)
        read_body = StatefulServer._read_body

        def late(h: Any, headers: Any) -> tuple[bytes, bool]:
            body, complete = read_body(h, headers)
            if not complete:
                time.sleep(0.5)
            return body, complete

        monkeypatch.setattr(StatefulServer, "_read_body", staticmethod(late))
    src = batch_file(tmp_path / "big.jsonl", min_bytes=6 * CHUNK + 10)
    # chunks of 512 KiB: a cut after 300 KiB leaves the session one whole 256 KiB granule
    proxy.add_rule(is_chunk, DropAfter(300 * 1024), skip=1)
    fo = client.upload(src, purpose="batch", multipart_threshold=CHUNK, part_size=2 * CHUNK)
    chunks = [r for r in proxy.requests if is_chunk(r)]
    assert offset(chunks[1]) == 2 * CHUNK and chunks[1].action.startswith("drop after")
    assert offset(chunks[2]) == 3 * CHUNK  # from what the query reported, not the cut chunk's start
    landed(gemini_server, fo, src.read_bytes())


def test_the_final_answer_lost_is_found_by_asking_the_session(
    client: Any, proxy: FaultProxy, gemini_server: GeminiLikeServer, big: Path
) -> None:
    proxy.add_rule(lambda r: is_chunk(r) and command(r) == "upload,finalize", DropResponse())
    fo = client.upload(big, purpose="batch", **LARGE)
    finals = [r for r in proxy.requests if is_chunk(r) and command(r) == "upload,finalize"]
    assert len(finals) == 1 and finals[0].action == "drop response"  # the last chunk was not sent again
    assert is_query(proxy.requests[-1])  # the session answered the query with the file
    landed(gemini_server, fo, big.read_bytes())


def test_a_lost_active_answer_does_not_resend_the_chunk(
    client: Any, proxy: FaultProxy, gemini_server: GeminiLikeServer, big: Path
) -> None:
    proxy.add_rule(is_chunk, DropResponse(), skip=2)
    fo = client.upload(big, purpose="batch", **LARGE)
    offsets = [offset(r) for r in proxy.requests if is_chunk(r)]
    assert offsets == sorted(set(offsets)) == [i * CHUNK for i in range(5)]  # each chunk once, in order
    assert sum(1 for r in proxy.requests if is_query(r)) == 1
    landed(gemini_server, fo, big.read_bytes())


def test_chunks_that_do_not_fit_the_declared_granularity_are_refused_before_any_byte(
    proxied_settings: Any, gemini_server: GeminiLikeServer, proxy: FaultProxy, big: Path
) -> None:
    gemini_server.granularity = 1024 * 1024  # what the server asks for; the part size is 256 KiB
    with llmfiles.Client("gemini", environ={}, **proxied_settings) as c, pytest.raises(ProviderError) as info:
        c.upload(big, purpose="batch", **LARGE)
    assert "multiples of 1,048,576 bytes" in str(info.value) and "part_size" in str(info.value)
    assert not [r for r in proxy.requests if is_chunk(r)]


# --- across runs --------------------------------------------------------------------------------------------------

#: the child process refuses to resolve any name but a loopback one, as the tests' own process does (conftest.py)
LOOPBACK_ONLY = """
import ipaddress, socket
_real = socket.getaddrinfo
def _loopback_only(host, *args, **kw):
    name = host.decode() if isinstance(host, bytes) else str(host)
    try:
        ok = ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        ok = name == "localhost"
    if not ok:
        raise OSError(f"the tests resolve loopback names only, not {name!r}")
    return _real(host, *args, **kw)
socket.getaddrinfo = _loopback_only
"""
UPLOAD_SCRIPT = (
    LOOPBACK_ONLY
    + """
import json, sys
import llmfiles
args = json.loads(sys.argv[1])
with llmfiles.Client("gemini", environ={}, **args["settings"]) as client:
    client.upload(args["path"], purpose="batch", **args["large"])
"""
)


def test_the_upload_process_resolves_loopback_names_only() -> None:
    probe = "\nsocket.getaddrinfo('127.0.0.1', 80)\nsocket.getaddrinfo('generativelanguage.googleapis.com', 443)"
    done = subprocess.run(
        [sys.executable, "-c", LOOPBACK_ONLY + probe], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0 and "loopback names only, not 'generativelanguage.googleapis.com'" in done.stderr


def test_kill_9_then_the_same_upload_continues_from_the_offset_gemini_reports(
    proxied_settings: dict[str, Any], proxy: FaultProxy, gemini_server: GeminiLikeServer, big: Path
) -> None:
    size = big.stat().st_size
    # the third chunk never gets an answer: the process is killed while the session holds two chunks
    proxy.add_rule(lambda r: is_chunk(r) and offset(r) == 2 * CHUNK, Stall(120))
    args = {"settings": proxied_settings, "path": str(big), "large": LARGE}
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
    assert gemini_server.files == {}  # nothing committed by the killed run

    with llmfiles.Client("gemini", environ={}, **proxied_settings) as client:
        [left] = client.unfinished_uploads()
        assert left["provider"] == "gemini" and not left["running"]
        assert "upload_id" not in json.dumps(left)  # the session's URL is a credential: never listed
        fo = client.upload(big, purpose="batch", **LARGE)
        assert client.unfinished_uploads() == []
    after = proxy.requests[before:]
    assert not [r for r in after if command(r) == "start"]  # the same session
    assert is_query(after[0])
    chunks = [r for r in after if is_chunk(r)]
    assert offset(chunks[0]) == 2 * CHUNK  # from where Gemini got to, never from 0
    assert sum(length(r) for r in chunks) == size - 2 * CHUNK
    landed(gemini_server, fo, big.read_bytes())
    assert list(gemini_server.files) == [fo.id]


def test_ctrl_c_keeps_the_session_and_the_rerun_continues_it(
    client: Any, proxy: FaultProxy, gemini_server: GeminiLikeServer, big: Path
) -> None:
    def ctrl_c(event: Progress) -> None:
        if event.done > CHUNK + CHUNK // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as info:
        client.upload(big, purpose="batch", progress=ctrl_c, **LARGE)
    assert any("session was kept" in n for n in info.value.__notes__)
    proxy.settle()
    assert not [r for r in proxy.requests if command(r) == "cancel"]
    before = len(proxy.requests)
    fo = client.upload(big, purpose="batch", **LARGE)
    after = proxy.requests[before:]
    assert len(starts(proxy)) == 1 and is_query(after[0])
    assert offset(next(r for r in after if is_chunk(r))) >= CHUNK  # the first chunk was not sent again
    landed(gemini_server, fo, big.read_bytes())


def test_a_file_changed_between_runs_cancels_the_old_session_and_starts_a_new_one(
    client: Any, proxy: FaultProxy, gemini_server: GeminiLikeServer, big: Path
) -> None:
    def ctrl_c(event: Progress) -> None:
        if event.done > CHUNK:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        client.upload(big, purpose="batch", progress=ctrl_c, **LARGE)
    proxy.settle()
    old = {r.query["upload_id"][0] for r in proxy.requests if is_chunk(r)}
    with open(big, "ab") as fh:
        fh.write(big.read_bytes().splitlines(keepends=True)[0].replace(b"request-0", b"request-x"))
    fo = client.upload(big, purpose="batch", **LARGE)
    [cancel] = [r for r in proxy.requests if command(r) == "cancel"]
    assert cancel.query["upload_id"][0] in old
    assert gemini_server.sessions[cancel.query["upload_id"][0]].status == "cancelled"
    assert len(starts(proxy)) == 2
    landed(gemini_server, fo, big.read_bytes())
    assert client.unfinished_uploads() == []


def test_a_session_gemini_no_longer_has_is_replaced(
    client: Any, proxy: FaultProxy, gemini_server: GeminiLikeServer, big: Path
) -> None:
    def ctrl_c(event: Progress) -> None:
        if event.done > CHUNK:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        client.upload(big, purpose="batch", progress=ctrl_c, **LARGE)
    proxy.settle()
    gemini_server.sessions.clear()  # expired at Gemini: its query answers 404
    fo = client.upload(big, purpose="batch", **LARGE)
    assert len(starts(proxy)) == 2
    new_start = proxy.requests.index(starts(proxy)[1])
    assert offset(next(r for r in proxy.requests[new_start:] if is_chunk(r))) == 0
    landed(gemini_server, fo, big.read_bytes())


def test_a_cancelled_session_answered_by_a_query_is_replaced_too(
    client: Any, proxy: FaultProxy, gemini_server: GeminiLikeServer, big: Path
) -> None:
    def ctrl_c(event: Progress) -> None:
        if event.done > CHUNK:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        client.upload(big, purpose="batch", progress=ctrl_c, **LARGE)
    proxy.settle()
    proxy.add_rule(is_query, Respond(200, {"X-Goog-Upload-Status": "cancelled"}, b""))
    fo = client.upload(big, purpose="batch", **LARGE)
    assert len(starts(proxy)) == 2
    landed(gemini_server, fo, big.read_bytes())
