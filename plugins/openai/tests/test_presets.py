"""OpenAI-compatible platforms as rows of data (``llmfiles_openai/presets.toml``): every row a provider, the Groq and
xAI presets uploading for real to our stateful OpenAI-format server through an ``api_base`` override (at Groq's own
``/openai/v1`` path for Groq), and each row's limits checked before any byte is sent."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import llmfiles
from llmfiles import Client
from llmfiles.errors import FileTooLarge, InvalidPurpose, InvalidSetting, ValidationError
from llmfiles.plugins import PluginManager
from llmfiles.testing import ProviderConformance
from llmfiles_openai import presets
from servers.openai_like import OpenAILikeServer

#: the documented base URL and key variable of each preset, as the issue and the platforms' docs give them
DOCUMENTED = {
    "groq": ("https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "xai": ("https://api.x.ai/v1", "XAI_API_KEY"),
    "perplexity": ("https://api.perplexity.ai/v1", "PERPLEXITY_API_KEY"),
    "novita": ("https://api.novita.ai/openai/v1", "NOVITA_API_KEY"),
}
KEY = "gsk-preset-test-0123456789abcdef"


@pytest.fixture(autouse=True)
def _no_preset_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for row in presets.load():
        for name in (*row.key_env, *row.base_env):
            monkeypatch.delenv(name, raising=False)


def _lines(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def groq_batch(path: Path, n: int = 5, **line: Any) -> Path:
    records = [
        {
            "custom_id": f"request-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "llama-3.1-8b-instant", "messages": [{"role": "user", "content": f"{i} + {i}?"}]},
            **line,
        }
        for i in range(n)
    ]
    return _lines(path, records)


# --- the rows ------------------------------------------------------------------------------------------------


def test_every_row_is_a_provider_with_its_documented_base_and_key() -> None:
    pm = PluginManager(environ={})
    rows = presets.by_name()
    assert set(rows) == {"openai_compatible", *DOCUMENTED}
    for name, (base, key_env) in DOCUMENTED.items():
        info = pm.get(name).provider.info
        assert info.package == "llmfiles-openai"
        specs = {s.name: s for s in info.settings}
        assert specs["api_base"].default == base and specs["api_key"].env == (key_env,)
        assert info.supports_parts is False  # none documents OpenAI's Uploads API
        assert rows[name].docs and all(d.startswith("https://") for d in rows[name].docs)
    assert pm.get("groq").provider.info.purposes == ("batch",)
    assert pm.get("groq").provider.info.max_file_size == 100_000_000
    assert pm.get("perplexity").provider.info.max_file_size == 200_000_000
    assert rows["perplexity"].batch_max_lines == 50_000
    compatible = pm.get("openai_compatible").provider.info
    assert {s.name: s.default for s in compatible.settings}["api_base"] is None


def test_a_row_is_refused_when_it_contradicts_itself() -> None:
    with pytest.raises(ValueError, match="jsonl_purposes"):
        presets.Preset(name="x", title="X", description="", api_base="", key_env=[], purposes=["batch"],
                       jsonl_purposes=["fine-tune"])  # fmt: skip
    with pytest.raises(ValueError, match="record_rules"):
        presets.Preset(name="x", title="X", description="", api_base="", key_env=[], purposes=[], record_rules="?")


def test_cli_lists_every_preset() -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "llmfiles", "providers", "--json"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    names = {row["name"] for row in json.loads(proc.stdout)}
    assert {"openai", "openai_compatible", "groq", "xai", "perplexity", "novita"} <= names


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_the_dry_run_aims_at_the_documented_endpoint(name: str, tmp_path: Path) -> None:
    base, key_env = DOCUMENTED[name]
    purpose = presets.by_name()[name].purposes[0]
    src = groq_batch(tmp_path / "in.jsonl") if purpose == "batch" else tmp_path / "doc.txt"
    if purpose != "batch":
        src.write_text("a document\n")
    if name == "novita":  # Novita's lines carry no method/url (its upload page's example)
        _lines(src, [{"custom_id": f"r{i}", "body": {"model": "m", "messages": []}} for i in range(3)])
    with Client(name, environ={key_env: KEY}) as client:
        plan = client.describe_upload(src, purpose=purpose)
    assert plan["ok"], plan["problems"]
    assert plan["destination"] == f"POST {base}/files"
    assert plan["credentials"] == f"env {key_env}"


def test_openai_compatible_needs_an_api_base(tmp_path: Path, make_jsonl: Callable[..., Path]) -> None:
    with Client("openai_compatible", api_key=KEY, environ={}) as client:
        plan = client.describe_upload(make_jsonl(), purpose="fine-tune")
        assert not plan["ok"] and "needs api_base" in plan["problems"][0]
        with pytest.raises(InvalidSetting, match="OPENAI_COMPATIBLE_API_BASE"):
            client.upload(make_jsonl(), purpose="fine-tune")
    environ = {"OPENAI_COMPATIBLE_API_BASE": "ftp://x/v1"}
    with Client("openai_compatible", api_key=KEY, environ=environ) as client, pytest.raises(InvalidSetting):
        client.upload(make_jsonl(), purpose="fine-tune")


# --- real uploads through an api_base override -----------------------------------------------------------------


@pytest.fixture
def groq_server() -> Iterator[OpenAILikeServer]:
    """Our OpenAI-format server at Groq's path (``/openai/v1``), with the Groq key."""
    with OpenAILikeServer(api_key=KEY, base_path="/openai/v1") as server:
        yield server
        assert not server.errors


def test_groq_uploads_for_real_through_an_api_base_override(
    groq_server: OpenAILikeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROQ_API_KEY", KEY)
    src = groq_batch(tmp_path / "batch.jsonl", n=20)
    with Client("groq", api_base=groq_server.url, max_retry_wait=0.01) as client:
        fo = client.upload(src, purpose="batch")
        assert (fo.provider, fo.purpose, fo.bytes, fo.filename) == ("groq", "batch", src.stat().st_size, "batch.jsonl")
        (req,) = groq_server.requests_to("files.create")
        assert req.path == "/openai/v1/files" and req.form == {"purpose": "batch"}
        assert req.headers["authorization"] == f"Bearer {KEY}"
        assert groq_server.files[fo.id].content == src.read_bytes()
        assert client.retrieve(fo.id).id == fo.id
        assert fo.id in {f.id for f in client.list_files()}
        assert client.download(fo.id, tmp_path / "back.jsonl").read_bytes() == src.read_bytes()
        assert client.delete(fo.id) is True
        assert fo.id not in groq_server.files


def test_xai_uploads_for_real_through_an_api_base_override(
    openai_server: OpenAILikeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XAI_API_KEY", openai_server.api_key)
    src = tmp_path / "notes.pdf"
    src.write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 40)
    with Client("xai", api_base=openai_server.url, max_retry_wait=0.01) as client:
        fo = client.upload(src, purpose="assistants")
    assert (fo.provider, fo.purpose, fo.bytes) == ("xai", "assistants", src.stat().st_size)
    assert openai_server.files[fo.id].content == src.read_bytes()
    (req,) = openai_server.requests_to("files.create")
    assert req.form == {"purpose": "assistants"} and req.files["file"][0] == "notes.pdf"


def test_an_in_house_gateway_is_openai_compatible_with_an_api_base(
    openai_server: OpenAILikeServer, make_jsonl: Callable[..., Path]
) -> None:
    environ = {"OPENAI_COMPATIBLE_API_BASE": openai_server.url, "OPENAI_COMPATIBLE_API_KEY": openai_server.api_key}
    with Client("openai_compatible", environ=environ, max_retry_wait=0.01) as client:
        fo = client.upload(make_jsonl(), purpose="fine-tune")
    assert fo.provider == "openai_compatible" and fo.id in openai_server.files


def test_an_in_house_gateway_is_a_plugin_of_one_row(
    openai_server: OpenAILikeServer, make_batch_jsonl: Callable[..., Path]
) -> None:
    row = presets.Preset(
        name="acme",
        title="ACME's gateway",
        description="the company gateway",
        api_base=openai_server.url,
        key_env=["ACME_API_KEY"],
        purposes=["batch"],
        jsonl_purposes=["batch"],
        batch_endpoints=["/v1/chat/completions"],
    )

    class OneRow:
        @llmfiles.hookimpl
        def llmfiles_register_providers(self, register: Callable[[Any], None]) -> None:
            register(presets.PresetProvider(row))

    pm = PluginManager(load_entry_points=False)
    pm.register(OneRow(), "acme")
    with Client("acme", plugin_manager=pm, environ={"ACME_API_KEY": openai_server.api_key}) as client:
        fo = client.upload(make_batch_jsonl(), purpose="batch")
    assert fo.provider == "acme" and openai_server.files[fo.id].purpose == "batch"


# --- limits before any byte --------------------------------------------------------------------------------------


def _one_row_client(server: OpenAILikeServer, **row: Any) -> Client:
    fields: dict[str, Any] = {
        "name": "tiny",
        "title": "Tiny",
        "description": "a platform with small limits",
        "api_base": server.url,
        "key_env": ["TINY_API_KEY"],
        "purposes": ["batch"],
        "jsonl_purposes": ["batch"],
        **row,
    }
    preset = presets.Preset(**fields)

    class OneRow:
        @llmfiles.hookimpl
        def llmfiles_register_providers(self, register: Callable[[Any], None]) -> None:
            register(presets.PresetProvider(preset))

    pm = PluginManager(load_entry_points=False)
    pm.register(OneRow(), "tiny")
    return Client("tiny", plugin_manager=pm, environ={"TINY_API_KEY": server.api_key}, max_retries=0)


def test_a_file_over_the_rows_size_limit_sends_nothing(openai_server: OpenAILikeServer, tmp_path: Path) -> None:
    src = groq_batch(tmp_path / "big.jsonl", n=10)
    client = _one_row_client(openai_server, max_file_size=src.stat().st_size - 1)
    with client, pytest.raises(FileTooLarge):
        client.upload(src, purpose="batch")
    assert openai_server.requests == []


def test_a_file_over_the_rows_line_limit_sends_nothing(openai_server: OpenAILikeServer, tmp_path: Path) -> None:
    src = _lines(tmp_path / "b.jsonl", [{"custom_id": f"r{i}", "body": {"model": "m"}} for i in range(4)])
    client = _one_row_client(openai_server, batch_max_lines=3)
    with client, pytest.raises(ValidationError, match="at most 3"):
        client.upload(src, purpose="batch", check_first=True)
    assert openai_server.requests_to("files.create") == []
    with _one_row_client(openai_server, batch_max_lines=4) as client:  # the same file within the limit goes
        assert client.upload(src, purpose="batch").id in openai_server.files


def test_a_purpose_the_row_does_not_list_is_refused(openai_server: OpenAILikeServer, tmp_path: Path) -> None:
    src = groq_batch(tmp_path / "x.jsonl")
    with _one_row_client(openai_server) as client, pytest.raises(InvalidPurpose):
        client.upload(src, purpose="fine-tune")
    assert openai_server.requests == []


def test_groq_lines_follow_groqs_batch_format(tmp_path: Path) -> None:
    good = groq_batch(tmp_path / "good.jsonl")
    bad = groq_batch(tmp_path / "bad.jsonl", url="/v1/embeddings")
    with Client("groq", environ={"GROQ_API_KEY": KEY}) as client:
        assert client.describe_upload(good, purpose="batch")["ok"]
        plan = client.describe_upload(bad, purpose="batch")
    assert not plan["ok"] and "not a Groq batch endpoint" in plan["problems"][0]


def test_novita_lines_are_custom_id_and_body_with_one_model(tmp_path: Path) -> None:
    def line(i: int, model: str = "deepseek/deepseek-v3-0324", **kw: Any) -> dict[str, Any]:
        return {"custom_id": f"request-{i}", "body": {"model": model, "messages": []}, **kw}

    good = _lines(tmp_path / "good.jsonl", [line(1), line(2)])
    mixed = _lines(tmp_path / "mixed.jsonl", [line(1), line(2, model="other")])
    dup = _lines(tmp_path / "dup.jsonl", [line(1), line(1)])
    with Client("novita", environ={"NOVITA_API_KEY": KEY}) as client:
        assert client.describe_upload(good, purpose="batch")["ok"]
        assert "mixed_models" in client.describe_upload(mixed, purpose="batch")["problems"][0]
        assert "duplicate_custom_id" in client.describe_upload(dup, purpose="batch")["problems"][0]


# --- the conformance kit, through a preset --------------------------------------------------------------------


class TestOpenAICompatibleConformance(ProviderConformance):
    provider = "openai_compatible"

    @pytest.fixture
    def provider_settings(self, openai_settings: dict[str, Any]) -> dict[str, Any]:
        return openai_settings
