"""The real plugin driven through Stoplight Prism serving Mistral's published OpenAPI contract (``contract/``, a
trimmed copy of ``openapi-public-doc.yaml`` from mistralai/platform-docs-public; its source is in ``info``).

Prism rejects every request that breaks the contract (422 for a missing or invalid field, a purpose outside the enum
or an id that is not a UUID; 415 for a body that is not multipart), so each call that comes back 200 proves the
request's wire format; the answers are the contract's own examples, so reading them proves the reader takes what the
contract says Mistral sends (``bytes: null`` included)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mistral_testlib import batch_file, chat_file

import llmfiles
from llmfiles.errors import ProviderError
from llmfiles.models import ListFiles, Upload, UploadFacts
from llmfiles.plugins import PluginManager
from llmfiles.provider import Exchange
from llmfiles.transport import Policy, Transport
from llmfiles_mistral import files
from llmfiles_mistral.plugin import MistralProvider
from servers.recording import Recorder

CONTRACT = Path(__file__).parent / "contract" / "mistral-files.json"
FILE_ID = "e85980c9-409e-4a46-9304-36588f6292b0"


@pytest.fixture
def recorder() -> Recorder:
    return Recorder(MistralProvider())


@pytest.fixture
def client(prism_mistral: str, recorder: Recorder) -> Iterator[llmfiles.Client]:
    pm = PluginManager(load_entry_points=False)
    pm.register(recorder, "recorder")
    c = llmfiles.Client("mistral", plugin_manager=pm, environ={}, api_key="contract-test-key", api_base=prism_mistral)
    yield c
    c.close()


def test_the_copy_names_its_source() -> None:
    info = json.loads(CONTRACT.read_text())["info"]
    assert "mistralai/platform-docs-public" in info["x-source"] and "222f4ba9" in info["x-source"]


@pytest.mark.parametrize("purpose", ["fine-tune", "batch", "ocr"])
def test_an_upload_of_each_purpose_passes_the_contract(
    client: llmfiles.Client, recorder: Recorder, prism_mistral: str, tmp_path: Path, purpose: str
) -> None:
    if purpose == "fine-tune":
        src = chat_file(tmp_path / "train.jsonl")
    elif purpose == "batch":
        src = batch_file(tmp_path / "batch.jsonl")
    else:
        src = tmp_path / "scan.pdf"
        src.write_bytes(b"%PDF-1.7\n% a scanned invoice\n")
    fo = client.upload(src, purpose=purpose)
    assert recorder.statuses == [("upload", 200)]
    req = recorder.requests[-1]
    assert (req.method, req.url) == ("POST", prism_mistral + "/v1/files")
    assert req.headers["Authorization"] == "Bearer contract-test-key"
    assert req.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    # the contract's example answer: its id, and bytes null -> the size that was sent
    assert fo.id == FILE_ID and fo.provider == "mistral" and fo.bytes == src.stat().st_size
    assert fo.raw["bytes"] is None and fo.status == "processed"


def test_list_retrieve_download_delete_pass_the_contract(
    client: llmfiles.Client, recorder: Recorder, tmp_path: Path
) -> None:
    listed = list(client.list_files(purpose="batch", page_size=10))
    assert listed and all(f.provider == "mistral" for f in listed)
    url = recorder.requests[-1].url
    for param in ("page=0", "page_size=10", "include_total=true", "purpose=batch"):
        assert param in url
    assert client.retrieve(FILE_ID).id == FILE_ID
    assert client.download(FILE_ID, tmp_path / "content.bin").exists()
    assert client.delete(FILE_ID) is True
    assert recorder.statuses == [("list", 200), ("retrieve", 200), ("download", 200), ("delete", 200)]


def test_prism_really_rejects_a_broken_request(prism_mistral: str) -> None:
    """The contract tests can fail: a purpose outside the contract's enum and an id that is not a UUID get 422 from
    Prism, a request without the key 401 - and the plugin reads those answers as errors."""
    data = b'{"messages": []}\n'
    transport = Transport()
    policy = Policy(provider="mistral", max_retries=0)
    ep = files.Endpoint(provider="mistral", base=prism_mistral, headers={"Authorization": "Bearer x"})
    bad = files.upload(ep, UploadFacts(purpose="fine_tune", filename="t.jsonl", size=len(data)))
    sent = transport.send(bad.request, policy, body=Bytes(data))
    assert sent.response is not None and sent.response.status == 422
    err = bad.error(sent.response)
    assert isinstance(err, ProviderError) and err.status == 422 and err.message
    not_uuid = ep.request("GET", ep.url("/v1/files/not-a-uuid"))
    sent = transport.send(not_uuid, policy)
    assert sent.response is not None and sent.response.status == 422
    no_key = files.list_page(
        files.Endpoint(provider="mistral", base=prism_mistral), purpose=None, cursor=None, limit=None
    )
    assert isinstance(no_key, Exchange)
    sent = transport.send(no_key.request, policy)
    assert sent.response is not None and sent.response.status == 401
    transport.close()


def test_the_plugin_sends_what_prism_accepts_for_every_purpose_and_nothing_else(prism_mistral: str) -> None:
    """Each purpose the plugin declares is one the contract's enum takes (and the other way round)."""
    enum = json.loads(CONTRACT.read_text())["components"]["schemas"]["FilePurpose"]["enum"]
    assert tuple(enum) == MistralProvider.info.purposes
    op = Upload(file=UploadFacts(purpose="ocr", filename="a.pdf", size=1))
    assert isinstance(MistralProvider().exchange(op, _creds(), _settings(prism_mistral)), Exchange)
    assert isinstance(MistralProvider().exchange(ListFiles(), _creds(), _settings(prism_mistral)), Exchange)


class Bytes:
    """The body source of a request sent by hand: the file's bytes from memory."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, offset: int, length: int) -> Iterator[bytes]:
        yield self.data[offset : offset + length]


def _creds() -> Any:
    from llmfiles.models import Credentials, Secret

    return Credentials(kind="api_key", source="argument api_key", secret=Secret("k"))


def _settings(base: str) -> Any:
    from llmfiles.models import Settings

    return Settings(provider="mistral", values={"api_base": base})
