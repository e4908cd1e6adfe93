"""Stoplight Prism serving a published OpenAPI contract on 127.0.0.1, for contract tests.

Prism is a server we did not write: it rejects any request that breaks the contract (422 for a missing or
invalid field, 415 for the wrong content type), so a test that passes through it proves the wire format.

The binary comes from ``$LLMFILES_PRISM`` or ``<repo>/.cache/node/node_modules/.bin/prism``; when neither exists it
is installed there with npm (``@stoplight/prism-cli``, pinned), so the test suite installs what it needs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

PRISM_VERSION = "5.14.2"
REPO = Path(__file__).resolve().parents[2]
NODE_DIR = REPO / ".cache" / "node"


def prism_binary() -> str:
    """The path of the prism command, installing it with npm on first use."""
    env = os.environ.get("LLMFILES_PRISM")
    if env:
        return env
    binary = NODE_DIR / "node_modules" / ".bin" / "prism"
    if binary.exists():
        return str(binary)
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("Prism needs Node.js and npm: install them (apt-get install nodejs npm), then rerun")
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    with open(NODE_DIR / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            subprocess.run(
                [
                    npm,
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--prefix",
                    str(NODE_DIR),
                    f"@stoplight/prism-cli@{PRISM_VERSION}",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                timeout=600,
            )
    return str(binary)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def run_prism(spec: Path, *, ready_path: str, headers: dict[str, str] | None = None) -> Iterator[str]:
    """Start ``prism mock`` for ``spec``; yield ``http://127.0.0.1:PORT`` once ``ready_path`` answers."""
    port = free_port()
    log = open(spec.parent / f".prism-{port}.log", "w+b")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [prism_binary(), "mock", "-h", "127.0.0.1", "-p", str(port), str(spec)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"prism exited early: {log.read().decode(errors='replace')[-2000:]}")
            try:
                req = urllib.request.Request(base + ready_path, headers=headers or {})
                with urllib.request.urlopen(req, timeout=2):
                    break
            except urllib.error.HTTPError:
                break  # it answers: ready
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("prism did not start within 120 s") from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        Path(log.name).unlink(missing_ok=True)
