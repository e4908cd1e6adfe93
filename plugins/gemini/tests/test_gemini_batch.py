"""The Batch API's input rules: a corpus of bad files (one per rule, each with its exact code, line and path), good
files in the shapes Google's pages show (the batch guide's own example, camelCase and snake_case protobuf JSON,
multimodal and function-calling requests), every rule citing its page, the wiring into upload and ``llmfiles
validate``, and property tests that feed arbitrary JSON to the checker."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from gemini_testlib import batch_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmfiles
from llmfiles.cli import main
from llmfiles.errors import ValidationError
from llmfiles.sources import FileObjSource
from llmfiles.validate import FileFacts, check_jsonl
from llmfiles_gemini import batch
from servers.gemini_like import GeminiLikeServer

CORPUS = Path(__file__).parent / "corpus"
EXPECTED: dict[str, dict[str, Any]] = json.loads((CORPUS / "expected.json").read_text())


def validate(path: Path, purpose: str = "batch") -> llmfiles.validate.Report:
    return llmfiles.Client("gemini", environ={}).validate(path, purpose=purpose, max_problems=1000)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_bad_file_has_exactly_its_problem(name: str) -> None:
    want = EXPECTED[name]
    report = validate(CORPUS / name)
    found = [(p.line, p.code, p.path, p.severity) for p in report.problems]
    assert found == [(want["line"], want["code"], want["path"], want["severity"])], found
    assert report.ok is (want["severity"] == "warning")
    problem = report.problems[0]
    assert problem.message.endswith(f"(see {batch.RULES[want['code']].doc})")  # the rule cites its page
    assert len(problem.message) > 40  # says what to do


def test_the_corpus_has_a_bad_file_for_every_rule() -> None:
    in_corpus = {e["code"] for e in EXPECTED.values()}
    assert in_corpus == set(batch.RULES) - {"file_too_large", "bom"}  # those have tests of their own below


def test_every_rule_cites_googles_documentation() -> None:
    for code, rule in batch.RULES.items():
        if code == "bom":  # Google's pages say nothing of a BOM: the JSON standard is the source
            assert rule.doc == "https://www.rfc-editor.org/rfc/rfc8259#section-8.1"
            continue
        assert rule.code == code and rule.doc.startswith("https://ai.google.dev/"), rule
        assert "#" in rule.doc and rule.says
    # what a page cites is a page of the Gemini API's documentation, the batch guide first of all
    assert batch.RULES["not_keyed"].doc == "https://ai.google.dev/gemini-api/docs/batch-api#input-file"


@pytest.mark.parametrize("name", sorted(p.name for p in (CORPUS / "batch" / "good").glob("*.jsonl")))
def test_good_files_pass_without_a_problem(name: str) -> None:
    report = validate(CORPUS / "batch" / "good" / name)
    assert report.ok and report.problems == [], report.problems
    assert report.examples is not None and report.examples.examples == report.records


def test_the_batch_guides_own_example_passes() -> None:
    # the two lines of https://ai.google.dev/gemini-api/docs/batch-api#input-file, verbatim
    text = (CORPUS / "batch" / "good" / "docs-example.jsonl").read_text()
    assert '"generation_config": {"temperature": 0.7}' in text and '"key": "request-2"' in text


def test_an_input_file_over_2_gb_is_refused_whole() -> None:
    checker = batch.BatchChecker()
    [p] = checker.start(FileFacts(display="x.jsonl", size=batch.MAX_INPUT_BYTES + 1, has_bom=False))
    assert p.code == "file_too_large" and p.line is None and "2,000,000,000" in p.message
    assert checker.start(FileFacts(display="x.jsonl", size=batch.MAX_INPUT_BYTES, has_bom=False)) == []


def test_a_byte_order_mark_is_a_warning_and_the_file_is_still_checked(tmp_path: Path) -> None:
    good = (CORPUS / "batch" / "good" / "docs-example.jsonl").read_bytes()
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + good)
    report = validate(path)
    assert report.ok and [(p.code, p.severity, p.line) for p in report.problems] == [("bom", "warning", None)]
    assert "RFC 8259" in report.problems[0].message and "Gemini" in report.problems[0].message
    path.write_bytes(b"\xef\xbb\xbf" + good.replace(b'"key"', b'"kee"', 1))  # the records are checked after it
    assert {"bom", "missing_key"} <= {p.code for p in validate(path).problems}
    assert [p.code for p in validate(CORPUS / "batch" / "good" / "docs-example.jsonl").problems] == []


def test_a_bare_request_is_still_checked_as_a_request() -> None:
    data = b'{"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}\n'
    report = check_jsonl(FileObjSource(io.BytesIO(data), "t.jsonl", 0, len(data)), checker=batch.BatchChecker())
    assert [(p.code, p.path) for p in report.problems] == [("bare_request", ""), ("bad_role", "contents[0].role")]


def test_the_statistics_count_requests_and_turns(tmp_path: Path) -> None:
    report = validate(batch_file(tmp_path / "b.jsonl", 7))
    stats = report.examples
    assert stats is not None and stats.unit == "requests" and stats.examples == 7
    assert stats.formats == {"generateContent": 7} and stats.roles == {"user": 7}


# --- wiring -------------------------------------------------------------------------------------------------------


def test_a_bad_batch_file_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    with GeminiLikeServer(api_key="k" * 20) as server:
        with llmfiles.Client("gemini", environ={}, api_key="k" * 20, api_base=server.url) as c:
            with pytest.raises(ValidationError) as info:
                c.upload(CORPUS / "batch" / "bad" / "bad_role.jsonl", purpose="batch")
            assert "line 4" in str(info.value) and "bad_role" in str(info.value)
            # a file to use in prompts is not a batch file: no rules
            fo = c.upload(CORPUS / "batch" / "bad" / "bad_role.jsonl", purpose="user_data")
        assert list(server.files) == [fo.id]


def test_llmfiles_validate_uses_the_rules(capsys: pytest.CaptureFixture[str]) -> None:
    bad = CORPUS / "batch" / "bad" / "no_contents.jsonl"
    assert main(["validate", str(bad), "-p", "gemini", "--purpose", "batch"]) == 2
    assert "no_contents" in capsys.readouterr().out
    good = CORPUS / "batch" / "good" / "docs-example.jsonl"
    assert main(["validate", str(good), "-p", "gemini", "--purpose", "batch"]) == 0


# --- whatever the JSON, problems and never an exception -----------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
keys = st.sampled_from(["key", "request", "contents", "parts", "role", "text", "fileData", "file_data", "x"])
records = st.dictionaries(keys, json_values, max_size=4) | st.fixed_dictionaries(
    {"key": json_values, "request": st.dictionaries(keys, json_values, max_size=4)}
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(records, min_size=1, max_size=5))
def test_the_checker_never_raises(lines: list[dict[str, Any]]) -> None:
    checker = batch.BatchChecker()
    for i, record in enumerate(lines, 1):
        for p in checker.check(i, record):
            assert p.code in batch.RULES and p.severity == batch.RULES[p.code].severity
    assert checker.finish() == []


def test_the_readme_lists_every_rule_with_its_source() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    table = readme.split("## Content checks", 1)[1].split("\n## ", 1)[0]
    for code, rule in batch.RULES.items():
        row = next((line for line in table.splitlines() if f"`{code}`" in line), None)
        assert row is not None, f"{code} is not in the README's table of rules"
        assert rule.severity in row and rule.doc in row, row
