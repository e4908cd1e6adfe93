from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from servers.prism import run_prism

CONTRACT = Path(__file__).parent / "contract" / "openai-files.json"


@pytest.fixture(scope="session")
def prism_openai() -> Iterator[str]:
    """Prism serving OpenAI's published Files/Uploads contract; yields the API base (``.../v1``)."""
    with run_prism(CONTRACT, ready_path="/v1/files", headers={"Authorization": "Bearer ready"}) as base:
        yield base + "/v1"
