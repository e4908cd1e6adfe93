"""The vertex_ai provider against gcp-storage-emulator: uploads (one request and resumable), list, retrieve,
delete, download, settings and errors; the MD5 Cloud Storage reports compared with what was sent; the plugin never
reading the file.  Every request goes through our proxy, which records what was sent."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import sys
import threading
from collections.abc import Iterator
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from vertex_testlib import BUCKET, TOKEN, chat_file, provider

import llmfiles
from llmfiles.errors import (
    AuthenticationError,
    ConfigurationError,
    FileNotFound,
    InputError,
    InvalidSetting,
    ProviderError,
    UploadFailed,
)
from llmfiles.models import NO_CREDENTIALS, FileRange, HttpResponse, Settings, Upload, UploadFacts, UploadParts
from llmfiles.plugins import get_plugin_manager
from llmfiles.provider import Exchange, ResumableUpload
from llmfiles_vertex import gcs
from servers.fault_proxy import Corrupt, DropResponse, FaultProxy, ProxyRequest, Respond

KiB = 1024
MiB = 1024 * KiB


@pytest.fixture
def client(vertex_settings: dict[str, Any]) -> Iterator[llmfiles.Client]:
    c = llmfiles.Client("vertex_ai", **vertex_settings)
    yield c
    c.close()


def uploads(proxy: FaultProxy) -> list[ProxyRequest]:
    return [r for r in proxy.requests if r.path.startswith("/upload/")]


def chunk_puts(proxy: FaultProxy) -> list[ProxyRequest]:
    return [r for r in proxy.requests if r.method == "PUT" and "upload_id" in r.query]


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def multipart_parts(req: ProxyRequest) -> list[Any]:
    """The parts of a recorded ``multipart/related`` request (the proxy must keep bodies)."""
    head = f"Content-Type: {req.header('content-type')}\r\n\r\n".encode()
    return list(BytesParser().parsebytes(head + req.body).get_payload())


# --- registration -------------------------------------------------------------------------------------------


def test_registered_as_vertex_ai_with_the_alias_vertex() -> None:
    registered = get_plugin_manager().get("vertex")
    info = registered.provider.info
    assert info.name == "vertex_ai" and info.package == "llmfiles-vertex" and registered.plugin
    assert registered.provider is provider()
    assert set(info.purposes) == {"fine-tune", "batch"}
    assert info.supports_parts and info.default_multipart_threshold == 8 * MiB
    env = {v for s in info.settings for v in s.env}
    assert {"LLMFILES_GCS_BUCKET", "GCS_BUCKET_NAME", "VERTEXAI_PROJECT", "GOOGLE_CLOUD_PROJECT"} <= env
    assert {"VERTEXAI_LOCATION", "STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS"} <= env
    # the core computes the MD5 while sending and compares it with the one Cloud Storage reports
    assert info.checksums == ("md5",)
    # conversion is the core's setting: the plugin only names its conversion (and keeps no convert setting)
    # gemini for fine-tune files (convert=True on them), vertex-batch for OpenAI batch files (convert=True on them)
    assert info.conversions == ("gemini", "vertex-batch") and "convert" not in {s.name for s in info.settings}


# --- one-request uploads ------------------------------------------------------------------------------------


def test_small_file_is_one_multipart_request_with_metadata_and_the_passed_token(
    client: llmfiles.Client, proxy: FaultProxy, prefix: str, tmp_path: Path
) -> None:
    src = chat_file(tmp_path / "train.jsonl", crlf=True)
    proxy.keep_bodies = True
    fo = client.upload(src, purpose="fine-tune")

    [req] = uploads(proxy)
    assert req.method == "POST" and req.path == f"/upload/storage/v1/b/{BUCKET}/o"
    assert req.query["uploadType"] == ["multipart"] and req.query["ifGenerationMatch"] == ["0"]
    assert req.header("content-type").startswith("multipart/related; boundary=")
    assert req.header("authorization") == f"Bearer {TOKEN}"  # the passed token is really sent
    assert all(r.header("authorization") == f"Bearer {TOKEN}" for r in proxy.requests)
    # the metadata, then the file's bytes as they are on disk; no MD5 was computed before sending
    meta, media = multipart_parts(req)
    metadata = json.loads(meta.get_payload())
    assert metadata["name"] == req.query["name"][0] and "md5Hash" not in metadata
    assert metadata["metadata"] == {"llmfiles-purpose": "fine-tune", "llmfiles-filename": "train.jsonl"}
    assert media.get_content_type() == "application/jsonl" and media.get_payload(decode=True) == src.read_bytes()

    assert fo.id.startswith(f"gs://{BUCKET}/{prefix}") and fo.id.endswith("/train.jsonl")
    assert fo.provider == "vertex_ai" and fo.filename == "train.jsonl" and fo.purpose == "fine-tune"
    assert fo.bytes == src.stat().st_size and fo.status == "processed" and fo.created_at > 0
    assert fo.raw["md5Hash"] == md5_b64(src.read_bytes())
    # the MD5 Cloud Storage reports is the file object's checksum (the core compared it with what it sent)
    assert fo.checksums == {"md5": hashlib.md5(src.read_bytes()).hexdigest()}
    assert fo.raw["metadata"]["llmfiles-purpose"] == "fine-tune"
    assert fo.raw["contentType"] == "application/jsonl"

    out = client.download(fo.id, tmp_path / "back.jsonl")
    assert out.read_bytes() == src.read_bytes()  # CRLF and UTF-8 survive exactly


def test_object_names_are_unique_and_safe(client: llmfiles.Client, tmp_path: Path, prefix: str) -> None:
    src = chat_file(tmp_path / "my train (v2) é.jsonl")
    a = client.upload(src, purpose="fine-tune")
    b = client.upload(src, purpose="fine-tune")
    assert a.id != b.id
    name = a.id.removeprefix(f"gs://{BUCKET}/")
    assert name.startswith(prefix)
    assert all(ch.isalnum() or ch in "/._-" for ch in name), name
    assert name.endswith("/my_train_v2_.jsonl")
    assert a.filename == "my train (v2) é.jsonl"  # the original name is kept in the object's metadata


def test_a_one_request_upload_is_compared_with_the_md5_cloud_storage_reports_and_nothing_lands(
    client: llmfiles.Client, proxy: FaultProxy, tmp_path: Path
) -> None:
    src = chat_file(tmp_path / "train.jsonl")
    proxy.add_rule(lambda r: r.query.get("uploadType") == ["multipart"], Corrupt(at=600))
    with pytest.raises(UploadFailed) as info:
        client.upload(src, purpose="fine-tune", max_retries=0)
    # Cloud Storage stored the corrupted bytes; the core compared their MD5 with the MD5 of what it sent
    [stored] = [r for r in uploads(proxy)]
    stored_id = f"gs://{BUCKET}/{stored.query['name'][0]}"
    message = str(info.value)
    assert stored_id in message and "md5" in message and hashlib.md5(src.read_bytes()).hexdigest() in message
    # ... and deleted the object again: nothing lands
    assert any(f"{stored_id} was deleted again" in note for note in info.value.__notes__)
    object_path = f"/storage/v1/b/{BUCKET}/o/" + quote(stored.query["name"][0], safe="")
    assert [r.method for r in proxy.requests if r.path == object_path] == ["DELETE"]
    assert list(client.list_files()) == []


# --- resumable uploads --------------------------------------------------------------------------------------


def test_large_file_is_a_sequential_resumable_session(
    client: llmfiles.Client, proxy: FaultProxy, tmp_path: Path
) -> None:
    src = chat_file(tmp_path / "big.jsonl", records=4000)  # about 700 KB
    size = src.stat().st_size
    events: list[Any] = []
    fo = client.upload(
        src, purpose="batch", multipart_threshold=256 * KiB, part_size=256 * KiB, progress=events.append, validate=False
    )

    start = [r for r in proxy.requests if r.method == "POST" and r.query.get("uploadType") == ["resumable"]]
    assert len(start) == 1 and start[0].query["ifGenerationMatch"] == ["0"]
    assert start[0].header("authorization") == f"Bearer {TOKEN}"
    assert start[0].header("x-upload-content-length") == str(size)
    assert start[0].header("x-upload-content-type") == "application/jsonl"
    # the session URI points where the session was started (through the proxy)
    assert {r.path for r in chunk_puts(proxy)} == {f"/upload/storage/v1/b/{BUCKET}/o"}
    puts = chunk_puts(proxy)
    ranges = [r.header("content-range") for r in puts]
    chunk = 256 * KiB
    expected = [f"bytes {o}-{min(o + chunk, size) - 1}/{size}" for o in range(0, size, chunk)]
    assert ranges == expected  # in order, 256 KiB each but the last, every one naming the total
    assert all(r.header("authorization") is None for r in puts)  # the session URI is the credential
    assert fo.bytes == size and fo.purpose == "batch" and fo.raw["md5Hash"] == md5_b64(src.read_bytes())
    assert fo.checksums == {"md5": hashlib.md5(src.read_bytes()).hexdigest()}
    assert events[-1].done == size
    out = client.download(fo.id, tmp_path / "back.jsonl")
    assert out.read_bytes() == src.read_bytes()


def test_part_size_is_rounded_to_256_kib(client: llmfiles.Client, proxy: FaultProxy, tmp_path: Path) -> None:
    src = chat_file(tmp_path / "big.jsonl", records=4000)
    client.upload(src, purpose="fine-tune", multipart_threshold=100_000, part_size=300_000)
    first = chunk_puts(proxy)[0].header("content-range")
    assert first is not None and first.startswith(f"bytes 0-{256 * KiB - 1}/")


def test_a_corrupted_chunk_is_caught_by_the_md5_cloud_storage_reports(
    client: llmfiles.Client, proxy: FaultProxy, tmp_path: Path
) -> None:
    src = chat_file(tmp_path / "big.jsonl", records=3000)
    proxy.add_rule(lambda r: r.method == "PUT" and "upload_id" in r.query, Corrupt(at=1000), skip=1)
    with pytest.raises(UploadFailed) as info:
        client.upload(src, purpose="fine-tune", multipart_threshold=256 * KiB, part_size=256 * KiB)
    message = str(info.value)
    assert "md5" in message and f"gs://{BUCKET}/" in message
    assert any("deleted again" in n and "upload the file again" in n for n in info.value.__notes__)
    assert list(client.list_files()) == []  # the corrupted object was deleted
    assert client.unfinished_uploads() == []


# --- other operations ---------------------------------------------------------------------------------------


def test_list_follows_every_page_token_under_the_prefix(
    client: llmfiles.Client, proxy: FaultProxy, tmp_path: Path, prefix: str
) -> None:
    a = client.upload(chat_file(tmp_path / "a.jsonl"), purpose="fine-tune")
    b = client.upload(chat_file(tmp_path / "b.jsonl"), purpose="batch", validate=False)
    # the emulator never pages, so the proxy answers the first page itself, with a token for the next one
    first_page = {"kind": "storage#objects", "items": [dict(a.raw)], "nextPageToken": "page-2"}
    proxy.add_rule(
        lambda r: r.method == "GET" and r.path.endswith("/o") and "pageToken" not in r.query,
        Respond(200, {"Content-Type": "application/json"}, json.dumps(first_page).encode()),
    )
    files = list(client.list_files())
    lists = [r for r in proxy.requests if r.method == "GET" and r.path == f"/storage/v1/b/{BUCKET}/o"]
    assert [r.query.get("pageToken") for r in lists] == [None, ["page-2"]]
    assert all(r.query["prefix"] == [prefix] for r in lists)
    # page 1 (canned), then the emulator's whole listing (in its own order)
    assert files[0].id == a.id and sorted(f.id for f in files[1:]) == sorted([a.id, b.id])
    assert [f.id for f in client.list_files(purpose="batch")] == [b.id]


def test_retrieve_delete_and_not_found(client: llmfiles.Client, tmp_path: Path) -> None:
    fo = client.upload(chat_file(tmp_path / "train.jsonl"), purpose="fine-tune")
    got = client.retrieve(fo.id)
    assert got == fo
    name = fo.id.removeprefix(f"gs://{BUCKET}/")
    assert client.retrieve(name).id == fo.id  # an object name alone is looked up in the configured bucket
    assert client.delete(fo.id) is True
    with pytest.raises(FileNotFound) as info:
        client.retrieve(fo.id)
    assert info.value.status == 404 and fo.id in str(info.value)
    with pytest.raises(FileNotFound):
        client.delete(fo.id)
    with pytest.raises(FileNotFound):
        client.download(fo.id, tmp_path / "gone.jsonl")
    assert not (tmp_path / "gone.jsonl").exists()


def test_ids_of_another_bucket_need_no_bucket_setting(
    vertex_settings: dict[str, Any], client: llmfiles.Client, tmp_path: Path
) -> None:
    fo = client.upload(chat_file(tmp_path / "train.jsonl"), purpose="fine-tune")
    settings = {k: v for k, v in vertex_settings.items() if k != "bucket"}
    with llmfiles.Client("vertex", environ={}, **settings) as other:
        assert other.retrieve(fo.id).id == fo.id
        with pytest.raises(InputError, match="gs://bucket/object"):
            other.retrieve("not-a-gs-id")
        with pytest.raises(InputError, match="gs://bucket/object"):
            other.retrieve("gs://only-a-bucket")


def test_download_streams_into_a_folder_under_the_files_own_name(client: llmfiles.Client, tmp_path: Path) -> None:
    src = chat_file(tmp_path / "train.jsonl")
    fo = client.upload(src, purpose="fine-tune")
    folder = tmp_path / "out"
    folder.mkdir()
    assert client.download(fo.id, folder).read_bytes() == src.read_bytes()
    assert (folder / "train.jsonl").exists()


# --- settings -----------------------------------------------------------------------------------------------


def test_a_missing_bucket_says_how_to_set_it(vertex_settings: dict[str, Any], tmp_path: Path) -> None:
    settings = {k: v for k, v in vertex_settings.items() if k != "bucket"}
    with llmfiles.Client("vertex_ai", environ={}, **settings) as c:
        with pytest.raises(ConfigurationError) as info:
            c.upload(chat_file(tmp_path / "train.jsonl"), purpose="fine-tune")
        with pytest.raises(ConfigurationError):
            list(c.list_files())
    message = str(info.value)
    assert "bucket=" in message and "LLMFILES_GCS_BUCKET" in message and "GCS_BUCKET_NAME" in message


@pytest.mark.parametrize("bad", ["Not_A_Bucket", "gs://bucket/with/path", "x"])
def test_a_malformed_bucket_is_refused(vertex_settings: dict[str, Any], tmp_path: Path, bad: str) -> None:
    with (
        llmfiles.Client("vertex_ai", **{**vertex_settings, "bucket": bad}) as c,
        pytest.raises(InputError, match="bucket"),
    ):
        c.upload(chat_file(tmp_path / "train.jsonl"), purpose="fine-tune")


def test_settings_from_the_environment_and_the_emulator_host(
    monkeypatch: pytest.MonkeyPatch, proxy: FaultProxy, prefix: str, tmp_path: Path
) -> None:
    monkeypatch.setenv("GCS_BUCKET_NAME", f"gs://{BUCKET}/")
    monkeypatch.setenv("LLMFILES_GCS_PREFIX", prefix)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url.removeprefix("http://"))  # bare host:port, as Google's
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "my-project")
    monkeypatch.setenv("VERTEXAI_LOCATION", "europe-west4")
    fo = llmfiles.upload(chat_file(tmp_path / "train.jsonl"), purpose="fine-tune", provider="vertex")
    assert fo.id.startswith(f"gs://{BUCKET}/{prefix}")
    # project and location are recorded with the file, for the job that will read it
    assert fo.raw["metadata"]["llmfiles-vertex-project"] == "my-project"
    assert fo.raw["metadata"]["llmfiles-vertex-location"] == "europe-west4"
    # an emulator gets no credentials, as with Google's own clients, and no token is fetched for it
    assert all(r.header("authorization") is None for r in proxy.requests)
    assert [f.id for f in llmfiles.list_files(provider="vertex")] == [fo.id]
    llmfiles.api._reset_default_client()


def test_vertexai_project_wins_over_google_cloud_project(
    monkeypatch: pytest.MonkeyPatch, client: llmfiles.Client, tmp_path: Path
) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "generic")
    monkeypatch.setenv("VERTEXAI_PROJECT", "vertex-one")
    fo = client.upload(chat_file(tmp_path / "train.jsonl"), purpose="fine-tune")
    assert fo.raw["metadata"]["llmfiles-vertex-project"] == "vertex-one"
    assert "llmfiles-vertex-location" not in fo.raw["metadata"]


def test_dry_run_names_the_session_and_sends_nothing(
    client: llmfiles.Client, proxy: FaultProxy, tmp_path: Path
) -> None:
    src = chat_file(tmp_path / "big.jsonl", records=3000)
    plan = client.describe_upload(src, purpose="fine-tune", multipart_threshold=256 * KiB, part_size=256 * KiB)
    assert plan["mode"] == "parts" and plan["parallel"] == 1
    assert plan["destination"].startswith(f"gs://{BUCKET}/") and plan["part_size"] == 256 * KiB
    small = client.describe_upload(src, purpose="fine-tune")
    assert small["mode"] == "single request" and "uploadType=multipart" in small["destination"]
    assert proxy.requests == []


# --- errors -------------------------------------------------------------------------------------------------


def test_cloud_storage_errors_keep_their_reason_and_name_the_credential(
    client: llmfiles.Client, proxy: FaultProxy, tmp_path: Path
) -> None:
    body = {
        "error": {
            "code": 403,
            "message": "trainer@p.iam.gserviceaccount.com does not have storage.objects.create access",
            "errors": [{"domain": "global", "reason": "forbidden", "message": "..."}],
        }
    }
    proxy.add_rule(
        lambda r: r.path.startswith("/upload/"),
        Respond(403, {"Content-Type": "application/json", "X-GUploader-UploadID": "up-123"}, json.dumps(body).encode()),
    )
    with pytest.raises(AuthenticationError) as info:
        client.upload(chat_file(tmp_path / "train.jsonl"), purpose="fine-tune")
    err = info.value
    assert err.status == 403 and err.code == "forbidden" and err.request_id == "up-123"
    assert "storage.objects.create" in str(err) and "Client setting access_token" in str(err)
    assert TOKEN not in str(err)


def test_an_existing_object_is_never_overwritten(client: llmfiles.Client, proxy: FaultProxy, tmp_path: Path) -> None:
    body = {"error": {"code": 412, "message": "At least one of the pre-conditions you specified did not hold."}}
    proxy.add_rule(lambda r: r.path.startswith("/upload/"), Respond(412, {}, json.dumps(body).encode()))
    with pytest.raises(ProviderError) as info:
        client.upload(chat_file(tmp_path / "train.jsonl"), purpose="fine-tune")
    assert info.value.status == 412 and "ifGenerationMatch=0" in str(info.value)


def test_convert_is_refused_for_batch_files(client: llmfiles.Client, tmp_path: Path) -> None:
    with pytest.raises(InvalidSetting, match="fine-tune"):
        client.upload(chat_file(tmp_path / "b.jsonl"), purpose="batch", convert="gemini")
    with pytest.raises(InvalidSetting, match="gemini"):
        client.upload(chat_file(tmp_path / "t.jsonl"), purpose="fine-tune", convert="parquet")


def test_wire_helpers() -> None:
    assert gcs.normalize_api_base("localhost:9023") == "http://localhost:9023"
    assert gcs.normalize_api_base("https://storage.googleapis.com/storage/v1/") == "https://storage.googleapis.com"
    assert gcs.normalize_prefix("/data/tuning") == "data/tuning/"
    assert gcs.normalize_prefix("") == ""
    with pytest.raises(InputError):
        gcs.normalize_prefix("a/../b")
    assert gcs.parse_file_id("gs://b/x/y.jsonl", None) == ("b", "x/y.jsonl")
    assert gcs.md5_hex(md5_b64(b"abc")) == hashlib.md5(b"abc").hexdigest()
    assert gcs.md5_hex("not base64!") is None
    assert gcs.md5_hex(base64.b64encode(b"short").decode()) is None


# --- what the plugin builds, and what it never does ------------------------------------------------------------


def settings_for(**values: Any) -> Settings:
    base = {"api_base": "https://storage.googleapis.com", "bucket": BUCKET, "prefix": "p/", "part_size": 16 * MiB}
    return Settings(provider="vertex_ai", values={**base, **values})


def test_the_one_request_body_carries_the_file_as_a_range_and_the_probe_looks_the_name_up() -> None:
    facts = UploadFacts(purpose="fine-tune", filename="t.jsonl", size=12345, head=b'{"messages"')
    ex = provider().exchange(Upload(file=facts), NO_CREDENTIALS, settings_for())
    assert isinstance(ex, Exchange) and isinstance(ex.request.body, tuple)
    ranges = [seg for seg in ex.request.body if isinstance(seg, FileRange)]
    assert ranges == [FileRange(offset=0, length=12345)]  # the core streams the file there; the plugin reads none
    assert b"md5Hash" not in b"".join(seg for seg in ex.request.body if isinstance(seg, bytes))
    assert ex.probe is not None and ex.probe.unique and ex.probe.request.method == "GET"
    name = quote(ex.request.url.split("name=", 1)[1].split("&")[0], safe="%")
    assert ex.probe.request.url == f"https://storage.googleapis.com/storage/v1/b/{BUCKET}/o/{name}"
    assert ex.probe.read(HttpResponse(status=404)) == []  # a 404: the lost request created nothing


def test_large_files_are_a_resumable_session_with_aligned_chunks() -> None:
    facts = UploadFacts(purpose="fine-tune", filename="t.jsonl", size=10 * MiB)
    protocol = provider().exchange(UploadParts(file=facts), NO_CREDENTIALS, settings_for(part_size=300_000))
    assert isinstance(protocol, ResumableUpload) and protocol.resumable
    assert protocol.limits.preferred == 256 * KiB and protocol.limits.alignment == 256 * KiB
    assert protocol.session_ttl == 7 * 24 * 3600 and protocol.destination.startswith(f"gs://{BUCKET}/p/")
    state = {"session": "https://storage.googleapis.com/upload/storage/v1/b/x/o?upload_id=SECRET"}
    for ex in (protocol.query(state), protocol.abort(state)):
        assert ex is not None and "authorization" not in {k.lower() for k in ex.request.headers}
        assert "SECRET" not in repr(ex.request)  # the session URI is a credential: never shown


class FileOpens:
    """Records every file the ``llmfiles_vertex`` code opens while ``active`` (an audit hook: it sees ``open``,
    ``os.open`` and ``io.open`` alike, from any thread)."""

    def __init__(self) -> None:
        self.active = False
        self.opened: list[str] = []
        self._lock = threading.Lock()
        sys.addaudithook(self.hook)  # audit hooks cannot be removed: this one does nothing once inactive

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active or event != "open":
            return
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_globals.get("__name__", "").startswith("llmfiles_vertex"):
                with self._lock:
                    self.opened.append(str(args[0]))
                return
            frame = frame.f_back


_OPENS = FileOpens()


@pytest.mark.parametrize("large", [False, True], ids=["one-request", "resumable"])
def test_the_plugin_never_reads_the_file(
    client: llmfiles.Client, proxy: FaultProxy, tmp_path: Path, large: bool
) -> None:
    src = chat_file(tmp_path / "train.jsonl", records=3000)
    kw: dict[str, Any] = {"multipart_threshold": 256 * KiB, "part_size": 256 * KiB} if large else {}
    _OPENS.active, _OPENS.opened = True, []
    try:
        fo = client.upload(src, purpose="fine-tune", **kw)
    finally:
        _OPENS.active = False
    assert _OPENS.opened == []  # the core read the file and streamed it; the plugin opened nothing
    assert fo.checksums == {"md5": hashlib.md5(src.read_bytes()).hexdigest()}
    assert bool(chunk_puts(proxy)) is large

    # the hook does see an open by the plugin's code
    import llmfiles_vertex.gcs as plugin_module

    _OPENS.active = True
    try:
        exec(compile("open(path, 'rb').close()", plugin_module.__file__, "exec"), vars(plugin_module) | {"path": src})
    finally:
        _OPENS.active = False
    assert _OPENS.opened == [str(src)]


def test_a_lost_answer_is_found_by_the_objects_unique_name_and_not_sent_again(
    client: llmfiles.Client, proxy: FaultProxy, tmp_path: Path
) -> None:
    src = chat_file(tmp_path / "train.jsonl")
    proxy.add_rule(lambda r: r.query.get("uploadType") == ["multipart"], DropResponse())
    fo = client.upload(src, purpose="fine-tune")
    [sent] = uploads(proxy)  # sent once: the object was created although its answer was lost
    assert sent.action == "drop response"
    name = sent.query["name"][0]
    lookup = [r for r in proxy.requests if r.method == "GET" and r.path.endswith("/o/" + quote(name, safe=""))]
    assert lookup and fo.id == f"gs://{BUCKET}/{name}"
    assert fo.checksums == {"md5": hashlib.md5(src.read_bytes()).hexdigest()}
    assert [f.id for f in client.list_files()] == [fo.id]


def test_a_session_uri_pointing_elsewhere_is_refused(
    client: llmfiles.Client, proxy: FaultProxy, tmp_path: Path
) -> None:
    src = chat_file(tmp_path / "big.jsonl", records=3000)
    elsewhere = "http://127.0.0.2:9/upload/storage/v1/b/x/o?uploadType=resumable&upload_id=stolen"
    proxy.add_rule(
        lambda r: r.query.get("uploadType") == ["resumable"], Respond(200, {"Location": elsewhere}), times=10
    )
    with pytest.raises(ProviderError, match="another place") as info:
        client.upload(src, purpose="fine-tune", multipart_threshold=256 * KiB, part_size=256 * KiB)
    assert "stolen" not in str(info.value)
    assert chunk_puts(proxy) == [] and len(proxy.requests) == 1  # nothing was sent there (or anywhere)


def test_the_session_uri_is_never_shown(
    client: llmfiles.Client, proxy: FaultProxy, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = chat_file(tmp_path / "big.jsonl", records=3000)
    proxy.add_rule(lambda r: r.method == "PUT" and "upload_id" in r.query, Respond(400, {}, b"bad chunk"), skip=1)
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderError) as info:
        client.upload(src, purpose="fine-tune", multipart_threshold=256 * KiB, part_size=256 * KiB)
    [upload_id] = {r.query["upload_id"][0] for r in chunk_puts(proxy)}
    assert len(upload_id) >= 8
    shown = [str(info.value), *info.value.__notes__, *(r.getMessage() for r in caplog.records)]
    assert any("PUT" in line and "upload_id=" in line for line in shown)  # the session requests were logged ...
    assert not [line for line in shown if upload_id in line]  # ... without their upload id


def test_a_session_refused_for_good_is_cancelled(client: llmfiles.Client, proxy: FaultProxy, tmp_path: Path) -> None:
    src = chat_file(tmp_path / "big.jsonl", records=3000)
    proxy.add_rule(lambda r: r.method == "PUT" and "upload_id" in r.query, Respond(400, {}, b"bad chunk"), skip=1)
    # Cloud Storage answers the DELETE of a session with 499 (the emulator cannot: the proxy answers for it)
    proxy.add_rule(lambda r: r.method == "DELETE" and "upload_id" in r.query, Respond(499, {}, b""))
    with pytest.raises(ProviderError) as info:
        client.upload(src, purpose="fine-tune", multipart_threshold=256 * KiB, part_size=256 * KiB)
    assert info.value.status == 400
    [cancel] = [r for r in proxy.requests if r.method == "DELETE"]
    assert "upload_id" in cancel.query and cancel.header("authorization") is None
    assert any("aborted at the provider" in n for n in info.value.__notes__)
    assert client.unfinished_uploads() == [] and list(client.list_files()) == []
