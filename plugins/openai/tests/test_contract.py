"""The real plugin driven through Stoplight Prism serving OpenAI's published OpenAPI contract.

Prism rejects every request that breaks the contract (422/415), so each call that comes back 200 proves the
request's wire format: paths, methods, query parameters, multipart fields, JSON bodies and auth header.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import llmfiles
from llmfiles import hookimpl
from llmfiles.models import HttpRequest, UploadPlan
from llmfiles.plugins import PluginManager
from llmfiles.transport import Transport
from llmfiles_openai import plugin as openai_plugin
from llmfiles_openai import wire

MiB = 1024 * 1024


class Recorder:
    """An in-house wrapper plugin: records every request the openai plugin builds and every answer to the
    Uploads plan — the way a company adds a proxy header without forking anything."""

    def __init__(self) -> None:
        self.requests: list[HttpRequest] = []
        self.statuses: list[tuple[str, int]] = []

    @hookimpl(wrapper=True)
    def llmfiles_build_request(self, provider: str, operation: Any, credentials: Any, settings: Any) -> Any:
        built = yield
        if isinstance(built, HttpRequest):
            self.requests.append(built)
            return built
        if isinstance(built, UploadPlan):
            assert built.start is not None
            self.requests.append(built.start)
            rec = self

            def part(state: Any, p: Any) -> HttpRequest:
                req = built.part(state, p)
                rec.requests.append(req)
                return req

            def read_part(state: Any, p: Any, resp: Any, digests: Any) -> Any:
                rec.statuses.append(("part", resp.status))
                return built.read_part(state, p, resp, digests)

            def complete(state: Any, receipts: Any, digests: Any) -> HttpRequest:
                assert built.complete is not None
                req = built.complete(state, receipts, digests)
                rec.requests.append(req)
                return req

            def read_complete(state: Any, resp: Any) -> Any:
                rec.statuses.append(("complete", resp.status))
                return built.read_complete(state, resp)

            return attrs.evolve(built, part=part, read_part=read_part, complete=complete, read_complete=read_complete)
        return built


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def client(prism_openai: str, recorder: Recorder) -> Iterator[llmfiles.Client]:
    pm = PluginManager(load_entry_points=False)
    pm.register(openai_plugin, "openai")
    pm.register(recorder, "recorder")
    c = llmfiles.Client("openai", plugin_manager=pm, environ={}, api_key="sk-contract-test", api_base=prism_openai)
    yield c
    c.close()


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
    # Prism's fixed example for /complete is an upload still "pending" with no file, so the plan refuses it — after
    # every request (create, each part, complete) was accepted by the contract with a 200.
    with pytest.raises(llmfiles.ProviderError) as info:
        client.upload(src, purpose="fine-tune", multipart_threshold=MiB, part_size=MiB)
    assert "ended with status 'pending' and no file object" in str(info.value)
    assert info.value.status == 200
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
    complete = json.loads(recorder.requests[-1].body)  # type: ignore[arg-type]
    assert len(complete["part_ids"]) == 4 and len(complete["md5"]) == 32
    assert any("the unfinished upload session was aborted" in n for n in getattr(info.value, "__notes__", []))


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


def test_prism_really_rejects_a_broken_request(prism_openai: str, tmp_path: Path) -> None:
    """The contract tests can fail: a request with a purpose outside the contract gets 422 from Prism."""
    src = tmp_path / "x.jsonl"
    src.write_text('{"a": 1}\n')
    from llmfiles.models import Operation, PathSource

    ep = wire.Endpoint(provider="openai", base=prism_openai, headers={"Authorization": "Bearer x"})
    op = Operation(
        name="upload", purpose="not-a-purpose", source=PathSource(str(src), "x.jsonl", 9), filename="x.jsonl"
    )
    resp = Transport().send(wire.upload_request(ep, op), provider="openai", max_retries=0)
    assert resp.status == 422
    no_auth = wire.Endpoint(provider="openai", base=prism_openai)
    resp = Transport().send(wire.one_shot_request(no_auth, Operation(name="list")), provider="openai", max_retries=0)
    assert resp.status == 401
