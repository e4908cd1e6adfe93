"""Every decision about a URL, made from the parse urllib3 connects with.

Python's ``urlsplit`` and urllib3's ``parse_url`` read some URLs differently (``http://a\\@b/`` is host ``b`` for
one and ``a`` for the other), so deciding with one and connecting with the other lets a redirect carry a key to
another host.  Here the scheme, host and port come from :func:`urllib3.util.parse_url` only, and URLs whose
authority could be read two ways (a backslash, a control character, white space or userinfo) are refused.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import TYPE_CHECKING

from attrs import frozen

from llmfiles.errors import InsecureTransport, advice
from llmfiles.redact import redact_url

if TYPE_CHECKING:
    from llmfiles.models import HttpRequest

DEFAULT_PORTS = {"http": 80, "https": 443}


@frozen
class Origin:
    """Scheme, host and port, as urllib3 will connect."""

    scheme: str
    host: str
    port: int | None

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}" + (f":{self.port}" if self.port is not None else "")


def origin(url: str) -> Origin:
    """The origin urllib3 connects to for ``url`` (after :func:`check_url` accepted it)."""
    from urllib3.util import parse_url

    parsed = parse_url(url)
    scheme = (parsed.scheme or "").lower()
    port = parsed.port if parsed.port is not None else DEFAULT_PORTS.get(scheme)
    return Origin(scheme=scheme, host=(parsed.host or "").lower(), port=port)


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_link_local(host: str) -> bool:
    """Whether ``host`` is a link-local address (169.254.0.0/16, fe80::/10): where cloud instance metadata and managed
    identity endpoints answer, never routed off the machine's link."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_link_local
    except ValueError:
        return False


def _authority(url: str) -> str:
    rest = url.split("://", 1)[1] if "://" in url else url
    for stop in "/?#":
        rest = rest.split(stop, 1)[0]
    return rest


#: what makes a URL readable two ways: a backslash, whitespace (any), a control character
_AMBIGUOUS = re.compile(r"[\\\s\x00-\x1f\x7f]")


@functools.lru_cache(maxsize=256)  # every request is checked: the same few URLs, again and again
def check_url(
    url: str, allow_insecure_http: bool, *, schemes: frozenset[str] = frozenset(), link_local: bool = False
) -> Origin:
    """The origin of ``url``, or :class:`InsecureTransport` when llmfiles must not send there: a URL that could be
    read two ways, userinfo in it, plain ``http://`` to a host that is not loopback (unless allowed; with
    ``link_local``, a link-local address is allowed too: the instance metadata endpoints credential libraries ask),
    a scheme that is neither ``https``, ``http`` nor one of ``schemes`` (served in-process)."""
    found = _AMBIGUOUS.search(url)
    bad = found.group() if found is not None else None
    if bad is not None:
        raise InsecureTransport(
            f"refusing a URL with {bad!r} in it ({redact_url(url)!r}): it could be read as two different hosts"
        )
    if "@" in _authority(url):
        raise InsecureTransport(
            f"refusing a URL with user information before its host ({redact_url(url)!r}): pass credentials as "
            "settings, not in the URL"
        )
    try:
        where = origin(url)
    except Exception as exc:  # urllib3's LocationParseError, or a port out of range
        raise InsecureTransport(f"refusing a URL that cannot be parsed ({redact_url(url)!r}): {exc}") from None
    if where.scheme in schemes:
        return where
    if where.scheme == "https" and where.host:
        return where
    if where.scheme == "http" and where.host:
        if allow_insecure_http or is_loopback(where.host) or (link_local and is_link_local(where.host)):
            return where
        raise InsecureTransport(
            f"refusing plain http:// to {where.host!r}: credentials and data would travel unencrypted. "
            "Use https://, or "
            + advice("pass allow_insecure_http=True", "pass -s allow_insecure_http=true")
            + " (env LLMFILES_ALLOW_INSECURE_HTTP=1) if you mean it"
        )
    raise InsecureTransport(f"unsupported URL {redact_url(url)!r}; use https://")


def redirect_target(
    url: str, location: str, allow_insecure_http: bool, *, link_local: bool = False
) -> tuple[str, Origin]:
    """The URL a ``Location`` (absolute or relative to ``url``) names, and its origin; :class:`InsecureTransport`
    when llmfiles must not follow it (see :func:`check_url`) or it cannot be read at all."""
    from urllib.parse import urljoin

    try:
        target = urljoin(url, location)
    except ValueError as exc:  # "Invalid IPv6 URL" and the like
        raise InsecureTransport(f"refusing a redirect to an URL that cannot be parsed ({exc})") from None
    return target, check_url(target, allow_insecure_http, link_local=link_local)


def describe(request: HttpRequest) -> str:
    """``METHOD url`` for logs and messages, with secrets in the URL hidden."""
    return f"{request.method} {redact_url(request.url)}"
