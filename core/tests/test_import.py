"""``import llmfiles`` is cheap: no plugin, no HTTP library, no serialization library, no entry-point scan."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "pluggy",
    "urllib3",
    "cattrs",
    "attrs",
    "attr",
    "llmfiles.api",
    "llmfiles.plugins",
    "importlib.metadata",
    "tqdm",
    "sqlite3",
    "llmfiles.state",
)


def loaded_after(code: str) -> list[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_import_llmfiles_loads_nothing_heavy() -> None:
    assert loaded_after("import llmfiles") == []


def test_the_public_names_and_errors_are_still_cheap() -> None:
    assert loaded_after("import llmfiles; llmfiles.__version__; llmfiles.errors.LLMFilesError; dir(llmfiles)") == []


def test_the_api_loads_on_first_use() -> None:
    assert "llmfiles.api" in loaded_after("import llmfiles; llmfiles.upload")


def test_unknown_attributes_raise_attribute_error() -> None:
    code = "import llmfiles\ntry:\n    llmfiles.nope\nexcept AttributeError:\n    pass\nelse:\n    raise SystemExit(1)"
    assert loaded_after(code) == []
