"""``mistral-batch`` (OpenAI batch lines to Mistral's ``{custom_id, body}`` lines) and ``openai-from-mistral`` (the
results back), offline and through ``convert=`` against the Mistral test server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batch_corpus import FEATURES, errors_at, read, requests, write

import llmfiles
from llmfiles.validate.openai_batch import ResultChecker
from llmfiles_mistral.checks import BatchChecker
from servers.mistral_like import MistralLikeServer


@pytest.fixture
def client(mistral_settings: dict[str, Any]) -> Iterator[llmfiles.Client]:
    with llmfiles.Client("mistral", environ={}, **mistral_settings) as c:
        yield c


def convert(tmp_path: Path, records: list[dict[str, Any]], to: str = "mistral-batch") -> Any:
    src = write(tmp_path / "in.jsonl", records)
    with llmfiles.Client(environ={}) as c:
        return c.convert(src, to=to, output=tmp_path / "out.jsonl")


def test_every_kind_of_request_converts_to_a_mistral_line(tmp_path: Path) -> None:
    records = requests(40)
    result = convert(tmp_path, records)
    assert result.ok, result.conversion.problems
    out = read(tmp_path / "out.jsonl")
    assert [r["custom_id"] for r in out] == [r["custom_id"] for r in records]
    assert all(set(r) == {"custom_id", "body"} and "model" not in r["body"] for r in out)
    checker = BatchChecker()
    assert [p for i, r in enumerate(out, 1) for p in checker.check(i, r)] == []
    by_kind = {kind: out[i]["body"] for i, kind in enumerate(FEATURES)}
    assert by_kind["developer"]["messages"][0]["role"] == "system" and by_kind["developer"]["max_tokens"] == 64
    assert "max_completion_tokens" not in by_kind["developer"]
    assert by_kind["seed"]["random_seed"] == 42 and "seed" not in by_kind["seed"]
    assert by_kind["json_schema"]["response_format"]["type"] == "json_schema"
    assert by_kind["image"]["messages"][0]["content"][1]["type"] == "image_url"
    assert {p.code for p in result.conversion.problems} == {"model_not_sent"}


def test_log_probabilities_are_an_error_at_their_line(tmp_path: Path) -> None:
    records = requests(3)
    records[1]["body"]["logprobs"] = True
    result = convert(tmp_path, records)
    assert errors_at(result) == [(2, "unsupported_field", "body.logprobs")]


def test_upload_with_convert_stores_the_mistral_lines(
    client: llmfiles.Client, mistral_server: MistralLikeServer, tmp_path: Path
) -> None:
    records = requests(25)
    src = write(tmp_path / "batch.jsonl", records)
    fo = client.upload(src, purpose="batch", convert="mistral-batch")
    stored = mistral_server.files[fo.id].content
    assert convert(tmp_path, records).ok
    assert stored == (tmp_path / "out.jsonl").read_bytes()
    assert [json.loads(x)["custom_id"] for x in stored.splitlines()] == [r["custom_id"] for r in records]


def test_results_read_back_as_openai_output_lines(tmp_path: Path) -> None:
    # the result lines of https://docs.mistral.ai/studio/batch-processing: {id, custom_id, response, error}
    ok = {
        "id": "batch-8d2f-0",
        "custom_id": "task-000",
        "response": {
            "status_code": 200,
            "body": {
                "id": "cmpl-1",
                "object": "chat.completion",
                "model": "mistral-small-latest",
                "created": 1730000000,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "Deux."}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
            },
        },
        "error": None,
    }
    failed = {
        "id": "batch-8d2f-1",
        "custom_id": "task-001",
        "response": {"status_code": 422, "body": {"message": "bad"}},
    }
    back = convert(tmp_path, [ok, failed], to="openai-from-mistral")
    assert back.ok, back.conversion.problems
    first, second = read(tmp_path / "out.jsonl")
    assert first["id"] == "batch-8d2f-0" and first["response"]["request_id"] == ""
    assert first["response"]["body"]["choices"][0]["message"]["content"] == "Deux."
    assert second["response"] is None and second["error"] == {"code": "422", "message": "bad"}
    checker = ResultChecker()
    assert [p for i, x in enumerate([first, second], 1) for p in checker.check(i, x)] == []
