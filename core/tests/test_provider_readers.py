"""The readers every provider plugin shares (``llmfiles.provider``): a JSON object answer and RFC 3339 times, and the
JSON reading of an answer (orjson first, the standard library for what it refuses)."""

from __future__ import annotations

import pytest

from llmfiles.errors import ProviderError
from llmfiles.models import HttpResponse
from llmfiles.provider import json_object, rfc3339_seconds


def test_an_answer_that_is_not_a_json_object_is_the_providers_error() -> None:
    assert json_object("p", HttpResponse(status=200, body=b'{"id": "f"}')) == {"id": "f"}
    with pytest.raises(ProviderError, match="expected a JSON object, got a list") as listed:
        json_object("p", HttpResponse(status=200, body=b"[1]"))
    assert listed.value.provider == "p" and listed.value.status == 200
    with pytest.raises(ProviderError, match="expected a JSON object, got b'<html>"):
        json_object("p", HttpResponse(status=502, body=b"<html>bad gateway</html>"))


def test_an_answer_orjson_refuses_is_read_as_the_standard_library_reads_it() -> None:
    # NaN is not JSON (orjson refuses it), a UTF-16 body is not UTF-8: json.loads reads both, as before
    assert json_object("p", HttpResponse(status=200, body=b'{"n": NaN}'))["n"] != 0
    assert json_object("p", HttpResponse(status=200, body='{"a": 1}'.encode("utf-16")))["a"] == 1
    with pytest.raises(ValueError):
        HttpResponse(status=200, body=b"[" * 100_000).json()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2025-03-29T12:39:16Z", 1743251956),
        ("2025-03-29T12:39:16.599879123Z", 1743251956),  # nanoseconds (Gemini, Cloud Storage)
        ("2009-10-12T17:50:30.000Z", 1255369830),  # S3's LastModified
        ("2025-03-29T14:39:16+02:00", 1743251956),
        ("2025-03-29T12:39:16", 1743251956),  # no offset: UTC, not the machine's zone
        ("2025-03-29 12:39:16z", 1743251956),
    ],
)
def test_rfc3339_times(text: str, seconds: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "Asia/Tokyo")  # the machine's zone plays no part
    time.tzset()
    try:
        assert rfc3339_seconds(text) == seconds
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize("value", [None, "", "yesterday", "2025-13-01T00:00:00Z", "2025-03-29", 1743251956])
def test_what_is_not_an_rfc3339_time_is_none(value: object) -> None:
    assert rfc3339_seconds(value) is None
