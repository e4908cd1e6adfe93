"""The built-in ``local`` provider passes the same conformance kit every provider plugin runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmfiles.testing import ProviderConformance


class TestLocalConformance(ProviderConformance):
    provider = "local"

    @pytest.fixture
    def provider_settings(self, tmp_path: Path) -> dict[str, Any]:
        return {"home": str(tmp_path)}
