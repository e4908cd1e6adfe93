"""Round 2 of the adversarial review, the transport: where a request goes (1), how long an answer may take (3) and a
listing that never ends (12).

1. Python's ``urlsplit`` and urllib3's ``parse_url`` read ``http://a\\@b/`` as two different hosts: a redirect (or an
   ``api_base``) written that way made llmfiles decide "same origin" with one and connect with the other, handing the
   key to another host, or past the refusal of plain ``http://`` to a host that is not loopback.
3. A server that sends its head or its body a byte a second never trips a timeout between bytes: ``deadline`` must
   bound every phase, and ``timeout`` the whole answer.
12. A listing whose pages never end (``has_more`` for ever with the same cursor, or empty pages with new cursors) must
    stop.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultlib import OPENAI_KEY, SECRETS, Harness, chat_file, run_bounded, run_cli

import llmfiles
from llmfiles.errors import DeadlineExceeded, InsecureTransport, NetworkError, ProviderError
from servers.fault_proxy import Answer, Drip, FaultProxy, ProxyRequest, Respond, Swallow
from servers.openai_like import OpenAILikeServer

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def openai_behind_proxy() -> Iterator[tuple[OpenAILikeServer, FaultProxy]]:
    server = OpenAILikeServer(api_key=OPENAI_KEY)
    with server, FaultProxy("127.0.0.1", server.port) as proxy:
        yield server, proxy


def openai_client(proxy: FaultProxy, **settings: object) -> llmfiles.Client:
    return llmfiles.Client("openai", api_base=proxy.url + "/v1", api_key=OPENAI_KEY, **settings)


# --- 1: one parse decides where a request goes ----------------------------------------------------------------


def test_a_redirect_through_a_backslash_does_not_carry_the_key_to_another_host(
    harness: Harness, tmp_path: Path
) -> None:
    """``302 Location: http://127.0.0.2:P\\@127.0.0.1:Q/...``: ``urlsplit`` reads host 127.0.0.1 (the configured one,
    so the key was kept), urllib3 connects to 127.0.0.2.  Such a URL is refused: nothing goes to 127.0.0.2."""
    small = chat_file(tmp_path / "small.jsonl", min_bytes=2_000)
    with FaultProxy("127.0.0.1", 9, host="127.0.0.2") as elsewhere:
        elsewhere.add_rule(lambda r: True, Respond(200, JSON, b"{}"), times=100)
        with harness.client(max_retries=0) as client:
            fo = client.upload(small, purpose="fine-tune")
            here = harness.proxy.url.split("://", 1)[1]
            location = f"http://127.0.0.2:{elsewhere.port}\\@{here}/v1/files/x"
            harness.proxy.add_rule(lambda r: r.method in ("GET", "HEAD"), Respond(302, {"Location": location}))
            outcome = run_bounded(lambda: client.retrieve(fo.id), 60)
    assert elsewhere.requests == [], [json.dumps(r.headers) for r in elsewhere.requests]
    assert isinstance(outcome, InsecureTransport), outcome
    assert not any(secret in str(outcome) for secret in SECRETS)


@pytest.mark.parametrize(
    "api_base",
    [
        "http://example.invalid\\@127.0.0.1:{port}/v1",
        "http://example.invalid\\@127.0.0.1/v1",
        "http://user:password@127.0.0.1:{port}/v1",
        "http://127.0.0.1:{port}\\@example.invalid/v1",
        "http://example.invalid\t@127.0.0.1:{port}/v1",
        "http://example.invalid%5C@127.0.0.1:{port}/v1",
    ],
)
def test_an_endpoint_that_could_be_read_as_two_hosts_is_refused_before_any_lookup(
    openai_behind_proxy: tuple[OpenAILikeServer, FaultProxy], api_base: str
) -> None:
    """The plain-http refusal and the host connected to come from one parse: such an ``api_base`` is refused, and no
    name is looked up (the fixture fails the test if ``example.invalid`` was)."""
    _, proxy = openai_behind_proxy
    with openai_client(proxy, max_retries=0) as client:
        outcome = run_bounded(lambda: client.retrieve("file-abc", api_base=api_base.format(port=proxy.port)), 60)
    assert isinstance(outcome, InsecureTransport), outcome
    assert proxy.requests == []


# --- 3: a deadline bounds every phase, a timeout bounds a whole answer ------------------------------------------

FILE_JSON = json.dumps(
    {"id": "file-abc", "object": "file", "bytes": 1, "created_at": 1, "filename": "a.jsonl", "purpose": "fine-tune"}
).encode()


@pytest.mark.parametrize("head", [True, False], ids=["head drips", "body drips"])
def test_the_deadline_bounds_an_answer_that_drips(
    openai_behind_proxy: tuple[OpenAILikeServer, FaultProxy], head: bool
) -> None:
    """A byte a second (the answer takes minutes): ``retrieve(deadline=4, timeout=3)`` ends with DeadlineExceeded soon
    after 4 s (before round 2 it ran past 40 s)."""
    _, proxy = openai_behind_proxy
    proxy.add_rule(lambda r: r.method == "GET", Drip(200, JSON, FILE_JSON + b" " * 300, head=head), times=100)
    with openai_client(proxy) as client:
        started = time.monotonic()
        outcome = run_bounded(lambda: client.retrieve("file-abc", deadline=4, timeout=3), 120)
        took = time.monotonic() - started
    assert isinstance(outcome, DeadlineExceeded), outcome
    assert took < 4 + 16, f"the deadline of 4s ended the call after {took:.1f}s"


def test_the_deadline_bounds_the_answer_to_an_upload_that_drips(
    openai_behind_proxy: tuple[OpenAILikeServer, FaultProxy], tmp_path: Path
) -> None:
    """The whole file sent, its answer dripping: the deadline ends the upload, which says the provider may already
    have the file (it may: the request arrived whole)."""
    _, proxy = openai_behind_proxy
    small = chat_file(tmp_path / "small.jsonl", min_bytes=20_000)
    proxy.add_rule(lambda r: r.method == "POST", Drip(200, JSON, FILE_JSON + b" " * 300), times=100)
    with openai_client(proxy) as client:
        started = time.monotonic()
        outcome = run_bounded(lambda: client.upload(small, purpose="fine-tune", deadline=4, timeout=600), 120)
        took = time.monotonic() - started
    assert isinstance(outcome, DeadlineExceeded), outcome
    assert took < 4 + 16, f"the deadline of 4s ended the upload after {took:.1f}s"
    assert any("may already have the file" in note for note in outcome.__notes__), outcome.__notes__


@pytest.mark.parametrize("head", [True, False], ids=["head drips", "body drips"])
def test_the_timeout_bounds_a_whole_answer_not_only_the_gaps_between_bytes(
    openai_behind_proxy: tuple[OpenAILikeServer, FaultProxy], head: bool
) -> None:
    """With ``timeout`` alone, an answer that drips must arrive whole within a budget derived from it (before round 2
    the call hung for as long as the server dripped)."""
    _, proxy = openai_behind_proxy
    proxy.add_rule(lambda r: r.method == "GET", Drip(200, JSON, FILE_JSON + b" " * 300, head=head), times=100)
    with openai_client(proxy) as client:
        outcome = run_bounded(lambda: client.retrieve("file-abc", timeout=2, max_retries=1, max_retry_wait=0.1), 120)
    assert isinstance(outcome, NetworkError), outcome
    assert len(proxy.requests) == 2  # each attempt was cut; the server would have dripped for minutes


def test_the_deadline_bounds_sending_to_a_peer_that_stopped_reading(
    openai_behind_proxy: tuple[OpenAILikeServer, FaultProxy], tmp_path: Path
) -> None:
    """A peer that reads nothing: the send blocks once the socket buffers are full; the deadline ends it."""
    _, proxy = openai_behind_proxy
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(32 * 1024 * 1024))  # more than loopback's socket buffers hold
    proxy.add_rule(lambda r: r.method == "POST", Swallow(), times=100)
    with openai_client(proxy) as client:
        started = time.monotonic()
        outcome = run_bounded(lambda: client.upload(blob, purpose="assistants", deadline=4, timeout=600), 120)
        took = time.monotonic() - started
    assert isinstance(outcome, DeadlineExceeded), outcome
    assert took < 4 + 16, f"the deadline of 4s ended the upload after {took:.1f}s"


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port on 127.0.0.1 whose listen queue is full: a connect to it hangs (its SYN is dropped)."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = int(server.getsockname()[1])
    queued = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", port))
        queued.append(c)
    time.sleep(0.2)
    try:
        yield port
    finally:
        for c in queued:
            c.close()
        server.close()


def test_the_deadline_bounds_connecting(black_hole: int) -> None:
    with llmfiles.Client("openai", api_base=f"http://127.0.0.1:{black_hole}/v1", api_key=OPENAI_KEY) as client:
        started = time.monotonic()
        outcome = run_bounded(lambda: client.retrieve("file-abc", deadline=3, timeout=600, connect_timeout=600), 120)
        took = time.monotonic() - started
    assert isinstance(outcome, DeadlineExceeded), outcome
    assert took < 3 + 15, f"the deadline of 3s ended the call after {took:.1f}s"


@pytest.mark.parametrize("harness", ["openai"], indirect=True)  # one provider is enough: the transport is the core's
def test_llmfiles_deadline_bounds_the_cli_against_a_dripping_server(harness: Harness) -> None:
    """``LLMFILES_DEADLINE=8 llmfiles get ...`` against a server that drips its answer ends soon after 8 s, with an
    error that says so (before round 2: past 60 s)."""
    harness.proxy.add_rule(lambda r: r.method == "GET", Drip(200, JSON, FILE_JSON + b" " * 300), times=100)
    started = time.monotonic()
    done = run_cli(harness, "get", "file-abc", "--provider", "openai", env={"LLMFILES_DEADLINE": "8"}, timeout=200)
    took = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert "deadline" in done.stderr, done.stderr
    assert took < 8 + 22, f"the deadline of 8s ended the command after {took:.1f}s"


# --- 12: a listing that never ends ----------------------------------------------------------------------------

#: the proxy ends an endless listing after this many pages (so that a client that follows it for ever still ends)
PAGES = 300


def endless_pages(h: Harness) -> Answer:
    """Pages that never end: empty, each with a new cursor (S3, Cloud Storage), or the same page and cursor over and
    over (OpenAI, Azure: an empty page ends their listing)."""
    count = [0]

    def make(r: ProxyRequest) -> tuple[int, dict[str, str], bytes]:
        count[0] += 1
        more = count[0] < PAGES
        if h.name == "bedrock":
            token = f"<NextContinuationToken>token-{count[0]}</NextContinuationToken>" if more else ""
            body = (
                f'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>llmfiles-faults</Name>'
                f"<IsTruncated>{'true' if more else 'false'}</IsTruncated>{token}</ListBucketResult>"
            )
            return 200, {"Content-Type": "application/xml"}, body.encode()
        if h.name == "vertex_ai":
            page: dict[str, object] = {"kind": "storage#objects", "items": []}
            if more:
                page["nextPageToken"] = f"token-{count[0]}"
            return 200, JSON, json.dumps(page).encode()
        listed = {**json.loads(FILE_JSON), "id": "file-same"}
        return (
            200,
            JSON,
            json.dumps({"object": "list", "data": [listed], "has_more": more, "last_id": "file-same"}).encode(),
        )

    return Answer(make)


# (Azure's classic API lists every file in one answer: no pages to follow)
@pytest.mark.parametrize("harness", ["openai", "vertex_ai", "bedrock"], indirect=True)
def test_a_listing_that_never_ends_is_stopped(harness: Harness) -> None:
    harness.proxy.add_rule(lambda r: r.method == "GET", endless_pages(harness), times=PAGES)
    with harness.client(max_retries=0) as client:
        outcome = run_bounded(lambda: list(client.list_files()), 120)
    assert isinstance(outcome, ProviderError), outcome
    assert "stopping" in str(outcome)
    assert len(harness.proxy.requests) < 20, f"{len(harness.proxy.requests)} pages were fetched"
