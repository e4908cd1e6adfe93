"""Cut a JSONL file into shards that each fit a provider's documented limits (:class:`~llmfiles.models.FileLimits`).

Two reads of the file, constant memory: the first plans the shards (each line's length and whether it is a record,
never the line itself; a line is read in blocks, so even a huge one takes no more memory than a block), the second
copies each shard's byte range into a temporary file beside its target; only when every shard is written are they
renamed into place, so an error leaves nothing half-written.  A shard is a slice of the input: lines are never cut,
nothing is added or removed, and the shards put back together in order are the input byte for byte (a UTF-8 BOM
stays at the start of the first shard, the only place it was; a last line without a newline ends the last shard).

A record is a line that is not blank; blank lines count toward the bytes, not the records.  A file whose last shard
would hold fewer records than ``min_records`` gets records moved into it from the shard before (the minimum of a
job at Amazon Bedrock); a file with fewer records than that in all is refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from attrs import evolve, frozen

from llmfiles.errors import CannotSplit, FileChanged, InputError
from llmfiles.models import FileLimits, ProviderInfo

#: how much of a line is read at a time (the memory a line takes, however long it is)
BLOCK = 1 << 20


@frozen(kw_only=True)
class Shard:
    """One shard: where it was written, which byte range and lines of the input it holds."""

    path: Path
    #: 1 for the first shard
    index: int
    #: the byte offset in the input where it starts
    offset: int
    bytes: int
    records: int
    #: the line number (1-based) of its first line in the input
    first_line: int
    lines: int


@frozen(kw_only=True)
class SplitResult:
    """What :func:`llmfiles.split` returns: the shards in order and the limits they were cut to."""

    source: str
    limits: FileLimits
    shards: tuple[Shard, ...]

    @property
    def paths(self) -> list[Path]:
        """The shards' paths, in order."""
        return [s.path for s in self.shards]


@frozen(kw_only=True)
class _Plan:
    offset: int
    bytes: int
    records: int
    first_line: int
    lines: int


def provider_limits(info: ProviderInfo, purpose: str) -> FileLimits:
    """What one file of ``purpose`` may hold at the provider: its declared ``file_limits``, with the byte limit no
    larger than the largest file it accepts at all (``max_file_size``).  :class:`InputError` for a purpose whose
    files are not JSONL (there are no lines to cut them at)."""
    if purpose not in info.jsonl_purposes:
        raise InputError(
            f"{info.name} {purpose!r} files are not JSONL, so they are not split; split cuts the JSONL files of "
            f"{', '.join(info.jsonl_purposes) or 'no purpose of this provider'}"
        )
    declared = info.file_limits.get(purpose) or FileLimits()
    cap = info.max_file_size
    if cap and (declared.max_bytes is None or declared.max_bytes > cap):
        return evolve(declared, max_bytes=cap)
    return declared


def effective_limits(
    declared: FileLimits | None,
    *,
    max_bytes: int | None = None,
    max_records: int | None = None,
    min_records: int | None = None,
) -> FileLimits:
    """The provider's declared limits with any of the three numbers replaced by the caller's."""
    limits = declared or FileLimits()
    changes: dict[str, Any] = {}
    for name, value in (("max_bytes", max_bytes), ("max_records", max_records), ("min_records", min_records)):
        if value is not None:
            changes[name] = value
    return evolve(limits, **changes) if changes else limits


def shard_names(name: str, count: int) -> list[str]:
    """``data.jsonl`` cut in 4: ``data.001-of-004.jsonl`` ... (names that sort in order)."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    width = max(3, len(str(count)))
    suffix = f".{ext}" if ext else ""
    return [f"{stem}.{i:0{width}d}-of-{count:0{width}d}{suffix}" for i in range(1, count + 1)]


def _lines(fh: IO[bytes]) -> Iterator[tuple[int, bool]]:
    """(length in bytes, whether it is a record) of each line of ``fh``, reading at most :data:`BLOCK` at a time."""
    length, blank = 0, True
    while True:
        block = fh.readline(BLOCK)
        if not block:
            if length:
                yield length, not blank
            return
        length += len(block)
        blank = blank and not block.strip()
        if block.endswith(b"\n"):
            yield length, not blank
            length, blank = 0, True


def plan(fh: IO[bytes], limits: FileLimits, display: str) -> list[_Plan]:
    """The shards' byte ranges: as many lines as fit in each, in order."""
    max_bytes = limits.max_bytes if limits.max_bytes is not None else 1 << 62
    max_records = limits.max_records if limits.max_records is not None else 1 << 62
    shards: list[_Plan] = []
    # the shard being filled, as plain numbers (a file may have millions of lines)
    offset = size = records = lines = 0
    first = 1
    for line_no, (length, record) in enumerate(_lines(fh), 1):
        if length > max_bytes:
            raise CannotSplit(
                f"{display}: line {line_no} has {length:,} bytes, more than the {max_bytes:,} a whole file may "
                "have: no split can make it fit (shorten that request, or send it another way)"
            )
        if lines and (size + length > max_bytes or (record and records + 1 > max_records)):
            shards.append(_Plan(offset=offset, bytes=size, records=records, first_line=first, lines=lines))
            offset, size, records, lines, first = offset + size, 0, 0, 0, line_no
        size += length
        records += record
        lines += 1
    if not lines:
        raise CannotSplit(f"{display} is empty: there is nothing to split")
    shards.append(_Plan(offset=offset, bytes=size, records=records, first_line=first, lines=lines))
    return shards


def rebalance(fh: IO[bytes], shards: list[_Plan], limits: FileLimits, display: str) -> list[_Plan]:
    """``shards`` with enough records moved from the next-to-last shard into the last one that every shard holds
    at least ``limits.min_records``; :class:`CannotSplit` when the file or the shards cannot."""
    least = limits.min_records
    if least is None:
        return shards
    total = sum(s.records for s in shards)
    if total < least:
        raise CannotSplit(
            f"{display} has {total:,} records; a job takes at least {least:,}"
            + (f" ({limits.docs})" if limits.docs else "")
            + ": add records, or send it with other files in one job"
        )
    last = shards[-1]
    if len(shards) > 1 and last.records < least:
        shards = _fill_last(fh, shards, limits, display)
    short = [i for i, s in enumerate(shards, 1) if s.records < least]
    if short:
        raise CannotSplit(
            f"{display}: shard {short[0]} would hold {shards[short[0] - 1].records:,} records, fewer than the "
            f"{least:,} a job needs (its records are long: the byte limit fills it first)"
        )
    return shards


def _fill_last(fh: IO[bytes], shards: list[_Plan], limits: FileLimits, display: str) -> list[_Plan]:
    """Records moved from the next-to-last shard into the last, so that it holds ``limits.min_records``."""
    least = limits.min_records or 0
    last = shards[-1]
    prev = shards[-2]
    need = least - last.records
    if prev.records - need < least:
        raise CannotSplit(
            f"{display}: the last shard would hold {last.records:,} records and the one before it too few to give "
            f"it the {least:,} a job needs; lower max_bytes/max_records leave too little room"
        )
    moved_bytes, moved_lines = _tail(fh, prev, need)
    if limits.max_bytes is not None and last.bytes + moved_bytes > limits.max_bytes:
        raise CannotSplit(
            f"{display}: moving {need:,} records into the last shard to reach the {least:,} a job needs would make "
            f"it larger than {limits.max_bytes:,} bytes"
        )
    prev2 = evolve(prev, bytes=prev.bytes - moved_bytes, records=prev.records - need, lines=prev.lines - moved_lines)
    last2 = evolve(
        last,
        offset=last.offset - moved_bytes,
        bytes=last.bytes + moved_bytes,
        records=least,
        first_line=last.first_line - moved_lines,
        lines=last.lines + moved_lines,
    )
    return [*shards[:-2], prev2, last2]


def _tail(fh: IO[bytes], shard: _Plan, records: int) -> tuple[int, int]:
    """(bytes, lines) of the shortest tail of ``shard`` that starts with a record and holds ``records`` records."""
    fh.seek(shard.offset)
    lengths: list[tuple[int, bool]] = []
    # one shard's line lengths: bounded by the shard, not the file (two ints a line)
    for length, record in _lines(fh):
        lengths.append((length, record))
        if len(lengths) == shard.lines:
            break
    seen = size = 0
    for count, (length, record) in enumerate(reversed(lengths), 1):
        size += length
        seen += record
        if record and seen == records:
            return size, count
    raise AssertionError("a shard holds fewer records than planned")  # pragma: no cover


def _copy(fh: IO[bytes], out: IO[bytes], offset: int, length: int) -> None:
    fh.seek(offset)
    left = length
    while left:
        block = fh.read(min(BLOCK, left))
        if not block:
            raise FileChanged("the file got shorter while it was split")
        out.write(block)
        left -= len(block)


def _identity(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns, st.st_ino


def split_file(
    file: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    limits: FileLimits,
    *,
    force: bool = False,
    name: str | None = None,
) -> tuple[Shard, ...]:
    """Cut ``file`` into shards in ``output_dir`` (made if missing) that fit ``limits``; return them in order.

    Existing files of the same names are refused unless ``force``.  ``name`` is the name the shards' names are made
    from (default: the file's)."""
    if not isinstance(file, (str, os.PathLike)):
        raise InputError("split reads a file by its path (a str or a pathlib.Path), not an open file or a stream")
    path = Path(file)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    out = Path(output_dir)
    before = _identity(path)
    with path.open("rb") as fh:
        plans = rebalance(fh, plan(fh, limits, str(path)), limits, str(path))
        targets = [out / n for n in shard_names(name or path.name, len(plans))]
        taken = [str(t) for t in targets if t.exists()]
        if taken and not force:
            raise InputError(
                f"{len(taken)} of the shards already exist ({', '.join(taken[:3])}{' ...' if len(taken) > 3 else ''}): "
                "remove them, pick another output folder, or pass force (--force) to replace them"
            )
        out.mkdir(parents=True, exist_ok=True)
        temps = _write(fh, plans, targets)
    try:
        if _identity(path) != before:
            raise FileChanged(f"{path} changed while it was split: run the split again")
        for temp, target in zip(temps, targets, strict=True):
            os.replace(temp, target)
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)
    return tuple(
        Shard(
            path=t, index=i, offset=p.offset, bytes=p.bytes, records=p.records, first_line=p.first_line, lines=p.lines
        )
        for i, (t, p) in enumerate(zip(targets, plans, strict=True), 1)
    )


def _write(fh: IO[bytes], plans: list[_Plan], targets: list[Path]) -> list[Path]:
    """Each shard's bytes in a temporary file beside its target (all removed again on any error)."""
    import tempfile

    temps: list[Path] = []
    try:
        for p, target in zip(plans, targets, strict=True):
            fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            temps.append(Path(name))
            with os.fdopen(fd, "wb") as out:
                _copy(fh, out, p.offset, p.bytes)
                out.flush()
                os.fsync(out.fileno())
    except BaseException:
        for temp in temps:
            temp.unlink(missing_ok=True)
        raise
    return temps
