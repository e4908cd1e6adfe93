"""The command line against servers on 127.0.0.1, through the ``openai`` plugin: every retry is one line on stderr
(what failed, the wait, attempt k of n), connecting has its own short timeout, ``--quiet`` silences the notices;
a missing credential is a short first line with the command line's advice and the places looked at below; under
``--json`` the error is one JSON object, never with a secret in it."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from servers.openai_like import OpenAILikeServer

KEY = "sk-cli-network-test-7777"
RETRY_LINE = re.compile(
    r"^llmfiles: GET http://127\.0\.0\.1:\d+/v1/files/file-x: (?P<why>.+); retrying in (?P<wait>\d+\.\d) s "
    r"\(attempt (?P<k>\d) of (?P<n>\d)\)$"
)


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LLMFILES_", "OPENAI_"))}
    base.update(LLMFILES_HOME=os.environ["LLMFILES_HOME"], XDG_CONFIG_HOME=os.environ["XDG_CONFIG_HOME"])
    base.update(LLMFILES_MAX_RETRY_WAIT="0.05", PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(
        [sys.executable, "-m", "llmfiles", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


@pytest.fixture
def silent_server() -> Iterator[str]:
    """``http://127.0.0.1:PORT/v1``: accepts connections, reads the request, never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            held.append(conn)

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}/v1"
    stop.set()
    t.join()
    for c in held:
        c.close()
    srv.close()


@pytest.fixture
def black_hole() -> Iterator[str]:
    """``http://127.0.0.1:PORT/v1`` where a connection is never opened (a full accept queue: SYNs go unanswered)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    held: list[socket.socket] = []
    for _ in range(4):
        c = socket.socket()
        c.settimeout(0.2)
        try:
            c.connect(("127.0.0.1", port))
        except OSError:
            c.close()
            break
        held.append(c)
    yield f"http://127.0.0.1:{port}/v1"
    for c in held:
        c.close()
    srv.close()


def retry_lines(stderr: str) -> list[re.Match[str]]:
    lines = stderr.splitlines()
    found = [m for m in map(RETRY_LINE.match, lines) if m]
    assert len(found) == len(lines) - 1, stderr  # every other line is a retry, the last the error
    return found


def test_a_refused_connection_says_each_retry(tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{closed_port()}/v1"
    proc = cli(
        "get", "file-x", "-p", "openai", "-s", f"api_base={base}", "--max-retries", "2", env={"OPENAI_API_KEY": KEY}
    )
    assert proc.returncode == 1 and proc.stdout == ""
    lines = retry_lines(proc.stderr)
    assert [(m["k"], m["n"]) for m in lines] == [("2", "3"), ("3", "3")]
    assert all("cannot connect to 127.0.0.1" in m["why"] and "refused" in m["why"] for m in lines)
    assert "TrackedHTTP" not in proc.stderr and "Failed to establish" not in proc.stderr  # urllib3's words, cut
    last = proc.stderr.splitlines()[-1]
    assert last.startswith("llmfiles: error: cannot connect to 127.0.0.1") and "gave up after 3 attempts" in last
    quiet = cli(
        "get",
        "file-x",
        "-p",
        "openai",
        "-s",
        f"api_base={base}",
        "--max-retries",
        "2",
        "-q",
        env={"OPENAI_API_KEY": KEY},
    )
    assert quiet.returncode == 1 and quiet.stderr.splitlines() == [last]  # --quiet: the error only


def test_a_server_that_never_answers_is_a_retry_line_per_stall(silent_server: str) -> None:
    started = time.monotonic()
    proc = cli(
        "get", "file-x", "-p", "openai", "-s", f"api_base={silent_server}", "--timeout", "1", "--max-retries", "1",
        env={"OPENAI_API_KEY": KEY},
    )  # fmt: skip
    assert proc.returncode == 1
    (line,) = retry_lines(proc.stderr)
    assert "no progress for 1s waiting for 127.0.0.1" in line["why"], line["why"]
    assert time.monotonic() - started < 30


def test_connecting_has_its_own_short_timeout(black_hole: str) -> None:
    started = time.monotonic()
    proc = cli(
        "get", "file-x", "-p", "openai", "-s", f"api_base={black_hole}", "-s", "connect_timeout=0.5",
        "--max-retries", "1", env={"OPENAI_API_KEY": KEY},
    )  # fmt: skip
    assert proc.returncode == 1
    (line,) = retry_lines(proc.stderr)
    assert "no progress for 0.5s connecting to 127.0.0.1" in line["why"], line["why"]
    assert time.monotonic() - started < 20  # not the 600 s of the stall timeout


def test_a_missing_key_is_a_short_error_with_the_command_lines_advice(tmp_path: Path) -> None:
    train = tmp_path / "train.jsonl"
    train.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n')
    proc = cli("upload", str(train), "-p", "openai")
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr
    first, *rest = proc.stderr.splitlines()
    assert first == "llmfiles: error: no credentials for provider 'openai': set OPENAI_API_KEY, or pass -s api_key=..."
    assert (
        rest[0] == "looked at:" and "  env OPENAI_API_KEY" in rest and "  config file [PROFILE.openai] api_key" in rest
    )
    error = json.loads(cli("upload", str(train), "-p", "openai", "--json").stdout)["error"]
    assert error["type"] == "MissingCredentials" and error["exit_code"] == 2
    assert error["hint"] == "set OPENAI_API_KEY, or pass -s api_key=..." and "env OPENAI_API_KEY" in error["looked_at"]


class EchoingAuth(BaseHTTPRequestHandler):
    """Answers 401 with the Authorization header it got in the body (as some gateways do)."""

    def do_GET(self) -> None:
        body = json.dumps({"error": {"message": f"bad key {self.headers.get('Authorization')}", "type": "auth"}})
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: Any) -> None:
        pass


def test_a_json_error_never_holds_the_secret() -> None:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), EchoingAuth)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{srv.server_address[1]}/v1"
        proc = cli("get", "file-x", "-p", "openai", "-s", f"api_base={base}", "--json", env={"OPENAI_API_KEY": KEY})
        text = cli("get", "file-x", "-p", "openai", "-s", f"api_base={base}", env={"OPENAI_API_KEY": KEY})
    finally:
        srv.shutdown()
        srv.server_close()
    error = json.loads(proc.stdout)["error"]
    assert error["type"] == "AuthenticationError" and error["status"] == 401 and "bad key" in error["message"]
    assert KEY not in proc.stdout and KEY not in proc.stderr and KEY not in text.stderr
    assert "env OPENAI_API_KEY" in error["message"]  # where the key came from, never what it is


def test_the_openai_plugin_uploads_and_lists_through_the_command(
    openai_server: OpenAILikeServer, make_jsonl: Any
) -> None:
    train = make_jsonl("train.jsonl")
    env = {"OPENAI_API_KEY": openai_server.api_key, "OPENAI_BASE_URL": openai_server.url}
    assert cli("upload", str(train), "-p", "openai", "-q", env=env).returncode == 0
    lines = cli("list", "-p", "openai", env=env).stdout.splitlines()
    assert lines[0].split()[0] == "ID" and "train.jsonl" in lines[1]
