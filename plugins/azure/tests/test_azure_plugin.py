"""Endpoints, api-versions, purposes, statuses, errors and settings, against the stateful Azure test server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import llmfiles
from llmfiles.errors import FileTooLarge, InvalidSetting
from llmfiles.models import (
    Credentials,
    FilePage,
    HttpResponse,
    ListFiles,
    Operation,
    Retrieve,
    Secret,
    Settings,
    Upload,
    UploadFacts,
    UploadParts,
)
from llmfiles.provider import Exchange, Provider
from llmfiles_azure import plugin as azure_plugin
from llmfiles_openai import wire
from servers.openai_like import OpenAILikeServer

MiB = 1024 * 1024


@pytest.fixture
def client(azure_server: OpenAILikeServer) -> Iterator[llmfiles.Client]:
    c = llmfiles.Client(
        "azure", environ={}, api_base=azure_server.origin, api_key=azure_server.api_key, max_retry_wait=0.01
    )
    yield c
    c.close()


@pytest.fixture
def v1_client(azure_v1_server: OpenAILikeServer) -> Iterator[llmfiles.Client]:
    c = llmfiles.Client(
        "azure",
        environ={},
        api_base=azure_v1_server.origin,
        api_key=azure_v1_server.api_key,
        api_version="v1",
        max_retry_wait=0.01,
    )
    yield c
    c.close()


# --- registration --------------------------------------------------------------------------------------------


def test_the_provider_is_registered_through_its_entry_point() -> None:
    info = llmfiles.Client().provider_info("azure")
    assert info.package == "llmfiles-azure" and info.supports_parts
    assert info.purposes == ("fine-tune", "fine-tune-results", "assistants", "assistants_output", "batch", "evals")
    assert llmfiles.Client().provider_info("azure-openai").name == "azure"
    assert {s.name: s.env for s in info.settings}["api_key"] == ("AZURE_OPENAI_API_KEY", "AZURE_API_KEY")
    # one request carries at most 512 MB, so a file sent in one must leave room for the BOM it may get
    assert info.max_single_request_size == info.default_multipart_threshold == 512 * 1000 * 1000 - 3
    assert info.max_file_size == 9 * 1000**3


# --- classic and v1 endpoints ----------------------------------------------------------------------------------


def test_classic_requests_use_openai_paths_the_api_version_and_the_api_key(
    client: llmfiles.Client, azure_server: OpenAILikeServer, make_batch_jsonl: Any, tmp_path: Path
) -> None:
    fo = client.upload(make_batch_jsonl(), purpose="batch")
    assert fo.status == "pending"  # Azure: pending when created, processed later
    assert client.retrieve(fo.id).status == "processed"
    assert [f.id for f in client.list_files(purpose="batch", page_size=5)] == [fo.id]
    client.download(fo.id, tmp_path / "back.jsonl")
    client.delete(fo.id)
    seen = [(r.method, r.path, r.query, r.status) for r in azure_server.requests]
    q = {"api-version": ["2024-10-21"]}
    assert seen == [
        ("POST", "/openai/files", q, 201),
        ("GET", f"/openai/files/{fo.id}", q, 200),
        ("GET", "/openai/files", {**q, "purpose": ["batch"]}, 200),  # no paging parameters on the classic API
        ("GET", f"/openai/files/{fo.id}/content", q, 200),
        ("DELETE", f"/openai/files/{fo.id}", q, 200),
    ]
    assert all(r.headers.get("api-key") == azure_server.api_key for r in azure_server.requests)
    assert all("authorization" not in r.headers for r in azure_server.requests)


@pytest.mark.parametrize("var", ["OPENAI_API_VERSION", "AZURE_API_VERSION"])
def test_api_version_and_endpoint_from_the_environment(
    azure_server: OpenAILikeServer, make_batch_jsonl: Any, var: str
) -> None:
    env = {var: "2025-04-01-preview", "AZURE_API_BASE": azure_server.origin + "/openai/", "AZURE_API_KEY": "x"}
    env["AZURE_API_KEY"] = azure_server.api_key
    with llmfiles.Client("azure", environ=env) as client:
        assert client.describe_upload(make_batch_jsonl(), purpose="batch")["credentials"] == "env AZURE_API_KEY"
        client.upload(make_batch_jsonl(), purpose="batch")
    (req,) = azure_server.requests
    assert req.path == "/openai/files" and req.query == {"api-version": ["2025-04-01-preview"]}


def test_v1_requests_have_no_api_version_and_page_with_after_and_limit(
    v1_client: llmfiles.Client, azure_v1_server: OpenAILikeServer, make_jsonl: Any
) -> None:
    ids = {v1_client.upload(make_jsonl(f"f{i}.jsonl"), purpose="evals").id for i in range(3)}
    assert {f.id for f in v1_client.list_files(page_size=2)} == ids
    lists = azure_v1_server.requests_to("files.list")
    assert [r.path for r in azure_v1_server.requests_to("files.create")] == ["/openai/v1/files"] * 3
    assert lists[0].query == {"limit": ["2"]} and "after" in lists[1].query
    assert all("api-version" not in r.query for r in azure_v1_server.requests)


def test_v1_refuses_a_large_file_before_any_request(
    v1_client: llmfiles.Client, azure_v1_server: OpenAILikeServer, make_jsonl: Any
) -> None:
    src = make_jsonl("big.jsonl", min_bytes=2 * MiB)
    with pytest.raises(FileTooLarge) as info:
        v1_client.upload(src, purpose="fine-tune", multipart_threshold=MiB)
    message = str(info.value)
    assert "api_version='v1'" in message and "api_version='2024-10-21'" in message
    assert "no Uploads API" in message and "raise multipart_threshold" in message
    assert azure_v1_server.requests == []


def test_v1_large_file_message_above_the_single_request_limit() -> None:
    facts = UploadFacts(purpose="batch", filename="huge.jsonl", size=azure_plugin.ONE_REQUEST_FILE_LIMIT + 1)
    with pytest.raises(FileTooLarge) as info:
        _exchange(UploadParts(file=facts), api_version="v1")
    assert "api_version='2024-10-21'" in str(info.value) and "multipart_threshold" not in str(info.value)
    assert "huge.jsonl" in str(info.value)


def _settings(**values: Any) -> Settings:
    from llmfiles.settings import resolve_settings

    base = {"api_base": "https://example.openai.azure.com", "api_key": "k" * 10}
    return resolve_settings(azure_plugin.INFO, {**base, **values}, {}, {})


KEY = "k" * 10


def _exchange(op: Operation, **values: Any) -> Any:
    """What the provider builds for ``op``, with an API key (no request is sent, no file is read)."""
    credentials = Credentials(kind="api_key", source="test", secret=Secret(KEY))
    return azure_plugin.AzureProvider().exchange(op, credentials, _settings(**values))


# --- purposes ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "purpose", "hint"),
    [
        ("2024-10-21", "evals", "needs api_version='v1'"),
        ("v1", "fine-tune-results", "needs a dated api_version such as '2024-10-21'"),
        ("v1", "assistants_output", "needs a dated api_version"),
    ],
)
def test_purposes_depend_on_the_api_version_and_are_refused_before_any_request(
    azure_server: OpenAILikeServer, make_jsonl: Any, version: str, purpose: str, hint: str
) -> None:
    with (
        llmfiles.Client(
            "azure", environ={}, api_base=azure_server.origin, api_key="k" * 10, api_version=version
        ) as client,
        pytest.raises(llmfiles.InvalidPurpose) as info,
    ):
        client.upload(make_jsonl(), purpose=purpose)
    assert hint in str(info.value)
    assert azure_server.requests == []


def test_an_unknown_purpose_is_refused_by_the_core_with_every_purpose(client: llmfiles.Client) -> None:
    with pytest.raises(llmfiles.InvalidPurpose) as info:
        client.upload("missing.jsonl", purpose="vision")
    assert "fine-tune-results" in str(info.value) and "evals" in str(info.value)


# --- statuses and wait ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("azure_status", "normalized"),
    [
        ("pending", "pending"),
        ("running", "pending"),
        ("processed", "processed"),
        ("error", "error"),
        ("deleting", "deleted"),
        ("deleted", "deleted"),
        ("uploaded", "uploaded"),
        ("notRunning", "pending"),  # api-versions before 2024
        ("succeeded", "processed"),
        ("failed", "error"),
    ],
)
def test_azure_statuses_map_onto_normalized_ones(azure_status: str, normalized: str) -> None:
    body = (
        f'{{"id": "file-1", "object": "file", "bytes": 5, "created_at": 1, "filename": "a.jsonl", '
        f'"purpose": "fine-tune", "status": "{azure_status}"}}'
    ).encode()
    fo = _exchange(Retrieve(file_id="file-1")).read(HttpResponse(status=200, body=body))
    assert isinstance(fo, llmfiles.FileObject) and fo.status == normalized


def test_wait_polls_until_processed(azure_server: OpenAILikeServer, client: llmfiles.Client, make_jsonl: Any) -> None:
    fo = client.upload(make_jsonl(), purpose="fine-tune", wait=True)
    assert fo.status == "processed"
    assert [r.route for r in azure_server.requests] == ["files.create", "files.retrieve"]


def test_wait_raises_when_processing_fails(make_batch_jsonl: Any) -> None:
    with OpenAILikeServer.azure(processing_error="jsonlValidationFailed: line 3") as server:
        client = llmfiles.Client("azure", environ={}, api_base=server.origin, api_key=server.api_key)
        with client, pytest.raises(llmfiles.ProviderError) as info:
            client.upload(make_batch_jsonl(), purpose="batch", wait=True)
    assert info.value.code == "processing_error" and "jsonlValidationFailed: line 3" in str(info.value)


# --- errors ----------------------------------------------------------------------------------------------------


def test_azure_error_body_and_apim_request_id_reach_provider_error(
    azure_server: OpenAILikeServer, client: llmfiles.Client, make_batch_jsonl: Any
) -> None:
    azure_server.fail(
        "files.create", 400, code="contentFilter", inner_code="ResponsibleAIPolicyViolation", message="Filtered."
    )
    with pytest.raises(llmfiles.ProviderError) as info:
        client.upload(make_batch_jsonl(), purpose="batch")
    err = info.value
    (req,) = azure_server.requests
    assert (err.status, err.code, err.request_id) == (400, "contentFilter", req.request_id)
    assert err.details == {"code": "ResponsibleAIPolicyViolation"}
    assert str(err) == (
        f"azure HTTP 400 contentFilter: Filtered. (inner error: ResponsibleAIPolicyViolation) "
        f"(request id {req.request_id})"
    )


def test_a_wrong_key_is_an_authentication_error_naming_its_source(azure_server: OpenAILikeServer) -> None:
    wrong = "wrong-key-0123456789"
    with (
        llmfiles.Client(
            "azure", environ={"AZURE_OPENAI_API_KEY": wrong, "AZURE_OPENAI_ENDPOINT": azure_server.origin}
        ) as c,
        pytest.raises(llmfiles.AuthenticationError) as info,
    ):
        c.retrieve("file-1")
    assert info.value.status == 401 and info.value.code == "unauthorized"
    assert "env AZURE_OPENAI_API_KEY" in str(info.value) and wrong not in str(info.value)
    assert info.value.request_id == azure_server.requests[0].request_id


def test_unknown_file_is_file_not_found_with_azures_code(client: llmfiles.Client) -> None:
    with pytest.raises(llmfiles.FileNotFound) as info:
        client.retrieve("file-nope")
    assert info.value.code == "notFound" and info.value.status == 404


def test_429_is_retried_after_retry_after(
    azure_server: OpenAILikeServer, client: llmfiles.Client, make_batch_jsonl: Any
) -> None:
    azure_server.fail("files.create", 429, headers={"Retry-After": "0"})
    assert client.upload(make_batch_jsonl(), purpose="batch").id
    assert [r.status for r in azure_server.requests] == [429, 201]


# --- settings ----------------------------------------------------------------------------------------------------


def test_a_missing_endpoint_names_the_setting_and_its_environment_variables(make_jsonl: Any) -> None:
    client = llmfiles.Client("azure", environ={"AZURE_OPENAI_API_KEY": "k" * 10})
    with client, pytest.raises(InvalidSetting) as info:
        client.upload(make_jsonl(), purpose="batch")
    message = str(info.value)
    assert "api_base" in message and "AZURE_OPENAI_ENDPOINT" in message and "AZURE_API_BASE" in message


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"api_version": "latest"}, "not an Azure OpenAI api-version"),
        ({"api_base": "example.openai.azure.com"}, "not an endpoint URL"),
        ({"api_base": "https://example.openai.azure.com/openai/v1"}, "api_version='v1'"),
    ],
)
def test_malformed_settings_are_configuration_errors(values: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidSetting) as info:
        azure_plugin.target(_settings(**values))
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("values", "base", "query"),
    [
        ({}, "https://example.openai.azure.com/openai", {"api-version": "2024-10-21"}),
        ({"api_base": "https://example.openai.azure.com/openai/"}, "https://example.openai.azure.com/openai", None),
        ({"api_version": "V1"}, "https://example.openai.azure.com/openai/v1", {}),
        ({"api_base": "https://gw.example.com/aoai/"}, "https://gw.example.com/aoai/openai", None),
    ],
)
def test_endpoint_shapes(values: dict[str, Any], base: str, query: dict[str, str] | None) -> None:
    ep = azure_plugin.target(_settings(**values)).wire_endpoint()
    assert ep.base == base
    if query is not None:
        assert dict(ep.query) == query
    assert ep.request_id_headers[0] == "apim-request-id"


# --- Azure's optional fields -------------------------------------------------------------------------------------

# Azure's published example answer to POST /openai/files?api-version=2024-10-21: no "bytes"
UPLOAD_EXAMPLE = (
    b'{"status": "pending", "purpose": "fine-tune", "filename": "puppy.jsonl", '
    b'"id": "file-181a1cbdcdcf4677ada87f63a0928099", "created_at": 1646126127, "object": "file"}'
)


def _facts(path: Path, purpose: str = "fine-tune") -> UploadFacts:
    data = path.read_bytes()
    return UploadFacts(purpose=purpose, filename=path.name, size=len(data), head=data[:4096])


@pytest.mark.parametrize("body", [UPLOAD_EXAMPLE, UPLOAD_EXAMPLE.replace(b'"object"', b'"bytes": null, "object"')])
def test_an_upload_answer_without_bytes_reports_the_bytes_sent(make_jsonl: Any, body: bytes) -> None:
    src = make_jsonl()
    fo = _exchange(Upload(file=_facts(src))).read(HttpResponse(status=201, body=body))
    assert isinstance(fo, llmfiles.FileObject)
    assert fo.bytes == src.stat().st_size + 3  # the file and the BOM that was added
    assert fo.status == "pending" and fo.created_at == 1646126127
    assert "bytes" not in fo.raw or fo.raw["bytes"] is None  # Azure's answer is kept as it was
    batch = _exchange(Upload(file=_facts(src, "batch"))).read(HttpResponse(status=201, body=body))
    assert isinstance(batch, llmfiles.FileObject) and batch.bytes == src.stat().st_size


def test_a_listing_tolerates_missing_optional_fields() -> None:
    body = b'{"object": "list", "data": [{"id": "file-1", "filename": "a.jsonl", "purpose": "batch", "bytes": null}]}'
    page = _exchange(ListFiles()).read(HttpResponse(status=200, body=body))
    assert isinstance(page, FilePage) and page.next_cursor is None
    (fo,) = page.files
    assert (fo.id, fo.bytes, fo.created_at, fo.status) == ("file-1", 0, 0, "processed")


def test_a_completed_upload_without_bytes_reports_the_declared_size(make_jsonl: Any) -> None:
    src = make_jsonl()
    protocol = _exchange(UploadParts(file=_facts(src)))
    assert isinstance(protocol, wire.Uploads)
    complete = protocol.complete({"upload_id": "upload_1"}, [{"part_id": "part_1"}], {"md5": "0" * 32})
    assert "md5" not in json.loads(complete.request.body)  # the BOM is added: the file's MD5 is not the upload's
    done = b'{"id": "upload_1", "status": "completed", "file": ' + UPLOAD_EXAMPLE + b"}"
    fo = complete.read(HttpResponse(status=200, body=done))
    assert fo.bytes == src.stat().st_size + 3 and fo.id == "file-181a1cbdcdcf4677ada87f63a0928099"
    with pytest.raises(llmfiles.ProviderError, match="ended with status 'pending'"):
        complete.read(HttpResponse(status=200, body=b'{"status": "pending"}'))


def test_a_malformed_answer_is_a_provider_error() -> None:
    ex = _exchange(Retrieve(file_id="f"))
    for body in (b"<html>", b"[]", b'{"id": 5, "filename": "a", "purpose": "batch"}'):
        with pytest.raises(llmfiles.ProviderError, match="unexpected answer"):
            ex.read(HttpResponse(status=200, body=body))


def test_an_azure_error_body_is_read_with_its_inner_error_and_request_id() -> None:
    body = b'{"error": {"code": "contentFilter", "message": "Filtered.", "innererror": {"code": "Jailbreak"}}}'
    err = _exchange(Retrieve(file_id="f")).error(
        HttpResponse(status=400, headers={"apim-request-id": "apim-1", "x-request-id": "x-1"}, body=body)
    )
    assert (err.status, err.code, err.request_id) == (400, "contentFilter", "apim-1")
    assert err.message == "Filtered. (inner error: Jailbreak)" and err.details == {"code": "Jailbreak"}


# --- the provider object ------------------------------------------------------------------------------------------


def test_the_plugin_registers_one_provider_object_and_no_other_hook() -> None:
    hooks = [name for name in dir(azure_plugin) if hasattr(getattr(azure_plugin, name), "llmfiles_impl")]
    assert hooks == ["llmfiles_register_providers"]
    registered: list[Any] = []
    azure_plugin.llmfiles_register_providers(registered.append)
    (provider,) = registered
    assert isinstance(provider, azure_plugin.AzureProvider) and isinstance(provider, Provider)
    info = provider.info
    assert info.utf8_purposes == ("fine-tune",) and info.checksums == ()
    assert "convert" not in {s.name for s in info.settings}


def test_record_checkers_take_typed_settings() -> None:
    from llmfiles_azure.checks import AZURE_BATCH, AzureFineTuneChecker
    from llmfiles_openai.checks import BatchChecker

    provider = azure_plugin.AzureProvider()
    checker = provider.record_checker("fine-tune", _settings(fine_tune_model="gpt-4o-mini-2024-07-18"))
    assert isinstance(checker, AzureFineTuneChecker) and checker.model == "gpt-4o-mini-2024-07-18"
    batch = provider.record_checker("batch", _settings())
    assert isinstance(batch, BatchChecker) and batch.rules is AZURE_BATCH
    assert provider.record_checker("assistants", _settings()) is None
    with pytest.raises(InvalidSetting, match="tokenizer"):
        provider.record_checker("fine-tune", _settings(tokenizer="words"))


def test_the_provider_builds_requests_without_reading_the_file(tmp_path: Path) -> None:
    """The facts are all it gets: a file that does not exist is no obstacle to building its upload."""
    facts = UploadFacts(purpose="fine-tune", filename="nowhere.jsonl", size=10**9, head=b'{"messages": []}\n')
    ex = _exchange(Upload(file=facts))
    assert isinstance(ex, Exchange)
    assert ex.request.url == "https://example.openai.azure.com/openai/files?api-version=2024-10-21"
    assert not (tmp_path / "nowhere.jsonl").exists()
