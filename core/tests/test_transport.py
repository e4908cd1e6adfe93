"""The transport against a fault-injecting server on 127.0.0.1: retries, Retry-After, stalls, deadlines, resets,
redirects, redaction and bounded responses."""

from __future__ import annotations

import email.utils
import hashlib
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultserver import (
    FaultServer,
    big_body,
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
from llmfiles.errors import (
    DeadlineExceeded,
    InsecureTransport,
    NetworkError,
    ProviderError,
    RetriesExhausted,
    StallTimeout,
)
from llmfiles.models import GeneratedBody, HttpRequest, PathSource, SourceRange
from llmfiles.transport import Transport, check_url, parse_retry_after, redact, redact_url

MiB = 1024 * 1024
FAST = {"max_retry_wait": 0.01}


@pytest.fixture
def blob(tmp_path: Path) -> PathSource:
    """Two MiB of random bytes on disk, as an upload source."""
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(2 * MiB))
    return PathSource(str(path), "blob.bin", 2 * MiB)


@pytest.fixture
def recorded_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the transport's waits between retries instead of sleeping them."""
    delays: list[float] = []

    def fake_sleep(delay: float, deadline_at: float | None, err: BaseException | None) -> None:
        delays.append(delay)

    monkeypatch.setattr(Transport, "_sleep", staticmethod(fake_sleep))
    return delays


def whole(source: PathSource) -> tuple[SourceRange, ...]:
    return (SourceRange(source=source, offset=0, length=source.size),)


def read(source: PathSource) -> bytes:
    return Path(source.path or "").read_bytes()


# --- retries -------------------------------------------------------------------------------------------------


def test_retryable_statuses_are_retried_until_success(server: FaultServer, transport: Transport) -> None:
    server.script(respond(500), respond(502), respond(503))
    resp = transport.send(HttpRequest(method="GET", url=server.url + "/f"), provider="t", **FAST)
    assert resp.status == 200
    assert len(server.requests) == 4
    assert resp.header("x-llmfiles-attempts") == "4"


@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_max_retries_is_honoured_and_the_final_response_returned(
    server: FaultServer, transport: Transport, max_retries: int
) -> None:
    server.default = respond(503, error="busy")
    resp = transport.send(
        HttpRequest(method="GET", url=server.url + "/f"), provider="t", max_retries=max_retries, **FAST
    )
    assert resp.status == 503
    assert resp.json() == {"error": "busy"}
    assert len(server.requests) == max_retries + 1


@pytest.mark.parametrize("status", [400, 401, 404, 413])
def test_client_errors_are_not_retried(server: FaultServer, transport: Transport, status: int) -> None:
    server.default = respond(status)
    resp = transport.send(HttpRequest(method="POST", url=server.url + "/f", body=b"{}"), provider="t", **FAST)
    assert resp.status == status
    assert len(server.requests) == 1


def test_network_errors_exhaust_retries(server: FaultServer, transport: Transport) -> None:
    server.default = reset_after(0)
    with pytest.raises(RetriesExhausted) as info:
        transport.send(
            HttpRequest(method="POST", url=server.url + "/f", body=b"x" * 1000), provider="t", max_retries=2, **FAST
        )
    assert info.value.attempts == 3
    assert isinstance(info.value.last, NetworkError)
    assert "3 attempts" in str(info.value)
    assert len(server.requests) == 3


def test_refused_connection_is_retried_then_reported(transport: Transport) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RetriesExhausted) as info:
        transport.send(HttpRequest(method="GET", url=f"http://127.0.0.1:{port}/"), provider="t", max_retries=1, **FAST)
    assert info.value.attempts == 2
    assert isinstance(info.value.last, NetworkError)


def test_backoff_waits_grow_and_are_capped(
    server: FaultServer, transport: Transport, recorded_sleeps: list[float]
) -> None:
    server.default = respond(500)
    transport.send(HttpRequest(method="GET", url=server.url), provider="t", max_retries=6, max_retry_wait=2.0)
    assert len(recorded_sleeps) == 6
    assert all(0 < d <= 2.0 for d in recorded_sleeps)
    # half of each wait is fixed: 0.25, 0.5, 1, then the cap's half
    assert [d >= low for d, low in zip(recorded_sleeps, [0.25, 0.5, 1.0, 1.0, 1.0, 1.0])] == [True] * 6


# --- Retry-After ---------------------------------------------------------------------------------------------


def test_retry_after_seconds_is_honoured(server: FaultServer, transport: Transport) -> None:
    server.script(retry_after(1))
    resp = transport.send(HttpRequest(method="GET", url=server.url), provider="t", max_retry_wait=10)
    assert resp.status == 200
    first, second = server.requests
    assert second.arrived - first.arrived >= 0.95


def test_retry_after_http_date_is_honoured(server: FaultServer, transport: Transport) -> None:
    server.script(retry_after_date(2))
    resp = transport.send(HttpRequest(method="GET", url=server.url), provider="t", max_retry_wait=10)
    assert resp.status == 200
    first, second = server.requests
    # the date has whole seconds, so "2 s from now" is at least 1 s away
    assert second.arrived - first.arrived >= 0.9


def test_retry_after_is_capped_by_max_retry_wait(
    server: FaultServer, transport: Transport, recorded_sleeps: list[float]
) -> None:
    server.script(retry_after(3600))
    resp = transport.send(HttpRequest(method="GET", url=server.url), provider="t", max_retry_wait=0.25)
    assert resp.status == 200
    assert recorded_sleeps == [0.25]


def test_parse_retry_after() -> None:
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    now = 1_700_000_000.0
    assert parse_retry_after(email.utils.formatdate(now + 100, usegmt=True), now=now) == pytest.approx(100.0)


# --- stalls, the timeout and the deadline --------------------------------------------------------------------


def test_a_stalled_response_raises_stall_timeout(server: FaultServer, transport: Transport) -> None:
    server.default = stall(30)
    start = time.monotonic()
    with pytest.raises(RetriesExhausted) as info:
        transport.send(HttpRequest(method="GET", url=server.url), provider="t", timeout=0.3, max_retries=1, **FAST)
    assert isinstance(info.value.last, StallTimeout)
    assert "0.3s" in str(info.value)
    assert len(server.requests) == 2
    assert time.monotonic() - start >= 0.6


def test_a_stall_while_sending_raises_stall_timeout(
    slow_server: FaultServer, transport: Transport, small_send_buffer: None, tmp_path: Path
) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(b"\0" * (8 * MiB))
    src = PathSource(str(path), "big.bin", 8 * MiB)
    slow_server.default = stall(30, read_body=False)  # never reads the body
    with pytest.raises(StallTimeout):  # with no retry allowed, the stall itself is raised
        transport.send(
            HttpRequest(method="PUT", url=slow_server.url, body=whole(src)), provider="t", timeout=0.3, max_retries=0
        )


def test_timeout_bounds_stalls_not_the_whole_transfer(
    slow_server: FaultServer, transport: Transport, small_send_buffer: None, tmp_path: Path
) -> None:
    """A slow but steady upload that takes several times ``timeout`` succeeds: no single stall lasts that long."""
    size = 3 * MiB
    path = tmp_path / "steady.bin"
    path.write_bytes(os.urandom(size))
    src = PathSource(str(path), "steady.bin", size)
    # 2 MiB read 32 KiB at a time with 20 ms pauses: at least 1.28 s of reading, every pause far below the timeout
    slow_server.script(slow_read(chunk=32 * 1024, delay=0.02, slow_bytes=2 * MiB))
    start = time.monotonic()
    resp = transport.send(
        HttpRequest(method="PUT", url=slow_server.url, body=whole(src)), provider="t", timeout=0.5, max_retries=0
    )
    elapsed = time.monotonic() - start
    assert resp.status == 200, resp
    assert elapsed > 1.0  # the transfer outlasted the timeout twice over
    (req,) = slow_server.requests
    assert req.complete and bytes(req.body) == path.read_bytes()


def test_deadline_cuts_a_stall_short(server: FaultServer, transport: Transport) -> None:
    server.default = stall(30)
    start = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        transport.send(
            HttpRequest(method="GET", url=server.url),
            provider="t",
            timeout=30,
            deadline_at=time.monotonic() + 0.5,
            **FAST,
        )
    assert time.monotonic() - start >= 0.45


def test_deadline_without_retries_is_still_a_deadline(server: FaultServer, transport: Transport) -> None:
    server.default = stall(30)
    with pytest.raises(DeadlineExceeded):
        transport.send(
            HttpRequest(method="GET", url=server.url),
            provider="t",
            timeout=30,
            max_retries=0,
            deadline_at=time.monotonic() + 0.3,
        )


def test_deadline_passes_during_a_slow_upload(
    slow_server: FaultServer, transport: Transport, small_send_buffer: None, tmp_path: Path
) -> None:
    path = tmp_path / "slow.bin"
    path.write_bytes(b"\1" * (4 * MiB))
    src = PathSource(str(path), "slow.bin", 4 * MiB)
    slow_server.default = slow_read(chunk=16 * 1024, delay=0.05)
    with pytest.raises(DeadlineExceeded):
        transport.send(
            HttpRequest(method="PUT", url=slow_server.url, body=whole(src)),
            provider="t",
            timeout=30,
            deadline_at=time.monotonic() + 0.5,
            **FAST,
        )


def test_a_deadline_already_past_sends_nothing(server: FaultServer, transport: Transport) -> None:
    with pytest.raises(DeadlineExceeded):
        transport.send(HttpRequest(method="GET", url=server.url), provider="t", deadline_at=time.monotonic() - 1)
    assert server.requests == []


# --- bodies --------------------------------------------------------------------------------------------------


def test_body_is_resent_whole_after_a_reset(server: FaultServer, transport: Transport, blob: PathSource) -> None:
    server.script(reset_after(100_000))
    seen = [0]
    restarts = [0]

    def on_chunk(chunk: bytes) -> None:
        seen[0] += len(chunk)

    def on_restart() -> None:
        restarts[0] += 1
        seen[0] = 0

    resp = transport.send(
        HttpRequest(method="POST", url=server.url + "/upload", body=(b"head:", *whole(blob), b":tail")),
        provider="t",
        on_chunk=on_chunk,
        on_restart=on_restart,
        **FAST,
    )
    assert resp.status == 200
    first, second = server.requests
    assert not first.complete and len(first.body) <= 100_000
    assert second.complete
    expected = b"head:" + read(blob) + b":tail"
    assert hashlib.sha256(second.body).hexdigest() == hashlib.sha256(expected).hexdigest()
    assert second.headers["content-length"] == str(len(expected))
    assert restarts == [1]
    assert seen[0] == blob.size  # on_chunk sees the file's bytes, counted again from 0 after the restart


def test_generated_body_without_length_is_chunked_and_restarted(server: FaultServer, transport: Transport) -> None:
    calls = [0]

    def factory() -> Iterator[bytes]:
        calls[0] += 1
        for i in range(50):
            yield f"line {i}\n".encode()

    server.script(reset_after(10))
    resp = transport.send(
        HttpRequest(method="POST", url=server.url, body=(GeneratedBody(factory=factory),)), provider="t", **FAST
    )
    assert resp.status == 200
    assert calls[0] == 2
    last = server.requests[-1]
    assert last.headers.get("transfer-encoding") == "chunked"
    assert bytes(last.body) == b"".join(f"line {i}\n".encode() for i in range(50))


def test_a_segment_shorter_than_declared_is_an_error(server: FaultServer, transport: Transport) -> None:
    body = (GeneratedBody(factory=lambda: iter([b"abc"]), length=10),)
    with pytest.raises((NetworkError, RetriesExhausted)) as info:
        transport.send(HttpRequest(method="POST", url=server.url, body=body), provider="t", max_retries=0)
    assert "declared" in str(info.value)


def test_truncated_response_is_retried(server: FaultServer, transport: Transport) -> None:
    server.script(truncated(declared=100))
    resp = transport.send(HttpRequest(method="GET", url=server.url), provider="t", **FAST)
    assert resp.status == 200 and resp.json() == {"ok": True}
    assert len(server.requests) == 2


def test_truncated_response_every_time_exhausts_retries(server: FaultServer, transport: Transport) -> None:
    server.default = truncated(declared=100)
    with pytest.raises(RetriesExhausted) as info:
        transport.send(HttpRequest(method="GET", url=server.url), provider="t", max_retries=1, **FAST)
    assert isinstance(info.value.last, NetworkError)
    assert len(server.requests) == 2


def test_oversized_responses_are_refused(
    server: FaultServer, transport: Transport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport_mod, "MAX_RESPONSE_BYTES", 4096)
    server.script(big_body(4096), big_body(4097))
    assert transport.send(HttpRequest(method="GET", url=server.url), provider="t").body == b"x" * 4096
    with pytest.raises(ProviderError) as info:
        transport.send(HttpRequest(method="GET", url=server.url), provider="t")
    assert "larger than 4,096 bytes" in str(info.value)
    assert len(server.requests) == 2  # not retried


def test_download_streams_into_the_sink(server: FaultServer, transport: Transport, tmp_path: Path) -> None:
    server.script(big_body(300_000))
    blocks: list[int] = []
    with open(tmp_path / "out", "w+b") as sink:
        resp = transport.send(
            HttpRequest(method="GET", url=server.url),
            provider="t",
            sink=sink,
            on_sink_chunk=lambda b: blocks.append(len(b)),
        )
    assert resp.status == 200 and resp.body == b""
    assert (tmp_path / "out").read_bytes() == b"x" * 300_000
    assert sum(blocks) == 300_000


# --- where requests may go -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://example.com/v1/files", "http://10.0.0.1/", "http://localhost.example.com/"])
def test_plain_http_to_a_remote_host_is_refused(transport: Transport, url: str) -> None:
    with pytest.raises(InsecureTransport) as info:
        transport.send(HttpRequest(method="GET", url=url, headers={"Authorization": "Bearer k"}), provider="t")
    assert "allow_insecure_http" in str(info.value)


def test_url_checks() -> None:
    for ok in ("https://example.com/", "http://127.0.0.1:8080/", "http://localhost/", "http://[::1]:9/", "local:///x"):
        check_url(ok, allow_insecure_http=False)
    check_url("http://example.com/", allow_insecure_http=True)
    for bad in ("ftp://example.com/f", "file:///etc/passwd", "gopher://x/"):
        with pytest.raises(InsecureTransport):
            check_url(bad, allow_insecure_http=True)


def test_redirect_to_plain_http_remote_is_refused(server: FaultServer, transport: Transport) -> None:
    server.script(redirect("http://example.com/elsewhere"))
    with pytest.raises(InsecureTransport):
        transport.send(HttpRequest(method="GET", url=server.url), provider="t")


def test_redirect_to_another_origin_drops_credentials(
    server: FaultServer, server2: FaultServer, transport: Transport
) -> None:
    server.script(redirect(server2.url + "/landing?x=1"))
    headers = {"Authorization": "Bearer sk-abcdef", "X-Api-Key": "k-123456", "X-Trace": "t-1"}
    resp = transport.send(HttpRequest(method="GET", url=server.url + "/start", headers=headers), provider="t")
    assert resp.status == 200
    assert resp.url == server2.url + "/landing?x=1"
    (landed,) = server2.requests
    assert landed.target == "/landing?x=1"
    assert "authorization" not in landed.headers
    assert "x-api-key" not in landed.headers
    assert landed.headers["x-trace"] == "t-1"


def test_redirect_within_the_origin_keeps_credentials(server: FaultServer, transport: Transport) -> None:
    server.script(redirect("/other"))
    resp = transport.send(
        HttpRequest(method="GET", url=server.url + "/start", headers={"Authorization": "Bearer sk-abcdef"}),
        provider="t",
    )
    assert resp.status == 200
    assert [r.path for r in server.requests] == ["/start", "/other"]
    assert server.requests[1].headers["authorization"] == "Bearer sk-abcdef"


def test_post_is_not_redirected(server: FaultServer, server2: FaultServer, transport: Transport) -> None:
    server.script(redirect(server2.url))
    resp = transport.send(HttpRequest(method="POST", url=server.url, body=b"data"), provider="t")
    assert resp.status == 302
    assert server2.requests == []


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
        transport.send(request, provider="t", timeout=0.3, max_retries=2, secrets=[SECRET], **FAST)
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
    caplog.set_level(logging.DEBUG, logger="llmfiles")
    server.script(respond(500))
    url = f"{server.url}/upload?uploadType=resumable&sig={SECRET}&X-Amz-Credential={SECRET}"
    transport.send(HttpRequest(method="GET", url=url), provider="t", **FAST)
    ours = [r for r in caplog.records if r.name.startswith("llmfiles")]
    assert ours
    for r in ours:
        assert SECRET not in r.getMessage()


def test_redaction_helpers() -> None:
    assert redact(f"key {SECRET} and again {SECRET}", [SECRET]) == "key *** and again ***"
    assert redact("short abc", ["abc"]) == "short abc"  # too short to redact safely
    red = redact_url(f"https://user:pw@host.example/p?sig={SECRET}&name=a.jsonl")
    assert SECRET not in red and "pw" not in red and "name=a.jsonl" in red


def test_reprs_of_requests_and_responses_hide_credentials() -> None:
    from llmfiles.models import HttpResponse

    req = HttpRequest(method="GET", url="https://h/", headers={"Authorization": f"Bearer {SECRET}", "X-Ok": "v"})
    assert SECRET not in repr(req) and "X-Ok" in repr(req)
    resp = HttpResponse(status=200, headers={"set-cookie": f"s={SECRET}"}, body=SECRET.encode())
    assert SECRET not in repr(resp)
