"""llmfiles' state on this machine: unfinished large uploads (to resume them) and uploaded files by content (to
reuse them), in one SQLite database, ``$LLMFILES_HOME/state.db``.

The database is created readable by its owner only (``0o600`` in a ``0o700`` folder; SQLite gives its ``-wal`` and
``-shm`` files the database's permissions).  It runs in WAL mode with a busy timeout, so several threads (one
connection per :class:`StateDB`, behind a lock) and several processes can use it at once.  It never holds a secret:
accounts are fingerprints (a SHA-256 of the provider's non-secret settings), and the plan state of a session holds
what the provider needs to continue it (an upload id, a multipart upload id, a Cloud Storage session URI — which
works as a credential for that one session until it ends, hence the owner-only file, and it is never printed).

Tables:

``sessions``
    one row per unfinished large upload: ``id`` (shown by ``llmfiles uploads``), ``key`` (which upload it is:
    provider, account, file path, purpose and name at the provider), the file's identity when it started (size,
    mtime in ns, inode, and its SHA-256 when the check pass computed one), the part size and count, the plan's
    ``state`` (JSON), when it started, was last updated and expires, and ``owner`` (host, pid and a random token of
    the process uploading it right now, or NULL).
``parts``
    ``(session_id, idx)``: each part the provider accepted, with its offset, length, receipt (JSON) and digests.
``uploaded``
    ``(sha256, provider, account, purpose, file_id)``: files uploaded with that content, for ``if_exists``.
``locks``
    ``key`` (a content, provider, account and purpose) -> the process checking and uploading it now, so that
    processes uploading the same file with ``if_exists`` take turns and make one copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrs import field, frozen

from llmfiles.models import ProviderInfo, Receipt, Settings, SettingSpec, UploadState
from llmfiles.paths import private_dir

if TYPE_CHECKING:
    import sqlite3

    from llmfiles.sources import Source

log = logging.getLogger("llmfiles.state")

FILENAME = "state.db"
SCHEMA_VERSION = 1
#: a session another process holds is taken over when its owner has not written for this long (another host)
STALE_OWNER_SECONDS = 3600.0
#: a session whose provider expiry is closer than this is not resumed (the rest of the upload would not fit)
EXPIRY_MARGIN_SECONDS = 120.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    provider TEXT NOT NULL,
    account TEXT NOT NULL,
    purpose TEXT NOT NULL,
    filename TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    sha256 TEXT,
    part_size INTEGER NOT NULL,
    parts INTEGER NOT NULL,
    destination TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    expires_at REAL,
    owner TEXT
);
CREATE TABLE IF NOT EXISTS parts (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    receipt TEXT NOT NULL,
    digests TEXT NOT NULL,
    PRIMARY KEY (session_id, idx)
);
CREATE TABLE IF NOT EXISTS uploaded (
    sha256 TEXT NOT NULL,
    provider TEXT NOT NULL,
    account TEXT NOT NULL,
    purpose TEXT NOT NULL,
    file_id TEXT NOT NULL,
    filename TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (sha256, provider, account, purpose, file_id)
);
CREATE INDEX IF NOT EXISTS uploaded_by_id ON uploaded (provider, account, file_id);
CREATE TABLE IF NOT EXISTS locks (key TEXT PRIMARY KEY, owner TEXT NOT NULL, updated_at REAL NOT NULL);
"""


# --- identities ----------------------------------------------------------------------------------------------


def account_fingerprint(info: ProviderInfo, settings: Settings) -> str:
    """Which account and endpoint a call talks to, as a hash: the provider's name and its own settings that say
    where files go or what is stored (endpoint, bucket, prefix, organization, api version, conversion ...; see
    :attr:`~llmfiles.models.SettingSpec.fingerprint`).

    Keys and tokens are left out on purpose: the fingerprint must not be a way to test a guessed key, and a session
    started with one key of an account is continued with another key of the same account.
    """
    from llmfiles.settings import CORE_NAMES

    def counts(spec: SettingSpec) -> bool:
        if spec.name in CORE_NAMES or spec.kind == "secret":
            return False  # never a secret, even when a plugin says so
        return spec.fingerprint if spec.fingerprint is not None else spec.kind != "object"

    items = sorted((spec.name, settings.values.get(spec.name)) for spec in info.settings if counts(spec))
    if settings.values.get("convert"):  # the core's one setting that changes what is stored
        items.append(("convert", settings.values["convert"]))
    text = json.dumps([info.name, items], default=str, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@frozen(kw_only=True)
class FileIdentity:
    """What tells whether a file is still the one an unfinished upload started with.

    Size, modification time (ns) and inode always; the SHA-256 when the check pass computed it from the same read
    (JSONL purposes), compared when both runs have one.  No extra read of the file is made for it.
    """

    path: str
    size: int
    mtime_ns: int
    inode: int
    sha256: str | None = None

    @classmethod
    def of(cls, source: Source, sha256: str | None) -> FileIdentity | None:
        """The identity of ``source`` when it was opened (``None`` for a file object: nothing to find it by)."""
        ident = source.identity
        if source.path is None or ident is None:
            return None
        return cls(
            path=os.path.realpath(source.path),
            size=ident.size,
            mtime_ns=ident.mtime_ns,
            inode=ident.inode,
            sha256=sha256,
        )

    def change_from(self, saved: SavedSession) -> str | None:
        """Why the file is not the one ``saved`` started with, or ``None`` when it is."""
        if self.size != saved.size:
            return f"its size changed from {saved.size:,} to {self.size:,} bytes"
        if self.sha256 and saved.sha256 and self.sha256 != saved.sha256:
            return "its content changed (SHA-256)"
        if self.mtime_ns != saved.mtime_ns:
            return "it was modified"
        if self.inode != saved.inode:
            return "it was replaced by another file"
        return None


def session_key(provider: str, account: str, path: str, purpose: str, filename: str) -> str:
    text = json.dumps([provider, account, path, purpose, filename])
    return hashlib.sha256(text.encode()).hexdigest()


# --- rows ----------------------------------------------------------------------------------------------------


@frozen(kw_only=True)
class SavedPart:
    index: int
    offset: int
    length: int
    receipt: Receipt
    digests: Mapping[str, str]


@frozen(kw_only=True)
class SavedSession:
    """An unfinished large upload as recorded.  ``state`` is the plan's session state: never print it."""

    id: str
    key: str
    provider: str
    account: str
    purpose: str
    filename: str
    path: str
    size: int
    mtime_ns: int
    inode: int
    sha256: str | None
    part_size: int
    parts: int
    destination: str
    state: UploadState = field(repr=False)
    created_at: float
    updated_at: float
    expires_at: float | None
    owner: str | None
    done: Mapping[int, SavedPart] = field(factory=dict, repr=False)

    @property
    def bytes_done(self) -> int:
        return sum(p.length for p in self.done.values())

    @property
    def running(self) -> bool:
        """Whether a live process is uploading it now."""
        return _owner_alive(self.owner, self.updated_at)

    def expired(self, now: float | None = None) -> bool:
        if self.expires_at is None:
            return False
        return (time.time() if now is None else now) > self.expires_at - EXPIRY_MARGIN_SECONDS

    def describe(self) -> dict[str, Any]:
        """What ``llmfiles uploads`` shows (no plan state: a session URI or upload id is not printed)."""
        from llmfiles.redact import redact_url

        return {
            "id": self.id,
            "provider": self.provider,
            "file": self.path,
            "filename": self.filename,
            "purpose": self.purpose,
            "bytes": self.size,
            "bytes_done": self.bytes_done,
            "parts": self.parts,
            "parts_done": len(self.done),
            "destination": redact_url(self.destination) if "://" in self.destination else self.destination,
            "started_at": int(self.created_at),
            "updated_at": int(self.updated_at),
            "expires_at": int(self.expires_at) if self.expires_at is not None else None,
            "running": self.running,
        }


@frozen(kw_only=True)
class UploadedFile:
    sha256: str
    provider: str
    account: str
    purpose: str
    file_id: str
    filename: str
    bytes: int
    created_at: float


_HOST = socket.gethostname()


def _new_owner() -> str:
    return f"{_HOST}:{os.getpid()}:{secrets.token_hex(8)}"


def _owner_alive(owner: str | None, updated_at: float) -> bool:
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text, _, _token = rest.partition(":")
    if host != _HOST:
        return time.time() - updated_at < STALE_OWNER_SECONDS
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if pid == os.getpid():
        return True  # another upload of this process (its own owner releases it when it ends)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and only waits to be reaped (``kill -9``'d, its parent not yet told): on Linux its
    ``/proc`` status says so; elsewhere it cannot be told and counts as alive."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[-1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


# --- the database --------------------------------------------------------------------------------------------


def db_path(home: Path) -> Path:
    return home / FILENAME


class StateDB:
    """The state database at ``path`` (created on first use, owner-only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        import sqlite3

        private_dir(self.path.parent, fix_existing=False)  # $LLMFILES_HOME: made private only if llmfiles makes it
        # create the file owner-only before SQLite opens it (SQLite would use the umask)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            fchmod = getattr(os, "fchmod", None)  # (none on Windows before Python 3.13, where modes mean little)
            if fchmod is not None and os.fstat(fd).st_mode & 0o077:
                fchmod(fd, 0o600)
        finally:
            os.close(fd)
        conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            try:
                conn.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError:  # a file system without shared memory: the default journal works too
                pass
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.row_factory = sqlite3.Row
            with _transaction(conn):
                for statement in _statements(_SCHEMA):
                    conn.execute(statement)
                conn.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._connect()
            with _transaction(conn):
                yield conn

    # -- sessions -----------------------------------------------------------------------------------------

    def claim(self, key: str) -> tuple[SavedSession | None, str | None]:
        """Take the unfinished session of upload ``key`` for this process.

        Returns ``(session, owner)``: the session (``None`` when there is none) and the owner token now recorded
        for it, or ``(session, None)`` when a live process is uploading it (then it must be left alone).
        """
        with self._tx() as conn:
            row = conn.execute("SELECT * FROM sessions WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None, None
            saved = self._session(conn, row)
            if saved.running:
                return saved, None
            owner = _new_owner()
            conn.execute("UPDATE sessions SET owner = ?, updated_at = ? WHERE id = ?", (owner, time.time(), saved.id))
            return saved, owner

    def create_session(
        self,
        *,
        key: str,
        provider: str,
        account: str,
        purpose: str,
        filename: str,
        identity: FileIdentity,
        part_size: int,
        parts: int,
        destination: str,
        state: UploadState,
        expires_at: float | None,
    ) -> tuple[str, str | None]:
        """Record a new session, replacing a finished-with one of the same key; returns its id and owner token
        (``None`` when another live process holds the key: then nothing is recorded)."""
        now = time.time()
        session_id = secrets.token_hex(6)
        owner = _new_owner()
        with self._tx() as conn:
            row = conn.execute("SELECT id, owner, updated_at FROM sessions WHERE key = ?", (key,)).fetchone()
            if row is not None:
                if _owner_alive(row[1], row[2]):
                    return session_id, None
                conn.execute("DELETE FROM sessions WHERE id = ?", (row[0],))
            conn.execute(
                "INSERT INTO sessions (id, key, provider, account, purpose, filename, path, size, mtime_ns, inode, "
                "sha256, part_size, parts, destination, state, created_at, updated_at, expires_at, owner) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    session_id,
                    key,
                    provider,
                    account,
                    purpose,
                    filename,
                    identity.path,
                    identity.size,
                    identity.mtime_ns,
                    identity.inode,
                    identity.sha256,
                    part_size,
                    parts,
                    destination,
                    json.dumps(dict(state)),
                    now,
                    now,
                    expires_at,
                    owner,
                ),
            )
        return session_id, owner

    def save_part(
        self,
        session_id: str,
        owner: str,
        index: int,
        offset: int,
        length: int,
        receipt: Receipt,
        digests: Mapping[str, str],
    ) -> bool:
        """Record a part the provider accepted; ``False`` when the session is no longer this owner's."""
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE sessions SET updated_at = ? WHERE id = ? AND owner = ?", (time.time(), session_id, owner)
            )
            if cur.rowcount != 1:
                return False
            conn.execute(
                "INSERT OR REPLACE INTO parts (session_id, idx, offset, length, receipt, digests) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (session_id, index, offset, length, json.dumps(dict(receipt)), json.dumps(dict(digests))),
            )
        return True

    def forget_parts(self, session_id: str, indexes: list[int]) -> None:
        with self._tx() as conn:
            conn.executemany("DELETE FROM parts WHERE session_id = ? AND idx = ?", [(session_id, i) for i in indexes])

    def release(self, session_id: str, owner: str) -> None:
        """This process stops uploading the session (it stays, to be resumed)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE sessions SET owner = NULL, updated_at = ? WHERE id = ? AND owner = ?",
                (time.time(), session_id, owner),
            )

    def delete_session(self, session_id: str, owner: str | None = None) -> None:
        """Remove a session (only if ``owner`` still holds it, when given)."""
        with self._tx() as conn:
            if owner is not None:
                row = conn.execute("SELECT owner FROM sessions WHERE id = ?", (session_id,)).fetchone()
                if row is None or row[0] != owner:
                    return
            conn.execute("DELETE FROM parts WHERE session_id = ?", (session_id,))
            conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def sessions(self) -> list[SavedSession]:
        with self._tx() as conn:
            rows = conn.execute("SELECT * FROM sessions ORDER BY created_at").fetchall()
            return [self._session(conn, r) for r in rows]

    def session(self, session_id: str) -> SavedSession | None:
        """The session with this id (or the only one whose id starts with it)."""
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT * FROM sessions WHERE id = ? OR id LIKE ? ESCAPE '\\'", (session_id, _like_prefix(session_id))
            ).fetchall()
            exact = [r for r in rows if r["id"] == session_id]
            chosen = exact or (rows if len(rows) == 1 else [])
            return self._session(conn, chosen[0]) if chosen else None

    @staticmethod
    def _session(conn: sqlite3.Connection, row: Any) -> SavedSession:
        parts = conn.execute(
            "SELECT idx, offset, length, receipt, digests FROM parts WHERE session_id = ?", (row["id"],)
        ).fetchall()
        done = {
            int(p[0]): SavedPart(
                index=int(p[0]), offset=int(p[1]), length=int(p[2]), receipt=json.loads(p[3]), digests=json.loads(p[4])
            )
            for p in parts
        }
        return SavedSession(
            id=row["id"],
            key=row["key"],
            provider=row["provider"],
            account=row["account"],
            purpose=row["purpose"],
            filename=row["filename"],
            path=row["path"],
            size=int(row["size"]),
            mtime_ns=int(row["mtime_ns"]),
            inode=int(row["inode"]),
            sha256=row["sha256"],
            part_size=int(row["part_size"]),
            parts=int(row["parts"]),
            destination=row["destination"],
            state=json.loads(row["state"]),
            created_at=float(row["created_at"]),
            updated_at=float(row["updated_at"]),
            expires_at=float(row["expires_at"]) if row["expires_at"] is not None else None,
            owner=row["owner"],
            done=done,
        )

    # -- locks across processes ---------------------------------------------------------------------------

    def try_lock(self, key: str) -> str | None:
        """Take the lock ``key`` for this process unless a live process holds it; the owner token, or ``None``."""
        with self._tx() as conn:
            row = conn.execute("SELECT owner, updated_at FROM locks WHERE key = ?", (key,)).fetchone()
            if row is not None and _owner_alive(row[0], row[1]):
                return None  # a live process (maybe this one) holds it
            owner = _new_owner()
            conn.execute(
                "INSERT OR REPLACE INTO locks (key, owner, updated_at) VALUES (?, ?, ?)", (key, owner, time.time())
            )
            return owner

    def unlock(self, key: str, owner: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM locks WHERE key = ? AND owner = ?", (key, owner))

    # -- uploaded files -----------------------------------------------------------------------------------

    def record_upload(self, entry: UploadedFile) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO uploaded (sha256, provider, account, purpose, file_id, filename, bytes, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.sha256,
                    entry.provider,
                    entry.account,
                    entry.purpose,
                    entry.file_id,
                    entry.filename,
                    entry.bytes,
                    entry.created_at,
                ),
            )

    def find_uploads(self, sha256: str, provider: str, account: str, purpose: str) -> list[UploadedFile]:
        """Files uploaded with this content, newest first."""
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT * FROM uploaded WHERE sha256 = ? AND provider = ? AND account = ? AND purpose = ? "
                "ORDER BY created_at DESC",
                (sha256, provider, account, purpose),
            ).fetchall()
        return [
            UploadedFile(
                sha256=r["sha256"],
                provider=r["provider"],
                account=r["account"],
                purpose=r["purpose"],
                file_id=r["file_id"],
                filename=r["filename"],
                bytes=int(r["bytes"]),
                created_at=float(r["created_at"]),
            )
            for r in rows
        ]

    def forget_upload(self, provider: str, account: str, file_id: str) -> None:
        with self._tx() as conn:
            conn.execute(
                "DELETE FROM uploaded WHERE provider = ? AND account = ? AND file_id = ?", (provider, account, file_id)
            )


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


# --- the engine's journal ------------------------------------------------------------------------------------


class Journal:
    """What the large-file engine records about one upload, and finds again on the next run of the same upload.

    Recording is best effort: if the database cannot be written (a full disk, a read-only home), the upload goes on
    without it (and cannot be resumed), with one warning.
    """

    def __init__(
        self,
        db: StateDB,
        *,
        provider: str,
        account: str,
        purpose: str,
        filename: str,
        identity: FileIdentity,
    ) -> None:
        self.db = db
        self.provider = provider
        self.account = account
        self.purpose = purpose
        self.filename = filename
        self.identity = identity
        self.key = session_key(provider, account, identity.path, purpose, filename)
        self.session_id: str | None = None
        self.owner: str | None = None
        self.broken = False
        #: set by :meth:`find` when another process is uploading the same file now: record nothing
        self.busy = False

    @property
    def active(self) -> bool:
        """Whether the current session is recorded (so it can be resumed)."""
        return self.session_id is not None and self.owner is not None and not self.broken

    def _failed(self, what: str, exc: BaseException) -> None:
        if not self.broken:
            log.warning(
                "llmfiles could not %s in its state database %s (%s: %s); this upload cannot be resumed if it breaks",
                what,
                self.db.path,
                type(exc).__name__,
                exc,
            )
        self.broken = True

    def find(self) -> SavedSession | None:
        """The unfinished session of this upload, now held by this process (``None``: there is none)."""
        import sqlite3

        try:
            saved, owner = self.db.claim(self.key)
        except (sqlite3.Error, OSError) as exc:
            self._failed("look for an unfinished session", exc)
            return None
        if saved is not None and owner is None:
            log.info("another process is uploading %s now; this upload starts a session of its own", self.identity.path)
            self.busy = True
            return None
        if saved is not None:
            self.session_id, self.owner = saved.id, owner
        return saved

    def change(self, saved: SavedSession) -> str | None:
        return self.identity.change_from(saved)

    def started(self, state: UploadState, *, part_size: int, parts: int, destination: str, ttl: float | None) -> None:
        import sqlite3

        if self.busy or self.broken:
            return
        expires = time.time() + ttl if ttl is not None else None
        try:
            session_id, owner = self.db.create_session(
                key=self.key,
                provider=self.provider,
                account=self.account,
                purpose=self.purpose,
                filename=self.filename,
                identity=self.identity,
                part_size=part_size,
                parts=parts,
                destination=destination,
                state=state,
                expires_at=expires,
            )
        except (sqlite3.Error, OSError, TypeError, ValueError) as exc:  # TypeError/ValueError: state not JSON
            self._failed("record the upload session", exc)
            return
        self.session_id, self.owner = session_id, owner

    def part_done(self, index: int, offset: int, length: int, receipt: Receipt, digests: Mapping[str, str]) -> None:
        import sqlite3

        if not self.active:
            return
        assert self.session_id is not None and self.owner is not None
        try:
            if not self.db.save_part(self.session_id, self.owner, index, offset, length, receipt, digests):
                self.owner = None  # taken over (or removed) by someone else: stop recording
        except (sqlite3.Error, OSError, TypeError, ValueError) as exc:
            self._failed("record a part", exc)

    def forget_parts(self, indexes: list[int]) -> None:
        import sqlite3

        if not self.active or not indexes:
            return
        assert self.session_id is not None
        try:
            self.db.forget_parts(self.session_id, indexes)
        except (sqlite3.Error, OSError) as exc:
            self._failed("update the session", exc)

    def keep(self) -> None:
        """The upload stopped but its session stays, to be resumed."""
        import sqlite3

        if self.session_id is None or self.owner is None:
            return
        try:
            self.db.release(self.session_id, self.owner)
        except (sqlite3.Error, OSError) as exc:
            self._failed("release the session", exc)
        self.owner = None

    def discard(self) -> None:
        """The session is finished with (completed, aborted, expired or refused): forget it."""
        import sqlite3

        session_id, owner = self.session_id, self.owner
        self.session_id, self.owner = None, None
        if session_id is None or owner is None:
            return
        try:
            self.db.delete_session(session_id, owner)
        except (sqlite3.Error, OSError) as exc:
            self._failed("remove the finished session", exc)
