"""Fixtures shared by the core's tests: the fault-injecting server, a transport, small socket buffers."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clirun import Run, cli_env, make_run
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
def black_hole() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` where a connection can never be opened: the listening socket's queue is full and
    never accepted from, so a new connection's SYN goes unanswered (as with a firewalled address)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    held: list[socket.socket] = []
    try:
        for _ in range(4):  # fill the accept queue
            c = socket.socket()
            c.settimeout(0.2)
            try:
                c.connect(("127.0.0.1", port))
            except OSError:
                c.close()
                break
            held.append(c)
        yield f"http://127.0.0.1:{port}"
    finally:
        for c in held:
            c.close()
        srv.close()


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test never looks up (so never reaches) a host that is not loopback: the lookup fails at once instead."""
    original = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kw: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in {"127.0.0.1", "::1", "localhost"} and not name.startswith("127."):
            raise socket.gaierror(socket.EAI_NONAME, f"the tests refuse to look up {name!r} (not loopback)")
        return original(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def transport() -> Iterator[Transport]:
    t = Transport()
    yield t
    t.close()


@pytest.fixture(autouse=True)
def _private_home(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """llmfiles' data folder (the state database, the local store) and config folder are the test's own, never the
    developer's."""
    monkeypatch.setenv("LLMFILES_HOME", str(tmp_path_factory.mktemp("llmfiles-home")))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config-home")))
    monkeypatch.delenv("LLMFILES_CONFIG", raising=False)
    monkeypatch.delenv("LLMFILES_PROFILE", raising=False)


@pytest.fixture(autouse=True)
def _hide_pread(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``LLMFILES_TESTS_HIDE_PREAD=1`` (test_portable.py runs the upload tests so), ``os.pread`` and
    ``os.preadv`` do not exist, as on Windows: the sources read with seek and read instead."""
    import os

    if os.environ.get("LLMFILES_TESTS_HIDE_PREAD") == "1":
        import llmfiles.sources

        monkeypatch.delattr(os, "pread", raising=False)
        monkeypatch.delattr(os, "preadv", raising=False)
        monkeypatch.setattr(llmfiles.sources, "_PREAD", None)
        monkeypatch.setattr(llmfiles.sources, "_PREADV", None)


@pytest.fixture(autouse=True)
def _only_the_core(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The core's tests use its built-in provider only: other installed plugins are tested by their own suites, and
    a broken one must not fail these.  Each test gets a fresh plugin manager and default client."""
    from importlib.metadata import entry_points

    from llmfiles.api import _reset_default_client
    from llmfiles.plugins import reset_plugin_manager

    others = sorted({ep.name for ep in entry_points(group="llmfiles")} - {"local"})
    if others:
        monkeypatch.setenv("LLMFILES_DISABLE_PLUGINS", ",".join(others))
    reset_plugin_manager()
    _reset_default_client()
    yield
    _reset_default_client()
    reset_plugin_manager()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The ``$LLMFILES_HOME`` of the command in a CLI test."""
    return tmp_path / "home"


@pytest.fixture
def run(home: Path, tmp_path: Path) -> Run:
    """``run(*args, check=0)``: the ``llmfiles`` command in a subprocess (see clirun.cli_env)."""
    return make_run(cli_env(home, tmp_path), tmp_path)
