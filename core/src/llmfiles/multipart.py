"""Streaming ``multipart/form-data`` bodies with an exact ``Content-Length``.

The body is a tuple of segments: the small framing parts are bytes, the file is a
:class:`~llmfiles.models.SourceRange` (or any other segment) that the transport streams from disk.  Nothing of
the file is held in memory.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from llmfiles.models import Segment


def _quote(value: str) -> str:
    # As browsers do (WHATWG multipart/form-data): escape the characters that would break the header.
    return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def multipart_body(
    fields: Sequence[tuple[str, str]],
    files: Sequence[tuple[str, str, str, Sequence[Segment]]],
    *,
    boundary: str | None = None,
) -> tuple[str, tuple[Segment, ...]]:
    """Build a form: ``fields`` are ``(name, value)``, ``files`` are ``(name, filename, content_type, segments)``.

    Returns the ``Content-Type`` header value (with its boundary) and the body segments.
    """
    boundary = boundary or f"llmfiles-{secrets.token_hex(16)}"
    dash = f"--{boundary}".encode("ascii")
    out: list[Segment] = []
    for name, value in fields:
        out.append(
            dash
            + f'\r\nContent-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'.encode()
            + value.encode("utf-8")
            + b"\r\n"
        )
    for name, filename, content_type, segments in files:
        out.append(
            dash
            + (
                f'\r\nContent-Disposition: form-data; name="{_quote(name)}"; filename="{_quote(filename)}"\r\n'
                f"Content-Type: {content_type}\r\n\r\n"
            ).encode()
        )
        out.extend(segments)
        out.append(b"\r\n")
    out.append(dash + b"--\r\n")
    # merge adjacent byte segments so the transport sends fewer, larger writes
    merged: list[Segment] = []
    for seg in out:
        if isinstance(seg, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] = merged[-1] + seg
        else:
            merged.append(seg)
    return f"multipart/form-data; boundary={boundary}", tuple(merged)
