"""``upload(..., split=True)``: cut a file to the provider's limits, then upload every shard, in parallel.

The file is converted first when ``convert`` asks for it (limits apply to what is sent), then cut by
:mod:`llmfiles.splitting` into a private folder of llmfiles' data folder named after the content and the limits, so that
running the same upload again finds the same shard files: the shards already uploaded are reused (``if_exists``
defaults to ``"reuse"`` here) and a large shard whose upload was interrupted resumes where it stopped.  The folder is
removed once every shard is uploaded and kept while one is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from attrs import evolve, frozen

from llmfiles.errors import InputError, SplitUploadFailed
from llmfiles.models import FileLimits, FileObject, Progress
from llmfiles.splitting import Shard, effective_limits, split_file

ProgressCallback = Callable[[Progress], None]
#: shards uploaded at the same time (each one may send parts in parallel too)
SHARD_CONCURRENCY = 4


@frozen(kw_only=True)
class SplitUpload:
    """What ``upload(..., split=True)`` returns: the shards' file objects in order, with the shards they hold.

    ``shards[i]`` is the byte range and the lines of the input that ``files[i]`` holds (its ``path`` was a
    temporary file, removed after the upload).
    """

    provider: str
    purpose: str
    source: str
    limits: FileLimits
    shards: tuple[Shard, ...]
    files: tuple[FileObject, ...]


def source_path(file: Any, what: str) -> Path:
    """``file`` as a path; :class:`InputError` for an open file or a stream (``what`` names the feature)."""
    if not isinstance(file, (str, os.PathLike)):
        raise InputError(f"{what} reads the file by its path (a str or a pathlib.Path), not an open file or a stream")
    path = Path(file)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    return path


def shard_folder(root: Path, path: Path, limits: FileLimits, name: str) -> Path:
    """The folder of the shards of ``path`` cut to ``limits``: the same for the same content, limits and name."""
    with path.open("rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    key = json.dumps([digest, limits.max_bytes, limits.max_records, limits.min_records, name])
    return root / hashlib.sha256(key.encode()).hexdigest()[:32]


def cut(path: Path, folder: Path, limits: FileLimits, name: str) -> tuple[Shard, ...]:
    """The shards in ``folder``: those an earlier run wrote (unchanged files, so their uploads resume), else new."""
    marker = folder / "shards.json"
    if marker.exists():
        try:
            rows = json.loads(marker.read_text(encoding="utf-8"))
            shards = tuple(Shard(**{**row, "path": folder / row["path"]}) for row in rows)
            if all(s.path.is_file() and s.path.stat().st_size == s.bytes for s in shards):
                return shards
        except (OSError, ValueError, TypeError, KeyError):
            pass
    shards = split_file(path, folder, limits, force=True, name=name)
    rows = [
        {
            "path": s.path.name,
            **{k: getattr(s, k) for k in ("index", "offset", "bytes", "records", "first_line", "lines")},
        }
        for s in shards
    ]
    temp = folder / "shards.json.tmp"
    temp.write_text(json.dumps(rows), encoding="utf-8")
    os.replace(temp, marker)
    return shards


class _Totals:
    """One progress for the whole set: the bytes of every shard together."""

    def __init__(self, progress: ProgressCallback | None, name: str, total: int) -> None:
        self.progress, self.name, self.total = progress, name, total
        self.done: dict[int, tuple[int, int, int, int]] = {}
        self.lock = threading.Lock()

    def for_shard(self, index: int) -> ProgressCallback | None:
        if self.progress is None:
            return None

        def report(event: Progress) -> None:
            if event.operation != "upload":
                return
            with self.lock:
                self.done[index] = (event.done, event.resumed, event.parts, event.parts_resumed)
                done, resumed, parts, parts_resumed = (sum(v) for v in zip(*self.done.values(), strict=True))
            assert self.progress is not None
            self.progress(
                evolve(
                    event,
                    filename=self.name,
                    done=done,
                    total=self.total,
                    resumed=resumed,
                    parts=parts,
                    parts_resumed=parts_resumed,
                )
            )

        return report


def upload_shards(
    upload: Callable[..., FileObject],
    shards: tuple[Shard, ...],
    *,
    display: str,
    progress: ProgressCallback | None,
    concurrency: int,
    settings: Mapping[str, Any],
) -> tuple[FileObject, ...]:
    """Upload every shard with ``upload`` (a client's upload of one file), ``concurrency`` at a time; the file
    objects in order, or :class:`SplitUploadFailed` naming the shards that failed once every other one is done."""
    totals = _Totals(progress, display, sum(s.bytes for s in shards))
    pool = ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(shards))), thread_name_prefix="llmfiles-shard")
    futures: dict[int, Future[FileObject]] = {}
    try:
        for s in shards:
            futures[s.index] = pool.submit(
                upload, s.path, filename=s.path.name, progress=totals.for_shard(s.index), **settings
            )
        uploaded: dict[int, FileObject] = {}
        failures: dict[int, BaseException] = {}
        for index, future in futures.items():
            error = future.exception()
            if error is None:
                uploaded[index] = future.result()
            elif isinstance(error, Exception):
                failures[index] = error
            else:
                raise error
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if failures:
        raise _failed(display, shards, uploaded, failures)
    return tuple(uploaded[s.index] for s in shards)


def _failed(
    display: str, shards: tuple[Shard, ...], uploaded: dict[int, FileObject], failures: dict[int, BaseException]
) -> SplitUploadFailed:
    by_index = {s.index: s for s in shards}
    lines = []
    for index, error in sorted(failures.items()):
        s = by_index[index]
        last = s.first_line + s.lines - 1
        first_line = str(error).split("\n", 1)[0]
        lines.append(
            f"  shard {index} ({s.path.name}, lines {s.first_line}-{last}): {type(error).__name__}: {first_line}"
        )
    kept = ", ".join(f"{i}: {fo.id}" for i, fo in sorted(uploaded.items())) or "none"
    message = (
        f"{display}: {len(failures)} of {len(shards)} shards failed to upload:\n"
        + "\n".join(lines)
        + f"\nuploaded and kept: {kept}\nrun the same upload again: the uploaded shards are reused and the others "
        "are sent (or resumed)"
    )
    return SplitUploadFailed(message, uploaded=uploaded, failures=failures)


def limits_for(declared: FileLimits | None, split: Any) -> FileLimits:
    """The limits ``split=`` asks for: ``True`` the provider's, a :class:`FileLimits` those numbers over them."""
    if isinstance(split, FileLimits):
        return effective_limits(
            declared, max_bytes=split.max_bytes, max_records=split.max_records, min_records=split.min_records
        )
    return effective_limits(declared)


def remove_folder(folder: Path) -> None:
    """The shards' folder, once every shard is uploaded."""
    shutil.rmtree(folder, ignore_errors=True)
