"""The openai plugin against our stateful OpenAI-compatible server: the conformance kit, then what the server sees."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import llmfiles
from llmfiles import Client
from llmfiles.models import FileObject, HttpRequest, Operation, Source, SourceRange, UploadPlan
from llmfiles.testing import ProviderConformance
from llmfiles.transport import Transport
from llmfiles_openai import plugin
from servers.openai_like import OpenAILikeServer

MiB = 1024 * 1024
WRONG_KEY = "sk-wrong-key-not-the-real-one-42"


def md5_of(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(MiB):
            h.update(block)
    return h.hexdigest()


class TestOpenAIConformance(ProviderConformance):
    provider = "openai"

    @pytest.fixture
    def provider_settings(self, openai_settings: dict[str, Any]) -> dict[str, Any]:
        return openai_settings


# --- behaviour -----------------------------------------------------------------------------------------------


@pytest.fixture
def client(openai_settings: dict[str, Any]) -> Iterator[Client]:
    c = Client("openai", **openai_settings)
    yield c
    c.close()


LARGE = {"multipart_threshold": MiB, "part_size": MiB, "max_concurrency": 4}


def test_the_bytes_that_arrive_are_the_file(
    client: Client, openai_server: OpenAILikeServer, make_jsonl: Callable[..., Path]
) -> None:
    src = make_jsonl("train.jsonl", records=40)
    fo = client.upload(src, purpose="fine-tune")

    stored = openai_server.files[fo.id]
    assert stored.md5 == md5_of(src)
    assert stored.via == "files"
    (req,) = openai_server.requests_to("files.create")
    assert req.form == {"purpose": "fine-tune"}
    assert req.files["file"] == ("train.jsonl", src.stat().st_size, md5_of(src))
    assert req.headers["authorization"] == f"Bearer {openai_server.api_key}"
    assert req.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert int(req.headers["content-length"]) == req.body_bytes
    assert "transfer-encoding" not in req.headers
    assert fo.raw["object"] == "file"
    assert fo.status == "processed"


def test_binary_bytes_arrive_intact(client: Client, openai_server: OpenAILikeServer, tmp_path: Path) -> None:
    # every byte value, CR and LF in awkward places, a fake boundary: the multipart framing must not touch them
    data = bytes(range(256)) * 64 + b"\r\n--llmfiles-\r\n\r\r\n\n" + os.urandom(100_000) + b"\r"
    src = tmp_path / "blob.bin"
    src.write_bytes(data)
    fo = client.upload(src, purpose="assistants")
    assert openai_server.files[fo.id].content == data
    assert fo.bytes == len(data)


def test_large_upload_runs_parts_in_parallel_and_sends_the_md5(
    client: Client, openai_server: OpenAILikeServer, make_jsonl: Callable[..., Path], tmp_path: Path
) -> None:
    src = make_jsonl("large.jsonl", min_bytes=5 * MiB)
    size = src.stat().st_size
    openai_server.hold_parts(2)  # parts wait (up to 10 s) until two are in flight together

    fo = client.upload(src, purpose="fine-tune", **LARGE)

    assert openai_server.peak_parts_in_flight > 1
    assert not openai_server.gate_timed_out
    assert openai_server.requests_to("files.create") == []
    (start,) = openai_server.requests_to("uploads.create")
    assert start.json == {"filename": "large.jsonl", "purpose": "fine-tune", "bytes": size, "mime_type": "text/jsonl"}
    parts = openai_server.requests_to("uploads.parts")
    assert len(parts) == math.ceil(size / MiB)
    assert sorted(p.files["data"][1] for p in parts) == sorted([MiB] * (size // MiB) + [size % MiB])
    (complete,) = openai_server.requests_to("uploads.complete")
    assert complete.json["md5"] == md5_of(src)
    assert len(complete.json["part_ids"]) == len(parts)
    assert openai_server.requests_to("uploads.cancel") == []

    stored = openai_server.files[fo.id]
    assert stored.via == "uploads" and stored.md5 == md5_of(src)
    assert (fo.bytes, fo.filename, fo.purpose) == (size, "large.jsonl", "fine-tune")
    (upload,) = openai_server.uploads.values()
    assert upload.status == "completed" and upload.file_id == fo.id and upload.complete_md5 == md5_of(src)
    assert client.download(fo.id, tmp_path / "back.jsonl").read_bytes() == src.read_bytes()


def test_large_upload_without_validation_still_sends_the_md5(
    client: Client, openai_server: OpenAILikeServer, make_jsonl: Callable[..., Path]
) -> None:
    # no check pass means no digest from it: the engine computes the MD5 beside the upload
    src = make_jsonl("large.jsonl", min_bytes=3 * MiB)
    fo = client.upload(src, purpose="fine-tune", validate=False, **LARGE)
    (complete,) = openai_server.requests_to("uploads.complete")
    assert complete.json["md5"] == md5_of(src) == openai_server.files[fo.id].md5


@pytest.mark.parametrize("validate", [True, False])
def test_checksum_off_sends_no_md5_and_computes_none(
    client: Client,
    openai_server: OpenAILikeServer,
    make_jsonl: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    validate: bool,
) -> None:
    src = make_jsonl("large.jsonl", min_bytes=3 * MiB)
    made: list[str] = []
    real_new = hashlib.new

    def spy(name: str, *args: Any, **kwargs: Any) -> Any:
        made.append(name)
        return real_new(name, *args, **kwargs)

    monkeypatch.setattr(hashlib, "new", spy)
    fo = client.upload(src, purpose="fine-tune", validate=validate, checksum=False, **LARGE)
    (complete,) = openai_server.requests_to("uploads.complete")
    assert "md5" not in complete.json
    assert "md5" not in made  # neither the check pass nor the engine spent a pass on it
    assert openai_server.files[fo.id].bytes == src.stat().st_size


def test_a_part_that_fails_once_is_retried(
    client: Client, openai_server: OpenAILikeServer, make_jsonl: Callable[..., Path]
) -> None:
    src = make_jsonl("large.jsonl", min_bytes=3 * MiB)
    fault = openai_server.fail("uploads.parts", 500, times=1)

    fo = client.upload(src, purpose="fine-tune", **LARGE)

    assert fault.hits == 1
    parts = openai_server.requests_to("uploads.parts")
    assert len(parts) == math.ceil(src.stat().st_size / MiB) + 1
    assert [p.status for p in parts].count(500) == 1
    assert openai_server.files[fo.id].md5 == md5_of(src)
    assert openai_server.requests_to("uploads.cancel") == []


def test_a_part_whose_connection_drops_is_retried(
    client: Client, openai_server: OpenAILikeServer, make_jsonl: Callable[..., Path]
) -> None:
    src = make_jsonl("large.jsonl", min_bytes=3 * MiB)
    fault = openai_server.drop("uploads.parts", times=1)

    fo = client.upload(src, purpose="fine-tune", **LARGE)

    assert fault.hits == 1
    assert [p.fault for p in openai_server.requests_to("uploads.parts")].count("drop") == 1
    assert openai_server.files[fo.id].md5 == md5_of(src)


@pytest.mark.parametrize("status", [400, 403])
def test_a_part_that_fails_for_good_cancels_the_upload(
    status: int, client: Client, openai_server: OpenAILikeServer, make_jsonl: Callable[..., Path]
) -> None:
    src = make_jsonl("large.jsonl", min_bytes=3 * MiB)
    openai_server.fail("uploads.parts", status, times=1000, message="part refused")

    with pytest.raises(llmfiles.ProviderError) as info:
        client.upload(src, purpose="fine-tune", max_retries=1, **LARGE)

    assert info.value.status == status
    assert "part refused" in str(info.value)
    assert any("aborted" in note for note in getattr(info.value, "__notes__", []))
    (cancel,) = openai_server.requests_to("uploads.cancel")
    assert cancel.status == 200
    (upload,) = openai_server.uploads.values()
    assert upload.status == "cancelled"
    assert openai_server.requests_to("uploads.complete") == []
    assert openai_server.files == {}


def test_a_server_that_stays_down_keeps_the_upload_for_the_next_run(
    client: Client, openai_server: OpenAILikeServer, make_jsonl: Callable[..., Path]
) -> None:
    """500s until the retries run out: the session is kept (not cancelled), and the next run sends only the parts
    that are missing to the same upload."""
    src = make_jsonl("large.jsonl", min_bytes=3 * MiB)
    openai_server.fail("uploads.parts", 500, skip=2, times=1000, message="down")
    with pytest.raises(llmfiles.ProviderError) as info:
        client.upload(src, purpose="fine-tune", max_retries=1, **{**LARGE, "max_concurrency": 1})
    assert info.value.status == 500
    assert any("session was kept" in note for note in info.value.__notes__)
    assert openai_server.requests_to("uploads.cancel") == []
    openai_server.faults.clear()

    fo = client.upload(src, purpose="fine-tune", **LARGE)
    assert len(openai_server.requests_to("uploads.create")) == 1  # the same upload
    accepted = [r for r in openai_server.requests_to("uploads.parts") if r.status == 200]
    assert len(accepted) == -(-src.stat().st_size // MiB)  # every part accepted once
    assert openai_server.files[fo.id].md5 == md5_of(src)
    assert client.unfinished_uploads() == []


@pytest.mark.parametrize("where", ["argument", "client", "env"])
def test_a_refused_key_says_where_it_came_from_and_never_shows_it(
    where: str,
    openai_server: OpenAILikeServer,
    monkeypatch: pytest.MonkeyPatch,
    make_jsonl: Callable[..., Path],
) -> None:
    src = make_jsonl()
    call: dict[str, Any] = {}
    settings: dict[str, Any] = {"api_base": openai_server.url}
    if where == "argument":
        call["api_key"] = WRONG_KEY
        expected = "argument api_key"
    elif where == "client":
        settings["api_key"] = WRONG_KEY
        expected = "Client setting api_key"
    else:
        monkeypatch.setenv("OPENAI_API_KEY", WRONG_KEY)
        expected = "env OPENAI_API_KEY"

    with Client("openai", **settings) as client, pytest.raises(llmfiles.AuthenticationError) as info:
        client.upload(src, purpose="fine-tune", **call)

    err = info.value
    assert err.status == 401 and err.code == "invalid_api_key"
    assert expected in str(err)
    assert err.request_id == openai_server.requests[-1].request_id
    everything = " ".join([str(err), repr(err), err.message, *getattr(err, "__notes__", [])])
    assert WRONG_KEY not in everything
    assert len(openai_server.requests_to("files.create")) == 1  # a refused key is not retried


def test_429_waits_for_retry_after(
    openai_server: OpenAILikeServer,
    openai_settings: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    make_jsonl: Callable[..., Path],
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(Transport, "_sleep", staticmethod(lambda delay, deadline_at, err: waits.append(delay)))
    openai_server.fail("files.create", 429, headers={"Retry-After": "2"})

    with Client("openai", **{**openai_settings, "max_retry_wait": 60}) as client:
        fo = client.upload(make_jsonl(), purpose="fine-tune")

    assert waits == [2.0]
    assert [r.status for r in openai_server.requests_to("files.create")] == [429, 200]
    assert fo.id in openai_server.files


def test_429_retry_after_is_capped_by_max_retry_wait(
    client: Client, openai_server: OpenAILikeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(Transport, "_sleep", staticmethod(lambda delay, deadline_at, err: waits.append(delay)))
    openai_server.fail("files.retrieve", 429, times=2, headers={"Retry-After": "30"})
    with pytest.raises(llmfiles.FileNotFound):
        client.retrieve("file-missing")
    assert waits == [0.01, 0.01]
    assert [r.status for r in openai_server.requests_to("files.retrieve")] == [429, 429, 404]


def test_retries_exhausted_on_429_reports_the_provider_error(
    client: Client, openai_server: OpenAILikeServer, make_jsonl: Callable[..., Path]
) -> None:
    openai_server.fail("files.create", 429, times=10, headers={"Retry-After": "0"})
    with pytest.raises(llmfiles.ProviderError) as info:
        client.upload(make_jsonl(), purpose="fine-tune", max_retries=2)
    assert info.value.status == 429 and info.value.code == "rate_limit_exceeded"
    assert any("3 attempts" in note for note in info.value.__notes__)
    assert len(openai_server.requests_to("files.create")) == 3


@pytest.mark.parametrize("keep_on_error", [False, True])
def test_training_file_is_deleted_when_the_validation_upload_fails(
    keep_on_error: bool, client: Client, openai_server: OpenAILikeServer, make_jsonl: Callable[..., Path]
) -> None:
    train, valid = make_jsonl("train.jsonl"), make_jsonl("valid.jsonl")
    openai_server.fail("files.create", 400, skip=1, message="validation file refused")

    with pytest.raises(llmfiles.ProviderError) as info:
        client.upload_training_files(train, valid, keep_on_error=keep_on_error)

    assert "validation file refused" in str(info.value)
    first = openai_server.requests_to("files.create")[0]
    assert first.status == 200 and first.files["file"][0] == "train.jsonl"
    notes = " ".join(info.value.__notes__)
    if keep_on_error:
        (kept,) = openai_server.files.values()
        assert kept.filename == "train.jsonl"
        assert openai_server.requests_to("files.delete") == []
        assert "kept" in notes and kept.id in notes
    else:
        (deleted,) = openai_server.requests_to("files.delete")
        assert deleted.status == 200
        assert openai_server.files == {}
        assert "deleted again" in notes


def test_training_and_validation_files_upload_together(
    client: Client, openai_server: OpenAILikeServer, make_jsonl: Callable[..., Path]
) -> None:
    result = client.upload_training_files(make_jsonl("train.jsonl"), make_jsonl("valid.jsonl"))
    assert result.validation is not None
    assert {result.training.id, result.validation.id} == set(openai_server.files)
    assert result.training.filename == "train.jsonl" and result.validation.filename == "valid.jsonl"


def test_listing_follows_the_after_cursor(
    client: Client,
    openai_server: OpenAILikeServer,
    make_jsonl: Callable[..., Path],
    make_batch_jsonl: Callable[..., Path],
) -> None:
    ids = [client.upload(make_jsonl(f"f{i}.jsonl"), purpose="fine-tune").id for i in range(5)]
    other = client.upload(make_batch_jsonl("b.jsonl"), purpose="batch").id

    listed = [f.id for f in client.list_files(purpose="fine-tune", page_size=2)]

    assert sorted(listed) == sorted(ids) and other not in listed
    requests = openai_server.requests_to("files.list")
    assert [r.query.get("limit") for r in requests] == [["2"], ["2"], ["2"]]
    assert [r.query.get("purpose") for r in requests] == [["fine-tune"]] * 3
    assert requests[0].query.get("after") is None
    assert [r.query["after"][0] for r in requests[1:]] == [listed[1], listed[3]]
    assert len({f.id for f in client.list_files()}) == 6


def test_unknown_file_maps_to_file_not_found_with_the_provider_details(
    client: Client, openai_server: OpenAILikeServer
) -> None:
    with pytest.raises(llmfiles.FileNotFound) as info:
        client.retrieve("file-nope")
    err = info.value
    assert err.status == 404 and err.param == "id" and err.error_type == "invalid_request_error"
    assert "No such File object: file-nope" in str(err)
    assert err.request_id == openai_server.requests[-1].request_id and err.request_id in str(err)


def test_file_ids_are_quoted_into_the_path(client: Client, openai_server: OpenAILikeServer) -> None:
    with pytest.raises(llmfiles.FileNotFound):
        client.retrieve("../uploads?x=1")
    (req,) = openai_server.requests_to("files.retrieve")
    assert req.path == "/v1/files/..%2Fuploads%3Fx%3D1" and req.query == {}


def test_expires_after_option_reaches_the_provider(
    client: Client, openai_server: OpenAILikeServer, make_batch_jsonl: Callable[..., Path]
) -> None:
    small = client.upload(make_batch_jsonl(), purpose="batch", expires_after=7200)
    assert small.expires_at == small.created_at + 7200
    assert openai_server.requests_to("files.create")[0].form["expires_after[seconds]"] == "7200"

    large = client.upload(
        make_batch_jsonl("large.jsonl", min_bytes=2 * MiB),
        purpose="batch",
        expires_after=3600,
        **LARGE,
    )
    assert large.expires_at == large.created_at + 3600
    assert openai_server.requests_to("uploads.create")[0].json["expires_after"] == {
        "anchor": "created_at",
        "seconds": 3600,
    }


def test_unknown_or_bad_settings_are_refused_before_anything_is_sent(
    client: Client, openai_server: OpenAILikeServer, make_jsonl: Callable[..., Path]
) -> None:
    with pytest.raises(llmfiles.errors.InvalidSetting, match="no setting 'colour'"):
        client.upload(make_jsonl(), purpose="fine-tune", colour="blue")
    with pytest.raises(llmfiles.errors.InvalidSetting, match="3600 to 2592000"):
        client.upload(make_jsonl(), purpose="fine-tune", expires_after=60)
    assert openai_server.requests == []


def test_organization_and_project_headers(
    openai_server: OpenAILikeServer, openai_settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_ORG_ID", "org-123")
    with Client("openai", **openai_settings, project="proj_9") as client, pytest.raises(llmfiles.FileNotFound):
        client.retrieve("file-x")
    (req,) = openai_server.requests_to("files.retrieve")
    assert req.headers["openai-organization"] == "org-123" and req.headers["openai-project"] == "proj_9"


def test_api_base_from_the_environment(
    openai_server: OpenAILikeServer, monkeypatch: pytest.MonkeyPatch, make_jsonl: Callable[..., Path]
) -> None:
    monkeypatch.setenv("OPENAI_API_BASE", "http://127.0.0.1:9/v1")  # the second name: OPENAI_BASE_URL wins
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.url)
    monkeypatch.setenv("OPENAI_API_KEY", openai_server.api_key)
    fo = llmfiles.upload(make_jsonl(), purpose="fine-tune", provider="openai")
    assert fo.id in openai_server.files


def test_large_user_data_and_evals_files_are_refused_before_any_request(
    client: Client, openai_server: OpenAILikeServer, make_jsonl: Callable[..., Path]
) -> None:
    src = make_jsonl("large.jsonl", min_bytes=2 * MiB)
    for purpose in ("user_data", "evals"):
        with pytest.raises(llmfiles.InvalidPurpose) as info:
            client.upload(src, purpose=purpose, **LARGE)
        assert "assistants, batch, fine-tune, vision" in str(info.value) and "multipart threshold" in str(info.value)
    assert openai_server.requests == []
    assert client.upload(src, purpose="user_data").id in openai_server.files  # one request is fine


def test_files_over_8_gb_are_refused_before_any_request(
    client: Client, openai_server: OpenAILikeServer, tmp_path: Path
) -> None:
    huge = tmp_path / "huge.jsonl"
    with open(huge, "wb") as fh:  # sparse: nothing is written or read
        fh.truncate(8 * 1000**3 + 1)
    with pytest.raises(llmfiles.FileTooLarge, match="8,000,000,000"):
        client.upload(huge, purpose="fine-tune")
    assert openai_server.requests == []


def test_the_threshold_cannot_exceed_the_single_request_limit(client: Client, make_jsonl: Callable[..., Path]) -> None:
    plan = client.describe_upload(make_jsonl(), purpose="fine-tune", multipart_threshold="1TiB")
    assert plan["mode"] == "single request"
    assert plugin.SINGLE_REQUEST_LIMIT == 512 * 1000**2


def test_wait_polls_until_processed(
    client: Client, openai_server: OpenAILikeServer, make_jsonl: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("time.sleep", lambda s: None)
    openai_server.pending_reads = 2  # create and the first retrieve show the file still being processed
    fo = client.upload(make_jsonl(), purpose="fine-tune", wait=True)
    assert fo.status == "processed"
    assert len(openai_server.requests_to("files.retrieve")) >= 2


def test_wait_reports_status_details_on_error(
    client: Client, openai_server: OpenAILikeServer, make_jsonl: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("time.sleep", lambda s: None)
    openai_server.processing_error = "line 3: invalid role"
    with pytest.raises(llmfiles.ProviderError, match="line 3: invalid role"):
        client.upload(make_jsonl(), purpose="fine-tune", wait=True)


def test_dry_run_names_the_uploads_api(client: Client, make_jsonl: Callable[..., Path]) -> None:
    src = make_jsonl("large.jsonl", min_bytes=3 * MiB)
    plan = client.describe_upload(src, purpose="fine-tune", **LARGE)
    assert plan["mode"] == "parts" and plan["destination"].endswith("/v1/uploads")
    assert plan["credentials"] == "Client setting api_key"
    assert plan["parallel"] == 4


# --- the plugin on its own: data in, data out ----------------------------------------------------------------


class _UnreadableSource(Source):
    """A source that fails if anything tries to read it: building requests must not."""

    def __init__(self, size: int) -> None:
        self.name = "train.jsonl"
        self.size = size
        self.display = "<unreadable>"

    def read_range(self, offset: int, length: int, blocksize: int) -> Iterator[bytes]:
        raise AssertionError("the plugin read the file")


def _build(operation: Operation, **settings: Any) -> Any:
    from llmfiles.models import Credentials, Secret, Settings

    values = {"api_base": "http://127.0.0.1:9/v1/", "part_size": 8 * MiB, **settings}
    return plugin.llmfiles_build_request(
        provider="openai",
        operation=operation,
        credentials=Credentials(kind="api_key", source="test", secret=Secret("sk-secret-value")),
        settings=Settings(provider="openai", values=values),
    )


def test_upload_request_streams_the_file_without_reading_it() -> None:
    source = _UnreadableSource(123_456_789)
    request = _build(Operation(name="upload", purpose="fine-tune", source=source, filename="train.jsonl"))
    assert isinstance(request, HttpRequest)
    assert request.method == "POST" and request.url == "http://127.0.0.1:9/v1/files"
    ranges = [seg for seg in request.body if isinstance(seg, SourceRange)]
    assert len(ranges) == 1 and ranges[0].source is source
    assert (ranges[0].offset, ranges[0].length) == (0, source.size)
    assert request.headers["Authorization"] == "Bearer sk-secret-value"
    assert "sk-secret-value" not in repr(request)


def test_upload_plan_speaks_the_uploads_api() -> None:
    from llmfiles.models import HttpResponse, Part

    source = _UnreadableSource(200 * MiB)
    plan = _build(Operation(name="upload_parts", purpose="batch", source=source, filename="train.jsonl"))
    assert isinstance(plan, UploadPlan)
    assert plan.digests == ("md5",) and not plan.sequential
    assert plan.max_part_size == 64 * MiB and plan.abort is not None
    assert plan.start is not None and json.loads(plan.start.body) == {
        "filename": "train.jsonl",
        "purpose": "batch",
        "bytes": 200 * MiB,
        "mime_type": "text/jsonl",
    }
    state = plan.read_start(HttpResponse(status=200, body=b'{"id": "upload_1", "object": "upload"}'))
    assert json.loads(json.dumps(state)) == state  # resumable state is plain JSON
    part = Part(
        index=2, offset=16 * MiB, length=8 * MiB, body=SourceRange(source=source, offset=16 * MiB, length=8 * MiB)
    )
    request = plan.part(state, part)
    assert request.url == "http://127.0.0.1:9/v1/uploads/upload_1/parts"
    assert [seg for seg in request.body if isinstance(seg, SourceRange)] == [part.body]
    receipt = plan.read_part(state, part, HttpResponse(status=200, body=b'{"id": "part_3"}'), {})
    complete = plan.complete(state, [{"part_id": "part_1"}, {"part_id": "part_2"}, receipt], {"md5": "abc"})
    assert json.loads(complete.body) == {"part_ids": ["part_1", "part_2", "part_3"], "md5": "abc"}
    assert plan.abort(state).url == "http://127.0.0.1:9/v1/uploads/upload_1/cancel"
    file = {"id": "file-1", "bytes": 1, "created_at": 5, "filename": "t", "purpose": "batch", "status": "processed"}
    done = plan.read_complete(
        state, HttpResponse(status=200, body=json.dumps({"status": "completed", "file": file}).encode())
    )
    assert isinstance(done, FileObject) and done.id == "file-1"
    with pytest.raises(llmfiles.ProviderError, match="cancelled"):
        plan.read_complete(state, HttpResponse(status=200, body=b'{"status": "cancelled", "file": null}'))


def test_hooks_answer_none_for_other_providers() -> None:
    from llmfiles.models import HttpResponse, Settings

    op = Operation(name="retrieve", file_id="file-1")
    assert (
        plugin.llmfiles_resolve_credentials(
            provider="local", settings=Settings(provider="local", values={}), environ={}
        )
        is None
    )
    assert plugin.llmfiles_normalize_response(provider="azure", operation=op, response=HttpResponse(status=200)) is None
    assert (
        plugin.llmfiles_build_request(
            provider="azure", operation=op, credentials=None, settings=Settings(provider="azure", values={})
        )
        is None
    )


def test_malformed_answers_become_provider_errors(client: Client, openai_server: OpenAILikeServer) -> None:
    from llmfiles.models import HttpResponse

    op = Operation(name="retrieve", file_id="file-1")
    for body in (b"not json", b"[]", b'{"id": "file-1"}'):
        with pytest.raises(llmfiles.ProviderError, match="unexpected answer"):
            plugin.llmfiles_normalize_response(
                provider="openai", operation=op, response=HttpResponse(status=200, body=body)
            )
    err = plugin.llmfiles_normalize_response(
        provider="openai", operation=op, response=HttpResponse(status=502, body=b"<html>bad gateway</html>")
    )
    assert isinstance(err, llmfiles.ProviderError) and err.status == 502 and "bad gateway" in err.message
