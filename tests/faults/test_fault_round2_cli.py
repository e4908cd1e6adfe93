"""Round 2 of the adversarial review, the command line and the machine it runs on: server text on the terminal (4),
errors that are the user's to fix and not internal (9), a symlinked local store (10), Ctrl-C (11).

4. Ids, names, status details, error messages and HTML bodies from the server were printed raw: escape sequences
   recoloured the terminal and set its title, and a newline faked a line such as ``llmfiles: success!``.
9. A read-only or full local store was retried six times; a corrupt state database was an "internal error";
   ``LLMFILES_TIMEOUT=nan`` was an internal error and ``LLMFILES_DEADLINE=0`` silently meant no deadline.
10. A symlinked ``$LLMFILES_HOME/local`` (or ``local/files``) was followed, and its target made owner-only.
11. Ctrl-C printed only ``llmfiles: interrupted``.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from faultlib import Harness, chat_file, cli_env, run_cli

import llmfiles
import llmfiles.local
from llmfiles.errors import LLMFilesError
from servers.fault_proxy import Respond, Stall

JSON = {"Content-Type": "application/json"}

# --- 4: server text never drives the terminal -----------------------------------------------------------------

#: recolour, clear the screen, set the window title, move the cursor home, reverse the text, and fake a line
EVIL = (
    "\x1b[31mred\x1b[0m\x1b]0;pwned\x07\x1b[2J\r\x08\x9b1;1H\u202eesrever\u202c"
    "\nllmfiles: success! file-FAKE uploaded\n"
)


def evil_file(**fields: Any) -> dict[str, Any]:
    data = {
        "id": "file-evil" + EVIL,
        "object": "file",
        "bytes": 123,
        "created_at": 1_700_000_000,
        "filename": "train" + EVIL + ".jsonl",
        "purpose": "fine-tune",
        "status": "error",
        "status_details": EVIL,
    }
    data.update(fields)
    return data


def assert_terminal_safe(text: str) -> None:
    """No control character but the newlines llmfiles writes itself, no bidi override, and no line faked."""
    bad = sorted(
        {
            repr(ch)
            for ch in text
            if (ord(ch) < 0x20 and ch not in "\n") or 0x7F <= ord(ch) < 0xA0 or ch in "\u202a\u202b\u202c\u202d\u202e"
        }
    )
    assert not bad, f"raw control characters reached the terminal: {bad}\n{text!r}"
    faked = [line for line in text.splitlines() if line.lstrip().startswith("llmfiles: success")]
    assert not faked, f"server text made a line of its own: {faked}"


@pytest.mark.parametrize("harness", ["openai"], indirect=True)
def test_server_text_is_escaped_in_every_human_output(harness: Harness, tmp_path: Path) -> None:
    small = chat_file(tmp_path / "small.jsonl", min_bytes=2_000)
    page = {"object": "list", "data": [evil_file()], "has_more": False}
    p = "--provider=openai"
    outputs = []
    proxy = harness.proxy

    def answer(method: str, route: str, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        proxy.add_rule(
            lambda r: r.method == method and r.path.endswith(route), Respond(status, headers or JSON, body), times=10
        )

    # the answers of get, list, upload, and of errors: JSON with escapes, and an HTML page
    answer("GET", "/files/file-x", 200, json.dumps(evil_file()).encode())
    outputs.append(run_cli(harness, "get", "file-x", p))
    answer("GET", "/files", 200, json.dumps(page).encode())
    outputs.append(run_cli(harness, "list", p))
    answer("POST", "/files", 200, json.dumps(evil_file()).encode())
    outputs.append(run_cli(harness, "upload", str(small), p))
    err = {"error": {"message": EVIL, "type": EVIL, "param": EVIL, "code": "bad" + EVIL}}
    answer(
        "GET",
        "/files/file-y",
        400,
        json.dumps(err).encode(),
        {**JSON, "x-request-id": "req" + EVIL.encode().decode("latin-1")},
    )
    outputs.append(run_cli(harness, "get", "file-y", p))
    answer(
        "GET",
        "/files/file-z",
        500,
        ("<html><title>" + EVIL + "</title></html>").encode(),
        {"Content-Type": "text/html"},
    )
    outputs.append(run_cli(harness, "get", "file-z", p, "--max-retries", "0"))
    answer("DELETE", "/files/file-w", 404, json.dumps(err).encode())
    outputs.append(run_cli(harness, "delete", "file-w", p))
    (tmp_path / "out").mkdir()
    answer("GET", "/files/file-v", 200, json.dumps(evil_file(id="file-v")).encode())
    answer("GET", "/files/file-v/content", 200, b"content", {"Content-Type": "application/octet-stream"})
    outputs.append(run_cli(harness, "download", "file-v", "-o", str(tmp_path / "out"), p))

    assert [o.returncode for o in outputs] == [0, 0, 0, 1, 1, 1, 0], [o.stderr for o in outputs]
    for o in outputs:
        assert_terminal_safe(o.stdout + o.stderr)
    assert "file-evil" in outputs[0].stdout and "red" in outputs[0].stdout  # shown, escaped: not dropped
    assert "llmfiles: success" in outputs[3].stderr  # the fake line is there, inside the error's own line
    # --json stays machine-readable, the values exact
    raw = run_cli(harness, "get", "file-x", p, "--json")
    assert json.loads(raw.stdout)["status_details"] == EVIL


# --- 9: the user's to fix, never "internal error" -----------------------------------------------------------------


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES])
def test_a_read_only_or_full_local_store_is_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    """A read-only file system, a full disk, a quota, no permission: one attempt, an error that says which."""
    path = tmp_path / "notes.txt"
    path.write_bytes(b"notes\n")
    home = Path(os.environ["LLMFILES_HOME"])
    with llmfiles.Client("local") as client:
        client.list_files()  # the store exists
        store = home / "local"
        attempts: list[str] = []
        real_open = os.open

        def refusing_open(file: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if flags & os.O_CREAT and str(store) in os.fspath(file):
                attempts.append(os.fspath(file))
                raise OSError(code, os.strerror(code), os.fspath(file))
            return real_open(file, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", refusing_open)
        started = time.monotonic()
        with pytest.raises(LLMFilesError) as info:
            client.upload(path, purpose="assistants", max_retry_wait=5)
        took = time.monotonic() - started
    assert len(attempts) == 1, f"{len(attempts)} attempts"
    assert os.strerror(code) in str(info.value)
    assert "credential" not in str(info.value)  # the local store needs none: it is not about one
    assert took < 5  # no retry wait


def broken_state_database(how: str, elsewhere: Path) -> Path:
    """``$LLMFILES_HOME/state.db`` as something that is no database: garbage, a symbolic link to someone else's
    file (never followed: it is left as it was), or a folder."""
    home = Path(os.environ["LLMFILES_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    db = home / "state.db"
    if how == "garbage":
        db.write_bytes(b"this is not an SQLite database " * 400)
    elif how == "symlink":
        elsewhere.write_bytes(b"precious")
        db.symlink_to(elsewhere)
    else:
        db.mkdir()
    return db


def run_local(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmfiles", *args],
        env={**os.environ, **(env or {})},
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("how", ["garbage", "symlink", "folder"])
def test_a_corrupt_state_database_is_named_not_an_internal_error(tmp_path: Path, how: str) -> None:
    db = broken_state_database(how, tmp_path / "someone-elses-file")
    small = tmp_path / "notes.txt"
    small.write_bytes(b"notes\n" * 100)
    listed = run_local("uploads")
    aborted = run_local("abort", "abc123")
    for done in (listed, aborted):
        assert "internal error" not in done.stderr, done.stderr
        assert done.returncode == 1, done.stderr
        assert str(db) in done.stderr and "move it aside" in done.stderr, done.stderr
    # an upload does not need the database: it goes on, and says what it could not do
    for if_exists in ("new", "reuse", "error"):
        uploaded = run_local(
            "upload", str(small), "--provider", "local", "--purpose", "assistants", "--if-exists", if_exists
        )
        assert uploaded.returncode == 0, uploaded.stderr
        assert "internal error" not in uploaded.stderr
    if how == "symlink":
        assert (tmp_path / "someone-elses-file").read_bytes() == b"precious"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LLMFILES_TIMEOUT", "nan"),
        ("LLMFILES_TIMEOUT", "inf"),
        ("LLMFILES_TIMEOUT", "0"),
        ("LLMFILES_DEADLINE", "0"),
        ("LLMFILES_DEADLINE", "nan"),
        ("LLMFILES_DEADLINE", "-5"),
        ("LLMFILES_CONNECT_TIMEOUT", "inf"),
    ],
)
def test_a_number_that_makes_no_sense_is_a_configuration_error(name: str, value: str) -> None:
    done = run_local("list", "--provider", "local", env={name: value})
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "internal error" not in done.stderr
    assert f"env {name}" in done.stderr, done.stderr


# --- 10: a symlinked store is refused, its target untouched -------------------------------------------------------


@pytest.mark.parametrize("linked", ["local", "local/files"])
def test_a_symlinked_local_store_is_refused_and_its_target_left_alone(tmp_path: Path, linked: str) -> None:
    home = Path(os.environ["LLMFILES_HOME"])
    target = tmp_path / "somebody-elses-folder"
    target.mkdir()
    target.chmod(0o755)
    (target / "theirs.txt").write_bytes(b"theirs")
    link = home / linked
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=True)
    small = tmp_path / "notes.txt"
    small.write_bytes(b"notes\n")
    uploaded = run_local("upload", str(small), "--provider", "local", "--purpose", "assistants")
    listed = run_local("list", "--provider", "local")
    for done in (uploaded, listed):
        assert done.returncode != 0, done.stdout
        assert "symbolic link" in done.stderr, done.stderr
        assert "internal error" not in done.stderr and "credential" not in done.stderr, done.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    assert sorted(p.name for p in target.iterdir()) == ["theirs.txt"]


# --- 11: Ctrl-C says what became of the upload --------------------------------------------------------------------


def interrupt_when(h: Harness, args: list[str], stalled: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``llmfiles ARGS``; send it SIGINT once the proxy holds a request whose action starts with ``stalled``;
    what it printed, and how long it took to end after the SIGINT (the proxy would hold the request 120 s)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmfiles", *args],
        env={**cli_env(h), "LLMFILES_TIMEOUT": "600"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(r.action.startswith(stalled) for r in h.proxy.requests):
            assert proc.poll() is None, f"ended early: {proc.communicate()}"
            assert time.monotonic() < deadline, "the request never reached the proxy"
            time.sleep(0.05)
        time.sleep(0.5)  # the request is in flight, the client waits for its answer
        proc.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        out, err = proc.communicate(timeout=150)
        took = time.monotonic() - interrupted
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), took


def test_ctrl_c_during_a_large_upload_says_the_session_was_kept_and_how_to_go_on(
    harness: Harness, tmp_path: Path
) -> None:
    large = chat_file(tmp_path / "large.jsonl", min_bytes=harness.large_bytes)
    harness.proxy.add_rule(harness.nth_part(2), Stall(120))
    size = str(harness.part_bytes)
    # parts in parallel (the default): the ones in flight are cut, not waited for
    done, took = interrupt_when(
        harness,
        ["upload", str(large), "--provider", harness.name, "--multipart-threshold", size, "--part-size", size],
        "stall",
    )
    assert done.returncode == 130, done.stderr
    assert took < 30, f"Ctrl-C ended the upload after {took:.0f}s"
    assert "interrupted" in done.stderr
    assert "session was kept" in done.stderr, done.stderr
    assert "run the same upload again" in done.stderr and "llmfiles abort" in done.stderr, done.stderr
    with harness.client() as client:
        [kept] = client.unfinished_uploads()
    assert kept["provider"] == harness.name


def test_ctrl_c_during_a_one_request_upload_says_the_file_may_be_at_the_provider(
    harness: Harness, tmp_path: Path
) -> None:
    small = chat_file(tmp_path / "small.jsonl", min_bytes=20_000)
    harness.proxy.add_rule(harness.is_upload, Stall(120, forward=True))
    done, took = interrupt_when(harness, ["upload", str(small), "--provider", harness.name], "stall")
    assert done.returncode == 130, done.stderr
    assert took < 30, f"Ctrl-C ended the upload after {took:.0f}s"
    assert "interrupted" in done.stderr
    assert "may already" in done.stderr and "llmfiles list" in done.stderr, done.stderr
