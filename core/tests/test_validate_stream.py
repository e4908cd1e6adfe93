"""The streaming pass in depth: the optional orjson parser gives the same results as the standard library, long
lines are bounded, duplicates and digests come from the same pass, checkers contribute statistics and cannot
crash it; conversions are registered by plugins and written atomically."""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmfiles
from llmfiles import hookimpl
from llmfiles.cli import main
from llmfiles.errors import InputError, InvalidSetting, PluginError, ValidationError
from llmfiles.models import Problem
from llmfiles.plugins import PluginManager
from llmfiles.sources import FileObjSource, PathSource
from llmfiles.validate import ExampleStats, FileFacts, Report, check_jsonl, jsonl, parse
from llmfiles.validate.convert import Converter, convert_file, settings_free
from llmfiles.validate.stats import HashIndex, estimate_tokens, json_chars


def src(data: bytes) -> FileObjSource:
    return FileObjSource(io.BytesIO(data), "t.jsonl", 0, len(data))


def check(data: bytes, **kw: Any) -> Report:
    return check_jsonl(src(data), **kw)


def codes(report: Report) -> list[tuple[int | None, str]]:
    return [(p.line, p.code) for p in report.problems]


# --- the parser -------------------------------------------------------------------------------------------------


def _verdict(loads: Callable[[bytes], Any], raw: bytes) -> Any:
    try:
        return ("ok", loads(raw))
    except Exception:
        return ("error",)


LINES = st.one_of(
    st.binary(max_size=40),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
        max_leaves=10,
    ).map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
    st.sampled_from(
        [
            b'{"a": 18446744073709551616}',
            b'{"a": -9223372036854775809}',
            b'{"a": 1e400}',
            b'{"a": "\\ud800"}',
            b'{"a": NaN}',
            b'{"a": 1}\x00',
            b"[" * 1100 + b"]" * 1100,
            b'{"a": 1, "a": 2}',
            b"\xef\xbb\xbf{}",
        ]
    ),
)


@settings(max_examples=500, derandomize=True, database=None, deadline=None)
@given(LINES)
def test_orjson_accepts_a_subset_of_the_reference_with_the_same_values(raw: bytes) -> None:
    orjson = pytest.importorskip("orjson") if parse.PARSER == "orjson" else None
    fast = _verdict(orjson.loads if orjson else parse.reference_loads, raw)
    reference = _verdict(parse.reference_loads, raw)
    if fast[0] == "ok":
        assert reference == fast


@settings(
    max_examples=150, derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.lists(LINES, max_size=10).map(b"\n".join))
def test_both_parsers_give_the_same_report(data: bytes) -> None:
    fast = check(data).as_dict()
    saved = jsonl.fast_loads
    jsonl.fast_loads = parse.reference_loads
    try:
        reference = check(data).as_dict()
    finally:
        jsonl.fast_loads = saved
    fast_stats, reference_stats = fast.pop("stats"), reference.pop("stats")
    assert fast_stats.pop("parser") == parse.PARSER and reference_stats.pop("parser") == parse.PARSER
    assert fast == reference and fast_stats == reference_stats


def test_nan_and_huge_numbers_are_refused_by_both_paths() -> None:
    assert codes(check(b'{"a": NaN}\n{"b": Infinity}\n{"c": 1e999}\n')) == [
        (1, "invalid_json"),
        (2, "invalid_json"),
        (3, "invalid_json"),
    ]
    assert parse.reference_loads(b'{"n": 18446744073709551616}') == {"n": 1.8446744073709552e19}


# --- bounded lines ------------------------------------------------------------------------------------------------


def test_a_line_longer_than_the_limit_is_a_problem_and_is_not_held(tmp_path: Path) -> None:
    big = b'{"a": "' + b"x" * (3 * jsonl.BLOCK) + b'"}'
    data = b'{"ok": 1}\n' + big + b'\n{"ok": 2}\n' + b'{"short": "' + b"y" * 100 + b'"}\n' + big
    path = tmp_path / "long.jsonl"
    path.write_bytes(data)
    report = check_jsonl(PathSource(str(path), "long.jsonl", len(data)), max_line=2 * jsonl.BLOCK)
    assert codes(report) == [(2, "line_too_long"), (5, "line_too_long")]
    assert report.records == 3 and report.lines == 5 and report.longest_line == len(big)
    assert f"{len(big):,} bytes" in report.problems[0].message
    small = check(b'{"a": 1}\n{"b": "' + b"z" * 50 + b'"}\n{"c": 3}', max_line=20)
    assert codes(small) == [(2, "line_too_long")] and small.records == 2


# --- statistics ------------------------------------------------------------------------------------------------


def test_duplicate_lines_are_counted_with_the_first_few_shown() -> None:
    data = b"".join(b'{"i": %d}\n' % (i % 3) for i in range(10))
    report = check(data)
    assert report.duplicate_lines == 7 and report.duplicate_samples == [(4, 1), (5, 2), (6, 3), (7, 1), (8, 2)]
    stats = report.as_dict()["stats"]
    assert stats["duplicate_lines"] == 7 and stats["duplicates_checked"] is None and stats["records"] == 10
    assert "duplicate lines: 7 (line 4 = line 1" in "\n".join(report.summary())


def test_duplicates_are_confirmed_byte_for_byte(tmp_path: Path) -> None:
    """v2: duplicates are found by a hash of the whole line, without reading anything again: lines that differ in
    one byte in their middle are not duplicates, identical ones are, wherever they are (after a BOM, across read
    blocks)."""

    def line(x: str) -> bytes:
        return json.dumps({"t": "a" * 200 + x + "a" * 300}).encode()  # x lies outside the sampled bytes

    near = [line("1"), line("2"), line("3")]
    big = json.dumps({"pad": "p" * (jsonl.BLOCK + 10)}).encode()
    data = b"\xef\xbb\xbf" + b"\n".join([near[0], near[1], big, near[2], near[0], big, near[1], near[2]]) + b"\n"
    path = tmp_path / "d.jsonl"
    path.write_bytes(data)
    source = PathSource(str(path), "d.jsonl")
    reads: list[tuple[int, int]] = []
    original = source.pread

    def pread(n: int, offset: int) -> bytes:
        reads.append((offset, n))
        return original(n, offset)

    source.pread = pread  # type: ignore[method-assign]
    report = check_jsonl(source)
    assert sum(n for _, n in reads) == len(data) and [o for o, _ in reads] == sorted({o for o, _ in reads})
    assert report.has_bom and report.records == 8
    assert report.duplicate_samples == [(5, 1), (6, 3), (7, 2), (8, 4)] and report.duplicate_lines == 4


def test_the_hash_index_is_bounded() -> None:
    index = HashIndex(max_items=1000)
    for i in range(5000):
        index.add(hash(f"key {i}"), i + 1)
    assert index.full and index.count == 1000 and index.nbytes <= 4 * 12 * 1000
    assert index.add(hash("key 5"), 9999) == 6  # remembered keys are still found
    assert index.add(hash("key 4999"), 1) == 0  # later ones are not remembered


def test_a_full_index_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonl, "HashIndex", lambda *a, **k: HashIndex(max_items=4, with_offsets=True))
    report = check(b"".join(b'{"i": %d}\n' % i for i in range(20)))
    assert report.duplicates_checked == 4 and "first 4 records only" in "\n".join(report.summary())


def test_digests_are_computed_on_a_helper_thread_for_large_files(tmp_path: Path) -> None:
    import threading

    from llmfiles.pipeline import THREADED_DIGESTS_FROM, Inspection

    data = b'{"a": "' + b"x" * 100 + b'"}\n'
    data *= THREADED_DIGESTS_FROM // len(data) + 1
    path = tmp_path / "big.jsonl"
    path.write_bytes(data)
    source = PathSource(str(path), "big.jsonl")
    inspection = Inspection(source, digests=("md5", "sha256"))
    assert any(t.name == "llmfiles-digests" for t in threading.enumerate())
    for offset in range(0, len(data), jsonl.BLOCK):
        inspection.feed(offset, data[offset : offset + jsonl.BLOCK])
    assert inspection.finish().digests == {
        "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    source.close()


def test_example_stats() -> None:
    stats = ExampleStats()
    stats.add(3, 10, ["user", "assistant", "user"], "chat")
    stats.add(messages=1, tokens=4, roles=("user",), format="chat")
    stats.add()
    stats.note("n")
    stats.note("n")
    assert stats.as_dict() == {
        "unit": "examples",
        "count": 3,
        "formats": {"chat": 2},
        "messages_per_example": {"min": 1, "mean": 2.0, "max": 3, "total": 4},
        "tokens_per_example": {
            "min": 4,
            "mean": 7.0,
            "max": 10,
            "total": 14,
            "method": stats.token_method,
            "exact": False,
        },
        "roles": {"user": 3, "assistant": 1},
    }
    assert stats.notes == ["n"] and ExampleStats().as_dict()["tokens_per_example"] is None
    assert estimate_tokens(0) == 0 and estimate_tokens(9) == 2 and estimate_tokens(10) == 3
    compact = len('{"a":[1,"xy",null]}')
    assert compact <= json_chars({"a": [1, "xy", None]}) <= 2 * compact


class StatsChecker:
    """Uses every optional member: start(), stats, problems without a line."""

    def __init__(self) -> None:
        self.stats = ExampleStats(unit="requests")
        self.facts: FileFacts | None = None

    def start(self, facts: FileFacts) -> list[Problem]:
        self.facts = facts
        self.stats.note(f"size {facts.size}")
        return [Problem(line=None, code="first", message="before any record", severity="warning")]

    def check(self, line_no: int, record: dict[str, Any]) -> Iterable[Problem]:
        self.stats.add(messages=len(record), roles=list(record))
        return [Problem(line=None, code="seen", message="m", severity="warning", path="x")]

    def finish(self) -> list[Problem]:
        return []


def test_checkers_start_with_the_file_facts_and_contribute_stats() -> None:
    checker = StatsChecker()
    report = check(b'\xef\xbb\xbf{"a": 1}\n{"a": 2, "b": 3}\n', checker=checker)
    assert checker.facts == FileFacts(display="<t.jsonl>", size=29, has_bom=True)
    assert codes(report) == [(None, "first"), (1, "seen"), (2, "seen")]
    assert report.notes == ["size 29"] and report.examples is checker.stats
    data = report.as_dict()
    assert data["stats"]["examples"]["roles"] == {"a": 2, "b": 1} and data["notes"] == ["size 29"]
    assert "requests: 2" in "\n".join(report.summary())


class Broken:
    def start(self, facts: FileFacts) -> list[Problem]:
        raise RuntimeError("start broke")

    def check(self, line_no: int, record: dict[str, Any]) -> list[Problem]:
        raise KeyError("check broke")

    def finish(self) -> list[Problem]:
        raise ValueError("finish broke")


def test_a_checker_that_raises_becomes_a_problem() -> None:
    report = check(b'{"a": 1}\n{"b": 2}\n', checker=Broken())
    assert codes(report) == [
        (None, "checker_failed"),
        (1, "checker_failed"),
        (2, "checker_failed"),
        (None, "checker_failed"),
    ]
    assert "test_validate_stream" in report.problems[1].message and "check broke" in report.problems[1].message


# --- conversions -------------------------------------------------------------------------------------------------


def upper(record: dict[str, Any]) -> tuple[dict[str, Any] | None, list[Problem]]:
    text = record.get("text")
    if not isinstance(text, str):
        return None, [Problem(line=None, code="no_text", message="needs text", path="text")]
    if text == "boom":
        raise RuntimeError("converter bug")
    warn = [Problem(line=None, code="shouted", message="m", severity="warning")] if text.isupper() else []
    return {"TEXT": text.upper()}, warn


class NeedsTen:
    def __init__(self) -> None:
        self.n = 0

    def check(self, line_no: int, record: dict[str, Any]) -> list[Problem]:
        self.n += 1
        return [] if "TEXT" in record else [Problem(line=None, code="no_upper", message="m")]

    def finish(self) -> list[Problem]:
        return [] if self.n >= 2 else [Problem(line=None, code="too_few", message="need 2")]


class ConvPlugin:
    @hookimpl
    def llmfiles_register_converters(self, register: Callable[[Converter], None]) -> None:
        register(
            Converter(
                name="upper", prepare=settings_free(upper), checker=NeedsTen, description="shouting", package="pkg-x"
            )
        )


def client(tmp_path: Path, *plugins: object) -> llmfiles.Client:
    pm = PluginManager(load_entry_points=False)
    import llmfiles.local

    pm.register(llmfiles.local, "local")
    for i, plugin in enumerate(plugins):
        pm.register(plugin, f"p{i}")
    return llmfiles.Client(plugin_manager=pm, environ={"LLMFILES_HOME": str(tmp_path / "home")})


def lines(*records: Any) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def test_a_registered_conversion_writes_a_checked_file(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(lines({"text": "a"}, {"text": "B"}))
    out = tmp_path / "out.jsonl"
    c = client(tmp_path, ConvPlugin())
    assert c.converters() == {"upper": "shouting"}
    result = c.convert(path, to="upper", output=out)
    assert result.ok and result.written and out.read_bytes() == b'{"TEXT":"A"}\n{"TEXT":"B"}\n'
    assert codes(result.conversion) == [(2, "shouted")] and result.output is not None and result.output.ok
    assert result.as_dict()["check"]["records"] == 2


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([{"text": "a"}, {"nope": 1}, {"text": "c"}], [(2, "no_text")]),
        ([{"text": "a"}, {"text": "boom"}], [(2, "converter_failed")]),
        ([{"text": "a"}], []),  # converts, but the target's file-level rule fails
    ],
)
def test_nothing_is_written_when_a_conversion_or_its_check_fails(
    tmp_path: Path, records: list[Any], expected: list[tuple[int, str]]
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(lines(*records) + b"\n")
    out = tmp_path / "out.jsonl"
    result = client(tmp_path, ConvPlugin()).convert(path, to="upper", output=out)
    assert not result.ok and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]  # no temporary file left behind
    if expected:
        assert codes(result.conversion)[: len(expected)] == expected
    else:
        assert codes(result.conversion) == [(2, "blank_line")]


def test_the_output_is_checked_after_a_clean_conversion(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(lines({"text": "a"}))
    result = client(tmp_path, ConvPlugin()).convert(path, to="upper", output=tmp_path / "out.jsonl")
    assert result.conversion.ok and result.output is not None and codes(result.output) == [(None, "too_few")]
    assert not result.written
    # its problems are the input's records', at the input's lines: the report is named after the input
    assert result.output.path == str(path) and result.as_dict()["check"]["file"] == str(path)
    assert any("converted to 'upper'" in n and "out.jsonl" in n for n in result.output.notes)


def test_an_interrupted_conversion_leaves_no_file(tmp_path: Path) -> None:
    def interrupt(record: dict[str, Any]) -> tuple[dict[str, Any] | None, list[Problem]]:
        raise KeyboardInterrupt

    path = tmp_path / "in.jsonl"
    path.write_bytes(lines({"text": "a"}))
    out = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        convert_file(
            PathSource(str(path), "in.jsonl", path.stat().st_size),
            out,
            Converter(name="x", prepare=settings_free(interrupt)),
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_unknown_and_duplicate_conversions(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(lines({"text": "a"}))
    with pytest.raises(InputError, match=r"no conversion called 'claude'.*llmfiles-bedrock"):
        client(tmp_path, ConvPlugin()).convert(path, to="claude", output=tmp_path / "o.jsonl")
    with pytest.raises(InputError, match=r"no conversion called 'yaml' is installed \(installed: upper\)$"):
        client(tmp_path, ConvPlugin()).convert(path, to="yaml", output=tmp_path / "o.jsonl")
    with pytest.raises(PluginError, match="claimed by two plugins"):
        client(tmp_path, ConvPlugin(), ConvPlugin()).converters()


def test_cli_convert(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    c = client(tmp_path, ConvPlugin())
    monkeypatch.setattr("llmfiles.api.Client", lambda *a, **k: c)
    path = tmp_path / "in.jsonl"
    path.write_bytes(lines({"text": "a"}, {"text": "b"}))
    out = tmp_path / "out.jsonl"
    assert main(["convert", str(path), "--to", "upper", "-o", str(out)]) == 0
    assert "written: 2 records in the upper format" in capsys.readouterr().out
    assert main(["convert", str(path), "--to", "upper", "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    path.write_bytes(lines({"text": "a"}, {"x": 1}))
    assert main(["convert", str(path), "--to", "upper", "-o", str(out), "--force"]) == 2
    text = capsys.readouterr().out
    assert "line 2, text: error no_text" in text and "NOT written" in text
    assert out.read_bytes() == b'{"TEXT":"A"}\n{"TEXT":"B"}\n'  # the earlier output is untouched


# --- convert= while uploading (v2: a core setting; the converted file is uploaded, then removed) ------------------


def test_an_upload_with_convert_sends_the_converted_file(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(lines({"text": "a"}, {"text": "b"}, {"text": "c"}))
    c = client(tmp_path, ConvPlugin())
    fo = c.upload(path, purpose="fine-tune", provider="local", convert="upper")
    back = c.download(fo.id, tmp_path / "back.jsonl").read_bytes()
    assert [json.loads(line) for line in back.splitlines()] == [{"TEXT": "A"}, {"TEXT": "B"}, {"TEXT": "C"}]
    assert fo.filename == "in.jsonl" and fo.bytes == len(back)
    # made in the process's llmfiles folder (as the state database), removed once uploaded
    assert list((Path(os.environ["LLMFILES_HOME"]) / "converted").iterdir()) == []
    report = c.validate(path, purpose="fine-tune", provider="local", convert="upper")
    assert report.ok and any("converted to 'upper'" in n for n in report.notes)


def test_records_that_cannot_be_converted_stop_the_upload_naming_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(lines({"text": "a"}, {"no": "text"}, {"text": "b"}))
    c = client(tmp_path, ConvPlugin())
    with pytest.raises(ValidationError) as info:
        c.upload(path, purpose="fine-tune", provider="local", convert="upper")
    assert [p.line for p in info.value.problems] == [2] and str(path) in str(info.value)
    assert list(c.list_files(provider="local")) == []
    with pytest.raises(InvalidSetting, match="no usual conversion"):
        c.upload(path, purpose="fine-tune", provider="local", convert=True)


def test_converting_a_binary_file_says_so_once_and_writes_nothing(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "in.jsonl.gz"
    path.write_bytes(gzip.compress(lines(*[{"text": f"t{i}"} for i in range(500)])))
    out = tmp_path / "out.jsonl"
    result = client(tmp_path, ConvPlugin()).convert(path, to="upper", output=out)
    assert not result.ok and not out.exists() and result.output is None
    assert codes(result.conversion) == [(None, "binary_file")]
    assert not list(tmp_path.glob(".out.jsonl.*"))  # no temporary file either
