"""Constants and helpers shared by the llmfiles-mistral tests (a module of its own: ``conftest`` names clash when
several test suites are collected together)."""

from __future__ import annotations

import json
from pathlib import Path

API_KEY = "mistral-test-key-0123456789abcdef"


def chat_file(path: Path, records: int = 12, *, min_bytes: int = 0) -> Path:
    """A Mistral fine-tuning file (user/assistant conversations) of at least ``records`` lines and ``min_bytes``."""
    size = i = 0
    with open(path, "wb") as fh:
        while i < records or size < min_bytes:
            record = {
                "messages": [
                    {"role": "system", "content": "Réponds brièvement."},
                    {"role": "user", "content": f"Combien font {i} + {i} ?"},
                    {"role": "assistant", "content": f"{2 * i}."},
                ]
            }
            line = json.dumps(record, ensure_ascii=False).encode() + b"\n"
            fh.write(line)
            size += len(line)
            i += 1
    return path


def batch_file(path: Path, records: int = 12) -> Path:
    """A Mistral batch file: ``{"custom_id", "body"}`` lines, as the batch page shows them."""
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(records):
            body = {"max_tokens": 64, "messages": [{"role": "user", "content": f"What is {i} + {i}?"}]}
            fh.write(json.dumps({"custom_id": str(i), "body": body}) + "\n")
    return path
