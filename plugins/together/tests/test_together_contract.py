"""The real plugin through Stoplight Prism serving Together's published contracts (copied in ``contract/``, see its
README): every request that comes back 200 passed the contract's validation (paths, methods, multipart fields,
JSON bodies, auth); a request that breaks it gets 400, which proves the tests can fail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import llmfiles
from llmfiles.models import Credentials, FileRange, ListFiles, Secret, Settings, UploadFacts, UploadParts
from llmfiles.plugins import PluginManager
from llmfiles.provider import Exchange
from llmfiles.transport import Policy, Transport
from llmfiles_together import wire
from llmfiles_together.plugin import TogetherProvider
from servers.recording import Recorder

MiB = 1024 * 1024


class Bytes:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, offset: int, length: int) -> Iterator[bytes]:
        yield self.data[offset : offset + length]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder(TogetherProvider())


@pytest.fixture
def client(prism_together: str, recorder: Recorder) -> Iterator[llmfiles.Client]:
    pm = PluginManager(load_entry_points=False)
    pm.register(recorder, "recorder")
    c = llmfiles.Client("together", plugin_manager=pm, environ={}, api_key="tk-contract", api_base=prism_together)
    yield c
    c.close()


def test_upload_passes_the_files_contract(client: llmfiles.Client, make_jsonl: Any, recorder: Recorder) -> None:
    fo = client.upload(make_jsonl(), purpose="fine-tune")
    assert fo.provider == "together" and fo.id
    assert recorder.statuses == [("upload", 200)]
    req = recorder.requests[-1]
    assert req.url.endswith("/files/upload") and req.headers["Authorization"] == "Bearer tk-contract"


@pytest.mark.parametrize("purpose", ["fine-tune", "eval", "batch"])
def test_every_purpose_passes_the_contract(client: llmfiles.Client, tmp_path: Path, purpose: str) -> None:
    src = tmp_path / "data.jsonl"
    line = {"custom_id": "r1", "body": {}} if purpose == "batch" else {"text": "a sample"}
    src.write_text(json.dumps(line) + "\n")
    assert client.upload(src, purpose=purpose).provider == "together"


def test_list_retrieve_download_delete_pass_the_contract(
    client: llmfiles.Client, tmp_path: Path, recorder: Recorder
) -> None:
    assert all(f.provider == "together" for f in client.list_files())
    assert client.retrieve("file-abc").id
    assert client.download("file-abc", tmp_path / "out.jsonl").exists()
    assert client.delete("file-abc") is True
    assert recorder.statuses == [("list", 200), ("retrieve", 200), ("download", 200), ("delete", 200)]


def test_multipart_requests_pass_the_multipart_contract(prism_together_multipart: str) -> None:
    """initiate, complete and abort as the protocol builds them, sent to Prism: 200 each; the answers read."""
    ep = wire.Endpoint(base=prism_together_multipart, headers={"Authorization": "Bearer tk"})
    facts = UploadFacts(purpose="fine-tune", filename="big.jsonl", size=12 * MiB)
    settings = Settings(provider="together", values={"api_base": prism_together_multipart, "part_size": 5 * MiB})
    creds = Credentials(kind="api_key", source="test", secret=Secret("tk"))
    protocol = TogetherProvider().exchange(UploadParts(file=facts), creds, settings)
    assert isinstance(protocol, wire.Multipart) and protocol.num_parts == 3
    transport, policy = Transport(), Policy(provider="together", max_retries=0)
    try:
        start = protocol.start()
        sent = transport.send(start.request, policy)
        assert sent.response is not None and sent.response.status == 200, sent.response
        assert json.loads(start.request.body)["num_parts"] == 3  # type: ignore[arg-type]
        receipts = [{"PartNumber": n, "ETag": '"0123"'} for n in (1, 2, 3)]
        state = {"upload_id": "upload-abc123", "file_id": "file-def456", "bytes": 12 * MiB, "filename": "big.jsonl"}
        for exchange in (protocol.complete(state, receipts, {}), protocol.abort(state)):
            sent = transport.send(exchange.request, policy)
            assert sent.response is not None and sent.response.status == 200
        broken = ep.json_request("/files/multipart/initiate", {**json.loads(start.request.body), "num_parts": 251})  # type: ignore[arg-type]
        sent = transport.send(broken, policy)
        assert sent.response is not None and sent.response.status == 400  # Prism does check the contract
    finally:
        transport.close()


def test_prism_refuses_an_upload_without_file_name(prism_together: str) -> None:
    """Without the contract's required file_name the upload is refused with 400; without a key with 401."""
    data = b'{"text": "x"}\n'
    facts = UploadFacts(purpose="fine-tune", filename="x.jsonl", size=len(data))
    ep = wire.Endpoint(base=prism_together, headers={"Authorization": "Bearer x"})
    good = wire.upload(ep, facts)
    assert FileRange(offset=0, length=len(data)) in good.request.body  # type: ignore[operator]
    body = b"".join(s for s in good.request.body if isinstance(s, bytes))  # type: ignore[union-attr]
    assert b'name="file_name"' in body
    transport, policy = Transport(), Policy(provider="together", max_retries=0)
    try:
        stripped = tuple(
            s.replace(b'name="file_name"', b'name="other"') if isinstance(s, bytes) else s
            for s in good.request.body  # type: ignore[union-attr]
        )
        bad = good.request.__class__(method="POST", url=good.request.url, headers=good.request.headers, body=stripped)
        sent = transport.send(bad, policy, body=Bytes(data))
        assert sent.response is not None and sent.response.status == 400
        no_auth = wire.exchange(wire.Endpoint(base=prism_together), ListFiles(), part_size=None)
        assert isinstance(no_auth, Exchange)
        sent = transport.send(no_auth.request, policy)
        assert sent.response is not None and sent.response.status == 401
    finally:
        transport.close()
