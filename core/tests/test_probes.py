"""Lost answers: :func:`llmfiles.calls.decide` (which file a create whose answer was lost made, never guessed) and
the whole path through the fault server: found, not found, ambiguous (``MaybeUploaded``), a 2xx whose body cannot
be read, a lookup that fails."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from echo import answer, fo_json, listing
from echo import echo_client as make_echo_client
from faultserver import FaultServer, respond
from hypothesis import given, settings
from hypothesis import strategies as st

from llmfiles import Client
from llmfiles.calls import CLOCK_TOLERANCE, decide
from llmfiles.clock import FakeClock
from llmfiles.errors import AnswerLost, MaybeUploaded, UploadFailed
from llmfiles.models import FileObject

STARTED = 1_800_000_000.0
MD5 = "0123456789abcdef0123456789abcdef"


def fo(id: str, created_at: float, md5: str | None = None) -> FileObject:
    return FileObject(
        id=id,
        provider="p",
        filename="t.jsonl",
        purpose="batch",
        bytes=10,
        created_at=int(created_at),
        status="processed",
        checksums={"md5": md5} if md5 else {},
    )


# --- decide() ----------------------------------------------------------------------------------------------------


def test_nothing_found_is_not_made() -> None:
    assert decide([], unique=False, started=STARTED, digests={"md5": MD5}) is None
    assert decide([], unique=True, started=STARTED, digests={}) is None


def test_a_file_made_before_the_request_started_is_never_it() -> None:
    old = fo("file-old", STARTED - CLOCK_TOLERANCE - 1, MD5)
    assert decide([old], unique=False, started=STARTED, digests={"md5": MD5}) is None
    # within the tolerance for a provider's clock a little behind ours, it may be
    near = fo("file-near", STARTED - CLOCK_TOLERANCE, MD5)
    assert decide([near], unique=False, started=STARTED, digests={"md5": MD5}) == near


def test_a_candidate_is_taken_when_its_checksums_match() -> None:
    other = fo("file-other", STARTED + 1, "f" * 32)
    it = fo("file-it", STARTED + 1, MD5.upper())  # hex compared without case
    assert decide([other, it], unique=False, started=STARTED, digests={"md5": MD5}) == it
    assert decide([other], unique=False, started=STARTED, digests={"md5": MD5}) is None  # other content: not made


def test_a_candidate_that_cannot_be_compared_is_maybe_uploaded() -> None:
    a, b = fo("file-a", STARTED + 1), fo("file-b", STARTED + 2)
    with pytest.raises(MaybeUploaded) as info:
        decide([a, b], unique=False, started=STARTED, digests={"md5": MD5})
    assert tuple(info.value.candidates) == ("file-a", "file-b") and "file-a" in str(info.value)
    with pytest.raises(MaybeUploaded):  # nothing sent to compare with
        decide([fo("file-c", STARTED, MD5)], unique=False, started=STARTED, digests={})


def test_a_unique_lookup_takes_what_it_finds() -> None:
    older, newer = fo("file-1", 1), fo("file-2", 2)
    assert decide([older, newer], unique=True, started=STARTED, digests={"md5": MD5}) == newer
    with pytest.raises(UploadFailed, match="other content"):
        decide([fo("file-3", 3, "e" * 32)], unique=True, started=STARTED, digests={"md5": MD5})


candidates = st.lists(
    st.builds(
        fo,
        id=st.sampled_from(["file-1", "file-2", "file-3", "file-4"]),
        created_at=st.integers(int(STARTED) - 10, int(STARTED) + 10),
        md5=st.sampled_from([None, MD5, "f" * 32]),
    ),
    max_size=5,
)


@settings(max_examples=400, derandomize=True, database=None, deadline=None)
@given(found=candidates, unique=st.booleans(), digests=st.sampled_from([{}, {"md5": MD5}]))
def test_decide_never_guesses(found: list[FileObject], unique: bool, digests: dict[str, str]) -> None:
    fresh = [c for c in found if c.created_at >= int(STARTED) - CLOCK_TOLERANCE]
    try:
        result = decide(found, unique=unique, started=STARTED, digests=digests)
    except MaybeUploaded as exc:
        assert not unique
        assert exc.candidates and set(exc.candidates) <= {c.id for c in fresh}
        assert not any(c.checksums.get("md5") == digests.get("md5") for c in fresh if digests)  # none matched
        return
    except UploadFailed:
        assert unique and digests and max(found, key=lambda c: c.created_at).checksums.get("md5") not in (None, MD5)
        return
    if result is None:
        assert not (unique and found)
        assert all(c.checksums and digests and c.checksums["md5"] != MD5 for c in fresh) or not fresh or unique
        return
    assert result in found
    if unique:
        assert result.created_at == max(c.created_at for c in found)
    else:
        assert result in fresh and digests and result.checksums.get("md5") == MD5


# --- the whole path, through the fault server ---------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall=STARTED)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"custom_id": "a"}\n' * 50)
    return path


def client(server: FaultServer, clock: FakeClock, **settings: Any) -> Client:
    return make_echo_client(server.url, clock=clock, **settings)


def posts(server: FaultServer) -> int:
    return sum(1 for r in server.requests if r.method == "POST")


def candidate(path: Path, **over: Any) -> dict[str, Any]:
    md5 = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
    return fo_json(id="file-found", bytes=path.stat().st_size, created_at=int(STARTED) + 1, md5=md5) | over


def test_a_lost_answer_whose_file_is_found_is_not_sent_again(server: FaultServer, clock: FakeClock, data: Path) -> None:
    server.script(respond(502, body=b"bad gateway"), listing(candidate(data)))
    found = client(server, clock).upload(data, purpose="batch")
    assert found.id == "file-found" and posts(server) == 1
    assert [(r.method, r.path) for r in server.requests] == [("POST", "/files"), ("GET", "/lookup")]
    assert server.requests[1].target == "/lookup?filename=t.jsonl"


def test_a_lost_answer_whose_file_is_not_there_is_sent_again(server: FaultServer, clock: FakeClock, data: Path) -> None:
    old = candidate(data, id="file-old", created_at=int(STARTED) - 3600)  # made before the request started
    other = candidate(data, id="file-other", md5="f" * 32)  # other content
    server.script(
        respond(502, body=b"bad gateway"),
        listing(old, other),
        answer(fo_json(id="file-new", filename="t.jsonl", bytes=data.stat().st_size)),
    )
    made = client(server, clock).upload(data, purpose="batch")
    assert made.id == "file-new" and posts(server) == 2
    assert server.requests[2].complete and server.requests[2].body == server.requests[0].body


def test_a_lost_answer_that_cannot_be_told_apart_is_maybe_uploaded(
    server: FaultServer, clock: FakeClock, data: Path
) -> None:
    server.script(respond(504), listing(candidate(data, md5=None)))
    with pytest.raises(MaybeUploaded) as info:
        client(server, clock).upload(data, purpose="batch")
    assert tuple(info.value.candidates) == ("file-found",) and "file-found" in str(info.value)
    assert info.value.exit_code == AnswerLost("x").exit_code
    assert posts(server) == 1


def test_a_unique_lookup_is_taken_without_checksums(server: FaultServer, clock: FakeClock, data: Path) -> None:
    server.script(respond(502), listing(candidate(data, md5=None, created_at=1)))
    assert client(server, clock, probe="unique").upload(data, purpose="batch").id == "file-found"
    assert posts(server) == 1


def test_a_reset_after_the_whole_request_was_sent_is_a_lost_answer(
    server: FaultServer, clock: FakeClock, data: Path
) -> None:
    def read_then_reset(ex: Any) -> None:
        ex.read_body()
        ex.reset()

    server.script(read_then_reset, listing(candidate(data)))
    assert client(server, clock).upload(data, purpose="batch").id == "file-found"
    assert posts(server) == 1


def test_without_a_probe_a_lost_answer_is_sent_again(server: FaultServer, clock: FakeClock, data: Path) -> None:
    server.script(respond(502), answer(fo_json(id="file-2", bytes=data.stat().st_size)))
    assert client(server, clock, probe="none").upload(data, purpose="batch").id == "file-2"
    assert posts(server) == 2 and len(server.requests) == 2


@pytest.mark.parametrize("found", [True, False])
def test_a_2xx_create_whose_body_is_unreadable_is_looked_for_before_it_is_sent_again(
    server: FaultServer, clock: FakeClock, data: Path, found: bool
) -> None:
    server.script(
        respond(200, body=b"<html>gateway page</html>"),
        listing(candidate(data)) if found else listing(),
        answer(fo_json(id="file-again", bytes=data.stat().st_size)),
    )
    made = client(server, clock).upload(data, purpose="batch")
    assert [r.method for r in server.requests][:2] == ["POST", "GET"]
    if found:
        assert made.id == "file-found" and posts(server) == 1
    else:
        assert made.id == "file-again" and posts(server) == 2


def test_a_second_unreadable_answer_is_an_error(server: FaultServer, clock: FakeClock, data: Path) -> None:
    from llmfiles.errors import ProviderError

    server.script(respond(200, body=b"<html>"), listing(), respond(200, body=b"<html>again</html>"))
    with pytest.raises(ProviderError, match="could not read"):
        client(server, clock).upload(data, purpose="batch")
    assert posts(server) == 2


def test_a_lookup_that_fails_stops_without_sending_again(server: FaultServer, clock: FakeClock, data: Path) -> None:
    server.script(respond(502))
    server.default = respond(500, error="lookup down")
    with pytest.raises(AnswerLost, match="not sent again") as info:
        client(server, clock, max_retries=1).upload(data, purpose="batch")
    assert not isinstance(info.value, MaybeUploaded)
    assert posts(server) == 1
