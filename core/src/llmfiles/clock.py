"""Time as a dependency: the transport, the parts engine and polling read the clock and sleep through a
:class:`Clock`, so tests can give them a fake one instead of patching :func:`time.sleep` for every thread."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Where llmfiles reads the time and waits."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for timeouts and deadlines)."""
        ...

    def time(self) -> float:
        """Seconds since the epoch (for timestamps compared with a provider's)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


class FakeClock:
    """A clock for tests: :meth:`sleep` moves it forward at once and records the wait; thread-safe."""

    def __init__(self, start: float = 1_000_000.0, wall: float = 1_800_000_000.0) -> None:
        self._now = start
        self._wall = wall - start
        self._lock = threading.Lock()
        #: every wait asked for, in order
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def time(self) -> float:
        with self._lock:
            return self._now + self._wall

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
