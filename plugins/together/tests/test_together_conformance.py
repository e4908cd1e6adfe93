"""The conformance kit every provider passes, against our Together server (parts go to its S3-style storage)."""

from __future__ import annotations

from typing import Any

import pytest

from llmfiles.testing import ProviderConformance

MiB = 1024 * 1024


class TestTogetherConformance(ProviderConformance):
    provider = "together"
    purpose = "fine-tune"
    # Together's parts are at least 5 MiB: 12 MiB makes three parts (5 + 5 + 2)
    large_file_bytes = 12 * MiB
    large_part_size = 1 * MiB

    @pytest.fixture
    def provider_settings(self, together_settings: dict[str, Any]) -> dict[str, Any]:
        return together_settings

    def missing_file_id(self) -> str:
        return "file-00000000-0000-0000-0000-000000000000"
