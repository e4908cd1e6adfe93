"""Together's batch limits, declared once (``ProviderInfo.file_limits["batch"]``): the checker refuses a file
over them and ``llmfiles split`` cuts to them."""

from __future__ import annotations

import json
from pathlib import Path

import llmfiles
from llmfiles.validate.stats import FileFacts
from llmfiles_together.checks import BATCH_LIMITS, BatchChecker


def test_the_limits_are_declared_once_and_checked(tmp_path: Path) -> None:
    info = llmfiles.Client("together", api_key="x").provider_info()
    assert info.file_limits["batch"] is BATCH_LIMITS
    assert (BATCH_LIMITS.max_records, BATCH_LIMITS.max_bytes) == (50_000, 100_000_000)
    checker = BatchChecker(llmfiles.FileLimits(max_records=2, max_bytes=10))
    [big] = checker.start(FileFacts(display="x.jsonl", size=11, has_bom=False))
    assert big.code == "file_too_large" and "llmfiles split FILE -p together --purpose batch" in big.message
    for i in range(3):
        assert checker.check(i + 1, {"custom_id": f"r{i}", "body": {}}) == []
    [many] = checker.finish()
    assert many.code == "too_many_requests" and "at most 2" in many.message


def test_split_cuts_to_together_s_limits(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"custom_id": f"r{i}", "body": {}}) + "\n" for i in range(3)), encoding="utf-8")
    result = llmfiles.split(path, output_dir=tmp_path / "out", provider="together", purpose="batch")
    assert result.limits.max_records == 50_000 and len(result.shards) == 1
    cut = llmfiles.split(path, output_dir=tmp_path / "o2", provider="together", purpose="batch", max_records=1)
    assert [s.records for s in cut.shards] == [1, 1, 1]
