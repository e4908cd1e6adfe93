"""``vertex-batch`` (OpenAI batch lines to Vertex AI batch prediction records for Gemini, the custom_id in
``request.labels``) and ``openai-from-vertex`` (the prediction output back), offline and through ``convert=``
against gcp-storage-emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batch_corpus import FEATURES, errors_at, read, requests, write

import llmfiles
from llmfiles.validate.openai_batch import ResultChecker
from llmfiles_vertex.gemini import BatchChecker

#: "Batch prediction from Cloud Storage": the output lines (status, processed_time, request, response)
OUTPUT_DOC = "https://cloud.google.com/vertex-ai/generative-ai/docs/multimodal/batch-prediction-from-cloud-storage"


@pytest.fixture
def client(vertex_settings: dict[str, Any]) -> Iterator[llmfiles.Client]:
    with llmfiles.Client("vertex_ai", environ={}, **vertex_settings) as c:
        yield c


def convert(tmp_path: Path, records: list[dict[str, Any]], to: str = "vertex-batch") -> Any:
    src = write(tmp_path / "in.jsonl", records)
    with llmfiles.Client(environ={}) as c:
        return c.convert(src, to=to, output=tmp_path / "out.jsonl")


def test_every_kind_of_request_converts_and_keeps_its_id_in_the_labels(tmp_path: Path) -> None:
    records = requests(40)
    result = convert(tmp_path, records)
    assert result.ok, result.conversion.problems
    out = read(tmp_path / "out.jsonl")
    assert [r["request"]["labels"] for r in out] == [{"custom_id": r["custom_id"]} for r in records]
    assert all(set(r) == {"request"} for r in out)
    checker = BatchChecker()
    assert [p for i, r in enumerate(out, 1) for p in checker.check(i, r)] == []
    by_kind = {kind: out[i]["request"] for i, kind in enumerate(FEATURES)}
    assert by_kind["system"]["systemInstruction"] == {"parts": [{"text": "Answer in one word."}]}
    assert by_kind["json_schema"]["generationConfig"]["responseMimeType"] == "application/json"
    assert by_kind["tools"]["contents"][1]["parts"][0]["functionCall"]["name"] == "get_weather"


def test_images_in_cloud_storage_are_file_data(tmp_path: Path) -> None:
    records = requests(1)
    records[0]["body"]["messages"] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is it?"},
                {"type": "image_url", "image_url": {"url": "gs://bucket/cat.jpg"}},
            ],
        }
    ]
    assert convert(tmp_path, records).ok
    part = read(tmp_path / "out.jsonl")[0]["request"]["contents"][0]["parts"][1]
    assert part == {"fileData": {"mimeType": "image/jpeg", "fileUri": "gs://bucket/cat.jpg"}}


@pytest.mark.parametrize(
    ("custom_id", "ok"),
    [("task-001", True), ("élan_2", True), ("Task-1", False), ("a" * 64, False), ("a/b", False)],
)
def test_ids_that_cannot_be_label_values_are_errors(tmp_path: Path, custom_id: str, ok: bool) -> None:
    records = requests(2)
    records[1]["custom_id"] = custom_id
    result = convert(tmp_path, records)
    assert result.ok is ok
    assert errors_at(result) == ([] if ok else [(2, "bad_custom_id", "custom_id")])


def test_an_unsupported_field_is_an_error_at_its_line(tmp_path: Path) -> None:
    records = requests(4)
    records[2]["body"]["logit_bias"] = {"1": 5}
    result = convert(tmp_path, records)
    assert errors_at(result) == [(3, "unsupported_field", "body.logit_bias")]
    assert not (tmp_path / "out.jsonl").exists()


def test_upload_with_convert_stores_the_prediction_records(client: llmfiles.Client, tmp_path: Path) -> None:
    records = requests(30)
    src = write(tmp_path / "requests.jsonl", records)
    fo = client.upload(src, purpose="batch", convert="vertex-batch")
    assert fo.id.startswith("gs://")
    stored = client.download(fo.id, tmp_path / "stored.jsonl").read_bytes()
    assert convert(tmp_path, records).ok
    assert stored == (tmp_path / "out.jsonl").read_bytes()
    assert [json.loads(x)["request"]["labels"]["custom_id"] for x in stored.splitlines()] == [
        r["custom_id"] for r in records
    ]


def test_validate_with_convert_reports_at_the_input_lines(client: llmfiles.Client, tmp_path: Path) -> None:
    records = requests(6)
    records[4]["custom_id"] = "UPPER"
    report = client.validate(write(tmp_path / "r.jsonl", records), purpose="batch", convert="vertex-batch")
    assert not report.ok and [(p.line, p.code) for p in report.problems if p.severity == "error"] == [
        (5, "bad_custom_id")
    ]


def vertex_output(record: dict[str, Any], n: int) -> dict[str, Any]:
    """An output line as Vertex writes it (OUTPUT_DOC): the request, and the GenerateContentResponse."""
    return {
        "status": "",
        "processed_time": "2024-11-01T18:13:16.826+00:00",
        "request": record["request"],
        "response": {
            "candidates": [
                {
                    "avgLogprobs": -0.1,
                    "content": {"parts": [{"text": f"Réponse {n}"}], "role": "model"},
                    "finishReason": "STOP",
                }
            ],
            "modelVersion": "gemini-2.0-flash-001@default",
            "usageMetadata": {"candidatesTokenCount": 3, "promptTokenCount": 7, "totalTokenCount": 10},
        },
    }


def test_prediction_output_round_trips_to_openai_output_lines(tmp_path: Path) -> None:
    records = requests(15)
    assert convert(tmp_path, records).ok
    converted = read(tmp_path / "out.jsonl")
    outputs = [vertex_output(r, n) for n, r in enumerate(converted)]
    outputs[4] = {
        "status": 'Bad Request: {"error": {"code": 400, "message": "Please use a valid role: user, model."}}',
        "processed_time": "2024-11-01T18:13:16.826+00:00",
        "request": converted[4]["request"],
    }
    src = write(tmp_path / "predictions.jsonl", outputs[::-1])  # Vertex does not keep the input's order
    with llmfiles.Client(environ={}) as c:
        back = c.convert(src, to="openai-from-vertex", output=tmp_path / "openai.jsonl")
    assert back.ok, back.conversion.problems
    lines = {x["custom_id"]: x for x in read(tmp_path / "openai.jsonl")}
    assert sorted(lines) == sorted(r["custom_id"] for r in records)
    failed = lines["task-004"]
    assert failed["response"] is None and failed["error"]["code"] == "vertex_error"
    assert "valid role" in failed["error"]["message"]
    body = lines["task-007"]["response"]["body"]
    assert body["choices"][0]["message"]["content"] == "Réponse 7" and body["created"] == 1730484796
    assert body["model"] == "gemini-2.0-flash-001@default" and body["usage"]["total_tokens"] == 10
    checker = ResultChecker()
    assert [p for i, x in enumerate(lines.values(), 1) for p in checker.check(i, x)] == []


def test_output_of_another_input_cannot_be_matched(tmp_path: Path) -> None:
    line = {"status": "", "request": {"contents": []}, "response": {"candidates": []}}
    result = convert(tmp_path, [line], to="openai-from-vertex")
    assert errors_at(result) == [(1, "no_custom_id", "request.labels")]


def test_convert_true_on_a_batch_upload_is_vertex_batch_and_recorded(client: llmfiles.Client, tmp_path: Path) -> None:
    fo = client.upload(write(tmp_path / "r.jsonl", requests(3)), purpose="batch", convert=True)
    stored = client.download(fo.id, tmp_path / "stored.jsonl").read_text()
    assert json.loads(stored.splitlines()[0])["request"]["labels"] == {"custom_id": "task-000"}
    assert "vertex-batch" in json.dumps(client.retrieve(fo.id).raw)
