"""Running the ``llmfiles`` command in a subprocess for the tests (the ``run`` fixture is in conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

Run = Callable[..., subprocess.CompletedProcess[str]]


def cli_env(home: Path, tmp_path: Path) -> dict[str, str]:
    """The environment of the command in a test: its own data and config folders, no LLMFILES_ variable of the
    developer's, and only the core's own provider (other installed plugins are tested by their own suites)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMFILES_")}
    env["LLMFILES_HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config-home")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    others = sorted({ep.name for ep in entry_points(group="llmfiles")} - {"local"})
    if others:
        env["LLMFILES_DISABLE_PLUGINS"] = ",".join(others)
    return env


def make_run(env: dict[str, str], cwd: Path) -> Run:
    def run(*args: str, check: int | None = 0) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "llmfiles", *args],
            check=False,
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
            timeout=120,
        )
        if check is not None:
            assert proc.returncode == check, (proc.returncode, proc.stdout, proc.stderr)
        return proc

    return run


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(proc.stdout)  # the whole of stdout must be JSON
