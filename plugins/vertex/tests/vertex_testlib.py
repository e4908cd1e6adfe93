"""Constants and helpers shared by the llmfiles-vertex tests (a module of its own: ``conftest`` names clash when
several test suites are collected together)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmfiles.plugins import get_plugin_manager
from llmfiles_vertex import gemini
from llmfiles_vertex.plugin import VertexProvider

BUCKET = "llmfiles-vertex-test"
TOKEN = "ya29.passed-token-0123456789"


def provider() -> VertexProvider:
    """The registered ``vertex_ai`` provider object."""
    registered = get_plugin_manager().get("vertex_ai").provider
    assert isinstance(registered, VertexProvider)
    return registered


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


def expected_conversion(data: bytes) -> bytes:
    """The bytes ``convert="gemini"`` uploads for a file holding ``data``: every record converted (Gemini records
    kept), written as compact UTF-8 JSON, one per line, without the BOM and the CRs."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    out = []
    for line in data.split(b"\n"):
        if line.strip():
            record: dict[str, Any] = json.loads(line)
            converted, problems = gemini.convert_record(record)
            assert converted is not None, problems
            out.append(json.dumps(converted, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
    return b"".join(out)
