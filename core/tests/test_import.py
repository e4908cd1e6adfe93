"""``import llmfiles`` is cheap: no plugin, no HTTP library, no serialization library, no entry-point scan; the
core's modules import each other without a cycle; no provider is special-cased by name."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "core" / "src" / "llmfiles"

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
    "orjson",
    "llmfiles.local",
    "llmfiles_openai",
    "llmfiles_example",
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


def test_a_client_loads_the_plugins_only_when_a_provider_is_asked_for() -> None:
    loaded = loaded_after("import llmfiles\nllmfiles.Client()")
    assert "llmfiles_openai" not in loaded and "llmfiles_example" not in loaded and "urllib3" not in loaded


# --- no import cycle ---------------------------------------------------------------------------------------------


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def modules(root: Path) -> dict[str, Path]:
    """The modules of the package at ``root``, by dotted name."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(name: str, path: Path, known: Mapping[str, Path]) -> set[str]:
    """The modules of ``known`` that ``name`` imports anywhere (in functions too), except under ``TYPE_CHECKING``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.orelse:
                    visit(stmt)
                continue
            if isinstance(child, ast.Import):
                out.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    up = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*up, base] if base else up)
                out.update(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in child.names)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in out if m in known and m != name}


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as the path around it), or ``None``."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := walk(nxt)) is not None:
                return cycle
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := walk(start)) is not None:
            return cycle
    return None


def import_graph(root: Path) -> dict[str, set[str]]:
    known = modules(root)
    return {name: imports_of(name, path, known) for name, path in known.items()}


def test_the_core_has_no_import_cycle() -> None:
    graph = import_graph(CORE)
    assert len(graph) > 30 and sum(map(len, graph.values())) > 100  # the whole core was read
    assert "llmfiles.uploads" in graph["llmfiles.api"]  # imported inside Client.__init__
    assert "llmfiles.validate.jsonl" not in graph["llmfiles.api"]  # imported under TYPE_CHECKING only
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_sees_function_level_imports_and_skips_type_checking(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n")
    (pkg / "sub" / "c.py").write_text("def f():\n    from ..a import x\n")
    graph = import_graph(pkg)
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == set() and graph["pkg.sub.c"] == {"pkg.a"}
    assert find_cycle(graph) is None
    (pkg / "b.py").write_text("def g():\n    import pkg.sub.c\n")
    assert find_cycle(import_graph(pkg)) == ["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]


# --- the core calls exactly the provider a call names ---------------------------------------------------------


def provider_guards(root: Path, base: Path = REPO) -> list[str]:
    """``provider != ...`` comparisons (a plugin answering only for its own provider) under ``root``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare) and any(isinstance(op, ast.NotEq) for op in node.ops):
                names = [node.left, *node.comparators]
                if any(isinstance(n, ast.Name) and n.id == "provider" for n in names):
                    found.append(f"{path.relative_to(base)}:{node.lineno}")
    return found


@pytest.mark.parametrize(
    "root",
    [
        pytest.param(REPO / "core" / "src", id="core"),
        *(pytest.param(p / "src", id=p.name) for p in sorted((REPO / "plugins").iterdir()) if (p / "src").is_dir()),
    ],
)
def test_no_provider_guard(root: Path) -> None:
    assert provider_guards(root) == []


def test_the_guard_finder_finds_a_guard(tmp_path: Path) -> None:
    (tmp_path / "p.py").write_text("def hook(provider):\n    if provider != 'x':\n        return None\n")
    (tmp_path / "q.py").write_text("def f(self):\n    return self.rules.provider != 'OpenAI'\n")
    assert provider_guards(tmp_path, tmp_path) == ["p.py:2"]
