"""The bedrock provider against moto's S3, through our fault proxy: what goes over the wire, what S3 keeps, and
what happens when S3 (or the network) misbehaves."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

import pytest
from conftest import BUCKET, KEY_ID, REGION, bedrock_s3_uri_pattern

import llmfiles
from llmfiles import hookimpl
from llmfiles.models import HttpRequest, HttpResponse, Progress
from llmfiles.plugins import PluginManager
from servers.fault_proxy import (
    Corrupt,
    DropAfter,
    DropResponse,
    FaultProxy,
    ProxyRequest,
    ReplaceResponse,
    Respond,
)

MiB = 1024 * 1024
ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>"
)
INTERNAL_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message>"
    b"<RequestId>4442587FB7D0A2F9</RequestId></Error>"
)


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def key_of(file_id: str) -> str:
    assert file_id.startswith(f"s3://{BUCKET}/")
    return file_id[len(f"s3://{BUCKET}/") :]


def parts_sent(proxy: FaultProxy, number: int | None = None) -> list[ProxyRequest]:
    return [
        r
        for r in proxy.requests
        if r.method == "PUT" and "partNumber" in r.query and (number is None or r.query["partNumber"] == [str(number)])
    ]


def is_part(number: int) -> Any:
    return lambda r: r.method == "PUT" and r.query.get("partNumber") == [str(number)]


def is_complete(r: ProxyRequest) -> bool:
    return r.method == "POST" and "uploadId" in r.query


def uploads_in_progress(s3: Any, prefix: str) -> list[Any]:
    return list(s3.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", []))


def objects_under(s3: Any, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


@pytest.fixture
def client(bedrock_settings: dict[str, Any]) -> Iterator[llmfiles.Client]:
    c = llmfiles.Client("bedrock", **bedrock_settings)
    yield c
    c.close()


# --- PutObject -----------------------------------------------------------------------------------------------


def test_small_file_is_one_signed_put_object(
    client: llmfiles.Client, make_jsonl: Any, proxy: FaultProxy, s3: Any, prefix: str
) -> None:
    src = make_jsonl("train.jsonl", records=20)
    fo = client.upload(src, purpose="fine-tune")

    assert bedrock_s3_uri_pattern().fullmatch(fo.id)
    key = key_of(fo.id)
    assert key.startswith(f"{prefix}fine-tune/") and key.endswith("/train.jsonl")
    assert (fo.provider, fo.filename, fo.purpose, fo.bytes, fo.status) == (
        "bedrock",
        "train.jsonl",
        "fine-tune",
        src.stat().st_size,
        "processed",
    )

    (put,) = [r for r in proxy.requests if r.method == "PUT"]
    assert put.path.endswith(f"/{BUCKET}/{key}") and not put.query
    assert put.header("content-length") == str(src.stat().st_size)
    assert put.header("x-amz-content-sha256") == "UNSIGNED-PAYLOAD"
    auth = put.header("authorization") or ""
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={KEY_ID}/") and f"/{REGION}/s3/aws4_request" in auth
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"host", "x-amz-content-sha256", "x-amz-date", "x-amz-meta-purpose", "content-type"} <= set(signed)
    assert fo.checksums == {"md5": md5(src.read_bytes())}  # S3's ETag: the MD5 of what it stored

    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert head["Metadata"] == {"purpose": "fine-tune", "filename": "train.jsonl"}
    assert head["ContentType"] == "application/jsonl" and head["ContentLength"] == fo.bytes
    assert fo.created_at == int(head["LastModified"].timestamp())
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == src.read_bytes()


def test_every_upload_gets_its_own_key(client: llmfiles.Client, make_jsonl: Any) -> None:
    src = make_jsonl("same.jsonl")
    ids = {client.upload(src, purpose="fine-tune").id for _ in range(3)}
    assert len(ids) == 3


def test_file_names_are_made_safe_for_bedrock(client: llmfiles.Client, make_jsonl: Any, s3: Any) -> None:
    src = make_jsonl("x.jsonl")
    fo = client.upload(src, purpose="fine-tune", filename="my data (v2) é.jsonl")
    assert bedrock_s3_uri_pattern().fullmatch(fo.id)
    assert fo.filename == "my-data-v2-.jsonl"
    got = client.retrieve(fo.id)
    assert got.filename == fo.filename and got.raw["original_filename"] == "my data (v2) é.jsonl"
    assert s3.head_object(Bucket=BUCKET, Key=key_of(fo.id))["Metadata"]["purpose"] == "fine-tune"


def test_batch_files_are_checked_and_kept_apart(client: llmfiles.Client, tmp_path: Path, prefix: str) -> None:
    good = tmp_path / "batch.jsonl"
    good.write_text(
        "\n".join(
            json.dumps({"recordId": f"r{i:010d}", "modelInput": {"messages": [{"role": "user", "content": "hi"}]}})
            for i in range(3)
        )
        + "\n"
    )
    fo = client.upload(good, purpose="batch")
    assert key_of(fo.id).startswith(f"{prefix}batch/") and fo.purpose == "batch"
    bad = tmp_path / "bad-batch.jsonl"
    bad.write_text('{"recordId": 1, "input": {}}\n')
    with pytest.raises(llmfiles.ValidationError) as info:
        client.upload(bad, purpose="batch")
    assert {p.code for p in info.value.problems if p.severity == "error"} == {"missing_model_input", "bad_record_id"}


def test_a_put_object_changed_on_the_way_is_caught_by_its_etag_and_deleted_again(
    client: llmfiles.Client, make_jsonl: Any, proxy: FaultProxy, s3: Any, prefix: str
) -> None:
    src = make_jsonl("corrupt.jsonl")
    proxy.add_rule(lambda r: r.method == "PUT", Corrupt(at=100))
    with pytest.raises(llmfiles.errors.UploadFailed) as info:
        client.upload(src, purpose="fine-tune")
    data = src.read_bytes()
    stored = md5(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    assert f"md5 {stored} stored, {md5(data)} sent" in str(info.value)
    assert any("was deleted again" in n for n in info.value.__notes__)
    assert [r.method for r in proxy.requests] == ["PUT", "DELETE"]
    assert objects_under(s3, prefix) == []


def test_an_etag_is_compared_only_when_it_is_an_md5(
    client: llmfiles.Client, make_jsonl: Any, proxy: FaultProxy, s3: Any, prefix: str
) -> None:
    src = make_jsonl("kms.jsonl")
    other = '"' + "0" * 32 + '"'
    # with SSE-KMS the ETag is not the MD5 of the object: nothing to compare, the upload stands
    kms = {"ETag": other, "x-amz-server-side-encryption": "aws:kms"}
    proxy.add_rule(lambda r: r.method == "PUT", ReplaceResponse(200, kms))
    fo = client.upload(src, purpose="fine-tune")
    assert fo.checksums == {} and objects_under(s3, prefix) == [key_of(fo.id)]
    client.delete(fo.id)
    # the same ETag without SSE-KMS is an MD5, and not the one sent
    proxy.add_rule(lambda r: r.method == "PUT", ReplaceResponse(200, {"ETag": other}))
    with pytest.raises(llmfiles.errors.UploadFailed):
        client.upload(src, purpose="fine-tune")
    assert objects_under(s3, prefix) == []


@pytest.mark.parametrize(
    ("headers", "found"),
    [
        ({"etag": '"9B2CF535F27731C974343645A3985328"'}, "9b2cf535f27731c974343645a3985328"),
        (
            {"etag": '"9b2cf535f27731c974343645a3985328"', "x-amz-server-side-encryption": "AES256"},
            "9b2cf535f27731c974343645a3985328",
        ),
        ({"etag": '"9b2cf535f27731c974343645a3985328-3"'}, None),
        ({"etag": '"9b2cf535f27731c974343645a3985328"', "x-amz-server-side-encryption": "aws:kms"}, None),
        ({"etag": '"9b2cf535f27731c974343645a3985328"', "x-amz-server-side-encryption": "aws:kms:dsse"}, None),
        (
            {"etag": '"9b2cf535f27731c974343645a3985328"', "x-amz-server-side-encryption-customer-algorithm": "AES256"},
            None,
        ),
        ({"etag": '"not-hex"'}, None),
        ({}, None),
    ],
    ids=["plain", "sse-s3", "multipart", "sse-kms", "dsse-kms", "sse-c", "not-hex", "none"],
)
def test_which_etags_are_md5s(headers: dict[str, str], found: str | None) -> None:
    from llmfiles_bedrock import s3 as wire

    assert wire.etag_md5(HttpResponse(status=200, headers=headers)) == found


def test_a_lost_put_object_answer_is_looked_up_not_sent_again(
    client: llmfiles.Client, make_jsonl: Any, proxy: FaultProxy, s3: Any, prefix: str
) -> None:
    src = make_jsonl("lost.jsonl")
    proxy.add_rule(lambda r: r.method == "PUT", DropResponse())
    fo = client.upload(src, purpose="fine-tune")
    assert [(r.method, r.action) for r in proxy.requests] == [("PUT", "drop response"), ("HEAD", "forward")]
    assert proxy.requests[1].path == f"/{BUCKET}/{key_of(fo.id)}"
    assert (fo.bytes, fo.purpose, fo.checksums) == (src.stat().st_size, "fine-tune", {"md5": md5(src.read_bytes())})
    assert objects_under(s3, prefix) == [key_of(fo.id)]


def test_a_put_object_that_failed_after_its_body_is_sent_again_once_s3_says_it_has_nothing(
    client: llmfiles.Client, make_jsonl: Any, proxy: FaultProxy, s3: Any, prefix: str
) -> None:
    src = make_jsonl("gateway.jsonl")
    # a gateway answers 503 after the whole body and never forwards it
    proxy.add_rule(lambda r: r.method == "PUT", Respond(503, {"Content-Type": "application/xml"}, INTERNAL_ERROR))
    fo = client.upload(src, purpose="fine-tune")
    assert [(r.method, r.action) for r in proxy.requests] == [
        ("PUT", "respond"),
        ("HEAD", "forward"),
        ("PUT", "forward"),
    ]
    assert len({r.path for r in proxy.requests}) == 1  # the same unique key, looked up, then written
    assert s3.get_object(Bucket=BUCKET, Key=key_of(fo.id))["Body"].read() == src.read_bytes()


class RequestRecorder:
    """Sees every request llmfiles sends (the ``llmfiles_request`` hook): parts, completes, probes and aborts."""

    def __init__(self) -> None:
        self.requests: list[HttpRequest] = []

    @hookimpl(wrapper=True)
    def llmfiles_request(self, provider: str, request: HttpRequest) -> Any:
        request = yield
        self.requests.append(request)
        return request


def test_no_url_carries_a_fragment(
    bedrock_settings: dict[str, Any], make_jsonl: Any, proxy: FaultProxy, tmp_path: Path
) -> None:
    recorder = RequestRecorder()
    pm = PluginManager()
    pm.register(recorder, "request-recorder")
    large = {"multipart_threshold": "5MiB", "part_size": "5MiB"}
    proxy.add_rule(lambda r: r.method == "PUT" and not r.query, DropResponse())  # a lost answer: the probe is sent
    proxy.add_rule(is_complete, DropResponse())
    with llmfiles.Client("bedrock", plugin_manager=pm, **bedrock_settings) as c:
        small = c.upload(make_jsonl("s.jsonl"), purpose="fine-tune")
        big = c.upload(make_jsonl("l.jsonl", min_bytes=6 * MiB), purpose="fine-tune", **large)
        c.retrieve(small.id)
        assert len(list(c.list_files())) == 2
        c.download(big.id, tmp_path / "back.jsonl")
        c.delete(small.id)
        c.delete(big.id)
        proxy.add_rule(is_part(2), Respond(400, {"Content-Type": "application/xml"}, ACCESS_DENIED))
        with pytest.raises(llmfiles.ProviderError):
            c.upload(make_jsonl("aborted.jsonl", min_bytes=6 * MiB), purpose="fine-tune", max_retries=0, **large)
    seen = {(r.method, "uploadId" in urlsplit(r.url).query) for r in recorder.requests}
    assert seen >= {("PUT", False), ("HEAD", False), ("POST", False), ("PUT", True), ("POST", True)}
    assert seen >= {("GET", False), ("DELETE", False), ("DELETE", True)}
    assert recorder.requests and all("#" not in r.url and not urlsplit(r.url).fragment for r in recorder.requests)
    assert len(recorder.requests) == len(proxy.requests)  # the hook saw every request that went out


# --- multipart -----------------------------------------------------------------------------------------------


def test_large_file_goes_in_parallel_parts_with_checked_md5(
    client: llmfiles.Client, make_jsonl: Any, proxy: FaultProxy, s3: Any, prefix: str, tmp_path: Path
) -> None:
    src = make_jsonl("big.jsonl", min_bytes=12 * MiB + 12345)
    data = src.read_bytes()
    events: list[Progress] = []
    fo = client.upload(src, purpose="fine-tune", multipart_threshold="5MiB", part_size="5MiB", progress=events.append)

    key = key_of(fo.id)
    assert fo.bytes == len(data) and events[-1].done == len(data)
    (start,) = [r for r in proxy.requests if r.method == "POST" and r.target.endswith("?uploads")]
    assert start.header("x-amz-meta-purpose") == "fine-tune"
    parts = sorted(parts_sent(proxy), key=lambda r: int(r.query["partNumber"][0]))
    assert [int(r.query["partNumber"][0]) for r in parts] == [1, 2, 3]
    assert [len(r.body) for r in parts] == [5 * MiB, 5 * MiB, len(data) - 10 * MiB]
    assert all(r.header("x-amz-content-sha256") == "UNSIGNED-PAYLOAD" for r in parts)
    assert all(r.header("authorization") for r in parts)

    (complete,) = [r for r in proxy.requests if is_complete(r)]
    # the body is signed by its SHA-256, and lists each part with the ETag checked against the part's MD5
    assert complete.header("x-amz-content-sha256") == hashlib.sha256(complete.body).hexdigest()
    root = ET.fromstring(complete.body)
    etags = [el.text for el in root.iter() if el.tag.endswith("ETag")]
    slices = [data[0 : 5 * MiB], data[5 * MiB : 10 * MiB], data[10 * MiB :]]
    assert etags == [f'"{hashlib.md5(s, usedforsecurity=False).hexdigest()}"' for s in slices]

    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ETag"].strip('"').endswith("-3") and head["ContentLength"] == len(data)
    assert head["Metadata"]["purpose"] == "fine-tune"
    assert uploads_in_progress(s3, prefix) == []
    out = client.download(fo.id, tmp_path / "back.jsonl")
    assert out.read_bytes() == data


def test_part_size_grows_so_a_file_fits_in_10000_parts() -> None:
    from llmfiles.models import UploadFacts
    from llmfiles.parts import choose_part_size
    from llmfiles_bedrock import s3 as wire

    ep = wire.Endpoint(region=REGION, sign=lambda m, u, h, b, unsigned: dict(h))
    facts = UploadFacts(purpose="fine-tune", filename="x.jsonl", size=0)
    protocol = wire.Multipart(ep, wire.Location(bucket=BUCKET, key="k/x.jsonl"), facts, None)
    limits = protocol.limits
    assert (limits.minimum, limits.maximum, limits.max_parts) == (5 * MiB, 5 * 1024 * MiB, 10_000)
    assert protocol.part_digests == ("md5",) and protocol.resumable and protocol.parallel
    assert choose_part_size(100 * MiB, limits, MiB, provider="bedrock", path="x") == 5 * MiB
    size = 100_000 * MiB  # 10,000 parts of 8 MiB would not hold it
    part = choose_part_size(size, limits, 8 * MiB, provider="bedrock", path="x")
    assert part > 8 * MiB and -(-size // part) <= 10_000


def test_a_failed_part_is_retried(
    client: llmfiles.Client, make_jsonl: Any, proxy: FaultProxy, tmp_path: Path, s3: Any, prefix: str
) -> None:
    src = make_jsonl("retry.jsonl", min_bytes=11 * MiB)
    proxy.add_rule(is_part(2), Respond(500, {"Content-Type": "application/xml"}, INTERNAL_ERROR))
    proxy.add_rule(is_part(1), DropAfter(MiB))
    fo = client.upload(src, purpose="fine-tune", multipart_threshold="5MiB", part_size="5MiB")

    assert [r.action for r in parts_sent(proxy, 2)] == ["respond", "forward"]
    assert [r.action.split(" after")[0] for r in parts_sent(proxy, 1)] == ["drop", "forward"]
    assert client.download(fo.id, tmp_path / "back.jsonl").read_bytes() == src.read_bytes()
    assert uploads_in_progress(s3, prefix) == []


def test_a_part_changed_on_the_way_fails_the_upload_and_aborts_it(
    client: llmfiles.Client, make_jsonl: Any, proxy: FaultProxy, s3: Any, prefix: str
) -> None:
    src = make_jsonl("corrupt.jsonl", min_bytes=11 * MiB)
    proxy.add_rule(is_part(2), Corrupt(at=1000))
    with pytest.raises(llmfiles.errors.UploadFailed) as info:
        client.upload(src, purpose="fine-tune", multipart_threshold="5MiB", part_size="5MiB")
    assert "part 2" in str(info.value) and "MD5" in str(info.value)
    assert any("aborted" in n for n in info.value.__notes__)
    assert [r for r in proxy.requests if r.method == "DELETE" and "uploadId" in r.query]
    assert not [r for r in proxy.requests if is_complete(r)]
    assert uploads_in_progress(s3, prefix) == [] and objects_under(s3, prefix) == []


def test_a_part_failing_for_good_aborts_the_upload(
    client: llmfiles.Client, make_jsonl: Any, proxy: FaultProxy, s3: Any, prefix: str
) -> None:
    src = make_jsonl("fails.jsonl", min_bytes=11 * MiB)
    proxy.add_rule(is_part(3), Respond(403, {"Content-Type": "application/xml"}, ACCESS_DENIED), times=100)
    with pytest.raises(llmfiles.ProviderError) as info:
        client.upload(src, purpose="fine-tune", multipart_threshold="5MiB", part_size="5MiB", max_retries=2)
    assert info.value.status == 403 and info.value.code == "AccessDenied"
    assert len(parts_sent(proxy, 3)) == 1
    assert any("aborted" in n for n in info.value.__notes__)
    assert uploads_in_progress(s3, prefix) == [] and objects_under(s3, prefix) == []


def test_a_part_failing_until_the_retries_run_out_keeps_the_upload_and_the_next_run_resumes_it(
    client: llmfiles.Client,
    bedrock_settings: dict[str, Any],
    make_jsonl: Any,
    proxy: FaultProxy,
    s3: Any,
    prefix: str,
) -> None:
    src = make_jsonl("fails.jsonl", min_bytes=11 * MiB)
    rule = proxy.add_rule(is_part(3), Respond(503, {"Content-Type": "application/xml"}, INTERNAL_ERROR), times=100)
    large = {"multipart_threshold": "5MiB", "part_size": "5MiB", "max_concurrency": 1}
    with pytest.raises(llmfiles.ProviderError) as info:
        client.upload(src, purpose="fine-tune", max_retries=2, **large)
    assert info.value.status == 503 and info.value.code == "InternalError"
    assert len(parts_sent(proxy, 3)) == 3
    assert any("session was kept" in n for n in info.value.__notes__)
    (left,) = uploads_in_progress(s3, prefix)
    rule.times = 0
    proxy.requests.clear()

    with llmfiles.Client("bedrock", **bedrock_settings) as later:  # a later run: only the state database is shared
        fo = later.upload(src, purpose="fine-tune", **large)
    assert [r.query.get("partNumber") for r in parts_sent(proxy)] == [["3"]]  # ListParts confirmed 1 and 2
    assert any(r.method == "GET" and r.query.get("uploadId") == [left["UploadId"]] for r in proxy.requests)
    assert uploads_in_progress(s3, prefix) == []
    body = s3.get_object(Bucket=BUCKET, Key=fo.id.split("/", 3)[3])["Body"].read()
    assert body == src.read_bytes()


def test_complete_answering_200_with_an_error_is_a_failure(
    client: llmfiles.Client, make_jsonl: Any, proxy: FaultProxy, s3: Any, prefix: str
) -> None:
    src = make_jsonl("complete.jsonl", min_bytes=6 * MiB)
    proxy.add_rule(is_complete, Respond(200, {"Content-Type": "application/xml"}, INTERNAL_ERROR), times=100)
    with pytest.raises(llmfiles.ProviderError) as info:
        client.upload(src, purpose="fine-tune", multipart_threshold="5MiB", part_size="5MiB")
    err = info.value
    assert (err.status, err.code, err.request_id) == (200, "InternalError", "4442587FB7D0A2F9")
    assert "after answering HTTP 200" in str(err)
    assert any("aborted" in n for n in err.__notes__)
    # the failed answer is no answer: S3 is asked whether the object exists (it does not) before one more try
    sent = [(r.method, "uploadId" in r.query) for r in proxy.requests if r.method in ("POST", "HEAD", "DELETE")]
    assert sent[-4:] == [("POST", True), ("HEAD", False), ("POST", True), ("DELETE", True)]
    assert uploads_in_progress(s3, prefix) == [] and objects_under(s3, prefix) == []


def test_complete_answering_200_with_an_error_once_is_sent_again_after_a_look(
    client: llmfiles.Client, make_jsonl: Any, proxy: FaultProxy, s3: Any, prefix: str
) -> None:
    src = make_jsonl("complete.jsonl", min_bytes=6 * MiB)
    proxy.add_rule(is_complete, Respond(200, {"Content-Type": "application/xml"}, INTERNAL_ERROR))
    fo = client.upload(src, purpose="fine-tune", multipart_threshold="5MiB", part_size="5MiB")
    completes = [r for r in proxy.requests if is_complete(r)]
    assert [r.action for r in completes] == ["respond", "forward"]
    (head,) = [r for r in proxy.requests if r.method == "HEAD"]
    assert head.path == f"/{BUCKET}/{key_of(fo.id)}" and completes[0].arrived <= head.arrived <= completes[1].arrived
    assert s3.get_object(Bucket=BUCKET, Key=key_of(fo.id))["Body"].read() == src.read_bytes()
    assert uploads_in_progress(s3, prefix) == []


def test_a_lost_complete_answer_is_looked_up_not_sent_again(
    client: llmfiles.Client, make_jsonl: Any, proxy: FaultProxy, s3: Any, prefix: str
) -> None:
    src = make_jsonl("lost-complete.jsonl", min_bytes=6 * MiB)
    proxy.add_rule(is_complete, DropResponse())
    fo = client.upload(src, purpose="fine-tune", multipart_threshold="5MiB", part_size="5MiB")
    assert [r.action for r in proxy.requests if is_complete(r)] == ["drop response"]
    (head,) = [r for r in proxy.requests if r.method == "HEAD"]
    assert head.path == f"/{BUCKET}/{key_of(fo.id)}"
    assert not [r for r in proxy.requests if r.method == "DELETE"]
    assert (fo.bytes, fo.purpose, fo.checksums) == (src.stat().st_size, "fine-tune", {})  # a multipart ETag: no MD5
    assert s3.get_object(Bucket=BUCKET, Key=key_of(fo.id))["Body"].read() == src.read_bytes()
    assert uploads_in_progress(s3, prefix) == []


def test_an_abort_that_fails_is_reported(
    client: llmfiles.Client, make_jsonl: Any, proxy: FaultProxy, s3: Any, prefix: str
) -> None:
    src = make_jsonl("abort.jsonl", min_bytes=6 * MiB)
    proxy.add_rule(is_part(2), Respond(400, {"Content-Type": "application/xml"}, INTERNAL_ERROR))
    proxy.add_rule(lambda r: r.method == "DELETE", Respond(500, {}, b""), times=100)
    with pytest.raises(llmfiles.ProviderError) as info:
        client.upload(src, purpose="fine-tune", multipart_threshold="5MiB", part_size="5MiB", max_retries=0)
    assert any("could not be aborted" in n for n in info.value.__notes__)
    (left,) = uploads_in_progress(s3, prefix)
    s3.abort_multipart_upload(Bucket=BUCKET, Key=left["Key"], UploadId=left["UploadId"])


# --- retrieve, list, delete, download ------------------------------------------------------------------------


def test_list_reads_every_page(
    client: llmfiles.Client, make_jsonl: Any, proxy: FaultProxy, tmp_path: Path, prefix: str
) -> None:
    tuned = {client.upload(make_jsonl(f"f{i}.jsonl"), purpose="fine-tune").id for i in range(4)}
    batch = tmp_path / "b.jsonl"
    batch.write_text('{"recordId": "r1", "modelInput": {"prompt": "hi"}}\n')
    batched = client.upload(batch, purpose="batch").id

    proxy.requests.clear()
    files = list(client.list_files(page_size=2))
    assert sorted(f.id for f in files) == sorted([*tuned, batched])
    assert {f.id: f.purpose for f in files} == {**dict.fromkeys(tuned, "fine-tune"), batched: "batch"}
    assert all(f.created_at > 0 and f.bytes > 0 and f.status == "processed" for f in files)
    pages = [r for r in proxy.requests if r.method == "GET"]
    assert len(pages) == 3
    assert all(r.query["list-type"] == ["2"] and r.query["prefix"] == [prefix] for r in pages)
    assert "continuation-token" not in pages[0].query
    assert all(r.query.get("continuation-token") for r in pages[1:])

    proxy.requests.clear()
    assert [f.id for f in client.list_files(purpose="batch")] == [batched]
    (only,) = proxy.requests
    assert only.query["prefix"] == [f"{prefix}batch/"]


def test_objects_not_made_by_llmfiles_are_listed_and_read(client: llmfiles.Client, s3: Any, prefix: str) -> None:
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}own/data.jsonl", Body=b'{"prompt": "a", "completion": "b"}\n')
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}folder/", Body=b"")
    (listed,) = client.list_files()
    assert listed.id == f"s3://{BUCKET}/{prefix}own/data.jsonl" and listed.purpose == "unknown"
    got = client.retrieve(listed.id)
    assert (got.bytes, got.filename, got.purpose) == (35, "data.jsonl", "unknown")


def test_retrieve_delete_and_download(
    client: llmfiles.Client, make_jsonl: Any, proxy: FaultProxy, tmp_path: Path
) -> None:
    src = make_jsonl("ops.jsonl")
    fo = client.upload(src, purpose="fine-tune")
    got = client.retrieve(fo.id)
    assert (got.id, got.bytes, got.purpose, got.filename, got.created_at) == (
        fo.id,
        fo.bytes,
        "fine-tune",
        "ops.jsonl",
        fo.created_at,
    )
    folder = tmp_path / "out"
    folder.mkdir()
    assert client.download(fo.id, folder).read_bytes() == src.read_bytes()  # a folder: the file keeps its name
    assert (folder / "ops.jsonl").exists()
    assert client.delete(fo.id) is True
    with pytest.raises(llmfiles.FileNotFound) as info:
        client.retrieve(fo.id)
    assert info.value.status == 404
    with pytest.raises(llmfiles.FileNotFound):
        client.download(fo.id, tmp_path / "gone.jsonl")
    assert not (tmp_path / "gone.jsonl").exists()
    methods = [r.method for r in proxy.requests]
    assert methods == ["PUT", "HEAD", "HEAD", "GET", "DELETE", "HEAD", "GET"]


def test_ids_must_be_s3_uris(client: llmfiles.Client) -> None:
    for bad in ("file-abc123", f"s3://{BUCKET}", f"s3://{BUCKET}/", "gs://b/k"):
        with pytest.raises(llmfiles.InputError):
            client.retrieve(bad)


def test_a_missing_bucket_is_the_providers_error(bedrock_settings: dict[str, Any]) -> None:
    settings = {**bedrock_settings, "bucket": "no-such-bucket-here"}
    with llmfiles.Client("bedrock", **settings) as c, pytest.raises(llmfiles.ProviderError) as info:
        list(c.list_files())
    assert (info.value.status, info.value.code) == (404, "NoSuchBucket")


def test_a_bucket_in_another_region_says_which(client: llmfiles.Client, proxy: FaultProxy) -> None:
    proxy.add_rule(lambda r: r.method == "HEAD", Respond(301, {"x-amz-bucket-region": "eu-north-1"}, b""))
    malformed = (
        b"<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region 'us-east-1' is wrong; expecting "
        b"'eu-north-1'</Message><Region>eu-north-1</Region><RequestId>R1</RequestId></Error>"
    )
    proxy.add_rule(lambda r: r.method == "GET", Respond(400, {"Content-Type": "application/xml"}, malformed))
    with pytest.raises(llmfiles.ProviderError) as info:
        client.retrieve(f"s3://{BUCKET}/k/x.jsonl")
    assert info.value.code == "PermanentRedirect" and "set aws_region=eu-north-1" in str(info.value)
    with pytest.raises(llmfiles.ProviderError) as info:
        list(client.list_files())
    assert info.value.code == "AuthorizationHeaderMalformed" and "set aws_region=eu-north-1" in str(info.value)


# --- settings: bucket, prefix, region, endpoint --------------------------------------------------------------


def test_bucket_is_required_and_checked(bedrock_settings: dict[str, Any], make_jsonl: Any, monkeypatch: Any) -> None:
    settings = {k: v for k, v in bedrock_settings.items() if k != "bucket"}
    with llmfiles.Client("bedrock", **settings) as c:
        with pytest.raises(llmfiles.ConfigurationError) as info:
            c.upload(make_jsonl(), purpose="fine-tune")
        assert "LLMFILES_S3_BUCKET" in str(info.value) and "AWS_S3_BUCKET_NAME" in str(info.value)
        with pytest.raises(llmfiles.ConfigurationError, match="not a bucket name"):
            c.upload(make_jsonl(), purpose="fine-tune", bucket="Not_A_Bucket")
        monkeypatch.setenv("AWS_S3_BUCKET_NAME", BUCKET)
        assert c.upload(make_jsonl(), purpose="fine-tune").id.startswith(f"s3://{BUCKET}/")
        monkeypatch.setenv("LLMFILES_S3_BUCKET", "no-such-bucket-here")  # first match wins
        with pytest.raises(llmfiles.ProviderError, match="NoSuchBucket"):
            c.upload(make_jsonl(), purpose="fine-tune")


def test_prefix_rules(bedrock_settings: dict[str, Any], make_jsonl: Any) -> None:
    with llmfiles.Client("bedrock", **bedrock_settings) as c:
        with pytest.raises(llmfiles.ConfigurationError, match="prefix"):
            c.upload(make_jsonl(), purpose="fine-tune", prefix="has space/")
        fo = c.upload(make_jsonl(), purpose="fine-tune", prefix="no/trailing/slash")
        assert key_of(fo.id).startswith("no/trailing/slash/fine-tune/")
        c.delete(fo.id)


def test_no_silent_default_region(bedrock_settings: dict[str, Any], make_jsonl: Any, proxy: FaultProxy) -> None:
    settings = {k: v for k, v in bedrock_settings.items() if k != "aws_region"}
    with llmfiles.Client("bedrock", **settings) as c, pytest.raises(llmfiles.ConfigurationError) as info:
        c.upload(make_jsonl(), purpose="fine-tune")
    message = str(info.value)
    for place in ("aws_region", "AWS_REGION", "AWS_DEFAULT_REGION", "profile"):
        assert place in message
    assert proxy.requests == []
    with pytest.raises(llmfiles.ConfigurationError, match="not an AWS region"):
        llmfiles.Client("bedrock", **{**settings, "aws_region": "moon base"}).retrieve(f"s3://{BUCKET}/k/x")


def _scope(proxy: FaultProxy) -> str:
    auth = proxy.requests[-1].header("authorization") or ""
    return auth.split("Credential=")[1].split(",")[0]


@pytest.mark.parametrize("var", ["AWS_REGION", "AWS_DEFAULT_REGION"])
def test_region_from_the_environment(
    bedrock_settings: dict[str, Any], make_jsonl: Any, proxy: FaultProxy, monkeypatch: Any, var: str
) -> None:
    monkeypatch.setenv(var, "eu-west-3")
    settings = {k: v for k, v in bedrock_settings.items() if k != "aws_region"}
    with llmfiles.Client("bedrock", **settings) as c:
        c.upload(make_jsonl(), purpose="fine-tune")
    assert _scope(proxy).split("/")[2] == "eu-west-3"


def test_region_from_the_profile(
    bedrock_settings: dict[str, Any], make_jsonl: Any, proxy: FaultProxy, tmp_path: Path
) -> None:
    config = Path(str(tmp_path / "aws" / "config"))
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("[profile dev]\nregion = ap-southeast-2\n")
    settings = {k: v for k, v in bedrock_settings.items() if k != "aws_region"}
    with llmfiles.Client("bedrock", aws_profile="dev", **settings) as c:
        c.upload(make_jsonl(), purpose="fine-tune")
        assert _scope(proxy).split("/")[2] == "ap-southeast-2"
        with pytest.raises(llmfiles.ConfigurationError, match="'nope' is not in"):
            c.upload(make_jsonl(), purpose="fine-tune", aws_profile="nope")


@pytest.mark.parametrize("var", ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])
def test_endpoint_from_the_environment(
    bedrock_settings: dict[str, Any], make_jsonl: Any, proxy: FaultProxy, monkeypatch: Any, var: str
) -> None:
    monkeypatch.setenv(var, proxy.url)
    settings = {k: v for k, v in bedrock_settings.items() if k != "api_base"}
    with llmfiles.Client("bedrock", **settings) as c:
        fo = c.upload(make_jsonl(), purpose="fine-tune")
    assert proxy.requests[-1].path == f"/{BUCKET}/{key_of(fo.id)}"


def test_aws_urls_by_default() -> None:
    from llmfiles_bedrock import s3 as wire

    ep = wire.Endpoint(region="eu-west-1", sign=lambda m, u, h, b, unsigned: dict(h))
    loc = wire.Location(bucket="my-bucket", key="llmfiles/fine-tune/x/a b.jsonl")
    assert ep.object_url(loc) == "https://my-bucket.s3.eu-west-1.amazonaws.com/llmfiles/fine-tune/x/a%20b.jsonl"
    assert ep.bucket_url("my.dotted.bucket") == "https://s3.eu-west-1.amazonaws.com/my.dotted.bucket"
    cn = wire.Endpoint(region="cn-north-1", sign=ep.sign, suffix="amazonaws.com.cn")
    assert cn.bucket_url("b-1") == "https://b-1.s3.cn-north-1.amazonaws.com.cn/"
    custom = wire.Endpoint(region="us-east-1", sign=ep.sign, base="https://minio.example.com/s3")
    assert custom.object_url(loc).startswith("https://minio.example.com/s3/my-bucket/llmfiles/")


# --- credentials ---------------------------------------------------------------------------------------------


def _without_keys(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if not k.startswith("aws_") or k == "aws_region"}


def test_credentials_from_the_environment_through_botocore(
    bedrock_settings: dict[str, Any], make_jsonl: Any, proxy: FaultProxy, monkeypatch: Any
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT00001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    with llmfiles.Client("bedrock", **_without_keys(bedrock_settings)) as c:
        plan = c.describe_upload(make_jsonl(), purpose="fine-tune")
        assert plan["credentials"] == "env AWS_ACCESS_KEY_ID (botocore credential chain)"
        c.upload(make_jsonl(), purpose="fine-tune")
    assert _scope(proxy).startswith("AKIAENVIRONMENT00001/")


def test_credentials_from_a_profile(
    bedrock_settings: dict[str, Any], make_jsonl: Any, proxy: FaultProxy, tmp_path: Path
) -> None:
    creds = tmp_path / "aws" / "credentials"
    creds.parent.mkdir(parents=True, exist_ok=True)
    creds.write_text(
        "[default]\naws_access_key_id = AKIADEFAULTPROFILE01\naws_secret_access_key = d\n"
        "[work]\naws_access_key_id = AKIAWORKPROFILE00001\naws_secret_access_key = w\naws_session_token = tok\n"
    )
    with llmfiles.Client("bedrock", **_without_keys(bedrock_settings)) as c:
        c.upload(make_jsonl(), purpose="fine-tune")
        assert _scope(proxy).startswith("AKIADEFAULTPROFILE01/")
        c.upload(make_jsonl(), purpose="fine-tune", aws_profile="work")
    assert _scope(proxy).startswith("AKIAWORKPROFILE00001/")
    put = proxy.requests[-1]
    assert put.header("x-amz-security-token") == "tok"
    assert "x-amz-security-token" in (put.header("authorization") or "")


def test_explicit_session_token_is_sent_and_signed(
    bedrock_settings: dict[str, Any], make_jsonl: Any, proxy: FaultProxy
) -> None:
    with llmfiles.Client("bedrock", aws_session_token="session-token-value", **bedrock_settings) as c:
        c.upload(make_jsonl(), purpose="fine-tune")
    assert proxy.requests[-1].header("x-amz-security-token") == "session-token-value"


def test_missing_credentials_name_every_place(bedrock_settings: dict[str, Any], make_jsonl: Any) -> None:
    with llmfiles.Client("bedrock", **_without_keys(bedrock_settings)) as c:
        with pytest.raises(llmfiles.MissingCredentials) as info:
            c.upload(make_jsonl(), purpose="fine-tune")
        message = str(info.value)
        for place in (
            "aws_access_key_id",
            "aws_profile",
            "AWS_ACCESS_KEY_ID",
            "AWS_PROFILE",
            "sso",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "instance metadata",
        ):
            assert place in message
        with pytest.raises(llmfiles.MissingCredentials, match="aws_secret_access_key"):
            c.upload(make_jsonl(), purpose="fine-tune", aws_access_key_id="AKIAONLYHALF")
        with pytest.raises(llmfiles.MissingCredentials, match="aws_access_key_id"):
            c.upload(make_jsonl(), purpose="fine-tune", aws_session_token="token-without-keys")


def test_dry_run_needs_no_credentials(bedrock_settings: dict[str, Any], make_jsonl: Any, proxy: FaultProxy) -> None:
    with llmfiles.Client("bedrock", **_without_keys(bedrock_settings)) as c:
        plan = c.describe_upload(make_jsonl("big.jsonl", min_bytes=11 * MiB), purpose="fine-tune")
    assert plan["credentials"].startswith("missing")
    assert plan["destination"].startswith(f"s3://{BUCKET}/") and plan["mode"] == "parts"
    assert (plan["part_size"], plan["parts"]) == (8 * MiB, 2)
    assert proxy.requests == []
