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
from llmfiles.clock import FakeClock
from llmfiles.models import (
    Credentials,
    Delete,
    Download,
    FileObject,
    FileRange,
    HttpResponse,
    ListFiles,
    Operation,
    Part,
    Retrieve,
    Secret,
    Settings,
    Upload,
    UploadFacts,
    UploadParts,
)
from llmfiles.provider import Exchange, Provider
from llmfiles.testing import ProviderConformance
from llmfiles_openai import plugin, presets, wire
from servers.fault_proxy import DropResponse, FaultProxy, Respond
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
    openai_server: OpenAILikeServer, openai_settings: dict[str, Any], make_jsonl: Callable[..., Path]
) -> None:
    clock = FakeClock()
    openai_server.fail("files.create", 429, headers={"Retry-After": "2"})

    with Client("openai", clock=clock, **{**openai_settings, "max_retry_wait": 60}) as client:
        fo = client.upload(make_jsonl(), purpose="fine-tune")

    assert clock.sleeps == [2.0]
    assert [r.status for r in openai_server.requests_to("files.create")] == [429, 200]
    assert fo.id in openai_server.files


def test_429_retry_after_is_capped_by_max_retry_wait(
    openai_server: OpenAILikeServer, openai_settings: dict[str, Any]
) -> None:
    clock = FakeClock()
    openai_server.fail("files.retrieve", 429, times=2, headers={"Retry-After": "30"})
    with Client("openai", clock=clock, **openai_settings) as client, pytest.raises(llmfiles.FileNotFound):
        client.retrieve("file-missing")
    assert clock.sleeps == [0.01, 0.01]
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


def test_credentials_from_a_vault_plugin_send_their_headers(
    openai_server: OpenAILikeServer, make_jsonl: Callable[..., Path]
) -> None:
    """An in-house ``llmfiles_credentials`` hook answers instead of the provider: its headers are what is sent."""
    from llmfiles.plugins import PluginManager

    class Vault:
        @llmfiles.hookimpl
        def llmfiles_credentials(self, provider: str, settings: Any, environ: Any, http: Any) -> Credentials:
            return Credentials(
                kind="bearer", source="the vault", headers={"Authorization": f"Bearer {openai_server.api_key}"}
            )

    pm = PluginManager(load_entry_points=False)
    pm.register(plugin, "openai")
    pm.register(Vault(), "vault")
    with Client("openai", plugin_manager=pm, environ={}, api_base=openai_server.url) as client:
        assert client.describe_upload(make_jsonl(), purpose="fine-tune")["credentials"] == "the vault"
        fo = client.upload(make_jsonl(), purpose="fine-tune")
    (req,) = openai_server.requests_to("files.create")
    assert req.status == 200 and req.headers["authorization"] == f"Bearer {openai_server.api_key}"
    assert fo.id in openai_server.files


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
    openai_server: OpenAILikeServer, openai_settings: dict[str, Any], make_jsonl: Callable[..., Path]
) -> None:
    clock = FakeClock()
    openai_server.pending_reads = 2  # create and the first retrieve show the file still being processed
    with Client("openai", clock=clock, **openai_settings) as client:
        fo = client.upload(make_jsonl(), purpose="fine-tune", wait=True)
    assert fo.status == "processed"
    assert len(openai_server.requests_to("files.retrieve")) >= 2
    assert clock.sleeps[:2] == [0.5, 1.0]  # polled with backoff, on the client's clock


def test_wait_reports_status_details_on_error(
    openai_server: OpenAILikeServer, openai_settings: dict[str, Any], make_jsonl: Callable[..., Path]
) -> None:
    openai_server.processing_error = "line 3: invalid role"
    with (
        Client("openai", clock=FakeClock(), **openai_settings) as client,
        pytest.raises(llmfiles.ProviderError, match="line 3: invalid role") as info,
    ):
        client.upload(make_jsonl(), purpose="fine-tune", wait=True)
    assert info.value.code == "processing_error"


def test_dry_run_names_the_uploads_api(client: Client, make_jsonl: Callable[..., Path]) -> None:
    src = make_jsonl("large.jsonl", min_bytes=3 * MiB)
    plan = client.describe_upload(src, purpose="fine-tune", **LARGE)
    assert plan["mode"] == "parts" and plan["destination"].endswith("/v1/uploads")
    assert plan["credentials"] == "Client setting api_key"
    assert plan["parallel"] == 4


# --- lost answers ---------------------------------------------------------------------------------------------


@pytest.fixture
def proxy(openai_server: OpenAILikeServer) -> Iterator[FaultProxy]:
    """Our fault proxy in front of the server."""
    with FaultProxy("127.0.0.1", openai_server.port) as p:
        yield p


def _creates(req: Any) -> bool:
    return req.method == "POST" and req.path == "/v1/files"


def test_a_lost_answer_whose_file_cannot_be_told_apart_is_maybe_uploaded(
    proxy: FaultProxy, openai_server: OpenAILikeServer, make_jsonl: Callable[..., Path]
) -> None:
    """Changed on purpose in v2: the server created the file but its answer was lost; the probe finds a file of the
    same name and size made since the upload started, and OpenAI's file objects carry no checksum to tell whether it
    holds these bytes, so the upload stops with MaybeUploaded naming it (it used to return that file as the upload's)
    and nothing is sent again."""
    proxy.add_rule(_creates, DropResponse())
    src = make_jsonl("lost.jsonl")
    client = Client("openai", api_base=proxy.url + "/v1", api_key=openai_server.api_key, max_retry_wait=0.01)
    with client, pytest.raises(llmfiles.MaybeUploaded) as info:
        client.upload(src, purpose="fine-tune")
    (made,) = openai_server.files.values()
    assert info.value.candidates == (made.id,) and made.id in str(info.value)
    assert made.md5 == md5_of(src)
    assert len(openai_server.requests_to("files.create")) == 1  # never sent a second time
    (probe,) = openai_server.requests_to("files.list")
    assert probe.query == {"purpose": ["fine-tune"], "limit": ["100"], "order": ["desc"]}


def test_a_create_a_gateway_never_forwarded_is_sent_again(
    proxy: FaultProxy, openai_server: OpenAILikeServer, make_jsonl: Callable[..., Path]
) -> None:
    """A 502 from a gateway: the probe finds no file, so the create is sent again, and exactly one file exists."""
    proxy.add_rule(_creates, Respond(502, body=b"<html>bad gateway</html>"))
    src = make_jsonl("gateway.jsonl")
    with Client("openai", api_base=proxy.url + "/v1", api_key=openai_server.api_key, max_retry_wait=0.01) as client:
        fo = client.upload(src, purpose="fine-tune")
    assert list(openai_server.files) == [fo.id] and openai_server.files[fo.id].md5 == md5_of(src)
    assert len(openai_server.requests_to("files.list")) == 1  # looked before sending again
    assert len(openai_server.requests_to("files.create")) == 1


# --- the plugin on its own: data in, data out ----------------------------------------------------------------

SECRET = "sk-secret-value"


def _exchange(op: Operation, **settings: Any) -> Any:
    values = {"api_base": "http://127.0.0.1:9/v1/", **settings}
    return plugin.OpenAIProvider().exchange(
        op,
        Credentials(kind="api_key", source="test", secret=Secret(SECRET)),
        Settings(provider="openai", values=values),
    )


def _answer(data: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(status=status, body=json.dumps(data).encode())


FILE = {"id": "file-1", "bytes": 1, "created_at": 5, "filename": "t", "purpose": "batch", "status": "processed"}


def test_upload_exchange_puts_a_file_range_where_the_file_goes() -> None:
    """The provider never sees the file: the core streams it into the FileRange the body holds."""
    facts = UploadFacts(purpose="fine-tune", filename="train.jsonl", size=123_456_789, head=b'{"messages"')
    ex = _exchange(Upload(file=facts))
    assert isinstance(ex, Exchange)
    request = ex.request
    assert request.method == "POST" and request.url == "http://127.0.0.1:9/v1/files"
    assert isinstance(request.body, tuple)
    assert [seg for seg in request.body if isinstance(seg, FileRange)] == [FileRange(offset=0, length=facts.size)]
    form = b"".join(seg for seg in request.body if isinstance(seg, bytes))
    assert b'name="purpose"\r\n\r\nfine-tune' in form and b'filename="train.jsonl"' in form
    assert request.headers["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in repr(request) and SECRET not in repr(ex)
    # a lost answer is looked for among the newest files of the purpose: same name and size only
    assert ex.probe is not None and not ex.probe.unique
    assert ex.probe.request.method == "GET" and ex.probe.request.headers["Authorization"] == f"Bearer {SECRET}"
    assert ex.probe.request.url == "http://127.0.0.1:9/v1/files?purpose=fine-tune&limit=100&order=desc"
    same = {**FILE, "id": "file-same", "filename": "train.jsonl", "purpose": "fine-tune", "bytes": facts.size}
    listing = {"data": [same, {**same, "id": "file-other", "bytes": 5}, {**same, "id": "x", "filename": "o"}]}
    assert [f.id for f in ex.probe.read(_answer(listing))] == ["file-same"]
    fo = ex.read(_answer(same))
    assert isinstance(fo, FileObject) and fo.checksums == {}  # OpenAI reports no checksum


def test_uploads_protocol_speaks_the_uploads_api() -> None:
    facts = UploadFacts(purpose="batch", filename="train.jsonl", size=200 * MiB)
    protocol = _exchange(UploadParts(file=facts))
    assert isinstance(protocol, wire.Uploads)
    assert protocol.digests == ("md5",) and protocol.parallel and protocol.resumable
    assert protocol.limits.maximum == 64 * MiB and protocol.session_ttl == 3600
    assert protocol.destination == "http://127.0.0.1:9/v1/uploads"
    start = protocol.start()
    assert json.loads(start.request.body) == {
        "filename": "train.jsonl",
        "purpose": "batch",
        "bytes": 200 * MiB,
        "mime_type": "text/jsonl",
    }
    state = start.read(_answer({"id": "upload_1", "object": "upload"}))
    assert json.loads(json.dumps(state)) == state  # resumable state is plain JSON
    part = Part(index=2, offset=16 * MiB, length=8 * MiB)
    ex = protocol.part(state, part)
    assert ex.request.url == "http://127.0.0.1:9/v1/uploads/upload_1/parts"
    assert [seg for seg in ex.request.body if isinstance(seg, FileRange)] == [part.body]
    assert ex.request.headers["Authorization"] == f"Bearer {SECRET}"
    receipt = ex.read(_answer({"id": "part_3"}))
    complete = protocol.complete(state, [{"part_id": "part_1"}, {"part_id": "part_2"}, receipt], {"md5": "abc"})
    assert json.loads(complete.request.body) == {"part_ids": ["part_1", "part_2", "part_3"], "md5": "abc"}
    assert complete.probe is not None  # a completed upload cannot be completed again: its lost answer is looked for
    abort = protocol.abort(state)
    assert abort.request.url == "http://127.0.0.1:9/v1/uploads/upload_1/cancel"
    done = complete.read(_answer({"status": "completed", "file": FILE}))
    assert isinstance(done, FileObject) and done.id == "file-1"
    with pytest.raises(llmfiles.ProviderError, match="cancelled"):
        complete.read(_answer({"status": "cancelled", "file": None}))


@pytest.mark.parametrize(
    ("op", "method", "url"),
    [
        (Retrieve(file_id="file-1"), "GET", "http://127.0.0.1:9/v1/files/file-1"),
        (Delete(file_id="a/b?c"), "DELETE", "http://127.0.0.1:9/v1/files/a%2Fb%3Fc"),
        (Download(file_id="file-1"), "GET", "http://127.0.0.1:9/v1/files/file-1/content"),
        (
            ListFiles(purpose="batch", cursor="file-9", limit=5),
            "GET",
            "http://127.0.0.1:9/v1/files?purpose=batch&after=file-9&limit=5",
        ),
    ],
)
def test_every_operation_is_one_signed_request(op: Operation, method: str, url: str) -> None:
    ex = _exchange(op, organization="org-1")
    assert isinstance(ex, Exchange) and ex.probe is None
    assert (ex.request.method, ex.request.url) == (method, url)
    assert ex.request.headers["Authorization"] == f"Bearer {SECRET}"
    assert ex.request.headers["OpenAI-Organization"] == "org-1"


def test_the_plugin_registers_one_provider_object_and_no_other_hook() -> None:
    hooks = [name for name in dir(plugin) if hasattr(getattr(plugin, name), "llmfiles_impl")]
    assert hooks == ["llmfiles_register_providers"]
    registered: list[Any] = []
    plugin.llmfiles_register_providers(registered.append)
    # openai, then one provider per row of presets.toml (OpenAI-compatible platforms as data)
    provider, *rows = registered
    assert isinstance(provider, Provider) and provider.info.name == "openai"
    assert [p.info.name for p in rows] == [row.name for row in presets.load()]
    assert all(isinstance(p, presets.PresetProvider) for p in rows)
    assert provider.record_checker("assistants", Settings(provider="openai", values={})) is None


def test_malformed_answers_become_provider_errors() -> None:
    ex = _exchange(Retrieve(file_id="file-1"))
    for body in (b"not json", b"[]", b'{"id": "file-1"}'):
        with pytest.raises(llmfiles.ProviderError, match="unexpected answer"):
            ex.read(HttpResponse(status=200, body=body))
    err = ex.error(HttpResponse(status=502, body=b"<html>bad gateway</html>"))
    assert isinstance(err, llmfiles.ProviderError) and err.status == 502 and "bad gateway" in err.message
