"""The interface provider plugins implement to check JSONL records (see ``llmfiles_record_checker``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from llmfiles.models import Problem


@runtime_checkable
class RecordChecker(Protocol):
    """Checks the records of one file, in order.  A new checker is asked for per file, so it may keep state.

    Two optional members, looked up with ``getattr``, let a checker do more:

    ``start(facts: FileFacts) -> Iterable[Problem]``
        Called once, before the first record (or at the end for a file without records), with the file's size,
        name and whether it starts with a UTF-8 BOM (:class:`~llmfiles.validate.stats.FileFacts`).  Its problems
        are about the file as a whole (``line=None``), such as "larger than the 200 MB a batch file may have".
    ``stats: ExampleStats``
        An :class:`~llmfiles.validate.stats.ExampleStats` the checker feeds once per example
        (``stats.add(messages=..., tokens=..., roles=...)``); the core puts it in the report.

    A checker must not raise on any record: whatever the JSON, it returns problems.  Problems it returns with
    ``line=None`` from :meth:`check` are given the record's line.
    """

    def check(self, line_no: int, record: dict[str, Any]) -> Iterable[Problem]:
        """Problems of the record on line ``line_no`` (1-based); an empty iterable when it is fine."""
        ...

    def finish(self) -> Iterable[Problem]:
        """Problems of the file as a whole (too few examples, duplicate ids), after the last record."""
        ...
