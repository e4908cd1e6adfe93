"""OpenAI's batch limits, declared once (``ProviderInfo.file_limits``) and read by the checker and by ``split``; and
``upload --split`` through Stoplight Prism serving OpenAI's published contract (every shard's POST /files must pass
it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import llmfiles
from llmfiles import FileLimits
from llmfiles.plugins import PluginManager
from llmfiles_openai.checks import OPENAI_BATCH, OPENAI_BATCH_LIMITS, BatchChecker, BatchRules
from llmfiles_openai.plugin import OpenAIProvider
from servers.recording import Recorder


def _requests(path: Path, n: int) -> Path:
    lines = [
        {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}}
        for i in range(n)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


def test_the_limits_are_declared_once_and_the_checker_reads_them() -> None:
    info = llmfiles.Client("openai", api_key="x").provider_info()
    assert info.file_limits["batch"] is OPENAI_BATCH_LIMITS
    assert (OPENAI_BATCH_LIMITS.max_records, OPENAI_BATCH_LIMITS.max_bytes) == (50_000, 200_000_000)
    assert OPENAI_BATCH_LIMITS.docs == "https://platform.openai.com/docs/guides/batch"
    assert (OPENAI_BATCH.max_requests, OPENAI_BATCH.max_bytes) == (50_000, 200_000_000)
    rules = BatchRules.of(FileLimits(max_records=2), provider="OpenAI", name="openai", endpoints=OPENAI_BATCH.endpoints,
                          same_model="warning")  # fmt: skip
    checker = BatchChecker(rules)
    for i in range(3):
        checker.check(i + 1, {"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
                              "body": {"model": "m", "messages": [{"role": "user", "content": "x"}]}})  # fmt: skip
    [problem] = checker.finish()
    assert problem.code == "too_many_requests"
    assert "llmfiles split FILE -p openai --purpose batch -o DIR" in problem.message


def test_split_uses_openai_s_limits(tmp_path: Path) -> None:
    path = _requests(tmp_path / "in.jsonl", 3)
    result = llmfiles.split(path, output_dir=tmp_path / "out", provider="openai")
    assert result.limits == OPENAI_BATCH_LIMITS and len(result.shards) == 1


def test_upload_split_through_the_contract(tmp_path: Path, prism_openai: str) -> None:
    recorder = Recorder(OpenAIProvider())
    pm = PluginManager(load_entry_points=False)
    pm.register(recorder, "recorder")
    path = _requests(tmp_path / "in.jsonl", 5)
    with llmfiles.Client("openai", plugin_manager=pm, environ={}, api_key="sk-contract", api_base=prism_openai) as c:
        result = c.upload(path, purpose="batch", split=FileLimits(max_records=2))
    assert len(result.files) == 3 and [s.records for s in result.shards] == [2, 2, 1]
    posts = [r for r in recorder.requests if r.method == "POST" and r.url.endswith("/files")]
    assert len(posts) == 3
    assert [status for what, status in recorder.statuses if what == "upload"] == [200, 200, 200]


@pytest.mark.parametrize("provider", ["groq", "perplexity"])
def test_the_compatible_rows_limits_come_from_their_row(provider: str) -> None:
    from llmfiles_openai.presets import by_name

    row = by_name()[provider]
    limits = llmfiles.Client(provider, api_key="x").provider_info().file_limits["batch"]
    assert (limits.max_bytes, limits.max_records) == (row.max_file_size, row.batch_max_lines)
