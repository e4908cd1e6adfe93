"""The only HTTP client in llmfiles.

Providers build :class:`~llmfiles.models.HttpRequest` objects; :class:`Transport` sends them with urllib3: bodies
streamed from disk with an exact ``Content-Length`` (the pipeline feeds the file's bytes into
:class:`~llmfiles.models.FileRange` segments), retries with urllib3's :class:`~urllib3.util.Retry` arithmetic
(exponential backoff, ``Retry-After``), a timeout that bounds each stall and each phase rather than a whole
transfer, a deadline that bounds everything (connect, send, headers, body: a watchdog closes a connection whose
answer drips past it), TLS verification, refusal of plain ``http://`` to non-loopback hosts and of URLs that could
be read two ways, and redaction of secrets in logs and errors.

It returns a typed :class:`Sent`: the final response, how many attempts it took, or what a probe found when a
create's answer was lost.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import logging
import math
import re
import socket
import threading
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from attrs import field, frozen

from llmfiles.clock import SYSTEM_CLOCK, Clock, SystemClock
from llmfiles.errors import (
    AnswerLost,
    DeadlineExceeded,
    LLMFilesError,
    NetworkError,
    ProviderError,
    RetriesExhausted,
    StallTimeout,
    advice,
)
from llmfiles.models import FileRange, HttpRequest, HttpResponse, body_length
from llmfiles.redact import SENSITIVE_HEADERS, redact, redact_url, redacted_headers
from llmfiles.urls import Origin, check_url, redirect_target

if TYPE_CHECKING:
    import urllib3

    from llmfiles.provider import InProcessServer

log = logging.getLogger("llmfiles.transport")

T = TypeVar("T")
#: answers that are retried (with backoff, Retry-After honoured); 529 is how Anthropic says it is overloaded, documented
#: as worth retrying (https://platform.claude.com/docs/en/api/errors)
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
BLOCKSIZE = 1024 * 1024
#: the first socket write of a body carries this much; writes grow (to ``MAX_SEND_PIECE``) while they go out fast
#: and shrink when they are slow: Python bounds a whole ``sendall`` by the socket timeout, so a large write on a slow
#: link would count as a stall although bytes keep moving, while small writes on a fast link cost an interpreter lock
#: hand-over each
SEND_PIECE = 64 * 1024
MAX_SEND_PIECE = 1024 * 1024
MIN_SEND_PIECE = 16 * 1024
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
MAX_REDIRECTS = 5
#: seconds a connection may take to open (DNS, TCP, TLS), whatever ``timeout`` says: a refused or black-holed
#: address is reported in seconds, not minutes
DEFAULT_CONNECT_TIMEOUT = 15.0


# --- what the caller says about one send -------------------------------------------------------------------------


@frozen(kw_only=True)
class RetryNotice:
    """One retry, for ``on_retry`` callbacks (the CLI prints them): what failed, the attempt that comes next out of
    how many there may be, and the wait before it."""

    request: str
    reason: str
    attempt: int
    attempts: int
    wait: float


@frozen(kw_only=True)
class Policy:
    """How to send for one call: the settings that shape the transport's behaviour, and the secrets to hide."""

    provider: str
    timeout: float = 600.0
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    max_retries: int = 5
    max_retry_wait: float = 60.0
    deadline_at: float | None = None
    allow_insecure_http: bool = False
    #: plain ``http://`` to link-local addresses too (only for credential libraries: instance metadata endpoints)
    link_local_http: bool = False
    verify: Any = True
    secrets: tuple[str, ...] = field(default=(), repr=False)
    on_retry: Callable[[RetryNotice], None] | None = field(default=None, eq=False, repr=False)
    clock: Clock = field(default=SYSTEM_CLOCK, eq=False, repr=False)

    def remaining(self) -> float | None:
        """Seconds left before the deadline (``None``: no deadline)."""
        if self.deadline_at is None:
            return None
        return self.deadline_at - self.clock.monotonic()

    def past_deadline(self) -> bool:
        left = self.remaining()
        return left is not None and left <= 0


class BodySource(Protocol):
    """Where the bytes of :class:`FileRange` segments come from (the upload pipeline)."""

    def stream(self, offset: int, length: int) -> Iterator[bytes | memoryview]:
        """The file's bytes ``[offset, offset + length)``, as they are read (called again for each attempt)."""
        ...


@frozen(kw_only=True)
class Sent(Generic[T]):
    """The outcome of :meth:`Transport.send`: the final ``response`` (which may carry an error status), or, when a
    create's answer was lost and its probe found what it created, ``found`` (then ``response`` is ``None``)."""

    response: HttpResponse | None
    attempts: int = 1
    found: T | None = None

    @property
    def found_by_probe(self) -> bool:
        return self.found is not None


# --- the watchdog: a deadline bounds every phase --------------------------------------------------------------


class _Budget:
    """A time limit on one thread's current request: the deadline, tightened to ``timeout`` once the request is sent
    (its answer must come within that, however slowly it drips); the watchdog shuts the connection's socket when it
    passes (and a :class:`Cancel` the request was made under, when it is cancelled)."""

    __slots__ = ("_dog", "cancel", "conn", "deadline", "fired", "when")

    def __init__(self, dog: _Watchdog, deadline: float | None) -> None:
        self._dog = dog
        self.deadline = deadline
        self.when: float | None = None
        self.conn: Any = None
        #: why the connection was cut: "deadline", "stall" or "cancelled" (``None``: it was not)
        self.fired: str | None = None
        self.cancel = _cancel.get()
        if self.cancel is not None:
            self.cancel.watch(self)
        if deadline is not None:
            self.limit(deadline)

    def done(self) -> None:
        """The request is over (its connection is back in the pool, or closed)."""
        self.conn = None
        if self.cancel is not None:
            self.cancel.forget(self)

    def limit(self, when: float) -> None:
        """Cut the connection at ``when`` at the latest."""
        if self.deadline is not None:
            when = min(when, self.deadline)
        if self.when is None or when < self.when:
            self.when = when
            self._dog.watch(self, when)


_current = threading.local()


class Cancel:
    """Cuts the requests made under it, in whichever thread (see :func:`cancellable`): the large-file engine cancels
    the parts in flight when the upload is interrupted, instead of waiting for answers that may take minutes."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self._budgets: set[_Budget] = set()
        self._lock = threading.Lock()

    def cancel(self) -> None:
        """Cut every request in flight under this, and refuse the next ones."""
        with self._lock:
            self.cancelled.set()
            budgets = list(self._budgets)
        for budget in budgets:
            budget.fired = budget.fired or "cancelled"
            if budget.conn is not None:
                _shut(budget.conn)

    def watch(self, budget: _Budget) -> None:
        with self._lock:
            if self.cancelled.is_set():
                budget.fired = "cancelled"
            self._budgets.add(budget)

    def forget(self, budget: _Budget) -> None:
        with self._lock:
            self._budgets.discard(budget)

    def check(self) -> None:
        if self.cancelled.is_set():
            raise _Cancelled("cancelled: the operation this request belonged to was stopped")


_cancel: contextvars.ContextVar[Cancel | None] = contextvars.ContextVar("llmfiles_cancel", default=None)


@contextlib.contextmanager
def cancellable() -> Iterator[Cancel]:
    """Requests sent in this context (and in threads run in copies of it) can be cut at once by the
    :class:`Cancel` it yields."""
    cancel = Cancel()
    token = _cancel.set(cancel)
    try:
        yield cancel
    finally:
        _cancel.reset(token)


class _Watchdog:
    """One thread per transport that cuts connections whose budget passed (a server that drips its answer one byte
    at a time never trips a socket timeout, which bounds each read, not the whole answer)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, _Budget]] = []
        self._cond = threading.Condition()
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        # when the thread, waiting, looks at the heap again of its own accord: a budget due later needs no wake-up
        # (waking it costs a thread switch per request; most budgets are minutes away and end long before)
        self._wakes_at = -math.inf

    def budget(self, deadline: float | None) -> _Budget:
        return _Budget(self, deadline)

    def watch(self, budget: _Budget, when: float) -> None:
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._ids), budget))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="llmfiles-watchdog", daemon=True)
                self._thread.start()
            if when < self._wakes_at:
                self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                if not self._heap:
                    self._wait(5.0)
                    continue
                when, _, budget = self._heap[0]
                wait = when - self._clock.monotonic()
                if wait > 0:
                    self._wait(min(wait, 1.0))
                    continue
                heapq.heappop(self._heap)
                if budget.when != when or budget.fired or budget.conn is None:
                    continue  # tightened since, already cut, or done
                budget.fired = "deadline" if budget.deadline is not None and when >= budget.deadline else "stall"
                _shut(budget.conn)

    def _wait(self, seconds: float) -> None:
        """Wait (holding ``_cond``) until ``seconds`` pass or a budget due sooner is watched."""
        self._wakes_at = self._clock.monotonic() + seconds
        self._cond.wait(seconds)
        self._wakes_at = -math.inf


def _shut(conn: Any) -> None:
    sock = getattr(conn, "sock", None) or getattr(conn, "_llmfiles_sock", None)
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _connection_classes() -> tuple[type, type]:
    """urllib3's connection classes, telling the current thread's budget which connection it is using."""
    from urllib3.connection import HTTPConnection, HTTPSConnection

    class _Tracked:
        def connect(self) -> None:
            super().connect()  # type: ignore[misc]
            # kept: http.client forgets ``sock`` once a ``Connection: close`` answer's headers are read, while the
            # body still arrives through it (the watchdog must still be able to cut it)
            self._llmfiles_sock = self.sock  # type: ignore[attr-defined]

        def request(self, *args: Any, **kw: Any) -> None:
            budget: _Budget | None = getattr(_current, "budget", None)
            if budget is not None:
                budget.conn = self
                if budget.fired is not None:
                    _shut(self)
            super().request(*args, **kw)  # type: ignore[misc]

    class TrackedHTTP(_Tracked, HTTPConnection):
        pass

    class TrackedHTTPS(_Tracked, HTTPSConnection):
        pass

    return TrackedHTTP, TrackedHTTPS


# --- the body of one attempt ---------------------------------------------------------------------------------


class _BodyStream:
    """Iterates a request body in pieces; notices the deadline between pieces; knows whether it started and
    whether every byte was handed to the connection."""

    def __init__(self, request: HttpRequest, source: BodySource | None, policy: Policy) -> None:
        self.body = request.body
        self.source = source
        self.policy = policy
        self.started = False
        self.finished = request.body is None
        #: called once every byte was handed to the connection
        self.on_finished: Callable[[], None] | None = None

    def __iter__(self) -> Iterator[bytes | memoryview]:
        body = self.body
        if body is None:
            return
        for seg in (body,) if isinstance(body, bytes) else body:
            if isinstance(seg, bytes):
                if seg:
                    self.started = True
                    yield seg
                continue
            yield from self._file_range(seg)
        self.finished = True
        if self.on_finished is not None:
            self.on_finished()

    def _file_range(self, seg: FileRange) -> Iterator[memoryview]:
        if self.source is None:
            raise LLMFilesError("a request carries the file's bytes but no file is being uploaded (a provider bug)")
        policy = self.policy
        clock = policy.clock
        piece = SEND_PIECE
        fast, slow = policy.timeout / 64, policy.timeout / 8
        for block in self.source.stream(seg.offset, seg.length):
            # pieces are views, not copies: a copy of every byte cost as much as the send itself
            view = memoryview(block)
            i = 0
            while i < len(view):
                if policy.past_deadline():
                    raise DeadlineExceeded("the operation's deadline passed while sending the request body")
                self.started = True
                before = clock.monotonic()
                yield view[i : i + piece]  # the connection sends it before asking for the next one
                i += piece
                took = clock.monotonic() - before
                if took < fast and piece < MAX_SEND_PIECE:
                    piece *= 2
                elif took > slow and piece > MIN_SEND_PIECE:
                    piece //= 2


# --- the transport -------------------------------------------------------------------------------------------


class Transport:
    """Sends requests.  Thread-safe; holds one urllib3 pool manager per TLS configuration."""

    def __init__(self, *, maxsize: int = 32, blocksize: int = BLOCKSIZE, clock: Clock = SYSTEM_CLOCK) -> None:
        self._maxsize = maxsize
        self._blocksize = blocksize
        self._pools: dict[Any, urllib3.PoolManager] = {}
        self._lock = threading.Lock()
        self._watchdog = _Watchdog(clock)

    def _pool(self, verify: Any) -> urllib3.PoolManager:
        key = verify if isinstance(verify, (bool, str)) else str(verify)
        pool = self._pools.get(key)
        if pool is not None:
            return pool
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = self._new_pool(verify)
        return pool

    def _new_pool(self, verify: Any) -> urllib3.PoolManager:
        import urllib3

        _redact_urllib3_logs()
        kw: dict[str, Any] = {}
        if verify is False:
            kw["cert_reqs"] = "CERT_NONE"
            log.warning("TLS certificate verification is off (verify=False)")
        else:
            kw["cert_reqs"] = "CERT_REQUIRED"
            if isinstance(verify, str):
                kw["ca_certs"] = verify
        pool = urllib3.PoolManager(num_pools=32, maxsize=self._maxsize, block=False, blocksize=self._blocksize, **kw)
        http_cls, https_cls = _connection_classes()

        class HTTPPool(urllib3.HTTPConnectionPool):
            ConnectionCls = http_cls

        class HTTPSPool(urllib3.HTTPSConnectionPool):
            ConnectionCls = https_cls

        pool.pool_classes_by_scheme = {"http": HTTPPool, "https": HTTPSPool}
        return pool

    def close(self) -> None:
        """Close every pooled connection, now (urllib3's ``PoolManager.clear`` only forgets its pools, whose
        connections then close whenever the garbage collector gets to them)."""
        with self._lock:
            managers, self._pools = list(self._pools.values()), {}
        for manager in managers:
            # (a RecentlyUsedContainer refuses to be iterated: its keys() is a copy taken under its lock)
            pools = [manager.pools.get(key) for key in manager.pools.keys()]  # noqa: SIM118
            manager.clear()
            for pool in pools:
                if pool is not None:
                    pool.close()

    # -- public ----------------------------------------------------------------------------------------------

    def send(
        self,
        request: HttpRequest,
        policy: Policy,
        *,
        body: BodySource | None = None,
        sink: IO[bytes] | None = None,
        on_sink_chunk: Callable[[bytes], None] | None = None,
        lost: Callable[[str], T | None] | None = None,
        server: InProcessServer | None = None,
    ) -> Sent[T]:
        """Send ``request`` with retries; return the final response (which may carry an error status).

        ``body`` streams the file's bytes into :class:`FileRange` segments.  With ``sink``, a successful response
        body is streamed into it instead of being kept in memory.  ``lost`` is asked, when a request that is not
        idempotent was sent in full and its answer was lost (the connection broke, a 5xx came back), whether it was
        done anyway: it returns what was created (then sending stops), ``None`` (then it is sent again), or raises.
        ``server`` answers in-process the URLs of its scheme.
        """
        from urllib3.util.retry import Retry

        retry = Retry(
            total=policy.max_retries,
            backoff_factor=0.5,
            backoff_max=policy.max_retry_wait,
            backoff_jitter=0.25,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=None,
            raise_on_status=False,
            respect_retry_after_header=True,
        )
        attempt = 1
        stream = _BodyStream(request, body, policy)  # (the attempt that is under way)
        try:
            while True:
                if policy.past_deadline():
                    raise DeadlineExceeded(f"the operation's deadline passed before {request.method} could be sent")
                cancel = _cancel.get()
                if cancel is not None:
                    cancel.check()
                stream = _BodyStream(request, body, policy)
                sent = self._try_once(request, stream, policy, sink, on_sink_chunk, server, lost, retry, attempt)
                if isinstance(sent, Sent):
                    return sent
                retry, attempt = sent, attempt + 1
        except KeyboardInterrupt as exc:
            if lost is not None:  # a create: say whether the provider may have made what it creates
                exc.add_note(_unfinished_note(stream, "interrupted"))
            raise
        except DeadlineExceeded as exc:
            if lost is not None and stream.finished:  # a create whose answer the deadline cut off
                exc.add_note(_unfinished_note(stream, "stopped by the deadline"))
            raise

    def _try_once(
        self,
        request: HttpRequest,
        stream: _BodyStream,
        policy: Policy,
        sink: IO[bytes] | None,
        on_sink_chunk: Callable[[bytes], None] | None,
        server: InProcessServer | None,
        lost: Callable[[str], T | None] | None,
        retry: Any,
        attempt: int,
    ) -> Sent[T] | Any:
        """One attempt: its outcome (a :class:`Sent`), or the ``Retry`` to go on with (after its wait)."""
        if sink is not None:
            sink.seek(0)
            sink.truncate()
        try:
            response = self._attempt(request, stream, policy, sink, on_sink_chunk, server)
        except _Retryable as exc:
            failed: LLMFilesError | None = _scrubbed(exc.error, policy.secrets)
        else:
            failed = None
        # (handled out of the ``except``: what is raised from here has no context to carry a secret in)
        if failed is not None:
            if lost is not None and _may_have_happened(request, stream):
                found = _ask(lost, request, str(failed), policy)
                if found is not None:
                    return Sent(response=None, attempts=attempt, found=found)
            if policy.max_retries == 0:
                raise failed  # no retry was allowed, so none was exhausted
            return self._next(retry, request, failed, attempt, policy, None)
        if response.status not in RETRY_STATUSES:
            return Sent(response=response, attempts=attempt)
        # a rate limit is answered before anything is done; other failures may come after the work was done
        if response.status != 429 and lost is not None and _may_have_happened(request, stream):
            found = _ask(lost, request, f"HTTP {response.status}", policy)
            if found is not None:
                return Sent(response=None, attempts=attempt, found=found)
        if attempt > policy.max_retries:
            return Sent(response=response, attempts=attempt)
        return self._next(retry, request, None, attempt, policy, response)

    def _next(
        self,
        retry: Any,
        request: HttpRequest,
        err: LLMFilesError | None,
        attempt: int,
        policy: Policy,
        response: HttpResponse | None,
    ) -> Any:
        """Count one failure with urllib3's ``Retry``, wait as it says (``Retry-After`` first, capped by
        ``max_retry_wait``), tell ``on_retry``; raise :class:`RetriesExhausted` when no retry is left."""
        import urllib3
        from urllib3.exceptions import InvalidHeader, MaxRetryError

        u3_response = None
        if response is not None:
            u3_response = urllib3.HTTPResponse(body=b"", headers=dict(response.headers), status=response.status)
        try:
            retry = retry.increment(
                request.method, redact_url(request.url), response=u3_response, error=None if err is None else err
            )
        except MaxRetryError:
            if err is None:
                err = ProviderError(f"HTTP {response.status if response else '?'}", provider=policy.provider)
            raise RetriesExhausted(
                redact(f"{err} (gave up after {attempt} attempts)", policy.secrets), last=err, attempts=attempt
            ) from None
        wait: float | None = None
        if u3_response is not None:
            try:
                wait = retry.get_retry_after(u3_response)
            except InvalidHeader:
                wait = None
        if wait is None:
            wait = retry.get_backoff_time() or 0.0
        wait = min(max(0.0, wait), policy.max_retry_wait)
        left = policy.remaining()
        reason = str(err) if err is not None else f"HTTP {response.status if response else '?'}"
        if left is not None and wait >= left:
            raise DeadlineExceeded(
                redact(
                    f"the operation's deadline would pass before the next retry; last error: {reason}", policy.secrets
                )
            )
        notice = RetryNotice(
            request=f"{request.method} {redact_url(request.url)}",
            reason=redact(reason, policy.secrets),
            attempt=attempt + 1,
            attempts=policy.max_retries + 1,
            wait=wait,
        )
        log.info("retrying %s after %s in %.2fs (attempt %d of %d)", notice.request, notice.reason, wait, *_of(notice))
        if policy.on_retry is not None:
            policy.on_retry(notice)
        cancel = _cancel.get()
        if cancel is not None and isinstance(policy.clock, SystemClock):
            cancel.cancelled.wait(wait)  # a cancel ends the wait
            cancel.check()
        else:
            policy.clock.sleep(wait)
        return retry

    # -- one attempt -----------------------------------------------------------------------------------------

    def _attempt(
        self,
        request: HttpRequest,
        stream: _BodyStream,
        policy: Policy,
        sink: IO[bytes] | None,
        on_sink_chunk: Callable[[bytes], None] | None,
        server: InProcessServer | None,
    ) -> HttpResponse:
        schemes = frozenset({server.scheme}) if server is not None else frozenset()
        where = check_url(request.url, policy.allow_insecure_http, schemes=schemes, link_local=policy.link_local_http)
        if server is not None and where.scheme == server.scheme:
            tee: Any = _Tee(sink, on_sink_chunk) if sink is not None and on_sink_chunk is not None else sink
            return server.serve(request, iter(stream), tee)
        headers = dict(request.headers)
        if request.body is not None:
            headers["Content-Length"] = str(body_length(request.body))
        elif request.method.upper() in {"POST", "PUT", "PATCH"}:
            headers["Content-Length"] = "0"
        url = request.url
        for _ in range(MAX_REDIRECTS + 1):
            resp = self._open(request.method.upper(), url, headers, stream, policy, where)
            location = _redirect(resp, request.method)
            if location is None:
                return self._read(resp, url, where, policy, sink, on_sink_chunk)
            new_url, new_where = redirect_target(
                url, location, policy.allow_insecure_http, link_local=policy.link_local_http
            )
            if new_where != where:
                # never hand credentials to another origin (decided from the parse urllib3 connects with)
                headers = {k: v for k, v in headers.items() if k.lower() not in SENSITIVE_HEADERS}
            url, where = new_url, new_where
        raise NetworkError(f"more than {MAX_REDIRECTS} redirects from {redact_url(request.url)}")

    def _open(
        self, method: str, url: str, headers: dict[str, str], stream: _BodyStream, policy: Policy, where: Origin
    ) -> Any:
        """Send the request and wait for the response's headers (within ``timeout`` and the deadline)."""
        import urllib3
        from urllib3 import exceptions as u3

        left = policy.remaining()
        stall = policy.timeout if left is None else max(0.001, min(policy.timeout, left))
        connect = min(stall, policy.connect_timeout)
        host = where.host
        if log.isEnabledFor(logging.DEBUG):  # the redacted URL and headers are made only to be logged
            log.debug("%s %s headers=%s", method, redact_url(url), redacted_headers(headers))
        budget = self._watchdog.budget(policy.deadline_at)
        clock = policy.clock
        # the answer must begin within ``timeout`` of the last byte of the request, however slowly it drips
        if stream.body is None:
            budget.limit(clock.monotonic() + connect + stall)
        else:
            stream.on_finished = lambda: budget.limit(clock.monotonic() + stall)
        _current.budget = budget
        try:
            return self._pool(policy.verify).urlopen(
                method,
                url,
                body=iter(stream) if stream.body is not None else None,
                headers=headers,
                retries=False,
                redirect=False,
                timeout=urllib3.Timeout(connect=connect, read=stall),
                preload_content=False,
            )
        except u3.NewConnectionError as exc:  # (a subclass of ConnectTimeoutError in urllib3)
            raise _Retryable(NetworkError(f"cannot connect to {host}: {_why(exc)}")) from None
        except u3.ConnectTimeoutError as exc:
            raise _timeout(policy, budget, f"connecting to {host} ({_why(exc)})", connect) from None
        except (u3.ReadTimeoutError, TimeoutError) as exc:
            raise _timeout(policy, budget, f"waiting for {host} ({_why(exc)})", stall) from None
        except u3.SSLError as exc:
            raise NetworkError(
                f"TLS failed with {host}: {_why(exc)}. If the server uses a private CA, "
                + advice("pass verify='/path/ca.pem'", "pass -s verify=/path/ca.pem")
                + " (env LLMFILES_CA_BUNDLE)"
            ) from None
        except (u3.HTTPError, OSError) as exc:
            if budget.fired is not None:
                raise _timeout(policy, budget, f"waiting for {host}", stall) from None
            if _timed_out(exc):  # urllib3 reports a stalled body write as ProtocolError(..., TimeoutError)
                raise _timeout(policy, budget, f"sending to {host} ({_why(exc)})", stall) from None
            raise _Retryable(NetworkError(f"connection to {host} failed: {_why(exc)}")) from None
        finally:
            _current.budget = None
            budget.done()

    def _read(
        self,
        resp: Any,
        url: str,
        where: Origin,
        policy: Policy,
        sink: IO[bytes] | None,
        on_sink_chunk: Callable[[bytes], None] | None,
    ) -> HttpResponse:
        """Read the response body: streamed into ``sink`` (a download), else bounded in size and, as a whole, in
        time (``timeout``, and the deadline)."""
        from urllib3 import exceptions as u3

        status = resp.status
        streaming = sink is not None and 200 <= status < 300
        budget = self._watchdog.budget(policy.deadline_at)
        budget.conn = resp.connection
        if not streaming:  # an answer held in memory must arrive whole within ``timeout``; a download may take long
            budget.limit(policy.clock.monotonic() + policy.timeout)
        try:
            resp_headers = {k.lower(): v for k, v in resp.headers.items()}
            if streaming:
                assert sink is not None
                for block in resp.stream(self._blocksize, decode_content=True):
                    sink.write(block)
                    if on_sink_chunk is not None:
                        on_sink_chunk(block)
                data = b""
            else:
                data = _read_bounded(resp, MAX_RESPONSE_BYTES, where.host, policy.provider)
        except (u3.ReadTimeoutError, TimeoutError) as exc:
            raise _timeout(policy, budget, f"reading from {where.host} ({_why(exc)})", policy.timeout) from None
        except (u3.ProtocolError, u3.HTTPError, OSError) as exc:
            if isinstance(exc, LLMFilesError):
                raise
            if budget.fired is not None:
                raise _timeout(policy, budget, f"reading from {where.host}", policy.timeout) from None
            raise _Retryable(NetworkError(f"connection to {where.host} broke while reading: {_why(exc)}")) from None
        finally:
            budget.done()
            resp.release_conn()
        return HttpResponse(status=status, headers=resp_headers, body=data, url=url)


def _of(notice: RetryNotice) -> tuple[int, int]:
    return notice.attempt, notice.attempts


def _ask(lost: Callable[[str], T | None], request: HttpRequest, what: str, policy: Policy) -> T | None:
    """Whether an attempt whose answer was lost was done: ``lost``'s answer, or :class:`AnswerLost`."""
    where = f"{request.method} {redact_url(request.url)}"
    log.info("%s was sent in full but got no usable answer (%s); checking whether it was done", where, what)
    try:
        found = lost(what)
    except AnswerLost:
        raise
    except LLMFilesError as exc:
        problem = f"the check failed: {exc}"
    except Exception as exc:  # a provider's probe reader that cannot read the answer
        problem = f"the check's answer could not be read: {type(exc).__name__}: {exc}"
    else:
        log.info("%s %s", where, "was done although its answer was lost" if found is not None else "was not done")
        return found
    raise AnswerLost(
        redact(
            f"{where} was sent in full but its answer was lost ({what}), and whether the provider did it could not "
            f"be found out ({problem}). It was not sent again, so as not to create a second copy: list the files "
            "before you upload again",
            policy.secrets,
        )
    ) from None


def _unfinished_note(stream: _BodyStream, how: str) -> str:
    """What a create that was ``how`` (interrupted, stopped by the deadline) may have left at the provider."""
    if stream.finished:
        return (
            f"llmfiles: {how} after the request was sent in full: the provider may already have the file; list the "
            "files (`llmfiles list`) before you upload it again"
        )
    return f"llmfiles: {how} before the request was sent in full: the provider did not get the whole file"


def _scrubbed(err: LLMFilesError, secrets: tuple[str, ...]) -> LLMFilesError:
    """``err`` with the secrets masked in its message (a connection error may quote what a server sent)."""
    text = redact(str(err), secrets)
    return err if text == str(err) else type(err)(text)


def _redirect(resp: Any, method: str) -> str | None:
    if resp.status in (301, 302, 303, 307, 308) and method.upper() in {"GET", "HEAD"}:
        location = resp.headers.get("location")
        if location:
            resp.drain_conn()
            resp.release_conn()
            return str(location)
    return None


def _timeout(policy: Policy, budget: _Budget, doing: str, seconds: float) -> Exception:
    if budget.fired == "cancelled":
        return _Cancelled(f"cancelled while {doing}: the operation this request belonged to was stopped")
    if budget.fired == "deadline" or policy.past_deadline():
        return DeadlineExceeded(f"the operation's deadline passed while {doing}")
    return _Retryable(StallTimeout(f"no progress for {seconds:g}s {doing}"))


def _may_have_happened(request: HttpRequest, stream: _BodyStream) -> bool:
    """Whether an attempt of a request that is not idempotent may have been done although no good answer came: it
    was sent in full."""
    return not request.is_idempotent and stream.finished


def _read_bounded(resp: Any, limit: int, host: str, provider: str) -> bytes:
    chunks: list[bytes] = []
    total = 0
    for block in resp.stream(256 * 1024, decode_content=True):
        total += len(block)
        if total > limit:
            resp.close()
            raise ProviderError(
                f"the response from {host} is larger than {limit:,} bytes; refusing to read it into memory",
                provider=provider,
                status=resp.status,
            )
        chunks.append(block)
    return b"".join(chunks)


def _timed_out(exc: BaseException) -> bool:
    """Whether ``exc`` wraps a socket timeout (in its arguments, cause or context)."""
    todo: list[BaseException] = [exc]
    for _ in range(8):
        if not todo:
            break
        e = todo.pop()
        if isinstance(e, TimeoutError):
            return True
        todo.extend(a for a in e.args if isinstance(a, BaseException))
        todo.extend(x for x in (e.__cause__, e.__context__) if x is not None)
    return False


#: what urllib3 puts before the reason of a connection error: ``HTTPConnection(host='x', port=1): Failed to
#: establish a new connection: ``
_U3_PREFIX = re.compile(r"^(?:\w+\(host=.*?, port=\d+\): )?(?:Failed to establish a new connection: )?")


def _why(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    text = str(reason) if reason is not None else str(exc)
    return _U3_PREFIX.sub("", text) or type(exc).__name__


class _Tee:
    """A sink that tells ``on_chunk`` about every block written to it."""

    def __init__(self, sink: IO[bytes], on_chunk: Callable[[bytes], None]) -> None:
        self._sink = sink
        self._on_chunk = on_chunk

    def write(self, block: bytes) -> int:
        n = self._sink.write(block)
        self._on_chunk(block)
        return n

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sink, name)


class _Cancelled(LLMFilesError):
    """Internal: a request cut by a :class:`Cancel` (never retried; the operation that cancelled it reports why)."""


class _Retryable(Exception):
    """Internal: a network error that a retry may cure."""

    def __init__(self, error: LLMFilesError) -> None:
        super().__init__(str(error))
        self.error = error


class _RedactUrls(logging.Filter):
    """urllib3 logs each request's path and query at DEBUG: hide signature/token/session values in them too."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_url(a) if isinstance(a, str) and "?" in a else a for a in record.args)
        return True


_URLLIB3_REDACTED = False


def _redact_urllib3_logs() -> None:
    global _URLLIB3_REDACTED
    if not _URLLIB3_REDACTED:
        _URLLIB3_REDACTED = True
        logging.getLogger("urllib3.connectionpool").addFilter(_RedactUrls())
