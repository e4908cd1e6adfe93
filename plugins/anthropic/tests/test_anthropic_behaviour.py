"""The anthropic provider against our stateful Anthropic Files fake: the requests each operation sends (as Anthropic
documents them), purposes (what is accepted, what is refused and what Anthropic offers instead), the limits and the
filename rule checked before a byte is sent, listing every page, errors with Anthropic's message and request id,
the key's source named and never its value, lost answers, downloads Anthropic allows and refuses, the base URL
override and the dry run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from anthropic_testlib import API_KEY

import llmfiles
from llmfiles.errors import (
    AuthenticationError,
    FileNotFound,
    FileTooLarge,
    InputError,
    InvalidPurpose,
    MaybeUploaded,
    ProviderError,
)
from llmfiles_anthropic import files
from servers.anthropic_like import AnthropicLikeServer
from servers.fault_proxy import DropResponse, FaultProxy


@pytest.fixture
def client(anthropic_settings: dict[str, Any]) -> Any:
    with llmfiles.Client("anthropic", environ={}, **anthropic_settings) as c:
        yield c


@pytest.fixture
def doc(tmp_path: Path) -> Path:
    path = tmp_path / "contract.txt"
    path.write_text("Clause 1. The parties agree.\n" * 50, encoding="utf-8")
    return path


def test_an_upload_is_one_multipart_request_with_the_documented_headers(
    client: Any, anthropic_server: AnthropicLikeServer, doc: Path
) -> None:
    fo = client.upload(doc, purpose="user_data")
    [req] = anthropic_server.requests
    assert (req.method, req.path) == ("POST", "/v1/files")
    assert req.header("x-api-key") == API_KEY
    assert req.header("anthropic-version") == "2023-06-01"
    assert req.header("anthropic-beta") == "files-api-2025-04-14"
    assert req.header("content-type").startswith("multipart/form-data; boundary=")
    assert b'name="file"; filename="contract.txt"\r\nContent-Type: text/plain\r\n\r\n' + doc.read_bytes() in req.body
    stored = anthropic_server.files[fo.id]
    assert stored.content == doc.read_bytes()
    assert fo.id.startswith("file_") and fo.filename == "contract.txt" and fo.bytes == doc.stat().st_size
    assert (fo.provider, fo.purpose, fo.status) == ("anthropic", "user_data", "processed")
    assert fo.created_at == int(stored.created) and fo.raw["mime_type"] == "text/plain"


def test_assistants_is_another_name_for_a_file_to_use_in_messages(client: Any, doc: Path) -> None:
    fo = client.upload(doc, purpose="assistants")
    assert fo.purpose == "user_data" == client.retrieve(fo.id).purpose  # Anthropic keeps no purpose
    assert [f.id for f in client.list_files(purpose="assistants")] == [fo.id]
    assert [f.id for f in client.list_files(purpose="user_data")] == [fo.id]


@pytest.mark.parametrize(
    ("purpose", "offers"),
    [("fine-tune", ["no fine-tuning", "provider 'bedrock'"]), ("batch", ["Message Batches", "file_id"])],
)
def test_fine_tune_and_batch_are_refused_saying_what_anthropic_offers(
    client: Any, anthropic_server: AnthropicLikeServer, tmp_path: Path, purpose: str, offers: list[str]
) -> None:
    with pytest.raises(InvalidPurpose) as info:
        client.upload(tmp_path / "not-even-there.jsonl", purpose=purpose)
    for text in [*offers, "use one of: user_data, assistants", "platform.claude.com/docs"]:
        assert text in str(info.value)
    assert anthropic_server.requests == []


def test_the_500_mb_limit_is_checked_before_anything_is_sent(
    client: Any, anthropic_server: AnthropicLikeServer, tmp_path: Path
) -> None:
    huge = tmp_path / "huge.pdf"
    with open(huge, "wb") as fh:
        fh.truncate(files.MAX_FILE_SIZE + 1)
    with pytest.raises(FileTooLarge, match="500,000,000"):
        client.upload(huge, purpose="user_data")
    assert client.describe_upload(huge, purpose="user_data")["ok"] is False
    assert anthropic_server.requests == []


@pytest.mark.parametrize("name", ["a:b.txt", 'quote".txt', "x" * 256, "<b>.txt", "why?.txt"])
def test_a_filename_anthropic_refuses_is_refused_before_any_byte(
    client: Any, anthropic_server: AnthropicLikeServer, doc: Path, name: str
) -> None:
    with pytest.raises(InputError, match="Anthropic refuses the file name") as info:
        client.upload(doc, purpose="user_data", filename=name)
    assert "#error-handling" in str(info.value)
    assert anthropic_server.requests == []
    assert client.upload(doc, purpose="user_data", filename="x" * 255).filename == "x" * 255


def test_list_reads_every_page(client: Any, anthropic_server: AnthropicLikeServer, doc: Path) -> None:
    made = [client.upload(doc, purpose="user_data", filename=f"d{i}.txt").id for i in range(7)]
    listed = [f.id for f in client.list_files(page_size=3)]
    assert sorted(listed) == sorted(made) and len(listed) == 7
    lists = anthropic_server.requests_to("list")
    assert len(lists) == 3 and all(r.query["limit"] == ["3"] for r in lists)
    assert "after_id" not in lists[0].query and lists[1].query["after_id"] == [listed[2]]
    with pytest.raises(InvalidPurpose):
        list(client.list_files(purpose="fine-tune"))


def test_the_filename_rule_covers_what_the_core_would_not_let_through() -> None:
    # the core takes a name's last part without control characters; the rule stands on its own all the same
    for name in ("tab\there.txt", "back\\slash.txt", "", "a/b"):
        with pytest.raises(InputError, match="Anthropic refuses the file name"):
            files.check_filename(name)
    files.check_filename("Résumé (final) – v2.pdf")


def test_delete_then_the_file_is_gone(client: Any, anthropic_server: AnthropicLikeServer, doc: Path) -> None:
    fo = client.upload(doc, purpose="user_data")
    assert client.delete(fo.id) is True
    assert anthropic_server.requests[-1].method == "DELETE"
    with pytest.raises(FileNotFound) as info:
        client.retrieve(fo.id)
    err = info.value
    assert (err.status, err.code) == (404, "not_found_error") and err.request_id
    assert err.request_id == anthropic_server.requests[-1].request_id


def test_download_serves_generated_files_and_passes_on_the_refusal_of_uploads(
    client: Any, anthropic_server: AnthropicLikeServer, doc: Path, tmp_path: Path
) -> None:
    chart = anthropic_server.add_generated(b"\x89PNG\r\n\x1a\n chart")
    assert client.download(chart, tmp_path / "chart.png").read_bytes() == b"\x89PNG\r\n\x1a\n chart"
    assert anthropic_server.requests[-1].path == f"/v1/files/{chart}/content"
    assert client.retrieve(chart).raw["downloadable"] is True
    fo = client.upload(doc, purpose="user_data")
    with pytest.raises(ProviderError, match="only files created by skills or the code execution tool") as info:
        client.download(fo.id, tmp_path / "mine.txt")
    assert info.value.code == "invalid_request_error" and not (tmp_path / "mine.txt").exists()


def test_a_refused_key_names_its_source_never_its_value(anthropic_server: AnthropicLikeServer, doc: Path) -> None:
    wrong = "sk-ant-api03-wrong-key-abcdefghijklmno"
    env = {"ANTHROPIC_API_KEY": wrong}
    client = llmfiles.Client("anthropic", environ=env, api_base=anthropic_server.url)
    with client, pytest.raises(AuthenticationError) as info:
        client.upload(doc, purpose="user_data")
    text = str(info.value) + repr(info.value.__dict__)
    assert "invalid x-api-key" in text and "env ANTHROPIC_API_KEY" in text and info.value.code == "authentication_error"
    assert wrong not in text and wrong[8:] not in text
    with (
        llmfiles.Client("anthropic", environ={}) as c,
        pytest.raises(llmfiles.MissingCredentials, match="ANTHROPIC_API_KEY"),
    ):
        c.upload(doc, purpose="user_data")


def test_overloaded_and_rate_limited_answers_are_retried(
    client: Any, anthropic_server: AnthropicLikeServer, doc: Path
) -> None:
    anthropic_server.fail("upload", 529, message="Overloaded")
    anthropic_server.fail("get", 429, message="Rate limited", headers={"retry-after": "0"})
    fo = client.upload(doc, purpose="user_data")
    assert client.retrieve(fo.id).id == fo.id
    seen = [(r.route, r.status) for r in anthropic_server.requests]
    # a 5xx may come after the work was done: the upload is looked for (not there) before it is sent again
    assert seen == [("upload", 529), ("list", 200), ("upload", 200), ("get", 429), ("get", 200)]
    assert len(anthropic_server.files) == 1


def test_errors_carry_anthropics_message_type_and_request_id(
    client: Any, anthropic_server: AnthropicLikeServer
) -> None:
    anthropic_server.fail("list", 400, message="limit: Input should be between 1 and 1000")
    with pytest.raises(ProviderError) as info:
        list(client.list_files())
    err = info.value
    assert "limit: Input should be between 1 and 1000" in str(err) and err.code == "invalid_request_error"
    assert err.request_id == anthropic_server.requests[-1].request_id and err.request_id in str(err)


def test_a_lost_upload_answer_is_looked_for_and_never_sent_twice(
    anthropic_server: AnthropicLikeServer, proxy: FaultProxy, doc: Path
) -> None:
    proxy.add_rule(lambda r: r.method == "POST", DropResponse())
    client = llmfiles.Client("anthropic", environ={}, api_key=API_KEY, api_base=proxy.url, max_retry_wait=0.01)
    with client, pytest.raises(MaybeUploaded) as info:
        client.upload(doc, purpose="user_data")
    [made] = anthropic_server.files
    assert made in str(info.value) and list(info.value.candidates) == [made]
    assert [r.method for r in proxy.requests] == ["POST", "GET"]  # the lookup, never a second upload
    assert proxy.requests[1].query["limit"] == ["100"]


def test_the_base_url_comes_from_anthropic_base_url(anthropic_server: AnthropicLikeServer, doc: Path) -> None:
    env = {"ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": anthropic_server.url + "/v1/"}
    with llmfiles.Client("anthropic", environ=env) as c:
        assert c.upload(doc, purpose="user_data").id
    assert anthropic_server.requests[-1].path == "/v1/files"


def test_the_version_and_beta_headers_can_be_set(
    anthropic_server: AnthropicLikeServer, anthropic_settings: dict[str, Any], doc: Path
) -> None:
    settings = {**anthropic_settings, "anthropic_beta": "files-api-2025-04-14,other-beta-2026-01-01"}
    with llmfiles.Client("anthropic", environ={}, anthropic_version="2023-06-01", **settings) as c:
        c.upload(doc, purpose="user_data")
    assert anthropic_server.requests[-1].header("anthropic-beta") == "files-api-2025-04-14,other-beta-2026-01-01"


def test_file_ids_are_checked(client: Any, anthropic_server: AnthropicLikeServer) -> None:
    for bad in ("../files", "file id", "a/b", ""):
        with pytest.raises(InputError):
            client.retrieve(bad)
    assert anthropic_server.requests == []


def test_the_dry_run_aims_at_the_documented_endpoint(doc: Path, tmp_path: Path) -> None:
    with llmfiles.Client("anthropic", environ={"ANTHROPIC_API_KEY": API_KEY}) as c:
        plan = c.describe_upload(doc, purpose="user_data")
        refused = c.describe_upload(doc, purpose="user_data", filename="a:b.txt")
    assert plan["ok"] and plan["destination"] == "POST https://api.anthropic.com/v1/files"
    assert plan["mode"] == "single request" and plan["credentials"] == "env ANTHROPIC_API_KEY"
    assert refused["ok"] is False and any("Anthropic refuses the file name" in p for p in refused["problems"])
    assert json.dumps(plan)  # the plan is data


def test_a_malformed_answer_is_an_error_not_a_file() -> None:
    ep = files.Endpoint(provider="anthropic", purpose="user_data")
    for data in (
        {"id": "file_1"},
        {"id": "file_1", "filename": "a", "size_bytes": "12", "created_at": "x"},
        {"id": 3, "type": "file"},
    ):
        with pytest.raises(ProviderError):
            files.file_object(ep, data)
