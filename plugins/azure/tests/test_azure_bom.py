"""The UTF-8 BOM on fine-tuning files: decided from the first bytes the core hands over, added on the fly, never
written to disk, counted in every declared size; a file that is not UTF-8 never gets one (the core checks the
encoding as the file streams, even with validate=False) and nothing of it is committed.

The stateful server keeps the bytes it received and refuses ``fine-tune`` files that do not start with a BOM.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import llmfiles
from llmfiles.models import Credentials, FileRange, Secret, Settings, Upload, UploadFacts, UploadParts
from llmfiles.provider import Exchange
from llmfiles_azure import bom
from llmfiles_azure import plugin as azure_plugin
from llmfiles_openai import wire
from servers.openai_like import OpenAILikeServer

BOM = b"\xef\xbb\xbf"
MiB = 1024 * 1024


@pytest.fixture
def client(azure_server: OpenAILikeServer) -> Iterator[llmfiles.Client]:
    c = llmfiles.Client(
        "azure", environ={}, api_base=azure_server.origin, api_key=azure_server.api_key, max_retry_wait=0.01
    )
    yield c
    c.close()


def _unchanged(path: Path, before: tuple[bytes, int]) -> bool:
    return (path.read_bytes(), os.stat(path).st_mtime_ns) == before


def _snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), os.stat(path).st_mtime_ns


def test_a_fine_tune_file_without_a_bom_gets_one_on_the_fly(
    client: llmfiles.Client, azure_server: OpenAILikeServer, make_jsonl: Any
) -> None:
    src = make_jsonl("train.jsonl")
    before = _snapshot(src)
    events: list[Any] = []
    fo = client.upload(src, purpose="fine-tune", progress=events.append)
    stored = azure_server.files[fo.id].content
    assert stored.startswith(BOM) and stored == BOM + src.read_bytes()
    assert fo.bytes == src.stat().st_size + 3
    (create,) = azure_server.requests_to("files.create")
    assert create.status == 201 and create.files["file"][1] == src.stat().st_size + 3
    assert _unchanged(src, before)  # the file on disk was not rewritten
    assert events[-1].done == src.stat().st_size  # progress counts the file's bytes


def test_a_file_that_has_a_bom_is_sent_as_it_is(
    client: llmfiles.Client, azure_server: OpenAILikeServer, make_jsonl: Any, tmp_path: Path
) -> None:
    src = tmp_path / "with-bom.jsonl"
    src.write_bytes(BOM + make_jsonl().read_bytes())
    fo = client.upload(src, purpose="fine-tune")
    assert azure_server.files[fo.id].content == src.read_bytes()  # one BOM, not two
    assert fo.bytes == src.stat().st_size


def test_other_purposes_are_sent_as_they_are(
    client: llmfiles.Client, azure_server: OpenAILikeServer, make_batch_jsonl: Any
) -> None:
    src = make_batch_jsonl()
    fo = client.upload(src, purpose="batch")
    assert azure_server.files[fo.id].content == src.read_bytes()


def test_the_uploads_flow_adds_the_bom_to_the_first_part_only(
    client: llmfiles.Client, azure_server: OpenAILikeServer, make_jsonl: Any
) -> None:
    src = make_jsonl("big.jsonl", min_bytes=3 * MiB + 5)
    size = src.stat().st_size
    before = _snapshot(src)
    events: list[Any] = []
    fo = client.upload(src, purpose="fine-tune", multipart_threshold=MiB, part_size=MiB, progress=events.append)
    stored = azure_server.files[fo.id]
    assert stored.via == "uploads" and stored.content == BOM + src.read_bytes()
    assert fo.bytes == size + 3
    (start,) = azure_server.requests_to("uploads.create")
    assert start.json["bytes"] == size + 3
    parts = sorted(r.files["data"][1] for r in azure_server.requests_to("uploads.parts"))
    assert parts == sorted([MiB + 3, MiB, MiB, size - 3 * MiB])  # the BOM rides in the first part
    (complete,) = azure_server.requests_to("uploads.complete")
    assert "md5" not in complete.json  # the known MD5 is the file's, not the bytes sent: none is sent
    assert _unchanged(src, before)
    assert events[-1].done == size


def test_the_uploads_flow_of_a_file_with_a_bom_sends_a_matching_md5(
    client: llmfiles.Client, azure_server: OpenAILikeServer, make_jsonl: Any, tmp_path: Path
) -> None:
    src = tmp_path / "big-bom.jsonl"
    src.write_bytes(BOM + make_jsonl("big.jsonl", min_bytes=2 * MiB + 9).read_bytes())
    fo = client.upload(src, purpose="fine-tune", multipart_threshold=MiB, part_size=MiB)
    assert azure_server.files[fo.id].content == src.read_bytes()
    (complete,) = azure_server.requests_to("uploads.complete")
    assert complete.json["md5"] == hashlib.md5(src.read_bytes()).hexdigest()  # and the server checked it


LATIN1 = '{"messages": [{"role": "user", "content": "ok"}]}\n{"note": "caf\xe9"}\n'.encode("latin-1")


@pytest.mark.parametrize("check_first", [False, True])
@pytest.mark.parametrize("validate", [True, False])
def test_a_fine_tune_file_that_is_not_utf8_creates_nothing(
    client: llmfiles.Client, azure_server: OpenAILikeServer, tmp_path: Path, validate: bool, check_first: bool
) -> None:
    """Changed on purpose in v2: the file is checked as it streams (the commit, the body's last bytes, waits for
    the checks), so a request may start, but it is cut short and nothing exists at Azure.  With validate=False the
    core checks the encoding (fine-tune is one of Azure's utf8_purposes) and says at which byte it breaks, no longer
    on which line.  check_first=True checks before anything is sent, as before v2."""
    src = tmp_path / "latin1.jsonl"
    src.write_bytes(LATIN1)
    with pytest.raises(llmfiles.ValidationError) as info:
        client.upload(src, purpose="fine-tune", validate=validate, check_first=check_first)
    assert "not_utf8" in str(info.value)
    bad_byte = LATIN1.index(b"\xe9") + 1
    where = "line 2" if validate else f"byte {bad_byte} of the file"
    assert where in str(info.value)
    assert azure_server.files == {}
    assert all(r.status is None for r in azure_server.requests)  # cut short: never answered
    if check_first:
        assert azure_server.requests == []


@pytest.mark.parametrize("validate", [True, False])
def test_a_large_fine_tune_file_that_is_not_utf8_creates_nothing(
    client: llmfiles.Client, azure_server: OpenAILikeServer, make_jsonl: Any, tmp_path: Path, validate: bool
) -> None:
    """The same through the Uploads API: the parts stop, complete is never sent, the session is cancelled."""
    src = tmp_path / "large-latin1.jsonl"
    src.write_bytes(make_jsonl("good.jsonl", min_bytes=3 * MiB).read_bytes() + LATIN1)
    with pytest.raises(llmfiles.ValidationError) as info:
        client.upload(src, purpose="fine-tune", validate=validate, multipart_threshold=MiB, part_size=MiB)
    assert "not_utf8" in str(info.value)
    assert azure_server.files == {}
    assert azure_server.requests_to("uploads.complete") == []
    assert [u.status for u in azure_server.uploads.values()] == ["cancelled"]
    assert client.unfinished_uploads() == []


@pytest.mark.parametrize("block", [1, 2, 3, 5, 64])
def test_the_streaming_utf8_check_reads_across_block_boundaries(
    client: llmfiles.Client, azure_server: OpenAILikeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    """Multi-byte characters cut by the read blocks are fine; a bad byte after them, or a sequence cut short at
    the end of the file, is found (the core's check with validate=False, blocks of ``block`` bytes)."""
    monkeypatch.setattr("llmfiles.pipeline.BLOCK", block)
    good = tmp_path / "good.jsonl"
    good.write_bytes('{"a": "é"}\n{"b": "ü€"}\n'.encode())
    fo = client.upload(good, purpose="fine-tune", validate=False)
    assert azure_server.files[fo.id].content == BOM + good.read_bytes()
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes('{"a": "é"}\n{"b": "ü"}\n'.encode() + b'{"c": "\xc3\x28"}\n{"d": 1}\n')
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b'{"a": 1}\n{"b": "' + "€".encode()[:2])
    for path, byte in ((bad, 32), (cut, 17)):
        with pytest.raises(llmfiles.ValidationError) as info:
            client.upload(path, purpose="fine-tune", validate=False)
        assert "not_utf8" in str(info.value) and f"byte {byte} of the file" in str(info.value)
    assert list(azure_server.files) == [fo.id]


def test_without_validation_a_utf8_file_still_gets_its_bom(
    client: llmfiles.Client, azure_server: OpenAILikeServer, tmp_path: Path
) -> None:
    src = tmp_path / "not-checked.jsonl"
    src.write_bytes('{"text": "naïve café"}\n'.encode())
    fo = client.upload(src, purpose="fine-tune", validate=False)
    assert azure_server.files[fo.id].content == BOM + src.read_bytes()


def test_the_server_really_refuses_a_fine_tune_file_without_a_bom(
    azure_server: OpenAILikeServer, make_jsonl: Any
) -> None:
    """The BOM tests can fail: a wrapper plugin that strips the BOM gets the server's refusal."""
    import attrs

    from llmfiles import hookimpl
    from llmfiles.models import HttpRequest
    from llmfiles.plugins import PluginManager

    class StripBom:
        @hookimpl(wrapper=True)
        def llmfiles_request(self, provider: str, request: HttpRequest) -> Any:
            request = yield
            if not isinstance(request.body, tuple):
                return request
            body = tuple(s[: -len(BOM)] if isinstance(s, bytes) and s.endswith(BOM) else s for s in request.body)
            return attrs.evolve(request, body=body)

    pm = PluginManager(load_entry_points=False)
    pm.register(azure_plugin, "azure")
    pm.register(StripBom(), "strip-bom")
    c = llmfiles.Client(
        "azure", plugin_manager=pm, environ={}, api_base=azure_server.origin, api_key=azure_server.api_key
    )
    with pytest.raises(llmfiles.ProviderError) as info:
        c.upload(make_jsonl(), purpose="fine-tune", max_retries=0)
    assert info.value.status == 400 and "byte-order mark" in str(info.value)
    assert isinstance(info.value.details, dict) and info.value.details["code"] == "invalidFileEncoding"
    c.close()


# --- the BOM is decided from the facts' head ------------------------------------------------------------------


def _exchange(facts: UploadFacts, op: type = Upload) -> Any:
    credentials = Credentials(kind="api_key", source="test", secret=Secret("k" * 10))
    settings = Settings(
        provider="azure", values={"api_base": "https://example.openai.azure.com", "api_version": "2024-10-21"}
    )
    return azure_plugin.AzureProvider().exchange(op(file=facts), credentials, settings)


def _before_file(ex: Exchange[Any]) -> bytes:
    body = ex.request.body
    assert isinstance(body, tuple)
    index = next(i for i, seg in enumerate(body) if isinstance(seg, FileRange))
    before = body[index - 1]
    assert isinstance(before, bytes)
    return before


@pytest.mark.parametrize(
    ("purpose", "head", "prefix"),
    [
        ("fine-tune", b'{"messages": []}\n', BOM),
        ("fine-tune", BOM + b'{"messages": []}\n', b""),
        ("fine-tune", BOM, b""),  # a file that is only a BOM
        ("fine-tune", b"\xef\xbb", BOM),  # a file of two bytes cannot start with the three of a BOM
        ("batch", b'{"custom_id": "1"}\n', b""),
        ("assistants", b"anything", b""),
    ],
)
def test_the_bom_is_decided_from_the_facts_head(purpose: str, head: bytes, prefix: bytes) -> None:
    facts = UploadFacts(purpose=purpose, filename="f.jsonl", size=10_000, head=head)
    assert bom.prefix_for(facts) == prefix
    ex = _exchange(facts)
    assert _before_file(ex).endswith(b"Content-Type: application/octet-stream\r\n\r\n" + prefix)
    (seg,) = [s for s in ex.request.body if isinstance(s, FileRange)]
    assert seg == FileRange(offset=0, length=10_000)  # the file itself, streamed by the core from byte 0
    protocol = _exchange(facts, UploadParts)
    assert isinstance(protocol, wire.Uploads) and protocol.prefix == prefix
    assert json.loads(protocol.start().request.body)["bytes"] == 10_000 + len(prefix)
    assert protocol.digests == (() if prefix else ("md5",))  # no MD5 when the bytes sent are not the file's
