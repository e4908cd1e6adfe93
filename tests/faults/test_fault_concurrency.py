"""One ``Client`` shared by 16 threads and 64 asyncio tasks uploading at the same time, each call with an API key
and a project of its own: every request reaches the server with its own call's key and project (no settings or
credentials cross between calls), every file lands intact, all of it goes through one connection pool, and when
the client is closed no socket or file descriptor is left open."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultlib import chat_file

import llmfiles
from servers.openai_like import OpenAILikeServer

THREADS = 16
TASKS = 64
KiB = 1024


def open_fds() -> dict[str, str]:
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            out[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass  # closed meanwhile (the listing's own descriptor)
    return out


def sockets(fds: dict[str, str]) -> int:
    return sum(1 for target in fds.values() if target.startswith("socket:"))


def settled_fds(server: OpenAILikeServer, tmp_path: Path, sample: Path) -> dict[str, str]:
    """The descriptors open once everything that opens some on first use has run (one upload of each kind through a
    client of its own, closed again) and the server closed every connection: what the test's own calls leave open
    is then exactly what is open beyond these (nothing else in the process opens or closes descriptors meanwhile)."""
    with llmfiles.Client("openai", api_base=server.url, api_key=server.api_key, max_retry_wait=0.01) as warm:
        small = chat_file(tmp_path / "warm-up.jsonl", min_bytes=8 * KiB, tag="warm-up ")
        for path in (small, sample):
            warm.upload(path, purpose="fine-tune", multipart_threshold=256 * KiB, part_size=256 * KiB)
    assert server.wait_idle(), "the server kept connections of the warm-up open"
    server.reset()
    gc.collect()  # sockets and files only garbage refers to
    return open_fds()


@pytest.fixture
def server() -> Iterator[OpenAILikeServer]:
    with OpenAILikeServer(api_key="sk-base-0123456789") as s:
        yield s
        assert not s.errors


def test_threads_and_tasks_share_one_client_without_cross_talk_or_leaks(
    server: OpenAILikeServer, tmp_path: Path
) -> None:
    calls = THREADS + TASKS
    keys = {i: f"sk-caller-{i:03d}-{os.urandom(6).hex()}" for i in range(calls)}
    server.other_api_keys.update(keys.values())
    files = {}
    for i in range(calls):
        # every 8th call is a large upload (the Uploads API in parts); the others one request each
        size = 600 * KiB if i % 8 == 0 else 8 * KiB
        files[i] = chat_file(tmp_path / f"caller-{i:03d}.jsonl", min_bytes=size, tag=f"caller {i} ")
    baseline = settled_fds(server, tmp_path, files[0])

    client = llmfiles.Client("openai", api_base=server.url, max_retry_wait=0.01)
    results: dict[int, llmfiles.FileObject] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS + 1)

    def upload(i: int) -> llmfiles.FileObject:
        return client.upload(
            files[i],
            purpose="fine-tune",
            api_key=keys[i],
            project=f"proj-{i:03d}",
            multipart_threshold=256 * KiB,
            part_size=256 * KiB,
            max_concurrency=3,
        )

    def in_thread(i: int) -> None:
        start.wait()
        try:
            results[i] = upload(i)
        except BaseException as exc:
            errors.append(exc)

    async def in_tasks() -> None:
        async def one(i: int) -> None:
            results[i] = await client.aupload(
                files[i],
                purpose="fine-tune",
                api_key=keys[i],
                project=f"proj-{i:03d}",
                multipart_threshold=256 * KiB,
                part_size=256 * KiB,
                max_concurrency=3,
            )

        await asyncio.gather(*(one(i) for i in range(THREADS, calls)))

    threads = [threading.Thread(target=in_thread, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    start.wait()
    asyncio.run(in_tasks())
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == calls

    # every file intact, and every request made for it carried its own caller's key and project
    assert len(server.files) == calls
    by_name = {f.filename: f for f in server.files.values()}
    for i, path in files.items():
        stored = by_name[path.name]
        assert results[i].id == stored.id
        assert stored.md5 == hashlib.md5(path.read_bytes()).hexdigest()
    for rec in server.requests:
        if rec.route is None:
            continue
        caller = _caller_of(rec, files, server)
        assert rec.headers["authorization"] == f"Bearer {keys[caller]}", rec.path
        assert rec.headers["openai-project"] == f"proj-{caller:03d}", rec.path

    # one pool for every call
    assert len(client._transport._pools) == 1
    client.close()

    # the server closes its side once the client's connections are gone; then no descriptor opened since is open
    assert server.wait_idle(), "the server still has connections open: the client did not close its own"
    leaked = dict(set(open_fds().items()) - set(baseline.items()))
    assert not leaked, f"left open: {sorted(leaked.values())} ({sockets(leaked)} sockets)"


def _caller_of(rec: object, files: dict[int, Path], server: OpenAILikeServer) -> int:
    """Which caller a recorded request belongs to: by the file name it carries, or by the upload it is about."""
    names = {path.name: i for i, path in files.items()}
    form_files = getattr(rec, "files", {})
    if "file" in form_files:
        return names[form_files["file"][0]]
    body = getattr(rec, "json", None)
    if isinstance(body, dict) and "filename" in body:
        return names[body["filename"]]
    path = getattr(rec, "path", "")
    for upload in server.uploads.values():
        if f"/uploads/{upload.id}/" in path:
            return names[upload.filename]
    raise AssertionError(f"no caller for {path}")
