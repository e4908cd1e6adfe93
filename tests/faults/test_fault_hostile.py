"""Hostile input: names and ids from a provider never escape the download target, and a malicious answer (huge,
deeply nested, of the wrong types, with fields missing, not JSON or XML at all) is a clear ``ProviderError`` for
every provider and every operation — never a crash, another exception type, or an unbounded read.

(The ``local`` store's own defences — ids that try to leave the store, symlinks planted in it — are tested in
``core/tests/test_local.py``.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from faultlib import Harness, chat_file

import llmfiles
import llmfiles.transport
from llmfiles.errors import InputError, MaybeUploaded, ProviderError
from servers.fault_proxy import Flood, Respond
from servers.openai_like import OpenAILikeServer

# --- names from the provider, and the download target ---------------------------------------------------------

HOSTILE_NAMES = [
    "../../escaped.txt",
    "/etc/passwd",
    "..",
    ".",
    "",
    "a/../../b.txt",
    "..\\..\\windows.txt",
    "C:\\evil.txt",
    "dir/",
    "x\x00y.txt",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_file_name_from_the_provider_stays_inside_the_download_folder(name: str, tmp_path: Path) -> None:
    server = OpenAILikeServer(api_key="sk-hostile-0123456789")
    with server, llmfiles.Client("openai", api_base=server.url, api_key=server.api_key) as client:
        fo = client.upload(chat_file(tmp_path / "f.jsonl", min_bytes=1000), purpose="fine-tune")
        server.files[fo.id].filename = name  # the provider now calls it something hostile
        folder = tmp_path / "downloads"
        folder.mkdir()
        try:
            out = client.download(fo.id, folder)
        except InputError:
            out = None  # refusing is fine too; escaping is not
    home = Path(os.environ["LLMFILES_HOME"])
    landed = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "f.jsonl" and home not in p.parents]
    assert all(p.parent == folder for p in landed), landed
    if out is not None:
        assert out.parent == folder and out.read_bytes() == (tmp_path / "f.jsonl").read_bytes()
    assert not (tmp_path.parent / "escaped.txt").exists()


def test_a_symlink_at_the_download_target_is_replaced_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_bytes(b"keep me")
    folder = tmp_path / "downloads"
    folder.mkdir()
    with llmfiles.Client("local") as client:
        src = tmp_path / "notes.txt"
        src.write_bytes(b"new content")
        fo = client.upload(src, purpose="assistants")
        (folder / "notes.txt").symlink_to(elsewhere)
        with pytest.raises(InputError):
            client.download(fo.id, folder)  # exists: not replaced without overwrite
        out = client.download(fo.id, folder, overwrite=True)
    assert out == folder / "notes.txt" and not out.is_symlink() and out.read_bytes() == b"new content"
    assert elsewhere.read_bytes() == b"keep me"


def test_a_hostile_file_id_from_the_user_stays_one_path_segment(tmp_path: Path) -> None:
    server = OpenAILikeServer(api_key="sk-hostile-0123456789")
    with server, llmfiles.Client("openai", api_base=server.url, api_key=server.api_key, max_retries=0) as client:
        for bad in ("../uploads", "file-1/../../uploads", "file-1?purpose=x", "file-1#x", "%2e%2e%2f"):
            with pytest.raises(llmfiles.FileNotFound):
                client.retrieve(bad)
    assert {r.route for r in server.requests} == {"files.retrieve"}


# --- malicious answers, for every provider and operation --------------------------------------------------------

MiB = 1024 * 1024
WRONG_TYPES = json.dumps(
    {"id": 5, "bytes": "many", "created_at": "now", "filename": None, "purpose": [], "data": "x", "items": {"a": 1}}
).encode()


def hostile_answers(h: Harness) -> list[tuple[str, Respond]]:
    json_type = {"Content-Type": "application/json"}
    xml_type = {"Content-Type": "application/xml"}
    answers = [
        ("huge", Respond(200, json_type, b'{"id": "' + b"x" * (2 * MiB) + b'"}')),
        ("deeply nested", Respond(200, json_type, b"[" * 200_000 + b"]" * 200_000)),
        ("wrong types", Respond(200, json_type, WRONG_TYPES)),
        ("missing fields", Respond(200, json_type, b"{}")),
        ("a list", Respond(200, json_type, b"[1, 2, 3]")),
        ("not JSON", Respond(200, {"Content-Type": "text/html"}, b"<html>\xff\xfe not json</html>")),
        ("error, not JSON", Respond(500, {"Content-Type": "text/html"}, b"\xff" * 5000)),
    ]
    if h.name == "bedrock":
        answers += [
            ("billion laughs", Respond(200, xml_type, b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa">'
                                       b'<!ENTITY b "&a;&a;&a;&a;">]><ListBucketResult>&b;</ListBucketResult>')),
            ("deep XML", Respond(200, xml_type, b"<a>" * 50_000 + b"</a>" * 50_000)),
            ("wrong XML", Respond(200, xml_type, b"<ListBucketResult><Contents><Size>-1</Size><Key></Key>"
                                  b"</Contents><IsTruncated>true</IsTruncated></ListBucketResult>")),
            ("bad headers", Respond(200, {"Content-Length": "0", "Last-Modified": "yesterday", "ETag": "\x00"}, b"")),
        ]  # fmt: skip
    if h.name == "vertex_ai":
        answers.append(("session elsewhere", Respond(200, {"Location": "file:///etc/passwd"}, b"")))
    return answers


def check(outcome: Callable[[], Any], expected: tuple[type, ...], maybe: tuple[str, ...] = ()) -> None:
    """The call returns one of ``expected``, or raises a short ProviderError (never anything else); an upload whose
    answer cannot be read may stop with :class:`MaybeUploaded` naming one of ``maybe`` (v2: a 2xx answer to a create
    that cannot be read is a lost answer, looked for before anything is sent again; OpenAI and Azure cannot tell a
    file of the same name and size made a moment earlier from the one this upload may have made)."""
    try:
        result = outcome()
    except MaybeUploaded as exc:
        assert maybe and set(exc.candidates) <= set(maybe), (exc.candidates, maybe)
        assert len(str(exc)) < 2000, f"an unbounded message: {str(exc)[:200]}..."
        return
    except ProviderError as exc:
        assert len(str(exc)) < 2000, f"an unbounded message: {str(exc)[:200]}..."
        return
    assert isinstance(result, expected), result


@pytest.mark.parametrize("operation", ["upload", "large upload", "retrieve", "list"])
def test_a_malicious_answer_is_a_clear_provider_error(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    monkeypatch.setattr(llmfiles.transport, "MAX_RESPONSE_BYTES", MiB)  # "huge" is twice that
    small = chat_file(tmp_path / "small.jsonl", min_bytes=10_000)
    large = chat_file(tmp_path / "large.jsonl", min_bytes=harness.large_bytes) if operation == "large upload" else None
    with harness.client(max_retries=0) as client:
        fo = client.upload(small, purpose="fine-tune")
        for label, answer in hostile_answers(harness):
            harness.proxy.rules.clear()
            if operation == "upload":
                harness.proxy.add_rule(harness.is_upload, answer)
                call: Callable[[], Any] = lambda: client.upload(small, purpose="fine-tune")  # noqa: E731
                expected: tuple[type, ...] = (llmfiles.FileObject,)
            elif operation == "large upload":
                harness.proxy.add_rule(harness.is_start, answer)
                call = lambda: client.upload(large, purpose="fine-tune", **harness.large)  # noqa: E731
                expected = ()
            elif operation == "retrieve":
                harness.proxy.add_rule(lambda r: r.method in ("GET", "HEAD"), answer)
                call = lambda: client.retrieve(fo.id)  # noqa: E731
                expected = (llmfiles.FileObject,)
            else:
                harness.proxy.add_rule(lambda r: r.method == "GET", answer)
                call = lambda: list(client.list_files())  # noqa: E731
                expected = (list,)
            maybe = (fo.id,) if operation == "upload" and not harness.tells_lost_answers else ()
            try:
                check(call, expected, maybe)
            except AssertionError as exc:
                raise AssertionError(f"{harness.name} {operation}, answer {label!r}: {exc}") from exc
    assert os.path.exists(small)


# --- answers too large to hold: refused at 64 MiB, whatever they claim to be ---------------------------------------


@pytest.mark.parametrize("answer", ["1 GiB", "gzip bomb"])
def test_an_answer_of_a_gigabyte_or_a_gzip_bomb_is_refused_at_64_mib(harness: Harness, answer: str) -> None:
    """(What held in round 2, kept: the real limit, not a patched one.)  A metadata answer of 1 GiB, or 200 MiB of
    JSON compressed to a few hundred KiB, is refused once 64 MiB were read, with a short ProviderError."""
    import gzip

    if answer == "1 GiB":
        action: Any = Flood(1024**3, {"Content-Type": "application/json"})
    else:
        bomb = gzip.compress(b"[" + b" " * (200 * MiB) + b"]", compresslevel=9)
        action = Respond(200, {"Content-Type": "application/json", "Content-Encoding": "gzip"}, bomb)
    harness.proxy.add_rule(lambda r: r.method == "GET", action, times=10)
    file_id = {"vertex_ai": "gs://llmfiles-faults/x", "bedrock": "s3://llmfiles-faults/x"}.get(harness.name, "file-x")
    with harness.client(max_retries=0) as client, pytest.raises(ProviderError) as info:
        (client.retrieve(file_id) if harness.name != "bedrock" else next(iter(client.list_files())))
    assert "larger than 67,108,864 bytes" in str(info.value), str(info.value)[:300]
