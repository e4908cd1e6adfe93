"""llmfiles' conformance kit, against gcp-storage-emulator."""

from __future__ import annotations

from typing import Any

import pytest
from vertex_testlib import BUCKET

from llmfiles.testing import ProviderConformance


class TestVertexConformance(ProviderConformance):
    provider = "vertex_ai"

    @pytest.fixture
    def provider_settings(self, vertex_settings: dict[str, Any]) -> dict[str, Any]:
        return vertex_settings

    def missing_file_id(self) -> str:
        return f"gs://{BUCKET}/llmfiles/20260101T000000Z-000000000000/missing.jsonl"
