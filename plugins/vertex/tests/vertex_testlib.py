"""Constants and helpers shared by the llmfiles-vertex tests (a module of its own: ``conftest`` names clash when
several test suites are collected together)."""

from __future__ import annotations

import json
from pathlib import Path

BUCKET = "llmfiles-vertex-test"
TOKEN = "ya29.passed-token-0123456789"


def chat_file(path: Path, records: int = 20, *, pad: int = 0, crlf: bool = False) -> Path:
    """A chat fine-tuning file with non-ASCII text; ``pad`` makes records longer, ``crlf`` Windows line ends."""
    end = b"\r\n" if crlf else b"\n"
    with open(path, "wb") as fh:
        for i in range(records):
            record = {
                "messages": [
                    {"role": "system", "content": "Réponds brièvement."},
                    {"role": "user", "content": f"Question {i}: combien font {i} + {i} ? " + "·" * pad},
                    {"role": "assistant", "content": f"{2 * i} — voilà."},
                ]
            }
            fh.write(json.dumps(record, ensure_ascii=False).encode() + end)
    return path
