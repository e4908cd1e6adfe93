"""The conformance kit for provider plugins: a pytest plugin and :class:`ProviderConformance`.

A provider package subclasses :class:`ProviderConformance` in a few lines and gets the shared behaviour tests:
the upload / retrieve / list / download / delete round trip, large files through the parts engine, purpose
rejection before the file is opened, missing credentials, error mapping, progress and async use::

    from llmfiles.testing import ProviderConformance

    class TestAcme(ProviderConformance):
        provider = "acme"

        @pytest.fixture
        def provider_settings(self, acme_server):
            return {"api_base": acme_server.url, "api_key": "test-key"}

The module is registered as a pytest plugin (entry point ``pytest11``), so its fixtures
(``llmfiles_home``, ``make_jsonl``, ``make_batch_jsonl``, ``loopback_only``) are available in any test suite where
llmfiles is installed.  A plugin's ``conftest.py`` keeps every test on this machine with::

    @pytest.fixture(autouse=True)
    def _loopback_only(loopback_only: None) -> None:
        pass  # no test here reaches a host that is not loopback
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

MiB = 1024 * 1024


def write_chat_jsonl(path: Path, records: int = 12, *, min_bytes: int = 0) -> Path:
    """Write a valid chat-format fine-tuning file with at least ``records`` lines and ``min_bytes`` bytes."""
    i = 0
    size = 0
    with open(path, "w", encoding="utf-8") as fh:
        while i < records or size < min_bytes:
            line = json.dumps(
                {
                    "messages": [
                        {"role": "system", "content": "You are terse."},
                        {"role": "user", "content": f"Question {i}: what is {i} + {i}?"},
                        {"role": "assistant", "content": f"{2 * i}. " + "ok " * (i % 7)},
                    ]
                }
            )
            fh.write(line + "\n")
            size += len(line) + 1
            i += 1
    return path


def write_batch_jsonl(
    path: Path,
    records: int = 12,
    *,
    min_bytes: int = 0,
    url: str = "/v1/chat/completions",
    model: str = "gpt-4o-mini",
) -> Path:
    """Write a valid OpenAI-format batch input file (chat completion requests to ``url`` for ``model``, unique
    ``custom_id``s) with at least ``records`` lines and ``min_bytes`` bytes."""
    i = 0
    size = 0
    with open(path, "w", encoding="utf-8") as fh:
        while i < records or size < min_bytes:
            line = json.dumps(
                {
                    "custom_id": f"request-{i}",
                    "method": "POST",
                    "url": url,
                    "body": {
                        "model": model,
                        "messages": [{"role": "user", "content": f"Question {i}: what is {i} + {i}?"}],
                        "max_tokens": 10 + i % 7,
                    },
                }
            )
            fh.write(line + "\n")
            size += len(line) + 1
            i += 1
    return path


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Looking up any name but a loopback one (``127.0.0.0/8``, ``::1``, ``localhost``) is refused, and the test
    fails if it tried, even when the code under test swallowed the refusal as a network error: a test never reaches a
    real provider."""
    import ipaddress
    import socket

    real = socket.getaddrinfo
    refused: list[str] = []

    def getaddrinfo(host: Any, *args: Any, **kw: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        try:
            loopback = ipaddress.ip_address(name.strip("[]")).is_loopback
        except ValueError:
            loopback = name == "localhost"
        if not loopback:
            refused.append(name)
            raise socket.gaierror(socket.EAI_NONAME, f"the tests talk to loopback addresses only, not {name!r}")
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield
    assert not refused, f"the test tried to reach {refused!r}"


@pytest.fixture
def llmfiles_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``$LLMFILES_HOME`` for the test."""
    home = tmp_path / "llmfiles-home"
    monkeypatch.setenv("LLMFILES_HOME", str(home))
    return home


@pytest.fixture
def make_jsonl(tmp_path: Path) -> Callable[..., Path]:
    """``make_jsonl(name="train.jsonl", records=12, min_bytes=0)`` writes a valid chat JSONL file."""

    def make(name: str = "train.jsonl", records: int = 12, min_bytes: int = 0) -> Path:
        return write_chat_jsonl(tmp_path / name, records, min_bytes=min_bytes)

    return make


@pytest.fixture
def make_batch_jsonl(tmp_path: Path) -> Callable[..., Path]:
    """``make_batch_jsonl(name="batch.jsonl", records=12, min_bytes=0, url=..., model=...)`` writes a valid
    OpenAI-format batch input file."""

    def make(name: str = "batch.jsonl", records: int = 12, min_bytes: int = 0, **kw: Any) -> Path:
        return write_batch_jsonl(tmp_path / name, records, min_bytes=min_bytes, **kw)

    return make


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(MiB):
            h.update(block)
    return h.hexdigest()


class ProviderConformance:
    """Shared behaviour every provider must show.  Subclass it, set :attr:`provider`, and override the
    :meth:`provider_settings` fixture so it points at your (test) server with valid credentials."""

    #: the provider's registered name
    provider: str = ""
    #: a purpose the provider accepts for the round trip
    purpose: str = "fine-tune"
    #: a file size that is certainly above the multipart threshold the large-file test sets
    large_file_bytes: int = 3 * MiB
    #: part size and threshold for the large-file test (the provider may raise them to its minimum)
    large_part_size: int = 1 * MiB

    @pytest.fixture
    def provider_settings(self) -> dict[str, Any]:
        """Settings that make the provider work against your test server (override this)."""
        return {}

    @pytest.fixture
    def conformance_client(self, provider_settings: dict[str, Any]) -> Iterator[Any]:
        from llmfiles import Client

        client = Client(self.provider, **provider_settings)
        yield client
        client.close()

    @pytest.fixture
    def provider_info(self, conformance_client: Any) -> Any:
        return conformance_client.provider_info(self.provider)

    # -- tests -----------------------------------------------------------------------------------------------

    def test_registered(self, provider_info: Any) -> None:
        assert provider_info.name == self.provider or self.provider in provider_info.aliases
        assert self.purpose in provider_info.purposes
        assert provider_info.package

    def test_round_trip(self, conformance_client: Any, make_jsonl: Callable[..., Path], tmp_path: Path) -> None:
        from llmfiles import FileNotFound

        src = make_jsonl("round-trip.jsonl", records=15)
        fo = conformance_client.upload(src, purpose=self.purpose)
        assert fo.provider == conformance_client.provider_info(self.provider).name
        assert fo.filename == "round-trip.jsonl"
        assert fo.purpose == self.purpose
        assert fo.bytes == src.stat().st_size
        assert fo.status in ("uploaded", "processed", "pending")
        assert fo.created_at > 0

        got = conformance_client.retrieve(fo.id)
        assert got.id == fo.id and got.bytes == fo.bytes and got.purpose == fo.purpose

        listed = {f.id: f for f in conformance_client.list_files()}
        assert fo.id in listed
        only = [f.id for f in conformance_client.list_files(purpose=self.purpose)]
        assert fo.id in only

        out = conformance_client.download(fo.id, tmp_path / "downloaded.jsonl")
        assert out.read_bytes() == src.read_bytes()

        assert conformance_client.delete(fo.id) is True
        with pytest.raises(FileNotFound):
            conformance_client.retrieve(fo.id)
        assert fo.id not in {f.id for f in conformance_client.list_files()}

    def test_large_file_uses_parts(
        self, conformance_client: Any, provider_info: Any, make_jsonl: Callable[..., Path], tmp_path: Path
    ) -> None:
        if not provider_info.supports_parts:
            pytest.skip(f"{self.provider} declares no large-file protocol")
        src = make_jsonl("large.jsonl", min_bytes=self.large_file_bytes)
        events: list[Any] = []
        fo = conformance_client.upload(
            src,
            purpose=self.purpose,
            multipart_threshold=self.large_part_size,
            part_size=self.large_part_size,
            progress=events.append,
        )
        assert fo.bytes == src.stat().st_size
        assert events and events[-1].done == src.stat().st_size
        out = conformance_client.download(fo.id, tmp_path / "large-back.jsonl")
        assert _md5(out) == _md5(src)
        conformance_client.delete(fo.id)

    # -- nothing is committed unless it passed its checks and the file did not change -------------------------

    def _names_at_provider(self, client: Any) -> list[str]:
        return [f.filename for f in client.list_files()]

    def _no_unfinished_session(self, client: Any, name: str) -> None:
        assert not [u for u in client.unfinished_uploads() if u["filename"] == name]

    @pytest.mark.parametrize("how", ["in place", "replaced"])
    @pytest.mark.parametrize("parts", [False, True], ids=["one-request", "parts"])
    def test_a_file_edited_during_the_upload_is_not_committed(
        self, conformance_client: Any, provider_info: Any, make_jsonl: Callable[..., Path], parts: bool, how: str
    ) -> None:
        from llmfiles import FileChanged

        if parts and not provider_info.supports_parts:
            pytest.skip(f"{self.provider} declares no large-file protocol")
        src = make_jsonl(f"edited-{parts}.jsonl", min_bytes=self.large_file_bytes)
        size = src.stat().st_size
        edited = [False]

        def edit(event: Any) -> None:
            if not edited[0] and event.operation == "upload" and 0 < event.done < size:
                edited[0] = True
                data = bytearray(src.read_bytes())
                data[size // 2] = ord(" ") if data[size // 2] != ord(" ") else ord("x")
                if how == "in place":  # same size, other bytes: only the identity tells
                    with open(src, "r+b") as fh:
                        fh.write(data)
                else:
                    other = src.with_name(src.name + ".new")
                    other.write_bytes(data)
                    os.replace(other, src)

        kw: dict[str, Any] = {"progress": edit, "resume": False}
        if parts:
            kw.update(multipart_threshold=self.large_part_size, part_size=self.large_part_size, max_concurrency=1)
        else:
            kw.update(multipart_threshold=size + 1)
        with pytest.raises(FileChanged) as info:
            conformance_client.upload(src, purpose=self.purpose, **kw)
        assert edited[0] and str(src) in str(info.value)
        assert src.name not in self._names_at_provider(conformance_client)
        self._no_unfinished_session(conformance_client, src.name)

    @pytest.mark.parametrize("parts", [False, True], ids=["one-request", "parts"])
    def test_a_broken_last_line_creates_nothing(
        self, conformance_client: Any, provider_info: Any, make_jsonl: Callable[..., Path], parts: bool
    ) -> None:
        from llmfiles import ValidationError

        if self.purpose not in ("fine-tune", "batch"):
            pytest.skip("the purpose has no content checks")
        if parts and not provider_info.supports_parts:
            pytest.skip(f"{self.provider} declares no large-file protocol")
        src = make_jsonl(f"broken-{parts}.jsonl", min_bytes=self.large_file_bytes)
        with open(src, "ab") as fh:
            fh.write(b'{"messages": [{"role": "user", "content": "cut sh\n')
        kw: dict[str, Any] = {"resume": False}
        if parts:
            kw.update(multipart_threshold=self.large_part_size, part_size=self.large_part_size)
        else:
            kw.update(multipart_threshold=src.stat().st_size + 1)
        with pytest.raises(ValidationError) as info:
            conformance_client.upload(src, purpose=self.purpose, **kw)
        # the error is at the broken line (a checker may add warnings about the whole file, without a line, after it)
        errors = [p for p in info.value.problems if p.severity == "error"]
        assert errors and errors[-1].line == src.read_bytes().count(b"\n")
        assert src.name not in self._names_at_provider(conformance_client)
        self._no_unfinished_session(conformance_client, src.name)

    def test_unknown_purpose_is_refused_before_the_file_is_opened(
        self, conformance_client: Any, tmp_path: Path
    ) -> None:
        from llmfiles import InvalidPurpose

        with pytest.raises(InvalidPurpose) as info:
            conformance_client.upload(tmp_path / "does-not-exist.jsonl", purpose="not-a-purpose")
        assert self.purpose in str(info.value)

    def test_bad_files_are_refused(self, conformance_client: Any, tmp_path: Path) -> None:
        from llmfiles import BadFile, ValidationError

        empty = tmp_path / "empty.jsonl"
        empty.write_bytes(b"")
        with pytest.raises(BadFile):
            conformance_client.upload(empty, purpose=self.purpose)
        with pytest.raises(BadFile):
            conformance_client.upload(tmp_path, purpose=self.purpose)
        broken = tmp_path / "broken.jsonl"
        broken.write_bytes(b'{"messages": []}\n\xff\xfe not utf-8\n')
        if self.purpose in ("fine-tune", "batch"):
            with pytest.raises(ValidationError) as info:
                conformance_client.upload(broken, purpose=self.purpose)
            assert "line 2" in str(info.value)

    def test_missing_credentials_names_where_it_looked(
        self, provider_settings: dict[str, Any], provider_info: Any, make_jsonl: Callable[..., Path]
    ) -> None:
        from llmfiles import Client, MissingCredentials

        settings = {k: v for k, v in provider_settings.items() if k not in provider_info.credential_settings}
        client = Client(self.provider, environ={}, **settings)
        if not provider_info.credential_settings:
            # a provider that declares no credentials must work with none at all
            fo = client.upload(make_jsonl(), purpose=self.purpose)
            client.delete(fo.id)
            return
        with pytest.raises(MissingCredentials) as info:
            client.upload(make_jsonl(), purpose=self.purpose)
        message = str(info.value)
        for spec in provider_info.settings:
            if spec.name in provider_info.credential_settings:
                for var in spec.env:
                    assert var in message
        for value in provider_settings.values():
            if isinstance(value, str) and len(value) >= 8 and "://" not in value and "/" not in value:
                assert value not in message

    def test_unknown_file_id_is_file_not_found(self, conformance_client: Any) -> None:
        from llmfiles import FileNotFound

        with pytest.raises(FileNotFound) as info:
            conformance_client.retrieve(self.missing_file_id())
        assert info.value.status == 404

    def missing_file_id(self) -> str:
        """An id the provider certainly does not have (override when ids have another shape)."""
        return "file-" + "0" * 32

    def test_async_upload(self, conformance_client: Any, make_jsonl: Callable[..., Path]) -> None:
        src = make_jsonl("async.jsonl")

        async def go() -> Any:
            fo = await conformance_client.aupload(src, purpose=self.purpose)
            again = await conformance_client.aretrieve(fo.id)
            ids = [f.id async for f in conformance_client.alist_files()]
            await conformance_client.adelete(fo.id)
            return fo, again, ids

        fo, again, ids = asyncio.run(go())
        assert again.id == fo.id and fo.id in ids
