"""The gemini provider against our stateful Gemini Files fake: the requests each operation sends (as Google documents
them), the key (its header, its environment variables and their order, its source named and never its value), the
limits checked first, the File resource read (48-hour expiry, states, the SHA-256 Gemini reports compared with the
bytes sent), listing every page, errors with Google's message and request id, lost answers, downloads Gemini allows
and refuses, the base URL override and the dry run."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from gemini_testlib import API_KEY, CHUNK, batch_file

import llmfiles
from llmfiles.errors import (
    AuthenticationError,
    FileNotFound,
    FileTooLarge,
    InputError,
    InvalidPurpose,
    ProviderError,
    UploadFailed,
)
from llmfiles_gemini import files
from llmfiles_gemini.plugin import FILE_TTL, MAX_FILE_SIZE
from servers.fault_proxy import Corrupt, DropResponse, FaultProxy
from servers.gemini_like import GeminiLikeServer

MiB = 1024 * 1024


@pytest.fixture
def client(gemini_settings: dict[str, Any]) -> Any:
    with llmfiles.Client("gemini", environ={}, **gemini_settings) as c:
        yield c


def uploads(server: GeminiLikeServer) -> list[Any]:
    return [r for r in server.requests if r.path == "/upload/v1beta/files"]


# --- what is sent -------------------------------------------------------------------------------------------------


def test_a_small_file_goes_in_one_multipart_request(
    client: Any, gemini_server: GeminiLikeServer, tmp_path: Path
) -> None:
    src = batch_file(tmp_path / "requests.jsonl", 20)
    fo = client.upload(src, purpose="batch")
    [req] = uploads(gemini_server)
    assert req.method == "POST" and req.header("x-goog-upload-protocol") == "multipart"
    assert req.header("x-goog-api-key") == API_KEY
    assert req.header("content-type").startswith("multipart/related; boundary=")
    meta = json.loads(req.body.split(b"\r\n\r\n", 2)[1].split(b"\r\n", 1)[0])
    assert meta == {"file": {"name": fo.id, "display_name": "requests.jsonl"}}
    assert b"Content-Type: application/jsonl\r\n\r\n" + src.read_bytes() + b"\r\n--" in req.body
    # the file: a name made fresh for the upload, which says its purpose; the bytes that were sent
    assert re.fullmatch(r"files/batch-[0-9a-f]{24}", fo.id)
    stored = gemini_server.files[fo.id]
    assert stored.content == src.read_bytes() and stored.display_name == "requests.jsonl"
    assert (fo.provider, fo.filename, fo.purpose, fo.bytes, fo.status) == (
        "gemini",
        "requests.jsonl",
        "batch",
        src.stat().st_size,
        "processed",
    )
    assert fo.expires_at == fo.created_at + FILE_TTL  # Gemini keeps files 48 hours
    assert fo.checksums == {"sha256": hashlib.sha256(src.read_bytes()).hexdigest()}


def test_a_large_file_goes_through_the_resumable_protocol(
    client: Any, gemini_server: GeminiLikeServer, tmp_path: Path
) -> None:
    src = batch_file(tmp_path / "big.jsonl", min_bytes=3 * CHUNK + 1000)
    size = src.stat().st_size
    fo = client.upload(src, purpose="batch", multipart_threshold=CHUNK, part_size=CHUNK)
    start, *chunks = uploads(gemini_server)
    assert start.header("x-goog-upload-protocol") == "resumable" and start.header("x-goog-upload-command") == "start"
    assert start.header("x-goog-upload-header-content-length") == str(size)
    assert start.header("x-goog-upload-header-content-type") == "application/jsonl"
    assert start.header("content-type") == "application/json"
    assert json.loads(start.body) == {"file": {"name": fo.id, "display_name": "big.jsonl"}}
    # chunks in order, at their offsets, 256 KiB each but the last, which finalizes
    assert [c.header("x-goog-upload-offset") for c in chunks] == [str(i * CHUNK) for i in range(4)]
    assert [c.header("x-goog-upload-command") for c in chunks] == ["upload"] * 3 + ["upload, finalize"]
    assert [c.body_bytes for c in chunks] == [CHUNK] * 3 + [size - 3 * CHUNK]
    assert all(c.query["upload_id"] for c in chunks)
    assert gemini_server.files[fo.id].content == src.read_bytes()
    assert fo.bytes == size and fo.checksums["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()


def test_a_user_data_file_is_not_checked_and_keeps_its_purpose(client: Any, tmp_path: Path) -> None:
    pdf = tmp_path / "paper.pdf"
    pdf.write_bytes(b"%PDF-1.7 \x00\xff not JSON at all")
    fo = client.upload(pdf, purpose="user_data")
    assert fo.purpose == "user_data" and fo.id.startswith("files/user-data-")
    assert client.retrieve(fo.id).purpose == "user_data"
    assert client.retrieve(fo.id).raw["mimeType"] == "application/pdf"


# --- the key ------------------------------------------------------------------------------------------------------


def test_the_key_comes_from_google_api_key_first_then_gemini_api_key(
    gemini_server: GeminiLikeServer, tmp_path: Path
) -> None:
    src = batch_file(tmp_path / "b.jsonl")
    # https://ai.google.dev/gemini-api/docs/api-key: with both set, GOOGLE_API_KEY takes precedence
    both = {"GOOGLE_API_KEY": API_KEY, "GEMINI_API_KEY": "AIza-other-key-that-is-wrong"}
    with llmfiles.Client("gemini", environ=both, api_base=gemini_server.url) as c:
        assert c.upload(src, purpose="batch").id
    with llmfiles.Client("gemini", environ={"GEMINI_API_KEY": API_KEY}, api_base=gemini_server.url) as c:
        assert c.upload(src, purpose="batch").id
    assert [r.header("x-goog-api-key") for r in uploads(gemini_server)] == [API_KEY, API_KEY]


def test_a_refused_key_names_its_source_never_its_value(gemini_server: GeminiLikeServer, tmp_path: Path) -> None:
    wrong = "AIza-wrong-key-abcdefghijklmnop"
    env = {"GEMINI_API_KEY": wrong}
    with (
        llmfiles.Client("gemini", environ=env, api_base=gemini_server.url) as c,
        pytest.raises(AuthenticationError) as info,
    ):
        c.upload(batch_file(tmp_path / "b.jsonl"), purpose="batch")
    err = info.value
    text = str(err) + repr(err.__dict__)
    assert "API key not valid" in text and "env GEMINI_API_KEY" in text
    assert err.status == 400 and err.code == "INVALID_ARGUMENT"
    assert err.request_id == gemini_server.requests[-1].request_id
    assert wrong not in text and wrong[5:] not in text


def test_missing_key_names_every_place_looked(tmp_path: Path) -> None:
    with llmfiles.Client("gemini", environ={}) as c, pytest.raises(llmfiles.MissingCredentials) as info:
        c.upload(batch_file(tmp_path / "b.jsonl"), purpose="batch")
    assert "env GOOGLE_API_KEY" in str(info.value) and "env GEMINI_API_KEY" in str(info.value)


# --- limits and purposes, before any request ----------------------------------------------------------------------


def test_the_2_gb_limit_is_checked_before_anything_is_sent(
    client: Any, gemini_server: GeminiLikeServer, tmp_path: Path
) -> None:
    huge = tmp_path / "huge.jsonl"
    with open(huge, "wb") as fh:
        fh.truncate(MAX_FILE_SIZE + 1)  # sparse: nothing is written
    with pytest.raises(FileTooLarge) as info:
        client.upload(huge, purpose="user_data")
    assert f"{MAX_FILE_SIZE:,}" in str(info.value)
    plan = client.describe_upload(huge, purpose="user_data")
    assert plan["ok"] is False and any("larger than provider 'gemini' accepts" in p for p in plan["problems"])
    assert gemini_server.requests == []


def test_fine_tune_is_refused_naming_where_gemini_tuning_is(client: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidPurpose) as info:
        client.upload(tmp_path / "not-even-there.jsonl", purpose="fine-tune")
    assert "vertex_ai" in str(info.value) and "model-tuning" in str(info.value)
    assert "use one of: user_data, batch" in str(info.value)


# --- the File resource --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "status"),
    [("STATE_UNSPECIFIED", "uploaded"), ("PROCESSING", "pending"), ("ACTIVE", "processed"), ("FAILED", "error")],
)
def test_states_map_to_statuses(state: str, status: str) -> None:
    data = {
        "name": "files/abc-123",
        "sizeBytes": "10",
        "createTime": "2025-03-29T12:39:16.599879Z",
        "expirationTime": "2025-03-31T12:39:16.139536164Z",
        "state": state,
        "error": {"code": 3, "message": "unsupported file"},
    }
    fo = files.file_object("gemini", data, ("user_data", "batch"))
    assert fo.status == status and fo.id == "files/abc-123" and fo.bytes == 10 and fo.filename == "abc-123"
    assert fo.created_at == 1743251956 and fo.expires_at == 1743424756
    assert fo.status_details == "unsupported file"  # Gemini's error status, kept whatever the state says
    assert fo.purpose == "user_data"  # a file named by someone else


def test_processing_then_active_with_wait(
    gemini_server: GeminiLikeServer, gemini_settings: Any, tmp_path: Path
) -> None:
    gemini_server.processing_reads = 2
    with llmfiles.Client("gemini", environ={}, **gemini_settings) as c:
        fo = c.upload(batch_file(tmp_path / "b.jsonl"), purpose="batch")
        assert fo.status == "pending"
        done = c.upload(batch_file(tmp_path / "c.jsonl"), purpose="batch", wait=True)
        assert done.status == "processed"


@pytest.mark.parametrize("form", ["hex-text", "raw"])
def test_the_sha256_gemini_reports_is_read_in_either_form(gemini_settings: Any, tmp_path: Path, form: str) -> None:
    with GeminiLikeServer(api_key=API_KEY, sha256_form=form) as server:
        settings = {**gemini_settings, "api_base": server.url}
        with llmfiles.Client("gemini", environ={}, **settings) as c:
            src = batch_file(tmp_path / "b.jsonl")
            fo = c.upload(src, purpose="batch")
    assert fo.checksums == {"sha256": hashlib.sha256(src.read_bytes()).hexdigest()}
    assert files.sha256_hex("not base64 at all!") is None and files.sha256_hex("AAAA") is None


def test_bytes_changed_on_the_way_are_caught_by_the_sha256_and_deleted(
    proxied_settings: Any, proxy: FaultProxy, gemini_server: GeminiLikeServer, tmp_path: Path
) -> None:
    src = batch_file(tmp_path / "b.jsonl", 30)
    # flip a byte of the file in the request body, past the metadata part
    proxy.add_rule(lambda r: r.method == "POST", Corrupt(at=len(src.read_bytes()) // 2 + 300))
    with llmfiles.Client("gemini", environ={}, **proxied_settings) as c, pytest.raises(UploadFailed) as info:
        c.upload(src, purpose="batch", validate=False)
    assert "sha256" in str(info.value) and "was deleted again" in " ".join(info.value.__notes__)
    assert gemini_server.files == {}


# --- the other operations -----------------------------------------------------------------------------------------


def test_list_reads_every_page_and_filters_on_purpose(
    client: Any, gemini_server: GeminiLikeServer, tmp_path: Path
) -> None:
    made = [client.upload(batch_file(tmp_path / f"b{i}.jsonl"), purpose="batch").id for i in range(13)]
    made += [client.upload(batch_file(tmp_path / f"u{i}.jsonl"), purpose="user_data").id for i in range(4)]
    listed = [f.id for f in client.list_files(page_size=5)]
    assert listed == made
    lists = [r for r in gemini_server.requests if r.route == "list"]
    assert len(lists) == 4 and all(r.query["pageSize"] == ["5"] for r in lists)
    assert "pageToken" not in lists[0].query and all(r.query["pageToken"] for r in lists[1:])
    assert [f.id for f in client.list_files(purpose="user_data")] == made[13:]
    assert [f.id for f in client.list_files(purpose="batch")] == made[:13]
    assert {r.query["pageSize"][0] for r in gemini_server.requests if r.route == "list"} >= {"100"}  # the most a page


def test_retrieve_takes_the_id_in_every_form_gemini_shows_it(client: Any, tmp_path: Path) -> None:
    fo = client.upload(batch_file(tmp_path / "b.jsonl"), purpose="batch")
    bare = fo.id.removeprefix("files/")
    for form in (fo.id, bare, fo.raw["uri"]):
        assert client.retrieve(form).id == fo.id
    for bad in ("files/UPPER", "files/-dash", "files/a/b", "x" * 41, "../files/abc"):
        with pytest.raises(InputError, match="not a Gemini file id"):
            client.retrieve(bad)


def test_delete_then_the_file_is_gone(client: Any, gemini_server: GeminiLikeServer, tmp_path: Path) -> None:
    fo = client.upload(batch_file(tmp_path / "b.jsonl"), purpose="batch")
    assert client.delete(fo.id) is True
    assert gemini_server.requests[-1].method == "DELETE" and gemini_server.requests[-1].path == f"/v1beta/{fo.id}"
    with pytest.raises(FileNotFound) as info:
        client.retrieve(fo.id)
    assert info.value.status == 404 and info.value.code == "NOT_FOUND" and info.value.request_id


def test_download_serves_generated_files_and_passes_on_the_refusal_of_uploaded_ones(
    client: Any, gemini_server: GeminiLikeServer, tmp_path: Path
) -> None:
    results = b'{"key": "request-1", "response": {"candidates": []}}\n'
    name = gemini_server.add_generated(results)
    out = client.download(name, tmp_path / "results.jsonl")
    assert out.read_bytes() == results
    req = gemini_server.requests[-1]
    assert req.path == f"/download/v1beta/{name}:download" and req.query["alt"] == ["media"]
    fo = client.upload(batch_file(tmp_path / "b.jsonl"), purpose="batch")
    with pytest.raises(ProviderError, match="Only generated files can be downloaded") as info:
        client.download(fo.id, tmp_path / "mine.jsonl")
    assert info.value.status == 400 and not (tmp_path / "mine.jsonl").exists()


def test_errors_carry_googles_message_status_and_request_id(
    client: Any, gemini_server: GeminiLikeServer, tmp_path: Path
) -> None:
    gemini_server.fail("get", 400, message="Invalid argument: the name is malformed.")
    with pytest.raises(ProviderError) as info:
        client.retrieve("files/abc")
    err = info.value
    assert "Invalid argument: the name is malformed." in str(err)
    assert (err.status, err.code) == (400, "INVALID_ARGUMENT")
    assert err.request_id == gemini_server.requests_to("get")[-1].request_id
    assert err.request_id in str(err)
    # 5xx and 429 are retried
    gemini_server.fail("get", 503, times=2)
    fo = client.upload(batch_file(tmp_path / "b.jsonl"), purpose="batch")
    assert client.retrieve(fo.id).id == fo.id


# --- lost answers -------------------------------------------------------------------------------------------------


def test_a_lost_upload_answer_is_found_by_its_name_not_sent_twice(
    proxied_settings: Any, proxy: FaultProxy, gemini_server: GeminiLikeServer, tmp_path: Path
) -> None:
    src = batch_file(tmp_path / "b.jsonl")
    proxy.add_rule(lambda r: r.method == "POST" and r.path == "/upload/v1beta/files", DropResponse())
    with llmfiles.Client("gemini", environ={}, **proxied_settings) as c:
        fo = c.upload(src, purpose="batch")
    assert list(gemini_server.files) == [fo.id]
    posts = [r for r in proxy.requests if r.method == "POST"]
    assert len(posts) == 1 and posts[0].action == "drop response"
    assert proxy.requests[-1].method == "GET" and proxy.requests[-1].path == f"/v1beta/{fo.id}"


# --- where requests go --------------------------------------------------------------------------------------------


def test_the_base_url_comes_from_the_setting_or_google_gemini_base_url(
    gemini_server: GeminiLikeServer, tmp_path: Path
) -> None:
    env = {"GEMINI_API_KEY": API_KEY, "GOOGLE_GEMINI_BASE_URL": gemini_server.url + "/v1beta/"}
    with llmfiles.Client("gemini", environ=env) as c:
        fo = c.upload(batch_file(tmp_path / "b.jsonl"), purpose="batch")
        assert c.retrieve(fo.id).id == fo.id
    assert [r.path for r in gemini_server.requests] == ["/upload/v1beta/files", f"/v1beta/{fo.id}"]


def test_an_upload_url_naming_another_host_is_sent_to_the_base_url_instead(
    client: Any, gemini_server: GeminiLikeServer, tmp_path: Path
) -> None:
    gemini_server.upload_url_host = "uploads.elsewhere.invalid"  # the loopback guard fails the test if it is asked for
    src = batch_file(tmp_path / "big.jsonl", min_bytes=2 * CHUNK + 10)
    fo = client.upload(src, purpose="batch", multipart_threshold=CHUNK, part_size=CHUNK)
    assert gemini_server.files[fo.id].content == src.read_bytes()
    assert files.rebase("https://h.example/upload/v1beta/files?upload_id=x", "http://127.0.0.1:9/gw") == (
        "http://127.0.0.1:9/gw/upload/v1beta/files?upload_id=x"
    )


def test_the_dry_run_aims_at_the_documented_endpoints(tmp_path: Path) -> None:
    env = {"GEMINI_API_KEY": API_KEY}
    small, big = batch_file(tmp_path / "s.jsonl"), batch_file(tmp_path / "b.jsonl", min_bytes=9 * MiB)
    with llmfiles.Client("gemini", environ=env) as c:
        one = c.describe_upload(small, purpose="batch")
        parts = c.describe_upload(big, purpose="batch")
    assert one["ok"] and one["destination"] == "POST https://generativelanguage.googleapis.com/upload/v1beta/files"
    assert one["mode"] == "single request" and one["credentials"] == "env GEMINI_API_KEY"
    assert parts["ok"] and parts["destination"] == "https://generativelanguage.googleapis.com/upload/v1beta/files"
    assert (parts["mode"], parts["part_size"], parts["parallel"]) == ("parts", 8 * MiB, 1)
    assert any("gemini rules for 'batch' records" in c for c in one["checks"])


def test_the_upload_url_is_never_shown(
    client: Any, gemini_server: GeminiLikeServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gemini_server.fail("chunk", 400, skip=1, message="chunk refused")
    with pytest.raises(ProviderError, match="chunk refused") as info:
        client.upload(
            batch_file(tmp_path / "big.jsonl", min_bytes=3 * CHUNK),
            purpose="batch",
            multipart_threshold=CHUNK,
            part_size=CHUNK,
        )
    upload_id = next(r.query["upload_id"][0] for r in gemini_server.requests if "upload_id" in r.query)
    shown = str(info.value) + " ".join(getattr(info.value, "__notes__", [])) + caplog.text
    assert upload_id not in shown and API_KEY not in shown
    assert gemini_server.requests[-1].header("x-goog-upload-command") == "cancel"  # failed for good: ended
