"""The local provider's store: ids cannot reach outside it, symlinks are not followed, it is private, interrupted
uploads leave nothing behind, and listings page correctly."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from llmfiles import Client
from llmfiles.errors import FileNotFound, InputError, ProviderError
from llmfiles.models import Progress

MiB = 1024 * 1024
HEX = "0123456789abcdef" * 2  # 32 hex digits
OUTSIDE_ID = f"file-{HEX}"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def client(home: Path) -> Client:
    return Client("local", environ={}, home=str(home), max_retry_wait=0.01)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the store that looks like a store, with a file that must never be read or deleted."""
    root = tmp_path / "outside"
    files = root / "local" / "files"
    files.mkdir(parents=True)
    meta = {"id": OUTSIDE_ID, "filename": "secret.txt", "purpose": "batch", "bytes": 6, "created_at": 1}
    (files / f"{OUTSIDE_ID}.json").write_text(json.dumps(meta))
    (files / f"{OUTSIDE_ID}.data").write_bytes(b"SECRET")
    (files / "files").mkdir()
    (root / "passwd").write_text("root:x:0:0")
    return root


def untouched(outside: Path) -> bool:
    files = outside / "local" / "files"
    return (files / f"{OUTSIDE_ID}.data").read_bytes() == b"SECRET" and (files / f"{OUTSIDE_ID}.json").exists()


def upload_one(client: Client, tmp_path: Path, name: str = "a.txt", data: bytes = b"hello\n") -> Any:
    path = tmp_path / name
    path.write_bytes(data)
    return client.upload(path, purpose="assistants")


def bad_ids(outside: Path) -> list[str]:
    store = outside / "local"
    return [
        "../outside/local/files/" + OUTSIDE_ID,
        "../../outside/local/files/" + OUTSIDE_ID,
        f"..%2F..%2Foutside%2Flocal%2Ffiles%2F{OUTSIDE_ID}",
        str(store / "files" / OUTSIDE_ID),
        str(outside / "passwd"),
        "/etc/passwd",
        f"{OUTSIDE_ID}?store={store}&x=",  # query injection: another store
        f"{OUTSIDE_ID}&store={store}",
        f"{OUTSIDE_ID}#fragment",
        f"{OUTSIDE_ID}/content",
        f"{OUTSIDE_ID}.json",
        f"file-{HEX.upper()}",
        f"file-{HEX[:-1]}",
        f"file-{HEX}0",
        "upload-" + HEX,
        "file-" + "g" * 32,
        ".",
        "..",
        "\\..\\..\\x",
        f" {OUTSIDE_ID}",
        f"file-{HEX}\n",
    ]


def test_ids_cannot_reach_outside_the_store(client: Client, outside: Path, tmp_path: Path) -> None:
    mine = upload_one(client, tmp_path)
    for bad in bad_ids(outside):
        for op in (client.retrieve, client.delete):
            with pytest.raises(FileNotFound) as info:
                op(bad)
            assert info.value.status == 404, bad
        with pytest.raises(FileNotFound):
            client.download(bad, tmp_path / "out.bin")
        assert not (tmp_path / "out.bin").exists()
        assert untouched(outside), bad
    assert client.retrieve(mine.id) == mine  # the store itself is fine


def test_empty_or_non_string_ids_are_input_errors(client: Client) -> None:
    for bad in ("", "   ", None, 5):
        with pytest.raises(InputError):
            client.retrieve(bad)  # type: ignore[arg-type]


def test_a_symlinked_metadata_file_is_not_followed(client: Client, outside: Path, home: Path, tmp_path: Path) -> None:
    upload_one(client, tmp_path)  # creates the store
    files = home / "local" / "files"
    (files / f"{OUTSIDE_ID}.json").symlink_to(outside / "local" / "files" / f"{OUTSIDE_ID}.json")
    (files / f"{OUTSIDE_ID}.data").symlink_to(outside / "local" / "files" / f"{OUTSIDE_ID}.data")
    with pytest.raises(ProviderError) as info:
        client.retrieve(OUTSIDE_ID, max_retries=0)
    assert "secret.txt" not in str(info.value)
    with pytest.raises(ProviderError):
        client.download(OUTSIDE_ID, tmp_path / "leak.bin", max_retries=0)
    assert not (tmp_path / "leak.bin").exists()
    assert OUTSIDE_ID not in {f.id for f in client.list_files()}
    assert untouched(outside)


def test_a_symlinked_data_file_is_not_followed(client: Client, outside: Path, home: Path, tmp_path: Path) -> None:
    fo = upload_one(client, tmp_path)
    data = home / "local" / "files" / f"{fo.id}.data"
    data.unlink()
    data.symlink_to(outside / "local" / "files" / f"{OUTSIDE_ID}.data")
    with pytest.raises(ProviderError):
        client.download(fo.id, tmp_path / "leak.bin", max_retries=0)
    assert not (tmp_path / "leak.bin").exists()
    client.delete(fo.id)  # removes the link, not what it points to
    assert not data.is_symlink()
    assert untouched(outside)


def test_the_store_is_private(client: Client, home: Path, tmp_path: Path, make_jsonl: Any) -> None:
    old = os.umask(0o022)
    try:
        upload_one(client, tmp_path)
        client.upload(make_jsonl(min_bytes=200_000), purpose="fine-tune", multipart_threshold=65536, part_size=65536)
    finally:
        os.umask(old)
    root = home / "local"
    for d in (root, root / "files", root / "uploads", root / "tmp"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    stored = list((root / "files").iterdir())
    assert len(stored) == 4  # two files, data + metadata each
    for f in stored:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_an_interrupted_upload_leaves_no_visible_file(client: Client, home: Path, tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(3 * MiB))

    class Interrupted(Exception):
        pass

    def interrupt(event: Progress) -> None:
        if event.done > MiB:
            raise Interrupted

    with pytest.raises(Interrupted):
        client.upload(path, purpose="assistants", progress=interrupt)
    root = home / "local"
    assert list((root / "files").iterdir()) == []
    assert list((root / "tmp").iterdir()) == []
    assert list(client.list_files()) == []


def test_an_interrupted_download_leaves_no_file(client: Client, tmp_path: Path) -> None:
    fo = upload_one(client, tmp_path, "big.bin", os.urandom(3 * MiB))
    out = tmp_path / "dl"
    out.mkdir()

    def interrupt(event: Progress) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        client.download(fo.id, out / "big.bin", progress=interrupt)
    assert list(out.iterdir()) == []


def test_download_into_a_folder_keeps_the_name_and_refuses_to_overwrite(client: Client, tmp_path: Path) -> None:
    fo = upload_one(client, tmp_path, "notes.txt", b"some notes\n")
    out = tmp_path / "dl"
    out.mkdir()
    assert client.download(fo.id, out) == out / "notes.txt"
    assert (out / "notes.txt").read_bytes() == b"some notes\n"
    with pytest.raises(InputError):
        client.download(fo.id, out)
    assert client.download(fo.id, out, overwrite=True) == out / "notes.txt"


@pytest.mark.parametrize("page_size", [1, 2, 3, 7, 100])
def test_listing_pages_return_each_file_exactly_once(client: Client, tmp_path: Path, page_size: int) -> None:
    ids = {upload_one(client, tmp_path, f"f{i}.txt", f"file {i}\n".encode()).id for i in range(7)}
    listed = [f.id for f in client.list_files(page_size=page_size)]
    assert sorted(listed) == sorted(ids)
    assert len(listed) == len(set(listed))


def test_listing_by_purpose(client: Client, tmp_path: Path, make_jsonl: Any) -> None:
    a = upload_one(client, tmp_path)
    b = client.upload(make_jsonl(), purpose="batch")
    assert [f.id for f in client.list_files(purpose="batch", page_size=1)] == [b.id]
    assert {f.id for f in client.list_files()} == {a.id, b.id}


def test_deleted_files_are_gone(client: Client, tmp_path: Path) -> None:
    fo = upload_one(client, tmp_path)
    assert client.delete(fo.id) is True
    with pytest.raises(FileNotFound):
        client.retrieve(fo.id)
    with pytest.raises(FileNotFound):
        client.delete(fo.id)
