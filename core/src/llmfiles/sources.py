"""Turning what the caller passed (a path, a ``Path``, an open binary file) into a :class:`Source`."""

from __future__ import annotations

import io
import os
import stat
from typing import Any

from llmfiles.errors import BadFile
from llmfiles.models import FileObjSource, PathSource, Source


def open_source(file: Any, *, filename: str | None = None, default_name: str = "upload") -> Source:
    """Check that ``file`` can be uploaded and describe it; nothing is read yet.

    Raises :class:`~llmfiles.errors.BadFile` for a missing file, a directory, an empty file, an unreadable file,
    a text-mode or non-seekable file object.
    """
    if isinstance(file, (str, os.PathLike)):
        path = os.fspath(file)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise BadFile(f"{path}: no such file") from None
        except PermissionError:
            raise BadFile(f"{path}: permission denied") from None
        except OSError as exc:
            raise BadFile(f"{path}: cannot be read ({exc.strerror})") from None
        if stat.S_ISDIR(st.st_mode):
            raise BadFile(f"{path} is a directory; pass the path of a file")
        if not stat.S_ISREG(st.st_mode):
            raise BadFile(
                f"{path} is not a regular file (a pipe or device cannot be uploaded); copy it to a file first"
            )
        if st.st_size == 0:
            raise BadFile(f"{path} is empty; providers refuse empty files")
        if not os.access(path, os.R_OK):
            raise BadFile(f"{path}: permission denied")
        return PathSource(path, _safe_name(filename or os.path.basename(path), default_name), st.st_size)
    if hasattr(file, "read"):
        if isinstance(file, io.TextIOBase) or "b" not in getattr(file, "mode", "b"):
            raise BadFile("the file object is open in text mode; open it in binary mode: open(path, 'rb')")
        seekable = getattr(file, "seekable", None)
        if seekable is None or not seekable():
            raise BadFile(
                "the file object is not seekable, so its size cannot be known and a retry could not resend it; "
                "write it to a file and pass the path"
            )
        try:
            start = file.tell()
            end = file.seek(0, os.SEEK_END)
            file.seek(start)
        except (OSError, ValueError) as exc:
            raise BadFile(f"the file object cannot be read: {exc}") from None
        size = end - start
        if size <= 0:
            raise BadFile("the file object has no bytes left to read (is it at its end?); providers refuse empty files")
        raw_name = getattr(file, "name", None)
        base = os.path.basename(raw_name) if isinstance(raw_name, str) else ""
        return FileObjSource(file, _safe_name(filename or base, default_name), start, size)
    raise BadFile(f"cannot upload a {type(file).__name__}; pass a path, a pathlib.Path or a file opened with 'rb'")


def _safe_name(name: str, default: str) -> str:
    name = os.path.basename(name.replace("\\", "/")).strip()
    name = "".join(ch for ch in name if ch >= " " and ch != "\x7f")
    return name if name not in {"", ".", ".."} else default
