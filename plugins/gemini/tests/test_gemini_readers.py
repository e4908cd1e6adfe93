"""Every answer reader of the plugin gives data or an ``LLMFilesError`` for any answer, the property the fault suite
holds the other providers to: files, pages, sessions and errors of any shape, the answers Gemini documents with
fields removed or of other types, headers of the resumable protocol with odd values.  No request is sent."""

from __future__ import annotations

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
    "name": "files/batch-0123456789abcdef01234567",
    "displayName": "train.jsonl",
    "mimeType": "application/jsonl",
    "sizeBytes": "10",
    "createTime": "2026-01-01T00:00:00.123456Z",
    "updateTime": "2026-01-01T00:00:00Z",
    "expirationTime": "2026-01-03T00:00:00Z",
    "sha256Hash": "ZGQ3ZmE0NGVkNDVkNTg1Y2RlY2I4ZTdjNDZiMDJkZWFhMGE1ZjM5ZjRhMzM4YTIxMmE0MzZkMjAyMjY2ZTc1Yg==",
    "uri": "https://generativelanguage.googleapis.com/v1beta/files/batch-0123456789abcdef01234567",
    "state": "ACTIVE",
    "source": "UPLOADED",
    "error": {"code": 3, "message": "bad"},
}
SAMPLES = [
    FILE,
    {"file": FILE},
    {"files": [FILE], "nextPageToken": "next"},
    {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"},
                {"@type": "type.googleapis.com/google.rpc.RequestInfo", "requestId": "abc"},
            ],
        }
    },
]
FIELDS = sorted({*FILE, "file", "files", "nextPageToken", "error", "code", "message", "status", "details", "@type"})
HEADERS = [
    "content-type",
    "x-goog-upload-url",
    "x-goog-upload-status",
    "x-goog-upload-size-received",
    "x-goog-upload-chunk-granularity",
    "x-goog-upload-control-url",
    "x-request-id",
    "x-guploader-uploadid",
    "retry-after",
]
HEADER_VALUES = [
    "",
    "active",
    "final",
    "cancelled",
    "-1",
    "10",
    "262144",
    "1e3",
    "²",
    "http://127.0.0.1:1/upload/v1beta/files?upload_id=x&upload_protocol=resumable",
    "https://[::1",
    "application/json",
]
STATE = {
    "upload_url": "https://generativelanguage.googleapis.com/upload/v1beta/files?upload_id=x&upload_protocol=resumable",
    "name": "files/batch-0123456789abcdef01234567",
    "granularity": 262144,
}


@pytest.fixture(scope="module")
def every_reader(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, readers.Reader, bool]]:
    home = Path(tmp_path_factory.mktemp("home"))
    out: list[tuple[str, readers.Reader, bool]] = []
    for purpose in ("batch", "user_data"):
        with llmfiles.Client("gemini", environ={}, home=home, api_key="AIza-test-0123456789") as client:
            out += [
                (f"{purpose} {label}", read, is_error)
                for label, read, is_error in readers.readers(
                    client, purpose=purpose, file_id="files/batch-0123456789abcdef01234567", state=STATE
                )
            ]
    return out


def test_the_readers_cover_every_operation_and_the_resumable_protocol(
    every_reader: list[tuple[str, readers.Reader, bool]],
) -> None:
    labels = {label for label, _, _ in every_reader}
    for op in ("Upload", "Retrieve", "ListFiles", "Delete", "Download", "start", "chunk", "last chunk", "query"):
        assert f"batch {op} read" in labels and f"batch {op} error" in labels, op
    assert "batch Upload probe" in labels and "batch abort read" in labels


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


def test_an_upload_url_that_is_no_url_is_a_provider_error_that_does_not_quote_it(
    every_reader: list[tuple[str, readers.Reader, bool]],
) -> None:
    [read] = [r for label, r, _ in every_reader if label == "batch start read"]
    secret = "https://[::1/upload/v1beta/files?upload_id=SECRET-SESSION"
    with pytest.raises(ProviderError) as info:
        read(HttpResponse(status=200, headers={"x-goog-upload-url": secret}, body=b"", url="https://x/y"))
    assert "X-Goog-Upload-URL" in str(info.value) and "SECRET" not in str(info.value)
