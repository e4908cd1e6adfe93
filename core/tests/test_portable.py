"""Where llmfiles runs: without ``os.pread`` (Windows has none) every upload still reads its file, by seek and read;
the data and config folders are the platform's (platformdirs), not hand-written platform branches."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import llmfiles.sources
from llmfiles.paths import config_path, default_home
from llmfiles.sources import PathSource

HERE = Path(__file__).resolve().parent
#: the tests of uploads: one request, parts in parallel, the one read, the local store, the public API
UPLOAD_TESTS = ("test_api.py", "test_parts.py", "test_one_read.py", "test_local.py", "test_portable.py")


def test_the_upload_tests_pass_with_os_pread_hidden() -> None:
    env = {**os.environ, "LLMFILES_TESTS_HIDE_PREAD": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "not pread_hidden"]
        + [str(HERE / name) for name in UPLOAD_TESTS],
        cwd=HERE.parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    passed = int(last.split(" passed")[0].split()[-1])
    assert passed > 100 and "skipped" not in last, last


def test_pread_is_hidden_when_the_tests_ask() -> None:
    """The run above is what it says: there, ``os.pread`` is gone and the sources know it."""
    if os.environ.get("LLMFILES_TESTS_HIDE_PREAD") != "1":
        assert llmfiles.sources._PREAD is not None or not hasattr(os, "pread")
        return
    assert not hasattr(os, "pread") and llmfiles.sources._PREAD is None
    assert not hasattr(os, "preadv") and llmfiles.sources._PREADV is None


def test_ranges_read_by_seek_and_read_from_many_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llmfiles.sources, "_PREAD", None)
    data = os.urandom(3 * 1024 * 1024 + 11)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    source = PathSource(str(path), "blob.bin")
    got: dict[int, bytes] = {}
    size = 256 * 1024

    def read(i: int) -> None:
        got[i] = b"".join(source.read_range(i * size, min(size, len(data) - i * size), 64 * 1024))

    threads = [threading.Thread(target=read, args=(i,)) for i in range(-(-len(data) // size))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    source.close()
    assert b"".join(got[i] for i in sorted(got)) == data


def test_the_data_and_config_folders_are_platformdirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import platformdirs

    monkeypatch.delenv("LLMFILES_HOME", raising=False)
    monkeypatch.delenv("LLMFILES_CONFIG", raising=False)
    assert default_home() == Path(platformdirs.user_data_dir("llmfiles", appauthor=False))
    assert (
        config_path() == Path(platformdirs.user_config_dir("llmfiles", appauthor=False, roaming=True)) / "config.toml"
    )
    if sys.platform.startswith("linux"):  # the XDG variables move them, as on every Linux program
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "conf"))
        assert default_home() == tmp_path / "data" / "llmfiles"
        assert config_path() == tmp_path / "conf" / "llmfiles" / "config.toml"
    assert default_home({"LLMFILES_HOME": str(tmp_path / "h")}) == tmp_path / "h"
    assert config_path({"LLMFILES_CONFIG": str(tmp_path / "c.toml")}) == tmp_path / "c.toml"


def test_no_hand_written_platform_branches_for_folders() -> None:
    text = (HERE.parents[1] / "core" / "src" / "llmfiles" / "paths.py").read_text(encoding="utf-8")
    assert "import platformdirs" in text and "sys.platform" not in text and 'env.get("LOCALAPPDATA' not in text


def test_the_state_database_opens_without_os_fchmod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows has no ``os.fchmod`` before Python 3.13: an existing state database that POSIX modes call readable
    by others (as every Windows file looks) is opened all the same."""
    from llmfiles.state import StateDB

    path = tmp_path / "state.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    monkeypatch.delattr(os, "fchmod", raising=False)
    db = StateDB(path)
    db._connect()
    assert db.sessions() == []


def test_a_secret_in_the_config_file_is_not_refused_for_its_mode_on_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POSIX modes say nothing about who can read a file on Windows (its folder's ACL does): there the config file
    is not refused for them."""
    from llmfiles import config

    path = tmp_path / "config.toml"
    path.write_text('[default.openai]\napi_key = "sk-x"\n')
    path.chmod(0o644)
    assert config._private(os.stat(path)) is (sys.platform == "win32")
    monkeypatch.setattr(config.sys, "platform", "win32")
    assert config._private(os.stat(path)) is True


@pytest.mark.parametrize("preadv", [True, False], ids=["preadv", "no-preadv"])
def test_a_range_read_into_one_reused_buffer_gives_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, preadv: bool
) -> None:
    """The raw sending path reads into one buffer again and again: the same bytes as new blocks, a file object's
    own start honoured, and a file that shrank is reported as changed."""
    from llmfiles.errors import FileChanged
    from llmfiles.sources import FileObjSource

    if not preadv:
        monkeypatch.setattr(llmfiles.sources, "_PREADV", None)
    data = os.urandom(1024 * 1024 + 7)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    source = PathSource(str(path), "blob.bin")
    buffer = bytearray(64 * 1024)
    views = list(source.read_range_into(5, len(data) - 9, buffer))
    if preadv and llmfiles.sources._PREAD is not None:
        assert all(isinstance(v, memoryview) and v.obj is buffer for v in views)  # the same buffer, each time
    got = b"".join(bytes(b) for b in source.read_range_into(5, len(data) - 9, buffer))
    assert got == data[5:-4]
    with open(path, "rb") as fh:
        fh.seek(100)
        inner = FileObjSource(fh, "blob.bin", 100, 1000)
        assert b"".join(bytes(b) for b in inner.read_range_into(10, 500, bytearray(64))) == data[110:610]
    with open(path, "r+b") as fh:
        fh.truncate(1000)
    with pytest.raises(FileChanged, match="shrank"):
        for _ in source.read_range_into(0, len(data), buffer):
            pass
    source.close()
