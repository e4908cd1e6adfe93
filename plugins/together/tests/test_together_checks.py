"""Together's ``files check`` rules caught offline (``llmfiles validate`` and before any upload): one good and one
bad file per rule, each bad one refused with its code, and nothing sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmfiles import Client
from llmfiles.errors import ValidationError
from servers.together_like import TogetherLikeServer

IMAGE = "data:image/png;base64,iVBORw0KGgo="
CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
PREF = {
    "input": {"messages": [{"role": "user", "content": "hi"}]},
    "preferred_output": [{"role": "assistant", "content": "hello"}],
    "non_preferred_output": [{"role": "assistant", "content": "go away"}],
}
GOOD = {
    "text": [{"text": "plain text"}],
    "conversation": [CHAT, {"messages": [{"role": "system", "content": "terse"}, *CHAT["messages"]]}],
    "weighted": [{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "weight": 0}]}],
    "instruction": [{"prompt": "2+2?", "completion": "4"}],
    "preference": [PREF],
    "multimodal": [
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "what?"}, {"type": "image_url", "image_url": {"url": IMAGE}}],
                },
                {"role": "assistant", "content": [{"type": "text", "text": "a cat"}]},
            ]
        }
    ],
}
BAD = {
    "unknown_format": [{"question": "?"}],
    "unknown_field": [{**CHAT, "extra": 1}],
    "mixed_formats": [CHAT, {"text": "t"}],
    "no_messages": [{"messages": []}],
    "missing_content": [{"messages": [{"role": "user"}]}],
    "bad_role": [{"messages": [{"role": "tool", "content": "x"}, {"role": "assistant", "content": "y"}]}],
    "repeated_role": [{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}],
    "no_assistant_message": [{"messages": [{"role": "user", "content": "a"}]}],
    "bad_weight": [
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "weight": 2}]}
    ],
    "image_not_user": [
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": IMAGE}}]},
            ]
        }
    ],
    "bad_image_url": [
        {
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]},
                {"role": "assistant", "content": [{"type": "text", "text": "c"}]},
            ]
        }
    ],
    "mixed_content": [
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "a"}]},
                {"role": "assistant", "content": "b"},
            ]
        }
    ],
    "last_is_assistant": [
        {**PREF, "input": {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}}
    ],
    "bad_output": [{**PREF, "preferred_output": []}],
}


def _write(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def client() -> Client:
    return Client("together", environ={"TOGETHER_API_KEY": "k" * 20})


@pytest.mark.parametrize("name", sorted(GOOD))
def test_files_together_takes_pass(client: Client, tmp_path: Path, name: str) -> None:
    report = client.validate(_write(tmp_path / f"{name}.jsonl", GOOD[name]), purpose="fine-tune")
    assert report.ok, [p.describe() for p in report.problems]


@pytest.mark.parametrize("code", sorted(BAD))
def test_files_together_refuses_are_caught_offline(client: Client, tmp_path: Path, code: str) -> None:
    report = client.validate(_write(tmp_path / f"{code}.jsonl", BAD[code]), purpose="fine-tune")
    assert not report.ok
    assert code in {p.code for p in report.problems}, [p.describe() for p in report.problems]


def test_a_file_that_breaks_a_rule_is_never_sent(together_server: TogetherLikeServer, tmp_path: Path) -> None:
    src = _write(tmp_path / "bad.jsonl", BAD["repeated_role"])
    client = Client("together", api_base=together_server.url, api_key=together_server.api_key)
    with client, pytest.raises(ValidationError, match="alternate"):
        client.upload(src, purpose="fine-tune", check_first=True)
    assert together_server.requests == []


def test_batch_api_lines(client: Client, tmp_path: Path) -> None:
    good = [{"custom_id": f"r{i}", "body": {"model": "m", "messages": []}} for i in range(3)]
    assert client.validate(_write(tmp_path / "g.jsonl", good), purpose="batch").ok
    dup = client.validate(_write(tmp_path / "d.jsonl", [good[0], good[0]]), purpose="batch")
    assert "duplicate_custom_id" in {p.code for p in dup.problems}
    long_id = client.validate(_write(tmp_path / "l.jsonl", [{"custom_id": "x" * 65, "body": {}}]), purpose="batch")
    assert "bad_custom_id" in {p.code for p in long_id.problems}
