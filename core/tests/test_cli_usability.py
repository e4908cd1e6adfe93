"""The command as users of gh, aws, huggingface-cli and the openai CLI expect it: options anywhere, a subcommand's
own usage on a mistake, "did you mean", a list with a header and a limit, several ids for delete, the providers
that are not installed with what to install, errors as one JSON object under --json, standard input, a resumed
upload that says so, and shell completion made from the parser."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from clirun import Run, as_json

from llmfiles.cli import build_parser

NETWORK = {"--timeout", "--deadline", "--max-retries"}


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


# --- the parser ---------------------------------------------------------------------------------------------------


def test_every_positional_has_help_and_offline_commands_have_no_network_options() -> None:
    commands = subparsers(build_parser())
    for name, p in commands.items():
        for action in p._actions:
            if not action.option_strings:
                assert action.help, f"`llmfiles {name}`: the positional {action.dest} has no help"
        flags = {f for a in p._actions for f in a.option_strings}
        assert {"--json", "--quiet", "--debug", "--profile"} <= flags, name
        if name in ("validate", "convert", "uploads", "providers", "completion"):
            assert not flags & NETWORK, f"`llmfiles {name}` is offline but offers {flags & NETWORK}"
        if name in ("upload", "list", "get", "delete", "download", "abort"):
            assert flags >= NETWORK | {"--provider", "--set"}, name


def test_global_options_anywhere_on_the_line(run: Run, make_jsonl: Any) -> None:
    src = str(make_jsonl())
    for args in (["--json", "upload", src], ["upload", "--json", src], ["upload", src, "--json"]):
        assert as_json(run(*args))["filename"] == "train.jsonl"
    assert isinstance(as_json(run("list", "--json")), list) and isinstance(as_json(run("--json", "list")), list)
    proc = run("get", "file-" + "0" * 32, "--debug", check=1)
    assert "Traceback" in proc.stderr  # --debug after the command works too


def test_a_subcommand_mistake_prints_that_subcommands_usage(run: Run, make_jsonl: Any) -> None:
    proc = run("upload", str(make_jsonl()), "--purpse", "batch", check=2)
    assert proc.stderr.startswith("usage: llmfiles upload ")
    assert "llmfiles upload: error: unrecognized arguments: --purpse batch (did you mean '--purpose'?)" in proc.stderr
    assert run("upload", check=2).stderr.startswith("usage: llmfiles upload ")
    proc = run("upload", str(make_jsonl()), "-s", "novalue", check=2)
    assert proc.stderr.startswith("usage: llmfiles upload ") and "expects NAME=VALUE, got 'novalue'" in proc.stderr
    proc = run("validate", str(make_jsonl()), "--timeout", "3", check=2)
    assert proc.stderr.startswith("usage: llmfiles validate ") and "unrecognized arguments: --timeout 3" in proc.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["uplod", "x"], "unknown command 'uplod' (did you mean 'upload'?)"),
        (["fine_tune"], "unknown command 'fine_tune'"),
        (
            ["upload", "{train}", "--purpose", "fine_tune"],
            "purpose 'fine_tune' is not accepted by provider 'local' (did you mean 'fine-tune'?)",
        ),
        (["upload", "{train}", "--provider", "locl"], "provider 'locl' is not installed (did you mean 'local'?)"),
        (["upload", "{train}", "--if-exists", "reus"], "invalid choice: 'reus' (did you mean 'reuse'?)"),
        (["upload", "{train}", "-s", "max_concurency=2"], "did you mean 'max_concurrency'?"),
    ],
)
def test_did_you_mean(run: Run, make_jsonl: Any, args: list[str], needle: str) -> None:
    proc = run(*(str(make_jsonl()) if a == "{train}" else a for a in args), check=2)
    assert needle in proc.stderr, proc.stderr


# --- list and delete ----------------------------------------------------------------------------------------------


def test_list_has_a_header_row_and_a_limit(run: Run, make_jsonl: Any) -> None:
    ids = [as_json(run("upload", str(make_jsonl(f"t{i}.jsonl")), "--json"))["id"] for i in range(3)]
    lines = run("list").stdout.splitlines()
    assert lines[0].split() == ["ID", "PURPOSE", "BYTES", "CREATED", "STATUS", "FILENAME"]
    assert sorted(line.split()[0] for line in lines[1:]) == sorted(ids)
    assert lines[1].index("fine-tune") == lines[0].index("PURPOSE")  # the columns line up under the header
    assert len(run("list", "--limit", "2").stdout.splitlines()) == 3
    assert len(as_json(run("list", "--limit", "1", "--json"))) == 1
    assert "greater than 0" in run("list", "--limit", "0", check=2).stderr


def test_delete_takes_several_ids_and_goes_on_past_a_missing_one(run: Run, make_jsonl: Any) -> None:
    a, b = (as_json(run("upload", str(make_jsonl(f"{n}.jsonl")), "--json"))["id"] for n in "ab")
    missing = "file-" + "0" * 32
    proc = run("delete", a, missing, b, check=1)
    assert proc.stdout.splitlines() == [f"deleted {a}", f"deleted {b}"]
    assert proc.stderr.startswith(f"llmfiles: error: local HTTP 404 not_found: no file with id '{missing}'")
    assert as_json(run("list", "--json")) == []
    c = as_json(run("upload", str(make_jsonl("c.jsonl")), "--json"))["id"]
    results = as_json(run("delete", c, missing, "--json", check=1))
    assert results[0] == {"id": c, "deleted": True}
    assert results[1]["deleted"] is False and results[1]["error"]["type"] == "FileNotFound"


# --- providers ----------------------------------------------------------------------------------------------------


def test_providers_lists_the_ones_not_installed_with_what_to_install(run: Run) -> None:
    rows = {r["name"]: r for r in as_json(run("providers", "--json"))}
    assert rows["local"]["installed"] is True
    azure = rows["azure"]  # the run fixture disables every plugin but the core's
    assert azure["installed"] is False and azure["install"] == "pip install llmfiles-azure"
    assert azure["install_from_checkout"] == "pip install ./core ./plugins/openai ./plugins/azure"
    text = run("providers").stdout
    assert "not installed:" in text and "pip install llmfiles-azure" in text
    assert "(from a checkout of llmfiles: pip install ./core ./plugins/openai ./plugins/azure)" in text


# --- errors under --json ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kind", "code", "hint"),
    [
        (["upload", "{train}", "-p", "azure"], "ProviderNotInstalled", 2, "pip install llmfiles-azure"),
        (["upload", "{missing}"], "BadFile", 2, None),
        (["get", "file-" + "0" * 32], "FileNotFound", 1, None),
        (["upload", "{train}", "--purpose", "nope"], "InvalidPurpose", 2, "use one of: "),
        (["list", "--limit", "x"], "UsageError", 2, "see `llmfiles list --help`"),
        (["nosuchcommand"], "UsageError", 2, "see `llmfiles --help`"),
    ],
)
def test_under_json_an_error_is_one_json_object(
    run: Run, make_jsonl: Any, tmp_path: Path, args: list[str], kind: str, code: int, hint: str | None
) -> None:
    paths = {"{train}": str(make_jsonl()), "{missing}": str(tmp_path / "missing.jsonl")}
    proc = run(*(paths.get(a, a) for a in args), "--json", check=code)
    error = as_json(proc)["error"]  # the whole of stdout
    assert error["type"] == kind and error["exit_code"] == code and error["message"]
    assert (error["hint"] is None) if hint is None else error["hint"].startswith(hint)
    assert "Traceback" not in proc.stderr and "llmfiles: error" not in proc.stderr


# --- standard input -----------------------------------------------------------------------------------------------


def _run_stdin(run_env: dict[str, str], data: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "llmfiles", "upload", "-", *args],
        input=data,
        capture_output=True,
        env=run_env,
        timeout=120,
        check=False,
    )


@pytest.fixture
def run_env(home: Path, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMFILES_")}
    env.update(LLMFILES_HOME=str(home), XDG_CONFIG_HOME=str(tmp_path / "cfg"), LLMFILES_DISABLE_PLUGINS="example")
    return env


def test_upload_dash_reads_standard_input(run: Run, run_env: dict[str, str], make_jsonl: Any, tmp_path: Path) -> None:
    data = make_jsonl("x.jsonl", min_bytes=3 * 1024 * 1024).read_bytes()  # more than one read of the pipe
    proc = _run_stdin(run_env, data, "--filename", "piped.jsonl", "--json")
    assert proc.returncode == 0, proc.stderr
    fo = json.loads(proc.stdout)
    assert fo["filename"] == "piped.jsonl" and fo["bytes"] == len(data)
    out = tmp_path / "back.jsonl"
    run("download", fo["id"], "-o", str(out))
    assert out.read_bytes() == data
    assert list((Path(run_env["LLMFILES_HOME"]) / "stdin").iterdir()) == []  # the spooled copy is gone
    # checked as any file: a bad line refuses it, and nothing stays behind
    proc = _run_stdin(run_env, b'{"a": 1}\nnot json\n', "--filename", "bad.jsonl")
    assert proc.returncode == 2 and b"line 2" in proc.stderr
    assert list((Path(run_env["LLMFILES_HOME"]) / "stdin").iterdir()) == []


def test_upload_dash_needs_a_name_and_some_bytes(run_env: dict[str, str]) -> None:
    proc = _run_stdin(run_env, b"{}\n")
    assert proc.returncode == 2 and proc.stderr.startswith(b"llmfiles: error: upload -: name the file with --filename")
    proc = _run_stdin(run_env, b"", "--filename", "empty.jsonl")
    assert proc.returncode == 2 and b"standard input was empty" in proc.stderr


def test_standard_input_larger_than_the_provider_takes_is_refused_while_it_is_read(tmp_path: Path) -> None:
    import io

    from llmfiles.cli import _spool
    from llmfiles.errors import FileTooLarge

    os.environ["LLMFILES_HOME"] = str(tmp_path)  # (the autouse fixture restores it)
    with pytest.raises(FileTooLarge, match="standard input: 3,145,728 bytes is larger than provider 'x' accepts"):
        _spool(io.BytesIO(b"a" * 5 * 1024 * 1024), 2 * 1024 * 1024, "x")
    assert list((tmp_path / "stdin").iterdir()) == []
    path = _spool(io.BytesIO(b"abc"), 10, "x")
    assert path.read_bytes() == b"abc" and path.stat().st_mode & 0o077 == 0
    path.unlink()


# --- a resumed upload says so -------------------------------------------------------------------------------------

STOP_SCRIPT = """
import json, sys, time
import llmfiles
args = json.loads(sys.argv[1])

def progress(event):
    if event.done >= args["stop_after"]:
        open(args["marker"], "w").close()
        time.sleep(600)

llmfiles.Client("local").upload(args["path"], purpose="assistants", progress=progress, max_concurrency=1,
                                multipart_threshold="256KiB", part_size="256KiB")
"""


def _stop_half_way(path: Path, env: dict[str, str], tmp_path: Path) -> None:
    """Upload ``path`` in parts in another process and ``kill -9`` it after 3 of its parts."""
    marker = tmp_path / "stopped"
    marker.unlink(missing_ok=True)
    args = {"path": str(path), "marker": str(marker), "stop_after": 3 * 256 * 1024}
    proc = subprocess.Popen([sys.executable, "-c", STOP_SCRIPT, json.dumps(args)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def test_a_resumed_upload_says_how_much_was_already_uploaded(run: Run, run_env: dict[str, str], tmp_path: Path) -> None:
    large = ("--purpose", "assistants", "--multipart-threshold", "256KiB", "--part-size", "256KiB")
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(9 * 256 * 1024 + 77))  # 10 parts
    _stop_half_way(path, run_env, tmp_path)
    parts_done = as_json(run("uploads", "--json"))[0]["parts_done"]
    out = run("upload", str(path), *large)
    assert out.stderr.splitlines()[0].startswith(
        f"llmfiles: resuming the upload of blob.bin: {parts_done} of 10 parts already uploaded ("
    )
    assert out.stdout.startswith("file-") and as_json(run("uploads", "--json")) == []
    # --quiet resumes without a word
    path.write_bytes(os.urandom(9 * 256 * 1024 + 77))
    _stop_half_way(path, run_env, tmp_path)
    assert as_json(run("uploads", "--json"))[0]["parts_done"] >= 1
    out = run("upload", str(path), *large, "--quiet")
    assert out.stderr == "" and out.stdout.startswith("file-") and as_json(run("uploads", "--json")) == []


# --- shell completion -----------------------------------------------------------------------------------------


def _every_flag_and_command() -> tuple[list[str], list[str]]:
    commands = subparsers(build_parser())
    flags = sorted({f for p in commands.values() for a in p._actions for f in a.option_strings if f.startswith("--")})
    return list(commands), flags


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_come_from_the_parser(run: Run, shell: str) -> None:
    text = run("completion", shell).stdout
    commands, flags = _every_flag_and_command()
    for word in commands:
        assert word in text, f"{shell}: no command {word}"
    for flag in flags:
        assert (flag if shell != "fish" else f"-l {flag[2:]}") in text, f"{shell}: no option {flag}"


def _bash_complete(script: Path, line: str) -> list[str]:
    words = line.split(" ")
    code = (
        f"source {script}; COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}; "
        'COMPREPLY=(); _llmfiles; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    out = subprocess.run(["bash", "-c", code], capture_output=True, text=True, timeout=30, check=True).stdout
    return [w for w in out.splitlines() if w]


def test_bash_completes_commands_options_and_values(run: Run, tmp_path: Path) -> None:
    script = tmp_path / "llmfiles.bash"
    script.write_text(run("completion", "bash").stdout)
    assert _bash_complete(script, "llmfiles up") == ["upload", "uploads"]
    assert _bash_complete(script, "llmfiles --json up") == ["upload", "uploads"]
    assert _bash_complete(script, "llmfiles upload --pur") == ["--purpose"]
    assert "fine-tune" in _bash_complete(script, "llmfiles upload x.jsonl --purpose ")
    assert _bash_complete(script, "llmfiles upload --if-exists r") == ["reuse"]
    assert "local" in _bash_complete(script, "llmfiles list --provider ")
    assert _bash_complete(script, "llmfiles completion ") == ["bash", "zsh", "fish"]
    assert _bash_complete(script, "llmfiles delete --max") == ["--max-retries"]


@pytest.mark.skipif(not any(Path(p, "fish").exists() for p in os.get_exec_path()), reason="fish is not installed")
def test_fish_completes_commands_options_and_values(run: Run, tmp_path: Path) -> None:
    script = tmp_path / "llmfiles.fish"
    script.write_text(run("completion", "fish").stdout)

    def complete(line: str) -> list[str]:
        code = f"source {script}; complete -C '{line}'"
        out = subprocess.run(["fish", "-c", code], capture_output=True, text=True, timeout=30, check=True).stdout
        return [w.split("\t")[0] for w in out.splitlines()]

    assert complete("llmfiles up") == ["upload", "uploads"]
    assert complete("llmfiles upload --pur") == ["--purpose"]
    assert "fine-tune" in complete("llmfiles upload x --purpose ")
    assert complete("llmfiles completion ") == ["bash", "fish", "zsh"]


@pytest.mark.skipif(not any(Path(p, "zsh").exists() for p in os.get_exec_path()), reason="zsh is not installed")
def test_zsh_script_loads_and_registers(run: Run, tmp_path: Path) -> None:
    script = tmp_path / "_llmfiles"
    script.write_text(run("completion", "zsh").stdout)
    assert script.read_text().startswith("#compdef llmfiles\n")
    subprocess.run(["zsh", "-n", str(script)], check=True, timeout=30)
    code = f"autoload -Uz compinit; compinit -u -d {tmp_path}/zcd; source {script}; print -r -- $_comps[llmfiles]"
    out = subprocess.run(["zsh", "-f", "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == "_llmfiles", out.stderr


# --- logs -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("debug", [False, True])
def test_libraries_logs_stay_quiet_unless_debug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], debug: bool
) -> None:
    """azure-identity reports every credential it tried at WARNING: the command shows llmfiles' own warnings and
    the libraries' logs only under --debug."""
    import logging

    from llmfiles import cli

    def command(client: Any, args: Any, term: Any) -> int:
        logging.getLogger("azure.identity").warning("EnvironmentCredential.get_token failed: a 13-line report")
        logging.getLogger("llmfiles.pipeline").warning("train.jsonl: 1 warning(s)")
        return 0

    monkeypatch.setattr(logging.root, "handlers", [])  # a process that configured no logging, as the command is
    monkeypatch.setitem(cli.COMMANDS, "uploads", command)
    assert cli.main(["uploads", *(["--debug"] if debug else [])]) == 0
    err = capsys.readouterr().err
    assert "train.jsonl: 1 warning(s)" in err
    assert ("13-line report" in err) is debug
    assert logging.root.handlers == []  # the command's handler is removed when it returns
