"""Bedrock's batch inference quotas, declared once (``ProviderInfo.file_limits``): the checker warns with them and
``split`` cuts to them, the minimum of records per job included; ``upload --split`` puts every shard in S3 (moto)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import BUCKET

import llmfiles
from llmfiles import CannotSplit, FileLimits
from llmfiles_bedrock.formats import BATCH_LIMITS


def _records(path: Path, n: int) -> Path:
    lines = [
        {"recordId": f"R{i:08d}", "modelInput": {"messages": [{"role": "user", "content": "hi"}]}} for i in range(n)
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


def test_the_quotas_are_declared_once_and_the_checker_warns_with_them(tmp_path: Path) -> None:
    client = llmfiles.Client("bedrock")
    assert client.provider_info().file_limits["batch"] is BATCH_LIMITS
    assert (BATCH_LIMITS.max_records, BATCH_LIMITS.min_records, BATCH_LIMITS.max_bytes) == (50_000, 100, 10**9)
    report = client.validate(_records(tmp_path / "few.jsonl", 99), purpose="batch")
    assert report.ok and [(p.code, p.severity) for p in report.problems] == [("too_few_records", "warning")]
    assert client.validate(_records(tmp_path / "enough.jsonl", 100), purpose="batch").problems == []


def test_split_keeps_every_shard_at_the_minimum_of_a_job(tmp_path: Path) -> None:
    path = _records(tmp_path / "in.jsonl", 50_050)
    result = llmfiles.split(path, output_dir=tmp_path / "out", provider="bedrock")
    assert [s.records for s in result.shards] == [49_950, 100]
    assert b"".join(p.read_bytes() for p in result.paths) == path.read_bytes()
    with pytest.raises(CannotSplit, match="has 99 records; a job takes at least 100"):
        llmfiles.split(_records(tmp_path / "few.jsonl", 99), output_dir=tmp_path / "o2", provider="bedrock")


def test_upload_split_puts_every_shard_in_s3(tmp_path: Path, bedrock_settings: dict[str, Any], s3: Any) -> None:
    path = _records(tmp_path / "in.jsonl", 250)
    with llmfiles.Client("bedrock", **bedrock_settings) as client:
        # 200 records a shard, and Bedrock's minimum of 100 a job: 150 + 100, not 200 + 50
        result = client.upload(path, purpose="batch", split=FileLimits(max_records=200))
    assert [s.records for s in result.shards] == [150, 100]
    keys = [f.id.removeprefix(f"s3://{BUCKET}/") for f in result.files]
    assert [k.rsplit("/", 1)[1] for k in keys] == [f"in.00{i}-of-002.jsonl" for i in (1, 2)]
    stored = b"".join(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys)
    assert stored == path.read_bytes()
