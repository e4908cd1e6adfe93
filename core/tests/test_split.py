"""``llmfiles split`` and ``upload --split`` against the built-in ``local`` provider.

The shards of a split are slices of the input: put back together they are the input byte for byte (a property
test over lines of any bytes, CRLF, blank lines, a BOM, no final newline), each fits the limits, and the shards of a
file with a minimum of records per job all reach it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from clirun import Run, as_json, cli_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmfiles
from llmfiles import CannotSplit, FileLimits, SplitUploadFailed
from llmfiles.splitting import split_file

# --- the split itself ------------------------------------------------------------------------------------------

line_bodies = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"x"))
endings = st.sampled_from([b"\n", b"\r\n"])


@st.composite
def jsonl_like(draw: st.DrawFn) -> bytes:
    """Lines of arbitrary bytes (blank ones too), CRLF or LF, maybe a BOM, maybe no final newline."""
    lines = draw(st.lists(st.tuples(line_bodies, endings), min_size=1, max_size=30))
    data = b"".join(body + end for body, end in lines)
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    if draw(st.booleans()):
        data = data.rstrip(b"\r\n") or b"x"
    return data


def _records(data: bytes) -> int:
    """Lines that are not blank (a line ends at ``\n`` only: a lone ``\r`` is inside a line)."""
    return sum(1 for line in data.split(b"\n") if line.strip())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=jsonl_like(),
    max_bytes=st.one_of(st.none(), st.integers(45, 200)),
    max_records=st.one_of(st.none(), st.integers(1, 8)),
    min_records=st.one_of(st.none(), st.integers(1, 3)),
)
def test_the_shards_are_the_file_byte_for_byte_and_fit_the_limits(
    tmp_path_factory: pytest.TempPathFactory,
    data: bytes,
    max_bytes: int | None,
    max_records: int | None,
    min_records: int | None,
) -> None:
    folder = tmp_path_factory.mktemp("split")
    src = folder / "in.jsonl"
    src.write_bytes(data)
    if min_records is not None and max_records is not None and min_records > max_records:
        min_records = max_records
    limits = FileLimits(max_bytes=max_bytes, max_records=max_records, min_records=min_records)
    try:
        shards = split_file(src, folder / "out", limits)
    except CannotSplit as exc:
        # refused only for a reason it names: a line too long, too few records, or shards below the minimum
        text = str(exc)
        assert "bytes, more than" in text or "records" in text
        assert not (folder / "out").exists() or not any((folder / "out").iterdir())
        return
    parts = [s.path.read_bytes() for s in shards]
    assert b"".join(parts) == data
    names = [s.path.name for s in shards]
    assert names == sorted(names) and len(set(names)) == len(names)
    for s, part in zip(shards, parts, strict=True):
        assert len(part) == s.bytes
        assert _records(part) == s.records
        if max_bytes is not None:
            assert s.bytes <= max_bytes
        if max_records is not None:
            assert s.records <= max_records
        if min_records is not None:
            assert s.records >= min_records
    for part in parts[:-1]:  # lines are never cut: every shard but the last ends a line
        assert part.endswith(b"\n")
    assert sorted(p.name for p in (folder / "out").iterdir()) == names  # no temporary file left


def test_crlf_a_bom_and_no_final_newline_go_through_unchanged(tmp_path: Path) -> None:
    data = b'\xef\xbb\xbf{"a": 1}\r\n{"a": 2}\r\n\r\n{"a": 3}\n{"a": 4}'
    src = tmp_path / "in.jsonl"
    src.write_bytes(data)
    result = llmfiles.split(src, output_dir=tmp_path / "out", provider="local", max_records=2)
    parts = [p.read_bytes() for p in result.paths]
    assert parts == [b'\xef\xbb\xbf{"a": 1}\r\n{"a": 2}\r\n\r\n', b'{"a": 3}\n{"a": 4}']
    assert [p.name for p in result.paths] == ["in.001-of-002.jsonl", "in.002-of-002.jsonl"]
    assert [(s.first_line, s.lines, s.records) for s in result.shards] == [(1, 3, 2), (4, 2, 2)]


def _requests(n: int, pad: int = 10) -> bytes:
    return b"".join(json.dumps({"custom_id": f"r{i}", "pad": "x" * pad}).encode() + b"\n" for i in range(n))


def test_the_minimum_of_a_job_moves_records_into_the_last_shard(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(_requests(21))
    shards = split_file(src, tmp_path / "out", FileLimits(max_records=10, min_records=4))
    assert [s.records for s in shards] == [10, 7, 4]
    assert b"".join(s.path.read_bytes() for s in shards) == src.read_bytes()
    # without the minimum the last shard keeps its one record
    plain = split_file(src, tmp_path / "plain", FileLimits(max_records=10))
    assert [s.records for s in plain] == [10, 10, 1]


def test_a_file_below_the_minimum_is_refused_and_so_is_a_minimum_the_shards_cannot_reach(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(_requests(99))
    with pytest.raises(CannotSplit, match="has 99 records; a job takes at least 100"):
        split_file(src, tmp_path / "out", FileLimits(max_records=50_000, min_records=100))
    src.write_bytes(_requests(21))
    with pytest.raises(CannotSplit, match="too few to give it the 8 a job needs"):
        split_file(src, tmp_path / "out", FileLimits(max_records=10, min_records=8))
    assert not (tmp_path / "out").exists()


def test_a_line_longer_than_the_byte_limit_is_named(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(_requests(2) + b'{"big": "' + b"y" * 500 + b'"}\n' + _requests(2))
    with pytest.raises(CannotSplit, match=r"line 3 has 512 bytes, more than the 200"):
        split_file(src, tmp_path / "out", FileLimits(max_bytes=200))


def test_existing_shards_are_kept_unless_forced_and_an_error_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(_requests(5))
    out = tmp_path / "out"
    out.mkdir()
    (out / "in.002-of-003.jsonl").write_bytes(b"mine")
    with pytest.raises(llmfiles.InputError, match=r"already exist .*force"):
        split_file(src, out, FileLimits(max_records=2))
    assert sorted(p.name for p in out.iterdir()) == ["in.002-of-003.jsonl"]
    assert (out / "in.002-of-003.jsonl").read_bytes() == b"mine"
    # a failure while the shards are written: no shard and no temporary file is left, nothing is replaced
    import llmfiles.splitting as split_module

    real_copy = split_module._copy
    calls = []

    def failing_copy(*args: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        real_copy(*args)

    monkeypatch.setattr(split_module, "_copy", failing_copy)
    with pytest.raises(OSError, match="disk full"):
        split_file(src, out, FileLimits(max_records=2), force=True)
    assert sorted(p.name for p in out.iterdir()) == ["in.002-of-003.jsonl"]
    assert (out / "in.002-of-003.jsonl").read_bytes() == b"mine"
    monkeypatch.setattr(split_module, "_copy", real_copy)
    shards = split_file(src, out, FileLimits(max_records=2), force=True)
    assert [s.records for s in shards] == [2, 2, 1] and (out / "in.002-of-003.jsonl").read_bytes() != b"mine"


def test_a_file_that_fits_is_one_shard_and_an_empty_one_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(_requests(3))
    result = llmfiles.split(src, output_dir=tmp_path / "out", provider="local")
    assert [p.name for p in result.paths] == ["in.001-of-001.jsonl"]
    assert result.paths[0].read_bytes() == src.read_bytes()
    src.write_bytes(b"")
    with pytest.raises(CannotSplit, match="empty"):
        llmfiles.split(src, output_dir=tmp_path / "out2", provider="local")


def test_split_takes_a_path_and_a_purpose_of_the_provider(tmp_path: Path) -> None:
    with open(tmp_path / "x.jsonl", "wb") as fh, pytest.raises(llmfiles.InputError, match="by its path"):
        split_file(fh, tmp_path, FileLimits())  # type: ignore[arg-type]
    (tmp_path / "x.jsonl").write_bytes(b"{}\n")
    with pytest.raises(llmfiles.InvalidPurpose):
        llmfiles.split(tmp_path / "x.jsonl", output_dir=tmp_path / "o", provider="local", purpose="nonsense")
    with pytest.raises(llmfiles.InputError, match="'assistants' files are not JSONL"):
        llmfiles.split(tmp_path / "x.jsonl", output_dir=tmp_path / "o", provider="local", purpose="assistants")


def test_a_provider_s_declared_limits_are_used_and_capped_by_its_largest_file() -> None:
    from attrs import evolve

    from llmfiles.models import ProviderInfo
    from llmfiles.splitting import provider_limits

    info = ProviderInfo(name="p", package="p", purposes=("batch",), max_file_size=1000)
    assert provider_limits(info, "batch") == FileLimits(max_bytes=1000)
    info = evolve(info, file_limits={"batch": FileLimits(max_bytes=5000, max_records=7, docs="u")})
    assert provider_limits(info, "batch") == FileLimits(max_bytes=1000, max_records=7, docs="u")
    with pytest.raises(ValueError, match="min_records is larger"):
        FileLimits(max_records=1, min_records=2)


# --- the command line ------------------------------------------------------------------------------------------


def test_cli_split_lists_the_shards_and_says_when_a_file_fits(run: Run, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(_requests(5))
    out = run("split", str(src), "-o", str(tmp_path / "out"), "--max-records", "2").stdout.splitlines()
    assert out[0] == f"{src}: 3 shards (2 records a shard)"
    assert out[1].strip().startswith(str(tmp_path / "out" / "in.001-of-003.jsonl")) and "lines 1-2" in out[1]
    data = as_json(run("--json", "split", str(src), "-o", str(tmp_path / "o2"), "--max-bytes", "1KB"))
    assert [s["name"] for s in data["shards"]] == ["in.001-of-001.jsonl"] and data["limits"]["max_bytes"] == 1000
    assert "already fits" in run("split", str(src), "-o", str(tmp_path / "o3")).stdout
    again = run("split", str(src), "-o", str(tmp_path / "out"), "--max-records", "2", check=2)
    assert "already exist" in again.stderr and "--force" in again.stderr
    run("split", str(src), "-o", str(tmp_path / "out"), "--max-records", "2", "--force")
    refused = run("--json", "split", str(src), "-o", str(tmp_path / "o4"), "--min-records", "6", check=2)
    assert as_json(refused)["error"]["type"] == "CannotSplit"


def test_cli_upload_split_lists_every_shard_in_order(run: Run, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(_requests(5))
    data = as_json(run("--json", "upload", str(src), "--purpose", "batch", "--split", "--max-records", "2"))
    assert [f["filename"] for f in data["files"]] == [f"in.00{i}-of-003.jsonl" for i in (1, 2, 3)]
    assert [f["shard"]["first_line"] for f in data["files"]] == [1, 3, 5]
    listed = {f["id"] for f in as_json(run("--json", "list"))}
    assert {f["id"] for f in data["files"]} <= listed
    text = run("upload", str(src), "--purpose", "batch", "--split", "--max-records", "2").stdout.splitlines()
    assert text[0] == f"{src}: 3 shards uploaded to local" and text[1].lstrip().startswith("1/3  file-")
    bad = run("upload", str(src), "--max-records", "2", check=2)
    assert "go with --split" in bad.stderr


# --- uploads of the shards -------------------------------------------------------------------------------------


def test_upload_split_returns_the_shards_file_objects_in_order(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(_requests(7))
    with llmfiles.Client("local") as client:
        result = client.upload(src, purpose="batch", split=FileLimits(max_records=3))
        assert [f.filename for f in result.files] == [s.path.name for s in result.shards]
        assert [s.records for s in result.shards] == [3, 3, 1]
        contents = [client.retrieve(f.id).bytes for f in result.files]
        assert contents == [s.bytes for s in result.shards] and sum(contents) == src.stat().st_size
        # the shards' folder is gone once all are uploaded
        assert not result.shards[0].path.exists()


def test_a_failed_shard_keeps_the_others_and_a_second_run_sends_only_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(_requests(5))
    client = llmfiles.Client("local")
    real = llmfiles.Client.upload
    sent: list[str] = []

    def flaky(self: llmfiles.Client, file: Any, **kw: Any) -> Any:
        name = kw.get("filename") or ""
        if name.startswith("in.002"):
            raise llmfiles.NetworkError("the connection broke")
        if name:  # a shard (the outer call names no file)
            sent.append(name)
        return real(self, file, **kw)

    monkeypatch.setattr(llmfiles.Client, "upload", flaky)
    with pytest.raises(SplitUploadFailed) as info:
        client.upload(src, purpose="batch", split=FileLimits(max_records=2))
    assert sorted(info.value.uploaded) == [1, 3] and list(info.value.failures) == [2]
    text = str(info.value)
    assert "shard 2 (in.002-of-003.jsonl, lines 3-4): NetworkError: the connection broke" in text
    assert "run the same upload again" in text
    assert sorted(sent) == ["in.001-of-003.jsonl", "in.003-of-003.jsonl"]
    kept = {i: fo.id for i, fo in info.value.uploaded.items()}
    monkeypatch.setattr(llmfiles.Client, "upload", real)
    result = client.upload(src, purpose="batch", split=FileLimits(max_records=2))
    assert result.files[0].id == kept[1] and result.files[2].id == kept[3]  # reused, not sent again
    assert len(list(client.list_files(purpose="batch"))) == 3
    client.close()


STOP_SCRIPT = """
import json, sys, time
import llmfiles
args = json.loads(sys.argv[1])

def progress(event):
    if event.done >= args["stop_after"]:
        open(args["marker"], "w").close()
        time.sleep(600)

llmfiles.Client("local").upload(args["path"], purpose="batch", progress=progress, max_concurrency=1,
                                multipart_threshold="256KiB", part_size="256KiB",
                                split=llmfiles.FileLimits(max_records=args["records"]))
"""


def test_upload_split_resumes_after_kill_9(run: Run, home: Path, tmp_path: Path) -> None:
    run_env = cli_env(home, tmp_path)
    src = tmp_path / "big.jsonl"
    src.write_bytes(_requests(3 * 40, pad=20_000))  # 3 shards of about 800 KB: 4 parts each
    marker = tmp_path / "stopped"
    # stopped at 80% of the bytes: some shard is in its third part by then, so its first parts are recorded
    args = {"path": str(src), "marker": str(marker), "stop_after": src.stat().st_size * 8 // 10, "records": 40}
    proc = subprocess.Popen([sys.executable, "-c", STOP_SCRIPT, json.dumps(args)], env=run_env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    unfinished = as_json(run("uploads", "--json"))
    assert unfinished and all(u["filename"].startswith("big.00") for u in unfinished)
    assert any(u["parts_done"] >= 1 for u in unfinished)
    large = ("--multipart-threshold", "256KiB", "--part-size", "256KiB")
    out = run("--json", "upload", str(src), "--purpose", "batch", "--split", "--max-records", "40", *large)
    files = as_json(out)["files"]
    assert [f["filename"] for f in files] == [f"big.00{i}-of-003.jsonl" for i in (1, 2, 3)]
    assert f"resuming the upload of {src}:" in out.stderr  # one progress for the whole set
    assert as_json(run("uploads", "--json")) == []
    stored = [f for f in as_json(run("--json", "list")) if f["purpose"] == "batch"]
    assert len(stored) == 3 and sum(f["bytes"] for f in stored) == src.stat().st_size


def test_upload_split_needs_a_path(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_bytes(b"{}\n")
    with open(tmp_path / "x.jsonl", "rb") as fh, pytest.raises(llmfiles.InputError, match="by its path"):
        llmfiles.upload(fh, purpose="batch", provider="local", split=True)
