"""What the command line shows besides its results: errors (as text or, under ``--json``, one JSON object), retry
and resume notices, and progress bars in binary units.

Everything here goes to stderr except a ``--json`` error, which is the command's whole output on stdout.  Text that
may come from a server is escaped (:func:`llmfiles.redact.printable`), so it cannot drive the terminal.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any

from llmfiles.redact import printable

if TYPE_CHECKING:
    from llmfiles.models import Progress
    from llmfiles.transport import RetryNotice

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def iec(n: float | None) -> str:
    """A size in binary units, labelled as such: ``314573628`` -> ``300.0 MiB``."""
    if n is None:
        return "?"
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


# --- errors ------------------------------------------------------------------------------------------------------


def _keeps_lines(exc: BaseException) -> bool:
    """Whether the message's line breaks are llmfiles' own layout (a configuration or input error: the places
    looked at, the problems of a file), not text a server sent, whose newlines must not start lines."""
    from llmfiles.errors import ConfigurationError, InputError

    return isinstance(exc, (ConfigurationError, InputError))


def error_lines(exc: BaseException) -> list[str]:
    """An error for the terminal: ``llmfiles: error: <first line>``, then the lines llmfiles laid out, then its
    notes (what became of an upload)."""
    text = str(exc)
    lines = [printable(line) for line in text.split("\n")] if _keeps_lines(exc) else [printable(text)]
    out = [f"llmfiles: error: {lines[0]}", *lines[1:]]
    out.extend(f"  {printable(str(note))}" for note in getattr(exc, "__notes__", ()))
    return out


def error_object(exc: BaseException, exit_code: int) -> dict[str, Any]:
    """An error as ``--json`` prints it: ``{"error": {"type", "message", "exit_code", "hint", "notes", ...}}``, with
    the fields a script may act on (the provider's status, a file's problems, the places looked at...)."""
    from llmfiles import errors

    error: dict[str, Any] = {
        "type": type(exc).__name__ if isinstance(exc, errors.LLMFilesError) else "InternalError",
        "message": str(exc),
        "exit_code": exit_code,
        "hint": getattr(exc, "hint", None),
        "notes": [str(n) for n in getattr(exc, "__notes__", ())],
    }
    if isinstance(exc, errors.ProviderError):
        error.update(provider=exc.provider, status=exc.status, code=exc.code, request_id=exc.request_id)
    elif isinstance(exc, errors.ValidationError):
        error.update(path=exc.path, total=exc.total, problems=[_problem(p) for p in exc.problems])
    elif isinstance(exc, errors.MissingCredentials):
        error.update(provider=exc.provider, looked_at=list(exc.looked_at))
    elif isinstance(exc, errors.ProviderNotInstalled):
        error.update(provider=exc.provider, package=exc.package, installed=list(exc.installed))
    elif isinstance(exc, errors.MaybeUploaded):
        error.update(candidates=list(exc.candidates))
    elif isinstance(exc, errors.AlreadyUploaded):
        from llmfiles.converter import to_dict

        error.update(file=to_dict(exc.file))
    elif isinstance(exc, errors.RetriesExhausted):
        error.update(attempts=exc.attempts)
    return {"error": error}


def _problem(p: Any) -> dict[str, Any]:
    return {"line": p.line, "path": p.path, "code": p.code, "severity": p.severity, "message": p.message}


# --- notices and progress ------------------------------------------------------------------------------------------


class Terminal:
    """Notices (one line each: a retry, a resumed upload) and progress bars on stderr.  ``quiet`` silences both;
    bars appear only when ``bars`` (stderr is a terminal and the output is not JSON).  Safe to call from the
    threads that send parts."""

    def __init__(self, *, quiet: bool = False, bars: bool = False) -> None:
        self.quiet = quiet
        self.bars_enabled = bars and not quiet
        self._bars: dict[str, Any] = {}
        self._last: dict[str, int] = {}
        self._resumed: set[str] = set()
        self._lock = threading.RLock()

    def notice(self, text: str) -> None:
        """``llmfiles: <text>`` on stderr, above the bars (unless ``quiet``)."""
        if self.quiet:
            return
        line = f"llmfiles: {printable(text)}"
        with self._lock:
            if self._bars:
                from tqdm import tqdm

                tqdm.write(line, file=sys.stderr)
            else:
                print(line, file=sys.stderr, flush=True)

    def retry(self, notice: RetryNotice) -> None:
        """One line per retry, as pip prints them: what failed, the wait, and which attempt comes next."""
        self.notice(
            f"{notice.request}: {printable(notice.reason, 300)}; retrying in {notice.wait:.1f} s "
            f"(attempt {notice.attempt} of {notice.attempts})"
        )

    def progress(self, event: Progress) -> None:
        """A ``progress=`` callback: says once when an upload resumes, and moves the event's bar."""
        with self._lock:
            key = f"{event.operation}:{event.filename}"
            bar = self._bars.get(key)
            if event.resumed and key not in self._resumed:
                self._resumed.add(key)
                self.notice(_resumed(event))
                if bar is not None and bar.n == 0:  # the bar of the start: one that begins where the last run ended
                    bar.leave = False
                    bar.close()
                    bar = None
            if not self.bars_enabled:
                return
            if bar is None:
                bar = self._bars[key] = _bar(event)
                self._last[key] = event.resumed
            bar.update(event.done - self._last[key])
            self._last[key] = event.done

    def close(self) -> None:
        """Close the bars (before the result is printed, so the two do not interleave)."""
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()
            self._last.clear()
            self._resumed.clear()


def _resumed(event: Progress) -> str:
    share = f"{event.resumed / event.total:.0%}, " if event.total else ""
    sizes = f"{share}{iec(event.resumed)} of {iec(event.total)}"
    if event.parts:
        return (
            f"resuming the upload of {event.filename}: {event.parts_resumed} of {event.parts} parts already uploaded "
            f"({sizes})"
        )
    return f"resuming the upload of {event.filename}: {sizes} already uploaded"


def _bar(event: Progress) -> Any:
    """A tqdm bar whose sizes and rate are in binary units, labelled KiB, MiB, GiB (tqdm's own say M for MiB and
    MB/s for a decimal rate)."""
    from tqdm import tqdm

    class Bar(tqdm):  # type: ignore[misc]
        @property
        def format_dict(self) -> dict[str, Any]:
            d: dict[str, Any] = super().format_dict
            moved = d["n"] - (self.initial or 0)
            rate = d.get("rate") or (moved / d["elapsed"] if d.get("elapsed") else None)
            d.update(done_iec=iec(d["n"]), total_iec=iec(d["total"]), rate_iec=f"{iec(rate)}/s" if rate else "-")
            return d

    known = "{desc}: {percentage:3.0f}%|{bar}| {done_iec}/{total_iec} [{elapsed}<{remaining}, {rate_iec}]"
    unknown = "{desc}: {done_iec} [{elapsed}, {rate_iec}]"
    return Bar(
        total=event.total,
        initial=event.resumed,
        desc=f"{event.operation} {printable(event.filename, 60)}",
        file=sys.stderr,
        leave=True,
        dynamic_ncols=True,
        bar_format=known if event.total else unknown,
    )
