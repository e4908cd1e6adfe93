"""The config file: per-provider defaults and named profiles in the settings chain (argument > Client > environment
> config profile > secret hooks > default), named as the source of what it gives; secrets only from an owner-only
file; every mistake in it a clear error naming the file."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from llmfiles import Client, hookimpl
from llmfiles.errors import ConfigurationError
from llmfiles.models import Credentials, Operation, ProviderInfo, Settings, SettingSpec
from llmfiles.plugins import PluginManager
from llmfiles.provider import BaseProvider, Exchange, Http
from llmfiles.state import account_fingerprint

KEY = "sk-config-file-secret-5555"


class BucketProvider(BaseProvider):
    """A provider with the settings people otherwise export every time, and a key."""

    info = ProviderInfo(
        name="bucketed",
        package="llmfiles-bucketed",
        purposes=("fine-tune",),
        aliases=("bkt",),
        settings=(
            SettingSpec(name="api_key", kind="secret", env=("BUCKETED_API_KEY",)),
            SettingSpec(name="bucket", env=("BUCKETED_BUCKET",)),
            SettingSpec(name="region", env=("BUCKETED_REGION",), default="us-east-1"),
            SettingSpec(name="project", env=("BUCKETED_PROJECT",)),
        ),
        credential_settings=("api_key",),
    )

    def credentials(self, settings: Settings, environ: Mapping[str, str], http: Http) -> Credentials:
        return super().credentials(settings, environ, http)

    def exchange(self, op: Operation, credentials: Credentials, settings: Settings) -> Exchange[Any]:
        raise AssertionError("these tests send nothing")


class Plugin:
    @hookimpl
    def llmfiles_register_providers(self, register: Any) -> None:
        register(BucketProvider())

    @hookimpl
    def llmfiles_get_secret(self, name: str, provider: str, http: Any) -> str | None:
        return "sk-from-the-vault" if name == "BUCKETED_API_KEY" else None


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write(
        tmp_path / "config.toml",
        """
        [default]
        provider = "bucketed"
        max_retries = 2

        [default.bucketed]
        bucket = "from-the-default-profile"
        project = "p-default"

        [work]
        provider = "bucketed"

        [work.bkt]
        bucket = "from-the-work-profile"
        region = "eu-west-1"
        """.replace("\n        ", "\n"),
    )


def client(config: Path, environ: Mapping[str, str] | None = None, **kw: Any) -> Client:
    pm = PluginManager(load_entry_points=False, environ={})
    pm.register(Plugin(), name="bucketed")
    import llmfiles.local

    pm.register(llmfiles.local, name="local")
    return Client(plugin_manager=pm, environ={"LLMFILES_CONFIG": str(config), **(environ or {})}, **kw)


def settings(c: Client, **explicit: Any) -> Settings:
    return c._resolver.call(None, explicit, credentials=False).settings


def test_the_default_profile_gives_the_provider_and_its_settings(config: Path) -> None:
    s = settings(client(config))
    assert s.provider == "bucketed"  # the profile's provider: none was named
    assert (s["bucket"], s["project"], s["region"], s["max_retries"]) == (
        "from-the-default-profile",
        "p-default",
        "us-east-1",
        2,
    )
    assert s.source("bucket") == f"config file {config} [default.bucketed]"
    assert s.source("max_retries") == f"config file {config} [default]"
    assert s.source("region") == "default"


def test_a_named_profile_by_argument_or_environment_does_not_inherit_default(config: Path) -> None:
    for c in (client(config, profile="work"), client(config, {"LLMFILES_PROFILE": "work"})):
        s = settings(c)
        assert (s["bucket"], s["region"], s["project"]) == ("from-the-work-profile", "eu-west-1", None)
        assert s.source("bucket") == f"config file {config} [work.bkt]"  # an alias names the table
        assert s["max_retries"] == 5  # [default]'s is not inherited (as AWS profiles)


def test_the_chain_order_argument_client_environment_config_secret_hooks(config: Path) -> None:
    env = {"BUCKETED_BUCKET": "from-env"}
    assert settings(client(config, env), bucket="from-arg")["bucket"] == "from-arg"
    assert settings(client(config, env, bucket="from-client"))["bucket"] == "from-client"
    assert settings(client(config, env))["bucket"] == "from-env"
    assert settings(client(config))["bucket"] == "from-the-default-profile"
    # a secret the file does not hold comes from the secret hooks, after the file
    c = client(config)
    assert c._resolver.call(None, {}).credentials.source == "secret BUCKETED_API_KEY"
    write(config, config.read_text() + "\n[default.bucketed.extra]\n", 0o600)  # a table inside: not a setting
    with pytest.raises(ConfigurationError, match=r"\[default.bucketed\] extra must be a string"):
        settings(client(config))


def test_an_explicit_provider_and_the_environment_win_over_the_profile(config: Path) -> None:
    assert settings(client(config, {"LLMFILES_PROVIDER": "local"})).provider == "local"
    assert client(config)._resolver.call("local", {}, credentials=False).settings["max_retries"] == 2  # core: all


def test_the_account_fingerprint_is_the_same_from_the_file_or_the_environment(config: Path) -> None:
    info = BucketProvider.info
    from_file = settings(client(config))
    from_env = settings(
        client(config, {"BUCKETED_BUCKET": "from-the-default-profile", "BUCKETED_PROJECT": "p-default"})
    )
    assert from_file.source("bucket") != from_env.source("bucket")
    assert account_fingerprint(info, from_file) == account_fingerprint(info, from_env)
    assert account_fingerprint(info, settings(client(config, profile="work"))) != account_fingerprint(info, from_file)


def test_a_secret_is_read_only_from_an_owner_only_file(config: Path) -> None:
    write(config, config.read_text() + f'\n[secret]\nprovider = "bucketed"\n[secret.bucketed]\napi_key = "{KEY}"\n')
    call = client(config, profile="secret")._resolver.call(None, {})
    assert call.credentials.source == f"config file {config} [secret.bucketed]"
    if sys.platform == "win32":
        return
    config.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600") as info:
        client(config, profile="secret")._resolver.call(None, {})
    assert KEY not in str(info.value) and "api_key" in str(info.value)
    settings(client(config))  # the other profiles, which hold no secret, still work from a readable file


@pytest.mark.parametrize(
    ("text", "kw", "match"),
    [
        (
            "[default]\nprovider = 'bkt'\n[default.bucketed]\nbukcet = 'x'\n",
            {},
            r"has no setting 'bukcet' \(did you mean 'bucket'\?\)",
        ),
        ("[default]\nprovider = 'bucketed'\nbucket = 'x'\n", {}, r"goes under \[default.bucketed\]"),
        ("[default]\nmax_retris = 1\n", {}, r"did you mean 'max_retries'"),
        ("[default\n", {}, "is not valid TOML"),
        ("[default]\nprovider = 3\n", {}, "provider must be a provider's name"),
        ("default = 1\n", {}, r"\[default\] must be a table"),
        ("[default]\nmax_retries = 'many'\n", {}, r"max_retries \(from config file .*\): 'many' is not a valid int"),
        ("[wrok]\n", {"profile": "work"}, r"no profile 'work' .* \(did you mean 'wrok'\?\)"),
    ],
)
def test_mistakes_in_the_file_are_clear_errors_naming_it(
    tmp_path: Path, text: str, kw: dict[str, Any], match: str
) -> None:
    path = write(tmp_path / "config.toml", text)
    with pytest.raises(ConfigurationError, match=match) as info:
        settings(client(path, **kw))
    assert str(path) in str(info.value) or "profile" in kw


def test_a_missing_file_named_by_the_environment_or_a_missing_profile_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigurationError, match=r"LLMFILES_CONFIG names .*nope.toml, which does not exist"):
        settings(client(missing))
    with pytest.raises(ConfigurationError, match="no profile 'work' \\(from profile=\\): there is no config file"):
        Client(environ={"XDG_CONFIG_HOME": str(tmp_path)}, profile="work")  # when the client is made


def test_no_file_is_no_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "empty"))
    c = Client("local", environ={})
    assert c._resolver.profile() is None and settings(c)["max_retries"] == 5


def test_the_file_is_read_again_when_it_changes(config: Path) -> None:
    c = client(config)
    assert settings(c)["bucket"] == "from-the-default-profile"
    write(config, config.read_text().replace("from-the-default-profile", "edited-since"))
    os.utime(config, ns=(1, 1))  # another mtime, whatever the clock's resolution
    assert settings(c)["bucket"] == "edited-since"


def test_the_command_line_takes_profile_anywhere(tmp_path: Path) -> None:
    """``--profile`` picks the profile (before or after the command); its provider and settings apply."""
    home = tmp_path / "work-home"
    path = write(tmp_path / "config.toml", f'[work]\nprovider = "local"\n[work.local]\nhome = "{home}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMFILES_")}
    env.update(LLMFILES_CONFIG=str(path), LLMFILES_DISABLE_PLUGINS="example")
    train = tmp_path / "t.jsonl"
    train.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n')

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "llmfiles", *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    assert cli("upload", str(train), "--profile", "work").returncode == 0
    assert list((home / "local" / "files").glob("*.data"))  # the profile's home
    assert "t.jsonl" in cli("--profile", "work", "list").stdout
    proc = cli("list", "--profile", "nope")
    assert proc.returncode == 2 and proc.stderr.startswith("llmfiles: error: no profile 'nope' (from profile=)")
