"""Guards of the documentation site (``docs/``) and of the README, run by ``tox -e docs`` (Sphinx, Sybil and every
plugin installed).

* the site builds with warnings as errors, and its generated references are complete: every hook of
  ``llmfiles.hookspecs`` and every name of the provider contract (``llmfiles.provider``), every command and option
  of the CLI, every name of ``llmfiles.__all__``, every setting and every environment variable every installed
  plugin declares appear in the rendered pages (datasette style) — and the reference pages list them in their
  Markdown too, for readers on GitHub;
* every code block of the README, of the pages and of the plugin READMEs they include is run as it is written
  (``tests/docs_snippets.py``, a Sybil plugin: ``python``, ``bash`` and ``text`` blocks), or is a copy of a file of
  the repository marked ``<!-- same-as: PATH -->`` and compared with it here — never code that nothing runs;
* no page describes the v1 provider hooks any more.
"""

from __future__ import annotations

import argparse
import ast
import configparser
import html as htmllib
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import myst_parser  # noqa: F401 - Sphinx, MyST, Sybil and every plugin come with `tox -e docs`, which runs this file
import pytest
import sphinx  # noqa: F401

import llmfiles
from docs_snippets import CLEARED_PREFIXES, SNIPPETS, skip_reasons
from llmfiles import hookspecs
from llmfiles.cli import build_parser
from llmfiles.plugins import PluginManager

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

import llmfiles_docs  # noqa: E402 - the Sphinx extension, for the lists the pages must show


def build_env() -> dict[str, str]:
    """The builder's environment: no credentials of the developer's machine."""
    return {k: v for k, v in os.environ.items() if not k.startswith(CLEARED_PREFIXES)}


# --- the built site ------------------------------------------------------------------------------------------


class Page:
    """One built HTML page: ``html`` as written, ``text`` with every tag removed (inline spans joined)."""

    def __init__(self, html: str) -> None:
        self.html = html
        body = html.split('<div class="body" role="main">', 1)[-1]
        self.text = htmllib.unescape(re.sub(r"<[^>]+>", "", body))


def _dirs(out: Path) -> list[str]:
    return [str(DOCS), str(out / "html")]


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Page]:
    """Build the whole site as ``tox -e docs`` does (HTML, warnings as errors); return each page."""
    out = tmp_path_factory.mktemp("docs-html")
    warnings = out / "warnings.txt"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-w", str(warnings), "-b", "html", *_dirs(out)],
        env=build_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"the docs do not build cleanly:\n{warnings.read_text()}\n{proc.stderr}"
    return {
        str(p.relative_to(out / "html").with_suffix("")): Page(p.read_text(encoding="utf-8"))
        for p in (out / "html").rglob("*.html")
    }


def test_every_hook_is_in_the_hook_reference(rendered: dict[str, Page]) -> None:
    hooks = [
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("llmfiles_") and fn.__module__ == hookspecs.__name__
    ]
    v2 = {"llmfiles_register_providers", "llmfiles_register_converters", "llmfiles_get_secret", "llmfiles_credentials"}
    assert v2 | {"llmfiles_request"} <= set(hooks), hooks
    page = rendered["hooks"].text
    missing = [h for h in hooks if f"llmfiles.hookspecs.{h}(" not in page]
    assert not missing, f"hooks missing from the hook reference (docs/hooks.md): {missing}"
    for hook in hooks:  # the docstring itself is on the page, not only the name
        doc = inspect.getdoc(getattr(hookspecs, hook))
        assert doc, f"{hook} has no docstring; in llmfiles/hookspecs.py the docstring is the hook's documentation"
        first_line = doc.splitlines()[0]
        words = re.findall(r"[A-Za-z]{4,}", first_line)[:4]
        assert all(w in page for w in words), f"{hook}: its docstring is not rendered ({words})"


def test_every_cli_command_and_option_is_in_the_cli_reference(rendered: dict[str, Page]) -> None:
    page = rendered["cli"].text
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(sub.choices) >= 7
    for name, command in sub.choices.items():
        assert f'id="cli-{name}"' in rendered["cli"].html, f"no section for `llmfiles {name}`"
        assert f"llmfiles {name}" in page
        assert f"usage: llmfiles {name}" in page, f"no usage line for `llmfiles {name}`"
        for action in command._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert flag in page, f"`llmfiles {name} {flag}` is not in the CLI reference"


def test_every_public_name_is_in_the_api_reference(rendered: dict[str, Page]) -> None:
    page = rendered["api"].text
    missing = [name for name in llmfiles.__all__ if f"llmfiles.{name}" not in page]
    assert not missing, f"public names missing from the API reference (docs/api.md): {missing}"
    assert "llmfiles.upload(file" in page and "llmfiles.Client(provider" in page  # rendered by autodoc


def test_every_setting_and_environment_variable_is_in_concepts(rendered: dict[str, Page]) -> None:
    from llmfiles.settings import CORE_SETTINGS

    page = rendered["concepts"].text
    providers = PluginManager(environ={}).providers()
    assert {"local", "openai", "azure", "vertex_ai", "bedrock"} <= set(providers)
    for spec in CORE_SETTINGS:
        assert all(var in page for var in spec.env), spec
    for name, registered in providers.items():
        info = registered.provider.info
        if registered.plugin == "example":
            continue  # the tutorial's plugin, not a provider of llmfiles
        assert f'<h4>{name}<a class="headerlink"' in rendered["concepts"].html, f"no settings chain for {name}"
        for spec in info.settings:
            for var in spec.env:
                assert var in page, f"{name}: {var} (setting {spec.name}) is not in docs/concepts.md"


def test_every_environment_variable_the_core_reads_is_documented(rendered: dict[str, Page]) -> None:
    """Every ``LLMFILES_*`` name in the core's source (settings, the config file and profile, the provider, the
    plugins switch, the parser switch ...) appears on some page of the site."""
    source = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "core" / "src").rglob("*.py"))
    names = sorted(set(re.findall(r"[\"'`](LLMFILES_[A-Z_]+)", source)))
    assert {"LLMFILES_CONFIG", "LLMFILES_PROFILE", "LLMFILES_PROVIDER", "LLMFILES_HOME"} <= set(names)
    site = " ".join(page.text for page in rendered.values())
    missing = [n for n in names if n not in site]
    assert not missing, f"environment variables no page documents: {missing}"


def test_each_provider_page_includes_its_readme(rendered: dict[str, Page]) -> None:
    for page, plugin in {"openai": "openai", "azure": "azure", "vertex": "vertex", "bedrock": "bedrock"}.items():
        readme = (REPO / "plugins" / plugin / "README.md").read_text(encoding="utf-8")
        title = readme.splitlines()[0].lstrip("# ").strip()
        text = rendered[f"providers/{page}"].text
        assert text.lstrip().startswith(title), page
        assert "What the plugin declares" in text


def test_every_name_of_the_provider_contract_is_in_the_hook_reference(rendered: dict[str, Page]) -> None:
    page = rendered["hooks"].text
    names = llmfiles_docs.contract_names()
    assert {"Provider", "BaseProvider", "Exchange", "Probe", "PartLimits", "UploadProtocol"} <= set(names)
    assert {"PartsUpload", "ResumableUpload", "Http", "InProcessServer"} <= set(names)
    missing = [n for n in names if f"llmfiles.provider.{n}" not in page]
    assert not missing, f"names of llmfiles.provider missing from the hook reference: {missing}"
    from llmfiles import provider

    for name in ("Exchange", "Probe", "BaseProvider"):  # the docstrings themselves are on the page
        first_line = (inspect.getdoc(getattr(provider, name)) or "").splitlines()[0]
        plain = re.sub(r":\w+:`~?([^`]+)`", r"\1", first_line).replace("`", "")
        assert " ".join(plain.split()[:5]) in " ".join(page.split()), name


# --- the reference pages, read on GitHub: their Markdown lists what Sphinx generates ------------------------


def _markdown(page: str) -> str:
    return (DOCS / page).read_text(encoding="utf-8")


def test_the_hook_page_lists_every_hook_and_the_contract_in_markdown() -> None:
    text = _markdown("hooks.md")
    missing = [n for n in [*llmfiles_docs.hook_names(), *llmfiles_docs.CONTRACT] if f"`{n}" not in text]
    assert not missing, f"docs/hooks.md does not list {missing} (GitHub shows no generated reference)"


def test_the_cli_page_lists_every_command_in_markdown() -> None:
    text = _markdown("cli.md")
    missing = [c for c in llmfiles_docs.cli_commands() if f"`llmfiles {c}" not in text]
    assert not missing, f"docs/cli.md does not list {missing}"


def test_the_api_page_lists_every_public_name_in_markdown() -> None:
    text = _markdown("api.md")
    missing = [n for n in llmfiles.__all__ if f"`{n}`" not in text]
    assert not missing, f"docs/api.md does not list {missing}"


# --- every code block is run, or is a copy of a file that is compared here -----------------------------------

#: a fenced block: fence, language or ``{directive}``, the rest of the fence line, the body
_FENCE = re.compile(r"^(```+|~~~+)[ \t]*(\S*)([^\n]*)\n(.*?)^\1[ \t]*$", re.M | re.S)
#: a ``<!-- same-as: PATH[::OBJECT] [(i/n)] -->`` mark just before a block
_SAME_AS = re.compile(r"<!--\s*same-as:\s*(\S+?)(?:::(\w+))?(?:\s+\((\d+)/(\d+)\))?\s*-->\s*\n$")
#: languages whose blocks tests/docs_snippets.py runs (python, bash) or checks (text)
RUN = {"python", "bash", "text"}
ALLOWED_DIRECTIVES = {"{toctree}", "{eval-rst}", "{include}"}
README_INCLUDES = {"README.md", *(p.relative_to(REPO).as_posix() for p in (REPO / "plugins").glob("*/README.md"))}
#: the names of the v1 provider contract, gone in v2
V1_NAMES = (
    "llmfiles_resolve_credentials",
    "llmfiles_build_request",
    "llmfiles_normalize_response",
    "llmfiles_record_checker",
    "UploadPlan",
    "SourceRange",
    "GeneratedBody",
    "ConvertedSource",
    "upload_digests",
    "literalinclude",
)


def markdown_files() -> list[Path]:
    """The README, every page of the site (and the design document), the READMEs the provider pages include and
    the example plugin's."""
    files = [REPO / "README.md", *(REPO / p for p in README_INCLUDES if p != "README.md")]
    files += [p for p in DOCS.rglob("*.md") if "_build" not in p.relative_to(DOCS).parts]
    return sorted(set(files))


def blocks(path: Path) -> list[tuple[str, str, str, re.Match[str] | None]]:
    """``(where, language, body, same-as mark)`` of every fenced block of ``path``."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in _FENCE.finditer(text):
        where = f"{path.relative_to(REPO)}:{text[: m.start()].count(chr(10)) + 1}"
        out.append((where, m.group(2), m.group(4), _SAME_AS.search(text[max(0, m.start() - 300) : m.start()])))
    return out


def test_every_code_block_is_run_or_compared() -> None:
    seen = 0
    for path in markdown_files():
        assert SNIPPETS.should_parse(path), f"tests/docs_snippets.py does not collect {path.relative_to(REPO)}"
        for where, kind, body, same_as in blocks(path):
            seen += 1
            if same_as is not None:
                continue  # compared below
            if kind.startswith("{"):
                assert kind in ALLOWED_DIRECTIVES, f"{where}: a ```{kind} block; show the code itself in the Markdown"
                if kind == "{eval-rst}":
                    assert not re.search(r"::\s*$", re.sub(r"^\s*\.\. [\w:-]+::.*$", "", body, flags=re.M), re.M), (
                        f"{where}: a literal block inside eval-rst"
                    )
                    assert "code-block" not in body and ".. code::" not in body, where
                continue
            assert kind in RUN, (
                f"{where}: a ```{kind or '(no language)'} block, which nothing runs: make it python, bash or text "
                "(tests/docs_snippets.py runs them), or mark it <!-- same-as: PATH --> if it shows a file"
            )
    assert seen > 50


def test_includes_are_the_readmes() -> None:
    for path in markdown_files():
        for target in re.findall(r"^```+\{include\}\s*(\S+)", path.read_text(encoding="utf-8"), re.M):
            included = (path.parent / target).resolve().relative_to(REPO).as_posix()
            assert included in README_INCLUDES, f"{path.relative_to(REPO)}: include of {target}"


def _object_source(path: Path, name: str) -> str:
    text = path.read_text(encoding="utf-8")
    for node in ast.parse(text).body:
        if getattr(node, "name", None) == name:
            assert isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            return "\n".join(text.splitlines()[start - 1 : node.end_lineno]) + "\n"
    raise AssertionError(f"{path.relative_to(REPO)} has no {name}")


def test_blocks_that_show_a_file_are_that_file() -> None:
    """The tutorial shows the example plugin's real source, its pyproject.toml and the tests that run it: each such
    block is the file (or the class or function) it says it is, word for word, and a file shown in parts is shown
    whole, in order."""
    parts: dict[Path, list[tuple[int, int, str]]] = {}
    compared = 0
    for path in markdown_files():
        for where, _, body, mark in blocks(path):
            if mark is None:
                continue
            target = REPO / mark.group(1)
            assert target.is_file(), f"{where}: same-as names {mark.group(1)}, which does not exist"
            if mark.group(3):
                parts.setdefault(target, []).append((int(mark.group(3)), int(mark.group(4)), body))
                continue
            expected = _object_source(target, mark.group(2)) if mark.group(2) else target.read_text(encoding="utf-8")
            assert body == expected, f"{where} is not {mark.group(1)} {mark.group(2) or ''} any more: copy it again"
            compared += 1
    for target, shown in parts.items():
        numbers = sorted(i for i, _, _ in shown)
        assert numbers == list(range(1, shown[0][1] + 1)), f"{target.relative_to(REPO)}: parts {numbers}"
        whole = "\n\n\n".join(body.strip("\n") for _, _, body in sorted(shown)) + "\n"
        assert whole == target.read_text(encoding="utf-8"), f"the parts shown of {target.relative_to(REPO)} differ"
        compared += 1
    assert compared >= 6


def test_the_tutorial_shows_the_whole_example_plugin() -> None:
    plugin = REPO / "docs/examples/llmfiles-example-plugin/src/llmfiles_example/__init__.py"
    marks = [m.group(1) for *_, m in blocks(DOCS / "tutorial-plugin.md") if m is not None]
    assert marks.count(str(plugin.relative_to(REPO))) == 3
    assert "docs/examples/llmfiles-example-plugin/pyproject.toml" in marks


def test_only_the_readme_newcomer_commands_are_skipped() -> None:
    for path in markdown_files():
        reasons = skip_reasons(path.read_text(encoding="utf-8"))
        if path == REPO / "README.md":
            assert len(reasons) == 2 and "tests/test_readme.py" in reasons[0] and ".ci/run" in reasons[1]
        else:
            assert not reasons, f"{path.relative_to(REPO)} skips a block: run it instead"


def test_tox_runs_the_snippets_of_every_markdown_file() -> None:
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(REPO / "tox.ini")
    command = tox["testenv:docs"]["commands"]
    assert "-p docs_snippets" in command and "sybil" in tox["testenv:docs"]["deps"]
    args = command.split("{posargs:", 1)[1].split("}", 1)[0].split()
    for path in markdown_files():
        rel = path.relative_to(REPO)
        assert any(rel == Path(a) or Path(a) in rel.parents for a in args), f"tox -e docs does not run {rel}"


def test_no_page_describes_the_v1_provider_hooks() -> None:
    for path in markdown_files():
        text = path.read_text(encoding="utf-8")
        found = [name for name in V1_NAMES if name in text]
        assert not found, f"{path.relative_to(REPO)} still names {found}, gone with the v2 provider contract"
