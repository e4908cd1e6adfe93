"""Parsing one JSONL line, with ``orjson`` as an optional speed-up that never changes a result.

The standard library's :mod:`json` is the reference.  When ``orjson`` is importable (``pip install
'llmfiles[fast]'``) it parses every line first, a few times faster; a line it refuses is parsed again by
:mod:`json`, whose verdict and message stand.  orjson accepts a subset of what :mod:`json` accepts (strict RFC 8259)
and builds the same values, so the two paths give the same records and the same problems:

* ``NaN``, ``Infinity`` and ``-Infinity`` are not JSON: :mod:`json` is told to refuse them too;
* an integer outside the 64-bit range (``-2**63`` to ``2**64 - 1``) is read as the nearest float, as orjson reads it;
  a number too large for a double (``1e400``) is refused, as orjson refuses it;
* what orjson alone refuses (integers beyond 64 bits, lone surrogate escapes such as ``"\\ud800"``, nesting
  deeper than 1024) goes to :mod:`json`, which decides;
* invalid UTF-8, blank lines and syntax errors are reported from :mod:`json`'s reading of the line.

``LLMFILES_JSON=json`` in the environment turns the speed-up off (for comparisons and bug reports).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

#: the name of the parser in use: "orjson" or "json"
PARSER: str


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (use null or a number)")


_I64_MIN = -(2**63)
_U64_MAX = 2**64 - 1
_INF = float("inf")


def _finite(text: str) -> float:
    value = float(text)
    if value in (_INF, -_INF):
        raise ValueError(f"the number {text[:20]}{'...' if len(text) > 20 else ''} is too large for a double")
    return value


def _parse_int(text: str) -> int | float:
    if len(text) < 19:  # always within 64 bits
        return int(text)
    value = int(text)  # ValueError beyond sys.get_int_max_str_digits() digits
    return value if _I64_MIN <= value <= _U64_MAX else _finite(text)


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_int=_parse_int, parse_float=_finite)


def _stdlib_loads(raw: bytes | memoryview) -> Any:
    # bytes are decoded as UTF-8 here: json.loads(bytes) would guess UTF-16/32 from the first bytes
    return _DECODER.decode(str(raw, "utf-8"))


def reference_loads(raw: bytes) -> Any:
    """Parse ``raw`` (one line, UTF-8) with the standard library; raise ``UnicodeDecodeError``, ``ValueError`` or
    ``RecursionError`` as it does.  ``NaN``, the infinities and numbers beyond a double are refused; integers
    beyond 64 bits are floats."""
    return _stdlib_loads(raw)


def _load_fast() -> tuple[str, Callable[[bytes | memoryview], Any]]:
    if os.environ.get("LLMFILES_JSON", "").strip().lower() == "json":
        return "json", _stdlib_loads
    try:
        import orjson
    except ImportError:
        return "json", _stdlib_loads
    return "orjson", orjson.loads


#: parse one line quickly; on any exception, ask :func:`reference_loads` for the verdict
fast_loads: Callable[[bytes | memoryview], Any]
PARSER, fast_loads = _load_fast()
