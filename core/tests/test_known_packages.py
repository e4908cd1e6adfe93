"""``KNOWN_PACKAGES`` names, for each provider the project ships, the distribution to install and its folder in the
checkout: both must be true, so that "provider 'gemini' is not installed; install it with: pip install
llmfiles-gemini" sends people to a distribution that exists and registers that provider."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from llmfiles.errors import ProviderNotInstalled
from llmfiles.plugins import KNOWN_PACKAGES, PluginManager

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("provider", sorted(KNOWN_PACKAGES))
def test_each_known_provider_is_the_distribution_in_its_folder(provider: str) -> None:
    distribution, folder = KNOWN_PACKAGES[provider]
    project = tomllib.loads((REPO / folder / "pyproject.toml").read_text())["project"]
    assert project["name"] == distribution
    assert project.get("entry-points", {}).get("llmfiles"), f"{distribution} declares no llmfiles entry point"
    # the provider's name is in the distribution's code or data (a preset row, say), as a quoted name
    sources = [p for p in (REPO / folder / "src").rglob("*") if p.suffix in (".py", ".toml")]
    found = [p for p in sources if re.search(f"[\"']{re.escape(provider)}[\"']", p.read_text(encoding="utf-8"))]
    assert found, f"{provider!r} is named nowhere in {folder}/src"


@pytest.mark.parametrize("provider", ["gemini", "anthropic", "mistral"])
def test_a_missing_new_provider_names_its_distribution(provider: str) -> None:
    pm = PluginManager(load_entry_points=False, environ={})
    try:
        pm.get(provider)
    except ProviderNotInstalled as exc:
        assert f"pip install llmfiles-{provider}" in str(exc)
    else:
        raise AssertionError(f"{provider} was found with no plugin loaded")
