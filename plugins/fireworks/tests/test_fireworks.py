"""The fireworks provider against our Fireworks server (written from Fireworks' API reference) and Prism serving
Fireworks' published datasets contract."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import llmfiles
from llmfiles import Client
from llmfiles.models import Credentials, Secret, Settings, UploadFacts, UploadParts
from llmfiles.testing import ProviderConformance
from llmfiles.transport import Policy, Transport
from llmfiles_fireworks import plugin
from servers.fireworks_like import FireworksLikeServer

MiB = 1024 * 1024


class TestFireworksConformance(ProviderConformance):
    provider = "fireworks"
    purpose = "fine-tune"

    @pytest.fixture
    def provider_settings(self, fireworks_settings: dict[str, Any]) -> dict[str, Any]:
        return fireworks_settings

    def missing_file_id(self) -> str:
        return "accounts/acct-test/datasets/ft-missing-00000000"

    def test_round_trip(self, conformance_client: Any, make_jsonl: Callable[..., Path], tmp_path: Path) -> None:
        """The kit's round trip less what Fireworks' datasets API does not have: a download, and a size reported
        by the dataset (``bytes`` is the size sent at upload, 0 when fetched later)."""
        from llmfiles import FileNotFound

        src = make_jsonl("round-trip.jsonl", records=15)
        fo = conformance_client.upload(src, purpose=self.purpose)
        assert (fo.provider, fo.filename, fo.purpose) == ("fireworks", "round-trip.jsonl", "fine-tune")
        assert fo.bytes == src.stat().st_size and fo.status == "processed" and fo.created_at > 0
        got = conformance_client.retrieve(fo.id)
        assert (got.id, got.purpose, got.filename) == (fo.id, fo.purpose, fo.filename)
        assert fo.id in {f.id for f in conformance_client.list_files(purpose="fine-tune")}
        assert fo.id not in {f.id for f in conformance_client.list_files(purpose="batch")}
        with pytest.raises(llmfiles.InputError, match="getDownloadEndpoint"):
            conformance_client.download(fo.id, tmp_path / "back.jsonl")
        assert conformance_client.delete(fo.id) is True
        with pytest.raises(FileNotFound):
            conformance_client.retrieve(fo.id)

    def test_large_file_uses_parts(
        self, conformance_client: Any, provider_info: Any, make_jsonl: Callable[..., Path], tmp_path: Path
    ) -> None:
        """Every Fireworks upload is the dataset protocol with one part; what arrived is compared at the server
        (``test_a_large_file_goes_to_the_signed_url_and_is_validated``), as no download exists."""
        src = make_jsonl("large.jsonl", min_bytes=self.large_file_bytes)
        events: list[Any] = []
        fo = conformance_client.upload(src, purpose=self.purpose, progress=events.append)
        assert fo.bytes == src.stat().st_size
        assert events and events[-1].done == src.stat().st_size
        conformance_client.delete(fo.id)


def test_a_small_file_is_created_then_uploaded_directly(
    fireworks_server: FireworksLikeServer, fireworks_settings: dict[str, Any], make_jsonl: Callable[..., Path]
) -> None:
    src = make_jsonl("train.jsonl")
    with Client("fireworks", **fireworks_settings) as client:
        fo = client.upload(src, purpose="fine-tune")
    assert fo.id.startswith("accounts/acct-test/datasets/ft-train-")
    assert [m for m, _ in fireworks_server.requests] == ["POST", "POST", "GET"]
    assert fireworks_server.calls(":upload") and not fireworks_server.calls(":getUploadEndpoint")
    (ds,) = fireworks_server.datasets.values()
    assert ds.content == src.read_bytes() and ds.state == "READY" and ds.display_name == "train.jsonl"


def test_a_large_file_goes_to_the_signed_url_and_is_validated(
    fireworks_server: FireworksLikeServer,
    fireworks_settings: dict[str, Any],
    make_jsonl: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(plugin, "DIRECT_LIMIT", MiB)  # above it: the signed upload endpoint (150 MB at Fireworks)
    src = make_jsonl("big.jsonl", min_bytes=2 * MiB)
    with Client("fireworks", **fireworks_settings) as client:
        fo = client.upload(src, purpose="batch", validate=False)
    paths = [p.rsplit("/", 1)[-1] for _, p in fireworks_server.requests]
    assert paths[1].endswith(":getUploadEndpoint") and paths[3].endswith(":validateUpload")
    assert fireworks_server.calls(":upload") == []
    (ds,) = fireworks_server.datasets.values()
    assert ds.content == src.read_bytes() and ds.state == "READY"
    assert fo.purpose == "batch" and fo.status == "processed" and fo.id.split("/")[-1].startswith("batch-big-")


def test_a_file_that_fails_its_checks_leaves_no_dataset(
    fireworks_server: FireworksLikeServer, fireworks_settings: dict[str, Any], tmp_path: Path
) -> None:
    src = tmp_path / "broken.jsonl"
    src.write_text('{"messages": []}\n{"broken\n')
    with Client("fireworks", **fireworks_settings) as client, pytest.raises(llmfiles.ValidationError):
        client.upload(src, purpose="fine-tune")
    assert fireworks_server.datasets == {}


def test_account_id_is_required(fireworks_settings: dict[str, Any], make_jsonl: Callable[..., Path]) -> None:
    settings = {k: v for k, v in fireworks_settings.items() if k != "account_id"}
    with Client("fireworks", **settings) as client, pytest.raises(llmfiles.InvalidSetting, match="account_id"):
        client.upload(make_jsonl(), purpose="fine-tune")


def test_the_dry_run_aims_at_the_documented_endpoint(make_jsonl: Callable[..., Path]) -> None:
    environ = {"FIREWORKS_API_KEY": "fw-x" * 5, "FIREWORKS_ACCOUNT_ID": "my-account"}
    with Client("fireworks", environ=environ) as client:
        plan = client.describe_upload(make_jsonl("train.jsonl"), purpose="fine-tune")
    assert plan["ok"], plan["problems"]
    assert plan["destination"].startswith("https://api.fireworks.ai/v1/accounts/my-account/datasets/ft-train-")
    assert plan["parts"] == 1 and plan["credentials"] == "env FIREWORKS_API_KEY"


def test_every_dataset_request_passes_the_published_contract(prism_fireworks: str) -> None:
    """create, :upload, :getUploadEndpoint, :validateUpload, get, list and delete as the provider builds them, sent
    to Prism: each 200 (Prism answers 422/400 to a request that breaks the contract, as the last one shows)."""
    provider = plugin.FireworksProvider()
    settings = Settings(provider="fireworks", values={"api_base": prism_fireworks, "account_id": "acct"})
    creds = Credentials(kind="api_key", source="test", secret=Secret("fw-contract"))
    data = b'{"messages": [{"role": "user", "content": "hi"}]}\n'
    transport, policy = Transport(), Policy(provider="fireworks", max_retries=0)

    class Body:
        def stream(self, offset: int, length: int) -> Any:
            yield data[offset : offset + length]

    def status(request: Any, body: Any = None) -> int:
        sent = transport.send(request, policy, body=body)
        assert sent.response is not None
        return sent.response.status

    try:
        for size in (len(data), 200 * 1000 * 1000):  # direct, then the signed upload endpoint
            facts = UploadFacts(purpose="fine-tune", filename="train.jsonl", size=size)
            protocol = provider.exchange(UploadParts(file=facts), creds, settings)
            assert isinstance(protocol, plugin.DatasetUpload)
            create = protocol.start()
            assert status(create.request) == 200
            state = {"url": protocol.destination, "bytes": size, "filename": "train.jsonl", "direct": protocol.direct}
            if protocol.direct:
                part = protocol.part(state, llmfiles.models.Part(index=0, offset=0, length=size))
                assert status(part.request, Body()) == 200
            else:
                ask = create.read(llmfiles.models.HttpResponse(status=200, body=b"{}"))
                assert json.loads(ask.request.body) == {"filenameToSize": {"train.jsonl": str(size)}}
                assert status(ask.request) == 200
            done = protocol.complete(state, [{}], {})
            assert status(done.request) == 200
        for op in (llmfiles.models.ListFiles(), llmfiles.models.Retrieve(file_id="accounts/acct/datasets/x")):
            assert status(provider.exchange(op, creds, settings).request) == 200  # type: ignore[union-attr]
        broken = provider.exchange(llmfiles.models.UploadParts(file=facts), creds, settings)
        bad = broken.start().request  # type: ignore[union-attr]
        assert status(bad.__class__(method="POST", url=bad.url, headers=bad.headers, body=b'{"dataset": {}}')) == 422
    finally:
        transport.close()
