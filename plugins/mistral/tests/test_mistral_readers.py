"""Every answer reader of the plugin gives data or an ``LLMFilesError`` for any answer, the property the fault suite
holds the other providers to: files, pages and errors of any shape, the answers Mistral's contract describes with
fields removed or of other types, odd headers.  No request is sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmfiles
from llmfiles.errors import ProviderError
from llmfiles.models import HttpResponse
from servers import readers

FILE = {
    "id": "497f6eca-6276-4993-bfeb-53cbbbba6f08",
    "object": "file",
    "bytes": 13000,
    "created_at": 1716963433,
    "filename": "files_upload.jsonl",
    "purpose": "fine-tune",
    "sample_type": "instruct",
    "num_lines": 10,
    "mimetype": "application/jsonl",
    "source": "upload",
    "signature": "d4821d2de1917341",
}
SAMPLES = [
    FILE,
    {"data": [FILE], "object": "list", "total": 1},
    {"id": FILE["id"], "object": "file", "deleted": True},
    {"object": "error", "message": "No file found", "type": "invalid_request_error", "param": None, "code": "1000"},
    {"detail": [{"loc": ["body", "purpose"], "msg": "field required", "type": "value_error.missing"}]},
    {"detail": "Not Found"},
]
FIELDS = sorted({*FILE, "data", "total", "deleted", "message", "type", "param", "code", "detail", "loc", "msg"})
HEADERS = ["content-type", "mistral-correlation-id", "x-kong-request-id", "retry-after"]
HEADER_VALUES = ["", "0123-abcd", "-1", "10", "²", "application/json"]
STATE = {"unused": True}


@pytest.fixture(scope="module")
def every_reader(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, readers.Reader, bool]]:
    home = Path(tmp_path_factory.mktemp("home"))
    out: list[tuple[str, readers.Reader, bool]] = []
    for purpose in ("fine-tune", "batch", "ocr"):
        with llmfiles.Client("mistral", environ={}, home=home, api_key="mistral-test-0123456789") as client:
            out += [
                (f"{purpose} {label}", read, is_error)
                for label, read, is_error in readers.readers(
                    client, purpose=purpose, file_id=str(FILE["id"]), state=STATE
                )
            ]
    return out


def test_the_readers_cover_every_operation(every_reader: list[tuple[str, readers.Reader, bool]]) -> None:
    labels = {label for label, _, _ in every_reader}
    for op in ("Upload", "Retrieve", "ListFiles", "Delete", "Download"):
        assert f"batch {op} read" in labels and f"batch {op} error" in labels, op
    assert "fine-tune Upload probe" in labels


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


@pytest.mark.parametrize("loc", [None, 0, "purpose", {"x": 1}])
def test_a_validation_detail_of_an_odd_shape_still_gives_its_message(
    every_reader: list[tuple[str, readers.Reader, bool]], loc: Any
) -> None:
    [error] = [r for label, r, _ in every_reader if label == "fine-tune Upload error"]
    body = b'{"detail": [{"loc": %s, "msg": "field required"}]}' % json.dumps(loc).encode()
    got = error(HttpResponse(status=422, headers={}, body=body, url="https://x/y"))
    assert isinstance(got, ProviderError) and "field required" in str(got) and "could not be read" not in str(got)
