"""``validate(..., convert=NAME)`` and ``upload(..., convert=NAME)`` with a provider that declares the conversion:
``validate`` checks each record converted, in one pass, so every problem is at its line of the input (a record that
cannot be converted does not hide the ones after it) with the conversion's warnings; an upload logs those warnings;
a purpose the provider does not convert is refused by ``validate`` as by ``upload``."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

import llmfiles
import llmfiles.local
from llmfiles import hookimpl
from llmfiles.errors import FileChanged, InvalidSetting
from llmfiles.models import Problem
from llmfiles.plugins import PluginManager
from llmfiles.validate.convert import Converter, settings_free


def upper(record: dict[str, Any]) -> tuple[dict[str, Any] | None, list[Problem]]:
    if "text" not in record:
        return None, [Problem(line=None, code="no_text", message="nothing to convert", path="text")]
    text = str(record["text"])
    warn = [Problem(line=None, code="shouted", message="already upper case", severity="warning")]
    return {"TEXT": text.upper()}, warn if text.isupper() else []


class UpperOnly:
    """The provider's rules (and the conversion's target rules): upper-case records with some text."""

    def check(self, line_no: int, record: dict[str, Any]) -> list[Problem]:
        if "TEXT" not in record:
            return [Problem(line=line_no, code="not_upper", message="m")]
        return [] if record["TEXT"] else [Problem(line=None, code="empty", message="no text")]

    def finish(self) -> list[Problem]:
        return []


class Shouting(llmfiles.local.LocalProvider):
    """The local store, declaring the ``upper`` conversion and rules for fine-tune files."""

    info = attrs.evolve(llmfiles.local.INFO, name="shouting", conversions=("upper",))

    def record_checker(self, purpose: str, settings: Any) -> Any:
        return UpperOnly() if purpose == "fine-tune" else None


class Plugin:
    @hookimpl
    def llmfiles_register_providers(self, register: Callable[[Any], None]) -> None:
        register(Shouting())

    @hookimpl
    def llmfiles_register_converters(self, register: Callable[[Converter], None]) -> None:
        register(Converter(name="upper", prepare=settings_free(upper), checker=UpperOnly, package="pkg-x"))


@pytest.fixture
def client(tmp_path: Path) -> llmfiles.Client:
    pm = PluginManager(load_entry_points=False)
    pm.register(Plugin(), "shouting")
    return llmfiles.Client("shouting", plugin_manager=pm, environ={"LLMFILES_HOME": str(tmp_path / "home")})


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in ("a", "B", "c")))
    return path


def test_validate_reports_the_conversions_warnings_at_their_lines(client: llmfiles.Client, src: Path) -> None:
    report = client.validate(src, purpose="fine-tune", convert="upper")
    assert report.ok and report.records == 3
    assert [(p.line, p.code, p.severity) for p in report.problems] == [(2, "shouted", "warning")]
    assert report.warnings == 1 and report.path == str(src)
    assert any("converted to 'upper'" in n for n in report.notes)
    assert not client.validate(src, purpose="fine-tune").ok  # unconverted, the rules refuse it


def test_validate_reports_every_problem_of_the_converted_records(client: llmfiles.Client, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ({"text": "a"}, {"text": "B"}, {"nope": 1}, {"text": ""})))
    report = client.validate(path, purpose="fine-tune", convert="upper")
    # the provider's rules and the conversion's target rules are the same here: each problem is listed once
    assert [(p.line, p.code, p.severity) for p in report.problems] == [
        (2, "shouted", "warning"),
        (3, "no_text", "error"),
        (4, "empty", "error"),
    ]
    assert report.errors == 2


def test_validate_refuses_a_conversion_the_purpose_does_not_take_as_upload_does(
    client: llmfiles.Client, src: Path
) -> None:
    with pytest.raises(InvalidSetting, match="converts fine-tune files") as by_validate:
        client.validate(src, purpose="batch", convert="upper")
    with pytest.raises(InvalidSetting) as by_upload:
        client.upload(src, purpose="batch", convert="upper")
    assert str(by_validate.value) == str(by_upload.value)


def test_an_upload_logs_the_conversions_warnings(
    client: llmfiles.Client, src: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="llmfiles"):
        fo = client.upload(src, purpose="fine-tune", convert="upper")
    assert client.download(fo.id, tmp_path / "back.jsonl").read_bytes() == b'{"TEXT":"A"}\n{"TEXT":"B"}\n{"TEXT":"C"}\n'
    [record] = [r for r in caplog.records if "converted to 'upper'" in r.getMessage()]
    assert "1 warning(s)" in record.getMessage() and "line 2" in record.getMessage()


def test_a_file_edited_while_it_is_converted_is_not_uploaded(
    client: llmfiles.Client, src: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llmfiles.validate.convert as convert_module

    real = convert_module.convert_file

    def edit_then_convert(source: Any, *args: Any, **kw: Any) -> Any:
        with open(src, "r+b") as fh:  # same size, other bytes: only the file's identity tells
            fh.write(b'{"text": "z"}')
        return real(source, *args, **kw)

    monkeypatch.setattr(convert_module, "convert_file", edit_then_convert)
    with pytest.raises(FileChanged) as info:
        client.upload(src, purpose="fine-tune", convert="upper")
    assert str(src) in str(info.value)
    assert list(client.list_files()) == []
    from llmfiles.paths import default_home

    converted = default_home() / "converted"
    assert not converted.exists() or list(converted.iterdir()) == []  # the converted file is not kept either
