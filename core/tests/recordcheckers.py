"""Record checkers the worker-process tests hand to a worker (a module of their own: the worker imports it to
unpickle them, so it imports nothing heavy)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from llmfiles.models import Problem
from llmfiles.validate.stats import ExampleStats


class Rules:
    """Every third record is warned about, a record without ``messages`` is an error; statistics are kept."""

    def __init__(self) -> None:
        self.stats = ExampleStats()
        self.records = 0

    def check(self, line_no: int, record: dict[str, Any]) -> Iterable[Problem]:
        self.records += 1
        messages = record.get("messages")
        self.stats.add(messages=len(messages) if isinstance(messages, list) else 0, tokens=line_no % 17)
        if messages is None:
            yield Problem(line=line_no, code="no_messages", message="a record needs messages")
        elif line_no % 3 == 0:
            yield Problem(line=line_no, code="third", message="every third", severity="warning", path="messages")

    def finish(self) -> Iterable[Problem]:
        return [Problem(line=None, code="counted", message=f"{self.records} records", severity="warning")]


class Unpicklable(Rules):
    """The same rules, holding something that cannot be pickled (a lambda)."""

    def __init__(self) -> None:
        super().__init__()
        self.hook = lambda record: record


class LostInTheWorker(Rules):
    """Pickles, but cannot be rebuilt in the worker (its class is not importable there)."""

    def __reduce__(self) -> Any:
        return (_missing_module_class, ())


def _missing_module_class() -> Any:
    import llmfiles_no_such_module  # type: ignore[import-not-found]  # noqa: F401

    raise AssertionError("unreachable")


class DiesInTheWorker(Rules):
    """Kills the worker process at ``line`` (never the parent that made it)."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.parent = os.getpid()
        self.line = line

    def check(self, line_no: int, record: dict[str, Any]) -> Iterable[Problem]:
        if line_no == self.line and os.getpid() != self.parent:
            os._exit(7)
        return super().check(line_no, record)
