"""Keeping secrets out of text: messages, logs, URLs and headers.

A server may echo a credential back in an error body, whole, cut short, or JSON-escaped (``\\u002d`` for ``-``);
:func:`redact` masks all three.  This module imports nothing of llmfiles, so every other module may use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

#: headers whose values are credentials: never logged, never kept on a redirect to another origin
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
#: query parameters whose values work as credentials (signatures, tokens, a Cloud Storage session's upload id)
_SENSITIVE_QUERY = ("sig", "signature", "token", "key", "credential", "secret", "password", "code", "upload_id")
#: secrets shorter than this are not looked for (they would mask ordinary words)
MIN_SECRET = 4
#: an echo of this many characters of a secret (or all of a shorter one) is masked, wherever it starts
PARTIAL = 8
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\([\\/\"])")
MASK = "***"


def _unescaped(text: str) -> tuple[str, list[int]]:
    """``text`` with JSON escapes (``\\u002d``, ``\\/``) decoded, and for each character of the result the index in
    ``text`` where it starts (plus one past the end)."""
    out: list[str] = []
    where: list[int] = []
    pos = 0
    for m in _ESCAPE.finditer(text):
        for i in range(pos, m.start()):
            out.append(text[i])
            where.append(i)
        out.append(chr(int(m.group(1), 16)) if m.group(1) else m.group(2))
        where.append(m.start())
        pos = m.end()
    for i in range(pos, len(text)):
        out.append(text[i])
        where.append(i)
    where.append(len(text))
    return "".join(out), where


def _spans(plain: str, secret: str) -> Iterable[tuple[int, int]]:
    """Spans of ``plain`` that echo ``secret``: the whole of it, or a run of at least :data:`PARTIAL` of its
    characters (a key cut short, or only its end)."""
    n = min(len(secret), PARTIAL)
    seen: set[int] = set()
    for start in range(0, len(secret) - n + 1):
        piece = secret[start : start + n]
        i = plain.find(piece)
        while i >= 0:
            if i not in seen:
                seen.add(i)
                # grow the match backwards and forwards along the secret
                a, b = i, i + n
                s_a, s_b = start, start + n
                while a > 0 and s_a > 0 and plain[a - 1] == secret[s_a - 1]:
                    a, s_a = a - 1, s_a - 1
                while b < len(plain) and s_b < len(secret) and plain[b] == secret[s_b]:
                    b, s_b = b + 1, s_b + 1
                yield a, b
            i = plain.find(piece, i + 1)
        if len(secret) > 64 and start > 8:
            break  # a long token: runs from its first characters are enough to find an echo


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every echo of a secret replaced by ``***``: whole, cut short (at least 8 characters of it) or
    JSON-escaped."""
    wanted = sorted({s for s in secrets if s and len(s) >= MIN_SECRET}, key=len, reverse=True)
    if not wanted or not text:
        return text
    plain, where = _unescaped(text) if "\\" in text else (text, [])
    spans: list[tuple[int, int]] = []
    for secret in wanted:
        spans.extend(_spans(plain, secret))
    if not spans:
        return text
    if where:
        spans = [(where[a], where[b]) for a, b in spans]
    spans.sort()
    out: list[str] = []
    pos = 0
    for a, b in spans:
        if b <= pos:
            continue
        out.append(text[pos : max(a, pos)])
        out.append(MASK)
        pos = b
    out.append(text[pos:])
    return "".join(out)


def redact_value(value: Any, secrets: Iterable[str], _depth: int = 0) -> Any:
    """A copy of ``value`` (strings, and lists, tuples and dicts of them) with :func:`redact` applied to every
    string in it, keys included."""
    if isinstance(value, str):
        return redact(value, secrets)
    if _depth > 20:
        return MASK
    if isinstance(value, Mapping):
        return {redact_value(k, secrets, _depth + 1): redact_value(v, secrets, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v, secrets, _depth + 1) for v in value)
    return value


def redact_url(url: str) -> str:
    """A URL fit for logs: userinfo dropped, values of signature/token/key-like query parameters hidden."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, MASK if any(s in k.lower() for s in _SENSITIVE_QUERY) else v) for k, v in pairs], safe="*/"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redacted_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` with the values of credential headers hidden."""
    return {k: (MASK if k.lower() in SENSITIVE_HEADERS else v) for k, v in headers.items()}


def printable(text: str, limit: int | None = None) -> str:
    """``text`` safe to print on a terminal: control characters (escape sequences, newlines, carriage returns,
    bidi overrides) shown as escapes, so server text cannot recolour the terminal or fake a line."""
    out = []
    for ch in text if limit is None else text[:limit]:
        o = ord(ch)
        if o < 0x20 or 0x7F <= o < 0xA0 or 0x202A <= o <= 0x202E or 0x2066 <= o <= 0x2069:
            out.append(repr(ch)[1:-1] if ch not in "\t" else " ")
        else:
            out.append(ch)
    if limit is not None and len(text) > limit:
        out.append("...")
    return "".join(out)
