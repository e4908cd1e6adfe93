"""moto's server (S3, IAM, STS, Secrets Manager, Bedrock ... in memory) on 127.0.0.1, for tests.

moto is a server we did not write that answers as AWS does: S3's XML, multipart rules (EntityTooSmall, InvalidPart,
NoSuchUpload), and — with ``INITIAL_NO_AUTH_ACTION_COUNT`` — SigV4 signatures really checked.  It is started as a
separate process (``python -m moto.server``) on a free port; ``pip install 'moto[server]==5.2.5'`` provides it.

Usage::

    with run_moto() as url:                   # signatures not checked
        ...
    with run_moto(auth_after=3) as url:       # the first 3 calls are free (create an IAM user, its key, a
        ...                                   # policy); every later call must be signed by a known key
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

MOTO_VERSION = "5.2.5"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reset(url: str) -> None:
    """Forget every bucket, object, secret, user and job (``POST /moto-api/reset``)."""
    req = urllib.request.Request(url + "/moto-api/reset", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=10):
        pass


@contextlib.contextmanager
def run_moto(*, auth_after: int | None = None) -> Iterator[str]:
    """Start ``moto.server`` on 127.0.0.1; yield ``http://127.0.0.1:PORT`` once it answers.

    ``auth_after=N`` sets ``INITIAL_NO_AUTH_ACTION_COUNT=N``: after N calls, moto checks every SigV4 signature.
    """
    port = free_port()
    env = dict(os.environ)
    for name in [k for k in env if k.startswith("AWS_")]:
        del env[name]  # moto needs no credentials; the tests' AWS settings must not change how it behaves
    if auth_after is not None:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(auth_after)
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=Path(tempfile.gettempdir()),
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"moto exited early: {log.read().decode(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/moto-api/data.json", timeout=2):
                    break
            except urllib.error.HTTPError:
                break  # it answers: ready
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto did not start within 60 s") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
