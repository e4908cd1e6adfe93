"""The data that flows between the core and the plugins.

Every class here is an attrs frozen, keyword-only class.  Secrets live in :class:`Secret` wrappers or in fields
declared with ``repr=False``, so printing a model never prints a credential.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import IO, Any, Literal

from attrs import field, frozen

#: The normalized statuses every provider's file status maps onto.
STATUSES = ("uploaded", "processed", "pending", "error", "deleted")
Status = Literal["uploaded", "processed", "pending", "error", "deleted"]


class Secret:
    """A secret value (API key, token).  Its repr and str never show the value; :meth:`reveal` does."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: call this only where the value is sent, never to print or log it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)


# --- the normalized file object ------------------------------------------------------------------------------


@frozen(kw_only=True)
class FileObject:
    """One file at one provider, the same shape for every provider.

    ``raw`` keeps the provider's own response aside: it is not part of equality, repr or the JSON form.
    """

    id: str
    provider: str
    filename: str
    purpose: str
    bytes: int
    created_at: int
    status: Status
    object: str = "file"
    expires_at: int | None = None
    status_details: str | None = None
    raw: Mapping[str, Any] = field(factory=dict, eq=False, repr=False)


@frozen(kw_only=True)
class FilePage:
    """One page of a listing: the files and the cursor of the next page (``None`` on the last page)."""

    files: tuple[FileObject, ...]
    next_cursor: str | None = None


@frozen(kw_only=True)
class TrainingFiles:
    """What :func:`llmfiles.upload_training_files` returns."""

    training: FileObject
    validation: FileObject | None = None


@frozen(kw_only=True)
class Problem:
    """One problem found in a file: where (line, JSON path), what (code, severity) and how to fix it (message)."""

    line: int | None
    code: str
    message: str
    severity: Literal["error", "warning"] = "error"
    path: str = ""

    def describe(self) -> str:
        where = f"line {self.line}" if self.line is not None else "file"
        if self.path:
            where += f", {self.path}"
        return f"{where}: {self.severity} {self.code}: {self.message}"


@frozen(kw_only=True)
class Progress:
    """A progress event for ``progress=`` callbacks.  Callbacks may be called from worker threads."""

    operation: str
    filename: str
    done: int
    total: int | None


# --- provider description and settings -----------------------------------------------------------------------

SettingKind = Literal["str", "int", "float", "bool", "size", "secret", "path", "object"]


@frozen(kw_only=True)
class SettingSpec:
    """One setting a provider (or the core) understands.

    ``env`` names the environment variables that may hold it, first match wins.  For ``kind="secret"``
    settings the same names (or ``secret_names``) are asked of the ``llmfiles_get_secret`` hooks last.

    ``fingerprint`` says whether the setting tells where files go or what is stored (an endpoint, a bucket, an
    organization, a conversion): such settings make the account fingerprint that resuming an upload and
    ``if_exists`` match on.  ``None`` (the default) counts every setting that is neither a secret nor an object;
    set ``False`` on settings that change nothing at the provider (options of the content checks).
    """

    name: str
    kind: SettingKind = "str"
    env: tuple[str, ...] = ()
    default: Any = None
    help: str = ""
    secret_names: tuple[str, ...] | None = None
    fingerprint: bool | None = None

    @property
    def secret(self) -> bool:
        return self.kind == "secret"

    @property
    def lookup_secret_names(self) -> tuple[str, ...]:
        if not self.secret:
            return ()
        return self.secret_names if self.secret_names is not None else self.env


@frozen(kw_only=True)
class ProviderInfo:
    """What a provider plugin declares about itself through ``llmfiles_register_providers``."""

    name: str
    package: str
    purposes: tuple[str, ...]
    description: str = ""
    aliases: tuple[str, ...] = ()
    settings: tuple[SettingSpec, ...] = ()
    #: secret settings of which at least one is needed (unless ``llmfiles_resolve_credentials`` finds another way)
    credential_settings: tuple[str, ...] = ()
    #: the largest file the provider accepts at all
    max_file_size: int | None = None
    #: the largest body one request may carry; above it the large-file protocol is needed
    max_single_request_size: int | None = None
    #: the default size above which the large-file protocol is used
    default_multipart_threshold: int | None = None
    default_part_size: int = 8 * 1024 * 1024
    #: purposes the large-file protocol accepts (``None``: the same as ``purposes``)
    large_purposes: tuple[str, ...] | None = None
    #: purposes whose files must be UTF-8 JSONL, one object per line
    jsonl_purposes: tuple[str, ...] = ("fine-tune", "batch")
    supports_parts: bool = False
    #: whole-file digests the provider's large-file plan needs ("md5", "sha256"); computed in the check pass
    upload_digests: tuple[str, ...] = ()


@frozen(kw_only=True)
class Settings:
    """The resolved settings of one call for one provider, with where each value came from."""

    provider: str
    values: Mapping[str, Any] = field(repr=False)
    sources: Mapping[str, str] = field(factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str, default: Any = None) -> Any:
        value = self.values.get(name)
        return default if value is None else value

    def source(self, name: str) -> str:
        """Where the value of ``name`` came from ("argument api_key", "env OPENAI_API_KEY", ...)."""
        return self.sources.get(name, "default")

    def secret(self, name: str) -> str | None:
        """The revealed value of a secret setting, or ``None``."""
        value = self.values.get(name)
        if isinstance(value, Secret):
            return value.reveal()
        return None if value is None else str(value)


@frozen(kw_only=True)
class Credentials:
    """Credentials a plugin resolved.  ``source`` says where they came from, never what they are."""

    kind: str
    source: str
    secret: Secret | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(factory=dict, repr=False)
    extra: Any = field(default=None, repr=False)


# --- what is uploaded ----------------------------------------------------------------------------------------


class Source:
    """The file being uploaded: a path or an open binary file object, read in ranges, never whole.

    ``read_range`` may be called from several threads at once.
    """

    name: str
    size: int
    display: str
    path: str | None = None
    replayable: bool = True

    def read_range(self, offset: int, length: int, blocksize: int) -> Iterator[bytes]:
        raise NotImplementedError


class PathSource(Source):
    """A file on disk; each range opens its own handle, so ranges read in parallel."""

    path: str

    def __init__(self, path: str, name: str, size: int) -> None:
        self.path = path
        self.name = name
        self.size = size
        self.display = path

    def read_range(self, offset: int, length: int, blocksize: int) -> Iterator[bytes]:
        with open(self.path, "rb", buffering=0) as fh:
            fd = fh.fileno()
            end = offset + length
            pos = offset
            while pos < end:
                chunk = os.pread(fd, min(blocksize, end - pos), pos)
                if not chunk:
                    raise OSError(f"{self.path} shrank while it was being read (at byte {pos:,})")
                pos += len(chunk)
                yield chunk


class FileObjSource(Source):
    """An open, seekable binary file object.  Reads of ranges are serialized with a lock (seek + read)."""

    def __init__(self, fobj: IO[bytes], name: str, start: int, size: int) -> None:
        self.fobj = fobj
        self.name = name
        self.start = start
        self.size = size
        self.display = f"<{name}>"
        self._lock = threading.Lock()
        fileno: Callable[[], int] | None = getattr(fobj, "fileno", None)
        self._fd: int | None = None
        if fileno is not None:
            try:
                self._fd = fileno()
            except (OSError, ValueError):
                self._fd = None

    def read_range(self, offset: int, length: int, blocksize: int) -> Iterator[bytes]:
        end = offset + length
        pos = offset
        while pos < end:
            n = min(blocksize, end - pos)
            if self._fd is not None:
                chunk = os.pread(self._fd, n, self.start + pos)
            else:
                with self._lock:
                    self.fobj.seek(self.start + pos)
                    chunk = self.fobj.read(n)
            if not chunk:
                raise OSError(f"{self.display} ended early (at byte {pos:,} of {self.size:,})")
            pos += len(chunk)
            yield chunk


# --- HTTP as data --------------------------------------------------------------------------------------------


@frozen(kw_only=True)
class SourceRange:
    """A body segment: ``length`` bytes of the upload's file from ``offset``, streamed from disk when sent."""

    source: Source = field(eq=False)
    offset: int
    length: int


@frozen(kw_only=True)
class GeneratedBody:
    """A body segment produced by a generator (for example a format conversion while streaming).

    ``factory`` is called for each attempt, so a retry starts from the beginning; ``length`` may be ``None``
    (chunked transfer encoding).
    """

    factory: Callable[[], Iterator[bytes]] = field(eq=False)
    length: int | None = None


Segment = bytes | SourceRange | GeneratedBody
Body = bytes | tuple[Segment, ...]

SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "api-key",
        "x-api-key",
        "x-goog-api-key",
        "x-amz-security-token",
        "cookie",
        "set-cookie",
        "x-identity-header",
    }
)


def _redacted_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: ("***" if k.lower() in SENSITIVE_HEADERS else v) for k, v in headers.items()}


@frozen(kw_only=True)
class HttpRequest:
    """One HTTP request, built by a plugin, sent by the core's transport.

    ``body`` is ``bytes`` or a tuple of segments (bytes, :class:`SourceRange`, :class:`GeneratedBody`) that the
    transport streams with an exact ``Content-Length`` when every segment's length is known.
    ``idempotent`` defaults to the method's HTTP semantics; a non-idempotent request is retried only when its
    body can be replayed from the start.

    ``probe`` and ``read_probe`` make a non-idempotent request that creates something (``POST /files``, the
    ``complete`` of an upload plan) safe to retry: when an attempt was sent in full but its answer was lost (the
    connection broke, or a 5xx came back), the transport sends ``probe()`` (a request that looks for what the
    attempt would have created, for example a listing) before sending the request again, and
    ``read_probe(response)`` (given the probe's answer, whatever its status) returns the answer the lost attempt
    would have had, rebuilt from what the probe found, or ``None`` when nothing was created (then the request is
    sent again); it raises when the answer does not tell.  If the probe fails, the request is not sent again: an
    :class:`~llmfiles.errors.AnswerLost` error says the outcome is unknown.
    """

    method: str
    url: str
    headers: Mapping[str, str] = field(factory=dict)
    body: Body | None = None
    idempotent: bool | None = None
    probe: Callable[[], HttpRequest] | None = field(default=None, eq=False, repr=False)
    read_probe: Callable[[HttpResponse], HttpResponse | None] | None = field(default=None, eq=False, repr=False)

    def __repr__(self) -> str:
        from llmfiles.transport import redact_url  # (the transport imports this module)

        size = body_length(self.body)
        return (
            f"HttpRequest(method={self.method!r}, url={redact_url(self.url)!r}, "
            f"headers={_redacted_headers(self.headers)!r}, body_bytes={size!r})"
        )

    @property
    def is_idempotent(self) -> bool:
        if self.idempotent is not None:
            return self.idempotent
        return self.method.upper() in {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}


def body_length(body: Body | None) -> int | None:
    """The exact length of a body, or ``None`` when a generated segment has no declared length."""
    if body is None:
        return 0
    if isinstance(body, bytes):
        return len(body)
    total = 0
    for seg in body:
        if isinstance(seg, bytes):
            total += len(seg)
        elif isinstance(seg, SourceRange):
            total += seg.length
        else:
            if seg.length is None:
                return None
            total += seg.length
    return total


@frozen(kw_only=True)
class HttpResponse:
    """A response: status, headers (lower-cased names) and the body read with a bounded size."""

    status: int
    headers: Mapping[str, str] = field(factory=dict)
    body: bytes = b""
    url: str = ""

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def json(self) -> Any:
        """The body parsed as JSON; raises ``ValueError`` when it is not JSON."""
        import json

        return json.loads(self.body)

    def __repr__(self) -> str:
        from llmfiles.transport import redact_url

        return (
            f"HttpResponse(status={self.status}, url={redact_url(self.url)!r}, "
            f"headers={_redacted_headers(self.headers)!r}, body_bytes={len(self.body)})"
        )


# --- operations and large-file plans -------------------------------------------------------------------------

OperationName = Literal["upload", "upload_parts", "retrieve", "list", "delete", "download"]


@frozen(kw_only=True)
class Operation:
    """What the caller asked for.

    ``upload`` expects one :class:`HttpRequest`; ``upload_parts`` (a file above the multipart threshold) expects an
    :class:`UploadPlan`.  ``options`` holds per-call provider options (for example ``expires_after``).
    """

    name: OperationName
    purpose: str | None = None
    source: Source | None = field(default=None, eq=False, repr=False)
    filename: str | None = None
    file_id: str | None = None
    cursor: str | None = None
    limit: int | None = None
    options: Mapping[str, Any] = field(factory=dict)


@frozen(kw_only=True)
class Part:
    """One byte range of a large upload.  ``body`` is the segment to put into the part's request."""

    index: int
    offset: int
    length: int
    body: SourceRange = field(eq=False)

    @property
    def number(self) -> int:
        """1-based part number (S3 style)."""
        return self.index + 1


#: JSON-serializable state of an upload session (upload id, session URI, ...), kept for resume.
UploadState = Mapping[str, Any]
#: JSON-serializable receipt of one uploaded part (part id, ETag, ...).
Receipt = Mapping[str, Any]


@frozen(kw_only=True)
class UploadPlan:
    """A provider's large-file protocol as data plus pure functions from responses to the next requests.

    The engine in :mod:`llmfiles.parts` owns threads, retries, checksums, progress and the resume state.

    * ``start`` (or ``None`` when no session is needed) and ``read_start(response) -> state``;
    * ``part(state, part) -> request`` and ``read_part(state, part, response, digests) -> receipt``, where
      ``digests`` maps each name in ``part_digests`` to the hex digest of the bytes that were sent;
    * ``complete(state, receipts, digests) -> request`` with receipts in part order and the whole-file
      ``digests``, and ``read_complete(state, response) -> FileObject``;
    * ``abort(state) -> request`` to end a session that failed for good;
    * constraints: part size bounds, alignment, maximum part count and whether parts may run in parallel.

    Resumable, strictly sequential protocols (Cloud Storage resumable uploads, tus) also set ``read_progress(state,
    response) -> int``: how many bytes the provider has persisted, read from a part's response or from the answer
    to ``query_progress(state)``, and the upload's size once the provider has it all (that response is then the
    final one).  With it the engine sends each part from the offset the provider reports, so a part the provider
    kept only in part is continued, not repeated; and when ``query_progress`` is set too, a part whose connection
    failed is not resent from its start: the engine asks the provider how far it got and continues from there.

    ``reported_digests(state, final_response) -> {name: hex}`` gives the whole-file digests the provider reports
    for what it stored; the engine compares each with the digest of the bytes that were sent and raises
    :class:`~llmfiles.errors.UploadFailed` when they differ.  ``source`` replaces the caller's file as the bytes to
    upload (for example a format conversion made while streaming): the engine splits, reads and hashes it instead.

    Resume across processes: the engine records the state after ``start`` and each part's receipt (in the state
    database under ``$LLMFILES_HOME``), and a later run of the same upload continues the session instead of starting
    a new one.  So every function must depend on the state and the part alone, never on values made when the plan
    was built (a random object name): the state must carry them (set ``resumable=False`` otherwise).  What the
    provider has is asked, depending on the protocol:

    * sequential plans with ``query_progress``/``read_progress`` (Cloud Storage): the provider's offset;
    * ``list_parts(state, cursor) -> request`` and ``read_list_parts(state, response) -> ({index: receipt},
      next_cursor)`` (S3 ``ListParts``): a recorded part counts as sent only when the provider lists it with the
      same values for the receipt keys both have (for example the ETag);
    * neither (OpenAI and Azure uploads, which cannot be listed): the recorded receipts are trusted, within
      ``session_ttl`` seconds after the start (the provider's expiry); if the provider refuses the session, a new
      one is started.
    """

    destination: str
    start: HttpRequest | None
    read_start: Callable[[HttpResponse], UploadState]
    part: Callable[[UploadState, Part], HttpRequest]
    read_part: Callable[[UploadState, Part, HttpResponse, Mapping[str, str]], Receipt]
    complete: Callable[[UploadState, Sequence[Receipt], Mapping[str, str]], HttpRequest] | None
    read_complete: Callable[[UploadState, HttpResponse], FileObject]
    abort: Callable[[UploadState], HttpRequest] | None = None
    query_progress: Callable[[UploadState], HttpRequest] | None = None
    #: the part size the plan asks for; ``None``: the ``part_size`` setting (either is fitted to the constraints)
    part_size: int | None = None
    min_part_size: int = 1
    max_part_size: int | None = None
    alignment: int = 1
    max_parts: int = 10_000
    sequential: bool = False
    digests: tuple[str, ...] = ()
    part_digests: tuple[str, ...] = ()
    read_progress: Callable[[UploadState, HttpResponse], int] | None = None
    reported_digests: Callable[[UploadState, HttpResponse], Mapping[str, str]] | None = None
    source: Source | None = field(default=None, eq=False, repr=False)
    list_parts: Callable[[UploadState, str | None], HttpRequest] | None = None
    read_list_parts: Callable[[UploadState, HttpResponse], tuple[Mapping[int, Receipt], str | None]] | None = None
    #: seconds an unfinished session lives at the provider after its start (``None``: until it is aborted)
    session_ttl: float | None = None
    #: whether a later process may continue the session from the recorded state (see above)
    resumable: bool = True
