"""gcp-storage-emulator (a Cloud Storage JSON API emulator we did not write) on 127.0.0.1, for the tests.

Pinned at :data:`EMULATOR_VERSION` (the tox envs install it as a dependency).  It keeps everything in memory,
serves one request at a time and checks no credentials; see ``../shared/TESTBED.md`` for its gotchas (it drops
the connection of a media upload whose Content-Type starts with ``application/json``; DELETE answers 200;
``ifGenerationMatch=0`` is ignored; DELETE of a resumable session answers 501).
"""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

EMULATOR_VERSION = "2026.7.19"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def run_gcs_emulator(bucket: str, log_path: Path) -> Iterator[str]:
    """Start the emulator with ``bucket`` created; yield its base URL; stop it afterwards."""
    if importlib.util.find_spec("gcp_storage_emulator") is None:
        raise RuntimeError(f"the tests need gcp-storage-emulator: pip install gcp-storage-emulator=={EMULATOR_VERSION}")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gcp_storage_emulator",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--in-memory",
                "--default-bucket",
                bucket,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"gcp-storage-emulator exited with {proc.returncode}: {log_path.read_text()}")
                try:
                    with urllib.request.urlopen(url + "/", timeout=2) as resp:
                        if resp.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"gcp-storage-emulator did not start: {log_path.read_text()}")
                time.sleep(0.05)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
