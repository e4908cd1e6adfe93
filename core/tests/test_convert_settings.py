"""Conversions made for the target provider's settings (``Converter.prepare``): ``llmfiles convert -s NAME=VALUE``,
``Client.convert(..., NAME=VALUE)``, ``llmfiles.convert``, ``convert=NAME`` while uploading (the upload's settings,
the purposes a conversion takes, a converted file made again when a setting it reads changes), ``convert --list``;
and the OpenAI batch helpers the batch conversions share (:mod:`llmfiles.validate.openai_batch`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

import llmfiles
import llmfiles.local
from llmfiles import hookimpl
from llmfiles.errors import InvalidSetting
from llmfiles.models import Problem, Settings, SettingSpec
from llmfiles.plugins import PluginManager
from llmfiles.validate import openai_batch as ob
from llmfiles.validate.convert import Converter, ConvertFn


def prepare_suffix(settings: Settings) -> ConvertFn:
    """A conversion that appends the ``suffix`` setting to each record's text; no suffix: an InvalidSetting."""
    suffix = settings.get("suffix")
    if not suffix:
        raise InvalidSetting("suffix needs a value: pass -s suffix=...")

    def convert(record: dict[str, Any]) -> tuple[dict[str, Any] | None, list[Problem]]:
        return {"text": f"{record.get('text')}{suffix}"}, []

    return convert


class Suffixing(llmfiles.local.LocalProvider):
    """The local store with a ``suffix`` setting, declaring the ``suffix`` conversion for batch files."""

    info = attrs.evolve(
        llmfiles.local.INFO,
        name="suffixing",
        purposes=("batch", "fine-tune"),
        conversions=("suffix",),
        settings=(*llmfiles.local.INFO.settings, SettingSpec(name="suffix", env=("SUFFIX",), help="appended")),
    )


class Plugin:
    @hookimpl
    def llmfiles_register_providers(self, register: Callable[[Any], None]) -> None:
        register(Suffixing())

    @hookimpl
    def llmfiles_register_converters(self, register: Callable[[Converter], None]) -> None:
        register(
            Converter(
                name="suffix",
                prepare=prepare_suffix,
                description="suffixed",
                reads="{'text'} records",
                package="pkg-s",
                purposes=("batch",),
                provider="suffixing",
                settings=("suffix",),
            )
        )


def client(tmp_path: Path, environ: dict[str, str] | None = None) -> llmfiles.Client:
    pm = PluginManager(load_entry_points=False)
    pm.register(Plugin(), "suffixing")
    env = {"LLMFILES_HOME": str(tmp_path / "home"), **(environ or {})}
    return llmfiles.Client("suffixing", plugin_manager=pm, environ=env)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in ("a", "b")))
    return path


def texts(path: Path) -> list[str]:
    return [json.loads(x)["text"] for x in path.read_text().splitlines()]


def test_convert_gets_the_explicit_settings(tmp_path: Path, src: Path) -> None:
    with client(tmp_path) as c:
        assert c.convert(src, to="suffix", output=tmp_path / "o.jsonl", suffix="!").ok
    assert texts(tmp_path / "o.jsonl") == ["a!", "b!"]


def test_convert_resolves_the_providers_settings_from_the_environment(tmp_path: Path, src: Path) -> None:
    with client(tmp_path, {"SUFFIX": "?"}) as c:
        assert c.convert(src, to="suffix", output=tmp_path / "o.jsonl").ok
    assert texts(tmp_path / "o.jsonl") == ["a?", "b?"]


def test_a_missing_setting_is_raised_and_nothing_is_written(tmp_path: Path, src: Path) -> None:
    with client(tmp_path) as c, pytest.raises(InvalidSetting, match="suffix needs a value"):
        c.convert(src, to="suffix", output=tmp_path / "o.jsonl")
    assert [p.name for p in tmp_path.iterdir() if p.name != "home"] == ["in.jsonl"]


def test_convert_while_uploading_gets_the_uploads_settings(tmp_path: Path, src: Path) -> None:
    with client(tmp_path) as c:
        first = c.upload(src, purpose="batch", convert="suffix", suffix="1")
        second = c.upload(src, purpose="batch", convert=True, suffix="2")  # the same file: converted again
        assert texts(c.download(first.id, tmp_path / "1.jsonl")) == ["a1", "b1"]
        assert texts(c.download(second.id, tmp_path / "2.jsonl")) == ["a2", "b2"]
        with pytest.raises(InvalidSetting, match="suffix needs a value"):
            c.upload(src, purpose="batch", convert="suffix")
        with pytest.raises(InvalidSetting, match="converts batch files, not 'fine-tune' files"):
            c.upload(src, purpose="fine-tune", convert="suffix", suffix="!")
        report = c.validate(src, purpose="batch", convert="suffix", suffix="#")
        assert report.ok and report.records == 2


def test_the_module_level_convert(tmp_path: Path, src: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import llmfiles.api

    c = client(tmp_path)
    monkeypatch.setattr(llmfiles.api, "_default", c)
    assert llmfiles.convert(src, to="suffix", output=tmp_path / "o.jsonl", suffix="~").ok
    assert texts(tmp_path / "o.jsonl") == ["a~", "b~"]


def test_the_command_line_lists_the_conversions_and_takes_settings(
    tmp_path: Path, src: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import llmfiles.api
    from llmfiles import cli

    monkeypatch.setattr(llmfiles.api, "Client", lambda **kw: client(tmp_path))
    assert cli.main(["convert", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "suffix  (pkg-s; convert= on batch uploads)" in listed and "settings: suffix" in listed
    assert cli.main(["--json", "convert", "--list"]) == 0
    assert json.loads(capsys.readouterr().out)["suffix"]["purposes"] == ["batch"]
    out = tmp_path / "o.jsonl"
    assert cli.main(["convert", str(src), "--to", "suffix", "-s", "suffix=+", "-o", str(out)]) == 0
    assert texts(out) == ["a+", "b+"]
    assert cli.main(["convert", str(src), "-o", str(out)]) == 2
    assert "needs --to" in capsys.readouterr().err


# --- the OpenAI batch helpers ----------------------------------------------------------------------------------


def request_line(body: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", "body": body, **extra}


def test_read_request_names_what_is_wrong_with_a_line() -> None:
    ok, problems = ob.read_request(request_line({"messages": [{"role": "user", "content": "hi"}]}), "X")
    assert ok is not None and ok.custom_id == "r1" and problems == []
    bad, problems = ob.read_request({"custom_id": 3, "url": "/v1/embeddings", "body": {"input": "x"}, "x": 1}, "X")
    assert bad is None
    assert [(p.code, p.path) for p in problems] == [
        ("bad_custom_id", "custom_id"),
        ("not_chat_completions", "url"),
        ("bad_body", "body"),
        ("unknown_field", "x"),
    ]


def test_unmapped_fields_are_errors_or_warnings_never_silent() -> None:
    body = {"messages": [], "logprobs": True, "user": "u", "stream": False, "seed": None}
    found = {(p.path, p.severity) for p in ob.unmapped(body, ("messages",), "X", {"logprobs": "remove it"})}
    assert found == {("body.logprobs", "error"), ("body.user", "warning"), ("body.stream", "warning")}


@pytest.mark.parametrize(
    ("messages", "path"),
    [
        ([{"role": "user", "content": "a"}, {"role": "system", "content": "late"}], "body.messages[1].role"),
        ([{"role": "tool", "tool_call_id": "x", "content": "a"}], "body.messages[0].tool_call_id"),
        ([{"role": "assistant", "content": "a"}], "body.messages"),
        ([{"role": "user", "content": [{"type": "file", "file": {}}]}], "body.messages[0].content[0].type"),
        ([{"role": "critic", "content": "a"}], "body.messages[0].role"),
    ],
)
def test_messages_that_cannot_be_read_are_problems(messages: list[Any], path: str) -> None:
    conversation, problems = ob.read_messages(messages)
    assert conversation is None and [p.path for p in problems] == [path]


def test_messages_read_into_turns() -> None:
    conversation, problems = ob.read_messages(
        [
            {"role": "system", "content": "S1"},
            {"role": "developer", "content": [{"type": "text", "text": "S2"}]},
            {"role": "user", "content": "q"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAA="}}]},
            {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c", "content": "42"},
        ]
    )
    assert problems == [] and conversation is not None
    assert conversation.system == "S1\n\nS2"
    assert [(t.role, [b.kind for b in t.blocks]) for t in conversation.turns] == [
        ("user", ["text", "image"]),
        ("assistant", ["tool_call"]),
        ("user", ["tool_result"]),
    ]
    assert conversation.turns[0].blocks[1].mime == "image/jpeg" and conversation.turns[2].blocks[0].name == "f"


def test_the_result_checker_holds_lines_to_openais_output_shape() -> None:
    checker = ob.ResultChecker()
    good = ob.result_line("p", "a", ob.chat_completion(completion_id="x", model="m", created=0, choices=[], usage=None))
    assert list(checker.check(1, good)) == []
    assert list(checker.check(2, ob.error_line("p", "b", "400", "bad"))) == []
    assert [p.code for p in checker.check(3, ob.error_line("p", "a", "400", "bad"))] == ["duplicate_custom_id"]
    both = {**good, "custom_id": "c", "error": {"code": "x", "message": "y"}}
    assert [p.path for p in checker.check(4, both)] == ["response"]
    assert [p.path for p in checker.check(5, {"custom_id": "d", "response": {"body": {}}, "error": None})] == [
        "id",
        "response",
    ]
    assert good["id"] == ob.line_id("p", "a") != ob.line_id("q", "a")
