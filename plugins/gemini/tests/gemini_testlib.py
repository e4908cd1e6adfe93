"""Constants and helpers shared by the llmfiles-gemini tests (a module of its own: ``conftest`` names clash when
several test suites are collected together)."""

from __future__ import annotations

import json
from pathlib import Path

API_KEY = "AIza-gemini-test-0123456789abcdef"
KiB = 1024
CHUNK = 256 * KiB


def batch_file(path: Path, records: int = 12, *, min_bytes: int = 0, pad: int = 0) -> Path:
    """A Gemini Batch API input file (``{"key", "request"}`` lines) of at least ``records`` lines and ``min_bytes``
    bytes, with non-ASCII text; ``pad`` makes each line longer."""
    size = 0
    i = 0
    with open(path, "wb") as fh:
        while i < records or size < min_bytes:
            line = (
                json.dumps(
                    {
                        "key": f"request-{i}",
                        "request": {
                            "contents": [
                                {
                                    "role": "user",
                                    "parts": [{"text": f"Question {i} : combien font {i} + {i} ? " + "·" * pad}],
                                }
                            ],
                            "generation_config": {"temperature": 0.2},
                        },
                    },
                    ensure_ascii=False,
                ).encode()
                + b"\n"
            )
            fh.write(line)
            size += len(line)
            i += 1
    return path
