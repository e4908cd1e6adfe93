"""The dry run (``Client.describe_upload``, ``llmfiles upload --dry-run``): every offline check runs, nothing is sent,
and a file or a call the upload would refuse is reported with ``ok: false`` (CLI exit 2)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest
from echo import EchoPlugin, EchoProvider
from echo import echo_client as make_echo_client
from faultserver import FaultServer

import llmfiles.plugins
from llmfiles import Client, hookimpl
from llmfiles.cli import main
from llmfiles.errors import FileTooLarge, ValidationError
from llmfiles.plugins import PluginManager

KiB = 1024
GOOD = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def client(home: Path) -> Client:
    return Client("local", environ={}, home=str(home))


def store_is_empty(home: Path) -> bool:
    files = home / "local" / "files"
    uploads = home / "local" / "uploads"
    return not (files.is_dir() and any(files.iterdir())) and not (uploads.is_dir() and any(uploads.iterdir()))


def test_a_good_file_is_ok_and_nothing_is_sent(client: Client, make_jsonl: Any, home: Path) -> None:
    plan = client.describe_upload(make_jsonl(), purpose="fine-tune")
    assert plan["ok"] is True and plan["problems"] == []
    assert plan["mode"] == "single request" and plan["credentials"] == "no credentials needed"
    assert any("UTF-8 JSONL" in c and "12 record(s)" in c for c in plan["checks"])
    assert store_is_empty(home)


BAD = {
    "invalid line": GOOD + b"not json\n" + GOOD,
    "broken last line": GOOD * 3 + b'{"messages": [',
    "blank line": GOOD + b"\n" + GOOD,
    "not utf-8": GOOD + b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n',
}


@pytest.mark.parametrize("large", [False, True], ids=["single", "parts"])
@pytest.mark.parametrize("kind", sorted(BAD))
def test_a_file_the_upload_would_refuse_is_not_ok(
    client: Client, tmp_path: Path, home: Path, kind: str, large: bool
) -> None:
    path = tmp_path / "bad.jsonl"
    body = BAD[kind]
    if large:  # the same problem behind 200 KiB of good lines
        body = GOOD * (200 * KiB // len(GOOD)) + body
    path.write_bytes(body)
    sizes = {"multipart_threshold": "64KiB", "part_size": "64KiB"} if large else {}
    plan = client.describe_upload(path, purpose="fine-tune", **sizes)
    assert plan["ok"] is False and plan["problems"], plan
    assert plan["mode"] == ("parts" if large else "single request")
    assert "line" in plan["problems"][0]
    # the checks that ran are listed with their verdict, not as if they had passed
    (content,) = [c for c in plan["checks"] if "UTF-8 JSONL" in c]
    assert "FAILED" in content and "problem(s)" in content
    with pytest.raises(ValidationError) as refused:  # and the upload does refuse it, with the same problems
        client.upload(path, purpose="fine-tune", **sizes)
    assert str(refused.value) in plan["problems"]
    assert store_is_empty(home)


def test_validate_false_is_reported_and_the_file_passes(client: Client, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(BAD["invalid line"])
    plan = client.describe_upload(path, purpose="fine-tune", validate=False)
    assert plan["ok"] is True and "content not checked (validate=False)" in plan["checks"]


def test_missing_credentials_are_not_ok_and_nothing_is_sent(server: FaultServer, tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(GOOD)
    pm = PluginManager(load_entry_points=False, environ={})
    pm.register(EchoPlugin(), name="echo")
    keyless = Client("echo", plugin_manager=pm, environ={}, api_base=server.url)
    plan = keyless.describe_upload(path, purpose="batch")
    assert plan["ok"] is False and plan["credentials"] == "missing"
    assert any("ECHO_API_KEY" in p for p in plan["problems"])
    with_key = make_echo_client(server.url).describe_upload(path, purpose="batch")
    assert with_key["ok"] is True and with_key["credentials"] == "env ECHO_API_KEY"
    assert with_key["destination"] == f"POST {server.url}/files"
    assert server.requests == []


def test_the_cli_dry_run_exits_2_for_a_refused_file(
    tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMFILES_HOME", str(home))
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(BAD["broken last line"])
    good = tmp_path / "good.jsonl"
    good.write_bytes(GOOD)
    assert main(["upload", str(bad), "--dry-run", "--json"]) == 2
    plan = json.loads(capsys.readouterr().out)
    assert plan["ok"] is False and plan["problems"]
    assert main(["upload", str(bad), "--dry-run"]) == 2
    assert "the upload would be REFUSED" in capsys.readouterr().out
    assert main(["upload", str(good), "--validation", str(bad), "--dry-run", "--json"]) == 2
    both = json.loads(capsys.readouterr().out)
    assert both["training"]["ok"] is True and both["validation"]["ok"] is False
    assert main(["upload", str(good), "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert store_is_empty(home)


def test_the_cli_dry_run_exits_2_for_missing_credentials(
    server: FaultServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pm = PluginManager(load_entry_points=False, environ={})
    pm.register(EchoPlugin(), name="echo")
    monkeypatch.setattr(llmfiles.plugins, "get_plugin_manager", lambda: pm)
    monkeypatch.delenv("ECHO_API_KEY", raising=False)
    path = tmp_path / "a.jsonl"
    path.write_bytes(GOOD)
    argv = ["upload", str(path), "--provider", "echo", "--purpose", "batch", "-s", f"api_base={server.url}"]
    assert main([*argv, "--dry-run", "--json"]) == 2
    plan = json.loads(capsys.readouterr().out)
    assert plan["credentials"] == "missing" and plan["ok"] is False
    monkeypatch.setenv("ECHO_API_KEY", "sk-echo-test-1234567")
    assert main([*argv, "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert server.requests == []


class SmallEcho(EchoProvider):
    info = attrs.evolve(EchoProvider.info, max_file_size=50)


class SmallEchoPlugin:
    @hookimpl
    def llmfiles_register_providers(self, register: Any) -> None:
        register(SmallEcho())


def test_a_file_too_large_for_the_provider_is_not_ok(server: FaultServer, tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(GOOD)
    pm = PluginManager(load_entry_points=False, environ={})
    pm.register(SmallEchoPlugin(), name="echo")
    client = Client("echo", plugin_manager=pm, environ={"ECHO_API_KEY": "sk-echo-1234567"}, api_base=server.url)
    plan = client.describe_upload(path, purpose="batch")
    assert plan["ok"] is False and len(plan["problems"]) == 1
    assert "50" in plan["problems"][0] and not any("within limits" in c for c in plan["checks"])
    with pytest.raises(FileTooLarge):  # what the upload does
        client.upload(path, purpose="batch")
    assert server.requests == []


def test_the_dry_run_tells_how_far_the_content_checks_got(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llmfiles.uploads

    monkeypatch.setattr(llmfiles.uploads, "CHECK_STEP", 64 * KiB)
    path = tmp_path / "big.jsonl"
    path.write_bytes(GOOD * (300 * KiB // len(GOOD)))
    events: list[Any] = []
    plan = client.describe_upload(path, purpose="fine-tune", progress=events.append)
    assert plan["ok"] is True
    assert {e.operation for e in events} == {"check"} and len(events) >= 4
    assert [e.done for e in events] == sorted(e.done for e in events) and events[-1].done == path.stat().st_size
    assert all(e.total == path.stat().st_size and e.filename == "big.jsonl" for e in events)
    # a file the checks refuse is refused all the same, with the progress told up to where they read
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(GOOD * (200 * KiB // len(GOOD)) + b"not json\n")
    events.clear()
    plan = client.describe_upload(bad, purpose="fine-tune", progress=events.append)
    assert plan["ok"] is False and "invalid_json" in plan["problems"][0] and events


def test_the_cli_shows_the_check_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(GOOD * 20)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["validate", str(path)]) == 0
    captured = capsys.readouterr()
    assert "check a.jsonl" in captured.err and "100%" in captured.err and "ok" in captured.out
    assert main(["upload", str(path), "--dry-run"]) == 0
    assert "check a.jsonl" in capsys.readouterr().err
    assert main(["validate", str(path), "--json"]) == 0  # JSON output: no bar
    assert capsys.readouterr().err == ""
