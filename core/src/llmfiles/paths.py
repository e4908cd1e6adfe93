"""Where llmfiles keeps its data on this machine."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path


def default_home(environ: Mapping[str, str] | None = None) -> Path:
    """``$LLMFILES_HOME``, else the platform's user data folder followed by ``llmfiles``."""
    env = os.environ if environ is None else environ
    if env.get("LLMFILES_HOME"):
        return Path(env["LLMFILES_HOME"]).expanduser()
    if sys.platform == "win32":
        base = Path(env.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "llmfiles"


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
