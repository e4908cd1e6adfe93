"""What llmfiles remembers between calls, beside the state store (:mod:`llmfiles.state`): uploaded files by content
(for ``if_exists``), the journals of large uploads (to resume them), and the lock that makes processes uploading the
same content take turns.

Bookkeeping is best effort where it may be: a database that cannot be read or written costs a warning and the
feature (reuse, resume), never the upload.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from llmfiles.errors import FileNotFound, LLMFilesError
from llmfiles.models import FileObject
from llmfiles.paths import default_home
from llmfiles.state import FileIdentity, Journal, StateDB, UploadedFile, account_fingerprint, db_path

if TYPE_CHECKING:
    from llmfiles.calls import Call
    from llmfiles.sources import Source

log = logging.getLogger("llmfiles")
#: seconds between two looks at a lock another process holds
LOCK_POLL = 0.2


class Ledger:
    """The state database of a client's data folder, and what is recorded in it."""

    def __init__(self, home: str | os.PathLike[str] | None) -> None:
        self._home = home
        self._dbs: dict[str, StateDB] = {}
        self._lock = threading.Lock()
        self._content_locks: dict[str, threading.Lock] = {}

    def db(self, *, create: bool = True) -> StateDB | None:
        """The state database (``None`` when ``create=False`` and there is none yet)."""
        # Client(home=...), else $LLMFILES_HOME of the process (as for the local store), else the platform's folder
        home = Path(self._home).expanduser() if self._home else default_home()
        path = db_path(home)
        key = os.fspath(path)
        with self._lock:
            db = self._dbs.get(key)
            if db is None:
                if not create and not path.exists():
                    return None
                db = self._dbs[key] = StateDB(path)
            return db

    def close(self) -> None:
        with self._lock:
            dbs, self._dbs = list(self._dbs.values()), {}
        for db in dbs:
            db.close()

    # -- resume -------------------------------------------------------------------------------------------------

    def journal(self, call: Call, source: Source, purpose: str, sha256: str | None) -> Journal | None:
        """Where the parts engine records a large upload (``None``: it cannot be resumed)."""
        if not call.settings["resume"]:
            return None
        identity = FileIdentity.of(source, sha256)
        if identity is None:
            return None  # a file object, not a path: nothing to find it again by
        db = self.db()
        assert db is not None
        return Journal(
            db,
            provider=call.name,
            account=account_fingerprint(call.info, call.settings),
            purpose=purpose,
            filename=source.name,
            identity=identity,
        )

    # -- if_exists ----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def holding(self, call: Call, purpose: str, sha256: str) -> Iterator[None]:
        """One upload at a time of this content, provider, account and purpose: across threads (a lock) and across
        processes sharing the data folder (a lock row in the state database)."""
        key = f"{call.name}:{account_fingerprint(call.info, call.settings)}:{purpose}:{sha256}"
        with self._lock:
            local = self._content_locks.setdefault(key, threading.Lock())
        with local:
            owner = self._take(key, call)
            try:
                yield
            finally:
                if owner is not None:
                    self._release(key, owner)

    def _take(self, key: str, call: Call) -> str | None:
        db = self.db()
        assert db is not None
        told = False
        while True:
            try:
                owner = db.try_lock(key)
            except (sqlite3.Error, OSError) as exc:
                log.warning("llmfiles could not take its upload lock in %s (%s); going on without it", db.path, exc)
                return None
            if owner is not None:
                return owner
            if not told:
                log.info("another process is uploading the same content to %s; waiting for it", call.name)
                told = True
            if call.policy.past_deadline():
                from llmfiles.errors import DeadlineExceeded

                raise DeadlineExceeded("the deadline passed while another process uploaded the same content")
            call.clock.sleep(LOCK_POLL)

    def _release(self, key: str, owner: str) -> None:
        db = self.db()
        assert db is not None
        try:
            db.unlock(key, owner)
        except (sqlite3.Error, OSError) as exc:
            log.warning("llmfiles could not release its upload lock in %s (%s)", db.path, exc)

    def existing(
        self, call: Call, purpose: str, sha256: str, retrieve: Callable[[str], FileObject]
    ) -> FileObject | None:
        """The newest file uploaded earlier with the same content, purpose and account that the provider still has."""
        account = account_fingerprint(call.info, call.settings)
        db = self.db(create=False)
        if db is None:
            return None
        try:
            candidates = db.find_uploads(sha256, call.name, account, purpose)
        except (sqlite3.Error, OSError) as exc:
            log.warning("llmfiles could not read its state database %s (%s); uploading", db.path, exc)
            return None
        for entry in candidates:
            try:
                fo: FileObject | None = retrieve(entry.file_id)
            except FileNotFound:
                fo = None
            if fo is None or fo.status in ("error", "deleted"):
                log.info("%s (uploaded earlier with the same content) is gone; forgetting it", entry.file_id)
                self._forget(db, call.name, account, entry.file_id)
                continue
            return fo
        return None

    def remember(self, call: Call, purpose: str, sha256: str, fo: FileObject) -> None:
        """Record the content of an uploaded file, for a later ``if_exists``."""
        db = self.db()
        assert db is not None
        try:
            db.record_upload(
                UploadedFile(
                    sha256=sha256,
                    provider=call.name,
                    account=account_fingerprint(call.info, call.settings),
                    purpose=purpose,
                    file_id=fo.id,
                    filename=fo.filename,
                    bytes=fo.bytes,
                    created_at=time.time(),
                )
            )
        except (sqlite3.Error, OSError) as exc:
            log.warning("llmfiles could not record %s in its state database %s (%s)", fo.id, db.path, exc)

    def forget(self, call: Call, file_id: str) -> None:
        """A deleted file is no candidate for ``if_exists='reuse'`` any more."""
        db = self.db(create=False)
        if db is not None:
            self._forget(db, call.name, account_fingerprint(call.info, call.settings), file_id)

    @staticmethod
    def _forget(db: StateDB, provider: str, account: str, file_id: str) -> None:
        try:
            db.forget_upload(provider, account, file_id)
        except (sqlite3.Error, OSError) as exc:
            log.debug("could not forget %s in the state database: %s", file_id, exc)


def state_error(db: StateDB | None, exc: BaseException) -> LLMFilesError:
    """A state database that cannot be read, as an error that says which file and what to do."""
    where = db.path if db is not None else "the state database"
    if db is not None and db.path.is_symlink():
        why = "it is a symbolic link, which llmfiles does not follow"
    else:
        why = f"{type(exc).__name__}: {exc}"
    return LLMFilesError(
        f"llmfiles' state database {where} cannot be read ({why}); move it aside (it only holds unfinished uploads "
        "and the record of uploaded files) and run again"
    )
