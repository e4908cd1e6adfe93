"""Each plugin installs alone from a checkout, the way the README says: every line of its "Installing" block is run
in a fresh virtual environment, in a copy of the folders it names, and the plugin's providers are then installed
(``llmfiles providers``) and the command works.  The README names every plugin folder of the repository."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def install_lines() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Installing\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the README's Installing section has no bash block"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def distribution_of(folder: str) -> str:
    return str(tomllib.loads((REPO / folder / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"])


def test_the_readme_names_every_plugin_folder_the_core_first() -> None:
    lines = install_lines()
    named = [shlex.split(line)[2:] for line in lines]
    assert all(line.startswith("pip install ./core") for line in lines)
    plugins = {f"./plugins/{p.name}" for p in (REPO / "plugins").iterdir() if (p / "pyproject.toml").exists()}
    assert plugins == {folders[-1] for folders in named if len(folders) > 1}, "a plugin folder has no install line"


def _case(line: str) -> str:
    return shlex.split(line)[-1].removeprefix("./")


@pytest.mark.parametrize("line", install_lines(), ids=_case)
def test_each_line_installs_in_a_fresh_environment(line: str, tmp_path: Path) -> None:
    folders = [f.removeprefix("./") for f in shlex.split(line)[2:]]
    work = tmp_path / "checkout"
    for folder in folders:  # a copy: the build leaves nothing in the repository
        shutil.copytree(
            REPO / folder, work / folder, ignore=shutil.ignore_patterns("tests", "__pycache__", "*.egg-info")
        )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH", "LLMFILES_"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["LLMFILES_HOME"] = str(tmp_path / "home")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    proc = subprocess.run(
        line.replace("pip install", "pip install -q", 1), shell=True, cwd=work, env=env,
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"`{line}` failed in a fresh environment:\n{proc.stderr[-3000:]}"
    out = subprocess.run(
        [str(bin_dir / "llmfiles"), "providers", "--json"], env=env, capture_output=True, text=True, timeout=120,
        check=True,
    )  # fmt: skip
    rows = json.loads(out.stdout)
    for folder in folders:
        dist = distribution_of(folder)
        assert any(r["installed"] and r["package"] == dist for r in rows), f"no provider of {dist} after `{line}`"
    assert not any(r["installed"] and r["package"] not in map(distribution_of, folders) for r in rows)
