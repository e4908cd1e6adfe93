"""One file to several providers at once (``upload(file, provider=[...])``, ``upload FILE -p a,b``), and
``upload --split`` to a provider over HTTP: the built-in ``local`` provider beside ``openai`` pointed at our
OpenAI-like server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import llmfiles
from llmfiles import FanOut, FileLimits, FileObject
from servers.openai_like import OpenAILikeServer

KEY = "sk-fanout-test-0123456789"


def _batch(tmp_path: Path, n: int = 5) -> Path:
    path = tmp_path / "requests.jsonl"
    lines = [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


@pytest.fixture
def server() -> Any:
    with OpenAILikeServer(api_key=KEY) as s:
        yield s
        assert not s.errors


@pytest.fixture(autouse=True)
def _no_openai_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE"):
        monkeypatch.delenv(name, raising=False)


def test_each_provider_gets_the_file_with_its_own_settings(tmp_path: Path, server: OpenAILikeServer) -> None:
    path = _batch(tmp_path)
    with llmfiles.Client() as client:
        result = client.upload(
            path,
            purpose="batch",
            provider=["openai", "local"],
            provider_settings={"openai": {"api_key": KEY, "api_base": server.url}},
            max_retries=1,  # a core setting: both get it
        )
    assert isinstance(result, FanOut) and result.ok
    assert [r.provider for r in result] == ["openai", "local"]
    openai_file, local_file = result["openai"].result, result["local"].result
    assert isinstance(openai_file, FileObject) and openai_file.provider == "openai"
    assert isinstance(local_file, FileObject) and local_file.provider == "local"
    assert openai_file.id in server.files and server.files[openai_file.id].bytes == path.stat().st_size


def test_a_provider_without_credentials_fails_alone_and_the_other_upload_is_kept(tmp_path: Path) -> None:
    path = _batch(tmp_path)
    with llmfiles.Client() as client:
        result = client.upload(path, purpose="batch", provider=["local", "openai"])
        assert not result.ok and [r.provider for r in result.failed] == ["openai"]
        assert isinstance(result["openai"].error, llmfiles.MissingCredentials)
        kept = result["local"].result
        assert isinstance(kept, FileObject)
        assert client.retrieve(kept.id, provider="local").bytes == path.stat().st_size


def test_everything_is_checked_before_anything_is_sent(tmp_path: Path) -> None:
    path = _batch(tmp_path)
    with llmfiles.Client() as client:
        # local takes "evals" files, example does not: refused before local gets the file
        with pytest.raises(llmfiles.InvalidPurpose):
            client.upload(path, purpose="evals", provider=["local", "example"])
        with pytest.raises(llmfiles.InvalidSetting, match="not one of the providers"):
            client.upload(path, purpose="batch", provider=["local", "openai"], provider_settings={"vertex": {}})
        with pytest.raises(llmfiles.InvalidSetting, match="no_such_setting"):
            client.upload(path, purpose="batch", provider=["local", "openai"], no_such_setting=1)
        with pytest.raises(llmfiles.InputError, match="named twice"):
            client.upload(path, purpose="batch", provider=["local", "local"])
        assert list(client.list_files(provider="local")) == []


def test_fan_out_with_split_and_the_async_twin(tmp_path: Path, server: OpenAILikeServer) -> None:
    path = _batch(tmp_path, 5)
    result = asyncio.run(
        llmfiles.aupload(
            path,
            purpose="batch",
            provider=["local", "openai"],
            split=FileLimits(max_records=2),
            provider_settings={"openai": {"api_key": KEY, "api_base": server.url}},
        )
    )
    assert result.ok
    for r in result:
        assert isinstance(r.result, llmfiles.SplitUpload)
        assert [s.records for s in r.result.shards] == [2, 2, 1]
    sent = sorted(f.filename for f in server.files.values())
    assert sent == [f"requests.00{i}-of-003.jsonl" for i in (1, 2, 3)]


def test_upload_split_to_openai_over_http_in_order(tmp_path: Path, server: OpenAILikeServer) -> None:
    path = _batch(tmp_path, 7)
    with llmfiles.Client("openai", api_key=KEY, api_base=server.url) as client:
        result = client.upload(path, purpose="batch", split=FileLimits(max_records=3))
        stored = [server.files[f.id] for f in result.files]
    assert [f.filename for f in result.files] == [f"requests.00{i}-of-003.jsonl" for i in (1, 2, 3)]
    assert b"".join(f.content for f in stored) == path.read_bytes()


def _cli(*args: str, check: int = 0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    proc = subprocess.run(
        [sys.executable, "-m", "llmfiles", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == check, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def test_cli_fan_out_prints_one_result_per_provider_and_fails_if_one_failed(
    tmp_path: Path, server: OpenAILikeServer
) -> None:
    path = str(_batch(tmp_path))
    ok = _cli(
        "--json",
        "upload",
        path,
        "--purpose",
        "batch",
        "-p",
        "local,openai",
        "-s",
        f"openai.api_key={KEY}",
        "-s",
        f"openai.api_base={server.url}",
    )
    rows = json.loads(ok.stdout)
    assert [(r["provider"], r["ok"]) for r in rows] == [("local", True), ("openai", True)]
    assert rows[1]["file"]["id"] in server.files
    bad = _cli("upload", path, "--purpose", "batch", "-p", "local,openai", check=2)
    lines = bad.stdout.splitlines()
    assert lines[0].startswith("local: file-") and lines[1].startswith("openai: FAILED: MissingCredentials")
    assert "failed: openai; the other uploads are kept" in bad.stderr
    as_json = json.loads(_cli("--json", "upload", path, "--purpose", "batch", "-p", "local,openai", check=2).stdout)
    assert as_json[1]["ok"] is False and as_json[1]["error"]["type"] == "MissingCredentials"
    # with several providers on one command line a setting is given to one of them: the advice says how
    said = as_json[1]["error"]["message"] + bad.stdout
    assert "-s openai.api_key=..." in said and "-s api_key=" not in said
    alone = _cli("upload", path, "--purpose", "batch", "-p", "openai", check=2)
    assert "-s api_key=..." in alone.stderr and "openai.api_key" not in alone.stderr
    unknown = _cli("upload", path, "--purpose", "batch", "-p", "local,openai", "-s", "vertex.bucket=b", check=2)
    assert "not one of the providers" in unknown.stderr
