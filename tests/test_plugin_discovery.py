"""How plugins are found, disabled, checked and rejected; and what in-house plugins can do without forking."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import attrs
import pytest

import llmfiles
import llmfiles_example
from llmfiles import Client, hookimpl
from llmfiles.errors import PluginError, ProviderNotInstalled
from llmfiles.models import (
    NO_CREDENTIALS,
    Credentials,
    HttpRequest,
    Operation,
    ProviderInfo,
    Secret,
    Settings,
    UploadFacts,
    UploadParts,
)
from llmfiles.plugins import PluginManager
from llmfiles.provider import BaseProvider, Exchange, Http, UploadProtocol
from servers.openai_like import OpenAILikeServer


def _run(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def _providers_via_cli(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    proc = _run("-m", "llmfiles", "providers", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    return {row["name"]: row for row in json.loads(proc.stdout)}


# --- discovery through the real entry point ------------------------------------------------------------------


def test_the_example_plugin_is_installed_with_an_entry_point() -> None:
    (ep,) = [ep for ep in metadata.entry_points(group="llmfiles") if ep.name == "example"]
    assert ep.value == "llmfiles_example"
    assert ep.dist is not None and ep.dist.name == "llmfiles-example-plugin"


def test_the_installed_example_plugin_is_the_one_the_tutorial_shows() -> None:
    """docs/tutorial-plugin.md includes the source of docs/examples/llmfiles-example-plugin: test that one."""
    dist = metadata.distribution("llmfiles-example-plugin")
    direct_url = dist.read_text("direct_url.json")
    if direct_url is None:
        pytest.skip("installed without a record of where from")
    url = json.loads(direct_url)["url"]
    assert url.startswith("file://") and url.rstrip("/").endswith("/docs/examples/llmfiles-example-plugin"), url


def test_cli_lists_the_example_and_the_local_provider() -> None:
    providers = _providers_via_cli()
    assert {"example", "local"} <= set(providers)
    example = providers["example"]
    assert example["package"] == "llmfiles-example-plugin"
    assert example["purposes"] == ["assistants", "batch", "fine-tune"]
    assert example["large_files"] is True
    assert example["settings"] == ["api_key", "api_base"]
    assert providers["local"]["package"] == "llmfiles"


def test_disable_plugins_hides_the_example_provider() -> None:
    providers = _providers_via_cli({"LLMFILES_DISABLE_PLUGINS": "example"})
    assert "example" not in providers and "local" in providers

    pm = PluginManager(environ={"LLMFILES_DISABLE_PLUGINS": " example , other "})
    assert "example" not in pm.providers() and "local" in pm.providers()
    with pytest.raises(ProviderNotInstalled, match="provider 'example' is not installed"):
        pm.get("example")


def test_the_plugin_manager_loads_the_entry_point() -> None:
    pm = PluginManager(environ={})
    registered = pm.get("example")
    info = registered.provider.info
    assert registered.plugin == "example" and registered.server is None
    assert info.name == "example" and info.package == "llmfiles-example-plugin"
    assert info.credential_settings == ("api_key",)
    assert info.supports_parts
    # the Uploads API's complete carries the MD5 of the whole file (v2: the protocol declares it)
    settings = Settings(provider="example", values={"api_base": "https://gateway.invalid/v1"})
    facts = UploadFacts(purpose="fine-tune", filename="f.jsonl", size=10)
    protocol = registered.provider.exchange(UploadParts(file=facts), NO_CREDENTIALS, settings)
    assert isinstance(protocol, UploadProtocol) and protocol.digests == ("md5",)
    assert info.default_multipart_threshold == 512 * 1024 * 1024
    assert info.default_part_size == 64 * 1024 * 1024
    specs = {s.name: s for s in info.settings}
    assert specs["api_key"].kind == "secret" and specs["api_key"].env == ("EXAMPLE_API_KEY",)
    assert specs["api_base"].env == ("EXAMPLE_API_BASE",)
    assert specs["api_base"].default == "https://llm-gateway.example.internal/v1"


def test_import_llmfiles_loads_no_plugin() -> None:
    code = textwrap.dedent(
        """
        import json, sys
        import llmfiles
        heavy = ("pluggy", "urllib3", "cattrs", "orjson", "llmfiles.local")
        before = sorted(m for m in sys.modules if m.startswith("llmfiles_") or m in heavy)
        from llmfiles.plugins import get_plugin_manager
        names = sorted(get_plugin_manager().providers())
        after = "llmfiles_example" in sys.modules
        print(json.dumps({"before": before, "names": names, "after": after}))
        """
    )
    proc = _run("-c", code)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["before"] == []
    assert {"example", "local"} <= set(result["names"])
    assert result["after"] is True  # entry points load at first use


# --- rejected plugins ----------------------------------------------------------------------------------------


class _CopycatProvider(BaseProvider):
    def __init__(self, info: ProviderInfo) -> None:
        self.info = info

    def exchange(self, op: Operation, credentials: Credentials, settings: Settings) -> Exchange[Any]:
        raise AssertionError("never called")


class _Copycat:
    """A second plugin that claims a name the example plugin already has."""

    def __init__(self, name: str = "example", aliases: tuple[str, ...] = ()) -> None:
        self.info = ProviderInfo(name=name, aliases=aliases, package="llmfiles-copycat", purposes=("batch",))

    @hookimpl
    def llmfiles_register_providers(self, register: Callable[[Any], None]) -> None:
        register(_CopycatProvider(self.info))


def test_two_plugins_claiming_one_provider_name_are_rejected() -> None:
    pm = PluginManager(load_entry_points=False)
    pm.register(llmfiles_example, "example")
    pm.register(_Copycat(), "copycat")
    with pytest.raises(PluginError) as info:
        pm.providers()
    message = str(info.value)
    assert "'example'" in message and "'copycat'" in message and "LLMFILES_DISABLE_PLUGINS" in message


def test_an_alias_that_clashes_with_a_provider_name_is_rejected() -> None:
    pm = PluginManager(load_entry_points=False)
    pm.register(llmfiles_example, "example")
    pm.register(_Copycat(name="acme", aliases=("example",)), "acme-plugin")
    with pytest.raises(PluginError, match="claimed by two plugins"):
        pm.providers()


def test_one_plugin_per_name_is_fine() -> None:
    pm = PluginManager(load_entry_points=False)
    pm.register(llmfiles_example, "example")
    pm.register(_Copycat(name="acme", aliases=("acme-ai",)), "acme-plugin")
    assert set(pm.providers()) == {"example", "acme"}
    assert pm.get("acme-ai").provider.info.name == "acme"
    assert pm.get("acme-ai").plugin == "acme-plugin"


class _NotAProvider:
    @hookimpl
    def llmfiles_register_providers(self, register: Callable[[Any], None]) -> None:
        register(ProviderInfo(name="old", package="old", purposes=("batch",)))  # v1 registered the info


def test_registering_something_that_is_not_a_provider_is_rejected() -> None:
    pm = PluginManager(load_entry_points=False)
    pm.register(_NotAProvider(), "old-style")
    with pytest.raises(PluginError, match=r"'old-style' registered .* which is not a provider"):
        pm.providers()


class _Misspelled:
    @hookimpl
    def llmfiles_register_provider(self, register: Callable[[Any], None]) -> None:
        return None


def test_a_misspelled_hook_is_rejected_by_check_pending() -> None:
    pm = PluginManager(load_entry_points=False)
    pm.register(llmfiles_example, "example")
    pm.register(_Misspelled(), "typo-plugin")
    with pytest.raises(PluginError) as info:
        pm.providers()
    assert "llmfiles_register_provider" in str(info.value)
    assert "typo-plugin" in str(info.value)


class _RemovedHook:
    @hookimpl
    def llmfiles_build_request(self, provider: str, operation: Any, credentials: Any, settings: Any) -> None:
        return None


def test_a_hook_v2_removed_is_rejected() -> None:
    pm = PluginManager(load_entry_points=False)
    pm.register(_RemovedHook(), "v1-plugin")
    with pytest.raises(PluginError, match="llmfiles_build_request"):
        pm.providers()


def test_a_misspelled_hook_registered_after_loading_is_rejected_too() -> None:
    pm = PluginManager(load_entry_points=False)
    pm.register(llmfiles_example, "example")
    assert "example" in pm.providers()
    with pytest.raises(PluginError, match="llmfiles_register_provider"):
        pm.register(_Misspelled(), "late-typo")
    assert pm.pm.get_plugin("late-typo") is None  # not left half-registered
    assert "example" in pm.providers()


class _WrongArguments:
    @hookimpl
    def llmfiles_request(self, provider: str, request: Any, extra: Any) -> None:
        return None


def test_a_hook_with_unknown_arguments_is_rejected() -> None:
    pm = PluginManager(load_entry_points=False)
    pm.register(_WrongArguments(), "bad-args")
    with pytest.raises(PluginError, match="'bad-args' is not a valid llmfiles plugin"):
        pm.providers()


class _RaisesOnRegister:
    @hookimpl
    def llmfiles_register_providers(self, register: Callable[[Any], None]) -> None:
        raise RuntimeError("no config file")


def test_a_plugin_that_fails_to_register_is_named() -> None:
    pm = PluginManager(load_entry_points=False)
    pm.register(_RaisesOnRegister(), "fragile")
    with pytest.raises(PluginError, match=r"plugin 'fragile' failed in llmfiles_register_providers: .*no config file"):
        pm.providers()


@pytest.fixture
def broken_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An installed distribution with an entry point in group ``llmfiles`` whose module raises when it is imported
    (a ``.dist-info`` folder on ``sys.path``, as pip would leave it)."""
    module = "llmfiles_broken_test_plugin"
    (tmp_path / f"{module}.py").write_text('raise RuntimeError("the plugin is broken on purpose")\n')
    info = tmp_path / "llmfiles_broken_test_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: llmfiles-broken-test-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[llmfiles]\nbroken = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "broken"


def test_a_plugin_that_raises_while_loading_is_named(broken_entry_point: str) -> None:
    with pytest.raises(PluginError) as info:
        PluginManager(environ={}).providers()
    message = str(info.value)
    assert f"plugin {broken_entry_point!r}" in message
    assert "llmfiles_broken_test_plugin" in message and "broken on purpose" in message
    assert "llmfiles-broken-test-plugin" in message  # the distribution to fix or uninstall
    assert f"LLMFILES_DISABLE_PLUGINS={broken_entry_point}" in message

    # the hint works: skip the broken plugin and the others load
    pm = PluginManager(environ={"LLMFILES_DISABLE_PLUGINS": broken_entry_point})
    assert {"example", "local"} <= set(pm.providers())


# --- in-house plugins change behaviour without forking ------------------------------------------------------


class _ProxyHeader:
    """``@hookimpl(wrapper=True)`` on ``llmfiles_request``: a header on every request."""

    @hookimpl(wrapper=True)
    def llmfiles_request(self, provider: str, request: HttpRequest) -> Any:
        result = yield
        return attrs.evolve(result, headers={**result.headers, "X-Proxy-Route": "inhouse"})


class _Vault:
    """``@hookimpl(tryfirst=True)`` on ``llmfiles_credentials``: keys from a vault, not from settings."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        self._keys = keys

    @hookimpl(tryfirst=True)
    def llmfiles_credentials(
        self, provider: str, settings: Settings, environ: Mapping[str, str], http: Http
    ) -> Credentials | None:
        key = self._keys.get(provider)
        if key is None:
            return None  # the provider finds its own
        return Credentials(kind="api_key", source=f"vault secret/{provider}", secret=Secret(key))


def test_a_wrapper_plugin_adds_a_header_to_every_request(
    openai_server: OpenAILikeServer, example_settings: dict[str, Any], make_jsonl: Callable[..., Path]
) -> None:
    pm = PluginManager(environ={})
    pm.register(_ProxyHeader(), "proxy-header")
    with Client("example", plugin_manager=pm, **example_settings) as client:
        fo = client.upload(make_jsonl(), purpose="fine-tune")
        client.retrieve(fo.id)
        client.delete(fo.id)
    assert len(openai_server.requests) == 3
    assert all(r.headers.get("x-proxy-route") == "inhouse" for r in openai_server.requests)


def test_a_vault_plugin_answers_credentials_first(
    openai_server: OpenAILikeServer, make_jsonl: Callable[..., Path]
) -> None:
    pm = PluginManager(environ={})
    pm.register(_Vault({"example": openai_server.api_key}), "vault")
    with Client("example", plugin_manager=pm, environ={}, api_base=openai_server.url) as client:
        fo = client.upload(make_jsonl(), purpose="fine-tune")  # no api_key anywhere but in the vault
    assert fo.id in openai_server.files

    pm = PluginManager(environ={})
    pm.register(_Vault({"example": "sk-vault-has-a-stale-key"}), "vault")
    with (
        Client("example", plugin_manager=pm, environ={}, api_base=openai_server.url) as client,
        pytest.raises(llmfiles.AuthenticationError) as info,
    ):
        client.retrieve(fo.id)
    assert "vault secret/example" in str(info.value)
    assert "sk-vault-has-a-stale-key" not in str(info.value)
