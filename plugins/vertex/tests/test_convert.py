"""``llmfiles convert --to gemini``: the Vertex plugin's converter through the core's streaming, atomic
conversion; the Gemini corpus; statistics of the tuning checker; and property tests that feed arbitrary JSON to
the checkers and the conversion."""

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
from llmfiles.plugins import get_plugin_manager
from llmfiles_vertex import gemini

CORPUS = Path(__file__).parent / "corpus"
EXPECTED: dict[str, dict[str, Any]] = json.loads((CORPUS / "expected.json").read_text())


def chat(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": f"q{i}"},
            {"role": "assistant", "content": f"a{i}", **extra},
        ]
    }


def write(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def validate(path: Path, purpose: str) -> llmfiles.validate.Report:
    return llmfiles.Client("vertex_ai", environ={}).validate(path, purpose=purpose, max_problems=1000)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_bad_file_has_exactly_its_problem(name: str) -> None:
    want = EXPECTED[name]
    report = validate(CORPUS / name, name.split("/", maxsplit=1)[0])
    assert [(p.line, p.code, p.path) for p in report.problems if p.severity == "error"] == [
        (want["line"], want["code"], want["path"])
    ]


@pytest.mark.parametrize("name", sorted(str(p.relative_to(CORPUS)) for p in CORPUS.glob("*/good/*.jsonl")))
def test_documented_formats_pass(name: str) -> None:
    report = validate(CORPUS / name, name.split("/", maxsplit=1)[0])
    assert report.ok and report.problems == []


def test_the_tuning_checker_feeds_the_statistics() -> None:
    report = validate(CORPUS / "fine-tune/good/gemini-tuning.jsonl", "fine-tune")
    ex = report.examples
    assert ex is not None and ex.examples == 10 and ex.roles == {"user": 10, "model": 10}
    assert ex.messages_summary() == {"min": 2, "mean": 2.0, "max": 2, "total": 20}
    assert ex.formats == {"gemini": 10} and not ex.tokens_exact


def test_the_gemini_converter_is_registered() -> None:
    conv = get_plugin_manager().converters()["gemini"]
    assert conv.package == "llmfiles-vertex" and "Gemini" in conv.description
    assert llmfiles.Client().converters()["gemini"] == conv.description


def test_convert_writes_a_checked_gemini_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write(tmp_path / "chat.jsonl", [chat(i) for i in range(12)] + [chat(12, weight=0)])
    out = tmp_path / "gemini.jsonl"
    assert main(["convert", str(src), "--to", "gemini", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "written: 13 records in the gemini format" in text and "weight_dropped" in text
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records[0] == gemini.chat_to_gemini(chat(0))
    assert validate(out, "fine-tune").ok
    assert [p.name for p in tmp_path.iterdir()] != [] and not list(tmp_path.glob(".*.tmp"))


def test_convert_writes_nothing_when_a_record_cannot_convert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = {"messages": [{"role": "user", "content": "q"}, {"role": "narrator", "content": "x"}]}
    src = write(tmp_path / "chat.jsonl", [chat(0), bad, chat(2)])
    out = tmp_path / "gemini.jsonl"
    assert main(["convert", str(src), "--to", "gemini", "-o", str(out), "--json"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["written"] is False and data["check"] is None
    assert [(p["line"], p["code"], p["path"]) for p in data["conversion"]["problems"]] == [
        (2, "cannot_convert", "messages[1].role")
    ]
    assert not out.exists() and list(tmp_path.iterdir()) == [src]


def test_convert_keeps_an_existing_output_unless_forced(tmp_path: Path) -> None:
    src = write(tmp_path / "chat.jsonl", [chat(i) for i in range(3)])
    out = tmp_path / "gemini.jsonl"
    out.write_text("keep me")
    with pytest.raises(llmfiles.errors.InputError, match="already exists"):
        llmfiles.Client().convert(src, to="gemini", output=out)
    assert out.read_text() == "keep me"
    result = llmfiles.Client().convert(src, to="gemini", output=out, overwrite=True)
    assert result.ok and out.read_text().count("\n") == 3


KEYS = st.sampled_from(
    [
        "messages",
        "role",
        "content",
        "tool_calls",
        "tool_call_id",
        "function",
        "name",
        "arguments",
        "id",
        "type",
        "weight",
        "tools",
        "contents",
        "parts",
        "text",
        "systemInstruction",
        "request",
        "image_url",
        "url",
        "fileData",
        "functionCall",
        "functionResponse",
        "response",
    ]
)
VALUES = st.sampled_from(
    ["system", "user", "assistant", "tool", "model", "function", "text", "image_url", "gs://b/a.png", "{}"]
)
SHAPED = st.recursive(
    st.none() | st.booleans() | st.integers(-1, 2) | VALUES | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(max_size=3), inner, max_size=4),
    max_leaves=30,
)
RECORDS = st.dictionaries(KEYS, SHAPED, max_size=5)


@settings(
    max_examples=400, derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.lists(RECORDS, min_size=1, max_size=4), st.sampled_from(["tuning", "tuning-gemini", "batch"]))
def test_arbitrary_records_give_problems_never_exceptions(records: list[dict[str, Any]], which: str) -> None:
    """Every checker, and the conversion followed by the tuning checker (what ``convert="gemini"`` runs)."""
    checker: Any = gemini.BatchChecker() if which == "batch" else gemini.TuningChecker()
    for i, record in enumerate(records):
        converted, problems = gemini.convert_record(record)
        assert converted is not None or any(p.severity == "error" for p in problems)
        assert all(isinstance(p, Problem) for p in problems)
        if which == "tuning-gemini" and converted is not None:
            json.dumps(converted)  # what the core writes
            record = converted
        assert all(isinstance(p, Problem) for p in checker.check(i + 1, record))
    assert all(isinstance(p, Problem) for p in checker.finish())
