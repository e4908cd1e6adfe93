"""The transport credential libraries get (``Http`` / ``CallHttp``): the call's policy, a shorter timeout and no
retries when the library asks for them (google-auth's quick probe of a metadata server, which it retries itself),
and plain ``http://`` to link-local metadata servers, which provider requests never get."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from llmfiles.calls import CallHttp
from llmfiles.errors import InsecureTransport, NetworkError, StallTimeout
from llmfiles.models import HttpRequest
from llmfiles.transport import Policy, Transport
from llmfiles.urls import check_url, is_link_local


class SilentServer:
    """Accepts connections on 127.0.0.1, reads what comes and never answers; counts the connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/token"
        self.connections = 0
        self.open: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self.open.append(conn)

    def __enter__(self) -> SilentServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for conn in self.open:
            conn.close()
        self.thread.join(timeout=5)


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    with SilentServer() as s:
        yield s


def policy(**kw: Any) -> Policy:
    return Policy(provider="test", **{"timeout": 30.0, "max_retries": 2, "max_retry_wait": 0.01, **kw})


def test_a_short_timeout_and_no_retries_when_the_library_asks(transport: Transport, silent: SilentServer) -> None:
    http = CallHttp(transport, policy())
    with pytest.raises(StallTimeout) as info:
        http.send(HttpRequest(method="GET", url=silent.url), timeout=0.3, retries=False)
    assert "0.3s" in str(info.value)  # the library's timeout, not the call's 30 s
    assert silent.connections == 1


def test_by_default_the_calls_retries_and_timeout(transport: Transport, silent: SilentServer) -> None:
    http = CallHttp(transport, policy(timeout=0.3))
    with pytest.raises(NetworkError) as info:
        http.send(HttpRequest(method="GET", url=silent.url))
    assert silent.connections == 3  # max_retries=2
    assert "0.3s" in str(info.value)


def test_a_longer_timeout_than_the_calls_is_not_taken(transport: Transport, silent: SilentServer) -> None:
    http = CallHttp(transport, policy(timeout=0.3))
    with pytest.raises(StallTimeout) as info:
        http.send(HttpRequest(method="GET", url=silent.url), timeout=3600, retries=False)
    assert "0.3s" in str(info.value)


@pytest.mark.parametrize("host", ["169.254.169.254", "169.254.1.2", "[fe80::1]"])
def test_link_local_plain_http_is_for_credential_libraries_only(
    transport: Transport, monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    reached: list[str] = []

    def no_network(self: Any, method: str, url: str, *args: Any, **kw: Any) -> Any:
        reached.append(url)
        raise RuntimeError("stop before any connection")

    monkeypatch.setattr(Transport, "_open", no_network)
    request = HttpRequest(method="GET", url=f"http://{host}/computeMetadata/v1/")
    # a provider's request (the call's own policy) never goes to plain http on the link
    with pytest.raises(InsecureTransport):
        transport.send(request, policy())
    assert reached == []
    # the transport credential libraries get does (the metadata server), and only that
    with pytest.raises(RuntimeError, match="stop before"):
        CallHttp(transport, policy()).send(request)
    assert reached == [request.url]


def test_check_url_link_local_rule() -> None:
    assert is_link_local("169.254.169.254") and is_link_local("[fe80::1]")
    assert not is_link_local("metadata.google.internal") and not is_link_local("10.0.0.1")
    check_url("http://169.254.169.254/", False, link_local=True)
    for refused in ("http://169.254.169.254/", "http://metadata.google.internal/", "http://10.1.2.3/"):
        with pytest.raises(InsecureTransport):
            check_url(refused, False)
    for refused in ("http://metadata.google.internal/", "http://10.1.2.3/", "http://169.254.169.254.nip.io/"):
        with pytest.raises(InsecureTransport):
            check_url(refused, False, link_local=True)
