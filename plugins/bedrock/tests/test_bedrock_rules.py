"""Bedrock's record rules as the documentation states them: Claude records with Messages API blocks, the limits of
each base model (the ``model`` setting), Nova's optional schemaVersion; and property tests of the checkers and
conversions on arbitrary records (never an exception, always problems that say where)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmfiles
from llmfiles.cli import main
from llmfiles.models import Problem
from llmfiles_bedrock import formats

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
CLAUDE = {
    "system": "Be terse.",
    "messages": [{"role": "user", "content": "2 + 2?"}, {"role": "assistant", "content": "4"}],
}
#: a Claude record written with the Messages API's content blocks (what the peers' corpus found taken for OpenAI chat)
BLOCKS = {
    "system": "Be terse.",
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "2 + "}, {"type": "text", "text": "2?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "4"}]},
    ],
}
NOVA = {
    "schemaVersion": "bedrock-conversation-2024",
    "messages": [{"role": "user", "content": [{"text": "2 + 2?"}]}, {"role": "assistant", "content": [{"text": "4"}]}],
}
PC = {"prompt": "2 + 2?", "completion": "4"}


def write(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def run(records: list[Any], model: str | None = None, *, remind: bool = True) -> list[Problem]:
    checker = formats.FineTuneChecker(model, remind=remind)
    out: list[Problem] = []
    for i, record in enumerate(records, 1):
        out.extend(checker.check(i, record))
    out.extend(checker.finish())
    return out


def codes(problems: list[Problem], severity: str | None = None) -> list[str]:
    return [p.code for p in problems if severity is None or p.severity == severity]


# --- 1. Claude records with Messages API blocks ----------------------------------------------------------------


def test_a_top_level_system_makes_a_claude_record_whatever_its_messages() -> None:
    assert formats.detect(BLOCKS) == "claude" and formats.detect(CLAUDE) == "claude"
    assert formats.detect({**BLOCKS, "system": [{"type": "text", "text": "s"}]}) == "claude"
    assert formats.detect({"system": [{"text": "s"}], "messages": NOVA["messages"]}) == "nova"
    # without a top-level system, typed blocks are OpenAI's content parts, as before
    assert formats.detect({"messages": BLOCKS["messages"]}) == formats.OPENAI_CHAT


def test_claude_content_must_be_strings_and_the_message_says_how_to_fix_it() -> None:
    problems = run([BLOCKS] * 2, remind=False)
    assert [(p.line, p.code, p.path) for p in problems] == [
        (1, "bad_content", "messages[0].content"),
        (1, "bad_content", "messages[1].content"),
        (2, "bad_content", "messages[0].content"),
        (2, "bad_content", "messages[1].content"),
    ]
    assert all(p.severity == "error" and "convert --to claude" in p.message for p in problems)
    (system,) = formats.check_claude({**CLAUDE, "system": [{"type": "text", "text": "s"}]})
    assert (system.code, system.path) == ("bad_system", "system") and "string" in system.message
    (other,) = formats.check_claude({**CLAUDE, "system": {"text": "s"}})
    assert other.code == "bad_system" and "Messages API" not in other.message


def test_cli_validate_refuses_a_claude_file_with_blocks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "claude.jsonl", [BLOCKS] * 3)
    assert main(["validate", str(path), "--provider", "bedrock"]) == 2
    out = capsys.readouterr().out
    assert "line 1" in out and "bad_content" in out and "NOT ok" in out


def test_convert_to_claude_keeps_the_system_prompt_and_joins_the_blocks(tmp_path: Path) -> None:
    src = write(tmp_path / "claude.jsonl", [BLOCKS, CLAUDE, {**BLOCKS, "id": 7}])
    result = llmfiles.Client().convert(src, to="claude", output=tmp_path / "out.jsonl")
    assert result.ok, result.as_dict()
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert lines[0] == lines[1] == CLAUDE == {**lines[2]}
    (dropped,) = result.conversion.problems
    assert (dropped.line, dropped.code, dropped.severity, dropped.path) == (3, "dropped", "warning", "id")
    converted, problems = formats.convert_for_upload(BLOCKS, "nova")
    assert problems == [] and converted is not None and converted["system"] == [{"text": "Be terse."}]
    converted, problems = formats.convert_for_upload(BLOCKS, "prompt-completion")
    assert converted == {"prompt": "Be terse.\n\n2 + 2?", "completion": "4"}


def test_a_claude_record_that_cannot_convert_says_so() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}
    record = {"system": "s", "messages": [{"role": "user", "content": [image]}, {"role": "assistant", "content": "a"}]}
    converted, problems = formats.convert_for_upload(record, "claude")
    assert converted is None and [(p.code, p.path) for p in problems] == [("cannot_convert", "messages[0]")]


# --- 2. the base model's limits --------------------------------------------------------------------------------


def test_without_a_model_the_limits_are_not_checked_and_the_warning_says_how(tmp_path: Path) -> None:
    (warning,) = run([CLAUDE] * 3)
    assert (warning.code, warning.severity, warning.line) == ("limits_not_checked", "warning", None)
    assert "model" in warning.message and HAIKU in warning.message
    (unknown,) = run([CLAUDE] * 3, "anthropic.claude-9")
    assert unknown.code == "limits_not_checked" and "anthropic.claude-9" in unknown.message
    assert run([{"messages": [{"role": "system", "content": "s"}, *CLAUDE["messages"]]}] * 2)[-1].code == (
        "openai_chat_format"  # an OpenAI chat file is told to convert; the limits come with its Bedrock format
    )


def test_claude_3_haiku_takes_32_to_10000_records() -> None:
    assert run([CLAUDE] * 32, HAIKU) == []
    (few,) = run([CLAUDE] * 31, HAIKU)
    assert (few.code, few.severity) == ("too_few_records", "error") and "32" in few.message
    (many,) = run([CLAUDE] * 10_001, HAIKU)
    assert many.code == "too_many_records" and "10,000" in many.message
    assert run([CLAUDE] * 40, f"arn:aws:bedrock:us-west-2::foundation-model/{HAIKU}") == []


def test_claude_3_haiku_records_of_more_than_32000_tokens_are_flagged() -> None:
    long = {**CLAUDE, "messages": [CLAUDE["messages"][0], {"role": "assistant", "content": "x " * 80_000}]}
    problems = run([CLAUDE] * 31 + [long], HAIKU)
    (p,) = problems
    assert (p.line, p.code, p.severity) == (32, "too_many_tokens", "warning") and "32,000" in p.message


def test_titan_and_llama_count_characters_exactly_and_tokens_by_estimate() -> None:
    titan = "amazon.titan-text-express-v1"
    assert run([PC] * 5, titan) == []
    (chars,) = run([{"prompt": "p" * 24_577, "completion": "c"}], titan)
    assert (chars.code, chars.severity) == ("too_many_characters", "error") and "24,576" in chars.message
    (tokens,) = run([{"prompt": "word " * 3_800, "completion": "c"}], titan)
    assert (tokens.code, tokens.severity) == ("too_many_tokens", "warning")
    llama = "meta.llama3-1-8b-instruct-v1:0"
    assert codes(run([PC] * 99, llama)) == ["too_few_records"] and run([PC] * 100, llama) == []


def test_nova_takes_8_to_20000_records_and_its_own_format() -> None:
    assert run([NOVA] * 8, "amazon.nova-lite-v1:0") == []
    assert codes(run([NOVA] * 7, "amazon.nova-micro-v1:0")) == ["too_few_records"]
    (wrong,) = run([CLAUDE] * 8, "amazon.nova-pro-v1:0")
    assert wrong.code == "wrong_format_for_model" and "nova" in wrong.message and wrong.severity == "error"


def test_the_model_setting_reaches_the_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "claude.jsonl", [CLAUDE] * 3)
    report = llmfiles.Client("bedrock").validate(path, model=HAIKU)
    assert not report.ok and codes(report.problems) == ["too_few_records"]
    assert main(["validate", str(path), "--provider", "bedrock", "-s", f"model={HAIKU}"]) == 2
    assert "too_few_records" in capsys.readouterr().out
    # converted while checked: the provider's checker holds the converted records to the model's limits
    chat = {"messages": [{"role": "system", "content": "s"}, *CLAUDE["messages"]]}
    path = write(tmp_path / "chat.jsonl", [chat] * 40)
    assert llmfiles.Client("bedrock").validate(path, model=HAIKU, convert="claude").problems == []
    report = llmfiles.Client("bedrock").validate(path, model="amazon.nova-lite-v1:0", convert="claude")
    assert codes(report.problems) == ["wrong_format_for_model"]


# --- 4. Nova without schemaVersion -----------------------------------------------------------------------------


def test_a_nova_record_without_schema_version_is_a_warning() -> None:
    bare = {k: v for k, v in NOVA.items() if k != "schemaVersion"}
    assert formats.detect(bare) == "nova"
    problems = run([bare] * 8, "amazon.nova-lite-v1:0")
    assert {(p.code, p.severity) for p in problems} == {("missing_schema_version", "warning")}


# --- property tests ----------------------------------------------------------------------------------------------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8))
KEYS = st.sampled_from(
    ["system", "messages", "role", "content", "text", "type", "prompt", "completion", "schemaVersion", "x"]
)
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4), max_leaves=12
)
ROLE = st.sampled_from(["user", "assistant", "system", "tool", None, 3])
BLOCK = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=6)}),
    st.fixed_dictionaries({"text": st.text(max_size=6)}),
    JSON,
)
MESSAGE = st.fixed_dictionaries({"role": ROLE, "content": st.one_of(st.text(max_size=6), st.lists(BLOCK, max_size=3))})
SHAPED = st.one_of(
    st.fixed_dictionaries(
        {"messages": st.lists(MESSAGE, max_size=4)},
        optional={"system": st.one_of(st.text(max_size=6), st.lists(BLOCK, max_size=2)), "schemaVersion": JSON},
    ),
    st.fixed_dictionaries({"prompt": JSON, "completion": JSON}),
    st.dictionaries(KEYS, JSON, max_size=4),
)
MODELS = st.sampled_from([None, HAIKU, "amazon.nova-lite-v1:0", "amazon.titan-text-lite-v1", "meta.llama3-2-1b"])


def _well_formed(problems: list[Problem]) -> None:
    for p in problems:
        assert p.severity in ("error", "warning") and p.code and p.message


@given(st.lists(SHAPED, min_size=1, max_size=6), MODELS)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_arbitrary_records_give_problems_never_exceptions(records: list[dict[str, Any]], model: str | None) -> None:
    checker = formats.FineTuneChecker(model)
    for i, record in enumerate(records, 1):
        problems = list(checker.check(i, record))
        _well_formed(problems)
        assert all(p.line == i for p in problems)
        assert formats.detect(record) in (*formats.FORMATS, formats.OPENAI_CHAT, None)
    _well_formed(list(checker.finish()))
    batch = formats.BatchChecker()
    for i, record in enumerate(records, 1):
        _well_formed(list(batch.check(i, record)))


@given(SHAPED, st.sampled_from(formats.FORMATS))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_conversion_never_raises_and_what_it_makes_is_json_in_the_target_format(
    record: dict[str, Any], target: str
) -> None:
    converted, problems = formats.convert_for_upload(record, target)
    _well_formed(problems)
    if converted is None:
        assert formats.errors(problems), "a record that cannot convert says why"
        return
    assert json.loads(json.dumps(converted)) == converted
    assert formats.detect(converted) == target
    # a Claude record's system prompt is kept, never dropped without a word
    system = record.get("system")
    if formats.detect(record) == "claude" and isinstance(system, str) and system:
        if target == "claude":
            assert converted["system"] == system
        elif target == "nova":
            assert converted["system"] == [{"text": system}]
        else:
            assert converted["prompt"].startswith(system + "\n\n")


@given(SHAPED)
@settings(max_examples=200, deadline=None)
def test_a_record_that_passes_the_claude_rules_converts_to_itself(record: dict[str, Any]) -> None:
    if formats.detect(record) != "claude" or formats.errors(formats.check_claude(record)):
        return
    converted, problems = formats.convert_for_upload(record, "claude")
    assert converted == record and problems == []


# --- 5. a BOM ------------------------------------------------------------------------------------------------


def test_a_bom_is_a_warning_but_not_when_the_file_is_converted(tmp_path: Path) -> None:
    path = tmp_path / "pc.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"".join(json.dumps(PC).encode() + b"\n" for _ in range(3)))
    report = llmfiles.Client("bedrock").validate(path, model="amazon.titan-text-lite-v1")
    assert report.ok and [(p.code, p.severity) for p in report.problems] == [("bom", "warning")]
    assert "Amazon Bedrock" in report.problems[0].message
    batch = tmp_path / "batch.jsonl"
    batch.write_bytes(b"\xef\xbb\xbf" + json.dumps({"recordId": "1", "modelInput": {}}).encode() + b"\n")
    # one record: below the 100 a Bedrock batch job takes (a warning, the quota is per model)
    codes = [p.code for p in llmfiles.Client("bedrock").validate(batch, purpose="batch").problems]
    assert codes == ["bom", "too_few_records"]
    # converted, the uploaded file is the converted one, written without a BOM
    chat = tmp_path / "chat.jsonl"
    record = {"messages": [{"role": "system", "content": "s"}, *CLAUDE["messages"]]}
    chat.write_bytes(b"\xef\xbb\xbf" + b"".join(json.dumps(record).encode() + b"\n" for _ in range(40)))
    assert llmfiles.Client("bedrock").validate(chat, model=HAIKU, convert="claude").problems == []


# --- the dry run ---------------------------------------------------------------------------------------------


def test_a_dry_run_without_credentials_or_bucket_lists_both_and_the_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in (
        "LLMFILES_S3_BUCKET",
        "AWS_S3_BUCKET_NAME",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    path = write(tmp_path / "claude.jsonl", [BLOCKS] * 3)
    plan = llmfiles.Client("bedrock").describe_upload(path, purpose="fine-tune", aws_region="us-east-1")
    assert plan["ok"] is False and plan["credentials"] == "missing"
    problems = "\n".join(plan["problems"])
    assert "no AWS credentials" in problems and "needs a bucket" in problems and "bad_content" in problems
    assert main(["upload", str(path), "-p", "bedrock", "--dry-run", "-s", "aws_region=us-east-1"]) == 2
    out = capsys.readouterr().out
    assert "REFUSED" in out and "needs a bucket" in out and "FAILED" in out


def test_convert_problems_name_the_input_whose_lines_they_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    two_users = {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}
    good = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    src = write(tmp_path / "in.jsonl", [good, two_users])
    out = tmp_path / "out.jsonl"
    assert main(["convert", str(src), "--to", "claude", "-o", str(out)]) == 2
    printed = capsys.readouterr().out.splitlines()
    problems = [line for line in printed if "line 2" in line]
    assert problems and all(line.startswith(f"{src} (converted to claude): line 2") for line in problems)
    assert not any(line.startswith(f"{out}: line") for line in printed)
    assert f"the records of {src}, converted, break" in printed[-1] and not out.exists()


def test_a_dry_run_asks_no_server_for_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loopback_only: None
) -> None:
    # botocore's chain would ask the EC2 instance metadata service (169.254.169.254) and the container credentials
    # endpoint: a dry run sends nothing, so it says they were not asked (loopback_only fails the test if they were)
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED")
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://169.254.170.23/v1/credentials")
    path = write(tmp_path / "claude.jsonl", [BLOCKS] * 3)
    plan = llmfiles.Client("bedrock").describe_upload(
        path, purpose="fine-tune", aws_region="us-east-1", bucket="my-bucket"
    )
    assert plan["credentials"] == (
        "botocore credential chain: container credentials, EC2 instance metadata (not asked in a dry run, which "
        "sends nothing)"
    )
    assert plan["destination"].startswith("PUT https://my-bucket.s3.us-east-1.amazonaws.com/llmfiles/fine-tune/")


def test_a_dry_run_reads_the_keys_of_the_profile_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED")  # found before the links that ask a server
    credentials = tmp_path / "aws-credentials"
    credentials.write_text("[default]\naws_access_key_id = AKIAEXAMPLEFROMFILE\naws_secret_access_key = s3cr3t\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    path = write(tmp_path / "claude.jsonl", [BLOCKS] * 3)
    plan = llmfiles.Client("bedrock").describe_upload(
        path, purpose="fine-tune", aws_region="us-east-1", bucket="my-bucket"
    )
    assert plan["credentials"] == "profile 'default' in the shared credentials file (botocore credential chain)"
