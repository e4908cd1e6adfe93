"""The conformance kit every provider passes, run against moto's S3 (through our fault proxy)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import BUCKET

from llmfiles.testing import ProviderConformance

MiB = 1024 * 1024


class TestBedrockConformance(ProviderConformance):
    provider = "bedrock"
    purpose = "fine-tune"
    # S3 parts are at least 5 MiB: 12 MiB makes three parts (5 + 5 + 2)
    large_file_bytes = 12 * MiB
    large_part_size = 1 * MiB

    @pytest.fixture
    def provider_settings(self, bedrock_settings: dict[str, Any]) -> dict[str, Any]:
        return bedrock_settings

    def missing_file_id(self) -> str:
        return f"s3://{BUCKET}/llmfiles/fine-tune/19700101T000000Z-0000000000000000/missing.jsonl"
