"""The UTF-8 BOM on fine-tuning files: added on the fly, never written to disk, counted in every declared size.

The stateful server keeps the bytes it received and refuses ``fine-tune`` files that do not start with a BOM.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import llmfiles
from llmfiles.models import PathSource
from llmfiles_azure import bom
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


@pytest.mark.parametrize("validate", [True, False])
def test_a_fine_tune_file_that_is_not_utf8_is_refused_before_any_request(
    client: llmfiles.Client, azure_server: OpenAILikeServer, tmp_path: Path, validate: bool
) -> None:
    src = tmp_path / "latin1.jsonl"
    src.write_bytes('{"messages": [{"role": "user", "content": "ok"}]}\n{"note": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(llmfiles.ValidationError) as info:
        client.upload(src, purpose="fine-tune", validate=validate)
    assert "line 2" in str(info.value) and "not_utf8" in str(info.value)
    assert azure_server.requests == []


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
    from llmfiles_azure import plugin as azure_plugin

    class StripBom:
        @hookimpl(wrapper=True)
        def llmfiles_build_request(self, provider: str, operation: Any, credentials: Any, settings: Any) -> Any:
            built = yield
            assert isinstance(built, HttpRequest) and isinstance(built.body, tuple)
            body = tuple(s[: -len(BOM)] if isinstance(s, bytes) and s.endswith(BOM) else s for s in built.body)
            return attrs.evolve(built, body=body)

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


# --- the encoding check itself -------------------------------------------------------------------------------


def _source(path: Path) -> PathSource:
    return PathSource(str(path), path.name, path.stat().st_size)


@pytest.mark.parametrize("block", [1, 2, 3, 5, 64, MiB])
def test_first_utf8_problem_finds_line_and_column_across_block_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    monkeypatch.setattr(bom, "_BLOCK", block)
    path = tmp_path / "x.jsonl"
    path.write_bytes('{"a": "é"}\n{"b": "ü"}\n'.encode() + b'{"c": "\xc3\x28"}\n{"d": 1}\n')
    problem = bom.first_utf8_problem(_source(path))
    assert problem is not None and (problem.line, problem.code) == (3, "not_utf8")
    assert "byte 8 of the line" in problem.message
    good = tmp_path / "good.jsonl"
    good.write_bytes('{"a": "é"}\n'.encode() * 7)
    assert bom.first_utf8_problem(_source(good)) is None


@pytest.mark.parametrize("block", [1, 2, MiB])
def test_a_sequence_cut_short_at_the_end_of_the_file_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    monkeypatch.setattr(bom, "_BLOCK", block)
    path = tmp_path / "cut.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": "' + "€".encode()[:2])
    problem = bom.first_utf8_problem(_source(path))
    assert problem is not None and problem.line == 2 and "byte 8 of the line" in problem.message


def test_starts_with_bom(tmp_path: Path) -> None:
    for content, expected in [(BOM + b"{}", True), (b"{}\n", False), (b"\xef\xbb", False), (BOM, True)]:
        path = tmp_path / "f"
        path.write_bytes(content)
        assert bom.starts_with_bom(_source(path)) is expected
