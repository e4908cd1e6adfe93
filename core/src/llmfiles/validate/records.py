"""The interface provider plugins implement to check JSONL records (see ``llmfiles_record_checker``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from llmfiles.models import Problem


@runtime_checkable
class RecordChecker(Protocol):
    """Checks the records of one file, in order.  A new checker is asked for per file, so it may keep state."""

    def check(self, line_no: int, record: dict[str, Any]) -> Iterable[Problem]:
        """Problems of the record on line ``line_no`` (1-based); an empty iterable when it is fine."""
        ...

    def finish(self) -> Iterable[Problem]:
        """Problems of the file as a whole (too few examples, duplicate ids), after the last record."""
        ...
