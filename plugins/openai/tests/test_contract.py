"""The real plugin driven through Stoplight Prism serving OpenAI's published OpenAPI contract.

Prism rejects every request that breaks the contract (422/415), so each call that comes back 200 proves the
request's wire format: paths, methods, query parameters, multipart fields, JSON bodies and auth header.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import llmfiles
from llmfiles.models import FileRange, ListFiles, Upload, UploadFacts
from llmfiles.plugins import PluginManager
from llmfiles.provider import Exchange
from llmfiles.transport import Policy, Transport
from llmfiles_openai import wire
from llmfiles_openai.plugin import OpenAIProvider
from servers.recording import Recorder

MiB = 1024 * 1024


@pytest.fixture
def recorder() -> Recorder:
    """The openai provider wrapped by an in-house plugin that records every request and every answer it reads."""
    return Recorder(OpenAIProvider())


@pytest.fixture
def client(prism_openai: str, recorder: Recorder) -> Iterator[llmfiles.Client]:
    pm = PluginManager(load_entry_points=False)
    pm.register(recorder, "recorder")
    c = llmfiles.Client("openai", plugin_manager=pm, environ={}, api_key="sk-contract-test", api_base=prism_openai)
    yield c
    c.close()


class Bytes:
    """The body source of a request sent by hand: the file's bytes from memory."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, offset: int, length: int) -> Iterator[bytes]:
        yield self.data[offset : offset + length]


def test_single_upload_passes_the_contract(client: llmfiles.Client, make_jsonl: Any, recorder: Recorder) -> None:
    fo = client.upload(make_jsonl(), purpose="fine-tune")
    assert fo.provider == "openai" and fo.id  # Prism's example answer, normalized
    req = recorder.requests[-1]
    assert req.method == "POST" and req.url.endswith("/v1/files")
    assert req.headers["Authorization"] == "Bearer sk-contract-test"
    assert req.headers["Content-Type"].startswith("multipart/form-data; boundary=")


@pytest.mark.parametrize("purpose", ["assistants", "batch", "fine-tune", "vision", "user_data", "evals"])
def test_every_files_purpose_passes_the_contract(
    client: llmfiles.Client, make_jsonl: Any, make_batch_jsonl: Any, purpose: str
) -> None:
    file = make_batch_jsonl() if purpose == "batch" else make_jsonl()
    assert client.upload(file, purpose=purpose).provider == "openai"


def test_expires_after_passes_the_contract(client: llmfiles.Client, make_batch_jsonl: Any) -> None:
    assert client.upload(make_batch_jsonl(), purpose="batch", expires_after=3600).id


def test_uploads_flow_passes_the_contract(client: llmfiles.Client, make_jsonl: Any, recorder: Recorder) -> None:
    src = make_jsonl("big.jsonl", min_bytes=3 * MiB + 123)
    # Prism's fixed example for /complete is an upload still "pending" with no file, so the protocol refuses it -
    # after every request (create, each part, complete) was accepted by the contract with a 200.
    with pytest.raises(llmfiles.ProviderError) as info:
        client.upload(src, purpose="fine-tune", multipart_threshold=MiB, part_size=MiB)
    assert "ended with status 'pending' and no file object" in str(info.value)
    assert info.value.status == 200
    assert recorder.statuses[0] == ("start", 200)
    parts = [s for s in recorder.statuses if s[0] == "part"]
    assert len(parts) == 4 and all(status == 200 for _, status in parts)
    assert ("complete", 200) in recorder.statuses
    start = recorder.requests[0]
    assert start.url.endswith("/v1/uploads")
    body = json.loads(start.body)  # type: ignore[arg-type]
    assert body == {
        "filename": "big.jsonl",
        "purpose": "fine-tune",
        "bytes": src.stat().st_size,
        "mime_type": "text/jsonl",
    }
    complete = next(r for r in recorder.requests if r.url.endswith("/complete"))
    payload = json.loads(complete.body)  # type: ignore[arg-type]
    assert len(payload["part_ids"]) == 4 and len(payload["md5"]) == 32
    assert any("the unfinished upload session was aborted" in n for n in getattr(info.value, "__notes__", []))
    assert recorder.requests[-1].url.endswith("/cancel")


def test_list_retrieve_download_delete_pass_the_contract(
    client: llmfiles.Client, tmp_path: Path, recorder: Recorder
) -> None:
    files = list(client.list_files(purpose="fine-tune", page_size=100))
    assert files and all(f.provider == "openai" for f in files)
    assert "purpose=fine-tune" in recorder.requests[-1].url and "limit=100" in recorder.requests[-1].url
    assert client.retrieve("file-abc123").id
    out = client.download("file-abc123", tmp_path / "content.bin")
    assert out.exists()
    assert client.delete("file-abc123") is True
    assert recorder.statuses == [("list", 200), ("retrieve", 200), ("download", 200), ("delete", 200)]


def test_prism_really_rejects_a_broken_request(prism_openai: str) -> None:
    """The contract tests can fail: a request with a purpose outside the contract gets 422 from Prism, one without
    the Authorization header 401."""
    data = b'{"a": 1}\n'
    facts = UploadFacts(purpose="not-a-purpose", filename="x.jsonl", size=len(data))
    ep = wire.Endpoint(provider="openai", base=prism_openai, headers={"Authorization": "Bearer x"})
    upload = wire.exchange(ep, Upload(file=facts))
    assert isinstance(upload, Exchange)
    assert FileRange(offset=0, length=len(data)) in upload.request.body  # type: ignore[operator]
    transport = Transport()
    policy = Policy(provider="openai", max_retries=0)
    sent = transport.send(upload.request, policy, body=Bytes(data))
    assert sent.response is not None and sent.response.status == 422
    no_auth = wire.exchange(wire.Endpoint(provider="openai", base=prism_openai), ListFiles())
    assert isinstance(no_auth, Exchange)
    sent = transport.send(no_auth.request, policy)
    assert sent.response is not None and sent.response.status == 401
    transport.close()
