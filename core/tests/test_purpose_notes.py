"""A purpose a provider does not take is refused before the file is opened, with what the provider offers instead
when it says so (``ProviderInfo.purpose_notes``), for uploads, dry runs and offline checks alike."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llmfiles import Client, hookimpl
from llmfiles.errors import InvalidPurpose
from llmfiles.models import Credentials, Operation, ProviderInfo, Settings
from llmfiles.plugins import PluginManager
from llmfiles.provider import BaseProvider, Exchange

NOTE = "Acme has no fine-tuning; use provider 'other' for that"


class _Acme(BaseProvider):
    info = ProviderInfo(
        name="acme",
        package="acme-plugin",
        purposes=("user_data",),
        purpose_notes={"fine-tune": NOTE},
    )

    def exchange(self, op: Operation, credentials: Credentials, settings: Settings) -> Exchange[Any]:
        raise AssertionError("a refused purpose never reaches the provider")


class _Plugin:
    @hookimpl
    def llmfiles_register_providers(self, register: Callable[[_Acme], None]) -> None:
        register(_Acme())


@pytest.fixture
def client() -> Client:
    pm = PluginManager(load_entry_points=False, environ={})
    pm.register(_Plugin(), "acme")
    return Client("acme", plugin_manager=pm, environ={})


def test_a_noted_purpose_is_refused_with_the_note(client: Client, tmp_path: Path) -> None:
    missing = tmp_path / "does-not-exist.jsonl"  # refused before the file is opened: it need not exist
    with pytest.raises(InvalidPurpose) as info:
        client.upload(missing, purpose="fine-tune")
    message = str(info.value)
    assert NOTE in message and "use one of: user_data" in message
    assert info.value.accepted == ("user_data",)
    with pytest.raises(InvalidPurpose, match="Acme has no fine-tuning"):
        client.describe_upload(missing, purpose="fine-tune")
    with pytest.raises(InvalidPurpose, match="Acme has no fine-tuning"):
        client.validate(missing, purpose="fine-tune")


def test_a_purpose_without_a_note_is_refused_as_before(client: Client, tmp_path: Path) -> None:
    with pytest.raises(InvalidPurpose) as info:
        client.upload(tmp_path / "x.jsonl", purpose="batch")
    assert str(info.value) == "purpose 'batch' is not accepted by provider 'acme'; use one of: user_data"
    with pytest.raises(InvalidPurpose):
        client.upload(tmp_path / "x.jsonl", purpose=None)
