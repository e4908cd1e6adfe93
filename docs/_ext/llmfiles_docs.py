"""Sphinx directives that generate llmfiles' reference pages from the code itself, so the docs cannot drift.

* ``llmfiles-settings`` (argument ``core``): the core settings, from ``llmfiles.settings.CORE_SETTINGS``;
* ``llmfiles-provider`` (argument: a provider name): a provider's facts and settings table, from the
  ``ProviderInfo`` its plugin registers;
* ``llmfiles-chain`` (argument: a provider name): for each setting, every place the settings chain looks, in order
  — from ``llmfiles.settings.places_looked``, the function the ``MissingCredentials`` message is built with;
* ``llmfiles-purposes``: which provider accepts which purpose;
* ``llmfiles-compare-env``: another tool's environment variables next to those llmfiles reads;
* ``llmfiles-cli``: every command and option of ``llmfiles.cli.build_parser()``;
* ``llmfiles-api``: autodoc of every public name in ``llmfiles.__all__``;
* ``llmfiles-errors``: the error hierarchy of ``llmfiles.errors`` with exit codes;
* ``llmfiles-hooks``: autodoc of every ``llmfiles_*`` hook in ``llmfiles.hookspecs``, with its calling convention;
* ``llmfiles-contract``: autodoc of the provider contract, ``llmfiles.provider`` (:data:`CONTRACT`).

Directives produce reStructuredText, so in MyST pages they go inside an ``{eval-rst}`` block.  The helpers
:func:`hook_names`, :func:`contract_names` and :func:`cli_commands` are what ``tests/test_docs.py`` compares the
rendered pages with.
"""

from __future__ import annotations

import argparse
import inspect
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

# --- what the tests compare the rendered pages with ----------------------------------------------------------


def hook_names() -> list[str]:
    """Every hook of ``llmfiles.hookspecs``, in source order."""
    from llmfiles import hookspecs

    return [
        name
        for name, obj in vars(hookspecs).items()
        if name.startswith("llmfiles_") and inspect.isfunction(obj) and hasattr(obj, "llmfiles_spec")
    ]


def cli_subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The sub-commands of ``parser``, in the order they were added."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_commands() -> list[str]:
    """Every command of ``llmfiles``, in the order ``llmfiles --help`` lists them."""
    from llmfiles.cli import build_parser

    return list(cli_subparsers(build_parser()))


# --- formatting helpers --------------------------------------------------------------------------------------

_UNITS = (
    (1024**4, "TiB"),
    (1000**4, "TB"),
    (1024**3, "GiB"),
    (1000**3, "GB"),
    (1024**2, "MiB"),
    (1000**2, "MB"),
)


def fmt_size(n: int | None) -> str:
    """``67108864`` -> ``64 MiB``; ``512000000`` -> ``512 MB``; sizes that are neither: exact bytes."""
    if n is None:
        return "—"
    for unit, name in _UNITS:
        if n >= unit and n % unit == 0:
            return f"{n // unit:,} {name}"
    return f"{n:,} bytes"


def lit(text: Any) -> str:
    """An inline literal, safe for any text."""
    s = str(text).replace("`", "'")
    return f"``{s}``" if s.strip() else "—"


def esc(text: str) -> str:
    """Plain text with reST inline markup characters escaped."""
    out = text
    for ch in ("\\", "*", "`", "|", "_"):
        out = out.replace(ch, "\\" + ch)
    return out


def fmt_default(spec: Any) -> str:
    if spec.default is None:
        return "—"
    if spec.kind == "size" and isinstance(spec.default, int):
        return fmt_size(spec.default)
    return lit(repr(spec.default) if isinstance(spec.default, str) else spec.default)


def list_table(header: Sequence[str], rows: Iterable[Sequence[str]], widths: str = "auto") -> list[str]:
    lines = [".. list-table::", "   :header-rows: 1", f"   :widths: {widths}", ""]
    for row in [header, *rows]:
        first = True
        for cell in row:
            text = " ".join(str(cell).split()) or "—"
            lines.append(f"   {'* -' if first else '  -'} {text}")
            first = False
    lines.append("")
    return lines


def plugin_manager() -> Any:
    """A plugin manager that ignores the builder's ``LLMFILES_DISABLE_PLUGINS``: the docs show every plugin."""
    from llmfiles.plugins import PluginManager

    return PluginManager(environ={})


def provider_info(name: str) -> Any:
    from llmfiles.errors import ProviderNotInstalled

    try:
        return plugin_manager().get(name).provider.info
    except ProviderNotInstalled as exc:
        raise ExtensionError(f"the docs need every plugin installed (tox -e docs installs them): {exc}") from exc


# --- directives ----------------------------------------------------------------------------------------------


class _GeneratedRst(SphinxDirective):
    """A directive that writes reST lines and parses them in place (section titles allowed)."""

    def render(self, lines: list[str]) -> list[nodes.Node]:
        container = nodes.section()
        container.document = self.state.document
        source = f"<{self.name} in {self.env.docname}>"
        content = StringList(lines, source=source)
        nested_parse_with_titles(self.state, content, container)
        return list(container.children)


def _settings_rows(specs: Iterable[Any]) -> list[list[str]]:
    rows = []
    for spec in specs:
        env = ", ".join(lit(v) for v in spec.env) or "—"
        secret = ", ".join(lit(v) for v in spec.lookup_secret_names) or "—"
        kind = "secret" if spec.secret else spec.kind
        rows.append([lit(spec.name), kind, env, secret, fmt_default(spec), esc(spec.help)])
    return rows


_SETTINGS_HEADER = ["setting", "kind", "environment (first set wins)", "secret hooks asked", "default", "meaning"]


class SettingsDirective(_GeneratedRst):
    """``.. llmfiles-settings:: core`` — the settings every provider understands."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        if self.arguments[0] != "core":
            raise self.error("llmfiles-settings takes 'core'; use llmfiles-provider NAME for a provider")
        from llmfiles.settings import CORE_SETTINGS

        return self.render(list_table(_SETTINGS_HEADER, _settings_rows(CORE_SETTINGS), "12 6 20 12 10 40"))


class ProviderDirective(_GeneratedRst):
    """``.. llmfiles-provider:: openai`` — what the provider's plugin declares: facts, then its settings."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        info = provider_info(self.arguments[0])
        large = "yes" if info.supports_parts else "no"
        if info.supports_parts and info.large_purposes is not None:
            large += " (purposes: " + ", ".join(lit(p) for p in info.large_purposes) + ")"
        facts = [
            ["install", lit(f"pip install {info.package}")],
            ["provider name", lit(info.name) + "".join(f", {lit(a)}" for a in info.aliases)],
            ["purposes", ", ".join(lit(p) for p in info.purposes)],
            ["checked as JSONL", ", ".join(lit(p) for p in info.jsonl_purposes if p in info.purposes) or "—"],
            ["largest file", fmt_size(info.max_file_size)],
            ["largest single request", fmt_size(info.max_single_request_size)],
            ["large-file protocol", large],
            [
                "default multipart threshold",
                fmt_size(info.default_multipart_threshold or info.max_single_request_size),
            ],
            ["default part size", fmt_size(info.default_part_size)],
            ["credential settings (one is needed)", ", ".join(lit(s) for s in info.credential_settings) or "none"],
        ]
        lines = list_table(["", f"provider {info.name}"], facts, "30 70")
        own = list(info.settings)
        if own:
            lines.append(f"Settings of ``{info.name}`` (besides the :ref:`core settings <core-settings>`):")
            lines.append("")
            lines += list_table(_SETTINGS_HEADER, _settings_rows(own), "12 6 20 12 10 40")
        return self.render(lines)


class ChainDirective(_GeneratedRst):
    """``.. llmfiles-chain:: openai`` — for each setting with an environment variable or a secret lookup, every
    place the chain looks, in order."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        from llmfiles.settings import CORE_SETTINGS, all_specs, places_looked

        info = provider_info(self.arguments[0])
        core = {s.name for s in CORE_SETTINGS}
        rows = []
        for spec in all_specs(info):
            if spec.name in core and spec not in info.settings:
                continue  # the core settings' chain is the same for every provider: shown once
            places = places_looked(info, (spec.name,))
            rows.append([lit(spec.name), " → ".join(lit(p) for p in places) + " → default"])
        if not rows:
            return self.render([f"Provider ``{info.name}`` has no settings of its own.", ""])
        return self.render(
            list_table(["setting", "looked up in this order; the first value found wins"], rows, "15 85")
        )


class PurposesDirective(_GeneratedRst):
    """``.. llmfiles-purposes::`` — which provider accepts which purpose, from every installed plugin."""

    def run(self) -> list[nodes.Node]:
        infos = sorted(
            (r.provider.info for r in plugin_manager().providers().values() if r.plugin != "example"),
            key=lambda i: (i.name == "local", i.name),
        )
        purposes: list[str] = []
        for info in infos:
            purposes += [p for p in info.purposes if p not in purposes]
        rows = []
        for purpose in purposes:
            row = [lit(purpose)]
            for info in infos:
                if purpose not in info.purposes:
                    row.append("—")
                elif info.supports_parts and (info.large_purposes is None or purpose in info.large_purposes):
                    row.append("yes, large files in parts")
                else:
                    row.append("yes" + (", one request" if info.supports_parts else ""))
            rows.append(row)
        return self.render(list_table(["purpose", *(lit(i.name) for i in infos)], rows))


class CompareEnvDirective(_GeneratedRst):
    """``.. llmfiles-compare-env::`` — another tool's environment variables next to llmfiles' own.

    Each content line is ``PROVIDER SETTING = WHAT THE OTHER TOOL READS``; the llmfiles column is generated from
    the setting's ``SettingSpec.env``, and a setting that no longer exists fails the build.
    """

    has_content = True

    def run(self) -> list[nodes.Node]:
        rows = []
        for raw in self.content:
            line = raw.strip()
            if not line:
                continue
            left, _, theirs = line.partition("=")
            provider, setting = left.split()
            specs = {s.name: s for s in provider_info(provider).settings}
            if setting not in specs:
                raise self.error(f"provider {provider!r} has no setting {setting!r}; update this table")
            ours = ", ".join(lit(v) for v in specs[setting].env) or f"(argument or ``Client`` setting ``{setting}``)"
            other = ", ".join(lit(v.strip()) for v in theirs.split(",") if v.strip())
            rows.append([lit(provider), lit(setting), other, ours])
        return self.render(list_table(["provider", "llmfiles setting", "LiteLLM reads", "llmfiles reads"], rows))


def _metavar(action: argparse.Action) -> str:
    metavar = action.metavar
    if isinstance(metavar, tuple):
        return " ".join(metavar)
    return metavar or action.dest.upper()


def _option_row(action: argparse.Action) -> list[str]:
    if action.option_strings:
        flags = ", ".join(action.option_strings)
        if action.nargs != 0:
            flags += " " + _metavar(action)
    else:
        flags = _metavar(action) if action.metavar else action.dest
    meaning = esc(action.help or "")
    if action.required and action.option_strings:
        meaning += " (required)"
    if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings and "default" not in meaning:
        meaning += f" (default: {lit(action.default)})"
    if isinstance(action, argparse._AppendAction):
        meaning += " (repeatable)"
    return [lit(flags), meaning]


def _wide(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    # the usage line must not depend on the builder's terminal width
    parser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=100)
    return parser


class CliDirective(_GeneratedRst):
    """``.. llmfiles-cli::`` — the whole command line, from ``llmfiles.cli.build_parser()``."""

    def run(self) -> list[nodes.Node]:
        from llmfiles.cli import build_parser

        parser = _wide(build_parser())
        lines = [".. code-block:: text", ""]
        lines += ["   " + line for line in parser.format_usage().strip().splitlines()]
        lines.append("")
        if parser.description:
            lines += [esc(parser.description), ""]
        rows = [_option_row(a) for a in parser._actions if a.option_strings and "-h" not in a.option_strings]
        lines += list_table(["global option", "meaning"], rows, "30 70")
        if parser.epilog:
            lines += [esc(parser.epilog), ""]
        helps = {}
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {a.dest: a.help or "" for a in action._choices_actions}
        for name, sub in cli_subparsers(parser).items():
            _wide(sub)
            title = f"llmfiles {name}"
            lines += [f".. _cli-{name}:", "", title, "-" * len(title), ""]
            if helps.get(name):
                lines += [esc(helps[name][0].upper() + helps[name][1:]) + ".", ""]
            if sub.description:
                lines += [esc(sub.description), ""]
            lines += [".. code-block:: text", ""]
            lines += ["   " + line for line in sub.format_usage().strip().splitlines()]
            lines.append("")
            rows = [_option_row(a) for a in sub._actions if "-h" not in a.option_strings]
            if rows:
                lines += list_table(["argument", "meaning"], rows, "30 70")
        return self.render(lines)


def _is_async_twin(name: str, public: Sequence[str]) -> bool:
    """``aupload`` is the async twin of ``upload`` (``alist_files`` returns an async iterator, not a coroutine)."""
    return name.startswith("a") and name[1:] in public


class ApiDirective(_GeneratedRst):
    """``.. llmfiles-api::`` — autodoc of every name in ``llmfiles.__all__``, grouped by kind."""

    def run(self) -> list[nodes.Node]:
        import llmfiles

        groups: dict[str, list[str]] = {
            "Functions": [],
            "Async functions": [],
            "The client": [],
            "Data": [],
            "Errors": [],
            "For plugins": [],
            "Other names": [],
        }
        for name in llmfiles.__all__:
            obj = getattr(llmfiles, name)
            target = f"llmfiles.{name}"
            if inspect.ismodule(obj):
                groups["Other names"] += [
                    f".. py:module:: {obj.__name__}",
                    "   :no-index:",
                    "",
                    f"``llmfiles.{name}`` is the module :mod:`{obj.__name__}`: every error class, including those"
                    " that are not re-exported (see :doc:`concepts`).",
                    "",
                ]
            elif name == "hookimpl":
                groups["For plugins"] += [
                    f".. py:data:: {target}",
                    "",
                    "   The marker of hook implementations (a ``pluggy.HookimplMarker('llmfiles')``):"
                    " ``@hookimpl``, ``@hookimpl(tryfirst=True)``, ``@hookimpl(wrapper=True)``."
                    " See :doc:`hooks` and :doc:`tutorial-plugin`.",
                    "",
                ]
            elif inspect.isclass(obj) and issubclass(obj, BaseException):
                groups["Errors"] += [f".. autoexception:: {target}", ""]
            elif inspect.isclass(obj) and name == "Client":
                groups["The client"] += [f".. autoclass:: {target}", "   :members:", ""]
            elif inspect.isclass(obj):
                groups["Data"] += [f".. autoclass:: {target}", "   :members:", ""]
            elif callable(obj) and (inspect.iscoroutinefunction(obj) or _is_async_twin(name, llmfiles.__all__)):
                groups["Async functions"] += [f".. autofunction:: {target}", ""]
            elif callable(obj):
                groups["Functions"] += [f".. autofunction:: {target}", ""]
            else:
                groups["Other names"] += [f".. py:data:: {target}", f"   :value: {obj!r}", ""]
        lines: list[str] = []
        for title, body in groups.items():
            if body:
                lines += [title, "-" * len(title), "", *body]
        return self.render(lines)


class ErrorsDirective(_GeneratedRst):
    """``.. llmfiles-errors::`` — the hierarchy of ``llmfiles.errors`` as a nested list, with exit codes."""

    def run(self) -> list[nodes.Node]:
        import llmfiles
        from llmfiles import errors

        classes = [getattr(errors, n) for n in errors.__all__]
        exported = set(llmfiles.__all__)
        lines: list[str] = []

        def walk(cls: type, depth: int) -> None:
            doc = (inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " ")
            where = f"llmfiles.{cls.__name__}" if cls.__name__ in exported else f"llmfiles.errors.{cls.__name__}"
            code = getattr(cls, "exit_code", 1)
            lines.append(f"{'  ' * depth}* ``{where}`` (exit code {code}) — {doc}")
            for sub in classes:
                if cls in sub.__bases__:
                    walk(sub, depth + 1)

        walk(errors.LLMFilesError, 0)
        lines.append("")
        # nested bullet lists need a blank line before each deeper level in reST
        fixed: list[str] = []
        prev_depth = 0
        for line in lines:
            depth = (len(line) - len(line.lstrip(" "))) // 2
            if line and depth != prev_depth:
                fixed.append("")
            fixed.append(line)
            prev_depth = depth
        return self.render(fixed)


#: the provider contract of ``llmfiles.provider``, in reading order (``tests/test_docs.py`` checks it is complete)
CONTRACT = (
    "Provider",
    "BaseProvider",
    "Exchange",
    "Probe",
    "UploadProtocol",
    "PartLimits",
    "PartsUpload",
    "ResumableUpload",
    "Http",
    "InProcessServer",
    "key_credentials",
    "missing_credentials",
    "guarded_read",
    "guarded_error",
    "Endpoint",
    "json_object",
    "rfc3339_seconds",
)


def contract_names() -> list[str]:
    """Every public class and function defined in ``llmfiles.provider`` (what the contract directive must show)."""
    from llmfiles import provider

    return [
        name
        for name, obj in vars(provider).items()
        if not name.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and getattr(obj, "__module__", None) == provider.__name__
        and name != "Registered"  # the plugin manager's record of a registration, not part of what plugins write
    ]


def _hook_calling(name: str, spec: dict[str, Any]) -> str:
    """How the core calls a hook, from its name and its pluggy options."""
    if name.startswith("llmfiles_register_"):
        how = "Called once for each plugin that implements it, when the plugins load, with a ``register`` callback"
    elif name == "llmfiles_request":
        how = (
            "The core's own implementation answers with the request unchanged; implement it as a wrapper"
            " (``@hookimpl(wrapper=True)``) so that several plugins compose"
        )
    elif spec.get("firstresult"):
        how = "``firstresult``: implementations are called until one returns something other than ``None``"
    else:
        how = "Every implementation is called; the core collects their answers"
    if spec.get("historic"):
        how += "; historic: plugins registered later are called too"
    return how + "."


class HooksDirective(_GeneratedRst):
    """``.. llmfiles-hooks::`` — every hook of ``llmfiles.hookspecs``, each in its own section."""

    def run(self) -> list[nodes.Node]:
        from llmfiles import hookspecs

        lines: list[str] = []
        for name in hook_names():
            spec = getattr(hookspecs, name).llmfiles_spec
            lines += [f".. _hook-{name}:", "", name, "~" * len(name), "", _hook_calling(name, spec), ""]
            lines += [f".. autofunction:: llmfiles.hookspecs.{name}", ""]
        return self.render(lines)


class ContractDirective(_GeneratedRst):
    """``.. llmfiles-contract::`` — the provider contract of ``llmfiles.provider``, from its docstrings."""

    def run(self) -> list[nodes.Node]:
        missing = sorted(set(contract_names()) - set(CONTRACT))
        if missing:
            raise self.error(f"llmfiles.provider defines {missing}: add them to CONTRACT in docs/_ext/llmfiles_docs.py")
        from llmfiles import provider

        lines = [".. automodule:: llmfiles.provider", ""]
        for name in CONTRACT:
            kind = "autoclass" if inspect.isclass(getattr(provider, name)) else "autofunction"
            lines += [f".. {kind}:: llmfiles.provider.{name}"]
            if kind == "autoclass":
                lines += ["   :members:", "   :undoc-members:"]
            lines.append("")
        return self.render(lines)


_MD_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s#]+\.md)\)")


def _repo_links_to_pages(app: Sphinx, relative_path: Path, parent_docname: str, content: list[str]) -> None:
    """An included README links to the repository's README.md, which is not a page of the site: point such links
    at the site's front page instead (the repository README's content is there and on the quickstart)."""
    repo_readme = (Path(app.srcdir).parent / "README.md").resolve()
    base = (Path(app.srcdir) / relative_path).parent

    def fix(m: re.Match[str]) -> str:
        target = m.group(2)
        if "://" in target or (base / target).resolve() != repo_readme:
            return m.group(0)
        return f"{{doc}}`{m.group(1)} </index>`"

    content[0] = _MD_LINK.sub(fix, content[0])


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("include-read", _repo_links_to_pages)
    app.add_directive("llmfiles-settings", SettingsDirective)
    app.add_directive("llmfiles-provider", ProviderDirective)
    app.add_directive("llmfiles-chain", ChainDirective)
    app.add_directive("llmfiles-purposes", PurposesDirective)
    app.add_directive("llmfiles-compare-env", CompareEnvDirective)
    app.add_directive("llmfiles-cli", CliDirective)
    app.add_directive("llmfiles-api", ApiDirective)
    app.add_directive("llmfiles-errors", ErrorsDirective)
    app.add_directive("llmfiles-hooks", HooksDirective)
    app.add_directive("llmfiles-contract", ContractDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
