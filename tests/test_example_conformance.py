"""The in-house example plugin, installed through its entry point, against our OpenAI-compatible server.

It passes llmfiles' conformance kit; the behaviour of the OpenAI wire code it reuses is tested in
plugins/openai/tests/test_behaviour.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import llmfiles
import llmfiles_example
from llmfiles import Client
from llmfiles.testing import ProviderConformance
from servers.openai_like import OpenAILikeServer

MiB = 1024 * 1024
WRONG_KEY = "sk-wrong-key-not-the-real-one-42"


def md5_of(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(MiB):
            h.update(block)
    return h.hexdigest()


class TestExampleConformance(ProviderConformance):
    provider = "example"

    @pytest.fixture
    def provider_settings(self, example_settings: dict[str, Any]) -> dict[str, Any]:
        return example_settings


# --- what is particular to an in-house plugin ----------------------------------------------------------------


def test_the_gateway_key_comes_from_its_own_environment_variable(
    openai_server: OpenAILikeServer, monkeypatch: pytest.MonkeyPatch, make_jsonl: Callable[..., Path]
) -> None:
    monkeypatch.setenv("EXAMPLE_API_KEY", openai_server.api_key)
    monkeypatch.setenv("EXAMPLE_API_BASE", openai_server.url)
    fo = llmfiles.upload(make_jsonl(), purpose="fine-tune", provider="example")
    assert fo.provider == "example" and openai_server.files[fo.id].md5 == md5_of(make_jsonl())
    (req,) = openai_server.requests_to("files.create")
    assert req.headers["authorization"] == f"Bearer {openai_server.api_key}"


def test_a_large_file_goes_up_in_parallel_parts(
    openai_server: OpenAILikeServer, example_settings: dict[str, Any], make_jsonl: Callable[..., Path]
) -> None:
    src = make_jsonl("large.jsonl", min_bytes=3 * MiB)
    openai_server.hold_parts(2)
    with Client("example", **example_settings) as client:
        fo = client.upload(src, purpose="fine-tune", multipart_threshold=MiB, part_size=MiB)
    assert openai_server.peak_parts_in_flight > 1 and not openai_server.gate_timed_out
    assert openai_server.files[fo.id].md5 == md5_of(src)


def test_the_plugin_is_one_provider_object_and_no_guards() -> None:
    """v2: the plugin registers one provider object; the core calls exactly it, so no hook asks "is this mine?"."""
    import inspect

    registered: list[object] = []
    llmfiles_example.llmfiles_register_providers(registered.append)
    [provider] = registered
    assert isinstance(provider, llmfiles_example.ExampleGateway) and provider.info.name == "example"
    hooks = [name for name, _ in inspect.getmembers(llmfiles_example) if name.startswith("llmfiles_")]
    assert hooks == ["llmfiles_register_providers"]
    assert "provider !=" not in inspect.getsource(llmfiles_example)
