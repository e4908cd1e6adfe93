"""The data that flows between the core and the providers.

Every class here is an attrs frozen, keyword-only class (data, no I/O).  Secrets live in :class:`Secret` wrappers
or in fields declared with ``repr=False``, so printing a model never prints a credential.  The provider contract
built from these (``Provider``, ``Exchange``, upload protocols) is in :mod:`llmfiles.provider`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from attrs import field, frozen

from llmfiles.redact import redact_url, redacted_headers

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

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: Any) -> Secret:
        return self

    def __reduce__(self) -> Any:
        raise TypeError("a Secret is not pickled (it would leave the process in the clear)")


# --- the normalized file object ------------------------------------------------------------------------------


@frozen(kw_only=True)
class FileObject:
    """One file at one provider, the same shape for every provider.

    ``checksums`` are the digests the provider reports for the bytes it stored (hex, by hashlib name, for example
    ``{"md5": "..."}``); the core compares them with the digests of the bytes it sent.  ``raw`` keeps the provider's
    own response aside: neither is part of equality, and ``raw`` is not part of the repr or the JSON form.
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
    checksums: Mapping[str, str] = field(factory=dict, eq=False)
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
    """A progress event for ``progress=`` callbacks.  Callbacks may be called from worker threads.

    ``operation`` is ``"upload"``, ``"download"`` or ``"check"``; ``resumed`` is the part of ``done`` that an
    earlier run had already sent (a resumed upload starts there).  For an upload in parts, ``parts`` is the number
    of parts and ``parts_resumed`` how many of them an earlier run had sent (0 otherwise).
    """

    operation: str
    filename: str
    done: int
    total: int | None
    resumed: int = 0
    parts: int = 0
    parts_resumed: int = 0


# --- provider description and settings -----------------------------------------------------------------------

SettingKind = Literal["str", "int", "float", "bool", "size", "secret", "path", "object"]


@frozen(kw_only=True)
class SettingSpec:
    """One setting a provider (or the core) understands.

    ``env`` names the environment variables that may hold it, first match wins.  For ``kind="secret"``
    settings the same names (or ``secret_names``) are asked of the ``llmfiles_get_secret`` hooks last.

    ``fingerprint`` says whether the setting tells where files go or what is stored (an endpoint, a bucket, an
    organization): such settings make the account fingerprint that resuming an upload and ``if_exists`` match on.
    ``None`` (the default) counts every setting that is neither a secret nor an object; set ``False`` on settings
    that change nothing at the provider (options of the content checks).
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
class FileLimits:
    """What one file of one purpose may hold at a provider, as its documentation says (``docs``: the page).

    ``max_bytes`` and ``max_records`` bound one file; ``min_records`` is the fewest records a job takes (Amazon
    Bedrock's minimum records per batch inference job), so no file sent on its own may hold fewer.  ``None`` means
    the provider documents no such limit.  ``note`` says what the numbers depend on (a model, a quota that can be
    raised).  A record is a line that is not blank.  The content checks and ``llmfiles split`` read these numbers,
    so a provider writes each limit once.
    """

    max_bytes: int | None = None
    max_records: int | None = None
    min_records: int | None = None
    docs: str = ""
    note: str = ""

    def __attrs_post_init__(self) -> None:
        for name in ("max_bytes", "max_records", "min_records"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"FileLimits.{name} must be a positive int or None, not {value!r}")
        if self.min_records is not None and self.max_records is not None and self.min_records > self.max_records:
            raise ValueError("FileLimits.min_records is larger than max_records")


@frozen(kw_only=True)
class ProviderInfo:
    """What a provider declares about itself: name, distribution, purposes, settings and limits."""

    name: str
    package: str
    purposes: tuple[str, ...]
    description: str = ""
    aliases: tuple[str, ...] = ()
    settings: tuple[SettingSpec, ...] = ()
    #: secret settings of which at least one is needed (unless the provider's ``credentials`` finds another way)
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
    #: purposes whose files must be valid UTF-8 even with ``validate=False`` (checked while they stream)
    utf8_purposes: tuple[str, ...] = ()
    supports_parts: bool = False
    #: digests the provider reports for stored files (``FileObject.checksums``), compared with what was sent
    checksums: tuple[str, ...] = ()
    #: conversions (by name) that ``convert=`` may apply to this provider's files, the first being ``convert=True``
    conversions: tuple[str, ...] = ()
    #: purposes the provider does not take, each with what it offers instead (said when the purpose is refused)
    purpose_notes: Mapping[str, str] = field(factory=dict)
    #: the documented limits of one file, by purpose (what ``llmfiles split`` cuts a file to; see :class:`FileLimits`)
    file_limits: Mapping[str, FileLimits] = field(factory=dict)


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

    def secrets(self) -> tuple[str, ...]:
        """Every secret value among the settings (for redaction)."""
        return tuple(v.reveal() for v in self.values.values() if isinstance(v, Secret) and v)


@frozen(kw_only=True)
class Credentials:
    """Credentials a provider resolved.  ``source`` says where they came from, never what they are."""

    kind: str
    source: str
    secret: Secret | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(factory=dict, repr=False)
    extra: Any = field(default=None, repr=False)

    def secrets(self) -> tuple[str, ...]:
        """The secret values these credentials send (for redaction)."""
        out = [self.secret.reveal()] if self.secret else []
        out.extend(str(v) for v in self.headers.values())
        return tuple(s for s in out if s)


NO_CREDENTIALS = Credentials(kind="none", source="no credentials needed")


# --- HTTP as data --------------------------------------------------------------------------------------------


@frozen(kw_only=True)
class FileRange:
    """A body segment: ``length`` bytes of the file being uploaded, from ``offset``.

    Providers put it into a request where the file's bytes go; the core streams them from disk when it sends the
    request (checking and hashing them on the way).  A provider never reads the file itself.
    """

    offset: int
    length: int


Segment = bytes | FileRange
Body = bytes | tuple[Segment, ...]


@frozen(kw_only=True)
class HttpRequest:
    """One HTTP request, built by a provider, sent by the core's transport.

    ``body`` is ``bytes`` or a tuple of segments (bytes, :class:`FileRange`) that the transport streams with an
    exact ``Content-Length``.  ``idempotent`` defaults to the method's HTTP semantics; a request that is not
    idempotent is sent again after a failure only when it provably was not done (see ``Exchange.probe``).
    """

    method: str
    url: str
    headers: Mapping[str, str] = field(factory=dict)
    body: Body | None = None
    idempotent: bool | None = None

    def __repr__(self) -> str:
        return (
            f"HttpRequest(method={self.method!r}, url={redact_url(self.url)!r}, "
            f"headers={redacted_headers(self.headers)!r}, body_bytes={body_length(self.body)!r})"
        )

    @property
    def is_idempotent(self) -> bool:
        if self.idempotent is not None:
            return self.idempotent
        return self.method.upper() in {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}

    @property
    def sends_file(self) -> bool:
        """Whether the body carries bytes of the file being uploaded."""
        return isinstance(self.body, tuple) and any(isinstance(s, FileRange) for s in self.body)


def body_length(body: Body | None) -> int:
    """The exact length of a body."""
    if body is None:
        return 0
    if isinstance(body, bytes):
        return len(body)
    return sum(len(s) if isinstance(s, bytes) else s.length for s in body)


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
        """The body parsed as JSON; raises ``ValueError`` when it is not JSON (or nested too deeply to parse)."""
        import json

        from llmfiles.validate.parse import fast_loads

        try:
            return fast_loads(self.body)
        except Exception:  # noqa: S110 - the standard library decides (and reads UTF-16/32 bodies)
            pass
        try:
            return json.loads(self.body)
        except RecursionError:
            raise ValueError("the JSON answer is nested too deeply to be read") from None

    def __repr__(self) -> str:
        return (
            f"HttpResponse(status={self.status}, url={redact_url(self.url)!r}, "
            f"headers={redacted_headers(self.headers)!r}, body_bytes={len(self.body)})"
        )


# --- operations ----------------------------------------------------------------------------------------------


@frozen(kw_only=True)
class UploadFacts:
    """What the core knows of a file about to be uploaded, before its first byte is sent.

    ``head`` is the file's first bytes (up to 4 KiB, read once and kept for sending): enough to see a byte-order
    mark or sniff a format.  The provider puts :class:`FileRange` segments where the file goes.
    """

    purpose: str
    filename: str
    size: int
    head: bytes = field(default=b"", repr=False)

    @property
    def has_bom(self) -> bool:
        return self.head.startswith(b"\xef\xbb\xbf")


@frozen(kw_only=True)
class Upload:
    """Upload a file in one request: the provider returns an ``Exchange[FileObject]``."""

    file: UploadFacts

    @property
    def purpose(self) -> str:
        return self.file.purpose


@frozen(kw_only=True)
class UploadParts:
    """Upload a file through the provider's large-file protocol: the provider returns an ``UploadProtocol``."""

    file: UploadFacts

    @property
    def purpose(self) -> str:
        return self.file.purpose


@frozen(kw_only=True)
class Retrieve:
    """Fetch one file's metadata: an ``Exchange[FileObject]``."""

    file_id: str


@frozen(kw_only=True)
class ListFiles:
    """One page of the listing: an ``Exchange[FilePage]``; ``cursor`` is the previous page's ``next_cursor``."""

    purpose: str | None = None
    cursor: str | None = None
    limit: int | None = None


@frozen(kw_only=True)
class Delete:
    """Delete one file: an ``Exchange[bool]``."""

    file_id: str


@frozen(kw_only=True)
class Download:
    """Stream one file's content: an ``Exchange[bool]`` whose successful body the core writes to the target (the
    response ``read`` gets has an empty body)."""

    file_id: str


Operation = Upload | UploadParts | Retrieve | ListFiles | Delete | Download


def operation_name(op: Operation) -> str:
    """``upload``, ``upload_parts``, ``retrieve``, ``list``, ``delete`` or ``download``."""
    return _OP_NAMES[type(op)]


_OP_NAMES: dict[type, str] = {
    Upload: "upload",
    UploadParts: "upload_parts",
    Retrieve: "retrieve",
    ListFiles: "list",
    Delete: "delete",
    Download: "download",
}


@frozen(kw_only=True)
class Part:
    """One byte range of a large upload.  ``body`` is the segment to put into the part's request.

    ``sent`` is filled in by the engine with the digests (``part_digests`` of the protocol) of the bytes it sent
    for this part, before the part's ``read`` is called.
    """

    index: int
    offset: int
    length: int
    sent: dict[str, str] = field(factory=dict, eq=False, repr=False)

    @property
    def number(self) -> int:
        """1-based part number (S3 style)."""
        return self.index + 1

    @property
    def body(self) -> FileRange:
        return FileRange(offset=self.offset, length=self.length)


#: JSON-serializable state of an upload session (upload id, session URI, ...), kept for resume.
UploadState = Mapping[str, Any]
#: JSON-serializable receipt of one uploaded part (part id, ETag, ...).
Receipt = Mapping[str, Any]
