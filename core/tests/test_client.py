"""``Client(...)`` checks what it is given when it is made, not at its first call; it is a context manager for
``with`` and ``async with``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import llmfiles
from llmfiles import Client


@pytest.mark.parametrize(
    ("args", "kw", "error", "match"),
    [
        (("local",), {"foo": 1}, llmfiles.InvalidSetting, "Client setting 'foo' is not a setting of the core or"),
        ((), {"max_concurency": 3}, llmfiles.InvalidSetting, "did you mean 'max_concurrency'"),
        (("nope",), {}, llmfiles.ProviderNotInstalled, "provider 'nope' is not installed"),
        (("locl",), {}, llmfiles.ProviderNotInstalled, "did you mean 'local'"),
        ((), {"max_concurrency": "x"}, llmfiles.InvalidSetting, r"max_concurrency .*'x' is not a valid int"),
        ((), {"max_concurrency": 0}, llmfiles.InvalidSetting, "max_concurrency .* must be greater than 0"),
        ((), {"timeout": float("nan")}, llmfiles.InvalidSetting, "timeout .* must be a number of seconds"),
        ((), {"if_exists": "sometimes"}, llmfiles.InvalidSetting, "if_exists .* must be one of new, reuse, error"),
        ((), {"part_size": "lots"}, llmfiles.InvalidSetting, "part_size .*'lots' is not a size"),
        ((3,), {}, TypeError, "provider must be a provider's name"),
        ((), {"profile": 3}, TypeError, "profile must be the name of a profile"),
        ((), {"profile": "work"}, llmfiles.ConfigurationError, "no profile 'work'"),
    ],
)
def test_a_client_is_checked_when_it_is_made(
    args: tuple[Any, ...], kw: dict[str, Any], error: type, match: str
) -> None:
    with pytest.raises(error, match=match) as info:
        Client(*args, environ={}, **kw)
    if isinstance(info.value, llmfiles.LLMFilesError):
        assert not isinstance(info.value, ValueError) or isinstance(info.value, llmfiles.InputError)


def test_good_settings_are_accepted_as_they_will_be_used(tmp_path: Path) -> None:
    client = Client("local", environ={}, home=str(tmp_path), max_concurrency="8", timeout="30", part_size="8MiB")
    settings = client._resolver.call(None, {}, credentials=False).settings
    assert (settings["max_concurrency"], settings["timeout"], settings["part_size"]) == (8, 30.0, 8 * 1024 * 1024)
    Client()  # nothing to check, nothing loaded (test_import.py checks that it stays cheap)


def test_async_with_closes_the_client(tmp_path: Path, make_jsonl: Any) -> None:
    path = make_jsonl()
    client = Client("local", environ={}, home=str(tmp_path))
    closed: list[bool] = []
    real_close = client.close

    def close() -> None:
        closed.append(True)
        real_close()

    client.close = close  # type: ignore[method-assign]

    async def main() -> llmfiles.FileObject:
        async with client as c:
            assert c is client and not closed
            return await c.aupload(path, purpose="fine-tune")

    assert asyncio.run(main()).status == "processed"
    assert closed == [True]
