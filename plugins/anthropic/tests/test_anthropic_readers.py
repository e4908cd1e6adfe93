"""Every answer reader of the plugin gives data or an ``LLMFilesError`` for any answer, the property the fault suite
holds the other providers to: files, pages and errors of any shape, the answers Anthropic documents with fields
removed or of other types, odd headers.  No request is sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmfiles
from llmfiles.models import HttpResponse
from servers import readers

FILE = {
    "id": "file_011CNha8iCJcU1wXNR6q4V8w",
    "type": "file",
    "filename": "contract.pdf",
    "mime_type": "application/pdf",
    "size_bytes": 10,
    "created_at": "2025-04-14T12:00:00.123456Z",
    "downloadable": False,
}
SAMPLES = [
    FILE,
    {"data": [FILE], "first_id": FILE["id"], "last_id": FILE["id"], "has_more": True},
    {"id": FILE["id"], "type": "file_deleted"},
    {
        "type": "error",
        "error": {"type": "not_found_error", "message": "File not found"},
        "request_id": "req_011CNha8iCJcU1wXNR6q4V8w",
    },
]
FIELDS = sorted({*FILE, "data", "first_id", "last_id", "has_more", "error", "message", "request_id"})
HEADERS = ["content-type", "request-id", "retry-after", "x-should-retry", "anthropic-organization-id"]
HEADER_VALUES = ["", "req_0123", "-1", "10", "²", "application/json", "true", "false"]
STATE = {"unused": True}


@pytest.fixture(scope="module")
def every_reader(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, readers.Reader, bool]]:
    home = Path(tmp_path_factory.mktemp("home"))
    with llmfiles.Client("anthropic", environ={}, home=home, api_key="sk-ant-test-0123456789") as client:
        return readers.readers(
            client, purpose="user_data", file_id=str(FILE["id"]), filename="contract.pdf", state=STATE
        )


def test_the_readers_cover_every_operation(every_reader: list[tuple[str, readers.Reader, bool]]) -> None:
    labels = {label for label, _, _ in every_reader}
    for op in ("Upload", "Retrieve", "ListFiles", "Delete", "Download"):
        assert f"{op} read" in labels and f"{op} error" in labels, op
    assert "Upload probe" in labels


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), response=readers.responses(FIELDS, HEADERS, HEADER_VALUES, SAMPLES))
def test_every_reader_gives_data_or_an_llmfiles_error(
    every_reader: list[tuple[str, readers.Reader, bool]], data: Any, response: HttpResponse
) -> None:
    label, read, is_error = data.draw(st.sampled_from(every_reader), label="reader")
    readers.check(label, read, is_error, response)


def test_every_reader_takes_every_documented_answer_with_every_odd_header(
    every_reader: list[tuple[str, readers.Reader, bool]],
) -> None:
    failures = readers.sweep(every_reader, HEADERS, HEADER_VALUES, SAMPLES)
    assert not failures, f"{len(failures)} failures, such as:\n" + "\n".join(failures[:10])
