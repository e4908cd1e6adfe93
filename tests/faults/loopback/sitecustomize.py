"""Loaded by every Python process the fault suite starts (its folder is put first on ``PYTHONPATH``): name lookups
of anything but a loopback address fail, so a bug that would send a request off the machine fails the test instead.

The test process itself is guarded by the same function (``conftest.py``), which also records what was refused.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any

#: names and addresses a refused lookup asked for, in this process
REFUSED: list[str] = []


def is_loopback(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if host is None:
        return True  # a lookup of the local wildcard (bind)
    text = str(host).strip("[]").lower()
    if text in ("localhost", "") or text.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(text.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def guarded(real: Callable[..., Any]) -> Callable[..., Any]:
    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_loopback(host):
            REFUSED.append(str(host))
            raise socket.gaierror(socket.EAI_NONAME, f"the fault suite refuses to look up {host!r} (not loopback)")
        return real(host, *args, **kwargs)

    getaddrinfo.__wrapped__ = real  # type: ignore[attr-defined]
    return getaddrinfo


def install() -> None:
    if not hasattr(socket.getaddrinfo, "__wrapped__"):
        socket.getaddrinfo = guarded(socket.getaddrinfo)


install()
