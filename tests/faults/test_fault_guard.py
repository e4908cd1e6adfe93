"""The fault suite's own guard: no test, and no process a test starts, looks up a name that is not loopback (so a bug
that would send a request off the machine fails the test instead)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from loopback import sitecustomize as loopback


def test_this_process_looks_up_loopback_names_only() -> None:
    assert socket.getaddrinfo("127.0.0.2", 80)
    assert socket.getaddrinfo("localhost", 80)
    with pytest.raises(socket.gaierror, match="refuses"):
        socket.getaddrinfo("example.invalid", 80)
    assert loopback.REFUSED == ["example.invalid"]
    loopback.REFUSED.clear()  # (the fixture fails every test that looked one up: this one did on purpose)


def test_a_process_the_test_starts_looks_up_loopback_names_only() -> None:
    code = "import socket\nsocket.getaddrinfo('127.0.0.1', 80)\nsocket.getaddrinfo('example.invalid', 80)"
    done = subprocess.run(
        [sys.executable, "-c", code], env=dict(os.environ), capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode != 0 and "refuses to look up 'example.invalid'" in done.stderr, done.stderr
