"""Mistral's fine-tuning and batch rules: a corpus of bad files (one per rule, each with its exact code, line and
path), good files copied from Mistral's pages (the text, function-calling and vision formats; the batch page's
examples), the places where Mistral's rules are not OpenAI's, every rule citing its page, the wiring into upload and
``llmfiles validate``, and property tests that feed arbitrary JSON to the checkers."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmfiles
from llmfiles.cli import main
from llmfiles.errors import ValidationError
from llmfiles.sources import FileObjSource
from llmfiles.validate import FileFacts, check_jsonl
from llmfiles_mistral import checks
from servers.mistral_like import MistralLikeServer

CORPUS = Path(__file__).parent / "corpus"
EXPECTED: dict[str, dict[str, Any]] = json.loads((CORPUS / "expected.json").read_text())


def validate(path: Path, purpose: str) -> llmfiles.validate.Report:
    return llmfiles.Client("mistral", environ={}).validate(path, purpose=purpose, max_problems=1000)


def codes(purpose: str, *records: Any) -> list[tuple[str, str]]:
    data = b"".join(json.dumps(r).encode() + b"\n" for r in records)
    checker = checks.FineTuneChecker() if purpose == "fine-tune" else checks.BatchChecker()
    report = check_jsonl(FileObjSource(io.BytesIO(data), "t.jsonl", 0, len(data)), checker=checker, max_problems=100)
    return [(p.code, p.path) for p in report.problems]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_bad_file_has_exactly_its_problem(name: str) -> None:
    want = EXPECTED[name]
    report = validate(CORPUS / name, name.split("/", 1)[0])
    found = [(p.line, p.code, p.path, p.severity) for p in report.problems]
    assert found == [(want["line"], want["code"], want["path"], want["severity"])], found
    assert report.ok is (want["severity"] == "warning")
    assert report.problems[0].message.endswith(f"(see {checks.RULES[want['code']].doc})")


def test_the_corpus_has_a_bad_file_for_every_rule() -> None:
    in_corpus = {e["code"] for e in EXPECTED.values()}
    assert in_corpus == set(checks.RULES) - {"file_too_large", "too_many_requests", "bom"}  # tested below


def test_every_rule_cites_mistrals_documentation() -> None:
    for code, rule in checks.RULES.items():
        assert rule.code == code and rule.says, rule
        if code == "bom":  # Mistral's pages say nothing of a BOM: the JSON standard is the source
            assert rule.doc == "https://www.rfc-editor.org/rfc/rfc8259#section-8.1"
            continue
        assert rule.doc.startswith(("https://docs.mistral.ai/", "https://github.com/mistralai/platform-docs-public/"))
    assert checks.RULES["content_with_tool_calls"].doc == checks.FT_DOC
    assert checks.RULES["missing_custom_id"].doc == "https://docs.mistral.ai/studio/batch-processing"


@pytest.mark.parametrize("name", sorted(str(p.relative_to(CORPUS)) for p in CORPUS.glob("*/good/*.jsonl")))
def test_the_documentations_own_examples_pass(name: str) -> None:
    report = validate(CORPUS / name, name.split("/", 1)[0])
    assert report.ok and report.problems == [], report.problems


def test_where_mistrals_rules_are_not_openais() -> None:
    """An assistant turn with both text and tool calls, OpenAI-style call ids and the 'function' role are fine for
    OpenAI's checks and refused by Mistral's documentation; a batch line in OpenAI's shape gets Mistral's note."""
    openai_style = {
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": "Let me look.",
                "tool_calls": [{"id": "call_abc123", "type": "function", "function": {"name": "w", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": "call_abc123", "content": "21C"},
            {"role": "assistant", "content": "21C."},
        ],
        "tools": [{"type": "function", "function": {"name": "w"}}],
    }
    assert codes("fine-tune", openai_style) == [
        ("content_with_tool_calls", "messages[1].content"),
        ("bad_tool_call_id", "messages[1].tool_calls[0].id"),
        ("bad_tool_call_id", "messages[2].tool_call_id"),
    ]
    line = {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m", "messages": []}}
    found = codes("batch", line)
    assert ("openai_batch_field", "method") in found and ("openai_batch_field", "url") in found


def test_a_call_that_ends_the_conversation_is_fine_and_a_tool_answer_that_does_is_not() -> None:
    call = {"id": "TX92Jm8Zi", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    tools = [{"type": "function", "function": {"name": "f"}}]
    user = {"role": "user", "content": "q"}
    ends_with_call = {"messages": [user, {"role": "assistant", "tool_calls": [call]}], "tools": tools}
    assert codes("fine-tune", ends_with_call) == []
    tool = {"role": "tool", "content": "{}", "tool_call_id": "TX92Jm8Zi"}
    ends_with_tool = {"messages": [user, {"role": "assistant", "tool_calls": [call]}, tool], "tools": tools}
    assert codes("fine-tune", ends_with_tool) == [
        ("tool_call_not_answered", "messages[1].tool_calls"),
        ("last_not_assistant", "messages[2].role"),
    ]


@pytest.mark.parametrize("purpose", ["fine-tune", "batch"])
def test_a_byte_order_mark_is_a_warning_and_the_file_is_still_checked(purpose: str, tmp_path: Path) -> None:
    record: dict[str, Any] = (
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
        if purpose == "fine-tune"
        else {"custom_id": "0", "body": {"max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}]}}
    )
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(record).encode() + b"\n")
    report = validate(path, purpose)
    assert report.ok and [(p.code, p.severity, p.line) for p in report.problems] == [("bom", "warning", None)]
    assert "RFC 8259" in report.problems[0].message and "Mistral" in report.problems[0].message
    path.write_bytes(json.dumps(record).encode() + b"\n")
    assert validate(path, purpose).problems == []
    broken = {"messages": [{"role": "function", "content": "x"}]} if purpose == "fine-tune" else {"body": {}}
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(broken).encode() + b"\n")
    assert "bom" in {p.code for p in validate(path, purpose).problems} and not validate(path, purpose).ok


def test_size_and_count_limits() -> None:
    big = FileFacts(display="t.jsonl", size=checks.MAX_FILE_BYTES + 1, has_bom=False)
    [p] = checks.FineTuneChecker().start(big)
    assert p.code == "file_too_large" and "512,000,000" in p.message and p.message.endswith(f"(see {checks.FT_FAQ})")
    batch = checks.BatchChecker()
    batch.requests = checks.MAX_REQUESTS
    assert batch.finish() == []
    batch.requests += 1
    [p] = batch.finish()
    assert p.code == "too_many_requests" and "1,000,000" in p.message


def test_statistics(tmp_path: Path) -> None:
    report = validate(CORPUS / "fine-tune" / "good" / "function-calling.jsonl", "fine-tune")
    assert report.examples is not None and report.examples.roles == {"system": 1, "user": 2, "assistant": 3, "tool": 1}
    report = validate(CORPUS / "batch" / "good" / "batch-page-example.jsonl", "batch")
    assert report.examples is not None and report.examples.unit == "requests" and report.examples.examples == 2


# --- wiring -------------------------------------------------------------------------------------------------------


def test_a_bad_file_is_refused_before_anything_is_created() -> None:
    with MistralLikeServer(api_key="k" * 20) as server:
        with llmfiles.Client("mistral", environ={}, api_key="k" * 20, api_base=server.url) as c:
            with pytest.raises(ValidationError, match="content_with_tool_calls"):
                c.upload(CORPUS / "fine-tune" / "bad" / "content_with_tool_calls.jsonl", purpose="fine-tune")
            with pytest.raises(ValidationError, match="duplicate_custom_id"):
                c.upload(CORPUS / "batch" / "bad" / "duplicate_custom_id.jsonl", purpose="batch")
        assert server.files == {}


def test_llmfiles_validate_uses_the_rules(capsys: pytest.CaptureFixture[str]) -> None:
    bad = CORPUS / "fine-tune" / "bad" / "bad_tool_call_id.jsonl"
    assert main(["validate", str(bad), "-p", "mistral", "--purpose", "fine-tune"]) == 2
    assert "bad_tool_call_id" in capsys.readouterr().out
    good = CORPUS / "batch" / "good" / "chat-without-model.jsonl"
    assert main(["validate", str(good), "-p", "mistral", "--purpose", "batch"]) == 0


def test_the_readme_lists_every_rule_with_its_source() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    table = readme.split("## Content checks", 1)[1].split("\n## ", 1)[0]
    for code, rule in checks.RULES.items():
        row = next((line for line in table.splitlines() if f"`{code}`" in line), None)
        assert row is not None, f"{code} is not in the README's table of rules"
        assert rule.severity in row and rule.doc in row, row


# --- whatever the JSON, problems and never an exception -----------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
keys = st.sampled_from(
    ["messages", "role", "content", "tool_calls", "tool_call_id", "id", "function", "custom_id", "body"]
)
records = st.dictionaries(keys, json_values, max_size=5) | st.fixed_dictionaries(
    {"messages": st.lists(st.dictionaries(keys, json_values, max_size=4), max_size=5)}
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(records, min_size=1, max_size=5))
def test_the_checkers_never_raise(lines: list[dict[str, Any]]) -> None:
    for checker in (checks.FineTuneChecker(), checks.BatchChecker()):
        for i, record in enumerate(lines, 1):
            for p in checker.check(i, record):
                assert p.code in checks.RULES and p.severity == checks.RULES[p.code].severity
        checker.finish()
