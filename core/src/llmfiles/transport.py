"""The only HTTP client in llmfiles.

Plugins build :class:`~llmfiles.models.HttpRequest` objects; :class:`Transport` sends them with urllib3:
bodies streamed from disk with an exact ``Content-Length``, retries with capped exponential backoff and jitter
(honouring ``Retry-After``), a timeout that bounds each stall rather than the whole transfer, an optional
deadline for the whole operation, TLS verification, refusal of plain ``http://`` to non-loopback hosts, and
redaction of secrets in logs and errors.

URLs with the ``local:`` scheme are answered in-process by the built-in ``local`` provider's store, through the
same code path, so the engine is exercised without a network.
"""

from __future__ import annotations

import email.utils
import ipaddress
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from llmfiles.errors import (
    AnswerLost,
    DeadlineExceeded,
    InsecureTransport,
    LLMFilesError,
    NetworkError,
    ProviderError,
    RetriesExhausted,
    StallTimeout,
)
from llmfiles.models import (
    SENSITIVE_HEADERS,
    Body,
    GeneratedBody,
    HttpRequest,
    HttpResponse,
    SourceRange,
    body_length,
)

if TYPE_CHECKING:
    import urllib3

log = logging.getLogger("llmfiles.transport")

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
BLOCKSIZE = 1024 * 1024
#: the most one socket write carries: Python bounds a whole ``sendall`` by the socket timeout, so a write of a full
#: block on a slow link would count as a stall although bytes keep moving
SEND_PIECE = 64 * 1024
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
MAX_REDIRECTS = 5
# upload_id: a Cloud Storage resumable session URI works as a credential until the session expires
_SENSITIVE_QUERY = ("sig", "signature", "token", "key", "credential", "secret", "password", "code", "upload_id")

ChunkCallback = Callable[[bytes], None]


# --- redaction -----------------------------------------------------------------------------------------------


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret value found in ``text`` with ``***``."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def redact_url(url: str) -> str:
    """A URL fit for logs: userinfo dropped, values of signature/token/key-like query parameters hidden."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, "***" if any(s in k.lower() for s in _SENSITIVE_QUERY) else v) for k, v in pairs], safe="*/"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redacted_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: ("***" if k.lower() in SENSITIVE_HEADERS else v) for k, v in headers.items()}


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


# --- helpers -------------------------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, allow_insecure_http: bool) -> None:
    """Refuse URLs llmfiles must not send to (plain http:// to a non-loopback host, unknown schemes)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in {"https", "local"}:
        return
    if scheme == "http":
        if allow_insecure_http or is_loopback(parts.hostname or ""):
            return
        raise InsecureTransport(
            f"refusing plain http:// to {parts.hostname!r}: credentials and data would travel unencrypted. "
            "Use https://, or pass allow_insecure_http=True (env LLMFILES_ALLOW_INSECURE_HTTP=1) if you mean it"
        )
    raise InsecureTransport(f"unsupported URL scheme {scheme!r} in {redact_url(url)!r}; use https://")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return float(max(0.0, when.timestamp() - (time.time() if now is None else now)))


def backoff_delay(attempt: int, cap: float, base: float = 0.5) -> float:
    """Capped exponential backoff with jitter: half fixed, half random, so retries spread out."""
    delay = min(cap, base * (2.0**attempt))
    return delay / 2 + random.uniform(0, delay / 2)


def _replayable(body: Body | None) -> bool:
    if body is None or isinstance(body, bytes):
        return True
    return all(not isinstance(seg, SourceRange) or seg.source.replayable for seg in body)


class _BodyStream:
    """Iterates a request body in blocks; reports data chunks; notices the deadline between blocks."""

    def __init__(
        self, body: Body | None, on_chunk: ChunkCallback | None, deadline_at: float | None, blocksize: int
    ) -> None:
        self.body = body
        self.on_chunk = on_chunk
        self.deadline_at = deadline_at
        self.blocksize = blocksize
        self.started = False
        #: every byte of the body was handed to the connection (a request without a body: from the start)
        self.finished = body is None

    def __iter__(self) -> Iterator[bytes | memoryview]:
        body = self.body
        if body is None:
            return
        if isinstance(body, bytes):
            body = (body,)
        for seg in body:
            if isinstance(seg, bytes):
                if seg:
                    self.started = True
                    yield seg
                continue
            if isinstance(seg, SourceRange):
                chunks: Iterable[bytes] = seg.source.read_range(seg.offset, seg.length, self.blocksize)
                expected: int | None = seg.length
            else:
                assert isinstance(seg, GeneratedBody)
                chunks, expected = seg.factory(), seg.length
            sent = 0
            for block in chunks:
                if self.on_chunk is not None:
                    self.on_chunk(block)
                sent += len(block)
                # pieces are views, not copies: a copy of every byte cost as much as the send itself
                view = memoryview(block)
                for i in range(0, len(block), SEND_PIECE):
                    if self.deadline_at is not None and time.monotonic() > self.deadline_at:
                        raise DeadlineExceeded("the operation's deadline passed while sending the request body")
                    self.started = True
                    yield view[i : i + SEND_PIECE]
            if expected is not None and sent != expected:
                raise NetworkError(
                    f"request body segment produced {sent:,} bytes but declared {expected:,}; "
                    "was the file changed while it was being uploaded?"
                )
        self.finished = True


# --- the transport -------------------------------------------------------------------------------------------


class Transport:
    """Sends requests.  Thread-safe; holds one urllib3 pool manager per TLS configuration."""

    def __init__(self, *, maxsize: int = 32, blocksize: int = BLOCKSIZE) -> None:
        self._maxsize = maxsize
        self._blocksize = blocksize
        self._pools: dict[Any, urllib3.PoolManager] = {}
        self._lock = threading.Lock()

    def _pool(self, verify: Any) -> urllib3.PoolManager:
        key = verify if isinstance(verify, (bool, str)) else str(verify)
        pool = self._pools.get(key)
        if pool is not None:
            return pool
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
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
                pool = urllib3.PoolManager(
                    num_pools=32, maxsize=self._maxsize, block=False, blocksize=self._blocksize, **kw
                )
                self._pools[key] = pool
        return pool

    def close(self) -> None:
        """Close every pooled connection."""
        with self._lock:
            for pool in self._pools.values():
                pool.clear()
            self._pools.clear()

    # -- public ----------------------------------------------------------------------------------------------

    def send(
        self,
        request: HttpRequest,
        *,
        provider: str,
        timeout: float = 600.0,
        max_retries: int = 5,
        max_retry_wait: float = 60.0,
        deadline_at: float | None = None,
        allow_insecure_http: bool = False,
        verify: Any = True,
        secrets: Iterable[str] = (),
        on_chunk: ChunkCallback | None = None,
        on_restart: Callable[[], None] | None = None,
        sink: IO[bytes] | None = None,
        on_sink_chunk: ChunkCallback | None = None,
        retry_statuses: frozenset[int] = RETRY_STATUSES,
    ) -> HttpResponse:
        """Send ``request`` with retries; return the final response (which may carry an error status).

        ``on_chunk`` sees every data byte of the body as it is sent (for checksums and progress) and
        ``on_restart`` is called before a retry sends the body again.  With ``sink``, a successful response body is
        streamed into it instead of being kept in memory (``on_sink_chunk`` sees each block).
        """
        secrets = tuple(secrets)
        replayable = _replayable(request.body)
        probe_kw: dict[str, Any] = dict(
            provider=provider,
            timeout=timeout,
            max_retries=max_retries,
            max_retry_wait=max_retry_wait,
            deadline_at=deadline_at,
            allow_insecure_http=allow_insecure_http,
            verify=verify,
            secrets=secrets,
        )
        attempt = 0
        while True:
            if deadline_at is not None and time.monotonic() >= deadline_at:
                raise DeadlineExceeded(f"the operation's deadline passed before {request.method} could be sent")
            stream = _BodyStream(request.body, on_chunk, deadline_at, self._blocksize)
            if sink is not None:
                sink.seek(0)
                sink.truncate()
            try:
                response = self._send_once(
                    request,
                    stream,
                    provider=provider,
                    timeout=timeout,
                    deadline_at=deadline_at,
                    allow_insecure_http=allow_insecure_http,
                    verify=verify,
                    sink=sink,
                    on_sink_chunk=on_sink_chunk,
                )
            except (NetworkError, _Retryable) as exc:
                err = exc.error if isinstance(exc, _Retryable) else exc
                if isinstance(exc, _Retryable) and _may_have_happened(request, stream):
                    found = self._probe(request, str(err), probe_kw)
                    if found is not None:
                        return found
                can_retry = isinstance(exc, _Retryable) and (replayable or not stream.started)
                if not can_retry:
                    raise err from None
                if max_retries == 0:
                    raise err from None  # no retry was allowed, so none was exhausted
                if attempt >= max_retries:
                    raise RetriesExhausted(
                        redact(f"{err} (gave up after {attempt + 1} attempts)", secrets), last=err, attempts=attempt + 1
                    ) from None
                delay = backoff_delay(attempt, max_retry_wait)
                self._sleep(delay, deadline_at, err)
                log.info(
                    "retrying %s %s after %s (attempt %d)", request.method, redact_url(request.url), err, attempt + 2
                )
                attempt += 1
                if on_restart is not None:
                    on_restart()  # here, so that an exception it raises has this failure as its context
                continue
            if (
                response.status in retry_statuses
                and response.status != 429  # a rate limit is answered before anything is done
                and _may_have_happened(request, stream)
            ):
                found = self._probe(request, f"HTTP {response.status}", probe_kw)
                if found is not None:
                    return found
            if response.status in retry_statuses and attempt < max_retries and (replayable or not stream.started):
                wait = parse_retry_after(response.header("retry-after"))
                delay = min(wait, max_retry_wait) if wait is not None else backoff_delay(attempt, max_retry_wait)
                self._sleep(delay, deadline_at, None)
                log.info(
                    "retrying %s %s after HTTP %d in %.2fs (attempt %d)",
                    request.method,
                    redact_url(request.url),
                    response.status,
                    delay,
                    attempt + 2,
                )
                attempt += 1
                if on_restart is not None:
                    try:
                        on_restart()
                    except Exception as restart_exc:
                        # what made the retry necessary, for a caller that stops here instead
                        restart_exc.__context__ = ProviderError(
                            f"HTTP {response.status} (retried)", provider=provider, status=response.status
                        )
                        raise
                continue
            if attempt:
                headers = dict(response.headers)
                headers["x-llmfiles-attempts"] = str(attempt + 1)
                response = HttpResponse(status=response.status, headers=headers, body=response.body, url=response.url)
            return response

    def _probe(self, request: HttpRequest, what: str, kw: Mapping[str, Any]) -> HttpResponse | None:
        """Ask whether an attempt of ``request`` whose answer was lost did what it asks; return the answer it would
        have had, or ``None`` when it did not.  Raises :class:`AnswerLost` when that cannot be found out."""
        assert request.probe is not None and request.read_probe is not None
        where = f"{request.method} {redact_url(request.url)}"
        log.info("%s was sent in full but got no usable answer (%s); checking whether it was done", where, what)
        problem: str
        try:
            response = self.send(request.probe(), **kw)
            # read_probe reads any answer (a 404 may mean "not there"); it raises for one it cannot tell from
            found = request.read_probe(response)
            if found is None:
                log.info("%s was not done; sending it again", where)
                return None
            headers = dict(found.headers)
            headers["x-llmfiles-found-by-probe"] = "1"
            log.info("%s was done although its answer was lost; not sending it again", where)
            return HttpResponse(status=found.status, headers=headers, body=found.body, url=found.url or request.url)
        except LLMFilesError as exc:
            problem = f"the check failed: {exc}"
        except Exception as exc:  # a plugin's read_probe that cannot read the answer
            problem = f"the check's answer could not be read: {type(exc).__name__}: {exc}"
        raise AnswerLost(
            redact(
                f"{where} was sent in full but its answer was lost ({what}), and whether the provider did it could not "
                f"be found out ({problem}). It was not sent again, so as not to create a second copy: list the "
                "files before you upload again",
                kw.get("secrets", ()),
            )
        ) from None

    @staticmethod
    def _sleep(delay: float, deadline_at: float | None, err: BaseException | None) -> None:
        if deadline_at is not None and time.monotonic() + delay >= deadline_at:
            raise DeadlineExceeded(
                "the operation's deadline would pass before the next retry" + (f"; last error: {err}" if err else "")
            )
        time.sleep(delay)

    # -- one attempt -----------------------------------------------------------------------------------------

    def _send_once(
        self,
        request: HttpRequest,
        stream: _BodyStream,
        *,
        provider: str,
        timeout: float,
        deadline_at: float | None,
        allow_insecure_http: bool,
        verify: Any,
        sink: IO[bytes] | None,
        on_sink_chunk: ChunkCallback | None,
    ) -> HttpResponse:
        url = request.url
        check_url(url, allow_insecure_http)
        if url.startswith("local:"):
            from llmfiles.local import handle_local_request

            return handle_local_request(request, iter(stream), sink, on_sink_chunk)

        import urllib3
        from urllib3 import exceptions as u3

        method = request.method.upper()
        headers = dict(request.headers)
        length = body_length(request.body)
        chunked = False
        if request.body is not None:
            if length is None:
                chunked = True
            else:
                headers["Content-Length"] = str(length)
        elif method in {"POST", "PUT", "PATCH"}:
            headers["Content-Length"] = "0"
        redirects = 0
        pool = self._pool(verify)
        host = urlsplit(url).hostname or "?"

        def stalled(exc: BaseException, doing: str) -> Exception:
            if per_request < timeout:  # the deadline, not the timeout, cut this wait short
                return DeadlineExceeded(f"the operation's deadline passed while {doing} {host}")
            return _Retryable(StallTimeout(f"no progress for {timeout:g}s {doing} {host} ({_why(exc)})"))

        while True:
            per_request = timeout
            if deadline_at is not None:
                per_request = max(0.001, min(timeout, deadline_at - time.monotonic()))
            log.debug("%s %s headers=%s", method, redact_url(url), redacted_headers(headers))
            try:
                resp = pool.urlopen(
                    method,
                    url,
                    body=iter(stream) if request.body is not None else None,
                    headers=headers,
                    retries=False,
                    redirect=False,
                    timeout=urllib3.Timeout(connect=per_request, read=per_request),
                    preload_content=False,
                    chunked=chunked,
                )
            except u3.NewConnectionError as exc:  # (a subclass of ConnectTimeoutError in urllib3)
                raise _Retryable(NetworkError(f"cannot connect to {host}: {_why(exc)}")) from None
            except (u3.ConnectTimeoutError, u3.ReadTimeoutError, TimeoutError) as exc:
                raise stalled(exc, "talking to") from None
            except u3.SSLError as exc:
                raise NetworkError(
                    f"TLS failed with {host}: {_why(exc)}. If the server uses a private CA, pass verify='/path/ca.pem' "
                    "(env LLMFILES_CA_BUNDLE)"
                ) from None
            except (u3.HTTPError, OSError) as exc:
                if _timed_out(exc):  # urllib3 reports a stalled body write as ProtocolError(..., TimeoutError)
                    raise stalled(exc, "sending to") from None
                raise _Retryable(NetworkError(f"connection to {host} failed: {_why(exc)}")) from None

            status = resp.status
            if status in (301, 302, 303, 307, 308) and method in {"GET", "HEAD"} and redirects < MAX_REDIRECTS:
                location = resp.headers.get("location")
                resp.drain_conn()
                resp.release_conn()
                if location:
                    from urllib.parse import urljoin

                    new_url = urljoin(url, location)
                    check_url(new_url, allow_insecure_http)
                    old, new = urlsplit(url), urlsplit(new_url)
                    if (old.scheme, old.hostname, old.port) != (new.scheme, new.hostname, new.port):
                        # never hand credentials to another origin
                        headers = {k: v for k, v in headers.items() if k.lower() not in SENSITIVE_HEADERS}
                    url = new_url
                    redirects += 1
                    continue
            try:
                resp_headers = {k.lower(): v for k, v in resp.headers.items()}
                if sink is not None and 200 <= status < 300:
                    for block in resp.stream(self._blocksize, decode_content=True):
                        if deadline_at is not None and time.monotonic() > deadline_at:
                            raise DeadlineExceeded("the operation's deadline passed while downloading")
                        sink.write(block)
                        if on_sink_chunk is not None:
                            on_sink_chunk(block)
                    data = b""
                else:
                    data = _read_bounded(resp, MAX_RESPONSE_BYTES, host, provider)
            except (u3.ReadTimeoutError, TimeoutError) as exc:
                raise stalled(exc, "reading from") from None
            except (u3.ProtocolError, u3.HTTPError, OSError) as exc:
                if isinstance(exc, LLMFilesError):
                    raise
                raise _Retryable(NetworkError(f"connection to {host} broke while reading: {_why(exc)}")) from None
            finally:
                resp.release_conn()
            return HttpResponse(status=status, headers=resp_headers, body=data, url=url)


def _may_have_happened(request: HttpRequest, stream: _BodyStream) -> bool:
    """Whether an attempt of a non-idempotent request with a probe may have been done although no good answer came:
    it was sent in full."""
    can_probe = request.probe is not None and request.read_probe is not None
    return can_probe and not request.is_idempotent and stream.finished


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


def _why(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    text = str(reason) if reason is not None else str(exc)
    return text or type(exc).__name__


class _Retryable(Exception):
    """Internal: a network error that a retry may cure."""

    def __init__(self, error: LLMFilesError) -> None:
        super().__init__(str(error))
        self.error = error
