"""Bedrock's fine-tuning formats: each one's own rules, conversion from OpenAI chat records, and conversion while
uploading (the core converts into a file of its own with these conversions, checks it by the target's rules, and
uploads that, in one PutObject or in parts)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import BUCKET

import llmfiles
from llmfiles.cli import main
from llmfiles_bedrock import formats
from servers.fault_proxy import FaultProxy

MiB = 1024 * 1024

CHAT = {
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "4."},
    ]
}
MULTI_TURN = {
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": " there"}]},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Bye.", "weight": 1},
    ]
}


def codes(problems: Any) -> list[str]:
    return [p.code for p in problems if p.severity == "error"]


# --- conversion of one record --------------------------------------------------------------------------------


def test_openai_chat_to_claude() -> None:
    converted, problems = formats.convert_record(CHAT, "claude")
    assert problems == []
    assert converted == {
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4."}],
    }
    converted, _ = formats.convert_record(MULTI_TURN, "claude")
    assert converted is not None and [m["content"] for m in converted["messages"]] == [
        "Hi there",
        "Hello.",
        "Bye",
        "Bye.",
    ]
    assert "system" not in converted


def test_openai_chat_to_nova() -> None:
    converted, problems = formats.convert_record(CHAT, "nova")
    assert problems == []
    assert converted == {
        "schemaVersion": "bedrock-conversation-2024",
        "system": [{"text": "You are terse."}],
        "messages": [
            {"role": "user", "content": [{"text": "What is 2 + 2?"}]},
            {"role": "assistant", "content": [{"text": "4."}]},
        ],
    }


def test_openai_chat_to_prompt_completion() -> None:
    converted, problems = formats.convert_record(CHAT, "prompt-completion")
    assert problems == []
    assert converted == {"prompt": "You are terse.\n\nWhat is 2 + 2?", "completion": "4."}
    converted, problems = formats.convert_record(MULTI_TURN, "prompt-completion")
    assert converted is None and codes(problems) == ["cannot_convert"]
    assert "user → assistant → user → assistant" in problems[0].message


@pytest.mark.parametrize(
    ("record", "code"),
    [
        ({"messages": []}, "missing_messages"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "cannot_convert"),
        ({"messages": [{"role": "assistant", "tool_calls": [{"id": "1"}], "content": None}]}, "cannot_convert"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}, "cannot_convert"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "bad_role"),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "late"}]},
            "cannot_convert",
        ),
    ],
)
def test_what_cannot_be_converted(record: dict[str, Any], code: str) -> None:
    converted, problems = formats.convert_record(record, "claude")
    assert converted is None and code in codes(problems)


def test_each_target_is_checked_by_its_own_rules() -> None:
    # the conversion works, but the result breaks the target's rules: they are reported as such
    two_users = {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}
    converted, problems = formats.convert_record(two_users, "claude")
    assert converted is None
    assert set(codes(problems)) == {"turns_not_alternating", "last_not_assistant"}
    assert all(p.message.startswith("after conversion to claude") for p in problems)
    reserved = {"messages": [{"role": "user", "content": "User: hi"}, {"role": "assistant", "content": "ok"}]}
    assert formats.convert_record(reserved, "claude")[0] is not None  # only Nova reserves "User:"
    converted, problems = formats.convert_record(reserved, "nova")
    assert converted is None and codes(problems) == ["reserved_keyword"]
    _, problems = formats.convert_record({**CHAT, "tools": [{"type": "function"}]}, "claude")
    assert [p.code for p in problems] == ["dropped"] and problems[0].severity == "warning"


def test_claude_rules() -> None:
    ok = {"system": "s", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    assert formats.check_claude(ok) == []
    assert codes(formats.check_claude({**ok, "id": 1})) == ["extra_keys"]
    assert codes(formats.check_claude({"messages": [{"role": "assistant", "content": "a"}]})) == ["too_few_messages"]
    first_assistant = {"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]}
    assert codes(formats.check_claude(first_assistant)) == ["first_not_user", "last_not_assistant"]
    system_inside = {"messages": [{"role": "system", "content": "s"}, *ok["messages"]]}
    (problem,) = formats.check_claude(system_inside)
    assert problem.code == "bad_role" and "top-level 'system'" in problem.message
    empty = {"messages": [{"role": "user", "content": " "}, {"role": "assistant", "content": "a"}]}
    assert codes(formats.check_claude(empty)) == ["empty_content"]


def test_nova_rules() -> None:
    ok, _ = formats.convert_record(CHAT, "nova")
    assert ok is not None and formats.check_nova(ok) == []
    # the user guide takes any string as schemaVersion and does not call it required: its absence is a warning
    (missing,) = formats.check_nova({k: v for k, v in ok.items() if k != "schemaVersion"})
    assert (missing.code, missing.severity) == ("missing_schema_version", "warning")
    assert codes(formats.check_nova({**ok, "schemaVersion": 2024})) == ["bad_schema_version"]
    for word in formats.NOVA_RESERVED:
        bad = {**ok, "system": [{"text": f"Be nice. {word}"}]}
        assert codes(formats.check_nova(bad)) == ["reserved_keyword"]
    in_answer = json.loads(json.dumps(ok))
    in_answer["messages"][1]["content"][0]["text"] = "Bot: 4"
    assert codes(formats.check_nova(in_answer)) == [] and formats.check_nova(in_answer)[0].severity == "warning"
    image = json.loads(json.dumps(ok))
    image["messages"][0]["content"].append({"image": {"format": "png", "source": {"s3Location": {"uri": "s3://b/i"}}}})
    assert formats.check_nova(image) == []
    assert codes(formats.check_nova({**ok, "messages": [{"role": "user", "content": "text"}]})) == [
        "bad_content",
        "too_few_messages",
    ]


def test_prompt_completion_rules() -> None:
    assert formats.check_prompt_completion({"prompt": "p", "completion": "c"}) == []
    assert codes(formats.check_prompt_completion({"prompt": "p", "completion": ""})) == ["missing_completion"]
    assert codes(formats.check_prompt_completion({"prompt": 1, "completion": "c"})) == ["missing_prompt"]
    (extra,) = formats.check_prompt_completion({"prompt": "p", "completion": "c", "x": 1})
    assert extra.severity == "warning"


def test_the_conversions_are_declared_claude_first() -> None:
    client = llmfiles.Client()
    info = client.provider_info("bedrock")
    # claude first: convert=True on a fine-tune file; bedrock-batch: convert=True on a batch file
    assert info.conversions == (*formats.FORMATS, "bedrock-batch")
    assert formats.FORMATS == ("claude", "nova", "prompt-completion")
    assert not [s for s in info.settings if s.name == "convert"]  # the core's setting, not shadowed
    assert set(info.conversions) <= set(client.converters())


# --- checkers for files --------------------------------------------------------------------------------------


def check(lines: list[Any], model: str | None = None, *, remind: bool = False) -> list[Any]:
    checker = formats.FineTuneChecker(model, remind=remind)
    out = []
    for i, rec in enumerate(lines, 1):
        out.extend(checker.check(i, rec))
    out.extend(checker.finish())
    return out


def test_a_file_is_checked_in_the_format_it_is_in() -> None:
    pc = {"prompt": "p", "completion": "c"}
    claude = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    nova, _ = formats.convert_record(CHAT, "nova")
    assert check([pc, pc]) == [] and check([claude, claude]) == [] and check([nova, nova]) == []
    (mixed,) = check([pc, claude])
    assert (mixed.line, mixed.code) == (2, "mixed_formats")
    (unknown,) = check([{"text": "x"}])
    assert unknown.code == "unknown_format"
    (warning,) = check([CHAT, CHAT])  # OpenAI chat: accepted, with a warning naming convert
    assert warning.severity == "warning" and "convert" in warning.message


def test_with_convert_records_must_be_convertible_chat(tmp_path: Path) -> None:
    client = llmfiles.Client("bedrock")
    ok = write(tmp_path / "ok.jsonl", [CHAT, MULTI_TURN])
    report = client.validate(ok, convert="claude")
    assert report.ok and report.path == str(ok)
    assert [p.code for p in report.problems] == ["limits_not_checked"]  # no model setting: said once
    assert "converted to 'claude'" in " ".join(report.notes)
    mixed = write(tmp_path / "mixed.jsonl", [CHAT, {"prompt": "p", "completion": "c"}, MULTI_TURN])
    report = client.validate(mixed, convert="prompt-completion")
    assert [(p.line, p.code) for p in report.problems if p.severity == "error"] == [
        (2, "not_openai_chat"),
        (3, "cannot_convert"),
    ]
    assert "already in prompt-completion format" in report.problems[0].message and report.path == str(mixed)
    # the converted records are checked by the target's rules, at the lines of the file
    two_users = {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}
    bad = write(tmp_path / "bad.jsonl", [CHAT, two_users])
    report = client.validate(bad, convert="claude")
    assert {(p.line, p.code) for p in report.problems if p.severity == "error"} == {
        (2, "turns_not_alternating"),
        (2, "last_not_assistant"),
    }
    with pytest.raises(llmfiles.ConfigurationError, match="fine-tune"):
        client.validate(ok, purpose="batch", convert="claude")


def test_batch_records() -> None:
    checker = formats.BatchChecker()
    assert list(checker.check(1, {"recordId": "a", "modelInput": {}})) == []
    assert codes(checker.check(2, {"modelInput": []})) == ["missing_model_input"]


# --- converting a file while streaming -----------------------------------------------------------------------


def write(path: Path, records: list[Any], *, bom: bool = False, crlf: bool = False) -> Path:
    nl = "\r\n" if crlf else "\n"
    text = nl.join(json.dumps(r, ensure_ascii=False) for r in records) + nl
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


def dumps(record: Any) -> bytes:
    """One JSONL line as the conversion writes it (UTF-8, no spaces)."""
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def expected(records: list[Any], target: str) -> bytes:
    out = []
    for r in records:
        converted, _ = formats.convert_record(r, target)
        assert converted is not None
        out.append(dumps(converted))
    return b"".join(out)


@pytest.mark.parametrize("target", formats.FORMATS)
def test_llmfiles_convert_reads_bom_crlf_and_unicode(tmp_path: Path, target: str) -> None:
    records = [
        {
            "messages": [
                {"role": "system", "content": "Sÿstem"},
                {"role": "user", "content": f"Q{i} " + "x" * (i % 500)},
                {"role": "assistant", "content": f"A{i} ✓"},
            ]
        }
        for i in range(9000)
    ]
    path = write(tmp_path / "chat.jsonl", records, bom=True, crlf=True)
    result = llmfiles.Client().convert(path, to=target, output=tmp_path / "out.jsonl")
    assert result.ok and result.output is not None and result.output.records == 9000
    assert (tmp_path / "out.jsonl").read_bytes() == expected(records, target)


def test_a_conversion_refuses_what_it_cannot_convert(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(CHAT) + "\n\n" + "not json\n" + json.dumps({"messages": [{"role": "tool"}]}) + "\n")
    result = llmfiles.Client().convert(path, to="claude", output=tmp_path / "out.jsonl")
    assert not result.ok and not (tmp_path / "out.jsonl").exists()
    problems = [(p.line, p.code) for p in result.conversion.problems]
    assert problems == [(2, "blank_line"), (3, "invalid_json"), (4, "cannot_convert")]


# --- converting while uploading ------------------------------------------------------------------------------


@pytest.fixture
def client(bedrock_settings: dict[str, Any]) -> Iterator[llmfiles.Client]:
    c = llmfiles.Client("bedrock", **bedrock_settings)
    yield c
    c.close()


@pytest.mark.parametrize("target", formats.FORMATS)
def test_upload_with_convert(client: llmfiles.Client, tmp_path: Path, proxy: FaultProxy, s3: Any, target: str) -> None:
    records = [CHAT] * 30
    src = write(tmp_path / "chat.jsonl", records)
    fo = client.upload(src, purpose="fine-tune", convert=target)
    want = expected(records, target)
    assert fo.bytes == len(want) and fo.filename == "chat.jsonl"
    (put,) = [r for r in proxy.requests if r.method == "PUT"]
    assert put.header("content-length") == str(len(want)) and "transfer-encoding" not in put.headers
    key = fo.id.split(f"s3://{BUCKET}/")[1]
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == want
    assert client.retrieve(fo.id).raw["format"] == target
    for line in want.splitlines():
        assert formats.RULES[target](json.loads(line)) == []


def test_convert_true_is_claude(client: llmfiles.Client, tmp_path: Path, s3: Any) -> None:
    records = [CHAT, MULTI_TURN] * 5
    src = write(tmp_path / "chat.jsonl", records, bom=True, crlf=True)
    fo = client.upload(src, purpose="fine-tune", convert=True)
    key = fo.id.split(f"s3://{BUCKET}/")[1]
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == expected(records, "claude")
    assert client.retrieve(fo.id).raw["format"] == "claude"
    plain = client.upload(src, purpose="fine-tune")  # without convert: the file as it is, no format named
    assert plain.bytes == src.stat().st_size and client.retrieve(plain.id).raw["format"] is None


def test_large_converted_file_goes_in_checked_parts(
    client: llmfiles.Client, tmp_path: Path, proxy: FaultProxy, s3: Any
) -> None:
    records = [
        {
            "messages": [
                {"role": "user", "content": f"question {i} " + "y" * 300},
                {"role": "assistant", "content": "ok"},
            ]
        }
        for i in range(40_000)
    ]
    src = write(tmp_path / "big-chat.jsonl", records)
    events: list[Any] = []
    fo = client.upload(
        src, purpose="fine-tune", convert="nova", multipart_threshold="5MiB", part_size="5MiB", progress=events.append
    )
    want = expected(records, "nova")
    assert fo.bytes == len(want) > 10 * MiB and events[-1].done == events[-1].total == len(want)
    parts = [r for r in proxy.requests if r.method == "PUT" and "partNumber" in r.query]
    assert len(parts) == -(-len(want) // (5 * MiB))
    start = next(r for r in proxy.requests if r.target.endswith("?uploads"))
    assert start.header("x-amz-meta-format") == "nova"
    key = fo.id.split(f"s3://{BUCKET}/")[1]
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == want


def test_convert_problems_stop_the_upload_before_anything_is_sent(
    client: llmfiles.Client, tmp_path: Path, proxy: FaultProxy
) -> None:
    src = write(tmp_path / "chat.jsonl", [CHAT, {"messages": [{"role": "user", "content": "no answer"}]}])
    with pytest.raises(llmfiles.ValidationError) as info:
        client.upload(src, purpose="fine-tune", convert="claude")
    assert [(p.line, p.code) for p in info.value.problems] == [(2, "too_few_messages")]
    tool = write(tmp_path / "tool.jsonl", [CHAT, {"messages": [{"role": "tool", "content": "x"}]}])
    with pytest.raises(llmfiles.ValidationError) as info:  # validate=False skips the checks, not the conversion
        client.upload(tool, purpose="fine-tune", convert="claude", validate=False)
    assert [(p.line, p.code) for p in info.value.problems] == [(2, "cannot_convert")]
    with pytest.raises(llmfiles.ConfigurationError, match="fine-tune"):
        client.upload(src, purpose="batch", convert="claude")
    assert proxy.requests == []


def test_cli_upload_with_convert(
    bedrock_settings: dict[str, Any], tmp_path: Path, s3: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write(tmp_path / "cli.jsonl", [CHAT] * 3)
    sets = [f"-s{k}={v}" for k, v in bedrock_settings.items()]
    code = main(["upload", str(src), "--provider", "bedrock", "--convert", "claude", "--json", *sets])
    assert code == 0
    fo = json.loads(capsys.readouterr().out)
    key = fo["id"].split(f"s3://{BUCKET}/")[1]
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == expected([CHAT] * 3, "claude")
    code = main(["upload", str(src), "--provider", "bedrock", "--convert", "gemini", *sets])
    assert code == 2 and "claude, nova, prompt-completion" in capsys.readouterr().err


def test_cli_validate_with_convert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok = write(tmp_path / "ok.jsonl", [CHAT, MULTI_TURN])
    assert main(["validate", str(ok), "--provider", "bedrock", "--convert", "nova"]) == 0
    assert main(["validate", str(ok), "--provider", "bedrock", "--convert", "prompt-completion"]) == 2
    assert "line 2" in capsys.readouterr().out


def test_the_bedrock_conversions_are_registered_for_llmfiles_convert(tmp_path: Path) -> None:
    from llmfiles import Client

    src = tmp_path / "chat.jsonl"
    src.write_text(
        "".join(
            json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]})
            + "\n"
            for i in range(12)
        )
    )
    client = Client()
    assert {"claude", "nova", "prompt-completion"} <= set(client.converters())
    result = client.convert(src, to="prompt-completion", output=tmp_path / "out.jsonl")
    assert result.ok
    first = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])
    assert first == {"prompt": "q0", "completion": "a0"}
