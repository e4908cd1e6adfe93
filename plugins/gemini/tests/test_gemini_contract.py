"""The published contract of the Gemini Files API - ``file_service.proto`` and ``file.proto`` of googleapis/googleapis
(copied into ``contract/`` with their source on their first line) - against the plugin and against our fake.

Prism cannot serve protos, so the contract is read here: the HTTP bindings of the service's methods, the fields of
its messages (as protobuf JSON names them, lowerCamelCase) and the File's states.  The plugin's requests must hit the
bound paths with the request messages' fields, its reader may read only the File's fields and must map every state,
and the fake's answers may hold only what the messages declare - so the fake the other tests run against speaks the
published contract too.  (The upload endpoint, ``/upload/v1beta/files``, is in no contract: see the fake's
documentation for where its behaviour comes from.)"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from gemini_testlib import API_KEY, batch_file

import llmfiles
from llmfiles.models import Credentials, Delete, Download, ListFiles, Retrieve, Secret, Settings, Upload, UploadFacts
from llmfiles_gemini import files
from llmfiles_gemini.plugin import GeminiProvider
from servers.gemini_like import GeminiLikeServer

CONTRACT = Path(__file__).parent / "contract"
SERVICE = (CONTRACT / "gemini-files.file_service.proto").read_text()
FILE = (CONTRACT / "gemini-files.file.proto").read_text()
BASE = "https://generativelanguage.googleapis.com"


def camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(p.title() for p in rest)


def message_fields(proto: str, message: str) -> set[str]:
    """The protobuf JSON names of ``message``'s fields (one level: nested messages and enums are skipped)."""
    body = _block(proto, f"message {message}")
    body = re.sub(r"\b(enum|message)\s+\w+\s*\{[^{}]*\}", "", body)  # nested declarations
    return {camel(m.group(1)) for m in re.finditer(r"^\s*(?:repeated\s+)?[\w.]+\s+(\w+)\s*=\s*\d+", body, re.M)}


def enum_values(proto: str, enum: str) -> set[str]:
    return set(re.findall(r"^\s*([A-Z_]+)\s*=\s*\d+;", _block(proto, f"enum {enum}"), re.M))


def http_bindings(proto: str) -> dict[str, tuple[str, str]]:
    """``{rpc name: (method, path template)}`` from the ``google.api.http`` options."""
    out = {}
    for m in re.finditer(r"rpc (\w+)\(\w+\) returns \(.+?\) \{(.*?)\n  \}", proto, re.S):
        binding = re.search(r'(get|post|delete|patch|put):\s*"([^"]+)"', m.group(2))
        assert binding is not None, m.group(1)
        out[m.group(1)] = (binding.group(1).upper(), binding.group(2))
    return out


def template_regex(template: str) -> re.Pattern[str]:
    """``/v1beta/{name=files/*}:download`` -> a regex of the paths it binds."""
    pattern = re.escape(template)
    pattern = re.sub(r"\\\{\w+=([^}]*)\\\}", lambda m: m.group(1).replace(r"\*", "[^/]+"), pattern)
    return re.compile(pattern + r"\Z")


def _block(text: str, head: str) -> str:
    start = text.index(head + " {") + len(head) + 2
    depth, i = 1, start
    while depth:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return text[start : i - 1]


BINDINGS = http_bindings(SERVICE)
FILE_FIELDS = message_fields(FILE, "File")


def test_the_contract_is_read() -> None:
    """The parsing above finds what the protos declare (so the checks below cannot pass on an empty reading)."""
    assert BINDINGS == {
        "CreateFile": ("POST", "/v1beta/files"),
        "ListFiles": ("GET", "/v1beta/files"),
        "GetFile": ("GET", "/v1beta/{name=files/*}"),
        "DeleteFile": ("DELETE", "/v1beta/{name=files/*}"),
        "DownloadFile": ("GET", "/v1beta/{name=files/*}:download"),
    }
    assert {"name", "displayName", "sizeBytes", "createTime", "expirationTime", "sha256Hash", "state"} <= FILE_FIELDS
    assert message_fields(SERVICE, "ListFilesRequest") == {"pageSize", "pageToken"}
    assert message_fields(SERVICE, "ListFilesResponse") == {"files", "nextPageToken"}
    assert enum_values(FILE, "State") == {"STATE_UNSPECIFIED", "PROCESSING", "ACTIVE", "FAILED"}


# --- the plugin -----------------------------------------------------------------------------------------------


def _exchange(op: Any) -> Any:
    creds = Credentials(kind="api_key", source="argument api_key", secret=Secret(API_KEY))
    settings = Settings(provider="gemini", values={"api_base": BASE, "part_size": 8 << 20})
    return GeminiProvider().exchange(op, creds, settings)


@pytest.mark.parametrize(
    ("rpc", "op"),
    [
        ("ListFiles", ListFiles(cursor="tok", limit=50)),
        ("GetFile", Retrieve(file_id="files/abc-123")),
        ("DeleteFile", Delete(file_id="abc-123")),
        ("DownloadFile", Download(file_id="files/abc-123")),
    ],
)
def test_each_request_hits_its_binding(rpc: str, op: Any) -> None:
    method, template = BINDINGS[rpc]
    request = _exchange(op).request
    url = re.match(r"(https://[^/]+)(/[^?]*)(?:\?(.*))?", request.url)
    assert url is not None and url.group(1) == BASE and request.method == method
    path = url.group(2)
    if rpc == "DownloadFile":  # media is fetched from the same path under /download, as Google's media download does
        assert path.startswith("/download/") and "alt=media" in (url.group(3) or "")
        path = path.removeprefix("/download")
    assert template_regex(template).match(path), (path, template)
    if rpc == "ListFiles":
        params = {p.split("=")[0] for p in (url.group(3) or "").split("&")}
        assert params == message_fields(SERVICE, "ListFilesRequest")
    assert request.headers[files.KEY_HEADER] == API_KEY


def test_the_upload_metadata_is_a_create_file_request() -> None:
    facts = UploadFacts(purpose="batch", filename="b.jsonl", size=10)
    request = _exchange(Upload(file=facts)).request
    head = request.body[0]
    meta = __import__("json").loads(head.split(b"\r\n\r\n", 1)[1].split(b"\r\n", 1)[0])
    assert set(meta) == message_fields(SERVICE, "CreateFileRequest") == {"file"}
    assert {camel(k) for k in meta["file"]} <= FILE_FIELDS


class _Recording(dict[str, Any]):
    """A File whose reads are recorded."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        super().__init__(data)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)


def test_the_reader_reads_only_the_files_fields_and_maps_every_state() -> None:
    data = _Recording({field: None for field in FILE_FIELDS} | {"name": "files/abc", "state": "ACTIVE"})
    files.file_object("gemini", data, ("batch",))
    assert data.read and data.read <= FILE_FIELDS, data.read - FILE_FIELDS
    assert set(files.STATUS_MAP) == enum_values(FILE, "State")


# --- the fake -------------------------------------------------------------------------------------------------


@pytest.fixture
def answers(tmp_path: Path) -> Iterator[tuple[GeminiLikeServer, Any]]:
    with (
        GeminiLikeServer(api_key=API_KEY, granularity=256 * 1024) as server,
        llmfiles.Client("gemini", environ={}, api_key=API_KEY, api_base=server.url) as c,
    ):
        c.upload(batch_file(tmp_path / "a.jsonl"), purpose="batch")
        c.upload(batch_file(tmp_path / "b.jsonl", min_bytes=600_000), purpose="batch", multipart_threshold=1)
        yield server, c


def test_the_fakes_answers_hold_only_what_the_contract_declares(answers: tuple[GeminiLikeServer, Any]) -> None:
    server, client = answers
    listed = list(client.list_files())
    assert len(listed) == 2
    for fo in listed:
        assert set(fo.raw) <= FILE_FIELDS, set(fo.raw) - FILE_FIELDS
        assert fo.raw["state"] in enum_values(FILE, "State")
        assert isinstance(fo.raw["sizeBytes"], str)  # int64 is a string in protobuf JSON
    list_answers = [r for r in server.requests if r.route == "list"]
    assert list_answers and all(set(r.query) <= message_fields(SERVICE, "ListFilesRequest") for r in list_answers)
