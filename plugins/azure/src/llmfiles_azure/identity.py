"""azure-identity's token requests through the core's transport.

The core owns every connection: TLS verification and CA bundle, timeouts, the deadline, the refusal of plain
``http://`` to hosts on the network, redaction.  azure-identity's credentials take an azure-core ``transport=``
(an :class:`azure.core.pipeline.transport.HttpTransport`), so the credentials llmfiles creates itself get
:class:`CoreTransport`: an ``HttpTransport`` that hands each request to the ``http`` object the core passes to
``credentials(settings, environ, http)``.

A credential lives longer than one call (its token cache is what spares the identity endpoint a request per call),
while ``http`` belongs to one call (its deadline, its TLS settings).  So the transport sends through the ``http`` of
the call that is asking for a token right now, which :func:`bound` sets around each token request (a context
variable: each thread, and each call, sees its own).

azure-identity keeps its own retry policy (it knows its endpoints: IMDS answers 410 while it starts, a managed
identity 404 until it is assigned), so each of its attempts is sent once; its per-request timeouts (the one-second
IMDS probe) tighten the call's.  A failure to connect or to read the answer is raised as azure-core's own
``ServiceRequestError`` / ``ServiceResponseError``, so its credentials and chains behave as with their own transport.

This module imports azure-core: it is imported only when Entra ID is used.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from http import HTTPStatus
from typing import Any, TypeVar
from urllib.parse import urlencode

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest as AzureRequest
from azure.core.rest import HttpResponse as AzureResponse
from azure.core.utils import CaseInsensitiveDict

from llmfiles.errors import AnswerLost, NetworkError, StallTimeout
from llmfiles.models import HttpRequest, HttpResponse
from llmfiles.provider import Http

T = TypeVar("T")

_current: contextvars.ContextVar[Http | None] = contextvars.ContextVar("llmfiles_azure_http", default=None)


@contextlib.contextmanager
def using(http: Http) -> Iterator[None]:
    """Send the token requests made inside the block through ``http``."""
    token = _current.set(http)
    try:
        yield
    finally:
        _current.reset(token)


def bound(http: Http, get: Callable[[], T]) -> Callable[[], T]:
    """``get`` (a token provider), sending whatever token requests it makes through ``http``."""

    def get_through_http() -> T:
        with using(http):
            return get()

    return get_through_http


class CoreTransport(HttpTransport[AzureRequest, AzureResponse]):
    """An azure-core transport that sends through the core's transport (the ``http`` of the current call)."""

    def send(self, request: AzureRequest, **kwargs: Any) -> AzureResponse:
        """Send one attempt of an azure-core request; azure-core's exceptions for what failed on the way."""
        http = _current.get()
        if http is None:
            raise ServiceRequestError(
                "llmfiles' Entra ID credential was asked for a token outside an llmfiles call; it sends only "
                "through an llmfiles call's transport"
            )
        ours = HttpRequest(method=request.method, url=request.url, headers=dict(request.headers), body=_body(request))
        try:
            answer = http.send(
                ours,
                timeout=_seconds(kwargs.get("read_timeout")),
                connect_timeout=_seconds(kwargs.get("connection_timeout")),
                retries=False,
            )
        except (StallTimeout, AnswerLost) as exc:
            raise ServiceResponseError(str(exc), error=exc) from exc
        except NetworkError as exc:
            raise ServiceRequestError(str(exc), error=exc) from exc
        return CoreResponse(request, answer)

    def open(self) -> None:
        """Nothing to open: the connections are the core's."""

    def close(self) -> None:
        """Nothing to close: the connections are the core's (closed with the ``Client``)."""

    def __exit__(self, *args: object) -> None:
        self.close()


def _seconds(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def _body(request: AzureRequest) -> bytes | None:
    """The body of an azure-core request as bytes (token requests carry a form, JSON or nothing)."""
    content = request.content
    if content is None:
        return None
    if isinstance(content, bytes):
        return content
    if isinstance(content, str):
        return content.encode("utf-8")
    if isinstance(content, Mapping) and all(isinstance(v, (str, int, float)) for v in content.values()):
        return urlencode(content).encode("ascii")
    raise ServiceRequestError(f"llmfiles cannot send a {type(content).__name__} body for azure-identity")


class CoreResponse(AzureResponse):
    """The core's answer as an azure-core response (read whole, as the core reads every answer)."""

    def __init__(self, request: AzureRequest, answer: HttpResponse) -> None:
        self._request = request
        self._answer = answer
        self._headers: MutableMapping[str, str] = CaseInsensitiveDict(dict(answer.headers))
        self._encoding: str | None = None

    @property
    def request(self) -> AzureRequest:
        """The request this answers."""
        return self._request

    @property
    def status_code(self) -> int:
        """The HTTP status."""
        return self._answer.status

    @property
    def headers(self) -> MutableMapping[str, str]:
        """The headers, case-insensitive."""
        return self._headers

    @property
    def reason(self) -> str:
        """The status's reason phrase."""
        try:
            return HTTPStatus(self._answer.status).phrase
        except ValueError:
            return ""

    @property
    def content_type(self) -> str | None:
        """The ``Content-Type`` header."""
        return self._headers.get("content-type")

    @property
    def is_closed(self) -> bool:
        """Always: the core read the whole answer and gave the connection back."""
        return True

    @property
    def is_stream_consumed(self) -> bool:
        """Always: the answer was read whole."""
        return True

    @property
    def encoding(self) -> str | None:
        """The text encoding: set by the caller, else the ``charset`` of the content type, else ``None``."""
        if self._encoding is not None:
            return self._encoding
        for param in (self.content_type or "").split(";")[1:]:
            name, _, value = param.strip().partition("=")
            if name.lower() == "charset" and value:
                return value.strip("\"'")
        return None

    @encoding.setter
    def encoding(self, value: str | None) -> None:
        self._encoding = value

    @property
    def url(self) -> str:
        """The URL the request went to."""
        return str(self._request.url)

    @property
    def content(self) -> bytes:
        """The body."""
        return self._answer.body

    def text(self, encoding: str | None = None) -> str:
        """The body as text (``encoding``, else :attr:`encoding`, else UTF-8)."""
        return self._answer.body.decode(encoding or self.encoding or "utf-8-sig", "replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.text())

    def raise_for_status(self) -> None:
        """azure-core's ``HttpResponseError`` for a status of 400 or more."""
        if self._answer.status >= 400:
            raise HttpResponseError(response=self)

    def read(self) -> bytes:
        """The body (already read)."""
        return self._answer.body

    def iter_raw(self, **kwargs: Any) -> Iterator[bytes]:
        """The body in one piece."""
        yield self._answer.body

    def iter_bytes(self, **kwargs: Any) -> Iterator[bytes]:
        """The body in one piece."""
        yield self._answer.body

    def close(self) -> None:
        """Nothing to close."""

    def __enter__(self) -> CoreResponse:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()
