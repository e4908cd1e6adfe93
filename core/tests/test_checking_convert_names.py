"""``validate`` with ``convert``, names and refusals: the rules an upload with ``convert`` follows (a provider's own
conversions are for fine-tune files), and reports that name the caller's file, never a converted copy."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

import llmfiles
from llmfiles import hookimpl
from llmfiles.cli import main
from llmfiles.errors import InvalidSetting
from llmfiles.local import INFO as LOCAL_INFO
from llmfiles.local import LocalProvider
from llmfiles.models import Problem
from llmfiles.plugins import PluginManager
from llmfiles.validate.convert import Converter, settings_free


def upper(record: dict[str, Any]) -> tuple[dict[str, Any] | None, list[Problem]]:
    text = record.get("text")
    if not isinstance(text, str):
        return None, [Problem(line=None, code="no_text", message="needs text", path="text")]
    return {"TEXT": text.upper()}, []


class NoQ:
    """The target format's rule: no Q in the converted text."""

    def check(self, line_no: int, record: dict[str, Any]) -> list[Problem]:
        return [Problem(line=None, code="has_q", message="no Q")] if "Q" in record["TEXT"] else []

    def finish(self) -> list[Problem]:
        return []


class ConvertingProvider(LocalProvider):
    """The local store, with a conversion of its own (as a cloud provider declares its formats)."""

    info = attrs.evolve(LOCAL_INFO, name="shouty", conversions=("upper",))


class Plugin:
    @hookimpl
    def llmfiles_register_providers(self, register: Callable[[Any], None]) -> None:
        register(ConvertingProvider())

    @hookimpl
    def llmfiles_register_converters(self, register: Callable[[Converter], None]) -> None:
        register(
            Converter(name="upper", prepare=settings_free(upper), checker=NoQ, description="shouting", package="pkg-x")
        )


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> llmfiles.Client:
    pm = PluginManager(load_entry_points=False)
    pm.register(Plugin(), "shouty")
    monkeypatch.setattr("llmfiles.plugins.get_plugin_manager", lambda: pm)
    return llmfiles.Client("shouty", plugin_manager=pm, environ={"LLMFILES_HOME": str(tmp_path / "home")})


def write(path: Path, *texts: str) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


def test_the_providers_conversions_convert_fine_tune_files_only(client: llmfiles.Client, tmp_path: Path) -> None:
    path = write(tmp_path / "in.jsonl", "a", "b")
    assert client.validate(path, purpose="fine-tune", convert=True).ok
    with pytest.raises(InvalidSetting, match="fine-tune"):
        client.validate(path, purpose="batch", convert="upper")
    with pytest.raises(InvalidSetting, match="fine-tune"):  # as the upload refuses it
        client.upload(path, purpose="batch", convert="upper")


@pytest.mark.parametrize(
    ("texts", "found"),
    [(("a", "q"), [(2, "has_q")]), (("a", 7), [(2, "no_text")])],
    ids=["breaks-the-target", "cannot-convert"],
)
def test_a_failed_conversion_is_reported_for_the_callers_file(
    client: llmfiles.Client, tmp_path: Path, texts: tuple[Any, ...], found: list[tuple[int, str]]
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    report = client.validate(path, purpose="fine-tune", convert="upper")
    assert not report.ok and [(p.line, p.code) for p in report.problems] == found
    assert report.path == str(path) and report.as_dict()["file"] == str(path)
    assert any("converted to 'upper'" in n for n in report.notes)  # the report says it checked converted records


def test_cli_validate_json_names_the_file(
    client: llmfiles.Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "in.jsonl", "a", "q")
    assert main(["validate", str(path), "-p", "shouty", "--convert", "upper", "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["file"] == str(path)
