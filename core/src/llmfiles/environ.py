"""The process environment as a read-only mapping of its own, copied again only when ``os.environ`` changed.

Every call reads a few dozen environment variables (the settings chain, the config file's location and profile,
credentials).  Through ``os.environ`` each lookup encodes its name and decodes its value, and a variable that is not
set costs a ``KeyError`` raised and caught: on a small upload the environment cost more than the settings it held.
``os.environ`` keeps its encoded items in a dict, updated by every change made through it; comparing that dict with
the copy taken last time tells in about a microsecond whether the decoded copy is still right.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import MappingProxyType

_last: tuple[dict[object, object], Mapping[str, str]] | None = None


def process_environ() -> Mapping[str, str]:
    """``os.environ`` as it is now, as a read-only mapping (the same object while nothing changed it).

    Falls back to ``os.environ`` itself where its encoded items cannot be seen (another Python implementation)."""
    global _last
    data = getattr(os.environ, "_data", None)
    if not isinstance(data, dict):
        return os.environ
    last = _last
    if last is not None and last[0] == data:
        return last[1]
    # the encoded items first: a change made while the decoded copy is taken makes them differ next time
    raw = dict(data)
    view: Mapping[str, str] = MappingProxyType(dict(os.environ))
    _last = (raw, view)
    return view
