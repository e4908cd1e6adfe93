"""The ``llmfiles`` command, run as ``python -m llmfiles`` in a subprocess with its own ``$LLMFILES_HOME``."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from clirun import Run, as_json

from llmfiles import Client


def one_line_error(proc: subprocess.CompletedProcess[str], *needles: str, more: bool = False) -> str:
    """The error's first line: what failed and what to do, short; with ``more``, lines llmfiles laid out may
    follow (the places looked at, the installed providers), never a traceback."""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 or (more and len(lines) > 1), proc.stderr
    assert lines[0].startswith("llmfiles: error: ") and len(lines[0]) < 220, lines[0]
    for needle in needles:
        assert needle in lines[0]
    assert proc.stdout == ""
    return lines[0]


def test_help(run: Run) -> None:
    out = run("--help").stdout
    for command in ("upload", "list", "get", "download", "delete", "validate", "providers"):
        assert command in out
    assert "Exit codes" in out
    assert "--dry-run" in run("upload", "--help").stdout
    assert run(check=2).stdout.startswith("usage:")  # no command: help, exit 2
    assert "llmfiles" in run("--version").stdout


def test_providers(run: Run) -> None:
    assert "local" in run("providers").stdout
    rows = as_json(run("providers", "--json"))
    local = next(r for r in rows if r["name"] == "local")
    assert local["package"] == "llmfiles" and "fine-tune" in local["purposes"] and local["large_files"] is True


def test_upload_get_list_download_delete(run: Run, make_jsonl: Any, tmp_path: Path) -> None:
    src = make_jsonl("train.jsonl")
    fo = as_json(run("upload", str(src), "--purpose", "fine-tune", "--json"))
    assert fo["filename"] == "train.jsonl" and fo["bytes"] == src.stat().st_size and fo["provider"] == "local"
    assert "raw" not in fo
    fid = fo["id"]

    assert as_json(run("get", fid, "--json")) == fo
    text = run("get", fid).stdout
    assert fid in text and "train.jsonl" in text and "fine-tune" in text

    assert [f["id"] for f in as_json(run("list", "--json"))] == [fid]
    assert fid in run("list").stdout
    assert as_json(run("list", "--purpose", "batch", "--json")) == []

    out = tmp_path / "out.jsonl"
    got = as_json(run("download", fid, "-o", str(out), "--json"))
    assert got == {"id": fid, "path": str(out), "bytes": src.stat().st_size}
    assert out.read_bytes() == src.read_bytes()
    one_line_error(run("download", fid, "-o", str(out), check=2), "already exists")
    assert "saved" in run("download", fid, "-o", str(out), "--force").stdout

    assert as_json(run("delete", fid, "--json")) == {"id": fid, "deleted": True}
    one_line_error(run("get", fid, check=1), fid)
    assert as_json(run("list", "--json")) == []


def test_upload_text_output(run: Run, make_jsonl: Any) -> None:
    out = run("upload", str(make_jsonl()), "--filename", "named.jsonl").stdout
    assert out.startswith("file-") and "named.jsonl" in out


def test_upload_with_validation_file(run: Run, make_jsonl: Any) -> None:
    result = as_json(run("upload", str(make_jsonl("t.jsonl")), "--validation", str(make_jsonl("v.jsonl")), "--json"))
    assert set(result) == {"training", "validation"}
    assert result["training"]["filename"] == "t.jsonl" and result["validation"]["filename"] == "v.jsonl"
    assert len(as_json(run("list", "--json"))) == 2


def test_large_upload_in_parts(run: Run, make_jsonl: Any, tmp_path: Path) -> None:
    src = make_jsonl("big.jsonl", min_bytes=300_000)
    fo = as_json(run("upload", str(src), "--part-size", "64KiB", "--multipart-threshold", "64KiB", "--json"))
    out = tmp_path / "big-back.jsonl"
    run("download", fo["id"], "-o", str(out))
    assert out.read_bytes() == src.read_bytes()


def test_dry_run_sends_nothing(run: Run, make_jsonl: Any, home: Path) -> None:
    src = make_jsonl("big.jsonl", min_bytes=300_000)
    plan = as_json(
        run("upload", str(src), "--dry-run", "--json", "--part-size", "64KiB", "--multipart-threshold", "64KiB")
    )
    assert plan["mode"] == "parts"
    assert plan["parts"] == -(-src.stat().st_size // 65536) and plan["part_size"] == 65536
    assert plan["bytes"] == src.stat().st_size and plan["provider"] == "local"

    single = as_json(run("upload", str(src), "--dry-run", "--json"))
    assert single["mode"] == "single request"

    both = as_json(run("upload", str(src), "--validation", str(src), "--dry-run", "--json"))
    assert set(both) == {"training", "validation"}

    text = run("upload", str(src), "--dry-run", "--part-size", "64KiB", "--multipart-threshold", "64KiB").stdout
    assert "nothing will be sent" in text and "mode:" in text and "parts" in text

    assert as_json(run("list", "--json")) == []
    files = home / "local" / "files"
    assert not files.exists() or list(files.iterdir()) == []


def test_validate_command(run: Run, make_jsonl: Any, tmp_path: Path) -> None:
    assert "ok" in run("validate", str(make_jsonl())).stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"a": 1}\n\nnot json\n[1]\n')
    proc = run("validate", str(bad), check=2)
    assert "line 2" in proc.stdout and "line 3" in proc.stdout and "line 4" in proc.stdout
    assert "NOT ok" in proc.stdout
    report = as_json(run("validate", str(bad), "--json", "--max-problems", "1", check=2))
    assert report["ok"] is False and report["errors"] == 3
    assert len(report["problems"]) == 1 and report["problems_not_shown"] == 2


def test_validate_says_which_rules_ran(run: Run, make_jsonl: Any) -> None:
    path = str(make_jsonl())
    # the default provider (local) has no record rules: the verdict and a line say so, and name who has some
    out = run("validate", path).stdout
    assert "ok as JSONL (no record rules ran" in out
    assert "checked: UTF-8 JSONL, one JSON object per line only; no record rules: provider 'local'" in out
    assert "no installed provider has record rules for 'fine-tune' files" in out  # this run has no plugins
    report = as_json(run("validate", path, "--json"))
    assert report["record_rules"] is False and "no record rules" in report["checks"][1]
    assert Client(environ={}).validate(path).record_rules is False


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["upload", "{train}", "--purpose", "nope"], ["'nope'", "fine-tune"]),
        (["upload", "{missing}"], ["no such file"]),
        (["upload", "{train}", "--provider", "nosuchprovider"], ["'nosuchprovider'", "not installed", "+"]),
        (["upload", "{train}", "--set", "bogus=1"], ["'bogus'", "+"]),
        (["upload", "{train}", "--timeout", "soon"], ["argument timeout"]),
        (["upload", "{train}", "--part-size", "lots"], ["part_size"]),
        (["list", "--purpose", "nope"], ["'nope'"]),
        (["get", "file-" + "0" * 32], ["file-" + "0" * 32]),
        (["get", "../../etc/passwd"], []),
        (["delete", "file-" + "0" * 32], []),
    ],
)
def test_errors_are_one_line_with_the_right_exit_code(
    run: Run, make_jsonl: Any, tmp_path: Path, args: list[str], needles: list[str]
) -> None:
    paths = {"{train}": str(make_jsonl()), "{missing}": str(tmp_path / "missing.jsonl")}
    code = 1 if args[0] in ("get", "delete") else 2
    proc = run(*(paths.get(a, a) for a in args), check=code)
    more = "+" in needles  # the installed providers follow on a line of their own
    one_line_error(proc, *(n for n in needles if n != "+"), more=more)


def test_invalid_jsonl_upload_exits_2_listing_problems(run: Run, tmp_path: Path, home: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"a": 1}\n{"b": \n')
    proc = run("upload", str(bad), check=2)
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("llmfiles: error: ") and "line 2" in proc.stderr
    assert "--no-validate" in proc.stderr.splitlines()[0]  # the command line's advice, not validate=False
    # under --json the error is one JSON object on stdout (changed: it was text on stderr), with the problems
    error = as_json(run("upload", str(bad), "--json", check=2))["error"]
    assert error["type"] == "ValidationError" and error["exit_code"] == 2 and "--no-validate" in error["hint"]
    assert [p["line"] for p in error["problems"]] == [2] and error["problems"][0]["code"] == "invalid_json"
    assert as_json(run("list", "--json")) == []
    assert as_json(run("upload", str(bad), "--no-validate", "--json"))["bytes"] == bad.stat().st_size


def test_debug_shows_the_traceback(run: Run) -> None:
    proc = run("--debug", "get", "file-" + "0" * 32, check=1)
    assert "Traceback" in proc.stderr and "llmfiles: error:" in proc.stderr


def test_no_checksum_and_no_validate_become_settings() -> None:
    from llmfiles.cli import _settings_from, build_parser

    args = build_parser().parse_args(["upload", "f.jsonl", "--purpose", "fine-tune", "--no-checksum", "--no-validate"])
    assert _settings_from(args) == {"checksum": False, "validate": False}
    args = build_parser().parse_args(["upload", "f.jsonl", "-s", "api-base=x=y", "--part-size", "8MiB"])
    assert _settings_from(args) == {"api_base": "x=y", "part_size": "8MiB"}
    plain = build_parser().parse_args(["upload", "f.jsonl", "--purpose", "fine-tune"])
    assert "checksum" not in _settings_from(plain) and "validate" not in _settings_from(plain)
