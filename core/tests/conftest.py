"""Fixtures shared by the core's tests: the fault-injecting server, a transport, small socket buffers."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from faultserver import FaultServer

from llmfiles.transport import Transport


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as s:
        yield s


@pytest.fixture
def server2() -> Iterator[FaultServer]:
    with FaultServer() as s:
        yield s


@pytest.fixture
def slow_server() -> Iterator[FaultServer]:
    """A server whose sockets buffer little, as on a real network path (loopback buffers megabytes)."""
    with FaultServer(rcvbuf=64 * 1024) as s:
        yield s


@pytest.fixture
def small_send_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give the client's sockets a small send buffer, so a slow reader slows the sender down as on a real link."""
    import urllib3.util.connection as u3conn

    original = u3conn.create_connection

    def create_connection(*args: Any, socket_options: Any = None, **kw: Any) -> socket.socket:
        opts = [*(socket_options or ()), (socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)]
        return original(*args, socket_options=opts, **kw)

    monkeypatch.setattr(u3conn, "create_connection", create_connection)


@pytest.fixture
def transport() -> Iterator[Transport]:
    t = Transport()
    yield t
    t.close()


@pytest.fixture(autouse=True)
def _fresh_default_client() -> Iterator[None]:
    """Module-level functions use a default client; give each test a fresh one (settings come from env)."""
    from llmfiles.api import _reset_default_client

    _reset_default_client()
    yield
    _reset_default_client()
