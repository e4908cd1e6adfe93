"""JSONL checks: line-numbered problems, CRLF and BOM handling, capped problem lists, and no crash on any input."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmfiles import Client
from llmfiles.models import Problem
from llmfiles.sources import FileObjSource, PathSource
from llmfiles.validate import Report, check_jsonl
from llmfiles.validate.jsonl import BLOCK


def check(data: bytes, **kw: Any) -> Report:
    return check_jsonl(FileObjSource(io.BytesIO(data), "t.jsonl", 0, len(data)), **kw)


def codes(report: Report) -> list[tuple[int | None, str]]:
    return [(p.line, p.code) for p in report.problems]


def test_a_good_file_has_no_problems() -> None:
    report = check(b'{"a": 1}\n{"b": [1, 2]}\n{"c": {"d": null}}\n')
    assert report.ok and report.problems == [] and report.records == 3
    assert report.as_dict()["ok"] is True


def test_problems_carry_line_numbers() -> None:
    data = b"\n".join(
        [
            b'{"ok": 1}',
            b'{"bad": "\xff\xfe"}',  # 2: not UTF-8
            b"",  # 3: blank
            b"   ",  # 4: blank
            b'{"broken": ',  # 5: invalid JSON
            b"[1, 2, 3]",  # 6: not an object
            b'"text"',  # 7: not an object
            b"42",  # 8: not an object
            b'{"ok": 2}',
        ]
    )
    report = check(data + b"\n")
    assert codes(report) == [
        (2, "not_utf8"),
        (3, "blank_line"),
        (4, "blank_line"),
        (5, "invalid_json"),
        (6, "not_object"),
        (7, "not_object"),
        (8, "not_object"),
    ]
    assert report.records == 2 and report.errors == 7 and not report.ok
    assert "column" in report.problems[3].message
    assert "list" in report.problems[4].message
    assert all(p.severity == "error" for p in report.problems)


def test_crlf_files_are_accepted() -> None:
    report = check(b'{"a": 1}\r\n{"b": 2}\r\n{"c": 3}')
    assert report.ok and report.records == 3 and report.problems == []


def test_a_bom_is_noted_and_the_first_line_still_parses() -> None:
    report = check(b'\xef\xbb\xbf{"a": 1}\n{"b": 2}\n')
    assert report.has_bom
    assert report.ok and report.records == 2
    assert not check(b'{"a": 1}\n').has_bom


def test_a_bom_later_in_the_file_is_not_a_bom() -> None:
    report = check(b'{"a": 1}\n\xef\xbb\xbf{"b": 2}\n')
    assert not report.has_bom
    assert codes(report) == [(2, "invalid_json")]


def test_an_empty_or_blank_file_has_no_records() -> None:
    assert codes(check(b"")) == [(None, "no_records")]
    assert codes(check(b"\n")) == [(1, "blank_line")]


def test_a_last_line_without_newline_is_checked() -> None:
    assert codes(check(b'{"a": 1}\n{"b": ')) == [(2, "invalid_json")]


def test_max_problems_caps_the_list_but_counts_the_rest() -> None:
    data = b"".join(b"not json\n" if i % 2 else b'{"ok": true}\n' for i in range(200))
    report = check(data, max_problems=5)
    assert len(report.problems) == 5
    assert report.errors == 100 and report.total == 100
    assert [p.line for p in report.problems] == [2, 4, 6, 8, 10]
    assert report.as_dict()["problems_not_shown"] == 95


def test_deeply_nested_json_is_a_problem_not_a_crash() -> None:
    report = check(b'{"ok": 1}\n' + b"[" * 100_000 + b"]" * 100_000 + b"\n" + b'{"a": ' * 50_000 + b"\n")
    assert [line for line, _ in codes(report)] == [2, 3]
    assert report.records == 1


def test_huge_numbers_are_a_problem_not_a_crash() -> None:
    report = check(b'{"n": ' + b"9" * 10_000 + b"}\n")
    assert codes(report) == [(1, "invalid_json")]


def test_lines_across_read_blocks(tmp_path: Path) -> None:
    """Lines spanning the reader's block boundary keep their numbers, and a multibyte character split by the
    boundary is not mistaken for bad UTF-8."""
    path = tmp_path / "big.jsonl"
    first = b'{"pad": "' + b"x" * (BLOCK - 12) + b'"}\n'  # ends just past the first block
    second = b'{"text": "' + "é".encode() * 10 + b'"}\n'
    lines = [first, second] + [b'{"i": %d}\n' % i for i in range(10)] + [b"oops\n"]
    path.write_bytes(b"".join(lines))
    report = check_jsonl(PathSource(str(path), "big.jsonl", path.stat().st_size))
    assert codes(report) == [(13, "invalid_json")]
    assert report.records == 12


def test_digests_are_computed_in_the_same_pass() -> None:
    """v2: the digests come from the upload's one read (the pipeline's Inspection), beside the checks."""
    import hashlib

    from llmfiles.pipeline import Inspection, make_checks

    data = b'{"a": 1}\n' * 1000
    source = FileObjSource(io.BytesIO(data), "t.jsonl", 0, len(data))
    inspection = Inspection(source, checks=make_checks(source, None), digests=("md5", "sha256"))
    for offset in range(0, len(data), 4096):
        inspection.feed(offset, data[offset : offset + 4096])
    inspection.feed(0, data[:100])  # bytes fed again (a retried request) are not counted twice
    result = inspection.finish()
    assert result.report is not None and result.report.records == 1000 and result.report.duplicate_lines == 999
    assert result.digests == {
        "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


class EveryThird:
    def __init__(self) -> None:
        self.seen: list[int] = []

    def check(self, line_no: int, record: dict[str, Any]) -> Iterable[Problem]:
        self.seen.append(line_no)
        if line_no % 3 == 0:
            yield Problem(line=line_no, code="third", message="m", severity="warning", path="messages[0]")

    def finish(self) -> Iterable[Problem]:
        return [Problem(line=None, code="too_few", message="need more")]


def test_record_checkers_see_records_and_may_add_warnings() -> None:
    checker = EveryThird()
    report = check(b'{"a": 1}\n' * 6 + b"[]\n", checker=checker)
    assert checker.seen == [1, 2, 3, 4, 5, 6]  # not line 7, which is no object
    assert codes(report) == [(3, "third"), (6, "third"), (7, "not_object"), (None, "too_few")]
    assert report.warnings == 2 and report.errors == 2
    assert report.problems[0].describe() == "line 3, messages[0]: warning third: m"


def test_client_validate(tmp_path: Path) -> None:
    path = tmp_path / "v.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"b": 2}\n')
    report = Client("local", environ={}, home=str(tmp_path)).validate(path, purpose="batch")
    assert codes(report) == [(2, "blank_line")] and report.path == str(path)
    assert json.loads(json.dumps(report.as_dict()))["problems"][0]["line"] == 2


@settings(
    max_examples=250, derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    st.one_of(
        st.binary(max_size=2000),
        st.lists(
            st.one_of(
                st.binary(max_size=40),
                st.text(max_size=40).map(str.encode),
                st.recursive(
                    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
                    max_leaves=10,
                ).map(lambda v: json.dumps(v).encode()),
                st.sampled_from([b"\xef\xbb\xbf", b"\r", b"\r\n", b"\n", b"{", b"}", b'"', b"\\", b"\x00", b"\xc3"]),
            ),
            max_size=30,
        ).map(b"".join),
    )
)
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    report = check(data)
    assert report.errors + report.warnings == report.total
    assert len(report.problems) <= report.total
    assert all(p.line is None or p.line >= 1 for p in report.problems)
    lines = [p.line for p in report.problems if p.line is not None]
    assert lines == sorted(lines)
    assert report.records <= data.count(b"\n") + 1
    if report.ok:
        assert report.records > 0


def test_a_trailing_blank_line_is_refused_and_one_final_newline_is_not() -> None:
    # JSON Lines lets the last line end with one newline; an empty line after it is a blank line like any other
    assert check(b'{"a": 1}\n{"b": 2}\n').problems == []
    report = check(b'{"a": 1}\n{"b": 2}\n\n')
    assert not report.ok and codes(report) == [(3, "blank_line")]
    assert "remove it" in report.problems[0].message
    assert codes(check(b'{"a": 1}\r\n\r\n')) == [(2, "blank_line")]


def test_a_binary_file_is_said_once_not_on_every_line() -> None:
    import gzip

    lines = b"".join(b'{"n": %d, "text": "caf\xc3\xa9 ' % i + b"x" * 200 + b'"}\n' for i in range(400))
    report = check(gzip.compress(lines))
    assert not report.ok and report.errors == 1 and report.records == 0
    (problem,) = report.problems
    assert (problem.line, problem.code) == (None, "binary_file") and "binary" in problem.message
    assert "iconv" not in problem.message
    report = check(b"\x00" * 10 + b"\n" * 40)
    assert codes(report) == [(None, "binary_file")] and report.lines == 40
    utf16 = '{"a": 1}\n{"b": 2}\n'.encode("utf-16")
    (problem,) = check(utf16).problems
    assert problem.code == "not_utf8" and "UTF-16" in problem.message and "iconv -f UTF-16" in problem.message
    # Latin-1 text is text in another encoding: its lines are named, with the way to convert it
    latin1 = check('{"a": "café"}\n{"b": "naïve"}\n'.encode("latin-1"))
    assert codes(latin1) == [(1, "not_utf8"), (2, "not_utf8")] and "iconv" in latin1.problems[0].message


def test_a_binary_file_stops_an_upload_and_its_record_rules_say_nothing_more(tmp_path: Path) -> None:
    from recordcheckers import Rules

    checker = Rules()
    report = check(b"PK\x03\x04\x14\x00\x00\x00" + b"\x00" * 100 + b"\n{}\n", checker=checker)
    assert codes(report) == [(None, "binary_file")] and checker.records == 0  # nor its "counted" at the end
    path = tmp_path / "a.zip"
    path.write_bytes(b"PK\x03\x04\x14\x00\x00\x00" + b"\x00" * 100 + b"\n{}\n")
    report = Client("local", environ={}).validate(path)
    assert codes(report) == [(None, "binary_file")]
