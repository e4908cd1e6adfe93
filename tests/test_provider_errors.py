"""Every installed provider, with no credentials anywhere: the command's error is a short first line (what failed
and the one thing to do, in the command line's words), the places looked at on lines of their own, no library log
and no traceback; the Python API says the same in Python's words.  Run where every plugin is installed (tox -e docs)
it covers them all; elsewhere, those installed.  Nothing leaves 127.0.0.1 (tests/faults/loopback)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from llmfiles.plugins import PluginManager

REPO = Path(__file__).resolve().parents[1]
#: what a provider needs besides credentials to get as far as looking for them
NEEDS = {
    "vertex_ai": ["-s", "bucket=my-bucket"],
    "bedrock": ["-s", "bucket=my-bucket", "-s", "aws_region=us-east-1"],
    "azure": ["-s", "api_base=https://example.openai.azure.com"],
    "openai_compatible": ["-s", "api_base=https://gateway.example.com/v1"],
}


def providers() -> list[str]:
    return sorted(n for n, r in PluginManager(environ={}).providers().items() if r.plugin not in ("local", "example"))


def clean_env(tmp: Path, **extra: str) -> dict[str, str]:
    """No credential of the developer's machine, no metadata server, no config file; loopback only."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp), "LLMFILES_HOME": str(tmp / "home")}
    env.update(XDG_CONFIG_HOME=str(tmp / "config"), PYTHONPATH=str(REPO / "tests" / "faults" / "loopback"))
    env.update(NO_GCE_CHECK="true", GCE_METADATA_HOST="127.0.0.1:9", GCE_METADATA_IP="127.0.0.1:9")
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=str(tmp / "aws-config"))
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(tmp / "aws-credentials"), PYTHONDONTWRITEBYTECODE="1")
    # DefaultAzureCredential, tried: a managed identity endpoint on a closed port of 127.0.0.1
    env.update(
        IDENTITY_ENDPOINT="http://127.0.0.1:9/msi/token", IDENTITY_HEADER="none", LLMFILES_AZURE_DEFAULT_CREDENTIAL="1"
    )
    env.update(extra)
    return env


@pytest.mark.parametrize("name", providers())
def test_no_credentials_is_a_short_error_in_the_readers_words(name: str, tmp_path: Path) -> None:
    from llmfiles.plugins import get_plugin_manager

    purpose = get_plugin_manager().get(name).provider.info.purposes[0]
    train = tmp_path / "train.jsonl"
    train.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n')
    args = ["upload", str(train), "--purpose", purpose, "-p", name, "--no-validate", *NEEDS.get(name, [])]
    proc = subprocess.run(
        [sys.executable, "-m", "llmfiles", *args],
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 2 and proc.stdout == "", (proc.returncode, proc.stdout, proc.stderr)
    first, *rest = proc.stderr.splitlines()
    assert first.startswith("llmfiles: error: ") and name in first, proc.stderr
    assert len(first) <= 220, f"{name}: the first line has {len(first)} characters: {first}"
    assert not re.search(r"\bpass [a-z_]+=", first), f"{name}: Python's advice on the command line: {first}"
    assert "Traceback" not in proc.stderr and "WARNING" not in proc.stderr and "azure.identity" not in proc.stderr
    assert all(line.startswith(("  ", "looked at:", "its settings:")) for line in rest), proc.stderr
    assert len(proc.stderr) < 3000

    code = (
        "import sys, llmfiles\n"
        f"settings = dict(a.split('=', 1) for a in {NEEDS.get(name, [])!r}[1::2])\n"
        "try:\n"
        f"    llmfiles.upload({str(train)!r}, purpose={purpose!r}, provider={name!r}, validate=False, **settings)\n"
        "except llmfiles.ConfigurationError as exc:\n"
        "    print(str(exc).splitlines()[0])\n"
    )
    python = subprocess.run(
        [sys.executable, "-c", code], env=clean_env(tmp_path), capture_output=True, text=True, timeout=180, check=False
    )
    assert python.returncode == 0 and python.stderr == "", python.stderr  # no log reaches a program's terminal
    line = python.stdout.strip()
    assert line == first.removeprefix("llmfiles: error: ") or "pass -s" not in line, (line, first)
    assert "pass -s" not in line and len(line) <= 200, line
