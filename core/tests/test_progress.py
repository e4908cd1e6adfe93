"""Progress people can read: sizes in binary units labelled as such, a download bar with its total, and a resumed
upload that says so ("resuming the upload of X: 12 of 20 parts already uploaded")."""

from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path

import pytest

from llmfiles import Client
from llmfiles.models import Progress
from llmfiles.terminal import Terminal, iec

PART = 256 * 1024
LARGE = {"multipart_threshold": "256KiB", "part_size": "256KiB", "max_concurrency": 1}


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (314_573_628, "300.0 MiB"), (5 * 1024**3, "5.0 GiB")],
)
def test_sizes_are_binary_and_labelled_so(n: int, text: str) -> None:
    assert iec(n) == text


def test_the_bar_says_mib_for_mib(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    term = Terminal(bars=True)
    total = 314_573_628
    for done in (0, total // 2, total):
        term.progress(Progress(operation="upload", filename="big.jsonl", done=done, total=total))
    term.close()
    last = err.getvalue().replace("\r", "\n").strip().splitlines()[-1]
    assert "300.0 MiB/300.0 MiB" in last and "100%" in last, last
    assert re.search(r"\d (KiB|MiB|GiB|TiB)/s\]", last), last  # a rate in binary units, labelled so
    assert not re.search(r"\dM/|\dMB/s", last), last  # not tqdm's M and MB/s


def test_quiet_shows_no_bar_and_no_notice(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    term = Terminal(quiet=True, bars=True)
    term.progress(Progress(operation="upload", filename="x", done=5, total=10, resumed=5, parts=2, parts_resumed=1))
    term.notice("something")
    term.close()
    assert err.getvalue() == ""


def test_the_download_progress_has_a_total(tmp_path: Path, make_jsonl: object) -> None:
    client = Client("local", environ={}, home=str(tmp_path / "home"))
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    f = client.upload(path, purpose="assistants")
    events: list[Progress] = []
    client.download(f.id, tmp_path / "back.bin", progress=events.append)
    assert events and {e.total for e in events} == {path.stat().st_size}
    assert events[-1].done == path.stat().st_size


def test_a_resumed_upload_says_how_much_an_earlier_run_sent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client = Client("local", environ={}, home=str(tmp_path / "home"))
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(9 * PART + 77))  # 10 parts

    def ctrl_c(event: Progress) -> None:
        if event.done >= 3 * PART:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        client.upload(path, purpose="assistants", progress=ctrl_c, **LARGE)
    events: list[Progress] = []
    client.upload(path, purpose="assistants", progress=events.append, **LARGE)
    assert events[0].done == 0 and events[0].resumed == 0  # the start, before the earlier run's parts are known
    first = next(e for e in events if e.resumed)
    assert first.parts == 10 and first.parts_resumed >= 2 and first.resumed == first.parts_resumed * PART
    assert first.done == first.resumed and events[-1].done == path.stat().st_size

    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    term = Terminal()
    for e in events:
        term.progress(e)
    term.close()
    share = f"{first.resumed / first.total:.0%}" if first.total else ""
    assert err.getvalue() == (
        f"llmfiles: resuming the upload of blob.bin: {first.parts_resumed} of 10 parts already uploaded "
        f"({share}, {iec(first.resumed)} of {iec(path.stat().st_size)})\n"
    )
