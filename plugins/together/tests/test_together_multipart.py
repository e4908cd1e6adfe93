"""Together's multipart protocol against our Together server: what each request carries, the ETag check, resume
after the uploading process is killed, presigned URLs that expired meanwhile, and the URLs kept secret."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import llmfiles
from llmfiles import Client
from llmfiles.redact import redact_url
from llmfiles_together import wire
from servers.together_like import TogetherLikeServer

MiB = 1024 * 1024
LARGE = {"multipart_threshold": MiB, "part_size": 5 * MiB}


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@pytest.fixture
def big(make_jsonl: Callable[..., Path]) -> Path:
    return make_jsonl("big.jsonl", min_bytes=12 * MiB)  # three parts: 5 + 5 + 2 MiB


def test_a_large_file_goes_up_in_parts_to_the_presigned_urls(
    together_server: TogetherLikeServer, together_settings: dict[str, Any], big: Path
) -> None:
    with Client("together", **together_settings) as client:
        fo = client.upload(big, purpose="fine-tune", **LARGE)
    (initiate,) = together_server.requests_to("initiate")
    assert initiate.json == {
        "filename": "big.jsonl",
        "file_size": big.stat().st_size,
        "num_parts": 3,
        "purpose": "fine-tune",
        "file_type": "jsonl",
    }
    parts = together_server.requests_to("part")
    assert sorted(int(r.path.rsplit("/", 1)[1]) for r in parts) == [1, 2, 3]
    assert all("authorization" not in r.headers for r in parts)  # Together's key never goes to the storage host
    (complete,) = together_server.requests_to("complete")
    stored = together_server.files[fo.id]
    assert [p["PartNumber"] for p in complete.json["parts"]] == [1, 2, 3]
    assert stored.content == big.read_bytes() and fo.bytes == big.stat().st_size
    assert together_server.requests_to("upload") == [] and together_server.uploads == {}


def test_a_small_file_is_one_upload_request(
    together_server: TogetherLikeServer, together_settings: dict[str, Any], make_jsonl: Callable[..., Path]
) -> None:
    src = make_jsonl("small.jsonl")
    with Client("together", **together_settings) as client:
        fo = client.upload(src, purpose="fine-tune")
    (req,) = together_server.requests_to("upload")
    assert req.form == {"purpose": "fine-tune", "file_name": "small.jsonl", "file_type": "jsonl"}
    assert together_server.files[fo.id].content == src.read_bytes()


def test_a_part_the_storage_kept_wrong_is_never_completed(
    together_server: TogetherLikeServer, together_settings: dict[str, Any], big: Path
) -> None:
    together_server.corrupt_next_part = True
    with Client("together", **together_settings) as client, pytest.raises(llmfiles.UploadFailed, match="MD5"):
        client.upload(big, purpose="fine-tune", max_concurrency=1, **LARGE)
    assert together_server.requests_to("complete") == []
    assert len(together_server.requests_to("abort")) == 1 and together_server.uploads == {}
    assert together_server.files == {}


_UPLOAD = textwrap.dedent(
    """
    import sys, llmfiles
    base, key, path = sys.argv[1:4]
    with llmfiles.Client("together", api_base=base, api_key=key, max_retries=0) as client:
        client.upload(path, purpose="fine-tune", multipart_threshold=2**20, part_size=5 * 2**20, max_concurrency=1)
    """
)


def _killed_after_one_part(server: TogetherLikeServer, src: Path, key: str) -> None:
    """Run the upload in another process and kill it (SIGKILL) while its second part is being sent."""
    server.hold_parts(after=1)
    proc = subprocess.Popen(
        [sys.executable, "-c", _UPLOAD, server.url, key, str(src)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while server.parts_arrived() < 2:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "the second part never arrived"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    server.release()
    assert len(server.requests_to("initiate")) == 1 and server.requests_to("complete") == []


def test_an_upload_killed_midway_resumes_with_the_parts_that_are_missing(
    together_server: TogetherLikeServer, together_settings: dict[str, Any], big: Path
) -> None:
    _killed_after_one_part(together_server, big, together_settings["api_key"])
    first_parts = len(together_server.requests_to("part"))
    with Client("together", **together_settings) as client:
        (left,) = client.unfinished_uploads()
        assert "X-Amz-Signature" not in json.dumps(left)  # the presigned URLs are never shown
        fo = client.upload(big, purpose="fine-tune", **LARGE)
        assert client.unfinished_uploads() == []
    assert len(together_server.requests_to("initiate")) == 1  # the same upload, continued
    resent = [int(r.path.rsplit("/", 1)[1]) for r in together_server.requests_to("part")[first_parts:]]
    assert sorted(resent) == [2, 3]  # part 1 arrived before the kill: it is not sent again
    assert len(together_server.requests_to("complete")) == 1
    assert md5(together_server.files[fo.id].content) == md5(big.read_bytes())


def test_a_later_run_after_the_part_urls_expired_starts_a_new_upload(big: Path, tmp_path: Path) -> None:
    # the URLs live 100 s: within llmfiles' safety margin (120 s) a recorded session counts as expired at once
    with TogetherLikeServer(api_key="k" * 20, url_ttl=100) as server:
        _killed_after_one_part(server, big, "k" * 20)
        with Client("together", api_base=server.url, api_key="k" * 20) as client:
            fo = client.upload(big, purpose="fine-tune", **LARGE)
        initiates = server.requests_to("initiate")
        assert len(initiates) == 2  # the old URLs were not used again: a new upload
        assert server.files[fo.id].content == big.read_bytes()
        assert not server.errors


def test_the_part_urls_are_kept_out_of_errors_and_logs(
    together_server: TogetherLikeServer,
    together_settings: dict[str, Any],
    big: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    together_server.fail("part", 403, times=10)
    caplog.set_level(logging.DEBUG)
    with Client("together", **together_settings) as client, pytest.raises(llmfiles.ProviderError) as info:
        client.upload(big, purpose="fine-tune", max_concurrency=1, **LARGE)
    signatures = [r.query["X-Amz-Signature"] for r in together_server.requests_to("part")]
    assert signatures
    text = str(info.value) + repr(info.value) + "".join(getattr(info.value, "__notes__", [])) + caplog.text
    assert not any(sig in text for sig in signatures)
    assert len(together_server.requests_to("abort")) == 1  # refused for good: aborted


def test_redact_url_hides_every_presigned_url_parameter_that_works_as_a_credential() -> None:
    url = (
        "https://bucket.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAX%2F2026"
        "&X-Amz-Date=20260101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Security-Token=tok123"
        "&X-Amz-Signature=abcdef0123&X-Goog-Signature=goog99&sig=azure77"
    )
    shown = redact_url(url)
    for secret in ("AKIAX", "tok123", "abcdef0123", "goog99", "azure77"):
        assert secret not in shown
    assert "X-Amz-Expires=3600" in shown  # what is no secret stays readable


def test_urls_expire_when_they_say() -> None:
    now = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    url = "https://s/p?X-Amz-Date=20260101T000000Z&X-Amz-Expires=900&X-Amz-Signature=x"
    assert wire.urls_expire_at([url, url.replace("900", "600")], now) == now + 600
    assert wire.urls_expire_at(["https://s/p?sig=x"], now) == now + wire.DEFAULT_URL_TTL
    assert wire.urls_expire_at(["https://s/p?Expires=1767226000"], now) == 1_767_226_000


def test_part_sizes_follow_togethers_limits() -> None:
    assert wire.plan_part_size(12 * MiB, MiB) == 5 * MiB  # at least 5 MiB
    assert wire.plan_part_size(10 * 1024 * MiB, None) == 250 * MiB  # the SDK's 250 MiB
    assert wire.plan_part_size(100 * 1024 * MiB, None) > 400 * MiB  # grown to fit 250 parts


def test_other_file_types_are_refused_before_any_request(
    together_server: TogetherLikeServer, together_settings: dict[str, Any], tmp_path: Path
) -> None:
    src = tmp_path / "data.txt"
    src.write_text("hello\n")
    with Client("together", **together_settings) as client, pytest.raises(llmfiles.InputError, match=r"\.jsonl"):
        client.upload(src, purpose="eval")
    assert together_server.requests == []


def test_purpose_batch_is_togethers_batch_api_on_the_wire_and_batch_when_read_back(
    together_server: TogetherLikeServer, together_settings: dict[str, Any], tmp_path: Path
) -> None:
    """``batch`` is the purpose's name for every provider; Together's FilePurpose calls it ``batch-api``
    (https://docs.together.ai/reference/upload-file).  Its own name is refused with the way to say it."""
    src = tmp_path / "requests.jsonl"
    src.write_text(json.dumps({"custom_id": "r1", "body": {"model": "m", "messages": []}}) + "\n")
    with Client("together", **together_settings) as client:
        fo = client.upload(src, purpose="batch")
        assert together_server.files[fo.id].purpose == "batch-api"
        assert fo.purpose == "batch" and client.retrieve(fo.id).purpose == "batch"
        assert [f.id for f in client.list_files(purpose="batch")] == [fo.id]
        with pytest.raises(llmfiles.InvalidPurpose, match="use purpose 'batch'"):
            client.upload(src, purpose="batch-api")
