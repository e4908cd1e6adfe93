"""Digests of a file read in blocks, in order: the whole-file digests a call needs, and a CRC-32 of each part.

Used by the upload pipeline in this process and by the checks' worker process when it reads the file itself, so the
two compute the same values the same way.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import zlib
from collections.abc import Sequence

from attrs import frozen


class BlockHasher:
    """Digests (``hashlib`` names) of the blocks, in order; on a helper thread when ``threaded`` (through a bounded
    queue: hashlib releases the interpreter lock on big buffers, so hashing runs beside the caller's work)."""

    def __init__(self, names: Sequence[str], threaded: bool) -> None:
        self.hashers = {name: hashlib.new(name) for name in names}
        self._queue: queue.Queue[bytes | memoryview | None] | None = None
        self._thread: threading.Thread | None = None
        if threaded and self.hashers:
            self._queue = queue.Queue(maxsize=8)
            self._thread = threading.Thread(target=self._run, name="llmfiles-digests", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        assert self._queue is not None
        hashers = tuple(self.hashers.values())
        while (block := self._queue.get()) is not None:
            for h in hashers:
                h.update(block)

    def update(self, block: bytes | memoryview) -> None:
        """Hash the next block."""
        if self._queue is not None:
            self._queue.put(block)
        else:
            for h in self.hashers.values():
                h.update(block)

    def result(self) -> dict[str, str]:
        """The hex digests of everything hashed (the helper thread, if any, is stopped)."""
        if self._queue is not None and self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._queue = None
        return {name: h.hexdigest() for name, h in self.hashers.items()}


class PartCrcs:
    """The CRC-32 of each ``part_size`` range of the file, from blocks fed in order at their offsets."""

    def __init__(self, part_size: int) -> None:
        self.part_size = part_size
        self.crcs: dict[int, int] = {}

    def update(self, offset: int, block: bytes | memoryview) -> None:
        """The bytes ``[offset, offset + len(block))``."""
        size = self.part_size
        pos = 0
        while pos < len(block):
            index = (offset + pos) // size
            take = min(len(block) - pos, (index + 1) * size - (offset + pos))
            self.crcs[index] = zlib.crc32(block[pos : pos + take], self.crcs.get(index, 0))
            pos += take


@frozen
class RemoteInspection:
    """What the checks' worker process found when it read the file itself: how many bytes it read, the whole-file
    digests it was asked for, and the CRC-32 of each part."""

    read: int
    digests: dict[str, str]
    part_crcs: dict[int, int]
