"""The Gemini formats: OpenAI chat → Gemini conversion of one record, the record checks behind
``VertexProvider.record_checker``, ``validate(convert="gemini")`` through the core, and converted uploads end to end
(API and CLI): the core converts the file (``ProviderInfo.conversions``), then uploads it with the checks."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vertex_testlib import BUCKET, TOKEN, expected_conversion, provider

import llmfiles
from llmfiles.cli import main
from llmfiles.errors import FileChanged, InvalidSetting, ValidationError
from llmfiles.models import Settings
from llmfiles_vertex import chat_to_gemini
from llmfiles_vertex.gemini import BatchChecker, ConversionError, TuningChecker
from servers.fault_proxy import FaultProxy

CHAT = {
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
        {"role": "assistant", "content": "21 °C.", "weight": 1},
    ],
    "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
}


def gemini_record(*turns: tuple[str, str]) -> dict[str, Any]:
    return {"contents": [{"role": r, "parts": [{"text": t}]} for r, t in turns]}


def write_jsonl(path: Path, records: list[Any], *, raw_lines: list[bytes] = ()) -> Path:  # type: ignore[assignment]
    with open(path, "wb") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False).encode() + b"\n")
        for line in raw_lines:
            fh.write(line)
    return path


# --- conversion of one record -------------------------------------------------------------------------------


def test_chat_to_gemini() -> None:
    assert chat_to_gemini(CHAT) == {
        "systemInstruction": {"role": "system", "parts": [{"text": "You are terse."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "weather", "args": {"city": "Paris"}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "weather", "response": {"temp_c": 21}}}]},
            {"role": "model", "parts": [{"text": "21 °C."}]},
        ],
        "tools": [{"functionDeclarations": [{"name": "weather", "parameters": {"type": "object"}}]}],
    }


def test_turns_of_one_role_are_merged_and_content_parts_converted() -> None:
    record = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Look:"}]},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "gs://b/cat.png"}}]},
            {"role": "assistant", "content": "A cat."},
        ]
    }
    assert chat_to_gemini(record)["contents"] == [
        {
            "role": "user",
            "parts": [{"text": "Look:"}, {"fileData": {"mimeType": "image/png", "fileUri": "gs://b/cat.png"}}],
        },
        {"role": "model", "parts": [{"text": "A cat."}]},
    ]


@pytest.mark.parametrize(
    ("messages", "path", "words"),
    [
        (
            [{"role": "user", "content": "a"}, {"role": "system", "content": "s"}],
            "messages[1].role",
            "systemInstruction",
        ),
        ([{"role": "narrator", "content": "a"}], "messages[0].role", "no Gemini equivalent"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}],
            "messages[0].content[0].image_url",
            "gs://",
        ),
        (
            [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{"}}]}],
            "messages[0].tool_calls[0].function.arguments",
            "JSON",
        ),
        (
            [{"role": "tool", "tool_call_id": "nope", "content": "x"}],
            "messages[0].tool_call_id",
            "no earlier tool call",
        ),
        ([{"role": "user", "content": ""}], "messages[0].content", "no content"),
    ],
)
def test_what_cannot_be_converted_says_where(messages: list[Any], path: str, words: str) -> None:
    with pytest.raises(ConversionError) as info:
        chat_to_gemini({"messages": messages})
    assert info.value.path == path and words in info.value.message


# --- checks -------------------------------------------------------------------------------------------------


def problems(checker: Any, records: list[Any]) -> list[tuple[int | None, str, str, str]]:
    out = []
    for i, r in enumerate(records, 1):
        out += [(p.line, p.code, p.path, p.severity) for p in checker.check(i, r)]
    out += [(p.line, p.code, p.path, p.severity) for p in checker.finish()]
    return out


def test_gemini_records_are_checked() -> None:
    good = gemini_record(("user", "hi"), ("model", "hello"))
    assert problems(TuningChecker(), [good, {**good, "systemInstruction": {"parts": [{"text": "be nice"}]}}]) == []
    assert problems(
        TuningChecker(),
        [
            gemini_record(("user", "hi"), ("assistant", "hello")),
            gemini_record(("model", "hi"), ("model", "hello")),
            gemini_record(("user", "hi")),
            {"contents": [{"role": "user", "parts": [{"text": "a", "fileData": {}}]}, {"role": "model", "parts": []}]},
            {**good, "extra": 1},
            {"contents": []},
        ],
    ) == [
        (1, "bad_role", "contents[1].role", "error"),
        (2, "first_turn_not_user", "contents[0].role", "error"),
        (2, "turns_not_alternating", "contents[1].role", "error"),
        (3, "last_turn_not_model", "contents[0].role", "error"),
        (4, "bad_part", "contents[0].parts[0]", "error"),
        (4, "no_parts", "contents[1].parts", "error"),
        (5, "unknown_field", "extra", "warning"),
        (6, "no_contents", "contents", "error"),
    ]


def test_user_and_model_turns_alternate_in_a_tuning_example() -> None:
    # "Prepare supervised fine-tuning data for Gemini models": the user and model roles repeat in an alternating
    # manner; the example starts with the user and ends with the model's answer
    two_users = gemini_record(("user", "hi"), ("user", "again"), ("model", "hello"))
    two_models = gemini_record(("user", "hi"), ("model", "a"), ("model", "b"))
    tool_round = {
        "contents": [
            {"role": "user", "parts": [{"text": "weather?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "w", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "w", "response": {"t": 20}}}]},
            {"role": "model", "parts": [{"text": "20 degrees"}]},
        ]
    }
    assert problems(TuningChecker(), [two_users, two_models, tool_round]) == [
        (1, "turns_not_alternating", "contents[1].role", "error"),
        (2, "turns_not_alternating", "contents[2].role", "error"),
    ]
    (p,) = TuningChecker().check(1, two_users)
    assert "merge" in p.message or "one turn" in p.message
    # a batch request is a prompt, not an example: it may end with the user and is not held to the turn order
    assert problems(BatchChecker(), [{"request": two_users}]) == []


def test_a_gemini_1_messages_file_is_refused_as_the_retired_format() -> None:
    old = {
        "messages": [
            {"role": "system", "content": "Be nice."},
            {"role": "user", "content": "hi"},
            {"role": "model", "content": "hello"},
        ]
    }
    checker = TuningChecker()
    (p,) = checker.check(1, old)
    assert (p.code, p.path, p.severity) == ("retired_format", "messages[2].role", "error")
    assert "Gemini 1.0" in p.message and "retired" in p.message and "contents" in p.message


def test_token_estimates_count_the_text_not_the_json_around_it() -> None:
    checker = TuningChecker()
    checker.check(1, gemini_record(("user", "x" * 45), ("model", "y" * 45)))
    assert checker.stats.tokens_total == 20  # 90 characters at 4.5 a token; the JSON around them is not text


def test_chat_files_are_taken_for_open_models_with_a_warning_but_not_mixed() -> None:
    chat = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    assert problems(TuningChecker(), [chat, chat]) == [(None, "chat_format", "", "warning")]
    assert problems(TuningChecker(), [chat, gemini_record(("user", "a"), ("model", "b")), {"prompt": "x"}]) == [
        (2, "mixed_formats", "", "error"),
        (3, "unknown_format", "", "error"),
        (None, "chat_format", "", "warning"),
    ]


def test_with_convert_each_chat_record_is_checked_as_gemini(tmp_path: Path) -> None:
    zero = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "weight": 0}]}
    late_system = {"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "s"}]}
    no_answer = {"messages": [{"role": "user", "content": "a"}]}
    src = write_jsonl(
        tmp_path / "t.jsonl", [CHAT, zero, late_system, no_answer, gemini_record(("user", "x"), ("model", "y"))]
    )
    report = llmfiles.Client().validate(src, provider="vertex_ai", convert="gemini")
    assert [(p.line, p.code, p.path, p.severity) for p in report.problems] == [
        (2, "weight_dropped", "messages[1].weight", "warning"),
        (3, "cannot_convert", "messages[1].role", "error"),
        (4, "last_turn_not_model", "contents[0].role", "error"),  # found after a record that cannot convert
    ]
    assert report.examples is not None and report.examples.formats == {"gemini": 4}  # the converted examples
    assert any("converted to 'gemini'" in n for n in report.notes)


def test_the_provider_has_no_convert_mode_of_its_own() -> None:
    settings = Settings(provider="vertex_ai", values={"convert": "gemini"})
    assert isinstance(provider().record_checker("fine-tune", settings), TuningChecker)
    assert isinstance(provider().record_checker("batch", settings), BatchChecker)
    assert provider().record_checker("assistants", settings) is None


def test_batch_records() -> None:
    ok = {"request": {"contents": [{"role": "user", "parts": [{"text": "Summarize this."}]}]}}
    assert problems(BatchChecker(), [ok]) == []
    assert problems(
        BatchChecker(), [{"contents": []}, {"request": {"contents": [{"role": "bot", "parts": [{"text": "x"}]}]}}]
    ) == [
        (1, "no_request", "request", "error"),
        (2, "bad_role", "request.contents[0].role", "error"),
    ]


def test_validate_reports_lines_as_upload_would(tmp_path: Path) -> None:
    late_system = [
        {"role": "user", "content": "a"},
        {"role": "system", "content": "s"},
        {"role": "assistant", "content": "b"},
    ]
    src = write_jsonl(tmp_path / "t.jsonl", [CHAT, {"messages": late_system}])
    report = llmfiles.Client().validate(src, provider="vertex_ai", convert="gemini")
    assert not report.ok and [(p.line, p.code) for p in report.problems] == [(2, "cannot_convert")]
    assert llmfiles.Client().validate(src, provider="vertex_ai").ok  # as chat format (open models) it is fine


def test_validate_refuses_convert_for_batch_files(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "b.jsonl", [{"request": {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}}])
    with pytest.raises(InvalidSetting, match="fine-tune"):
        llmfiles.Client().validate(src, purpose="batch", provider="vertex_ai", convert="gemini")


# --- converted uploads --------------------------------------------------------------------------------------


@pytest.fixture
def client(vertex_settings: dict[str, Any]) -> Iterator[llmfiles.Client]:
    c = llmfiles.Client("vertex_ai", **vertex_settings)
    yield c
    c.close()


def test_a_converted_small_upload_lands_in_gemini_format(
    client: llmfiles.Client, proxy: FaultProxy, tmp_path: Path
) -> None:
    src = write_jsonl(tmp_path / "train.jsonl", [CHAT] * 20)
    expected = expected_conversion(src.read_bytes())
    fo = client.upload(src, purpose="fine-tune", convert=True)
    assert fo.bytes == len(expected) != src.stat().st_size
    assert fo.raw["metadata"]["llmfiles-format"] == "gemini" and fo.filename == "train.jsonl"
    out = client.download(fo.id, tmp_path / "back.jsonl").read_bytes()
    assert out == expected
    assert json.loads(out.splitlines()[0]) == chat_to_gemini(CHAT)
    [upload] = [r for r in proxy.requests if r.path.startswith("/upload/")]
    assert int(upload.headers["x-proxy-body-length"]) < len(expected) + 1000  # the converted bytes, once


def test_a_converted_upload_of_any_shape_lands_exactly(
    client: llmfiles.Client, proxy: FaultProxy, tmp_path: Path
) -> None:
    """A BOM, Windows line ends, Gemini records among chat ones, non-ASCII text, no final newline; a resumable
    session of several chunks."""
    gem = json.dumps(gemini_record(("user", "déjà"), ("model", "vu")), ensure_ascii=False).encode()
    lines = [b"\xef\xbb\xbf" + json.dumps(CHAT).encode() + b"\r\n", gem + b"\n"]
    lines += [
        json.dumps(
            {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "é" * i + "ok"}]},
            ensure_ascii=False,
        ).encode()
        + b"\n"
        for i in range(3000)
    ]
    lines.append(gem)
    src = tmp_path / "t.jsonl"
    src.write_bytes(b"".join(lines))
    expected = expected_conversion(src.read_bytes())
    assert expected.count(b"\n") == 3003 and b"\r" not in expected and not expected.startswith(b"\xef")
    assert json.loads(expected.split(b"\n")[1]) == json.loads(gem)  # Gemini records kept as they are
    fo = client.upload(src, purpose="fine-tune", convert="gemini", multipart_threshold=256 * 1024, part_size=256 * 1024)
    assert len([r for r in proxy.requests if r.method == "PUT"]) > 2
    assert client.download(fo.id, tmp_path / "back.jsonl").read_bytes() == expected
    assert fo.checksums["md5"] == hashlib.md5(expected).hexdigest()


def test_a_file_edited_while_it_is_converted_is_not_uploaded(
    client: llmfiles.Client, proxy: FaultProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llmfiles.validate.convert as convert_module

    src = write_jsonl(tmp_path / "t.jsonl", [CHAT] * 5)
    real = convert_module.convert_file

    def edit_then_convert(*args: Any, **kw: Any) -> Any:
        src.write_bytes(src.read_bytes().replace(b"terse", b"brief and terse"))
        return real(*args, **kw)

    monkeypatch.setattr(convert_module, "convert_file", edit_then_convert)
    with pytest.raises(FileChanged, match="changed"):
        client.upload(src, purpose="fine-tune", convert="gemini")
    assert proxy.requests == []


def test_a_blank_line_stops_a_converted_upload(client: llmfiles.Client, proxy: FaultProxy, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "t.jsonl", [CHAT], raw_lines=[b"\n", json.dumps(CHAT).encode() + b"\n"])
    with pytest.raises(ValidationError) as info:
        client.upload(src, purpose="fine-tune", convert="gemini")
    assert [(p.line, p.code) for p in info.value.problems] == [(2, "blank_line")] and proxy.requests == []


def test_conversion_errors_name_the_line_even_without_validation(
    client: llmfiles.Client, proxy: FaultProxy, tmp_path: Path
) -> None:
    src = write_jsonl(tmp_path / "t.jsonl", [CHAT], raw_lines=[b"not json\n"])
    with pytest.raises(ValidationError) as info:
        client.upload(src, purpose="fine-tune", convert="gemini", validate=False)
    assert info.value.problems[0].line == 2 and proxy.requests == []


def test_a_gemini_file_uploads_as_it_is(client: llmfiles.Client, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "g.jsonl", [gemini_record(("user", "a"), ("model", "b"))] * 3)
    fo = client.upload(src, purpose="fine-tune")
    assert client.download(fo.id, tmp_path / "back.jsonl").read_bytes() == src.read_bytes()
    assert "llmfiles-format" not in fo.raw["metadata"]


def test_a_file_that_cannot_be_converted_is_refused_before_anything_is_sent(
    client: llmfiles.Client, proxy: FaultProxy, tmp_path: Path
) -> None:
    src = write_jsonl(
        tmp_path / "t.jsonl",
        [CHAT, {"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "s"}]}],
    )
    with pytest.raises(ValidationError) as info:
        client.upload(src, purpose="fine-tune", convert="gemini")
    assert "line 2, messages[1].role" in str(info.value)
    assert proxy.requests == []


def test_the_cli_converts_with_convert_gemini(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], proxy: FaultProxy, prefix: str, tmp_path: Path
) -> None:
    monkeypatch.setenv("GOOGLE_OAUTH_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("LLMFILES_GCS_BUCKET", BUCKET)
    src = write_jsonl(tmp_path / "train.jsonl", [CHAT] * 3)
    common = ["--provider", "vertex", "-s", f"api_base={proxy.url}", "-s", f"prefix={prefix}", "--json"]
    assert main(["upload", str(src), "--convert", "gemini", *common]) == 0
    fo = json.loads(capsys.readouterr().out)
    assert fo["id"].startswith(f"gs://{BUCKET}/{prefix}") and fo["bytes"] == len(expected_conversion(src.read_bytes()))
    assert {r.header("authorization") for r in proxy.requests} == {f"Bearer {TOKEN}"}

    bad = write_jsonl(tmp_path / "bad.jsonl", [{"messages": [{"role": "narrator", "content": "x"}]}])
    assert main(["validate", str(bad), "--convert", "gemini", "--provider", "vertex"]) == 2
    assert "line 1, messages[0].role: error cannot_convert" in capsys.readouterr().out


def test_a_bom_is_a_warning_for_vertex_files(tmp_path: Path) -> None:
    good = gemini_record(("user", "hi"), ("model", "hello"))
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(good).encode() + b"\n")
    report = llmfiles.Client().validate(path, provider="vertex_ai")
    assert report.ok and [(p.line, p.code, p.severity) for p in report.problems] == [(None, "bom", "warning")]
    batch = tmp_path / "b.jsonl"
    batch.write_bytes(b"\xef\xbb\xbf" + json.dumps({"request": {"contents": good["contents"][:1]}}).encode() + b"\n")
    assert [p.code for p in llmfiles.Client().validate(batch, provider="vertex_ai", purpose="batch").problems] == [
        "bom"
    ]
    converted = llmfiles.Client().validate(path, provider="vertex_ai", convert="gemini")
    assert converted.problems == []  # the converted file is written without the BOM


def test_a_dry_run_without_credentials_or_bucket_lists_both_and_the_content(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write_jsonl(tmp_path / "t.jsonl", [gemini_record(("user", "a"), ("user", "b"), ("model", "c"))])
    plan = llmfiles.Client().describe_upload(bad, provider="vertex_ai", purpose="fine-tune")
    assert plan["ok"] is False and plan["credentials"] == "missing"
    problems = "\n".join(plan["problems"])
    assert "no Google credentials" in problems and "needs a Cloud Storage bucket" in problems
    assert "turns_not_alternating" in problems
    assert main(["upload", str(bad), "-p", "vertex_ai", "--dry-run"]) == 2
    assert "needs a Cloud Storage bucket" in capsys.readouterr().out
