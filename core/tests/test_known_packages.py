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
    entry_points = project.get("entry-points", {}).get("llmfiles", {})
    modules = [m.split(":")[0] for m in entry_points.values()]
    source = "".join((REPO / folder / "src" / (m.replace(".", "/") + ".py")).read_text() for m in modules)
    # the provider's name (or the name it is an alias of) is registered by the distribution's entry point
    assert re.search(f"[\"']{re.escape(provider)}[\"']", source), (provider, modules)


@pytest.mark.parametrize("provider", ["gemini", "anthropic", "mistral"])
def test_a_missing_new_provider_names_its_distribution(provider: str) -> None:
    pm = PluginManager(load_entry_points=False, environ={})
    try:
        pm.get(provider)
    except ProviderNotInstalled as exc:
        assert f"pip install llmfiles-{provider}" in str(exc)
    else:
        raise AssertionError(f"{provider} was found with no plugin loaded")
