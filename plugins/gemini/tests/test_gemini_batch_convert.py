"""``gemini-batch`` (OpenAI batch lines to Batch API input lines) and ``openai-from-gemini`` (the results back),
offline and through ``convert=`` and a download of the results against the Gemini test server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batch_corpus import FEATURES, errors_at, line, read, requests, write

import llmfiles
from llmfiles_gemini.batch import BatchChecker
from servers.gemini_like import GeminiLikeServer

RESULTS_DOC = "https://ai.google.dev/gemini-api/docs/batch-api#retrieving-results"


@pytest.fixture
def client(gemini_settings: dict[str, Any]) -> Iterator[llmfiles.Client]:
    with llmfiles.Client("gemini", environ={}, **gemini_settings) as c:
        yield c


def convert(c: llmfiles.Client, tmp_path: Path, records: list[dict[str, Any]], to: str = "gemini-batch") -> Any:
    src = write(tmp_path / "in.jsonl", records)
    return c.convert(src, to=to, output=tmp_path / "out.jsonl")


def test_every_kind_of_request_converts_with_its_key(client: llmfiles.Client, tmp_path: Path) -> None:
    records = requests(40)
    result = convert(client, tmp_path, records)
    assert result.ok, result.conversion.problems
    out = read(tmp_path / "out.jsonl")
    assert [r["key"] for r in out] == [r["custom_id"] for r in records]
    checker = BatchChecker()
    assert [p for i, r in enumerate(out, 1) for p in checker.check(i, r)] == []
    by_kind = {kind: out[i]["request"] for i, kind in enumerate(FEATURES)}
    assert by_kind["system"]["systemInstruction"] == {"parts": [{"text": "Answer in one word."}]}
    assert by_kind["developer"]["generationConfig"] == {"maxOutputTokens": 64}
    assert [c["role"] for c in by_kind["multi_turn"]["contents"]] == ["user", "model", "user"]
    assert by_kind["multi_turn"]["generationConfig"]["stopSequences"] == ["\n\n", "END"]
    assert by_kind["parts"]["generationConfig"] == {"maxOutputTokens": 128, "temperature": 0.2, "topP": 0.9}
    assert by_kind["image"]["contents"][0]["parts"][1]["inlineData"]["mimeType"] == "image/png"
    assert by_kind["json_object"]["generationConfig"]["responseMimeType"] == "application/json"
    assert by_kind["json_schema"]["generationConfig"]["responseJsonSchema"]["required"] == ["city", "population"]
    tools = by_kind["tools"]
    assert tools["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "The weather in a city",
                    "parameters": records[8]["body"]["tools"][0]["function"]["parameters"],
                }
            ]
        }
    ]
    assert tools["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    assert tools["contents"][1]["parts"] == [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]
    response = tools["contents"][2]["parts"][0]["functionResponse"]
    assert response == {"name": "get_weather", "response": {"temperature_c": 21}}
    assert by_kind["seed"]["generationConfig"]["seed"] == 42
    assert {p.code for p in result.conversion.problems} == {"model_not_sent"}


@pytest.mark.parametrize(
    ("extra", "code", "path"),
    [
        ({"logit_bias": {"50256": -100}}, "unsupported_field", "body.logit_bias"),
        ({"reasoning_effort": "low"}, "unsupported_field", "body.reasoning_effort"),
        ({"response_format": {"type": "yaml"}}, "cannot_convert", "body.response_format"),
    ],
)
def test_a_field_gemini_lacks_is_an_error_at_its_line(
    client: llmfiles.Client, tmp_path: Path, extra: Any, code: str, path: str
) -> None:
    records = requests(5)
    records[3]["body"].update(extra)
    result = convert(client, tmp_path, records)
    assert errors_at(result) == [(4, code, path)] and not (tmp_path / "out.jsonl").exists()


def test_fields_that_change_nothing_are_reported_as_dropped(client: llmfiles.Client, tmp_path: Path) -> None:
    records = requests(3)
    records[1]["body"]["user"] = "user-1234"
    result = convert(client, tmp_path, records)
    assert result.ok
    assert [(p.line, p.code) for p in result.conversion.problems if p.code == "field_dropped"] == [(2, "field_dropped")]


def test_images_by_url_and_embeddings_are_refused(client: llmfiles.Client, tmp_path: Path) -> None:
    records = requests(2)
    records[1]["body"]["messages"] = [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}
    ]
    records.append(line("emb", {"input": "x"}, url="/v1/embeddings"))
    result = convert(client, tmp_path, records)
    found = errors_at(result)
    assert (2, "cannot_convert", "body.messages (turn 0)") in found and (3, "not_chat_completions", "url") in found


def test_upload_with_convert_stores_the_batch_lines(
    client: llmfiles.Client, gemini_server: GeminiLikeServer, tmp_path: Path
) -> None:
    records = requests(30)
    src = write(tmp_path / "requests.jsonl", records)
    fo = client.upload(src, purpose="batch", convert="gemini-batch")
    assert client.convert(src, to="gemini-batch", output=tmp_path / "want.jsonl").ok
    stored = gemini_server.files[fo.id].content
    assert stored == (tmp_path / "want.jsonl").read_bytes()
    assert [json.loads(x)["key"] for x in stored.splitlines()] == [r["custom_id"] for r in records]


def test_convert_true_on_a_batch_upload_is_gemini_batch(
    client: llmfiles.Client, gemini_server: GeminiLikeServer, tmp_path: Path
) -> None:
    src = write(tmp_path / "requests.jsonl", requests(4))
    fo = client.upload(src, purpose="batch", convert=True)
    assert json.loads(gemini_server.files[fo.id].content.splitlines()[0])["key"] == "task-000"


def gemini_result(key: str, n: int) -> dict[str, Any]:
    """A result line as the Batch API writes it (RESULTS_DOC): the key and a GenerateContentResponse."""
    return {
        "key": key,
        "response": {
            "candidates": [
                {
                    "content": {"parts": [{"text": f"Answer {n}"}], "role": "model"},
                    "finishReason": "MAX_TOKENS" if n == 3 else "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {"promptTokenCount": 10 + n, "candidatesTokenCount": 4, "totalTokenCount": 14 + n},
            "modelVersion": "gemini-2.5-flash",
            "responseId": f"resp-{n}",
        },
    }


def test_results_downloaded_read_back_as_openai_output_lines(
    client: llmfiles.Client, gemini_server: GeminiLikeServer, tmp_path: Path
) -> None:
    records = requests(12)
    results = [gemini_result(r["custom_id"], n) for n, r in enumerate(records)]
    results[5] = {
        "key": "task-005",
        "error": {"code": 400, "message": "Invalid argument", "status": "INVALID_ARGUMENT"},
    }
    results[6]["response"]["candidates"][0]["content"]["parts"] = [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    ]
    name = gemini_server.add_generated("".join(json.dumps(r) + "\n" for r in results).encode())
    downloaded = client.download(name, tmp_path / "results.jsonl")
    back = client.convert(downloaded, to="openai-from-gemini", output=tmp_path / "openai.jsonl")
    assert back.ok, back.conversion.problems
    lines = read(tmp_path / "openai.jsonl")
    assert [x["custom_id"] for x in lines] == [r["custom_id"] for r in records]
    assert lines[5]["response"] is None and lines[5]["error"] == {
        "code": "INVALID_ARGUMENT",
        "message": "Invalid argument",
    }
    body = lines[0]["response"]["body"]
    assert lines[0]["response"]["request_id"] == "resp-0" and body["id"] == "resp-0"
    assert body["model"] == "gemini-2.5-flash" and body["choices"][0]["message"]["content"] == "Answer 0"
    assert body["usage"] == {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14}
    assert lines[3]["response"]["body"]["choices"][0]["finish_reason"] == "length"
    call = lines[6]["response"]["body"]["choices"][0]
    assert call["finish_reason"] == "tool_calls" and call["message"]["content"] is None
    assert json.loads(call["message"]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}


def test_a_result_without_its_key_is_an_error(tmp_path: Path) -> None:
    src = write(tmp_path / "r.jsonl", [{"response": {"candidates": []}}])
    with llmfiles.Client(environ={}) as c:
        result = c.convert(src, to="openai-from-gemini", output=tmp_path / "o.jsonl")
    assert errors_at(result) == [(1, "bad_result", "key")]
