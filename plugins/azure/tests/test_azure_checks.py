"""Azure OpenAI's content checks: OpenAI's rules with Azure's batch endpoints, one deployment per file, 100,000
requests, and a note about the BOM of fine-tuning files; property tests feed arbitrary JSON to the checkers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmfiles
from llmfiles.models import Problem
from llmfiles.validate import FileFacts
from llmfiles_azure import checks
from llmfiles_azure.checks import AZURE_BATCH, AzureFineTuneChecker
from llmfiles_openai.checks import BatchChecker

CORPUS = Path(__file__).parent / "corpus"
EXPECTED: dict[str, dict[str, Any]] = json.loads((CORPUS / "expected.json").read_text())


def validate(path: Path, purpose: str) -> llmfiles.validate.Report:
    client = llmfiles.Client("azure", environ={}, api_base="https://example.openai.azure.com")
    return client.validate(path, purpose=purpose, max_problems=1000)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_bad_file_has_exactly_its_problem(name: str) -> None:
    want = EXPECTED[name]
    report = validate(CORPUS / name, name.split("/", maxsplit=1)[0])
    errors = [(p.line, p.code, p.path) for p in report.problems if p.severity == "error"]
    assert errors == [(want["line"], want["code"], want["path"])]


@pytest.mark.parametrize("name", sorted(str(p.relative_to(CORPUS)) for p in CORPUS.glob("*/good/*.jsonl")))
def test_documented_formats_pass(name: str) -> None:
    report = validate(CORPUS / name, name.split("/", maxsplit=1)[0])
    assert report.ok and report.problems == [], [p.describe() for p in report.problems]


def test_the_report_notes_the_bom_of_fine_tuning_files(tmp_path: Path) -> None:
    with_bom = validate(CORPUS / "fine-tune/good/azure-chat-bom.jsonl", "fine-tune")
    assert with_bom.has_bom and with_bom.notes == [checks.BOM_PRESENT]
    plain = tmp_path / "plain.jsonl"
    plain.write_bytes((CORPUS / "fine-tune/good/azure-chat-bom.jsonl").read_bytes()[3:])
    without = validate(plain, "fine-tune")
    assert without.ok and not without.has_bom and without.notes == [checks.BOM_ADDED]
    assert without.as_dict()["notes"] == [checks.BOM_ADDED]


def test_azure_limits() -> None:
    assert AZURE_BATCH.max_requests == 100_000 and AZURE_BATCH.same_model == "error"
    assert "/chat/completions" in AZURE_BATCH.endpoints and "/v1/chat/completions" in AZURE_BATCH.endpoints
    checker = BatchChecker(AZURE_BATCH)
    (p,) = checker.start(FileFacts(display="big", size=250_000_000, has_bom=False))
    assert p.code == "file_too_large" and "Azure OpenAI" in p.message
    checker.requests = 100_001
    assert [p.code for p in checker.finish()] == ["too_many_requests"]


def test_fine_tune_messages_name_azure(tmp_path: Path) -> None:
    path = tmp_path / "few.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}))
    (p,) = validate(path, "fine-tune").problems
    assert p.code == "too_few_examples" and "Azure OpenAI fine-tuning" in p.message


KEYS = st.sampled_from(
    ["messages", "role", "content", "weight", "custom_id", "method", "url", "body", "model", "input"]
)
SHAPED = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-1, 2)
    | st.sampled_from(["user", "assistant", "POST", "/chat/completions"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS | st.text(max_size=4), inner, max_size=4),
    max_leaves=25,
)


@settings(
    max_examples=300, derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.lists(st.dictionaries(KEYS, SHAPED, max_size=5), min_size=1, max_size=4), st.booleans(), st.booleans())
def test_arbitrary_records_give_problems_never_exceptions(
    records: list[dict[str, Any]], batch: bool, bom: bool
) -> None:
    checker: Any = BatchChecker(AZURE_BATCH) if batch else AzureFineTuneChecker(tokenizer="estimate")
    checker.start(FileFacts(display="t", size=10, has_bom=bom))
    for i, record in enumerate(records):
        assert all(isinstance(p, Problem) for p in checker.check(i + 1, record))
    assert all(isinstance(p, Problem) for p in checker.finish())
