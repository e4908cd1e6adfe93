"""The file being uploaded: what the caller passed (a path, a ``Path``, an open binary file) as a :class:`Source`
that is opened once and read in ranges, never whole, with an identity that tells whether it changed meanwhile."""

from __future__ import annotations

import io
import os
import stat
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any

from attrs import frozen

from llmfiles.errors import BadFile, FileChanged


@frozen(kw_only=True)
class Identity:
    """What tells whether a file is still the one that was opened: device and inode of the path, and the size,
    modification and change times (ns) of the open file.  ``ctime`` changes with every write and cannot be set
    back by the user, so an edit that restores the old ``mtime`` is still seen."""

    dev: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> Identity:
        return cls(dev=st.st_dev, inode=st.st_ino, size=st.st_size, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns)

    def change_from(self, before: Identity) -> str | None:
        """Why this is not the file ``before`` describes, or ``None`` when it is."""
        if (self.dev, self.inode) != (before.dev, before.inode):
            return "it was replaced by another file"
        if self.size != before.size:
            return f"its size changed from {before.size:,} to {self.size:,} bytes"
        if (self.mtime_ns, self.ctime_ns) != (before.mtime_ns, before.ctime_ns):
            return "it was modified"
        return None


class Source:
    """The file being uploaded, read in ranges from one open descriptor; ``read_range`` may be called from several
    threads at once.  ``path`` is ``None`` for a file object the caller opened."""

    name: str
    size: int
    display: str
    path: str | None = None
    #: the file's identity when it was opened (``None``: it cannot be known, as for an in-memory file)
    identity: Identity | None = None

    def read_range(self, offset: int, length: int, blocksize: int) -> Iterator[bytes]:
        """The bytes ``[offset, offset + length)``, in blocks; :class:`FileChanged` when the file ends before."""
        end = offset + length
        pos = offset
        while pos < end:
            chunk = self.pread(min(blocksize, end - pos), pos)
            if not chunk:
                raise self.shrank(pos)
            pos += len(chunk)
            yield chunk

    def read_range_into(self, offset: int, length: int, buffer: bytearray) -> Iterator[bytes | memoryview]:
        """The bytes ``[offset, offset + length)`` like :meth:`read_range`, read into ``buffer`` again and again:
        each view holds its bytes only until the next one is asked for, so this is for bytes that are sent and not
        kept.  A buffer that stays in the CPU's cache made a raw upload on loopback about a tenth faster than a new
        block for every read; without ``preadv`` it falls back to :meth:`read_range`."""
        fd = self.descriptor()
        if fd is None or _PREADV is None:
            yield from self.read_range(offset, length, len(buffer))
            return
        handle, start = fd
        view = memoryview(buffer)
        pos, end = offset, offset + length
        while pos < end:
            n = _PREADV(handle, [view[: min(len(view), end - pos)]], start + pos)
            if not n:
                raise self.shrank(pos)
            pos += n
            yield view[:n]

    def shrank(self, pos: int) -> FileChanged:
        """The error for a file that ended at byte ``pos``, before its size."""
        return FileChanged(
            f"{self.display} shrank while it was being read (it ended at byte {pos:,} of {self.size:,}); "
            "nothing was committed: upload it again once nothing writes to it"
        )

    def pread(self, n: int, offset: int) -> bytes:
        raise NotImplementedError

    def descriptor(self) -> tuple[int, int] | None:
        """``(descriptor, offset of the file's first byte)`` when another process may read the file with ``pread``
        on an inherited copy of the descriptor (the same open file, so a file replaced by a rename is not read);
        ``None`` when it cannot."""
        return None

    def current_identity(self) -> Identity | None:
        """The identity now (``None`` when it cannot be known)."""
        return None

    def changed(self) -> str | None:
        """Why the file is not the one that was opened any more, or ``None`` when it still is."""
        if self.identity is None:
            return None
        now = self.current_identity()
        if now is None:
            return "it can no longer be found"
        return now.change_from(self.identity)

    def check_unchanged(self) -> None:
        """Raise :class:`FileChanged` when the file changed since it was opened."""
        why = self.changed()
        if why is not None:
            raise FileChanged(
                f"{self.display} changed while it was being uploaded ({why}); nothing was committed at the provider. "
                "Upload it again once nothing writes to it"
            )

    def close(self) -> None:
        """Close the descriptor (a file object the caller passed stays open)."""


_PREAD: Callable[[int, int, int], bytes] | None = getattr(os, "pread", None)
_PREADV: Callable[[int, list[memoryview], int], int] | None = getattr(os, "preadv", None)


class PathSource(Source):
    """A file on disk, opened once: every range is read from the same descriptor, so a file replaced by a rename
    meanwhile is not mixed into the upload (and is reported as changed)."""

    path: str

    def __init__(self, path: str, name: str, size: int | None = None) -> None:
        self.path = path
        self.name = name
        self.display = path
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self._lock = threading.Lock()
        st = os.fstat(self._fd)
        self.identity = Identity.of(os.stat(path)) if st.st_ino == 0 else Identity.of(st)
        self.size = st.st_size if size is None else size

    def descriptor(self) -> tuple[int, int] | None:
        return (self._fd, 0) if _PREAD is not None and self._fd >= 0 else None

    def pread(self, n: int, offset: int) -> bytes:
        if _PREAD is not None:
            return _PREAD(self._fd, n, offset)
        with self._lock:  # no pread (Windows): seek and read under a lock
            os.lseek(self._fd, offset, os.SEEK_SET)
            return os.read(self._fd, n)

    def current_identity(self) -> Identity | None:
        try:
            st = os.fstat(self._fd)
            path_st = os.stat(self.path)
        except OSError:
            return None
        if (path_st.st_dev, path_st.st_ino) != (st.st_dev, st.st_ino):
            return Identity.of(path_st)  # the path names another file now
        return Identity.of(st)

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass

    def __del__(self) -> None:
        self.close()


class FileObjSource(Source):
    """An open, seekable binary file object.  Reads go through its descriptor when it has one, else seek + read
    under a lock."""

    def __init__(self, fobj: IO[bytes], name: str, start: int, size: int) -> None:
        self.fobj = fobj
        self.name = name
        self.start = start
        self.size = size
        self.display = f"<{name}>"
        self._lock = threading.Lock()
        self._fd: int | None = None
        fileno: Callable[[], int] | None = getattr(fobj, "fileno", None)
        if fileno is not None:
            try:
                self._fd = fileno()
                self.identity = Identity.of(os.fstat(self._fd))
            except (OSError, ValueError, io.UnsupportedOperation):
                self._fd = None

    def descriptor(self) -> tuple[int, int] | None:
        return (self._fd, self.start) if self._fd is not None and _PREAD is not None else None

    def pread(self, n: int, offset: int) -> bytes:
        if self._fd is not None and _PREAD is not None:
            return _PREAD(self._fd, n, self.start + offset)
        with self._lock:
            self.fobj.seek(self.start + offset)
            return self.fobj.read(n)

    def current_identity(self) -> Identity | None:
        if self._fd is None:
            return None
        try:
            return Identity.of(os.fstat(self._fd))
        except OSError:
            return None


def open_source(file: Any, *, filename: str | None = None, default_name: str = "upload") -> Source:
    """Check that ``file`` can be uploaded, open it and describe it; nothing is read yet.

    Raises :class:`~llmfiles.errors.BadFile` for a missing file, a directory, an empty file, an unreadable file,
    a text-mode or non-seekable file object.
    """
    if isinstance(file, (str, os.PathLike)):
        return _open_path(file, filename, default_name)
    if hasattr(file, "read"):
        return _open_fileobj(file, filename, default_name)
    raise BadFile(f"cannot upload a {type(file).__name__}; pass a path, a pathlib.Path or a file opened with 'rb'")


def _open_path(file: str | os.PathLike[str], filename: str | None, default_name: str) -> Source:
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
        raise BadFile(f"{path} is not a regular file (a pipe or device cannot be uploaded); copy it to a file first")
    if st.st_size == 0:
        raise BadFile(f"{path} is empty; providers refuse empty files")
    try:
        source = PathSource(path, safe_name(filename or os.path.basename(path), default_name))
    except PermissionError:
        raise BadFile(f"{path}: permission denied") from None
    except OSError as exc:
        raise BadFile(f"{path}: cannot be read ({exc.strerror})") from None
    if source.size == 0:
        source.close()
        raise BadFile(f"{path} is empty; providers refuse empty files")
    return source


def _open_fileobj(file: Any, filename: str | None, default_name: str) -> Source:
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
    return FileObjSource(file, safe_name(filename or base, default_name), start, size)


def safe_name(name: str, default: str) -> str:
    """The last part of ``name`` without control characters (``default`` when nothing is left)."""
    name = os.path.basename(name.replace("\\", "/")).strip()
    name = "".join(ch for ch in name if ch >= " " and ch != "\x7f")
    return name if name not in {"", ".", ".."} else default
