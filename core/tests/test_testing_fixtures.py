"""The fixtures ``llmfiles.testing`` gives every test suite where llmfiles is installed (it is a pytest plugin)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path


def test_loopback_only_refuses_other_hosts_and_fails_a_test_that_swallowed_the_refusal(tmp_path: Path) -> None:
    (tmp_path / "test_guarded.py").write_text(
        textwrap.dedent(
            """
            import socket

            def test_loopback_is_allowed(loopback_only):
                assert socket.getaddrinfo("127.0.0.2", 80) and socket.getaddrinfo("localhost", 80)
                assert socket.getaddrinfo("::1", 80)

            def test_another_host_is_refused_and_the_test_fails(loopback_only):
                try:
                    socket.getaddrinfo("example.invalid", 80)
                except OSError as exc:
                    assert "loopback addresses only" in str(exc)  # swallowed, as code under test might
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_guarded.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"},
    )
    last = proc.stdout.strip().splitlines()[-1]
    assert "2 passed, 1 error" in last, proc.stdout[-3000:]
    assert "the test tried to reach ['example.invalid']" in proc.stdout
