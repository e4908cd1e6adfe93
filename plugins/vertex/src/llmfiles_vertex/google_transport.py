"""google-auth's transport seam over llmfiles' own: the token requests of google-auth go through the ``http`` object
the core passes to ``credentials()``, so they get the caller's TLS verification (CA bundle), timeouts, retries and
deadline, and no connection is opened by this plugin or by google-auth's own transports.

Imported only where google-auth is used (it imports ``google.auth``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import google.auth.exceptions
import google.auth.transport

from llmfiles.errors import DeadlineExceeded, LLMFilesError
from llmfiles.models import HttpRequest, HttpResponse
from llmfiles.provider import Http

#: the name google-auth asks the metadata server by, and the link-local address Google documents for it on every
#: Google Cloud machine: the core speaks plain http to link-local addresses only, never to names
METADATA_HOST = "metadata.google.internal"
METADATA_IP = "169.254.169.254"


class CoreResponse(google.auth.transport.Response):
    """An llmfiles :class:`~llmfiles.models.HttpResponse` as google-auth's ``Response``."""

    def __init__(self, response: HttpResponse) -> None:
        self._response = response

    @property
    def status(self) -> int:
        """The HTTP status."""
        return self._response.status

    @property
    def headers(self) -> Mapping[str, str]:
        """The headers (lower-cased names)."""
        return self._response.headers

    @property
    def data(self) -> bytes:
        """The body."""
        return self._response.body


class CoreRequest(google.auth.transport.Request):
    """google-auth's ``Request`` (the callable it sends token and metadata requests with) over llmfiles'
    :class:`~llmfiles.provider.Http`.

    google-auth gives a ``timeout`` only to its requests to the metadata server, which it retries itself (its probe
    three times, in seconds): those are sent once, within that timeout.  Other requests (token endpoints) get the
    call's timeout and retries.  A failure is google-auth's ``TransportError`` (so its probe of the metadata server
    reads it as "not on Google Cloud"), except the call's deadline, which ends everything.  Extra arguments meant for
    google-auth's own transports (``verify=``, ``cert=``) are not taken: TLS is the call's.
    """

    def __init__(self, http: Http) -> None:
        self._http = http

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: Any = None,
        **kwargs: Any,
    ) -> CoreResponse:
        """Send one request of google-auth."""
        url, extra = _metadata_address(url)
        request = HttpRequest(
            method=method.upper(),
            url=url,
            headers={**(headers or {}), **extra},
            body=body.encode("utf-8") if isinstance(body, str) else body,
        )
        seconds = float(timeout) if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) else None
        try:
            response = self._http.send(request, timeout=seconds, retries=seconds is None)
        except DeadlineExceeded:
            raise
        except LLMFilesError as exc:
            raise google.auth.exceptions.TransportError(str(exc)) from exc  # type: ignore[no-untyped-call]
        return CoreResponse(response)


def _metadata_address(url: str) -> tuple[str, dict[str, str]]:
    """``url`` with google-auth's metadata host name replaced by its link-local address (and the name kept as the
    ``Host`` header), so the core can tell it is the machine's metadata server; any other URL as it is."""
    parts = urlsplit(url)
    if parts.scheme != "http" or (parts.hostname or "").lower() != METADATA_HOST:
        return url, {}
    netloc = METADATA_IP if parts.port is None else f"{METADATA_IP}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc)), {"Host": parts.netloc}
