"""The mistral provider against our stateful Mistral Files fake: the requests each operation sends, the file read
(``bytes`` null included), Mistral giving back a file it already has, the 512 MB limit checked first, listing every
page, errors with Mistral's message and request id, the key's source named and never its value, lost answers, the
base URL override and the dry run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from mistral_testlib import API_KEY, batch_file, chat_file

import llmfiles
from llmfiles.errors import AuthenticationError, FileNotFound, FileTooLarge, InputError, MaybeUploaded, ProviderError
from llmfiles.models import HttpResponse
from llmfiles_mistral import files
from servers.fault_proxy import DropResponse, FaultProxy
from servers.mistral_like import MistralLikeServer

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture
def client(mistral_settings: dict[str, Any]) -> Any:
    with llmfiles.Client("mistral", environ={}, **mistral_settings) as c:
        yield c


def test_an_upload_is_one_multipart_request_with_the_purpose(
    client: Any, mistral_server: MistralLikeServer, tmp_path: Path
) -> None:
    src = chat_file(tmp_path / "train.jsonl")
    fo = client.upload(src, purpose="fine-tune")
    [req] = mistral_server.requests
    assert (req.method, req.path) == ("POST", "/v1/files") and req.header("authorization") == f"Bearer {API_KEY}"
    assert b'name="purpose"\r\n\r\nfine-tune\r\n' in req.body
    assert (
        b'name="file"; filename="train.jsonl"\r\nContent-Type: application/jsonl\r\n\r\n' + src.read_bytes() in req.body
    )
    assert UUID.match(fo.id) and mistral_server.files[fo.id].content == src.read_bytes()
    assert (fo.provider, fo.filename, fo.purpose, fo.bytes, fo.status) == (
        "mistral",
        "train.jsonl",
        "fine-tune",
        src.stat().st_size,
        "processed",
    )
    assert fo.raw["sample_type"] == "instruct" and fo.raw["num_lines"] == 12


def test_an_ocr_file_is_not_checked(client: Any, tmp_path: Path) -> None:
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(b"%PDF-1.7 \xff\x00 binary")
    fo = client.upload(pdf, purpose="ocr")
    assert fo.purpose == "ocr" and fo.raw["sample_type"] == "ocr_input"


def test_the_same_name_and_content_give_back_the_file_mistral_has(
    client: Any, mistral_server: MistralLikeServer, tmp_path: Path
) -> None:
    # the fine-tuning FAQ: "the pre-existing file is returned instead of creating a new one"
    src = batch_file(tmp_path / "batch.jsonl")
    first, again = client.upload(src, purpose="batch"), client.upload(src, purpose="batch")
    assert first.id == again.id and len(mistral_server.files) == 1
    other = tmp_path / "other" / "batch.jsonl"
    other.parent.mkdir()
    batch_file(other, 13)
    assert client.upload(other, purpose="batch").id != first.id


def test_bytes_null_is_the_size_sent_or_zero(mistral_settings: dict[str, Any], tmp_path: Path) -> None:
    with (
        MistralLikeServer(api_key=API_KEY, null_bytes=True) as server,
        llmfiles.Client("mistral", environ={}, **{**mistral_settings, "api_base": server.url}) as c,
    ):
        src = chat_file(tmp_path / "t.jsonl")
        fo = c.upload(src, purpose="fine-tune")
        assert fo.bytes == src.stat().st_size and fo.raw["bytes"] is None
        assert c.retrieve(fo.id).bytes == 0  # unknown, as Mistral said


def test_the_512_mb_limit_is_checked_before_anything_is_sent(
    client: Any, mistral_server: MistralLikeServer, tmp_path: Path
) -> None:
    huge = tmp_path / "huge.pdf"
    with open(huge, "wb") as fh:
        fh.truncate(files.MAX_FILE_SIZE + 1)
    with pytest.raises(FileTooLarge, match="512,000,000"):
        client.upload(huge, purpose="ocr")
    assert client.describe_upload(huge, purpose="ocr")["ok"] is False
    assert mistral_server.requests == []


def test_list_reads_every_page_of_the_purpose(client: Any, mistral_server: MistralLikeServer, tmp_path: Path) -> None:
    made = [client.upload(batch_file(tmp_path / f"b{i}.jsonl", 3 + i), purpose="batch").id for i in range(7)]
    tuned = client.upload(chat_file(tmp_path / "t.jsonl"), purpose="fine-tune").id
    assert [f.id for f in client.list_files(purpose="batch", page_size=3)] == made
    lists = mistral_server.requests_to("list")
    assert [r.query["page"] for r in lists] == [["0"], ["1"], ["2"]]
    assert all(r.query["page_size"] == ["3"] and r.query["purpose"] == ["batch"] for r in lists)
    assert [f.id for f in client.list_files()] == [*made, tuned]


def test_retrieve_download_delete(client: Any, mistral_server: MistralLikeServer, tmp_path: Path) -> None:
    src = batch_file(tmp_path / "b.jsonl")
    fo = client.upload(src, purpose="batch")
    assert client.retrieve(fo.id).raw["deleted"] is False
    assert client.download(fo.id, tmp_path / "back.jsonl").read_bytes() == src.read_bytes()
    assert mistral_server.requests[-1].path == f"/v1/files/{fo.id}/content"
    assert client.delete(fo.id) is True
    with pytest.raises(FileNotFound) as info:
        client.retrieve(fo.id)
    err = info.value
    assert err.status == 404 and f"File {fo.id} not found" in str(err) and err.error_type == "invalid_request_error"
    assert err.request_id == mistral_server.requests[-1].request_id and err.request_id in str(err)
    for bad in ("file-abc", "../x", "e85980c9-409e-4a46-9304"):
        with pytest.raises(InputError, match="not a Mistral file id"):
            client.retrieve(bad)


def test_errors_and_their_request_ids(client: Any, mistral_server: MistralLikeServer) -> None:
    mistral_server.fail("list", 400, message="Invalid page size")
    with pytest.raises(ProviderError) as info:
        list(client.list_files())
    assert "Invalid page size" in str(info.value) and info.value.request_id
    # 5xx and 429 are retried
    mistral_server.fail("list", 503, times=2)
    assert list(client.list_files()) == []
    # a request that failed validation: FastAPI's detail, one line
    detail = {"detail": [{"loc": ["body", "purpose"], "msg": "Input should be 'fine-tune', 'batch' or 'ocr'"}]}
    response = HttpResponse(status=422, headers={"x-kong-request-id": "kong-1"}, body=json.dumps(detail).encode())
    err = files.error("mistral", response)
    assert err.message == "purpose: Input should be 'fine-tune', 'batch' or 'ocr'" and err.request_id == "kong-1"


def test_a_refused_key_names_its_source_never_its_value(mistral_server: MistralLikeServer, tmp_path: Path) -> None:
    wrong = "mistral-wrong-key-abcdefghijklmnop"
    client = llmfiles.Client("mistral", environ={"MISTRAL_API_KEY": wrong}, api_base=mistral_server.url)
    with client, pytest.raises(AuthenticationError) as info:
        client.upload(batch_file(tmp_path / "b.jsonl"), purpose="batch")
    text = str(info.value) + repr(info.value.__dict__)
    assert "Unauthorized" in text and "env MISTRAL_API_KEY" in text and info.value.status == 401
    assert wrong not in text and wrong[8:] not in text
    with (
        llmfiles.Client("mistral", environ={}) as c,
        pytest.raises(llmfiles.MissingCredentials, match="MISTRAL_API_KEY"),
    ):
        c.upload(batch_file(tmp_path / "c.jsonl"), purpose="batch")


def test_a_lost_upload_answer_is_looked_for_and_never_sent_twice(
    mistral_server: MistralLikeServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    proxy.add_rule(lambda r: r.method == "POST", DropResponse())
    src = batch_file(tmp_path / "b.jsonl")
    client = llmfiles.Client("mistral", environ={}, api_key=API_KEY, api_base=proxy.url, max_retry_wait=0.01)
    with client, pytest.raises(MaybeUploaded) as info:
        client.upload(src, purpose="batch")
    [made] = mistral_server.files
    assert list(info.value.candidates) == [made]
    assert [r.method for r in proxy.requests] == ["POST", "GET"]
    lookup = proxy.requests[1]
    assert lookup.query["purpose"] == ["batch"] and lookup.query["search"] == ["b.jsonl"]


def test_the_base_url_comes_from_mistral_api_base(mistral_server: MistralLikeServer, tmp_path: Path) -> None:
    env = {"MISTRAL_API_KEY": API_KEY, "MISTRAL_API_BASE": mistral_server.url + "/v1"}
    with llmfiles.Client("mistral", environ=env) as c:
        assert c.upload(batch_file(tmp_path / "b.jsonl"), purpose="batch").id
    assert mistral_server.requests[-1].path == "/v1/files"


def test_the_dry_run_aims_at_the_documented_endpoint(tmp_path: Path) -> None:
    with llmfiles.Client("mistral", environ={"MISTRAL_API_KEY": API_KEY}) as c:
        plan = c.describe_upload(chat_file(tmp_path / "t.jsonl"), purpose="fine-tune")
    assert plan["ok"] and plan["destination"] == "POST https://api.mistral.ai/v1/files"
    assert plan["mode"] == "single request" and plan["credentials"] == "env MISTRAL_API_KEY"
    assert any("mistral rules for 'fine-tune' records" in c for c in plan["checks"])
