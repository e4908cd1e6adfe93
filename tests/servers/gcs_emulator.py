"""gcp-storage-emulator (a Cloud Storage JSON API emulator we did not write) on 127.0.0.1, for the tests.

Pinned at :data:`EMULATOR_VERSION` (the tox envs install it as a dependency).  It keeps everything in memory,
serves one request at a time and checks no credentials; see ``../shared/TESTBED.md`` for its gotchas (it drops
the connection of a media upload whose Content-Type starts with ``application/json``; DELETE answers 200;
``ifGenerationMatch=0`` is ignored; DELETE of a resumable session answers 501).

One gap is closed here, because the tests rely on it: the emulator stores an object from a one-request upload
whose body was cut short (a client that gave up half-way, or a proxy that passed on what it got), where Cloud
Storage stores nothing.  Run through this module (``python gcs_emulator.py start ...``), it answers 400 to a
request whose body ended before its ``Content-Length``, or a ``multipart`` upload without its closing boundary.  A
resumable chunk cut short still keeps what arrived, as Cloud Storage may.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
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
                __file__,
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


class IncompleteRequest(Exception):
    """A request whose body is not whole: Cloud Storage would not act on it."""


def _make_strict() -> None:
    """Patch the emulator (in its own process) so it refuses incomplete one-request uploads with 400."""
    from gcp_storage_emulator import server

    read_raw = server._read_raw_data
    handle = server.Router.handle

    def strict_read_raw(handler: object) -> bytes | None:
        raw: bytes | None = read_raw(handler)
        headers = handler.headers  # type: ignore[attr-defined]
        if "upload_id=" in handler.path:  # type: ignore[attr-defined]
            return raw  # a resumable chunk: what arrived is kept
        declared = headers.get("Content-Length")
        if declared and len(raw or b"") < int(declared):
            raise IncompleteRequest(f"the body ended after {len(raw or b'')} of {declared} bytes")
        content_type = headers.get("Content-Type") or ""
        if content_type.startswith("multipart/related") and "boundary=" in content_type:
            boundary = content_type.split("boundary=", 1)[1].split(";")[0].strip().strip('"')
            if not (raw or b"").rstrip(b"\r\n").endswith(f"--{boundary}--".encode()):
                raise IncompleteRequest("the multipart body has no closing boundary")
        return raw

    def strict_handle(self: object, method: str) -> None:
        try:
            handle(self, method)
        except IncompleteRequest as exc:
            h = self._request_handler  # type: ignore[attr-defined]
            body = json.dumps({"error": {"code": 400, "message": f"incomplete request: {exc}"}}).encode()
            h.send_response(400)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)

    server._read_raw_data = strict_read_raw
    server.Router.handle = strict_handle


if __name__ == "__main__":
    _make_strict()
    from gcp_storage_emulator.__main__ import main

    main()
