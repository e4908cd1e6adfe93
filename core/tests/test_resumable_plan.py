"""The engine's path for a :class:`~llmfiles.provider.ResumableUpload` (one session filled in order, as Cloud
Storage's resumable uploads): continuing from what the provider kept, asking after an interrupted chunk instead of
resending it, the provider's checksum compared with the bytes sent, giving up, resuming in a later run, and the
final chunk held back until the checks of the whole file passed.

The provider is ``sess`` (``session.py``), played by the fault server on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultserver import FaultServer
from session import PART, Session, session_client

from llmfiles import Client, parts
from llmfiles.clock import FakeClock
from llmfiles.errors import RetriesExhausted, UploadFailed, ValidationError
from llmfiles.models import Progress

SIZE = 1_000_003


@pytest.fixture
def blob(tmp_path: Path) -> Path:
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(SIZE))
    return path


@pytest.fixture
def session(server: FaultServer) -> Session:
    s = Session()
    server.default = s
    return s


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(server: FaultServer, clock: FakeClock, tmp_path: Path) -> Iterator[Client]:
    c = session_client(server.url, clock=clock, home=str(tmp_path / "home"))
    yield c
    c.close()


def test_chunks_continue_from_what_the_provider_kept(client: Client, session: Session, blob: Path) -> None:
    session.keep = lambda n, sent: sent - 12_345 if n % 3 == 1 else sent
    events: list[Progress] = []
    fo = client.upload(blob, purpose="assistants", progress=events.append)
    assert bytes(session.stored) == blob.read_bytes() and fo.bytes == SIZE and fo.id == "file-s1"
    assert not any(e.startswith("query") for e in session.log)
    assert any(e == f"chunk 1 kept {PART - 12_345} of {PART}" for e in session.log)
    assert session.log[2].startswith("chunk 1 kept") and events[-1].done == SIZE
    assert not session.aborted and client.unfinished_uploads() == []


def test_a_broken_chunk_is_continued_after_asking_not_resent(
    client: Client, session: Session, blob: Path, clock: FakeClock
) -> None:
    session.cut = lambda n: 40_000 if n in (2, 5) else None
    events: list[Progress] = []
    client.upload(blob, purpose="assistants", progress=events.append)
    assert bytes(session.stored) == blob.read_bytes()
    assert "chunk 2 cut after 40000" in session.log and "query 240000" in session.log
    # the next chunk starts where the provider's answer says, not at the start of the broken one
    assert session.log[session.log.index("query 240000") + 1] == f"chunk 3 kept {PART} of {PART}"
    assert len(clock.sleeps) == 2  # one pause (urllib3's backoff, on the client's clock) before each question
    assert events[-1].done == SIZE


def test_the_reported_checksum_is_compared_with_the_bytes_sent(
    server: FaultServer, client: Client, session: Session, blob: Path
) -> None:
    session.keep = lambda n, sent: sent // 2 if n == 1 else sent
    session.cut = lambda n: 77 if n == 4 else None
    assert client.upload(blob, purpose="assistants").checksums["md5"] == session.file["md5"]  # type: ignore[index]

    again = Session()
    again.corrupt = True
    server.default = again
    with pytest.raises(UploadFailed, match="md5") as info:
        client.upload(blob, purpose="assistants")
    assert again.deleted == ["file-s1"]  # what the provider stored wrongly is deleted again
    assert any("deleted again" in note for note in info.value.__notes__)


def test_a_provider_that_keeps_nothing_more_is_given_up(client: Client, session: Session, blob: Path) -> None:
    session.keep = lambda n, sent: 0 if n >= 2 else sent
    with pytest.raises(UploadFailed, match="kept no more"):
        client.upload(blob, purpose="assistants")
    assert sum(1 for e in session.log if e.endswith(f"kept 0 of {PART}")) == parts.MAX_RESUMES_WITHOUT_PROGRESS
    assert session.aborted and client.unfinished_uploads() == []


def test_a_connection_that_breaks_every_time_keeps_the_session_for_the_next_run(
    client: Client, session: Session, blob: Path
) -> None:
    session.cut = lambda n: 0 if n >= 3 else None
    with pytest.raises(RetriesExhausted) as info:
        client.upload(blob, purpose="assistants")
    assert any("session was kept" in note for note in info.value.__notes__)
    assert not session.aborted and len(client.unfinished_uploads()) == 1
    assert len(session.stored) == 3 * PART

    session.cut = lambda n: None
    session.log.clear()
    fo = client.upload(blob, purpose="assistants")
    assert session.log[0] == f"query {3 * PART}" and "start" not in session.log  # the same session, continued
    assert bytes(session.stored) == blob.read_bytes() and fo.bytes == SIZE
    assert client.unfinished_uploads() == []


GOOD = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]}) + "\n"


@pytest.mark.parametrize("where", ["last", "first"])
def test_nothing_is_committed_when_the_checks_fail(
    client: Client, session: Session, tmp_path: Path, where: str
) -> None:
    """v2: the chunk that ends the file goes only once the checks of the whole file passed."""
    path = tmp_path / "train.jsonl"
    lines = GOOD * (3 * PART // len(GOOD))
    path.write_text(lines + '{"messages": [' if where == "last" else "not json\n" + lines, encoding="utf-8")
    with pytest.raises(ValidationError):
        client.upload(path, purpose="fine-tune")
    assert session.file is None and session.aborted
    assert len(session.stored) < path.stat().st_size
    assert client.unfinished_uploads() == []


def test_check_first_sends_nothing_of_a_bad_file(
    server: FaultServer, client: Client, session: Session, tmp_path: Path
) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(GOOD * 2000 + "not json\n", encoding="utf-8")
    with pytest.raises(ValidationError):
        client.upload(path, purpose="fine-tune", check_first=True)
    assert server.requests == []
