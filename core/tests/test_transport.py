"""The transport against a fault-injecting server on 127.0.0.1: ``Sent``, retries and waits from urllib3's ``Retry``
(Retry-After honoured and capped), ``on_retry`` notices, stalls, the timeout and the deadline (a watchdog cuts an
answer that drips), the connect timeout, resets, redirects, URL refusals, redaction and bounded responses."""

from __future__ import annotations

import hashlib
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faultserver import (
    FaultServer,
    big_body,
    drip,
    redirect,
    reset_after,
    respond,
    retry_after,
    retry_after_date,
    slow_read,
    stall,
    truncated,
)

from llmfiles import transport as transport_mod
from llmfiles.clock import SYSTEM_CLOCK, FakeClock
from llmfiles.errors import (
    DeadlineExceeded,
    FileChanged,
    InsecureTransport,
    NetworkError,
    ProviderError,
    RetriesExhausted,
    StallTimeout,
)
from llmfiles.models import FileRange, HttpRequest, HttpResponse
from llmfiles.redact import redact, redact_url
from llmfiles.sources import PathSource, Source
from llmfiles.transport import Policy, RetryNotice, Sent, Transport
from llmfiles.urls import check_url

MiB = 1024 * 1024


class FileBody:
    """The body source of a file for :class:`FileRange` segments; counts the streams asked for (one per attempt)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.streams = 0

    def stream(self, offset: int, length: int) -> Iterator[bytes]:
        self.streams += 1
        return self.source.read_range(offset, length, 64 * 1024)


def source_of(path: Path) -> PathSource:
    return PathSource(str(path), path.name)


@pytest.fixture
def blob(tmp_path: Path) -> Iterator[PathSource]:
    """Two MiB of random bytes on disk, as an upload source."""
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(2 * MiB))
    src = source_of(path)
    yield src
    src.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[Transport]:
    """A transport on the fake clock: retries wait by moving the clock, and the waits are recorded."""
    t = Transport(clock=clock)
    yield t
    t.close()


def on(clock: FakeClock, **kw: Any) -> Policy:
    return Policy(provider="t", clock=clock, **kw)


def real(**kw: Any) -> Policy:
    kw.setdefault("max_retry_wait", 0.01)
    return Policy(provider="t", **kw)


def get(url: str, **headers: str) -> HttpRequest:
    return HttpRequest(method="GET", url=url, headers=headers)


def whole(source: Source) -> tuple[FileRange, ...]:
    return (FileRange(offset=0, length=source.size),)


def read(source: PathSource) -> bytes:
    return Path(source.path or "").read_bytes()


def answer_of(sent: Sent[Any]) -> HttpResponse:
    assert sent.response is not None and sent.found is None and not sent.found_by_probe
    return sent.response


# --- retries, waits and notices ------------------------------------------------------------------------------


def test_retryable_statuses_are_retried_until_success(server: FaultServer, fake: Transport, clock: FakeClock) -> None:
    server.script(respond(500), respond(502), respond(503))
    sent = fake.send(get(server.url + "/f"), on(clock))
    assert answer_of(sent).status == 200
    assert sent.attempts == 4 and len(server.requests) == 4
    assert len(clock.sleeps) == 3


def test_an_overloaded_529_is_retried_like_a_503(server: FaultServer, fake: Transport, clock: FakeClock) -> None:
    server.script(respond(529, error="overloaded"), respond(529, error="overloaded"))
    sent = fake.send(get(server.url + "/f"), on(clock))
    assert answer_of(sent).status == 200 and sent.attempts == 3 == len(server.requests)
    assert len(clock.sleeps) == 2


@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_max_retries_is_honoured_and_the_final_response_returned(
    server: FaultServer, fake: Transport, clock: FakeClock, max_retries: int
) -> None:
    server.default = respond(503, error="busy")
    sent = fake.send(get(server.url + "/f"), on(clock, max_retries=max_retries))
    assert answer_of(sent).status == 503 and answer_of(sent).json() == {"error": "busy"}
    assert sent.attempts == max_retries + 1 == len(server.requests)


@pytest.mark.parametrize("status", [400, 401, 404, 413])
def test_client_errors_are_not_retried(server: FaultServer, fake: Transport, clock: FakeClock, status: int) -> None:
    server.default = respond(status)
    sent = fake.send(HttpRequest(method="POST", url=server.url + "/f", body=b"{}"), on(clock))
    assert answer_of(sent).status == status and sent.attempts == 1
    assert len(server.requests) == 1 and clock.sleeps == []


def test_network_errors_exhaust_retries(server: FaultServer, fake: Transport, clock: FakeClock) -> None:
    server.default = reset_after(0)
    with pytest.raises(RetriesExhausted) as info:
        fake.send(HttpRequest(method="POST", url=server.url + "/f", body=b"x" * 1000), on(clock, max_retries=2))
    assert info.value.attempts == 3
    assert isinstance(info.value.last, NetworkError)
    assert "3 attempts" in str(info.value)
    assert len(server.requests) == 3


def test_refused_connection_is_retried_then_reported(fake: Transport, clock: FakeClock) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RetriesExhausted) as info:
        fake.send(get(f"http://127.0.0.1:{port}/"), on(clock, max_retries=1))
    assert info.value.attempts == 2
    assert isinstance(info.value.last, NetworkError) and "cannot connect" in str(info.value.last)


def test_backoff_waits_are_urllib3s_and_capped(server: FaultServer, fake: Transport, clock: FakeClock) -> None:
    server.default = respond(500)
    sent = fake.send(get(server.url), on(clock, max_retries=6, max_retry_wait=2.0))
    assert sent.attempts == 7
    # urllib3's Retry: no wait before the first retry, then 0.5 * 2**(n-1) plus up to 0.25 of jitter, capped
    first, second, *rest = clock.sleeps
    assert first == 0 and 1.0 <= second <= 1.25
    assert rest == [2.0, 2.0, 2.0, 2.0]


def test_on_retry_is_told_of_every_retry(server: FaultServer, fake: Transport, clock: FakeClock) -> None:
    server.script(respond(503), reset_after(0))
    notices: list[RetryNotice] = []
    sent = fake.send(get(server.url + "/x?sig=SECRETSIG"), on(clock, max_retries=3, on_retry=notices.append))
    assert answer_of(sent).status == 200 and sent.attempts == 3
    assert [(n.attempt, n.attempts) for n in notices] == [(2, 4), (3, 4)]
    assert [n.wait for n in notices] == clock.sleeps
    assert notices[0].reason == "HTTP 503" and "connection" in notices[1].reason
    assert all(n.request.startswith("GET http://127.0.0.1") and "SECRETSIG" not in n.request for n in notices)


# --- Retry-After ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_seconds_is_honoured(server: FaultServer, fake: Transport, clock: FakeClock, status: int) -> None:
    server.script(retry_after(7, status=status))
    sent = fake.send(get(server.url), on(clock, max_retry_wait=10))
    assert answer_of(sent).status == 200 and sent.attempts == 2
    assert clock.sleeps == [7.0]


def test_retry_after_http_date_is_honoured(server: FaultServer, fake: Transport, clock: FakeClock) -> None:
    server.script(retry_after_date(5))
    sent = fake.send(get(server.url), on(clock, max_retry_wait=10))
    assert answer_of(sent).status == 200
    # the date has whole seconds and is read against the wall clock: about 5 s, at least 3
    (wait,) = clock.sleeps
    assert 3.0 <= wait <= 5.5


def test_retry_after_is_capped_by_max_retry_wait(server: FaultServer, fake: Transport, clock: FakeClock) -> None:
    server.script(retry_after(3600))
    sent = fake.send(get(server.url), on(clock, max_retry_wait=0.25))
    assert answer_of(sent).status == 200
    assert clock.sleeps == [0.25]


@pytest.mark.parametrize("value", ["soon", "-3", "1.5"])
def test_a_retry_after_urllib3_cannot_read_falls_back_to_the_backoff(
    server: FaultServer, fake: Transport, clock: FakeClock, value: str
) -> None:
    server.script(retry_after(value), retry_after(value))
    sent = fake.send(get(server.url), on(clock, max_retry_wait=30))
    assert answer_of(sent).status == 200 and sent.attempts == 3
    assert clock.sleeps[0] == 0 and 1.0 <= clock.sleeps[1] <= 1.25


def test_a_retry_after_past_the_deadline_stops_at_once(server: FaultServer, fake: Transport, clock: FakeClock) -> None:
    server.script(retry_after(30))
    with pytest.raises(DeadlineExceeded) as info:
        fake.send(get(server.url), on(clock, max_retry_wait=60, deadline_at=clock.monotonic() + 10))
    assert "HTTP 429" in str(info.value)
    assert clock.sleeps == [] and len(server.requests) == 1


# --- stalls, the timeout and the deadline (the real clock: the watchdog) --------------------------------------


def test_a_stalled_response_raises_stall_timeout(server: FaultServer, transport: Transport) -> None:
    server.default = stall(30)
    start = time.monotonic()
    with pytest.raises(RetriesExhausted) as info:
        transport.send(get(server.url), real(timeout=0.3, max_retries=1))
    assert isinstance(info.value.last, StallTimeout)
    assert "0.3s" in str(info.value)
    assert len(server.requests) == 2
    assert time.monotonic() - start >= 0.6


def test_a_stall_while_sending_raises_stall_timeout(
    slow_server: FaultServer, transport: Transport, small_send_buffer: None, tmp_path: Path
) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(b"\0" * (8 * MiB))
    src = source_of(path)
    slow_server.default = stall(30, read_body=False)  # never reads the body
    with pytest.raises(StallTimeout):  # with no retry allowed, the stall itself is raised
        transport.send(
            HttpRequest(method="PUT", url=slow_server.url, body=whole(src)),
            real(timeout=0.3, max_retries=0),
            body=FileBody(src),
        )
    src.close()


def test_timeout_bounds_stalls_not_the_whole_transfer(
    slow_server: FaultServer, transport: Transport, small_send_buffer: None, tmp_path: Path
) -> None:
    """A slow but steady upload that takes several times ``timeout`` succeeds: no single stall lasts that long."""
    size = 3 * MiB
    path = tmp_path / "steady.bin"
    path.write_bytes(os.urandom(size))
    src = source_of(path)
    # 2 MiB read 32 KiB at a time with 20 ms pauses: at least 1.28 s of reading, every pause far below the timeout
    slow_server.script(slow_read(chunk=32 * 1024, delay=0.02, slow_bytes=2 * MiB))
    start = time.monotonic()
    sent = transport.send(
        HttpRequest(method="PUT", url=slow_server.url, body=whole(src)),
        real(timeout=0.5, max_retries=0),
        body=FileBody(src),
    )
    elapsed = time.monotonic() - start
    assert answer_of(sent).status == 200
    assert elapsed > 1.0  # the transfer outlasted the timeout twice over
    (req,) = slow_server.requests
    assert req.complete and bytes(req.body) == path.read_bytes()
    src.close()


def test_deadline_cuts_a_stall_short(server: FaultServer, transport: Transport) -> None:
    server.default = stall(30)
    start = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        transport.send(get(server.url), real(timeout=30, deadline_at=time.monotonic() + 0.5))
    assert 0.45 <= time.monotonic() - start < 20


class _CountingCondition(threading.Condition):
    notified = 0

    def notify(self, n: int = 1) -> None:
        self.notified += 1
        super().notify(n)


def test_the_watchdog_is_woken_only_for_a_budget_due_before_it_looks_again() -> None:
    """Every request gives the watchdog a budget, most of them minutes away and over long before: waking its thread
    for each costs a thread switch per request. Only a budget due sooner than the thread's own next look wakes it,
    and that one is still cut on time."""
    dog = transport_mod._Watchdog(SYSTEM_CLOCK)
    dog._cond = cond = _CountingCondition()
    far = [transport_mod._Budget(dog, None) for _ in range(6)]
    far[0].limit(time.monotonic() + 600)
    waited = time.monotonic() + 10
    while dog._wakes_at == -math.inf and time.monotonic() < waited:  # the thread started, sleeps till its next look
        time.sleep(0.01)
    assert dog._wakes_at > time.monotonic()
    before = cond.notified
    for budget in far[1:]:
        budget.limit(time.monotonic() + 600)
    assert cond.notified == before
    ours, theirs = socket.socketpair()
    soon = transport_mod._Budget(dog, None)
    soon.conn = type("Conn", (), {"sock": ours})()
    start = time.monotonic()
    soon.limit(start + 0.2)
    assert cond.notified == before + 1
    theirs.settimeout(5)
    assert theirs.recv(1) == b""  # shut by the watchdog
    assert time.monotonic() - start >= 0.15  # not before it was due (woken on time: the notify above)
    assert soon.fired == "stall"
    ours.close()
    theirs.close()


def test_deadline_without_retries_is_still_a_deadline(server: FaultServer, transport: Transport) -> None:
    server.default = stall(30)
    with pytest.raises(DeadlineExceeded):
        transport.send(get(server.url), real(timeout=30, max_retries=0, deadline_at=time.monotonic() + 0.3))


def test_deadline_passes_during_a_slow_upload(
    slow_server: FaultServer, transport: Transport, small_send_buffer: None, tmp_path: Path
) -> None:
    path = tmp_path / "slow.bin"
    path.write_bytes(b"\1" * (4 * MiB))
    src = source_of(path)
    slow_server.default = slow_read(chunk=16 * 1024, delay=0.05)
    with pytest.raises(DeadlineExceeded):
        transport.send(
            HttpRequest(method="PUT", url=slow_server.url, body=whole(src)),
            real(timeout=30, deadline_at=time.monotonic() + 0.5),
            body=FileBody(src),
        )
    src.close()


def test_a_deadline_already_past_sends_nothing(server: FaultServer, transport: Transport) -> None:
    with pytest.raises(DeadlineExceeded):
        transport.send(get(server.url), real(deadline_at=time.monotonic() - 1))
    assert server.requests == []


@pytest.mark.parametrize("head", [True, False], ids=["headers", "body"])
def test_the_deadline_bounds_an_answer_that_drips_one_byte_a_second(
    server: FaultServer, transport: Transport, head: bool
) -> None:
    """Each byte comes well within the timeout, so no socket timeout ever fires: the watchdog cuts it."""
    server.default = drip(interval=1.0, head=head, body=b'{"ok": true, "padding": "xxxxxxxxxx"}')
    start = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        transport.send(get(server.url), real(timeout=60, max_retries=0, deadline_at=time.monotonic() + 2.5))
    took = time.monotonic() - start
    assert 2.0 <= took < 20, took  # the answer would have taken over 35 s
    assert len(server.requests) == 1


def test_the_timeout_bounds_a_whole_answer_held_in_memory(server: FaultServer, transport: Transport) -> None:
    server.default = drip(interval=0.2, head=False, body=b'{"ok": "' + b"x" * 200 + b'"}')
    start = time.monotonic()
    with pytest.raises(StallTimeout):
        transport.send(get(server.url), real(timeout=1.5, max_retries=0))
    assert 1.2 <= time.monotonic() - start < 15


def test_a_download_may_drip_for_longer_than_the_timeout(
    server: FaultServer, transport: Transport, tmp_path: Path
) -> None:
    """A download streams into its sink: only stalls are bounded by ``timeout``, not the whole body."""
    body = b"0123456789abcdef"
    server.default = drip(interval=0.3, head=False, body=body)  # 4.8 s in all, never a stall of more than 0.3 s
    with open(tmp_path / "out", "w+b") as sink:
        sent = transport.send(get(server.url), real(timeout=2.5, max_retries=0), sink=sink)
    assert answer_of(sent).status == 200
    assert (tmp_path / "out").read_bytes() == body


def test_connect_timeout_bounds_opening_a_connection(black_hole: str, transport: Transport) -> None:
    start = time.monotonic()
    with pytest.raises(StallTimeout) as info:
        transport.send(get(black_hole), real(timeout=60, connect_timeout=0.5, max_retries=0))
    assert "connecting to 127.0.0.1" in str(info.value)
    assert 0.4 <= time.monotonic() - start < 10


def test_a_connect_timeout_is_retried(black_hole: str, transport: Transport) -> None:
    with pytest.raises(RetriesExhausted) as info:
        transport.send(get(black_hole), real(timeout=60, connect_timeout=0.3, max_retries=1))
    assert info.value.attempts == 2 and isinstance(info.value.last, StallTimeout)


# --- bodies --------------------------------------------------------------------------------------------------


def test_body_is_resent_whole_after_a_reset(server: FaultServer, transport: Transport, blob: PathSource) -> None:
    server.script(reset_after(100_000))
    body = FileBody(blob)
    sent = transport.send(
        HttpRequest(method="POST", url=server.url + "/upload", body=(b"head:", *whole(blob), b":tail")),
        real(),
        body=body,
    )
    assert answer_of(sent).status == 200 and sent.attempts == 2
    first, second = server.requests
    assert not first.complete and len(first.body) <= 100_000
    assert second.complete
    expected = b"head:" + read(blob) + b":tail"
    assert hashlib.sha256(second.body).hexdigest() == hashlib.sha256(expected).hexdigest()
    assert second.headers["content-length"] == str(len(expected))
    assert body.streams == 2  # the file's range is streamed again, from its start, for the second attempt


def test_a_file_that_shrinks_while_it_is_sent_is_reported_at_once(
    server: FaultServer, transport: Transport, tmp_path: Path
) -> None:
    path = tmp_path / "shrinks.bin"
    path.write_bytes(os.urandom(2 * MiB))
    src = source_of(path)
    os.truncate(path, MiB)  # after it was opened: its declared size is 2 MiB
    with pytest.raises(FileChanged) as info:
        transport.send(HttpRequest(method="PUT", url=server.url, body=whole(src)), real(), body=FileBody(src))
    assert str(path) in str(info.value) and "shrank" in str(info.value)
    assert len(server.requests) <= 1  # never retried
    src.close()


def test_a_request_carrying_the_file_needs_a_body_source(server: FaultServer, transport: Transport) -> None:
    from llmfiles.errors import LLMFilesError

    with pytest.raises(LLMFilesError, match="provider bug"):
        transport.send(HttpRequest(method="PUT", url=server.url, body=(FileRange(offset=0, length=3),)), real())


def test_truncated_response_is_retried(server: FaultServer, transport: Transport) -> None:
    server.script(truncated(declared=100))
    sent = transport.send(get(server.url), real())
    assert answer_of(sent).status == 200 and answer_of(sent).json() == {"ok": True}
    assert len(server.requests) == 2 and sent.attempts == 2


def test_truncated_response_every_time_exhausts_retries(server: FaultServer, transport: Transport) -> None:
    server.default = truncated(declared=100)
    with pytest.raises(RetriesExhausted) as info:
        transport.send(get(server.url), real(max_retries=1))
    assert isinstance(info.value.last, NetworkError)
    assert len(server.requests) == 2


def test_answers_are_capped_at_64_mib() -> None:
    assert 64 * MiB == transport_mod.MAX_RESPONSE_BYTES


def test_oversized_responses_are_refused(
    server: FaultServer, transport: Transport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport_mod, "MAX_RESPONSE_BYTES", 4096)
    server.script(big_body(4096), big_body(4097))
    assert answer_of(transport.send(get(server.url), real())).body == b"x" * 4096
    with pytest.raises(ProviderError) as info:
        transport.send(get(server.url), real())
    assert "larger than 4,096 bytes" in str(info.value)
    assert len(server.requests) == 2  # not retried


def test_download_streams_into_the_sink(server: FaultServer, transport: Transport, tmp_path: Path) -> None:
    server.script(big_body(300_000))
    blocks: list[int] = []
    with open(tmp_path / "out", "w+b") as sink:
        sent = transport.send(get(server.url), real(), sink=sink, on_sink_chunk=lambda b: blocks.append(len(b)))
    assert answer_of(sent).status == 200 and answer_of(sent).body == b""
    assert (tmp_path / "out").read_bytes() == b"x" * 300_000
    assert sum(blocks) == 300_000


# --- where requests may go -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://example.com/v1/files", "http://10.0.0.1/", "http://localhost.example.com/"])
def test_plain_http_to_a_remote_host_is_refused(server: FaultServer, transport: Transport, url: str) -> None:
    with pytest.raises(InsecureTransport) as info:
        transport.send(get(url, Authorization="Bearer k"), real())
    assert "allow_insecure_http" in str(info.value)


def test_url_checks() -> None:
    for ok in ("https://example.com/", "http://127.0.0.1:8080/", "http://localhost/", "http://[::1]:9/"):
        check_url(ok, allow_insecure_http=False)
    check_url("local:///x", allow_insecure_http=False, schemes=frozenset({"local"}))
    check_url("http://example.com/", allow_insecure_http=True)
    for bad in ("ftp://example.com/f", "file:///etc/passwd", "gopher://x/", "local:///x"):
        with pytest.raises(InsecureTransport):
            check_url(bad, allow_insecure_http=True)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1\\@example.com/", "'\\\\'"),  # urlsplit: host example.com; urllib3: 127.0.0.1
        ("https://example.com\\.evil.example/", "'\\\\'"),
        ("http://127.0.0.1:1/\x00x", "'\\x00'"),
        ("http://127.0.0.1\r\nHost: evil/", "'\\r'"),
        ("http://127.0.0.1 /", "' '"),
        ("https://example.com\t/", "'\\t'"),
        ("https://user:pw@example.com/", "user information"),
        ("http://127.0.0.1:1@example.com/", "user information"),
        ("https://@example.com/", "user information"),
        ("http://[::1/", "cannot be parsed"),
        ("http://127.0.0.1:99999/", "cannot be parsed"),
    ],
)
def test_urls_that_could_be_read_two_ways_are_refused(url: str, why: str) -> None:
    with pytest.raises(InsecureTransport) as info:
        check_url(url, allow_insecure_http=True)
    assert why in str(info.value)
    assert "pw" not in str(info.value)


def test_the_origin_is_urllib3s_reading(server: FaultServer) -> None:
    from llmfiles.urls import origin

    assert str(origin("HTTPS://Example.COM/x")) == "https://example.com:443"
    assert origin("http://127.0.0.1/?q=@example.com") == origin("http://127.0.0.1:80/#@example.com")
    assert origin("http://127.0.0.1/?q=@example.com").host == "127.0.0.1"
    assert check_url(f"{server.url}/?next=http://example.com@x", allow_insecure_http=False).host == "127.0.0.1"


def test_redirect_to_plain_http_remote_is_refused(server: FaultServer, transport: Transport) -> None:
    server.script(redirect("http://example.com/elsewhere"))
    with pytest.raises(InsecureTransport):
        transport.send(get(server.url), real())


def test_a_redirect_that_could_be_read_two_ways_is_refused(server: FaultServer, transport: Transport) -> None:
    server.script(redirect(f"http://127.0.0.1:{server.port}\\@example.com/"))
    with pytest.raises(InsecureTransport):
        transport.send(get(server.url, Authorization="Bearer sk-abcdef"), real())
    assert len(server.requests) == 1


def test_redirect_to_another_origin_drops_credentials(
    server: FaultServer, server2: FaultServer, transport: Transport
) -> None:
    server.script(redirect(server2.url + "/landing?x=1"))
    headers = {"Authorization": "Bearer sk-abcdef", "X-Api-Key": "k-123456", "Cookie": "s=1", "X-Trace": "t-1"}
    sent = transport.send(HttpRequest(method="GET", url=server.url + "/start", headers=headers), real())
    assert answer_of(sent).status == 200
    assert answer_of(sent).url == server2.url + "/landing?x=1"
    (landed,) = server2.requests
    assert landed.target == "/landing?x=1"
    for name in ("authorization", "x-api-key", "cookie"):
        assert name not in landed.headers
    assert landed.headers["x-trace"] == "t-1"


def test_another_host_name_for_the_same_address_is_another_origin(server: FaultServer, transport: Transport) -> None:
    server.script(redirect(f"http://localhost:{server.port}/other"))
    sent = transport.send(get(server.url + "/start", Authorization="Bearer sk-abcdef"), real())
    assert answer_of(sent).status == 200
    assert server.requests[0].headers["authorization"] == "Bearer sk-abcdef"
    assert "authorization" not in server.requests[1].headers


@pytest.mark.parametrize("location", ["/other", "HTTP://127.0.0.1:{port}/other", "//127.0.0.1:{port}/other"])
def test_redirect_within_the_origin_keeps_credentials(server: FaultServer, transport: Transport, location: str) -> None:
    # the scheme's case and a scheme-relative location do not make another origin in urllib3's reading
    server.script(redirect(location.format(port=server.port)))
    sent = transport.send(get(server.url + "/start", Authorization="Bearer sk-abcdef"), real())
    assert answer_of(sent).status == 200
    assert [r.path for r in server.requests] == ["/start", "/other"]
    assert server.requests[1].headers["authorization"] == "Bearer sk-abcdef"


def test_post_is_not_redirected(server: FaultServer, server2: FaultServer, transport: Transport) -> None:
    server.script(redirect(server2.url))
    sent = transport.send(HttpRequest(method="POST", url=server.url, body=b"data"), real())
    assert answer_of(sent).status == 302
    assert server2.requests == []


def test_redirect_loops_end(server: FaultServer, transport: Transport) -> None:
    server.default = redirect("/again")
    with pytest.raises(NetworkError, match="more than 5 redirects"):
        transport.send(get(server.url), real(max_retries=0))
    assert len(server.requests) == 6


# --- secrets -------------------------------------------------------------------------------------------------

SECRET = "sk-test-Zx9SECRETvalue42"


def test_secrets_never_reach_errors_or_logs(
    server: FaultServer, transport: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.script(respond(503), reset_after(0))
    server.default = stall(30)
    request = HttpRequest(
        method="POST",
        url=server.url + "/files",
        headers={"Authorization": f"Bearer {SECRET}", "api-key": SECRET, "Content-Type": "application/json"},
        body=b"{}",
    )
    with pytest.raises(RetriesExhausted) as info:
        transport.send(request, real(timeout=0.3, max_retries=2, secrets=(SECRET,)))
    assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"  # it was sent...
    exc = info.value
    shown = [str(exc), repr(exc), str(exc.last), repr(exc.last), *getattr(exc, "__notes__", ()), repr(request)]
    shown.append(caplog.text)
    shown.extend(str(r.args) for r in caplog.records)
    assert any("retrying" in r.getMessage() for r in caplog.records)  # the log was captured...
    for text in shown:
        assert SECRET not in text  # ...and no secret is in it


def test_secrets_in_urls_are_redacted_in_llmfiles_logs(
    server: FaultServer, transport: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.script(respond(500))
    url = f"{server.url}/upload?uploadType=resumable&sig={SECRET}&X-Amz-Credential={SECRET}"
    transport.send(get(url), real())
    assert [r for r in caplog.records if r.name.startswith("llmfiles")]
    assert [r for r in caplog.records if r.name.startswith("urllib3")]
    for r in caplog.records:
        assert SECRET not in r.getMessage()


def test_redaction_helpers() -> None:
    assert redact(f"key {SECRET} and again {SECRET}", [SECRET]) == "key *** and again ***"
    assert redact("short abc", ["abc"]) == "short abc"  # too short to redact safely
    red = redact_url(f"https://user:pw@host.example/p?sig={SECRET}&name=a.jsonl")
    assert SECRET not in red and "pw" not in red and "name=a.jsonl" in red


def test_reprs_of_requests_and_responses_hide_credentials() -> None:
    req = HttpRequest(method="GET", url="https://h/", headers={"Authorization": f"Bearer {SECRET}", "X-Ok": "v"})
    assert SECRET not in repr(req) and "X-Ok" in repr(req)
    resp = HttpResponse(status=200, headers={"set-cookie": f"s={SECRET}"}, body=SECRET.encode())
    assert SECRET not in repr(resp)
