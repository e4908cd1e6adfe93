"""``bedrock-batch`` (OpenAI batch lines to Bedrock batch-inference records, by the model family) and
``openai-from-bedrock`` (the results back), offline and through ``convert=`` against moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batch_corpus import errors_at, line, read, requests, write

import llmfiles
from llmfiles.errors import InvalidSetting
from llmfiles.validate.openai_batch import ResultChecker
from llmfiles_bedrock import batch
from llmfiles_bedrock.formats import BatchChecker

CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"
NOVA = "us.amazon.nova-lite-v1:0"
LLAMA = "meta.llama3-1-70b-instruct-v1:0"
TITAN = "amazon.titan-text-express-v1"
TEXT_ONLY = ("system", "developer", "multi_turn", "parts", "unicode")
RESULTS_DOC = "https://docs.aws.amazon.com/bedrock/latest/userguide/batch-inference-results.html"


@pytest.fixture
def client(bedrock_settings: dict[str, Any]) -> Iterator[llmfiles.Client]:
    """A client of ``bedrock`` pointed at moto."""
    with llmfiles.Client("bedrock", environ={}, **bedrock_settings) as c:
        yield c


def convert(tmp_path: Path, records: list[dict[str, Any]], **settings: Any) -> tuple[Any, Path]:
    src = write(tmp_path / "batch.jsonl", records)
    out = tmp_path / "bedrock.jsonl"
    with llmfiles.Client(environ={}) as c:
        return c.convert(src, to="bedrock-batch", output=out, **settings), out


@pytest.mark.parametrize(
    ("model", "family"),
    [
        (CLAUDE, "anthropic"),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", "anthropic"),
        ("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0", "anthropic"),
        (NOVA, "nova"),
        (LLAMA, "llama"),
        ("meta.llama4-scout-17b-instruct-v1:0", "llama"),
        (TITAN, "titan"),
        ("cohere.command-r-v1:0", None),
        ("meta.llama2-13b-chat-v1", None),
    ],
)
def test_the_family_comes_from_the_model_id(model: str, family: str | None) -> None:
    assert batch.family_of(model) == family


def test_claude_records_keep_every_id_and_pass_the_batch_checker(tmp_path: Path) -> None:
    records = requests(40, kinds=(*TEXT_ONLY, "image", "tools"))
    result, out = convert(tmp_path, records, model=CLAUDE)
    assert result.ok, result.conversion.problems
    converted = read(out)
    assert [r["recordId"] for r in converted] == [r["custom_id"] for r in records]
    checker = BatchChecker()
    assert [p for i, r in enumerate(converted, 1) for p in checker.check(i, r)] == []
    first = converted[0]["modelInput"]  # the "system" kind: system lifted out of messages
    assert first["anthropic_version"] == "bedrock-2023-05-31" and first["max_tokens"] == 128
    assert first["system"] == "Answer in one word."
    assert [m["role"] for m in first["messages"]] == ["user"]
    assert converted[1]["modelInput"]["system"] == "Be terse." and converted[1]["modelInput"]["max_tokens"] == 64
    assert converted[2]["modelInput"]["stop_sequences"] == ["\n\n", "END"]
    assert [m["role"] for m in converted[2]["modelInput"]["messages"]] == ["user", "assistant", "user"]
    assert converted[3]["modelInput"]["temperature"] == 0.2 and converted[3]["modelInput"]["top_p"] == 0.9
    image = converted[5]["modelInput"]["messages"][0]["content"][1]
    assert image["type"] == "image" and image["source"]["media_type"] == "image/png"
    tools = converted[6]["modelInput"]
    assert tools["tools"][0]["input_schema"]["required"] == ["city"] and tools["tool_choice"] == {"type": "auto"}
    use, result_turn = tools["messages"][1]["content"][0], tools["messages"][2]["content"][0]
    assert use == {"type": "tool_use", "id": "call6", "name": "get_weather", "input": {"city": "Paris"}}
    assert result_turn["type"] == "tool_result" and result_turn["tool_use_id"] == "call6"
    warnings = {p.code for p in result.conversion.problems}
    assert warnings == {"model_not_sent", "record_id_not_alphanumeric"}  # ids with '-' are reported, kept


@pytest.mark.parametrize(
    ("model", "kinds", "check"),
    [
        (NOVA, (*TEXT_ONLY, "image", "tools"), lambda r: r["schemaVersion"] == "messages-v1"),
        (LLAMA, TEXT_ONLY[:2], lambda r: r["prompt"].startswith("<|begin_of_text|>") and "max_gen_len" in r),
        (TITAN, ("system", "developer", "parts"), lambda r: r["inputText"].endswith("Bot:")),
    ],
)
def test_each_family_gets_its_native_body(tmp_path: Path, model: str, kinds: tuple[str, ...], check: Any) -> None:
    records = requests(24, kinds=kinds)
    result, out = convert(tmp_path, records, model=model)
    assert result.ok, result.conversion.problems
    converted = read(out)
    assert [r["recordId"] for r in converted] == [r["custom_id"] for r in records]
    assert all(check(r["modelInput"]) for r in converted)


def test_nova_lifts_the_system_prompt_and_maps_the_inference_config(tmp_path: Path) -> None:
    _, out = convert(tmp_path, requests(3, kinds=("multi_turn",)), model=NOVA)
    body = read(out)[0]["modelInput"]
    assert body["system"] == [{"text": "You are a maths tutor."}]
    assert body["inferenceConfig"] == {"maxTokens": 128, "stopSequences": ["\n\n", "END"]}
    assert body["messages"][1] == {"role": "assistant", "content": [{"text": "4."}]}


@pytest.mark.parametrize(
    ("model", "extra", "path"),
    [
        (CLAUDE, {"logprobs": True}, "body.logprobs"),
        (CLAUDE, {"seed": 7}, "body.seed"),
        (CLAUDE, {"response_format": {"type": "json_object"}}, "body.response_format"),
        (LLAMA, {"stop": ["x"]}, "body.stop"),
        (TITAN, {"tools": [{"type": "function", "function": {"name": "f"}}]}, "body.tools"),
    ],
)
def test_a_field_the_family_lacks_is_an_error_at_its_line(tmp_path: Path, model: str, extra: Any, path: str) -> None:
    records = requests(6, kinds=("system",))
    records[4]["body"].update(extra)
    result, out = convert(tmp_path, records, model=model)
    assert not result.ok and not out.exists()
    assert errors_at(result) == [(5, "unsupported_field", path)]


def test_lines_that_are_not_chat_completions_are_errors(tmp_path: Path) -> None:
    records = [*requests(3), line("emb-1", {"input": "hello"}, url="/v1/embeddings")]
    result, out = convert(tmp_path, records, model=CLAUDE)
    assert not out.exists()
    assert (4, "not_chat_completions", "url") in errors_at(result)


def test_claude_needs_max_tokens(tmp_path: Path) -> None:
    records = requests(2, kinds=("system",))
    del records[1]["body"]["max_tokens"]
    result, _ = convert(tmp_path, records, model=CLAUDE)
    assert errors_at(result) == [(2, "cannot_convert", "body.max_tokens")]


@pytest.mark.parametrize("model", [None, "cohere.command-r-v1:0"])
def test_no_model_or_an_unknown_one_names_the_families(tmp_path: Path, model: str | None) -> None:
    settings = {"model": model} if model else {}
    with pytest.raises(InvalidSetting) as info:
        convert(tmp_path, requests(2), **settings)
    text = str(info.value)
    assert all(f in text for f in ("anthropic.claude-*", "amazon.nova-*", "meta.llama3*", "amazon.titan-text-*"))
    assert "model" in text and not (tmp_path / "bedrock.jsonl").exists()


def test_the_command_line_takes_the_model_as_a_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from llmfiles.cli import main

    src = write(tmp_path / "batch.jsonl", requests(12, kinds=TEXT_ONLY))
    out = tmp_path / "out.jsonl"
    assert main(["convert", str(src), "--to", "bedrock-batch", "-s", f"model={CLAUDE}", "-o", str(out)]) == 0
    assert f"{out}: written: 12 records in the bedrock-batch format" in capsys.readouterr().out
    assert main(["convert", str(src), "--to", "bedrock-batch", "-o", str(tmp_path / "x.jsonl")]) == 2
    assert "needs the model" in capsys.readouterr().err


def test_upload_with_convert_sends_the_checked_batch_records(
    client: llmfiles.Client, tmp_path: Path, s3: Any, prefix: str
) -> None:
    records = requests(30, kinds=(*TEXT_ONLY, "image", "tools"))
    src = write(tmp_path / "batch.jsonl", records)
    fo = client.upload(src, purpose="batch", convert="bedrock-batch", model=CLAUDE)
    want = tmp_path / "want.jsonl"
    assert client.convert(src, to="bedrock-batch", output=want, model=CLAUDE).ok
    key = fo.id.split("/", 3)[3]
    stored = s3.get_object(Bucket=fo.id.split("/")[2], Key=key)["Body"].read()
    assert stored == want.read_bytes()
    assert [json.loads(x)["recordId"] for x in stored.splitlines()] == [r["custom_id"] for r in records]


def test_upload_with_convert_refuses_a_field_claude_lacks(client: llmfiles.Client, tmp_path: Path, s3: Any) -> None:
    records = requests(5)
    records[2]["body"]["logprobs"] = True
    src = write(tmp_path / "batch.jsonl", records)
    with pytest.raises(llmfiles.ValidationError) as info:
        client.upload(src, purpose="batch", convert="bedrock-batch", model=CLAUDE)
    assert any(p.line == 3 and p.path == "body.logprobs" for p in info.value.problems)


def test_upload_with_convert_without_a_model_says_how_to_set_it(client: llmfiles.Client, tmp_path: Path) -> None:
    src = write(tmp_path / "batch.jsonl", requests(3))
    with pytest.raises(InvalidSetting, match="needs the model"):
        client.upload(src, purpose="batch", convert="bedrock-batch")


# --- results back ----------------------------------------------------------------------------------------------------


def claude_output(record: dict[str, Any], n: int) -> dict[str, Any]:
    """The result of a record as Bedrock writes it: the record, and the Messages API response as modelOutput."""
    return {
        **record,
        "modelOutput": {
            "id": f"msg_bdrk_{n:04d}",
            "type": "message",
            "role": "assistant",
            "model": "claude-3-5-haiku-20241022",
            "content": [{"type": "text", "text": f"Answer to {record['recordId']}"}],
            "stop_reason": "max_tokens" if n % 5 == 0 else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 20 + n, "output_tokens": 5},
        },
    }


def test_results_round_trip_to_openai_output_lines(tmp_path: Path) -> None:
    records = requests(20, kinds=TEXT_ONLY)
    result, converted = convert(tmp_path, records, model=CLAUDE)
    assert result.ok
    outputs = [claude_output(r, n) for n, r in enumerate(read(converted))]
    outputs[7] = {**read(converted)[7], "error": {"errorCode": 400, "errorMessage": "bad request"}}
    src = write(tmp_path / "batch.jsonl.out", outputs)
    with llmfiles.Client(environ={}) as c:
        back = c.convert(src, to="openai-from-bedrock", output=tmp_path / "openai.jsonl")
    assert back.ok, back.conversion.problems
    lines = read(tmp_path / "openai.jsonl")
    assert [x["custom_id"] for x in lines] == [r["custom_id"] for r in records]
    assert lines[7]["response"] is None and lines[7]["error"] == {"code": "400", "message": "bad request"}
    ok = lines[1]
    assert ok["error"] is None and ok["response"]["status_code"] == 200
    body = ok["response"]["body"]
    assert body["object"] == "chat.completion" and body["model"] == "claude-3-5-haiku-20241022"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Answer to task-001", "refusal": None}
    assert (
        body["choices"][0]["finish_reason"] == "stop"
        and lines[0]["response"]["body"]["choices"][0]["finish_reason"] == "length"
    )
    assert body["usage"] == {"prompt_tokens": 21, "completion_tokens": 5, "total_tokens": 26}
    checker = ResultChecker()
    assert [p for i, x in enumerate(lines, 1) for p in checker.check(i, x)] == []


def test_the_documented_titan_results_read_back(tmp_path: Path) -> None:
    # the two lines of the example output file of RESULTS_DOC
    outputs = [
        {
            "recordId": "3223593EFGH",
            "modelInput": {"inputText": "Roses are red, violets are"},
            "modelOutput": {
                "inputTextTokenCount": 8,
                "results": [{"tokenCount": 3, "outputText": "blue\n", "completionReason": "FINISH"}],
            },
        },
        {
            "recordId": "1223213ABCD",
            "modelInput": {"inputText": "Hello world"},
            "error": {"errorCode": 400, "errorMessage": "bad request"},
        },
    ]
    src = write(tmp_path / "in.jsonl.out", outputs)
    with llmfiles.Client(environ={}) as c:
        assert c.convert(src, to="openai-from-bedrock", output=tmp_path / "o.jsonl", model=TITAN).ok
    first, second = read(tmp_path / "o.jsonl")
    assert first["custom_id"] == "3223593EFGH" and first["response"]["body"]["model"] == TITAN
    assert first["response"]["body"]["choices"][0]["message"]["content"] == "blue\n"
    assert first["response"]["body"]["usage"] == {"prompt_tokens": 8, "completion_tokens": 3, "total_tokens": 11}
    assert second == {
        "id": second["id"],
        "custom_id": "1223213ABCD",
        "response": None,
        "error": {"code": "400", "message": "bad request"},
    }


@pytest.mark.parametrize(
    ("output", "text", "finish"),
    [
        (
            {
                "output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 3, "outputTokens": 1},
            },
            "Hi",
            "stop",
        ),
        (
            {"generation": "Hello", "prompt_token_count": 4, "generation_token_count": 2, "stop_reason": "length"},
            "Hello",
            "length",
        ),
        (
            {
                "id": "m",
                "type": "message",
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "tu1", "name": "get_weather", "input": {"city": "Paris"}}],
                "stop_reason": "tool_use",
                "usage": {"input_tokens": 1, "output_tokens": 1},
            },
            None,
            "tool_calls",
        ),
    ],
)
def test_nova_llama_and_tool_use_outputs_read_back(tmp_path: Path, output: Any, text: str | None, finish: str) -> None:
    src = write(tmp_path / "in.jsonl.out", [{"recordId": "r1", "modelInput": {}, "modelOutput": output}])
    with llmfiles.Client(environ={}) as c:
        assert c.convert(src, to="openai-from-bedrock", output=tmp_path / "o.jsonl").ok
    (choice,) = read(tmp_path / "o.jsonl")[0]["response"]["body"]["choices"]
    assert choice["message"]["content"] == text and choice["finish_reason"] == finish
    if finish == "tool_calls":
        call = choice["message"]["tool_calls"][0]
        assert call["id"] == "tu1" and json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def test_an_unknown_output_shape_is_an_error_not_a_guess(tmp_path: Path) -> None:
    src = write(tmp_path / "in.jsonl.out", [{"recordId": "r1", "modelInput": {}, "modelOutput": {"embedding": [1]}}])
    with llmfiles.Client(environ={}) as c:
        result = c.convert(src, to="openai-from-bedrock", output=tmp_path / "o.jsonl")
    assert errors_at(result) == [(1, "unknown_output", "modelOutput")] and not (tmp_path / "o.jsonl").exists()


def test_convert_true_on_a_batch_upload_is_bedrock_batch(client: llmfiles.Client, tmp_path: Path, s3: Any) -> None:
    src = write(tmp_path / "batch.jsonl", requests(3, kinds=TEXT_ONLY))
    fo = client.upload(src, purpose="batch", convert=True, model=NOVA)
    stored = s3.get_object(Bucket=fo.id.split("/")[2], Key=fo.id.split("/", 3)[3])["Body"].read()
    assert json.loads(stored.splitlines()[0])["modelInput"]["schemaVersion"] == "messages-v1"
