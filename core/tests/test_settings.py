"""The settings chain: explicit argument > Client > environment > secret hooks, with sources, and its errors."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from llmfiles import Client, hookimpl
from llmfiles.errors import InvalidSetting, MissingCredentials
from llmfiles.models import Credentials, Operation, ProviderInfo, Secret, Settings, SettingSpec
from llmfiles.plugins import PluginManager
from llmfiles.provider import BaseProvider, Exchange, Http
from llmfiles.settings import CORE_SETTINGS, parse_size, resolve_settings

ARG_KEY = "sk-from-argument-1111"
CLIENT_KEY = "sk-from-client-2222"
ENV_KEY = "sk-from-env-3333"
VAULT_KEY = "sk-from-vault-4444"


class FakeProvider(BaseProvider):
    """A provider that needs an API key and records the settings of each call."""

    info = ProviderInfo(
        name="fake",
        package="llmfiles-fake",
        purposes=("fine-tune", "assistants"),
        settings=(
            SettingSpec(name="api_key", kind="secret", env=("FAKE_API_KEY", "FAKE_KEY_OLD")),
            SettingSpec(name="org", kind="str", env=("FAKE_ORG",)),
            SettingSpec(name="token", kind="secret", env=("FAKE_TOKEN",), secret_names=("fake/token",)),
        ),
        credential_settings=("api_key", "token"),
    )

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def credentials(self, settings: Settings, environ: Mapping[str, str], http: Http) -> Credentials:
        self.seen.append(settings)
        return super().credentials(settings, environ, http)

    def exchange(self, op: Operation, credentials: Credentials, settings: Settings) -> Exchange[Any]:
        raise AssertionError("these tests send nothing")


class FakePlugin:
    def __init__(self, provider: FakeProvider) -> None:
        self.provider = provider

    @hookimpl
    def llmfiles_register_providers(self, register: Any) -> None:
        register(self.provider)


class Vault:
    """A secret manager plugin: the last link of the chain."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets = secrets
        self.asked: list[tuple[str, str]] = []

    @hookimpl
    def llmfiles_get_secret(self, name: str, provider: str, http: Any) -> str | None:
        self.asked.append((name, provider))
        return self.secrets.get(name)


def make_client(vault: dict[str, str] | None = None, environ: dict[str, str] | None = None, **settings: Any) -> Any:
    pm = PluginManager(load_entry_points=False, environ={})
    fake, v = FakeProvider(), Vault(vault or {})
    pm.register(FakePlugin(fake), name="fake")
    pm.register(v, name="vault")
    client = Client("fake", plugin_manager=pm, environ=environ or {}, **settings)
    return client, fake, v


@pytest.fixture
def train(make_jsonl: Any) -> Path:
    return make_jsonl()  # type: ignore[no-any-return]


def credentials_source(client: Any, train: Path, **explicit: Any) -> str:
    return client.describe_upload(train, purpose="fine-tune", **explicit)["credentials"]  # type: ignore[no-any-return]


# --- the chain -----------------------------------------------------------------------------------------------


def test_explicit_beats_client_env_and_secret(train: Path) -> None:
    client, fake, _ = make_client({"FAKE_API_KEY": VAULT_KEY}, {"FAKE_API_KEY": ENV_KEY}, api_key=CLIENT_KEY)
    assert credentials_source(client, train, api_key=ARG_KEY) == "argument api_key"
    assert fake.seen[-1]["api_key"] == Secret(ARG_KEY)


def test_client_beats_env_and_secret(train: Path) -> None:
    client, fake, _ = make_client({"FAKE_API_KEY": VAULT_KEY}, {"FAKE_API_KEY": ENV_KEY}, api_key=CLIENT_KEY)
    assert credentials_source(client, train) == "Client setting api_key"
    assert fake.seen[-1].secret("api_key") == CLIENT_KEY


def test_env_beats_secret_and_the_secret_hook_is_not_asked(train: Path) -> None:
    client, fake, vault = make_client({"FAKE_API_KEY": VAULT_KEY}, {"FAKE_API_KEY": ENV_KEY})
    assert credentials_source(client, train) == "env FAKE_API_KEY"
    assert fake.seen[-1].secret("api_key") == ENV_KEY
    assert ("FAKE_API_KEY", "fake") not in vault.asked


def test_env_vars_are_tried_in_order_and_blank_ones_skipped(train: Path) -> None:
    client, fake, _ = make_client(environ={"FAKE_API_KEY": "  ", "FAKE_KEY_OLD": ENV_KEY})
    assert credentials_source(client, train) == "env FAKE_KEY_OLD"
    assert fake.seen[-1].secret("api_key") == ENV_KEY


def test_secret_hook_is_the_last_link(train: Path) -> None:
    client, fake, vault = make_client({"FAKE_KEY_OLD": VAULT_KEY})
    assert credentials_source(client, train) == "secret FAKE_KEY_OLD"
    assert fake.seen[-1].secret("api_key") == VAULT_KEY
    # asked by each name in order, with the provider; only secret settings are asked for
    assert vault.asked[:2] == [("FAKE_API_KEY", "fake"), ("FAKE_KEY_OLD", "fake")]
    assert {name for name, _ in vault.asked} <= {"FAKE_API_KEY", "FAKE_KEY_OLD", "fake/token"}


def test_secret_names_override_env_names_for_the_secret_hook(train: Path) -> None:
    client, _, vault = make_client({"fake/token": VAULT_KEY})
    assert credentials_source(client, train) == "secret fake/token"
    assert ("FAKE_TOKEN", "fake") not in vault.asked


def test_sources_of_every_setting_are_reported(train: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client, fake, _ = make_client(
        {"FAKE_API_KEY": VAULT_KEY}, {"FAKE_ORG": "org-env", "LLMFILES_TIMEOUT": "12"}, max_retries=2
    )
    client.describe_upload(train, purpose="fine-tune", part_size="16MiB")
    s = fake.seen[-1]
    assert s.source("part_size") == "argument part_size" and s["part_size"] == 16 * 1024 * 1024
    assert s.source("max_retries") == "Client setting max_retries" and s["max_retries"] == 2
    assert s.source("org") == "env FAKE_ORG" and s["org"] == "org-env"
    assert s.source("timeout") == "env LLMFILES_TIMEOUT" and s["timeout"] == 12.0
    assert s.source("api_key") == "secret FAKE_API_KEY"
    assert s.source("deadline") == "default" and s["deadline"] is None
    assert s.source("max_concurrency") == "default" and s["max_concurrency"] == 4


def test_secret_values_are_wrapped_and_hidden_in_reprs(train: Path) -> None:
    client, fake, _ = make_client({"FAKE_API_KEY": VAULT_KEY})
    client.describe_upload(train, purpose="fine-tune")
    s = fake.seen[-1]
    assert isinstance(s["api_key"], Secret)
    assert VAULT_KEY not in repr(s) and VAULT_KEY not in str(s["api_key"])


def test_the_process_environment_is_the_default(train: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_API_KEY", ENV_KEY)
    pm = PluginManager(load_entry_points=False, environ={})
    fake = FakeProvider()
    pm.register(FakePlugin(fake), name="fake")
    client = Client("fake", plugin_manager=pm)
    assert credentials_source(client, train) == "env FAKE_API_KEY"


# --- errors --------------------------------------------------------------------------------------------------


def test_unknown_explicit_setting_is_refused_naming_the_known_ones(train: Path) -> None:
    client, _, _ = make_client(api_key=CLIENT_KEY)
    with pytest.raises(InvalidSetting) as info:
        client.upload(train, purpose="fine-tune", api_kye=ARG_KEY)
    message = str(info.value)
    assert "'api_kye'" in message
    for known in ("api_key", "org", "timeout", "part_size", "max_retries"):
        assert known in message
    assert ARG_KEY not in message


class OtherProvider(FakeProvider):
    info = ProviderInfo(
        name="other",
        package="llmfiles-other",
        purposes=("fine-tune",),
        settings=(SettingSpec(name="some_other_providers_setting", kind="int"),),
    )


def test_a_client_setting_of_another_provider_is_left_alone(train: Path) -> None:
    """One Client may serve several providers: a setting the call's provider does not know, but another installed
    provider does, is left alone; a name no installed provider knows is refused when the client is made (changed:
    it was ignored), as is a value its setting cannot take."""
    pm = PluginManager(load_entry_points=False, environ={})
    pm.register(FakePlugin(FakeProvider()), name="fake")
    pm.register(FakePlugin(OtherProvider()), name="other")
    client = Client("fake", plugin_manager=pm, environ={}, api_key=CLIENT_KEY, some_other_providers_setting="3")
    assert credentials_source(client, train) == "Client setting api_key"
    with pytest.raises(InvalidSetting, match="'some_other_providers_settin' is not a setting of the core or of any"):
        Client("fake", plugin_manager=pm, environ={}, some_other_providers_settin="3")
    with pytest.raises(InvalidSetting, match=r"some_other_providers_setting .*'x' is not a valid int"):
        Client("fake", plugin_manager=pm, environ={}, some_other_providers_setting="x")


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("LLMFILES_PART_SIZE", "lots", "lots"),
        ("LLMFILES_TIMEOUT", "soon", "soon"),
        ("LLMFILES_MAX_RETRIES", "many", "many"),
        ("LLMFILES_VALIDATE", "perhaps", "perhaps"),
        ("LLMFILES_MAX_RETRIES", "-1", "0 or more"),
        ("LLMFILES_TIMEOUT", "0", "greater than 0"),
        ("LLMFILES_MAX_CONCURRENCY", "-2", "greater than 0"),
    ],
)
def test_bad_env_values_name_the_variable(train: Path, var: str, value: str, expected: str) -> None:
    client, _, _ = make_client(environ={var: value}, api_key=CLIENT_KEY)
    with pytest.raises(InvalidSetting) as info:
        client.upload(train, purpose="fine-tune")
    assert f"env {var}" in str(info.value)
    assert expected in str(info.value)


def test_bad_secret_values_are_not_echoed(train: Path) -> None:
    client, _, _ = make_client()
    with pytest.raises(InvalidSetting) as info:
        client.upload(train, purpose="fine-tune", api_key=123456789)
    assert "argument api_key" in str(info.value)
    assert "123456789" not in str(info.value)


def test_missing_credentials_lists_every_place_and_no_value(train: Path) -> None:
    client, _, vault = make_client(
        {"UNRELATED": VAULT_KEY}, {"OTHER_API_KEY": ENV_KEY, "FAKE_ORG": "org-visible"}, org="org-client"
    )
    with pytest.raises(MissingCredentials) as info:
        client.upload(train, purpose="fine-tune")
    message = str(info.value)
    for place in (
        "argument api_key=",
        "Client(api_key=...)",
        "env FAKE_API_KEY",
        "env FAKE_KEY_OLD",
        "secret hooks for FAKE_API_KEY, FAKE_KEY_OLD",
        "argument token=",
        "env FAKE_TOKEN",
        "secret hooks for fake/token",
    ):
        assert place in message
    for value in (VAULT_KEY, ENV_KEY):
        assert value not in message
    assert info.value.exit_code == 2
    assert len(vault.asked) == 3  # FAKE_API_KEY, FAKE_KEY_OLD, fake/token


def test_resolve_settings_directly() -> None:
    info = ProviderInfo(
        name="p",
        package="p",
        purposes=("batch",),
        settings=(SettingSpec(name="timeout", kind="float", env=("P_TIMEOUT",), default=30.0),),
        default_multipart_threshold=1000,
        default_part_size=500,
    )
    s = resolve_settings(info, {}, {}, {})
    assert s["timeout"] == 30.0  # the provider overrides a core default
    assert s.source("timeout") == "default"
    assert s["multipart_threshold"] == 1000 and s["part_size"] == 500
    s = resolve_settings(info, {}, {}, {"P_TIMEOUT": "5", "LLMFILES_TIMEOUT": "7"})
    assert s["timeout"] == 5.0 and s.source("timeout") == "env P_TIMEOUT"
    assert {spec.name for spec in CORE_SETTINGS} <= set(s.values)


def test_none_means_not_given() -> None:
    info = ProviderInfo(name="p", package="p", purposes=("batch",))
    s = resolve_settings(info, {"timeout": None}, {"timeout": None}, {"LLMFILES_TIMEOUT": "9"})
    assert s["timeout"] == 9.0 and s.source("timeout") == "env LLMFILES_TIMEOUT"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("8MiB", 8 * 1024 * 1024),
        ("8MB", 8_000_000),
        ("8M", 8 * 1024 * 1024),
        ("8 mib", 8 * 1024 * 1024),
        ("512KiB", 512 * 1024),
        ("1GB", 1_000_000_000),
        ("1.5GiB", 1536 * 1024 * 1024),
        ("123", 123),
        (123, 123),
        (0, 0),
        (2048.0, 2048),
        ("1TiB", 1024**4),
    ],
)
def test_parse_size(value: Any, expected: int) -> None:
    assert parse_size(value) == expected


@pytest.mark.parametrize("value", ["lots", "", "8XB", "1.5.5", "-1", -1, True, "MiB", "8 Mi B"])
def test_parse_size_refuses(value: Any) -> None:
    with pytest.raises(InvalidSetting) as info:
        parse_size(value, name="part_size")
    assert "part_size" in str(info.value)


# --- v2: time settings and the new core settings -------------------------------------------------------------


@pytest.mark.parametrize("name", ["timeout", "connect_timeout", "deadline"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-1", float("nan"), float("inf"), 0, -2.5])
def test_time_settings_that_make_no_sense_are_configuration_errors(name: str, value: Any) -> None:
    info = ProviderInfo(name="p", package="p", purposes=("batch",))
    with pytest.raises(InvalidSetting) as info_exc:
        resolve_settings(info, {name: value}, {}, {})
    assert name in str(info_exc.value) and "argument" in str(info_exc.value)
    assert info_exc.value.exit_code == 2
    env = {f"LLMFILES_{name.upper()}": str(value)}
    with pytest.raises(InvalidSetting) as info_exc:
        resolve_settings(info, {}, {}, env)
    assert f"env LLMFILES_{name.upper()}" in str(info_exc.value)


@pytest.mark.parametrize("name", ["timeout", "connect_timeout", "deadline"])
def test_time_settings_accept_positive_numbers(name: str) -> None:
    info = ProviderInfo(name="p", package="p", purposes=("batch",))
    assert resolve_settings(info, {name: "0.5"}, {}, {})[name] == 0.5


def test_a_bad_time_setting_stops_an_upload_before_anything_is_read(train: Path) -> None:
    client, fake, _ = make_client(api_key=CLIENT_KEY)
    with pytest.raises(InvalidSetting):
        client.upload(train, purpose="fine-tune", deadline=float("nan"))
    assert fake.seen == []  # refused before credentials were even looked for


def test_check_first_check_worker_and_convert_are_core_settings() -> None:
    names = {s.name: s for s in CORE_SETTINGS}
    assert names["check_first"].kind == "bool" and names["check_first"].default is False
    assert names["check_first"].env == ("LLMFILES_CHECK_FIRST",)
    assert names["check_worker"].kind == "bool" and names["check_worker"].default is True
    assert names["check_worker"].env == ("LLMFILES_CHECK_WORKER",)
    assert names["convert"].env == ("LLMFILES_CONVERT",) and names["convert"].default is None
    info = ProviderInfo(name="p", package="p", purposes=("batch",))
    s = resolve_settings(info, {}, {}, {"LLMFILES_CHECK_FIRST": "yes", "LLMFILES_CHECK_WORKER": "0"})
    assert s["check_first"] is True and s["check_worker"] is False and s["convert"] is None
    assert resolve_settings(info, {"convert": "gemini"}, {}, {})["convert"] == "gemini"
    assert resolve_settings(info, {}, {}, {"LLMFILES_CONVERT": "true"})["convert"] is True


def test_missing_credentials_on_the_command_line_name_the_option_not_python(train: Path) -> None:
    from llmfiles.errors import speaking_to

    client, _, _ = make_client({}, {})
    before = speaking_to("cli")
    try:
        with pytest.raises(MissingCredentials) as info:
            client.upload(train, purpose="fine-tune")
    finally:
        speaking_to(before)
    message = str(info.value)
    assert "  -s api_key=..." in message.splitlines() and "env FAKE_API_KEY" in message
    assert "Client(" not in message and "argument " not in message


def test_a_python_object_setting_has_no_command_line_place() -> None:
    from llmfiles.errors import speaking_to
    from llmfiles.settings import places_looked

    info = ProviderInfo(
        name="p",
        package="p",
        purposes=("batch",),
        settings=(SettingSpec(name="credentials", kind="object"), SettingSpec(name="token", env=("P_TOKEN",))),
    )
    before = speaking_to("cli")
    try:
        cli = places_looked(info, ("credentials", "token"))
    finally:
        speaking_to(before)
    assert "-s credentials=..." not in cli and "-s token=..." in cli and "env P_TOKEN" in cli
    assert "config file [PROFILE.p] token" in cli and "config file [PROFILE.p] credentials" not in cli
    python = places_looked(info, ("credentials",))
    assert python[:2] == ["argument credentials=", "Client(credentials=...)"]


# --- kept between calls ----------------------------------------------------------------------------------------


def test_the_same_inputs_give_the_settings_resolved_before(train: Path) -> None:
    environ = {"FAKE_API_KEY": ENV_KEY, "FAKE_TOKEN": "tok-6666"}  # (no secret hook is asked)
    client, fake, _ = make_client(environ=environ)
    client.describe_upload(train, purpose="fine-tune")
    client.describe_upload(train, purpose="fine-tune")
    assert fake.seen[-1] is fake.seen[-2]  # kept, not resolved again
    client.describe_upload(train, purpose="fine-tune", part_size="16MiB")
    assert fake.seen[-1]["part_size"] == 16 * 1024 * 1024  # another explicit argument: resolved again


def test_a_changed_environment_variable_is_seen_by_the_next_call(train: Path) -> None:
    environ = {"FAKE_API_KEY": ENV_KEY}
    client, fake, _ = make_client(environ=environ)
    assert credentials_source(client, train) == "env FAKE_API_KEY"
    environ["FAKE_API_KEY"] = "sk-rotated-5555"
    client.describe_upload(train, purpose="fine-tune")
    assert fake.seen[-1].secret("api_key") == "sk-rotated-5555"
    del environ["FAKE_API_KEY"]
    environ["FAKE_KEY_OLD"] = ENV_KEY
    assert credentials_source(client, train) == "env FAKE_KEY_OLD"


def test_os_environ_changes_are_seen_by_the_next_call(train: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pm = PluginManager(load_entry_points=False, environ={})
    fake = FakeProvider()
    pm.register(FakePlugin(fake), name="fake")
    monkeypatch.setenv("FAKE_API_KEY", ENV_KEY)
    client = Client("fake", plugin_manager=pm)  # the process's environment
    client.describe_upload(train, purpose="fine-tune")
    assert fake.seen[-1].secret("api_key") == ENV_KEY
    monkeypatch.setenv("FAKE_API_KEY", "sk-rotated-5555")
    client.describe_upload(train, purpose="fine-tune")
    assert fake.seen[-1].secret("api_key") == "sk-rotated-5555"
    monkeypatch.delenv("FAKE_API_KEY")
    monkeypatch.setenv("FAKE_TOKEN", "tok-6666")
    client.describe_upload(train, purpose="fine-tune")
    assert fake.seen[-1].secret("api_key") is None and fake.seen[-1].secret("token") == "tok-6666"


def test_settings_a_secret_hook_was_asked_for_are_never_kept(train: Path) -> None:
    client, fake, vault = make_client({"FAKE_API_KEY": VAULT_KEY})
    assert credentials_source(client, train) == "secret FAKE_API_KEY"
    vault.secrets["FAKE_API_KEY"] = "sk-rotated-in-the-vault-7777"
    client.describe_upload(train, purpose="fine-tune")
    assert fake.seen[-1].secret("api_key") == "sk-rotated-in-the-vault-7777"


def test_an_unhashable_explicit_value_is_resolved_every_time(train: Path) -> None:
    client, fake, _ = make_client(environ={"FAKE_API_KEY": ENV_KEY})
    client.describe_upload(train, purpose="fine-tune", verify=["not", "hashable"])
    client.describe_upload(train, purpose="fine-tune", verify=["not", "hashable"])
    assert fake.seen[-1] is not fake.seen[-2]
    assert fake.seen[-1]["verify"] == ["not", "hashable"]


def test_process_environ_is_a_read_only_copy_renewed_on_change(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmfiles.environ import process_environ

    monkeypatch.setenv("LLMFILES_TEST_SNAPSHOT", "one")
    first = process_environ()
    assert first["LLMFILES_TEST_SNAPSHOT"] == "one"
    assert process_environ() is first  # nothing changed: the same copy
    with pytest.raises(TypeError):
        first["LLMFILES_TEST_SNAPSHOT"] = "two"  # type: ignore[index]
    monkeypatch.setenv("LLMFILES_TEST_SNAPSHOT", "two")
    assert process_environ()["LLMFILES_TEST_SNAPSHOT"] == "two"
    monkeypatch.delenv("LLMFILES_TEST_SNAPSHOT")
    assert "LLMFILES_TEST_SNAPSHOT" not in process_environ()
