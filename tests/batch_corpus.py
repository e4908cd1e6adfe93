"""A realistic OpenAI batch file for the batch conversions' tests (``vertex-batch``, ``gemini-batch``,
``bedrock-batch``, ``mistral-batch``): dozens of chat completions requests as people write them, in the shape of
https://platform.openai.com/docs/guides/batch#1-prepare-your-batch-file, plus the lines a conversion must refuse.

Imported by the plugins' tests (their tox envs put ``tests/`` on ``PYTHONPATH``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: a 1x1 PNG as a data: URL
PNG = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def line(custom_id: str, body: Mapping[str, Any], url: str = "/v1/chat/completions") -> dict[str, Any]:
    """One request line."""
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": {"model": "gpt-4o-mini", **body}}


def _kinds(i: int) -> dict[str, dict[str, Any]]:
    """The kinds of request, each for request number ``i``."""
    q = f"Question {i}: what is {i} + {i}?"
    return {
        "system": {"messages": [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": q}]},
        "developer": {
            "messages": [{"role": "developer", "content": "Be terse."}, {"role": "user", "content": q}],
            "max_completion_tokens": 64,
        },
        "multi_turn": {
            "messages": [
                {"role": "system", "content": "You are a maths tutor."},
                {"role": "user", "content": "What is 2 + 2?"},
                {"role": "assistant", "content": "4."},
                {"role": "user", "content": q},
            ],
            "stop": ["\n\n", "END"],
        },
        "parts": {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Think. "}, {"type": "text", "text": q}]}
            ],
            "temperature": 0.2,
            "top_p": 0.9,
        },
        "unicode": {
            "messages": [{"role": "user", "content": f"Combien font {i} + {i} ? Réponds en français · 日本"}],
            "stop": "FIN",
        },
        "image": {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What colour is this pixel?"},
                        {"type": "image_url", "image_url": {"url": PNG}},
                    ],
                },
            ],
        },
        "json_object": {
            "messages": [{"role": "system", "content": "Reply in JSON."}, {"role": "user", "content": q}],
            "response_format": {"type": "json_object"},
        },
        "json_schema": {
            "messages": [{"role": "user", "content": "The largest city of France?"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "city", "schema": SCHEMA, "strict": True},
            },
        },
        "tools": {
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": f"call{i}",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": f"call{i}", "content": '{"temperature_c": 21}'},
            ],
            "tools": [WEATHER_TOOL],
            "tool_choice": "auto",
        },
        "seed": {"messages": [{"role": "user", "content": q}], "seed": 42, "temperature": 0},
    }


#: what each target takes (a Titan or Llama batch is text only, Claude has no seed and no response_format, ...)
FEATURES = (
    "system",
    "developer",
    "multi_turn",
    "parts",
    "unicode",
    "image",
    "json_object",
    "json_schema",
    "tools",
    "seed",
)


def requests(count: int = 36, *, kinds: Iterable[str] = FEATURES, max_tokens: int = 128) -> list[dict[str, Any]]:
    """``count`` request lines cycling through ``kinds``; each has ``max_tokens`` unless it sets
    ``max_completion_tokens``; custom ids ``task-000``, ``task-001``, ..."""
    chosen = list(kinds)
    out = []
    for i in range(count):
        body = _kinds(i)[chosen[i % len(chosen)]]
        if "max_completion_tokens" not in body:
            body = {**body, "max_tokens": max_tokens}
        out.append(line(f"task-{i:03d}", body))
    return out


def write(path: Path, records: Iterable[Mapping[str, Any]]) -> Path:
    """``records`` as a JSONL file."""
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def read(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file."""
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def errors_at(result: Any) -> list[tuple[int | None, str, str]]:
    """``(line, code, path)`` of the errors of a conversion's pass over its input."""
    return [(p.line, p.code, p.path) for p in result.conversion.problems if p.severity == "error"]
