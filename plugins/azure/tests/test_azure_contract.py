"""The real plugin driven through Stoplight Prism serving Azure's published OpenAPI contract (api-version 2024-10-21).

Prism rejects every request that breaks the contract (422 for a missing ``api-version``, a purpose outside the
enum or a missing form field; 401 without ``api-key``), so each call that comes back 2xx proves the request's wire
format: paths under ``/openai``, the ``api-version`` query, multipart fields, JSON bodies and the auth header.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import llmfiles
from llmfiles.models import FileRange, HttpRequest, ListFiles, Upload, UploadFacts
from llmfiles.plugins import PluginManager
from llmfiles.provider import Exchange
from llmfiles.transport import Policy, Transport
from llmfiles_azure import plugin as azure_plugin
from llmfiles_openai import wire
from servers.recording import Recorder

API_VERSION = azure_plugin.DEFAULT_API_VERSION
MiB = 1024 * 1024
BOM = b"\xef\xbb\xbf"
QUERY = f"?api-version={API_VERSION}"


def make_client(endpoint: str, recorder: Recorder, **settings: Any) -> llmfiles.Client:
    """A client whose only plugin is the azure provider wrapped by the recording in-house plugin."""
    pm = PluginManager(load_entry_points=False)
    pm.register(recorder, "recorder")
    settings.setdefault("api_key", "azure-contract-key")
    return llmfiles.Client("azure", plugin_manager=pm, environ={}, api_base=endpoint, **settings)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder(azure_plugin.AzureProvider())


@pytest.fixture
def client(prism_azure: str, recorder: Recorder) -> Iterator[llmfiles.Client]:
    c = make_client(prism_azure, recorder)
    yield c
    c.close()


def _file_segments(request: HttpRequest) -> tuple[bytes, FileRange]:
    """The bytes sent just before the file's own bytes, and the file's segment."""
    assert isinstance(request.body, tuple)
    index = next(i for i, seg in enumerate(request.body) if isinstance(seg, FileRange))
    before = request.body[index - 1]
    assert isinstance(before, bytes)
    seg = request.body[index]
    assert isinstance(seg, FileRange)
    return before, seg


class Bytes:
    """The body source of a request sent by hand: the file's bytes from memory."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, offset: int, length: int) -> Iterator[bytes]:
        yield self.data[offset : offset + length]


def test_single_upload_passes_the_contract_and_its_201_is_accepted(
    client: llmfiles.Client, make_jsonl: Any, recorder: Recorder
) -> None:
    src = make_jsonl()
    fo = client.upload(src, purpose="fine-tune")
    assert fo.provider == "azure" and fo.id  # Prism's example answer, normalized
    assert recorder.statuses == [("upload", 201)]
    req = recorder.requests[-1]
    assert req.method == "POST" and req.url.endswith("/openai/files" + QUERY)
    assert req.headers["api-key"] == "azure-contract-key"
    assert "Authorization" not in req.headers
    assert req.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    before, seg = _file_segments(req)
    assert before.endswith(b"Content-Type: application/octet-stream\r\n\r\n" + BOM)  # the BOM, added on the fly
    assert (seg.offset, seg.length) == (0, src.stat().st_size)


@pytest.mark.parametrize("purpose", azure_plugin.CLASSIC_PURPOSES)
def test_every_classic_purpose_passes_the_contract(
    client: llmfiles.Client, make_jsonl: Any, make_batch_jsonl: Any, purpose: str
) -> None:
    file = make_batch_jsonl() if purpose == "batch" else make_jsonl()
    assert client.upload(file, purpose=purpose).provider == "azure"


def test_uploads_flow_passes_the_contract(client: llmfiles.Client, make_jsonl: Any, recorder: Recorder) -> None:
    src = make_jsonl("big.jsonl", min_bytes=3 * MiB + 123)
    size = src.stat().st_size
    # Prism's fixed example for /complete is an upload still "pending", so the protocol refuses it - after every
    # request (create, each part, complete) was accepted by the contract.
    with pytest.raises(llmfiles.ProviderError) as info:
        client.upload(src, purpose="fine-tune", multipart_threshold=MiB, part_size=MiB)
    assert "ended with status 'pending'" in str(info.value) and info.value.status == 200
    assert recorder.statuses[0] == ("start", 200)
    parts = [s for s in recorder.statuses if s[0] == "part"]
    assert len(parts) == 4 and all(status == 200 for _, status in parts)
    assert ("complete", 200) in recorder.statuses
    assert all(r["azure_block_id"] == "string" for r in recorder.receipts)  # Azure's extra field, kept in receipts

    start = recorder.requests[0]
    assert start.url.endswith("/openai/uploads" + QUERY) and start.headers["api-key"] == "azure-contract-key"
    body = json.loads(start.body)  # type: ignore[arg-type]
    assert body == {"filename": "big.jsonl", "purpose": "fine-tune", "bytes": size + 3, "mime_type": "text/jsonl"}
    part_requests = [r for r in recorder.requests if "/parts" in r.url]
    assert len(part_requests) == 4
    assert all(r.url.endswith("/openai/uploads/string/parts" + QUERY) for r in part_requests)
    firsts = sorted((_file_segments(r) for r in part_requests), key=lambda pair: pair[1].offset)
    assert firsts[0][0].endswith(b"\r\n\r\n" + BOM) and firsts[0][1].offset == 0  # only the first part carries it
    assert not any(before.endswith(BOM) for before, _ in firsts[1:])
    (complete,) = [r for r in recorder.requests if "/complete" in r.url]
    assert complete.url.endswith("/openai/uploads/string/complete" + QUERY)
    # no MD5 when a BOM is added: the one the core knows is of the file on disk, not of the bytes sent
    assert json.loads(complete.body) == {"part_ids": ["string"] * 4}  # type: ignore[arg-type]
    assert any("the unfinished upload session was aborted" in n for n in getattr(info.value, "__notes__", []))
    cancel = recorder.requests[-1]
    assert cancel.url.endswith("/openai/uploads/string/cancel" + QUERY) and cancel.headers["api-key"]
    assert all(r.headers.get("api-key") == "azure-contract-key" for r in recorder.requests)


def test_uploads_flow_of_a_file_with_a_bom_sends_its_md5(
    client: llmfiles.Client, tmp_path: Path, make_jsonl: Any, recorder: Recorder
) -> None:
    plain = make_jsonl("plain.jsonl", min_bytes=2 * MiB + 7)
    src = tmp_path / "bom.jsonl"
    src.write_bytes(BOM + plain.read_bytes())
    with pytest.raises(llmfiles.ProviderError):
        client.upload(src, purpose="fine-tune", multipart_threshold=MiB, part_size=MiB)
    assert json.loads(recorder.requests[0].body)["bytes"] == src.stat().st_size  # type: ignore[arg-type]
    (complete_request,) = [r for r in recorder.requests if "/complete" in r.url]
    complete = json.loads(complete_request.body)  # type: ignore[arg-type]
    assert complete["md5"] == hashlib.md5(src.read_bytes()).hexdigest()
    assert ("complete", 200) in recorder.statuses


def test_list_retrieve_download_delete_pass_the_contract(
    client: llmfiles.Client, tmp_path: Path, recorder: Recorder
) -> None:
    files = list(client.list_files(purpose="fine-tune", page_size=100))
    assert files and all(f.provider == "azure" for f in files)
    listed = recorder.requests[-1]
    assert listed.method == "GET" and "/openai/files?" in listed.url
    assert f"api-version={API_VERSION}" in listed.url and "purpose=fine-tune" in listed.url
    assert "limit=" not in listed.url and "after=" not in listed.url  # the classic API has no paging parameters
    fo = client.retrieve("file-abc123")
    assert fo.id and fo.status == "uploaded"
    assert recorder.requests[-1].url.endswith("/openai/files/file-abc123" + QUERY)
    out = client.download("file-abc123", tmp_path / "content.bin")
    assert out.read_bytes() in (b"string", b'"string"')  # Prism's example (octet-stream or JSON string)
    assert recorder.requests[-1].url.endswith("/openai/files/file-abc123/content" + QUERY)
    assert client.delete("file-abc123") is True
    assert recorder.requests[-1].method == "DELETE"
    assert recorder.statuses == [("list", 200), ("retrieve", 200), ("download", 200), ("delete", 200)]


def test_azure_error_body_from_the_contract_becomes_a_provider_error(prism_azure: str, make_jsonl: Any) -> None:
    """Prism answers with the contract's ErrorResponse (``Prefer: code=404``, added by an in-house wrapper)."""
    rec = Recorder(azure_plugin.AzureProvider(), extra_headers={"Prefer": "code=404"})
    c = make_client(prism_azure, rec, max_retries=0)
    with pytest.raises(llmfiles.FileNotFound) as info:
        c.retrieve("file-abc123")
    err = info.value
    assert err.status == 404 and err.provider == "azure"
    assert err.code == "conflict"  # the example's error.code
    assert isinstance(err.details, dict) and err.details["code"] == "invalidPayload"  # error.innererror
    assert "inner error: invalidPayload" in str(err)
    c.close()


def test_prism_really_rejects_broken_requests(prism_azure: str) -> None:
    """The contract tests can fail: Prism answers 422 without api-version or with a purpose outside the contract,
    and 401 without credentials."""
    data = b'{"a": 1}\n'
    facts = UploadFacts(purpose="batch", filename="x.jsonl", size=len(data))
    transport = Transport()
    policy = Policy(provider="azure", max_retries=0)

    def status(ep: wire.Endpoint, op: Any) -> int:
        ex = wire.exchange(ep, op)
        assert isinstance(ex, Exchange)
        sent = transport.send(ex.request, policy, body=Bytes(data))
        assert sent.response is not None
        return sent.response.status

    no_version = wire.Endpoint(provider="azure", base=prism_azure + "/openai", headers={"api-key": "k"})
    assert status(no_version, Upload(file=facts)) == 422
    good = attrs.evolve(no_version, query={"api-version": API_VERSION})
    assert status(good, Upload(file=facts)) == 201
    evals = attrs.evolve(facts, purpose="evals")  # a v1 purpose, not in the 2024-10-21 contract
    assert status(good, Upload(file=evals)) == 422
    assert status(attrs.evolve(good, headers={}), ListFiles()) == 401
    transport.close()
