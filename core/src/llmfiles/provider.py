"""The provider contract: what a provider plugin implements, typed end to end.

A provider is one object, registered through the ``llmfiles_register_providers`` hook, that the core calls
directly.  It has the three pillars of the design:

* :meth:`Provider.credentials`: resolved settings in, :class:`~llmfiles.models.Credentials` out;
* :meth:`Provider.exchange`: an operation in, what to send and how to read the answer out: an :class:`Exchange`
  (one request and its reader), or for a large upload an :class:`UploadProtocol` (a class with methods: start,
  part or chunk, complete, abort, and how to ask the provider what it has);
* :meth:`Provider.record_checker`: the JSONL rules of a purpose, or ``None``.

Providers take data and return data.  They never send a request, never open a connection and never read the
user's file: the core's transport sends what they build, and the core's pipeline streams the file into the
:class:`~llmfiles.models.FileRange` segments they put in request bodies.  :class:`BaseProvider` gives the usual
defaults, so a provider is a class with an ``info`` and an ``exchange``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import IO, Any, Generic, Protocol, TypeVar, runtime_checkable
from urllib.parse import urlencode

from attrs import field, frozen

from llmfiles.errors import LLMFilesError, MissingCredentials, ProviderError
from llmfiles.models import (
    NO_CREDENTIALS,
    Credentials,
    FileObject,
    HttpRequest,
    HttpResponse,
    Operation,
    Part,
    ProviderInfo,
    Receipt,
    Secret,
    Settings,
    UploadState,
)
from llmfiles.settings import places_looked
from llmfiles.validate.records import RecordChecker

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


# --- one request and how to read its answer --------------------------------------------------------------------


@frozen(kw_only=True)
class Probe:
    """How to find out whether a create whose answer was lost (the connection broke after the whole request was
    sent, a gateway answered 502, a 200 came back unreadable) created a file anyway.

    ``request`` looks for it (a listing, a lookup by name); ``read`` turns the answer into the files this request may
    have created (same name and size, say), ``[]`` when there is none.  The core then decides, never guessing: a file
    created before the request started is not it; with ``unique=True`` (the lookup is for a name made fresh for this
    request, such as a random object key) a file found is it; otherwise a file is taken only when its
    ``checksums`` match the bytes that were sent, and when none can be compared the upload stops with
    :class:`~llmfiles.errors.MaybeUploaded` naming the candidates instead of sending a second copy.
    """

    request: HttpRequest
    read: Callable[[HttpResponse], Sequence[FileObject]]
    unique: bool = False


@frozen(kw_only=True)
class Exchange(Generic[T_co]):
    """A request and how to read its answer, together.

    The core sends ``request`` (retrying what is safe to retry) and calls ``read`` with the final response when its
    status is below 400, ``error`` when it is 400 or more.  ``read`` returns the operation's data
    (:class:`~llmfiles.models.FileObject`, :class:`~llmfiles.models.FilePage`, ``bool`` ...) and raises a
    :class:`~llmfiles.errors.ProviderError` for an answer it cannot use; ``error`` returns the provider's error
    (its code, message and request id).  ``probe`` makes a create safe to retry (see :class:`Probe`).
    """

    request: HttpRequest
    read: Callable[[HttpResponse], T_co]
    error: Callable[[HttpResponse], ProviderError]
    probe: Probe | None = None


def guarded_read(provider: str, read: Callable[[HttpResponse], T]) -> Callable[[HttpResponse], T]:
    """``read``, turning any exception but an llmfiles error into a :class:`~llmfiles.errors.ProviderError` that
    says the answer could not be read: a reader meets whatever a server (or a middlebox) sends, and an answer of an
    unexpected shape is the provider's error, never a bare ``KeyError`` or ``RecursionError``."""

    def guarded(response: HttpResponse) -> T:
        try:
            return read(response)
        except LLMFilesError:
            raise
        except Exception as exc:
            failed = _unreadable(provider, response, exc)
        raise failed  # out of the ``except``: not chained to an error that may quote the whole answer

    return guarded


def guarded_error(
    provider: str, error: Callable[[HttpResponse], ProviderError]
) -> Callable[[HttpResponse], ProviderError]:
    """``error``, answering a :class:`~llmfiles.errors.ProviderError` made of the status and the start of the body
    when the provider's error reader cannot read the error answer."""

    def guarded(response: HttpResponse) -> ProviderError:
        try:
            return error(response)
        except Exception:
            text = response.body[:300].decode("utf-8", "replace").strip() or f"HTTP {response.status}"
            return ProviderError(text, provider=provider, status=response.status)

    return guarded


@frozen(kw_only=True)
class Endpoint:
    """Where and how a provider's HTTP API is reached: the base URL and the headers every request carries.  A
    plugin subclasses it with how its API's errors read (:meth:`error`) and whatever else its requests need, and
    builds every :class:`Exchange` with :meth:`exchange`, so every reader is guarded."""

    provider: str
    base: str
    headers: Mapping[str, str] = field(factory=dict, repr=False)

    def url(self, path: str, **params: Any) -> str:
        """``base`` + ``path``, with the ``params`` that are not ``None`` as the query (``True`` as ``true``)."""
        query = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items() if v is not None}
        return f"{self.base.rstrip('/')}{path}" + (f"?{urlencode(query)}" if query else "")

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        idempotent: bool | None = None,
    ) -> HttpRequest:
        """A request to ``url`` carrying the endpoint's headers (and ``headers``)."""
        return HttpRequest(
            method=method, url=url, headers={**self.headers, **(headers or {})}, body=body, idempotent=idempotent
        )

    def error(self, response: HttpResponse) -> ProviderError:
        """The provider's error for an answer with a status of 400 or more; this default says the status and the
        start of the body."""
        text = response.body[:300].decode("utf-8", "replace").strip() or f"HTTP {response.status}"
        return ProviderError(text, provider=self.provider, status=response.status)

    def exchange(
        self, request: HttpRequest, read: Callable[[HttpResponse], T], *, probe: Probe | None = None
    ) -> Exchange[T]:
        """``request`` with its reader and :meth:`error`, both guarded (:func:`guarded_read`,
        :func:`guarded_error`)."""
        return Exchange(
            request=request,
            read=guarded_read(self.provider, read),
            error=guarded_error(self.provider, self.error),
            probe=probe,
        )


def json_object(provider: str, response: HttpResponse) -> dict[str, Any]:
    """The answer's body as a JSON object, or a :class:`~llmfiles.errors.ProviderError` saying what came instead
    (for a provider's readers)."""
    try:
        data = response.json()
    except ValueError:
        raise ProviderError(
            f"unexpected answer: expected a JSON object, got {response.body[:200]!r}",
            provider=provider,
            status=response.status,
        ) from None
    if not isinstance(data, dict):
        raise ProviderError(
            f"unexpected answer: expected a JSON object, got a {type(data).__name__}",
            provider=provider,
            status=response.status,
        )
    return data


_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\d)[Tt ](\d\d:\d\d:\d\d)(?:\.\d+)?([Zz]|[+-]\d\d:\d\d)?$")


def rfc3339_seconds(value: Any) -> int | None:
    """An RFC 3339 time as the providers write them (``2025-03-29T12:39:16.599879123Z``: any number of fraction
    digits, ``Z`` or an offset; a time without one is UTC) in whole seconds since the epoch; ``None`` for anything
    else."""
    if not isinstance(value, str):
        return None
    m = _RFC3339.match(value.strip())
    if m is None:
        return None
    zone = m.group(3)
    offset = "+00:00" if zone is None or zone in "Zz" else zone
    try:
        return int(datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}{offset}").timestamp())
    except ValueError:
        return None


def _unreadable(provider: str, response: HttpResponse, exc: Exception) -> ProviderError:
    return ProviderError(
        f"unexpected answer: it could not be read ({type(exc).__name__}: {str(exc)[:200]})",
        provider=provider,
        status=response.status,
    )


# --- large uploads -------------------------------------------------------------------------------------------


@frozen(kw_only=True)
class PartLimits:
    """The part sizes a protocol allows.  The engine takes the ``part_size`` setting (or ``preferred``), keeps it
    within ``minimum``/``maximum``, rounds it up to a multiple of ``alignment`` and grows it until the file fits
    in ``max_parts`` parts (as s3transfer's ``ChunksizeAdjuster`` does)."""

    preferred: int | None = None
    minimum: int = 1
    maximum: int | None = None
    alignment: int = 1
    max_parts: int = 10_000


class UploadProtocol(ABC):
    """A provider's large-file protocol: methods that build requests and read answers; the engine in
    :mod:`llmfiles.parts` owns the threads, retries, checksums, progress, the resume state and the commit.

    Subclass :class:`PartsUpload` (parts sent in parallel, then completed: OpenAI and Azure ``/uploads``, S3
    multipart) or :class:`ResumableUpload` (one session filled in order, committed by its last chunk: Cloud Storage
    resumable uploads, the Gemini Files API).

    A step that takes more than one request (create something, then ask where the bytes go) returns the first
    exchange, whose ``read`` answers with the next :class:`Exchange` (built from what the first answer said); the
    engine sends it in turn and passes on what the last one read.  Follow-ups never carry the file's bytes.

    The session state (``start``'s answer) is recorded so that a later run can continue the upload: every method
    must depend on the state and its arguments alone, never on values made when the protocol object was built
    (set ``resumable = False`` otherwise).
    """

    #: where the file goes, for the dry run and ``llmfiles uploads``
    destination: str = ""
    limits: PartLimits = PartLimits()
    #: seconds an unfinished session lives at the provider after its start (``None``: until it is aborted)
    session_ttl: float | None = None
    #: whether a later process may continue the session from the recorded state
    resumable: bool = True
    #: digests (hashlib names) of each part's bytes the protocol reads from ``Part.sent``
    part_digests: tuple[str, ...] = ()
    #: whole-file digests the protocol needs (``complete`` gets them)
    digests: tuple[str, ...] = ()
    #: the digests the provider reports (``FileObject.checksums``) for a file uploaded this way; ``None``: those of
    #: ``ProviderInfo.checksums`` (S3 reports no MD5 of a multipart object, say, while it does of a single one)
    checksums: tuple[str, ...] | None = None

    @abstractmethod
    def start(self) -> Exchange[UploadState]:
        """Open the session; its answer is read into the JSON-serializable state every later call gets."""

    def abort(self, state: UploadState) -> Exchange[object] | None:
        """End a session that failed for good (``None``: the provider has no such request; it expires)."""
        return None


#: ``({part index: receipt}, next cursor)``: one page of the parts a provider holds for a session
PartListing = tuple[Mapping[int, Receipt], str | None]


class PartsUpload(UploadProtocol):
    """Parts in any order (in parallel unless ``parallel`` is false), then one ``complete`` that commits them."""

    parallel: bool = True

    @abstractmethod
    def part(self, state: UploadState, part: Part) -> Exchange[Receipt]:
        """Send one part (put ``part.body`` in the request); its answer is read into a JSON-serializable receipt
        (``part.sent`` then holds the digests of the bytes sent)."""

    @abstractmethod
    def complete(
        self, state: UploadState, receipts: Sequence[Receipt], digests: Mapping[str, str]
    ) -> Exchange[FileObject]:
        """Commit the upload from the receipts (in part order) and the whole-file ``digests``."""

    def list_parts(self, state: UploadState, cursor: str | None) -> Exchange[PartListing] | None:
        """One page of the parts the provider holds (S3 ``ListParts``), to resume; ``None`` when it cannot be
        asked (then the receipts recorded by the earlier run are trusted while the session lives)."""
        return None


class ResumableUpload(UploadProtocol):
    """One session filled strictly in order; the provider says how many bytes it has kept after each chunk, and
    the chunk that brings the last byte commits the file."""

    @abstractmethod
    def chunk(self, state: UploadState, part: Part, final: bool) -> Exchange[int | FileObject]:
        """Send the bytes of ``part`` (``final``: they end the file); the answer is read into the number of bytes
        the provider has now, or the file when it has them all."""

    @abstractmethod
    def query(self, state: UploadState) -> Exchange[int | FileObject]:
        """Ask how many bytes the provider has (the file when it has them all), to continue after a failure."""


# --- what a provider is ----------------------------------------------------------------------------------------


class Http(Protocol):
    """The core's transport for one call, with the caller's TLS, timeout, retry and deadline settings: what a
    credential library or secret manager sends its own requests through.  Besides loopback, it may speak plain
    ``http://`` to link-local addresses (169.254.0.0/16, fe80::/10), where instance metadata servers hand out cloud
    credentials, and nowhere else."""

    @property
    def offline(self) -> bool:
        """``True`` in a dry run, which sends nothing (:meth:`send` refuses): credentials are then found and read
        but no token is asked for, and a provider says so in the credentials' ``source``."""
        ...

    def send(
        self,
        request: HttpRequest,
        *,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        retries: bool = True,
    ) -> HttpResponse:
        """Send ``request`` (retrying connection failures, 429 and 5xx) and return the final response.

        ``timeout`` and ``connect_timeout`` tighten the call's (they never loosen them: a library's quick probe of
        an endpoint that may not exist); ``retries=False`` sends it once (a library that retries on its own)."""
        ...


@runtime_checkable
class Provider(Protocol):
    """What the core calls for one provider (see the module documentation)."""

    info: ProviderInfo

    def credentials(self, settings: Settings, environ: Mapping[str, str], http: Http) -> Credentials:
        """Credentials from the resolved settings; :class:`~llmfiles.errors.MissingCredentials` (naming every place
        looked at, never a value) when there are none."""
        ...

    def exchange(self, op: Operation, credentials: Credentials, settings: Settings) -> Exchange[Any] | UploadProtocol:
        """What to send for ``op`` and how to read the answer: an :class:`Exchange` (``UploadParts``: an
        :class:`UploadProtocol`)."""
        ...

    def record_checker(self, purpose: str, settings: Settings) -> RecordChecker | None:
        """A fresh checker of the JSONL records of ``purpose`` (see :class:`~llmfiles.validate.RecordChecker`),
        or ``None`` when the provider has no rules for it."""
        ...


class BaseProvider(ABC):
    """Defaults for a :class:`Provider`: credentials from the first of ``info.credential_settings`` that has a
    value (a key, as ``Credentials(kind="api_key")``), no record rules.  Set ``info``; implement :meth:`exchange`."""

    info: ProviderInfo

    def credentials(self, settings: Settings, environ: Mapping[str, str], http: Http) -> Credentials:
        return key_credentials(self.info, settings)

    @abstractmethod
    def exchange(
        self, op: Operation, credentials: Credentials, settings: Settings
    ) -> Exchange[Any] | UploadProtocol: ...

    def record_checker(self, purpose: str, settings: Settings) -> RecordChecker | None:
        return None


def key_credentials(info: ProviderInfo, settings: Settings) -> Credentials:
    """The first of ``info.credential_settings`` that has a value, as ``Credentials(kind="api_key")``; no
    credentials at all when the provider declares none; :class:`~llmfiles.errors.MissingCredentials` naming every
    place that was looked at otherwise."""
    if not info.credential_settings:
        return NO_CREDENTIALS
    for name in info.credential_settings:
        value = settings.values.get(name)
        if isinstance(value, Secret) and value:
            return Credentials(kind="api_key", source=settings.source(name), secret=value)
    raise missing_credentials(info, info.credential_settings)


def missing_credentials(info: ProviderInfo, names: Sequence[str], what: str = "credentials") -> MissingCredentials:
    """The :class:`MissingCredentials` error for ``names``, naming every place the settings chain looked."""
    from llmfiles.errors import setting_advice
    from llmfiles.settings import all_specs

    specs = {s.name: s for s in all_specs(info)}
    env = next((v for n in names for v in specs[n].env), None)
    todo = setting_advice(names[0], provider=info.name)
    return MissingCredentials(
        info.name, what, places_looked(info, tuple(names)), hint=f"set {env}, or {todo}" if env else todo
    )


@runtime_checkable
class InProcessServer(Protocol):
    """A provider whose requests are answered in this process (the built-in ``local`` store): the transport hands
    requests to URLs of ``scheme`` to :meth:`serve` instead of a connection, through the same streaming path."""

    scheme: str

    def serve(self, request: HttpRequest, body: Iterator[bytes | memoryview], sink: IO[bytes] | None) -> HttpResponse:
        """Answer ``request``; ``body`` yields its body (the file's bytes as they are read); a successful download
        writes its content to ``sink`` when there is one."""
        ...


@frozen(kw_only=True)
class Registered:
    """A provider, the plugin that registered it, and the provider again when it answers its own requests."""

    provider: Provider = field(repr=False)
    plugin: str
    server: InProcessServer | None = field(default=None, repr=False)
