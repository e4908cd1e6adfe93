"""Errors people can act on: a short first line with the one thing to do, in the words of whoever reads it (Python
or the command line), the places looked at on lines of their own, "did you mean" for near misses, and every error
the docs name importable from ``llmfiles``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import llmfiles
import llmfiles.local
from llmfiles import Client, errors
from llmfiles.errors import InvalidPurpose, MissingCredentials, ProviderNotInstalled, did_you_mean, speaking_to
from llmfiles.plugins import PluginManager, install_commands

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli_words() -> Iterator[None]:
    before = speaking_to("cli")
    try:
        yield
    finally:
        speaking_to(before)


def local_only() -> PluginManager:
    pm = PluginManager(load_entry_points=False, environ={})
    pm.register(llmfiles.local, name="local")
    return pm


@pytest.mark.parametrize(
    ("word", "choices", "expected"),
    [
        ("fine_tune", ["fine-tune", "batch"], "fine-tune"),
        ("Fine-Tune", ["fine-tune", "batch"], "fine-tune"),
        ("opena", ["openai", "azure", "local"], "openai"),
        ("uplod", ["upload", "uploads", "list"], "upload"),
        ("vertex", ["vertex_ai", "local"], "vertex_ai"),
        ("gcs", ["vertex_ai", "bedrock"], None),
        ("batch", ["batch"], None),  # the word itself is no suggestion
    ],
)
def test_did_you_mean(word: str, choices: list[str], expected: str | None) -> None:
    assert did_you_mean(word, choices) == (f" (did you mean {expected!r}?)" if expected else "")


def test_missing_credentials_first_line_is_short_and_the_places_follow() -> None:
    exc = MissingCredentials("acme", "API key", ["argument api_key=", "env ACME_API_KEY"], hint="set ACME_API_KEY")
    first, *rest = str(exc).splitlines()
    assert first == "no API key for provider 'acme': set ACME_API_KEY" and exc.hint == "set ACME_API_KEY"
    assert rest == ["looked at:", "  argument api_key=", "  env ACME_API_KEY"]


def test_a_provider_that_is_not_installed_says_how_to_install_it_both_ways() -> None:
    client = Client(plugin_manager=local_only(), environ={})
    with pytest.raises(ProviderNotInstalled) as info:
        client.retrieve("file-1", provider="azure")
    first, second = str(info.value).splitlines()
    assert first == (
        "provider 'azure' is not installed: pip install llmfiles-azure "
        "(from a checkout of llmfiles: pip install ./core ./plugins/openai ./plugins/azure)"
    )
    assert second == "installed providers: local" and info.value.hint == "pip install llmfiles-azure"
    assert len(first) < 200
    with pytest.raises(ProviderNotInstalled, match=r"provider 'locl' is not installed \(did you mean 'local'\?\)"):
        client.retrieve("file-1", provider="locl")
    with pytest.raises(ProviderNotInstalled, match=r"provider 'opena' .*did you mean 'openai'"):  # a known one, too
        client.retrieve("file-1", provider="opena")


def test_install_commands_follow_the_plugins_dependencies() -> None:
    """From a checkout, a plugin that needs another of this repository's plugins installs it in the same command,
    before it: ``plugins.CHECKOUT_NEEDS`` must say what each plugin's pyproject.toml needs."""
    import tomllib

    from llmfiles.plugins import CHECKOUT_NEEDS, KNOWN_PACKAGES

    folders = {folder: dist for dist, folder in KNOWN_PACKAGES.values()}
    by_dist = {dist: folder for folder, dist in folders.items()}
    for folder in sorted(folders):
        if folder == "core":
            continue
        meta = tomllib.loads((REPO / folder / "pyproject.toml").read_text())["project"]
        needs = [re.split(r"[<>=!~ ;\[]", d)[0] for d in meta.get("dependencies", [])]
        ours = tuple(by_dist[n] for n in needs if n in by_dist and n != "llmfiles")
        assert CHECKOUT_NEEDS.get(folder, ()) == ours, folder
    assert install_commands("groq") == ("pip install llmfiles-openai", "pip install ./core ./plugins/openai")
    assert install_commands("local") == ("pip install llmfiles", "pip install ./core")
    assert install_commands("acme") is None


def test_a_purpose_near_an_accepted_one_is_suggested() -> None:
    exc = InvalidPurpose("local", "fine_tune", ("fine-tune", "batch"))
    assert str(exc).startswith("purpose 'fine_tune' is not accepted by provider 'local' (did you mean 'fine-tune'?)")
    assert exc.hint == "use one of: fine-tune, batch"


def test_python_callers_get_python_advice_and_the_command_line_its_own(tmp_path: Path) -> None:
    target = tmp_path / "exists.jsonl"
    target.write_text("{}\n")
    client = Client("local", environ={}, home=str(tmp_path / "home"))
    f = client.upload(_train(tmp_path), purpose="fine-tune")
    with pytest.raises(llmfiles.InputError, match="pass overwrite=True to replace it"):
        client.download(f.id, target)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    with pytest.raises(llmfiles.ValidationError, match=r"pass validate=False to upload it anyway"):
        client.upload(bad, purpose="fine-tune")
    before = speaking_to("cli")
    try:
        with pytest.raises(llmfiles.InputError, match="pass --force to replace it"):
            client.download(f.id, target)
        with pytest.raises(llmfiles.ValidationError, match=r"pass --no-validate to upload it anyway") as info:
            client.upload(bad, purpose="fine-tune")
        assert info.value.hint == "pass --no-validate to upload it anyway"
        assert errors.setting_advice("api_key") == "pass -s api_key=..."
    finally:
        speaking_to(before)
    assert errors.setting_advice("api_key") == "pass api_key=..."


def test_missing_credentials_of_a_key_provider_in_both_words(cli_words: None) -> None:
    from llmfiles.models import ProviderInfo, SettingSpec
    from llmfiles.provider import missing_credentials

    info = ProviderInfo(
        name="acme",
        package="llmfiles-acme",
        purposes=("batch",),
        settings=(SettingSpec(name="api_key", kind="secret", env=("ACME_API_KEY",)),),
        credential_settings=("api_key",),
    )
    cli = str(missing_credentials(info, ("api_key",))).splitlines()
    assert cli[0] == "no credentials for provider 'acme': set ACME_API_KEY, or pass -s api_key=..."
    assert "  env ACME_API_KEY" in cli and "  config file [PROFILE.acme] api_key" in cli
    speaking_to("python")
    assert str(missing_credentials(info, ("api_key",))).splitlines()[0].endswith("or pass api_key=...")


def _train(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n')
    return path


# --- every error the docs name is importable from llmfiles ------------------------------------------------------


def _docs_text() -> str:
    files = [REPO / "README.md", *REPO.glob("docs/**/*.md"), *REPO.glob("plugins/*/README.md")]
    return "\n".join(p.read_text(encoding="utf-8") for p in files if "_build" not in p.parts)


def _error_classes() -> dict[str, Any]:
    return {
        name: obj
        for name, obj in vars(errors).items()
        if isinstance(obj, type) and issubclass(obj, errors.LLMFilesError) and not name.startswith("_")
    }


def test_every_error_the_docs_name_is_importable_from_llmfiles() -> None:
    text = _docs_text()
    named = {n for n in _error_classes() if re.search(rf"\b{n}\b", text)}
    assert {"AlreadyUploaded", "MissingCredentials", "ValidationError", "FileNotFound"} <= named
    missing = sorted(n for n in named if n not in llmfiles.__all__)
    assert not missing, f"the docs name errors that `from llmfiles import ...` cannot import: {missing}"
    for ref in sorted(set(re.findall(r"\bllmfiles\.([A-Z]\w+)", text))):
        assert hasattr(llmfiles, ref), f"the docs name llmfiles.{ref}, which does not exist"


def test_every_error_class_is_exported() -> None:
    assert sorted(n for n in _error_classes() if n not in llmfiles.__all__) == []
    assert sorted(errors.__all__) == sorted(_error_classes())


@pytest.mark.parametrize("audience", ["python", "cli"])
def test_a_missing_setting_says_how_to_give_it_first_and_every_place_looked_below(audience: str) -> None:
    before = speaking_to(audience)
    try:
        error = errors.MissingSetting(
            "bedrock", "bucket", what="a bucket", example="BUCKET", env=("LLMFILES_S3_BUCKET", "AWS_S3_BUCKET_NAME")
        )
    finally:
        speaking_to(before)
    first, *rest = str(error).splitlines()
    assert len(first) < 200 and first.startswith("provider 'bedrock' needs a bucket: set LLMFILES_S3_BUCKET=BUCKET")
    assert ("-s bucket=BUCKET" if audience == "cli" else "pass bucket=BUCKET") in first
    assert rest[0] == "looked at:" and all(line.startswith("  ") for line in rest[1:])
    assert [line for line in rest if "AWS_S3_BUCKET_NAME" in line] and "[default.bedrock]" in rest[-1]
    assert isinstance(error, llmfiles.InvalidSetting) and error.exit_code == 2 and error.hint in first
