"""The operations other than uploads, on a resolved :class:`~llmfiles.calls.Call`: retrieve, delete, list (every
page, lazily), download (to a temporary file renamed into place) and waiting until a file is processed."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from llmfiles.calls import Call
from llmfiles.errors import InputError, PluginError, ProviderError, advice
from llmfiles.models import Delete, Download, FileObject, FilePage, ListFiles, Progress, Retrieve
from llmfiles.provider import Exchange
from llmfiles.sources import safe_name

log = logging.getLogger("llmfiles")
#: a listing that gives this many empty pages in a row is stopped (a provider that pages forever)
MAX_EMPTY_PAGES = 10
#: and one that gives more pages than this at all
MAX_PAGES = 100_000


def check_id(file_id: Any) -> str:
    if not isinstance(file_id, str) or not file_id.strip():
        raise InputError(f"file id must be a non-empty string, not {file_id!r}")
    return file_id


def retrieve(call: Call, file_id: str) -> FileObject:
    """The file object of ``file_id``."""
    file_id = check_id(file_id)
    ex = call.exchange(Retrieve(file_id=file_id))
    assert isinstance(ex, Exchange)
    fo: FileObject = _expect(call, call.run(ex, file_id=file_id), FileObject, "retrieve")
    return fo


def delete(call: Call, file_id: str) -> bool:
    file_id = check_id(file_id)
    ex = call.exchange(Delete(file_id=file_id))
    assert isinstance(ex, Exchange)
    result = call.run(ex, file_id=file_id)
    if result is False:
        raise ProviderError(f"the provider did not delete {file_id}", provider=call.name)
    return True


def iter_files(call: Call, purpose: str | None, page_size: int | None) -> Iterator[FileObject]:
    """Every file, page after page; stops a listing whose cursors repeat or whose pages stay empty."""
    cursor: str | None = None
    seen: set[str] = set()
    empty = 0
    for _ in range(MAX_PAGES):
        ex = call.exchange(ListFiles(purpose=purpose, cursor=cursor, limit=page_size))
        assert isinstance(ex, Exchange)
        page = _expect(call, call.run(ex), FilePage, "list")
        yield from page.files
        if page.next_cursor is None:
            return
        if page.next_cursor in seen:
            raise ProviderError(
                f"the listing returned the cursor {page.next_cursor!r} twice; stopping instead of looping",
                provider=call.name,
            )
        empty = 0 if page.files else empty + 1
        if empty >= MAX_EMPTY_PAGES:
            raise ProviderError(
                f"the listing gave {empty} empty pages in a row, each with a new cursor; stopping instead of paging "
                "for ever",
                provider=call.name,
            )
        seen.add(page.next_cursor)
        cursor = page.next_cursor
    raise ProviderError(f"the listing did not end after {MAX_PAGES:,} pages; stopping", provider=call.name)


def download(
    call: Call,
    file_id: str,
    dest: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    progress: Callable[[Progress], None] | None = None,
) -> Path:
    """Stream the content of ``file_id`` to ``dest`` (a file path, or a folder to keep the file's own name), through
    a temporary file beside the target renamed into place only when complete.  The file's size is asked of the
    provider first when it names the target or ``progress`` needs a total."""
    file_id = check_id(file_id)
    target = Path(dest)
    known: FileObject | None = None
    if target.is_dir():
        known = retrieve(call, file_id)
        # the provider's name for the file: its last part only, without control characters
        fallback = safe_name(file_id.replace("/", "_").replace("\\", "_"), "download")
        target = target / safe_name(known.filename, fallback)
    if target.exists() and not overwrite:
        raise InputError(f"{target} already exists; {advice('pass overwrite=True', 'pass --force')} to replace it")
    if not target.parent.is_dir():
        raise InputError(f"{target.parent} is not a folder; create it first")
    if known is None and progress is not None:
        known = retrieve(call, file_id)
    total: int | None = known.bytes if known is not None and known.bytes else None
    ex = call.exchange(Download(file_id=file_id))
    assert isinstance(ex, Exchange)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "w+b") as sink:

            def on_chunk(block: bytes) -> None:
                if progress is not None:  # a retry starts the file again: what this attempt wrote is what is done
                    progress(Progress(operation="download", filename=target.name, done=sink.tell(), total=total))

            call.run(ex, sink=sink, on_sink_chunk=on_chunk, file_id=file_id)
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def wait_processed(
    call: Call, fo: FileObject, timeout: float, *, get: Callable[[str], FileObject] | None = None
) -> FileObject:
    """Poll until the provider has processed ``fo`` (exponential backoff from 0.5 s to 10 s, the call's clock)."""
    get = get or (lambda file_id: retrieve(call, file_id))
    clock = call.clock
    end = clock.monotonic() + timeout
    delay = 0.5
    while fo.status not in ("processed", "error"):
        if clock.monotonic() + delay > end:
            raise ProviderError(
                f"file {fo.id} is still {fo.status!r} after {timeout:g}s; check again later with retrieve",
                provider=call.name,
            )
        clock.sleep(delay)
        delay = min(delay * 2, 10.0)
        fo = get(fo.id)
    if fo.status == "error":
        raise ProviderError(
            f"the provider could not process file {fo.id}: {fo.status_details or 'no details given'}",
            provider=call.name,
            code="processing_error",
        )
    return fo


def _expect(call: Call, value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind):
        raise PluginError(
            f"plugin {call.plugin!r} read the answer to {what!r} as {type(value).__name__}; expected {kind.__name__}"
        )
    return value
