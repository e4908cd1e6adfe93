"""Credentials through google-auth, for real: its service-account flow signs a JWT that our token endpoint verifies
with the public key (a wrong key is refused), and the token it hands out is what Cloud Storage requests carry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vertex_testlib import BUCKET, chat_file

import llmfiles
from llmfiles.errors import AuthenticationError, InvalidSetting, MissingCredentials
from servers.fault_proxy import FaultProxy
from servers.google_token import GoogleTokenServer, new_key, write_service_account_key

EMAIL = "trainer@llmfiles-test.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def sa_key() -> Any:
    return new_key()


@pytest.fixture
def token_server(sa_key: Any) -> Iterator[GoogleTokenServer]:
    with GoogleTokenServer(sa_key.public_key(), EMAIL) as server:
        yield server
        assert not server.errors, server.errors


@pytest.fixture
def key_file(tmp_path: Path, sa_key: Any, token_server: GoogleTokenServer) -> Path:
    path = tmp_path / "sa.json"
    write_service_account_key(path, sa_key, token_uri=token_server.token_uri, email=EMAIL)
    return path


@pytest.fixture
def base(proxy: FaultProxy, prefix: str) -> dict[str, Any]:
    """Settings without credentials."""
    return {"api_base": proxy.url, "bucket": BUCKET, "prefix": prefix, "max_retry_wait": 0.01}


def bearer(proxy: FaultProxy) -> set[str | None]:
    return {r.header("authorization") for r in proxy.requests}


def test_a_service_account_key_is_refreshed_against_the_token_endpoint_and_its_token_sent(
    base: dict[str, Any], key_file: Path, token_server: GoogleTokenServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    with llmfiles.Client("vertex_ai", credentials_file=str(key_file), **base) as client:
        fo = client.upload(chat_file(tmp_path / "train.jsonl"), purpose="fine-tune")
        assert client.retrieve(fo.id).id == fo.id
        assert [f.id for f in client.list_files()] == [fo.id]
    [token] = token_server.issued  # one token for three calls: google-auth keeps it until it expires
    [claims] = token_server.claims
    assert claims["iss"] == EMAIL and claims["aud"] == "https://oauth2.googleapis.com/token"
    assert claims["scope"] == "https://www.googleapis.com/auth/cloud-platform"
    assert bearer(proxy) == {f"Bearer {token}"}  # the storage server saw the token google-auth got
    assert fo.raw["metadata"]["llmfiles-vertex-project"] == "llmfiles-test"  # from the key, no project set


def test_google_application_credentials_is_the_credentials_file(
    monkeypatch: pytest.MonkeyPatch,
    base: dict[str, Any],
    key_file: Path,
    token_server: GoogleTokenServer,
    proxy: FaultProxy,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    with llmfiles.Client("vertex", **base) as client:
        client.upload(chat_file(tmp_path / "train.jsonl"), purpose="fine-tune")
    assert bearer(proxy) == {f"Bearer {token_server.issued[0]}"}


def test_a_wrong_key_is_refused_by_the_token_endpoint_and_nothing_is_uploaded(
    base: dict[str, Any], token_server: GoogleTokenServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong.json"
    write_service_account_key(wrong, new_key(), token_uri=token_server.token_uri, email=EMAIL)
    with (
        llmfiles.Client("vertex_ai", credentials_file=str(wrong), **base) as client,
        pytest.raises(AuthenticationError) as info,
    ):
        client.upload(chat_file(tmp_path / "train.jsonl"), purpose="fine-tune")
    assert token_server.refused == ["Invalid JWT Signature."] and token_server.issued == []
    message = str(info.value)
    assert "Client setting credentials_file" in message and "Invalid JWT Signature" in message
    assert "PRIVATE KEY" not in message
    assert proxy.requests == []


def test_application_default_credentials(
    monkeypatch: pytest.MonkeyPatch,
    base: dict[str, Any],
    sa_key: Any,
    token_server: GoogleTokenServer,
    proxy: FaultProxy,
    tmp_path: Path,
) -> None:
    gcloud = Path(os.environ["CLOUDSDK_CONFIG"])
    gcloud.mkdir(parents=True)
    write_service_account_key(
        gcloud / "application_default_credentials.json", sa_key, token_uri=token_server.token_uri, email=EMAIL
    )
    with llmfiles.Client("vertex_ai", **base) as client:
        client.upload(chat_file(tmp_path / "train.jsonl"), purpose="fine-tune")
        assert client.describe_upload(chat_file(tmp_path / "t.jsonl"), purpose="fine-tune")["credentials"].startswith(
            "Application Default Credentials"
        )
    assert len(token_server.issued) == 1
    assert bearer(proxy) == {f"Bearer {token_server.issued[0]}"}


def test_a_broken_adc_file_is_reported_with_google_auths_reason(
    base: dict[str, Any], proxy: FaultProxy, tmp_path: Path
) -> None:
    gcloud = Path(os.environ["CLOUDSDK_CONFIG"])
    gcloud.mkdir(parents=True)
    (gcloud / "application_default_credentials.json").write_text('{"type": "nonsense"}')
    with llmfiles.Client("vertex_ai", **base) as client, pytest.raises(MissingCredentials) as info:
        client.upload(chat_file(tmp_path / "train.jsonl"), purpose="fine-tune")
    assert "google-auth said:" in str(info.value) and "GOOGLE_APPLICATION_CREDENTIALS" in str(info.value)


def test_an_explicit_google_auth_credentials_object(
    base: dict[str, Any], key_file: Path, token_server: GoogleTokenServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    from google.oauth2 import service_account

    creds = service_account.Credentials.from_service_account_info(json.loads(key_file.read_text()))
    assert creds.requires_scopes  # no scope yet: the plugin asks for cloud-platform
    with llmfiles.Client("vertex_ai", credentials=creds, **base) as client:
        client.upload(chat_file(tmp_path / "train.jsonl"), purpose="fine-tune")
        client.upload(chat_file(tmp_path / "train.jsonl"), purpose="fine-tune")
    [token] = token_server.issued  # the scoped copy is kept with the object, so its token is reused
    assert bearer(proxy) == {f"Bearer {token}"}
    assert token_server.claims[0]["scope"] == "https://www.googleapis.com/auth/cloud-platform"


def test_a_valid_user_credentials_object_is_used_as_it_is_with_its_quota_project(
    base: dict[str, Any], proxy: FaultProxy, tmp_path: Path
) -> None:
    from google.oauth2.credentials import Credentials

    creds = Credentials(token="ya29.user-token-abcdef", quota_project_id="billing-project")
    with llmfiles.Client("vertex_ai", credentials=creds, **base) as client:
        client.upload(chat_file(tmp_path / "train.jsonl"), purpose="fine-tune")
    assert bearer(proxy) == {"Bearer ya29.user-token-abcdef"}
    assert {r.header("x-goog-user-project") for r in proxy.requests} == {"billing-project"}


def test_credentials_must_be_a_google_auth_object(base: dict[str, Any], tmp_path: Path) -> None:
    with (
        llmfiles.Client("vertex_ai", credentials={"token": "x"}, **base) as client,
        pytest.raises(InvalidSetting, match="google-auth Credentials"),
    ):
        client.upload(chat_file(tmp_path / "train.jsonl"), purpose="fine-tune")


def test_an_unreadable_credentials_file_is_named(base: dict[str, Any], tmp_path: Path) -> None:
    with (
        llmfiles.Client("vertex_ai", credentials_file=str(tmp_path / "nope.json"), **base) as client,
        pytest.raises(InvalidSetting, match=r"nope\.json"),
    ):
        client.upload(chat_file(tmp_path / "train.jsonl"), purpose="fine-tune")
    (tmp_path / "junk.json").write_text("{}")
    with (
        llmfiles.Client("vertex_ai", credentials_file=str(tmp_path / "junk.json"), **base) as client,
        pytest.raises(InvalidSetting, match="not a credentials file google-auth can use") as info,
    ):
        client.upload(chat_file(tmp_path / "train.jsonl"), purpose="fine-tune")
    assert "junk.json" in str(info.value) and "valid type" in str(info.value)  # google-auth's reason


def test_an_explicit_argument_beats_the_environment(
    monkeypatch: pytest.MonkeyPatch,
    base: dict[str, Any],
    key_file: Path,
    token_server: GoogleTokenServer,
    proxy: FaultProxy,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    src = chat_file(tmp_path / "train.jsonl")
    with llmfiles.Client("vertex_ai", **base) as client:
        client.upload(src, purpose="fine-tune", access_token="ya29.explicit-token")
    assert token_server.issued == []  # the key file in the environment was not even used
    assert bearer(proxy) == {"Bearer ya29.explicit-token"}

    monkeypatch.setenv("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.from-the-environment")
    with llmfiles.Client("vertex_ai", **base) as client:
        client.upload(src, purpose="fine-tune", credentials_file=str(key_file))
    assert len(token_server.issued) == 1
    assert "Bearer ya29.from-the-environment" not in bearer(proxy)


def test_an_access_token_from_the_environment_is_sent_without_loading_google_auth(
    proxy: FaultProxy, prefix: str, tmp_path: Path
) -> None:
    src = chat_file(tmp_path / "train.jsonl")
    script = (
        "import sys, llmfiles\n"
        f"fo = llmfiles.upload({str(src)!r}, purpose='fine-tune', provider='vertex_ai')\n"
        "print(fo.id)\n"
        "print('google.auth loaded:', 'google.auth' in sys.modules)\n"
    )
    env = {
        **os.environ,
        "GOOGLE_OAUTH_ACCESS_TOKEN": "ya29.env-token-0123456789",
        "LLMFILES_GCS_BUCKET": BUCKET,
        "LLMFILES_GCS_PREFIX": prefix,
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            script.replace("provider='vertex_ai')", f"provider='vertex_ai', api_base={proxy.url!r})"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "google.auth loaded: False"
    assert proc.stdout.startswith(f"gs://{BUCKET}/{prefix}")
    assert bearer(proxy) == {"Bearer ya29.env-token-0123456789"}


def test_a_dry_run_finds_the_credentials_without_asking_for_a_token(
    base: dict[str, Any], sa_key: Any, token_server: GoogleTokenServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    """A dry run sends nothing: Application Default Credentials are found and read, no token is asked for; the
    upload that follows asks for its token as usual."""
    gcloud = Path(os.environ["CLOUDSDK_CONFIG"])
    gcloud.mkdir(parents=True)
    adc = gcloud / "application_default_credentials.json"
    write_service_account_key(adc, sa_key, token_uri=token_server.token_uri, email=EMAIL)
    with llmfiles.Client("vertex_ai", **base) as client:
        plan = client.describe_upload(chat_file(tmp_path / "train.jsonl"), purpose="fine-tune")
        assert plan["ok"] and plan["problems"] == []
        assert plan["credentials"].startswith("Application Default Credentials")
        assert "no token asked for in a dry run" in plan["credentials"]
        assert token_server.issued == [] and proxy.requests == []
        client.upload(chat_file(tmp_path / "train.jsonl"), purpose="fine-tune")
        assert len(token_server.issued) == 1
