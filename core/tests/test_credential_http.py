"""The core's transport as credential libraries get it (``Http`` / :class:`~llmfiles.calls.CallHttp`), the URL rule
for instance metadata endpoints, and the streaming UTF-8 check's byte offsets."""

from __future__ import annotations

import io
import socket
from typing import Any

import pytest

from llmfiles.calls import CallHttp
from llmfiles.errors import InsecureTransport, ValidationError
from llmfiles.models import HttpRequest, HttpResponse
from llmfiles.pipeline import Inspection
from llmfiles.sources import FileObjSource
from llmfiles.transport import Policy, Sent, Transport
from llmfiles.urls import check_url


class Recording:
    """A transport that answers 200 and keeps the policy each request was sent with."""

    def __init__(self) -> None:
        self.policies: list[Policy] = []

    def send(self, request: HttpRequest, policy: Policy, **kw: Any) -> Sent[Any]:
        self.policies.append(policy)
        return Sent(response=HttpResponse(status=200))


def test_a_library_may_tighten_the_timeouts_and_turn_retries_off_but_never_loosen_them() -> None:
    transport = Recording()
    http = CallHttp(transport, Policy(provider="p", timeout=30.0, connect_timeout=10.0, max_retries=5))  # type: ignore[arg-type]
    http.send(HttpRequest(method="GET", url="http://127.0.0.1:1/"))
    http.send(HttpRequest(method="GET", url="http://127.0.0.1:1/"), connect_timeout=1.0, retries=False)
    http.send(HttpRequest(method="GET", url="http://127.0.0.1:1/"), timeout=5.0, connect_timeout=60.0)
    http.send(HttpRequest(method="GET", url="http://127.0.0.1:1/"), timeout=120.0)
    got = [(p.timeout, p.connect_timeout, p.max_retries) for p in transport.policies]
    assert got == [(30.0, 10.0, 5), (30.0, 1.0, 0), (5.0, 5.0, 5), (30.0, 10.0, 5)]
    assert all(p.link_local_http for p in transport.policies)


def test_plain_http_to_a_link_local_address_only_where_credential_libraries_ask() -> None:
    for url in ("http://169.254.169.254/metadata/identity/oauth2/token", "http://[fe80::1]:8081/msi/token"):
        assert check_url(url, False, link_local=True).scheme == "http"
        with pytest.raises(InsecureTransport, match="plain http"):
            check_url(url, False)
    for url in ("http://10.0.0.4/token", "http://169.255.0.1/token", "http://metadata.example.com/token"):
        with pytest.raises(InsecureTransport, match="plain http"):
            check_url(url, False, link_local=True)
    assert check_url("http://127.0.0.1:5/x", False).host == "127.0.0.1"


def test_provider_requests_to_a_link_local_address_are_refused_before_any_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_network(*args: Any, **kw: Any) -> Any:
        raise AssertionError(f"a connection was attempted: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    transport = Transport()
    with pytest.raises(InsecureTransport):
        transport.send(HttpRequest(method="GET", url="http://169.254.169.254/x"), Policy(provider="p", max_retries=0))
    transport.close()


@pytest.mark.parametrize("block", [1, 2, 3, 7, 4096])
def test_the_utf8_check_counts_bytes_from_the_file_start_whatever_the_blocks(block: int) -> None:
    data = '{"a": "é"}\n{"b": "ü"}\n'.encode() + b'{"c": "\xc3\x28"}\n'
    source = FileObjSource(io.BytesIO(data), "t.jsonl", 0, len(data))
    inspection = Inspection(source, utf8=True)
    for offset in range(0, len(data), block):
        inspection.feed(offset, data[offset : offset + block])
    with pytest.raises(ValidationError) as info:
        inspection.finish()
    bad = data.index(b"\xc3(") + 1
    assert f"byte {bad} of the file" in str(info.value)


def test_a_dry_runs_http_sends_nothing_and_says_so() -> None:
    from llmfiles.errors import LLMFilesError

    transport = Recording()
    http = CallHttp(transport, Policy(provider="p"), offline=True)  # type: ignore[arg-type]
    assert http.offline
    with pytest.raises(LLMFilesError, match="a dry run sends nothing") as info:
        http.send(HttpRequest(method="POST", url="http://127.0.0.1:1/token?key=sekrit"))
    assert transport.policies == [] and "sekrit" not in str(info.value)
    assert not CallHttp(transport, Policy(provider="p")).offline  # type: ignore[arg-type]


def test_a_dry_run_resolves_credentials_offline_and_an_upload_does_not(tmp_path: Any) -> None:
    """The provider's credentials get an ``Http`` that is offline in a dry run (and only there)."""
    from llmfiles import Client, hookimpl
    from llmfiles.local import LocalProvider
    from llmfiles.models import Credentials, Settings
    from llmfiles.plugins import PluginManager

    seen: list[bool] = []

    class Watching(LocalProvider):
        def credentials(self, settings: Settings, environ: Any, http: Any) -> Credentials:
            seen.append(http.offline)
            return super().credentials(settings, environ, http)

    class Registers:
        @hookimpl
        def llmfiles_register_providers(self, register: Any) -> None:
            register(Watching())

    pm = PluginManager(load_entry_points=False, environ={})
    pm.register(Registers(), name="local")
    src = tmp_path / "a.jsonl"
    src.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    with Client("local", plugin_manager=pm, environ={}, home=str(tmp_path / "home")) as client:
        assert client.describe_upload(src, purpose="assistants")["ok"]
        client.upload(src, purpose="assistants")
    assert seen == [True, False]
