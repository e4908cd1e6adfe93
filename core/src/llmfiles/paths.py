"""Where llmfiles keeps its data and looks for its config file on this machine (platformdirs' folders)."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path

APP = "llmfiles"
CONFIG_ENV = "LLMFILES_CONFIG"
CONFIG_NAME = "config.toml"


def default_home(environ: Mapping[str, str] | None = None) -> Path:
    """``$LLMFILES_HOME``, else the platform's user data folder followed by ``llmfiles`` (platformdirs:
    ``~/.local/share/llmfiles`` or ``$XDG_DATA_HOME/llmfiles`` on Linux, ``~/Library/Application Support/llmfiles``
    on macOS, ``%LOCALAPPDATA%\\llmfiles`` on Windows)."""
    env = os.environ if environ is None else environ
    if env.get("LLMFILES_HOME"):
        return Path(env["LLMFILES_HOME"]).expanduser()
    import platformdirs  # here: `import llmfiles` stays cheap

    return Path(platformdirs.user_data_dir(APP, appauthor=False))


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The config file: ``$LLMFILES_CONFIG``, else ``config.toml`` in the platform's user config folder
    (platformdirs: ``~/.config/llmfiles`` or ``$XDG_CONFIG_HOME/llmfiles`` on Linux,
    ``~/Library/Application Support/llmfiles`` on macOS, ``%APPDATA%\\llmfiles`` on Windows)."""
    env = os.environ if environ is None else environ
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    # platformdirs reads these from the process's environment: the answer is kept per their values (every call
    # looks the config file up, and asking platformdirs each time cost a tenth of a small file's upload)
    from llmfiles.environ import process_environ

    process = process_environ()
    return _user_config_file(tuple(process.get(name) for name in _PLATFORM_CONFIG_VARS))


_PLATFORM_CONFIG_VARS = ("XDG_CONFIG_HOME", "HOME", "APPDATA", "USERPROFILE")


@functools.lru_cache(maxsize=4)
def _user_config_file(_environment: tuple[str | None, ...]) -> Path:
    import platformdirs  # here: `import llmfiles` stays cheap

    return Path(platformdirs.user_config_dir(APP, appauthor=False, roaming=True)) / CONFIG_NAME


def private_dir(path: Path, *, fix_existing: bool = True) -> Path:
    """Create ``path`` readable by the owner only (and its missing parents too); return it.

    An existing ``path`` that others can read is made private when ``fix_existing`` (llmfiles' own folders), and
    left alone otherwise (a folder the user named, such as ``$LLMFILES_HOME``); existing parents are never changed.
    """
    missing = []
    parent = path
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            pass
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)  # raises the error that explains why it cannot be
    if fix_existing or missing:
        try:
            if path.stat().st_mode & 0o077:
                path.chmod(0o700)
        except OSError:
            pass
    return path
