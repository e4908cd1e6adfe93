"""Guards that keep the README's two quickstart commands true."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def quickstart_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_quickstart_has_exactly_two_commands() -> None:
    commands = quickstart_commands()
    assert len(commands) == 2, commands
    assert all("\n" not in c for c in commands)
    assert "upload" in commands[0] and "examples/train.jsonl" in commands[0]
    assert "tox" in commands[1]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert quickstart_commands()[1] in ci.splitlines()


def test_the_example_training_file_is_valid() -> None:
    lines = (REPO / "examples" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) >= 10
    for line in lines:
        record = json.loads(line)
        assert record["messages"][-1]["role"] == "assistant"


def test_the_first_command_uploads_to_local(tmp_path: Path) -> None:
    """Run the README's first command as a newcomer would, in a copy of the repository."""
    work = tmp_path / "repo"
    shutil.copytree(REPO / "core", work / "core", ignore=shutil.ignore_patterns("tests", "__pycache__", "*.egg-info"))
    shutil.copytree(REPO / "examples", work / "examples")
    command = quickstart_commands()[0].replace("python3 ", f"{sys.executable} ", 1)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    env["LLMFILES_HOME"] = str(tmp_path / "home")
    proc = subprocess.run(
        command, check=False, shell=True, cwd=work, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^file-[0-9a-f]{32}$", proc.stdout, re.M), proc.stdout
    assert "processed" in proc.stdout
    stored = list((tmp_path / "home" / "local" / "files").glob("*.data"))
    assert len(stored) == 1
    assert stored[0].read_bytes() == (REPO / "examples" / "train.jsonl").read_bytes()
