"""The network breaks in every way our fault proxy knows, between llmfiles and each provider's test server.

For each fault and each provider (OpenAI, Azure OpenAI, Vertex AI / Cloud Storage, Bedrock / S3): the upload either
succeeds, with the exact bytes on the server and exactly one file there, or fails with a clear llmfiles error —
and a large upload that failed is finished by running it again.  Resets happen at a "random" byte offset that a
seed fixes, so every run breaks the same way.  No test bounds how long anything takes; where a wait must happen
(Retry-After), the tests check that it did.
"""

from __future__ import annotations

import email.utils
import time
from pathlib import Path

import pytest
from faultlib import TIMEOUT, Harness, chat_file

import llmfiles
from llmfiles.errors import AnswerLost, LLMFilesError, MaybeUploaded, NetworkError
from servers.fault_proxy import (
    DropAfter,
    DropResponse,
    ProxyRequest,
    ReplaceResponse,
    ReplayDropped,
    Respond,
    Stall,
    TruncateResponse,
    reset_offset,
)

SMALL = 48 * 1024


def small_file(tmp_path: Path, tag: str = "") -> Path:
    return chat_file(tmp_path / "small.jsonl", min_bytes=SMALL, tag=tag)


def large_file(h: Harness, tmp_path: Path, tag: str = "") -> Path:
    return chat_file(tmp_path / "large.jsonl", min_bytes=h.large_bytes, tag=tag)


def assert_one_file(h: Harness, fo: llmfiles.FileObject, path: Path) -> None:
    """Exactly one file at the server, the one the upload returned, holding the file's exact bytes."""
    stored = h.stored()
    assert set(stored) == {fo.id}, f"expected exactly {fo.id} at the server, found {sorted(stored)}"
    assert stored[fo.id] == h.expected(path.read_bytes())


def upload(h: Harness, path: Path, **settings: object) -> llmfiles.FileObject:
    with h.client() as client:
        return client.upload(path, purpose="fine-tune", **settings)


def upload_answer_lost(h: Harness, path: Path, **settings: object) -> llmfiles.FileObject | None:
    """Upload ``path`` while a create's answer is lost: the file the lost attempt made is returned when the provider
    lets it be told apart (a name unique to the upload, a checksum); otherwise (OpenAI, Azure: v2 no longer takes a
    file of the same name and size for it) the upload stops with :class:`MaybeUploaded` naming that file.  Either way
    the server holds exactly one file, with the file's bytes."""
    if h.tells_lost_answers:
        fo = upload(h, path, **settings)
        assert_one_file(h, fo, path)
        return fo
    with pytest.raises(MaybeUploaded) as info:
        upload(h, path, **settings)
    stored = h.stored()
    assert list(info.value.candidates) == list(stored), (info.value.candidates, sorted(stored))
    (only,) = stored.values()
    assert only == h.expected(path.read_bytes())
    assert f"may already be uploaded as {info.value.candidates[0]}" in str(info.value)
    return None


def error_message(exc: BaseException) -> str:
    return "\n".join([str(exc), *getattr(exc, "__notes__", ())])


# --- connection resets at a random byte offset --------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
def test_a_reset_in_the_middle_of_a_one_request_upload_is_retried(harness: Harness, tmp_path: Path, seed: int) -> None:
    path = small_file(tmp_path)
    harness.proxy.add_rule(harness.is_upload, DropAfter(reset_offset(seed, path.stat().st_size)))
    fo = upload(harness, path)
    attempts = harness.requests(harness.is_upload)
    assert len(attempts) == 2 and attempts[0].action.startswith("drop after")
    assert_one_file(harness, fo, path)


@pytest.mark.parametrize("seed", [3])
def test_a_reset_in_the_middle_of_a_part_is_retried(harness: Harness, tmp_path: Path, seed: int) -> None:
    path = large_file(harness, tmp_path)
    part_size = int(str(harness.large["part_size"]))
    harness.proxy.add_rule(harness.nth_part(2), DropAfter(reset_offset(seed, part_size)))
    fo = upload(harness, path, **harness.large)
    assert any(r.action.startswith("drop after") for r in harness.requests(harness.is_part))
    assert len(harness.requests(harness.is_start)) == 1  # the same session all along
    assert_one_file(harness, fo, path)
    assert harness.unfinished_sessions() in (0, None)


# --- answers lost after the server did the work -------------------------------------------------------------


def test_a_lost_answer_to_a_one_request_upload_does_not_make_a_second_file(harness: Harness, tmp_path: Path) -> None:
    path = small_file(tmp_path)
    harness.proxy.add_rule(harness.is_upload, DropResponse())
    upload_answer_lost(harness, path)
    # POST /files, Cloud Storage's one-request upload and (v2) S3's PutObject are looked up, never sent again
    assert len(harness.requests(harness.is_upload)) == 1


def test_a_lost_answer_to_complete_does_not_fail_the_upload(harness: Harness, tmp_path: Path) -> None:
    path = large_file(harness, tmp_path)
    if harness.has_complete:
        harness.proxy.add_rule(harness.is_complete, DropResponse())
        upload_answer_lost(harness, path, **harness.large)
        assert len(harness.requests(harness.is_complete)) == 1  # looked for by the probe, not completed twice
        return
    else:
        # Cloud Storage: the last chunk completes; its answer lost, the session's status query gives the object
        size = path.stat().st_size
        harness.proxy.add_rule(
            lambda r: harness.is_part(r) and (r.header("content-range") or "").endswith(f"-{size - 1}/{size}"),
            DropResponse(),
        )
        harness.proxy.add_rule(lambda r: (r.header("content-range") or "").startswith("bytes */"), ReplayDropped())
        fo = upload(harness, path, **harness.large)
    assert_one_file(harness, fo, path)


def test_an_answer_cut_short_is_a_lost_answer(harness: Harness, tmp_path: Path) -> None:
    path = small_file(tmp_path)
    harness.proxy.add_rule(harness.is_upload, TruncateResponse(7))
    upload_answer_lost(harness, path)
    assert harness.requests(harness.is_upload)[0].action.startswith("truncate response")


def test_a_part_answer_cut_short_sends_the_part_again(harness: Harness, tmp_path: Path) -> None:
    path = large_file(harness, tmp_path)
    harness.proxy.add_rule(harness.nth_part(1), TruncateResponse(3))
    fo = upload(harness, path, **harness.large)
    assert_one_file(harness, fo, path)


def test_a_gateway_error_after_the_server_stored_the_file_does_not_make_a_second_one(
    harness: Harness, tmp_path: Path
) -> None:
    path = small_file(tmp_path)
    harness.proxy.add_rule(harness.is_upload, ReplaceResponse(502, {"Content-Type": "text/html"}, b"<h1>502</h1>"))
    upload_answer_lost(harness, path)


def test_when_the_check_for_a_lost_upload_fails_the_upload_is_not_repeated(harness: Harness, tmp_path: Path) -> None:
    path = small_file(tmp_path)
    harness.proxy.add_rule(harness.is_upload, DropResponse())
    harness.proxy.add_rule(lambda r: r.method in ("GET", "HEAD"), Respond(500), times=100)
    # (v2: S3's PutObject too is looked up by HeadObject before it is sent again, instead of being sent again blindly)
    with pytest.raises(AnswerLost) as info:
        upload(harness, path, max_retries=1)
    assert "not sent again" in str(info.value)
    assert len(harness.requests(harness.is_upload)) == 1
    assert len(harness.stored()) == 1  # the one the lost attempt made: not two


# --- rate limits, bursts of server errors -------------------------------------------------------------------


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_429_with_retry_after_is_waited_for(harness: Harness, tmp_path: Path, form: str) -> None:
    path = small_file(tmp_path)
    until = time.time() + 3
    retry_after = "1" if form == "seconds" else email.utils.formatdate(until, usegmt=True)
    harness.proxy.add_rule(harness.is_upload, Respond(429, {"Retry-After": retry_after}, b"slow down"))
    fo = upload(harness, path)
    first, second = harness.requests(harness.is_upload)
    assert first.action == "respond"
    # the date has whole seconds: the wait is from the 429 to that second
    at_least = 1.0 if form == "seconds" else int(until) - first.arrived_at
    assert at_least > 0.5
    assert second.arrived - first.arrived >= at_least - 0.05
    assert_one_file(harness, fo, path)


@pytest.mark.parametrize("where", ["upload", "part"])
def test_a_burst_of_500_502_503_is_ridden_out(harness: Harness, tmp_path: Path, where: str) -> None:
    path = small_file(tmp_path) if where == "upload" else large_file(harness, tmp_path)
    match = harness.is_upload if where == "upload" else harness.is_part
    for status in (500, 502, 503):
        harness.proxy.add_rule(match, Respond(status, {"Content-Type": "text/plain"}, b"busy"))
    fo = upload(harness, path, max_retry_wait=0.2, **({} if where == "upload" else harness.large))
    assert [r.action for r in harness.requests(match)].count("respond") == 3
    assert_one_file(harness, fo, path)


# --- stalls -------------------------------------------------------------------------------------------------


def test_a_stall_longer_than_the_timeout_is_retried(harness: Harness, tmp_path: Path) -> None:
    path = large_file(harness, tmp_path)
    harness.proxy.add_rule(harness.nth_part(2), Stall(TIMEOUT * 4))
    fo = upload(harness, path, **harness.large)
    assert any(r.action.startswith("stall") for r in harness.requests(harness.is_part))
    assert_one_file(harness, fo, path)


def test_an_answer_that_comes_after_the_timeout_does_not_make_a_second_file(harness: Harness, tmp_path: Path) -> None:
    path = small_file(tmp_path)
    harness.proxy.add_rule(harness.is_upload, Stall(TIMEOUT * 4, forward=True))
    upload_answer_lost(harness, path)


def test_a_stall_that_does_not_end_fails_with_a_clear_error_and_the_next_run_finishes(
    harness: Harness, tmp_path: Path
) -> None:
    path = large_file(harness, tmp_path)
    parts_seen = [0]

    def from_the_second_part_on(r: ProxyRequest) -> bool:
        if harness.is_part(r):
            parts_seen[0] += 1
        return harness.is_part(r) and parts_seen[0] >= 2

    harness.proxy.add_rule(from_the_second_part_on, Stall(60), times=1000)
    with pytest.raises(NetworkError) as info:
        upload(harness, path, max_retries=1, max_concurrency=1, **harness.large)
    text = error_message(info.value)
    assert f"no progress for {TIMEOUT:g}s" in text
    assert "session was kept" in text
    harness.proxy.rules.clear()
    starts = len(harness.requests(harness.is_start))

    fo = upload(harness, path, **harness.large)
    assert len(harness.requests(harness.is_start)) == starts  # the rerun continued the same session
    assert_one_file(harness, fo, path)
    assert harness.unfinished_sessions() in (0, None)


# --- answers that are not what they should be ---------------------------------------------------------------


def test_an_answer_that_is_not_json_is_a_lost_answer(harness: Harness, tmp_path: Path) -> None:
    """v2: a 2xx answer to a create that cannot be read is a lost answer (the server may have stored the file, and did
    here): it is looked for before anything is sent again.  Cloud Storage's object is found by its unique name and
    returned, S3's answer to PutObject has no body to read, OpenAI and Azure stop with ``MaybeUploaded`` naming the
    file; before v2 this was a ProviderError, and running the upload again made a second file."""
    path = small_file(tmp_path)
    harness.proxy.add_rule(
        harness.is_upload, ReplaceResponse(200, {"Content-Type": "text/html"}, b"<html>captive portal</html>")
    )
    upload_answer_lost(harness, path)
    assert len(harness.requests(harness.is_upload)) == 1


def test_every_fault_leaves_only_llmfiles_errors(harness: Harness, tmp_path: Path) -> None:
    """A part answer that is not what the protocol says, then the same upload again: a clear error first, then
    exactly one file."""
    path = large_file(harness, tmp_path)
    harness.proxy.add_rule(harness.nth_part(1), ReplaceResponse(200, {"Content-Type": "text/plain"}, b"\x00garbage"))
    try:
        first = upload(harness, path, **harness.large)
    except LLMFilesError as exc:
        assert type(exc).__module__ == "llmfiles.errors"
        first = None
    if first is None:
        fo = upload(harness, path, **harness.large)
    else:
        fo = first  # the provider's protocol does not need that answer (S3's part answer is its headers)
    assert_one_file(harness, fo, path)
