"""OpenAI's content checks: a corpus of bad files (one per rule, each with its exact code, line and path) and good
files in the documented formats, token counts, batch limits, wiring into upload and validate, and property tests
that feed arbitrary JSON and bytes to the checkers."""

from __future__ import annotations

import io
import json
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmfiles
from llmfiles.cli import main
from llmfiles.errors import InvalidSetting, ValidationError
from llmfiles.models import Problem
from llmfiles.sources import FileObjSource
from llmfiles.validate import FileFacts, check_jsonl
from llmfiles_openai import checks, tokens
from llmfiles_openai.checks import OPENAI_BATCH, BatchChecker, BatchRules, FineTuneChecker
from servers.openai_like import OpenAILikeServer

CORPUS = Path(__file__).parent / "corpus"
EXPECTED: dict[str, dict[str, Any]] = json.loads((CORPUS / "expected.json").read_text())


def validate(path: Path, purpose: str, **settings: Any) -> llmfiles.validate.Report:
    return llmfiles.Client("openai", environ={}).validate(path, purpose=purpose, max_problems=1000, **settings)


def check(data: bytes, checker: Any) -> llmfiles.validate.Report:
    return check_jsonl(FileObjSource(io.BytesIO(data), "t.jsonl", 0, len(data)), checker=checker, max_problems=1000)


def lines(*records: Any) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def chat(i: int = 0, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}], **extra}


# --- the corpus ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_bad_file_has_exactly_its_problem(name: str) -> None:
    want = EXPECTED[name]
    report = validate(CORPUS / name, name.split("/", maxsplit=1)[0])
    found = [(p.line, p.code, p.path, p.severity) for p in report.problems]
    if want["severity"] == "error":
        errors = [f for f in found if f[3] == "error"]
        assert errors == [(want["line"], want["code"], want["path"], "error")], found
        assert not report.ok
    else:
        assert report.ok and found == [(want["line"], want["code"], want["path"], "warning")], found
    problem = report.problems[0] if want["severity"] == "warning" else next(p for p in report.problems)
    assert len(problem.message) > 20  # says how to fix it


def test_the_corpus_has_a_bad_file_for_every_rule_code() -> None:
    codes = {e["code"] for e in EXPECTED.values()}
    assert {
        "no_messages",
        "bad_role",
        "missing_content",
        "bad_weight",
        "weight_not_assistant",
        "no_assistant_message",
        "mixed_formats",
        "too_few_examples",
        "missing_input",
        "missing_output",
        "missing_completion",
        "missing_custom_id",
        "duplicate_custom_id",
        "bad_method",
        "bad_url",
        "mixed_urls",
        "bad_body",
        "missing_model",
    } <= codes


@pytest.mark.parametrize(
    "name", sorted(str(p.relative_to(CORPUS)) for p in CORPUS.glob("*/good/*.jsonl")), ids=lambda n: n
)
def test_documented_formats_pass_without_errors(name: str) -> None:
    purpose = name.split("/", maxsplit=1)[0]
    report = validate(CORPUS / name, purpose)
    errors = [p.describe() for p in report.problems if p.severity == "error"]
    assert report.ok and not errors, errors
    allowed = {"legacy_format"}  # prompt-completion is the legacy models' format: a warning says so
    assert {p.code for p in report.problems} <= allowed
    assert report.examples is not None and report.examples.examples == report.records


# --- fine-tuning details ------------------------------------------------------------------------------------------


def test_stats_of_a_chat_file() -> None:
    report = validate(CORPUS / "fine-tune/good/openai-chat-weights.jsonl", "fine-tune")
    ex = report.examples
    assert ex is not None
    assert ex.examples == 12 and ex.roles == {"system": 12, "user": 24, "assistant": 24}
    assert ex.messages_summary() == {"min": 5, "mean": 5.0, "max": 5, "total": 60}
    tokens_ = ex.tokens_summary()
    assert tokens_ is not None and 0 < tokens_["min"] <= tokens_["mean"] <= tokens_["max"]
    data = report.as_dict()["stats"]["examples"]
    assert data["tokens_per_example"]["exact"] is False and "estimate" in data["tokens_per_example"]["method"]
    assert data["formats"] == {"chat": 12}


def test_duplicate_examples_are_counted() -> None:
    report = check(lines(*[chat(i % 4) for i in range(12)]), FineTuneChecker(tokenizer="estimate"))
    assert report.ok and report.duplicate_lines == 8
    assert report.duplicate_samples[:2] == [(5, 1), (6, 2)]


def test_token_limit_of_the_model_is_a_warning_marked_as_an_estimate() -> None:
    long = {"messages": [{"role": "user", "content": "word " * 4000}, {"role": "assistant", "content": "ok"}]}
    records = [chat(i) for i in range(10)] + [long]
    report = check(lines(*records), FineTuneChecker(model="gpt-3.5-turbo-0613", tokenizer="estimate"))
    (p,) = report.problems
    assert (p.line, p.code, p.severity) == (11, "too_many_tokens", "warning")
    assert (
        "about" in p.message and "estimate" in p.message and "4,096" in p.message and "gpt-3.5-turbo-0613" in p.message
    )
    assert check(lines(*records), FineTuneChecker(model="gpt-4o-mini-2024-07-18", tokenizer="estimate")).problems == []


def test_model_limits_and_encodings() -> None:
    assert checks.example_token_limit("gpt-4o-mini-2024-07-18")[0] == 65_536
    assert checks.example_token_limit("gpt-35-turbo-0125")[0] == 16_385
    assert checks.example_token_limit(None)[0] == checks.DEFAULT_EXAMPLE_TOKENS
    assert "fine_tune_model" in checks.example_token_limit(None)[1]
    assert tokens.encoding_name("gpt-3.5-turbo") == "cl100k_base"
    assert tokens.encoding_name("gpt-4.1-mini") == tokens.encoding_name(None) == "o200k_base"


class FakeEncoding:
    def encode_ordinary(self, text: str) -> list[int]:
        return [0] * len(text.split())


def test_tiktoken_is_used_when_it_is_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("tiktoken")
    fake.get_encoding = lambda name: FakeEncoding()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tiktoken", fake)
    tokens._load_once.cache_clear()
    try:
        counter = tokens.counter("gpt-4o", "auto")
        assert counter.exact and counter.method == "tiktoken o200k_base" and counter.count("a b c") == 3
        checker = FineTuneChecker(model="gpt-4o", tokenizer="tiktoken")
        report = check(lines(*[chat(i) for i in range(10)]), checker)
        ex = report.examples
        assert ex is not None and ex.tokens_exact
        # 1 + 1 words, 3 a message, 3 for the reply
        assert ex.tokens_summary() == {"min": 11, "mean": 11.0, "max": 11, "total": 110}
        assert "estimated" not in "\n".join(report.summary())
    finally:
        tokens._load_once.cache_clear()


def test_auto_counts_exactly_only_the_examples_that_may_be_over_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    encoded: list[int] = []

    class Counting(FakeEncoding):
        def encode_ordinary(self, text: str) -> list[int]:
            encoded.append(len(text))
            return super().encode_ordinary(text)

    fake = types.ModuleType("tiktoken")
    fake.get_encoding = lambda name: Counting()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tiktoken", fake)
    tokens._load_once.cache_clear()
    try:
        # gpt-3.5-turbo-0613 takes 4,096 tokens an example; the fake tokenizer counts words
        one_word = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "x" * 20_000}]}
        many_words = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a " * 5_000}]}
        records = [chat(i) for i in range(10)] + [one_word, many_words]
        report = check(lines(*records), FineTuneChecker(model="gpt-3.5-turbo-0613"))
        # the 10 short examples were estimated, never encoded; the two long ones were counted exactly
        assert sorted(encoded) == sorted([1, 20_000, 1, 10_000])
        (p,) = report.problems  # 20,000 characters but one token: not over the limit, although the estimate is
        assert (p.line, p.code) == (12, "too_many_tokens")
        # 5,000 words + 1, 3 a message, 3 for the reply
        assert "5,010 tokens (tiktoken cl100k_base)" in p.message and "about" not in p.message
        ex = report.examples
        assert ex is not None and not ex.tokens_exact and "estimate" in ex.token_method
    finally:
        tokens._load_once.cache_clear()


def test_a_tiktoken_that_cannot_load_falls_back_to_the_estimate(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("tiktoken")

    def fail(name: str) -> Any:
        raise ConnectionError("no network")

    fake.get_encoding = fail  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tiktoken", fake)
    tokens._load_once.cache_clear()
    try:
        counter = tokens.counter(None, "auto")
        assert not counter.exact and "no network" in counter.method and "estimate" in counter.method
        assert tokens.counter(None, "estimate") is tokens.ESTIMATE
    finally:
        tokens._load_once.cache_clear()


def test_the_tokenizer_setting_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(lines(*[chat(i) for i in range(10)]))
    with pytest.raises(InvalidSetting, match="tokenizer"):
        validate(path, "fine-tune", tokenizer="words")
    assert validate(path, "fine-tune", tokenizer="estimate", fine_tune_model="gpt-4o-mini").ok


def test_old_preference_field_names_are_accepted_with_a_warning() -> None:
    record = {
        "input": {"messages": [{"role": "user", "content": "q"}]},
        "preferred_completion": [{"role": "assistant", "content": "a"}],
        "non_preferred_completion": [{"role": "assistant", "content": "b"}],
    }
    report = check(lines(*[record] * 10), FineTuneChecker(tokenizer="estimate"))
    assert report.ok and {p.code for p in report.problems} == {"old_field_name"}


# --- batch details ------------------------------------------------------------------------------------------------


def batch_request(i: int, **over: Any) -> dict[str, Any]:
    record = {
        "custom_id": f"r{i}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    }
    record.update(over)
    return record


def test_batch_limits_of_requests_and_bytes() -> None:
    rules = BatchRules(
        provider="Test", endpoints=("/v1/chat/completions",), max_requests=3, max_bytes=100, same_model="error"
    )
    report = check(lines(*[batch_request(i) for i in range(5)]), BatchChecker(rules))
    codes = [(p.line, p.code) for p in report.problems]
    assert codes == [(None, "file_too_large"), (None, "too_many_requests")]
    assert "5 requests" in report.problems[1].message and "at most 3" in report.problems[1].message
    assert OPENAI_BATCH.max_requests == 50_000 and OPENAI_BATCH.max_bytes == 200_000_000


def test_batch_stats_and_url_hints() -> None:
    report = check(lines(*[batch_request(i) for i in range(3)]), BatchChecker())
    assert report.ok and report.examples is not None and report.examples.unit == "requests"
    assert report.examples.formats == {"chat/completions": 3} and report.examples.roles == {"user": 3}
    bad = check(lines(batch_request(0, url="/chat/completions")), BatchChecker()).problems[0]
    assert bad.code == "bad_url" and "write /v1/chat/completions" in bad.message


def test_custom_ids_are_remembered_as_hashes_in_bounded_memory() -> None:
    checker = BatchChecker()
    for i in range(2000):
        assert checker.check(i + 1, batch_request(i)) == []
    assert checker.ids.count == 2000 and checker.ids.nbytes < 64 * 1024
    assert [p.code for p in checker.check(2001, batch_request(7))] == ["duplicate_custom_id"]


# --- wired into upload and the CLI -------------------------------------------------------------------------------


@pytest.mark.parametrize("check_first", [False, True])
def test_upload_refuses_a_bad_batch_file_and_creates_nothing(tmp_path: Path, check_first: bool) -> None:
    """v2 checks while sending and holds back the commit (the body's last bytes): a bad file creates nothing.
    With check_first=True, as before v2, not one request is sent."""
    path = tmp_path / "b.jsonl"
    path.write_bytes(lines(*[batch_request(i) for i in range(3)], batch_request(1)))
    with OpenAILikeServer() as server:
        client = llmfiles.Client("openai", environ={}, api_base=server.url, api_key=server.api_key)
        with client, pytest.raises(ValidationError) as info:
            client.upload(path, purpose="batch", check_first=check_first)
        assert server.files == {}
        assert all(r.status is None for r in server.requests)  # a request cut short is never answered
        if check_first:
            assert server.requests == []
    assert "line 4" in str(info.value) and "duplicate_custom_id" in str(info.value)


def test_cli_validate_prints_the_report_with_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = CORPUS / "fine-tune/good/openai-chat.jsonl"
    assert main(["validate", str(path), "--provider", "openai", "--purpose", "fine-tune"]) == 0
    out = capsys.readouterr().out
    assert "ok: 12 records" in out and "estimated tokens per example" in out and "roles: assistant 12" in out
    bad = CORPUS / "fine-tune/bad/bad_role.jsonl"
    assert main(["validate", str(bad), "-p", "openai", "--purpose", "fine-tune", "--json", "--max-problems", "0"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["problems"] == [] and data["problems_not_shown"] == 1
    assert data["stats"]["examples"]["count"] == 11


# --- never crashes ---------------------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
KEYS = st.sampled_from(
    [
        "messages",
        "role",
        "content",
        "weight",
        "tool_calls",
        "tool_call_id",
        "name",
        "function",
        "arguments",
        "type",
        "id",
        "tools",
        "functions",
        "input",
        "preferred_output",
        "non_preferred_output",
        "preferred_completion",
        "prompt",
        "completion",
        "custom_id",
        "method",
        "url",
        "body",
        "model",
        "text",
        "image_url",
        "parallel_tool_calls",
    ]
)
VALUES = st.sampled_from(
    ["system", "user", "assistant", "tool", "function", "text", "POST", "/v1/chat/completions", 0, 1]
)
SHAPED = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2) | VALUES | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=30,
)
RECORDS = st.dictionaries(KEYS | st.text(max_size=5), SHAPED | JSON, max_size=6)
CHECKERS: list[Callable[[], Any]] = [
    lambda: FineTuneChecker(tokenizer="estimate"),
    lambda: FineTuneChecker(tokenizer="estimate", model="gpt-3.5-turbo-0613"),
    BatchChecker,
]


@settings(
    max_examples=400, derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.lists(RECORDS, min_size=1, max_size=5), st.sampled_from(range(len(CHECKERS))))
def test_arbitrary_records_give_problems_never_exceptions(records: list[dict[str, Any]], which: int) -> None:
    checker = CHECKERS[which]()
    checker.start(FileFacts(display="t", size=1, has_bom=False))
    for i, record in enumerate(records):
        problems = checker.check(i + 1, record)
        assert all(isinstance(p, Problem) and p.code and p.message for p in problems)
    assert all(isinstance(p, Problem) for p in checker.finish())


@settings(
    max_examples=200, derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=30),
            RECORDS.map(lambda r: json.dumps(r).encode()),
            st.sampled_from([b"\n", b"\r\n", b"\xef\xbb\xbf", b"{", b"\xff", b"NaN", b"[1]"]),
        ),
        max_size=12,
    ).map(b"\n".join),
    st.sampled_from(range(len(CHECKERS))),
)
def test_arbitrary_bytes_give_a_report_never_an_exception(data: bytes, which: int) -> None:
    report = check(data, CHECKERS[which]())
    assert not any(p.code == "checker_failed" for p in report.problems), report.problems
    assert report.errors + report.warnings == report.total


# --- a BOM at the start of the file ----------------------------------------------------------------------------


def test_a_bom_is_a_warning_for_openai_files_and_the_records_still_count() -> None:
    # RFC 8259 section 8.1: no BOM in front of JSON text; OpenAI does not document accepting one: a warning, once
    data = b"\xef\xbb\xbf" + lines(*[chat(i % 4) for i in range(12)])
    report = check(data, FineTuneChecker(tokenizer="estimate"))
    assert report.ok and report.has_bom and report.records == 12
    assert [(p.line, p.code, p.severity) for p in report.problems] == [(None, "bom", "warning")]
    assert "RFC 8259" in report.problems[0].message and "OpenAI" in report.problems[0].message
    assert check(lines(*[chat(i % 4) for i in range(12)]), FineTuneChecker(tokenizer="estimate")).problems == []
    request = {"custom_id": "r1", "method": "POST", "url": "/v1/embeddings", "body": {"model": "m", "input": "x"}}
    batch = check(b"\xef\xbb\xbf" + lines(request), BatchChecker())
    assert [p.code for p in batch.problems] == ["bom"]


def test_validate_without_a_provider_names_the_providers_with_record_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(lines(*[chat(i % 4) for i in range(12)]))
    report = llmfiles.Client("local", environ={}).validate(path)
    assert report.record_rules is False and "come with" in report.checks[1] and "openai" in report.checks[1]
    assert main(["validate", str(path), "--provider", "local"]) == 0
    out = capsys.readouterr().out
    assert "ok as JSONL (no record rules ran" in out and "openai" in out and "--provider NAME" in out
    assert main(["validate", str(path), "--provider", "openai"]) == 0
    out = capsys.readouterr().out
    assert "checked: UTF-8 JSONL, one JSON object per line; openai's rules for 'fine-tune' records" in out
    assert "no record rules" not in out
