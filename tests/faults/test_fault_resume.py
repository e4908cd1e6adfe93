"""A large upload that dies half-way is finished by running it again, for every provider: after ``kill -9`` of the
process, after Ctrl-C, after the network gave up.  The second run sends only what the provider does not have
(OpenAI/Azure: the parts recorded in the state database; S3: the recorded parts ``ListParts`` confirms; Cloud
Storage: from the offset the session reports).  A file that changed in between is not continued: its old session is
aborted and a new one starts.  A session the provider no longer knows (expired, aborted) is replaced by a new one.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from faultlib import Harness, MiB, OpenAIHarness, chat_file

import llmfiles
from llmfiles.models import Progress
from servers.fault_proxy import ProxyRequest, Stall

UPLOAD_SCRIPT = """
import json, sys
import llmfiles
args = json.loads(sys.argv[1])
with llmfiles.Client(args["provider"], **args["settings"]) as client:
    client.upload(args["path"], purpose="fine-tune", max_concurrency=1, **args["large"])
"""


def large_file(h: Harness, tmp_path: Path, name: str = "large.jsonl") -> Path:
    return chat_file(tmp_path / name, min_bytes=h.large_bytes)


def part_starts(h: Harness, requests: list[ProxyRequest]) -> list[str]:
    """An identity for each part request: its part number (S3), byte range (GCS) or size (OpenAI/Azure)."""
    out = []
    for r in requests:
        if not h.is_part(r):
            continue
        if "partNumber" in r.query:
            out.append(r.query["partNumber"][0])
        elif r.header("content-range"):
            out.append(str(r.header("content-range")).split("/")[0])
        else:
            out.append(r.headers["x-proxy-body-length"])
    return out


def assert_landed(h: Harness, fo: llmfiles.FileObject, path: Path) -> None:
    stored = h.stored()
    assert set(stored) == {fo.id}
    assert stored[fo.id] == h.expected(path.read_bytes())
    assert h.unfinished_sessions() in (0, None)


def run_until_stalled(h: Harness, path: Path, stall_at_part: int) -> None:
    """Upload ``path`` in another process; ``kill -9`` it while the provider holds part ``stall_at_part``."""
    h.proxy.add_rule(h.nth_part(stall_at_part), Stall(120))
    args = {"provider": h.name, "settings": h.settings, "path": os.fspath(path), "large": h.large}
    proc = subprocess.Popen([sys.executable, "-c", UPLOAD_SCRIPT, json.dumps(args)], env=dict(os.environ))
    try:
        deadline = time.monotonic() + 120
        while not any(r.action.startswith("stall") for r in h.proxy.requests):
            assert proc.poll() is None, f"the upload ended early with {proc.returncode}"
            assert time.monotonic() < deadline, "the upload never reached the stalled part"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    h.proxy.rules.clear()


def test_kill_9_in_the_middle_and_the_rerun_sends_only_what_is_missing(harness: Harness, tmp_path: Path) -> None:
    path = large_file(harness, tmp_path)
    run_until_stalled(harness, path, stall_at_part=3)
    before = list(harness.proxy.requests)
    with harness.client() as client:
        [left] = client.unfinished_uploads()
        assert left["provider"] == harness.name and not left["running"] and left["parts_done"] >= 1
        fo = client.upload(path, purpose="fine-tune", max_concurrency=1, **harness.large)
        assert client.unfinished_uploads() == []
    after = harness.proxy.requests[len(before) :]
    assert not [r for r in after if harness.is_start(r)]  # the same session
    parts = -(-path.stat().st_size // harness.part_bytes)
    if harness.name == "bedrock":
        assert part_starts(harness, after) == ["3"]  # parts 1 and 2 confirmed by ListParts
    elif harness.name == "vertex_ai":
        # the session said how far it got: the rerun starts right there, never at 0
        chunk = harness.part_bytes
        assert part_starts(harness, after)[0] == f"bytes {2 * chunk}-{3 * chunk - 1}"
    else:
        assert left["parts_done"] == 2 and len(part_starts(harness, after)) == parts - 2
    assert_landed(harness, fo, path)


def test_ctrl_c_keeps_the_session_and_the_rerun_finishes_it(harness: Harness, tmp_path: Path) -> None:
    path = large_file(harness, tmp_path)
    part = harness.part_bytes

    def ctrl_c(event: Progress) -> None:
        if event.done > part + part // 2:
            raise KeyboardInterrupt

    with harness.client() as client:
        with pytest.raises(KeyboardInterrupt) as info:
            client.upload(path, purpose="fine-tune", progress=ctrl_c, max_concurrency=1, **harness.large)
        assert any("session was kept" in n for n in info.value.__notes__)
        assert harness.unfinished_sessions() in (1, None)
        starts = len(harness.requests(harness.is_start))
        fo = client.upload(path, purpose="fine-tune", max_concurrency=1, **harness.large)
    assert len(harness.requests(harness.is_start)) == starts
    assert_landed(harness, fo, path)


def test_a_file_changed_between_runs_aborts_the_old_session_and_starts_a_new_one(
    harness: Harness, tmp_path: Path
) -> None:
    path = large_file(harness, tmp_path)
    part = harness.part_bytes

    def ctrl_c(event: Progress) -> None:
        if event.done > part:
            raise KeyboardInterrupt

    with harness.client() as client:
        with pytest.raises(KeyboardInterrupt):
            client.upload(path, purpose="fine-tune", progress=ctrl_c, max_concurrency=1, **harness.large)
        one_more = {
            "messages": [
                {"role": "system", "content": "Réponds brièvement."},
                {"role": "user", "content": "one more"},
                {"role": "assistant", "content": "ok"},
            ]
        }
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(one_more) + "\n")
        fo = client.upload(path, purpose="fine-tune", max_concurrency=1, **harness.large)
    assert len(harness.requests(harness.is_start)) == 2
    aborts = [
        r
        for r in harness.proxy.requests
        if r.path.endswith("/cancel") or (r.method == "DELETE" and ("uploadId" in r.query or "upload_id" in r.query))
    ]
    assert len(aborts) == 1  # the old session was ended at the provider
    assert_landed(harness, fo, path)


def interrupt_after_a_part(h: Harness, client: llmfiles.Client, path: Path) -> None:
    part = h.part_bytes

    def ctrl_c(event: Progress) -> None:
        if event.done > part:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        client.upload(path, purpose="fine-tune", progress=ctrl_c, max_concurrency=1, **h.large)


@pytest.mark.parametrize("harness", ["openai", "bedrock"], indirect=True)
def test_a_session_the_provider_forgot_is_replaced_by_a_new_one(harness: Harness, tmp_path: Path) -> None:
    path = large_file(harness, tmp_path)
    with harness.client() as client:
        interrupt_after_a_part(harness, client, path)
        # the provider forgets the session (it expired there, or someone aborted it)
        if isinstance(harness, OpenAIHarness):
            for u in harness.server.uploads.values():
                u.status = "expired"
        else:
            s3 = harness.s3()  # type: ignore[attr-defined]
            prefix = harness.settings["prefix"]
            for u in s3.list_multipart_uploads(Bucket="llmfiles-faults", Prefix=prefix).get("Uploads", []):
                s3.abort_multipart_upload(Bucket="llmfiles-faults", Key=u["Key"], UploadId=u["UploadId"])
        first = client.unfinished_uploads()

        # the new session is recorded as well: interrupted once it got a part, the next run continues it
        def ctrl_c_in_the_new_session(event: Progress) -> None:
            if len(harness.requests(harness.is_start)) == 2 and event.done > harness.part_bytes:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            client.upload(
                path, purpose="fine-tune", progress=ctrl_c_in_the_new_session, max_concurrency=1, **harness.large
            )
        [second] = client.unfinished_uploads()
        assert second["id"] != first[0]["id"]
        fo = client.upload(path, purpose="fine-tune", max_concurrency=1, **harness.large)
    assert len(harness.requests(harness.is_start)) == 2
    assert_landed(harness, fo, path)


@pytest.mark.parametrize("harness", ["openai"], indirect=True)
def test_a_session_past_its_expiry_is_not_continued(harness: Harness, tmp_path: Path) -> None:
    path = large_file(harness, tmp_path)
    with harness.client() as client:
        interrupt_after_a_part(harness, client, path)
        [left] = client.unfinished_uploads()
        assert left["expires_at"] is not None and left["expires_at"] > time.time() + 3000  # OpenAI: an hour
        db = Path(os.environ["LLMFILES_HOME"]) / "state.db"
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE sessions SET expires_at = ?", (time.time() - 1,))
        fo = client.upload(path, purpose="fine-tune", max_concurrency=1, **harness.large)
    assert len(harness.requests(harness.is_start)) == 2
    assert not [r for r in harness.proxy.requests if r.path.endswith("/cancel")]  # an expired session is not aborted
    assert set(harness.stored()) == {fo.id}


def test_llmfiles_abort_ends_an_unfinished_upload(harness: Harness, tmp_path: Path) -> None:
    path = large_file(harness, tmp_path)
    part = harness.part_bytes

    def ctrl_c(event: Progress) -> None:
        if event.done > part:
            raise KeyboardInterrupt

    with harness.client() as client:
        with pytest.raises(KeyboardInterrupt):
            client.upload(path, purpose="fine-tune", progress=ctrl_c, max_concurrency=1, **harness.large)
        [left] = client.unfinished_uploads()
        if harness.name == "vertex_ai":
            # gcp-storage-emulator answers DELETE of a session with 501: the error says so, the state stays
            with pytest.raises(llmfiles.ProviderError) as info:
                client.abort_upload(left["id"][:6], **_where(harness))
            assert info.value.status == 501
            assert len(client.unfinished_uploads()) == 1
            return
        result = client.abort_upload(left["id"][:6], **_where(harness))
        assert result["aborted"] is True
        assert client.unfinished_uploads() == []
    assert harness.unfinished_sessions() == 0
    assert harness.stored() == {}


def _where(h: Harness) -> dict[str, Any]:
    """The settings an abort needs besides the environment (the same as the upload's)."""
    return {k: v for k, v in h.settings.items() if k not in ("max_retry_wait", "timeout", "max_retries")}


LOCAL_SCRIPT = """
import json, sys, time
import llmfiles
args = json.loads(sys.argv[1])

def progress(event):
    if event.done >= args["stop_after"]:
        open(args["marker"], "w").close()
        time.sleep(600)

with llmfiles.Client("local") as client:
    client.upload(args["path"], purpose="assistants", progress=progress, max_concurrency=1,
                  multipart_threshold="256KiB", part_size="256KiB")
"""


def test_local_kill_9_in_the_middle_and_the_rerun_finishes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(2 * MiB + 77))
    marker = tmp_path / "stopped"
    args = {"path": os.fspath(path), "marker": os.fspath(marker), "stop_after": 3 * 256 * 1024}
    proc = subprocess.Popen([sys.executable, "-c", LOCAL_SCRIPT, json.dumps(args)], env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    import llmfiles.local

    sent: list[str] = []
    original = llmfiles.local.handle_local_request

    def recording(request: Any, *a: Any) -> Any:
        sent.append(request.url)
        return original(request, *a)

    monkeypatch.setattr(llmfiles.local, "handle_local_request", recording)
    with llmfiles.Client("local") as client:
        [left] = client.unfinished_uploads()
        assert left["parts_done"] >= 2
        fo = client.upload(
            path, purpose="assistants", max_concurrency=1, multipart_threshold="256KiB", part_size="256KiB"
        )
        out = client.download(fo.id, tmp_path / "out.bin")
    assert out.read_bytes() == path.read_bytes()
    assert not [u for u in sent if u.startswith("local:///uploads?")]  # no new session
    assert len([u for u in sent if "/parts" in u]) == 9 - left["parts_done"]
