"""Shell completion scripts for bash, zsh and fish, made from the ``llmfiles`` argument parser itself.

:func:`script` walks :func:`llmfiles.cli.build_parser`: every command with its help, every option (and whether it
takes a value), the choices an option has, and the values llmfiles knows when the script is made (the providers,
installed or known; the purposes of the installed providers; the conversions).  Paths complete as files.  No
dependency: the three formats are small enough to write here, and fish is one that ``shtab`` does not make.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable

from attrs import frozen

HEADER = "# {shell} completion for llmfiles, made by `llmfiles completion {shell}` from its argument parser\n"


@frozen
class Option:
    flags: tuple[str, ...]
    help: str
    takes_value: bool
    values: tuple[str, ...] = ()
    files: bool = False


@frozen
class Command:
    name: str
    help: str
    options: tuple[Option, ...]
    #: what the positional arguments complete to: values, or files when ``files``
    values: tuple[str, ...] = ()
    files: bool = False


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    """The completion script for ``shell`` (``bash``, ``zsh`` or ``fish``)."""
    top, commands = describe(parser)
    make = {"bash": _bash, "zsh": _zsh, "fish": _fish}[shell]
    text = make(top, commands)
    if shell == "zsh":  # `#compdef` must stay the first line
        first, rest = text.split("\n", 1)
        return f"{first}\n{HEADER.format(shell=shell)}{rest}"
    return HEADER.format(shell=shell) + text


# --- reading the parser ----------------------------------------------------------------------------------------


def _known_values() -> dict[str, tuple[str, ...]]:
    """Values llmfiles knows for options named ``provider``, ``purpose``, ``to`` and ``convert``."""
    from llmfiles.plugins import KNOWN_CONVERTERS, KNOWN_PACKAGES, get_plugin_manager

    pm = get_plugin_manager()
    infos = [r.provider.info for r in pm.providers().values()]
    providers = sorted({*KNOWN_PACKAGES, *(n for i in infos for n in (i.name, *i.aliases))})
    purposes = sorted({p for i in infos for p in i.purposes})
    conversions = tuple(sorted({*KNOWN_CONVERTERS, *pm.converters()}))
    return {"provider": tuple(providers), "purpose": tuple(purposes), "to": conversions, "convert": conversions}


def _short(text: str | None) -> str:
    first = re.split(r"(?<=[.;])\s", " ".join((text or "").split()), maxsplit=1)[0].rstrip(" .;")
    return first if len(first) <= 70 else first[:67] + "..."


def _option(action: argparse.Action, known: dict[str, tuple[str, ...]]) -> Option:
    takes = action.nargs != 0
    values: tuple[str, ...] = tuple(str(c) for c in action.choices) if action.choices else ()
    if takes and not values:
        values = known.get(action.dest, ())
    files = getattr(action, "complete", None) == "file"
    return Option(
        flags=tuple(action.option_strings), help=_short(action.help), takes_value=takes, values=values, files=files
    )


def _command(name: str, p: argparse.ArgumentParser, help_text: str, known: dict[str, tuple[str, ...]]) -> Command:
    options = tuple(_option(a, known) for a in p._actions if a.option_strings and a.help != argparse.SUPPRESS)
    positionals = [a for a in p._actions if not a.option_strings]
    values = tuple(str(c) for a in positionals for c in (a.choices or ()))
    files = any(getattr(a, "complete", None) == "file" for a in positionals)
    return Command(name=name, help=_short(help_text), options=options, values=values, files=files)


def describe(parser: argparse.ArgumentParser) -> tuple[Command, list[Command]]:
    """The top level (its options) and every command of ``parser``."""
    known = _known_values()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help or "" for c in sub._choices_actions}
    top_actions = [a for a in parser._actions if a.option_strings]
    top = Command(name="", help="", options=tuple(_option(a, known) for a in top_actions))
    commands = [_command(name, p, helps.get(name, ""), known) for name, p in sub.choices.items()]
    return top, commands


# --- bash ------------------------------------------------------------------------------------------------------


def _words(items: Iterable[str]) -> str:
    return " ".join(items)


def _bash_values(command: Command) -> list[str]:
    """The ``case "$prev"`` arms of one command: what follows an option that takes a value."""
    arms = []
    for o in command.options:
        if not o.takes_value:
            continue
        pattern = "|".join(o.flags)
        if o.values:
            arms.append(f'            {pattern}) COMPREPLY=($(compgen -W "{_words(o.values)}" -- "$cur")); return;;')
        elif o.files:
            arms.append(f'            {pattern}) COMPREPLY=($(compgen -f -- "$cur")); return;;')
        else:
            arms.append(f"            {pattern}) return;;")
    return arms


def _bash(top: Command, commands: list[Command]) -> str:
    valued = sorted({f for c in (top, *commands) for o in c.options if o.takes_value for f in o.flags})
    lines = [
        "_llmfiles() {",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" cmd="" i',
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        '        case "${COMP_WORDS[i]}" in',
        f"            {'|'.join(valued)}) ((i++));;",
        "            -*) ;;",
        '            *) cmd="${COMP_WORDS[i]}"; break;;',
        "        esac",
        "    done",
        '    case "$cmd" in',
    ]
    names = _words(c.name for c in commands)
    flags = _words(f for o in top.options for f in o.flags)
    lines += [
        '        "")',
        '            case "$prev" in',
        *_bash_values(top),
        "            esac",
        f'            COMPREPLY=($(compgen -W "{names} {flags}" -- "$cur"));;',
    ]
    for c in commands:
        options = _words(f for o in c.options for f in o.flags)
        rest = f'compgen -W "{_words(c.values)}" -- "$cur"' if c.values else 'compgen -f -- "$cur"' if c.files else ""
        lines += [f"        {c.name})", '            case "$prev" in', *_bash_values(c), "            esac"]
        lines.append(f'            if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W "{options}" -- "$cur"))')
        lines.append(f"            else COMPREPLY=($({rest})); fi;;" if rest else "            fi;;")
    lines += ["    esac", "}", "complete -o bashdefault -o default -F _llmfiles llmfiles", ""]
    return "\n".join(lines)


# --- zsh -------------------------------------------------------------------------------------------------------


def _zq(text: str) -> str:
    """``text`` inside single quotes, with the characters ``_arguments`` reads in descriptions made plain."""
    text = text.replace("[", "(").replace("]", ")").replace(":", "\\:")
    return text.replace("'", "'\\''")


def _zsh_option(o: Option) -> str:
    what = ""
    if o.takes_value:
        target = "_files" if o.files else f"({' '.join(o.values)})" if o.values else " "
        what = f":{o.flags[-1].lstrip('-')}:{target}"
    if len(o.flags) == 1:
        return f"'{o.flags[0]}[{_zq(o.help)}]{what}'"
    return f"'({' '.join(o.flags)})'{{{','.join(o.flags)}}}'[{_zq(o.help)}]{what}'"


def _zsh(top: Command, commands: list[Command]) -> str:
    lines = [
        "#compdef llmfiles",
        "_llmfiles() {",
        "  local curcontext=$curcontext state line ret=1",
        "  local -a commands",
        "  commands=(",
        *(f"    '{c.name}:{_zq(c.help)}'" for c in commands),
        "  )",
        "  _arguments -C \\",
        *(f"    {_zsh_option(o)} \\" for o in top.options),
        "    '1: :->command' '*:: :->args' && ret=0",
        "  case $state in",
        "    command) _describe -t commands 'llmfiles command' commands && ret=0;;",
        "    args)",
        "      case $words[1] in",
    ]
    for c in commands:
        rest = f"'*: :({' '.join(c.values)})'" if c.values else "'*:file:_files'" if c.files else ""
        lines.append(f"        {c.name}) _arguments {' '.join(_zsh_option(o) for o in c.options)} {rest} && ret=0;;")
    lines += [
        "      esac;;",
        "  esac",
        "  return ret",
        "}",
        'if [[ "${funcstack[1]}" == _llmfiles ]]; then _llmfiles "$@"; else compdef _llmfiles llmfiles; fi',
        "",
    ]
    return "\n".join(lines)


# --- fish ------------------------------------------------------------------------------------------------------


def _fq(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_option(o: Option, condition: str) -> str:
    parts = ["complete -c llmfiles", f"-n {_fq(condition)}"]
    for flag in o.flags:
        parts.append(f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}")
    if o.takes_value:
        parts.append("-r -F" if o.files else f"-x -a {_fq(' '.join(o.values))}" if o.values else "-x")
    parts.append(f"-d {_fq(o.help)}")
    return " ".join(parts)


def _fish(top: Command, commands: list[Command]) -> str:
    names = " ".join(c.name for c in commands)
    lines = ["complete -c llmfiles -f"]
    lines += [
        f"complete -c llmfiles -n {_fq('not __fish_seen_subcommand_from ' + names)} -a {c.name} -d {_fq(c.help)}"
        for c in commands
    ]
    lines += [_fish_option(o, "__fish_use_subcommand") for o in top.options]
    for c in commands:
        condition = f"__fish_seen_subcommand_from {c.name}"
        lines += [_fish_option(o, condition) for o in c.options]
        if c.values:
            lines.append(f"complete -c llmfiles -n {_fq(condition)} -x -a {_fq(' '.join(c.values))}")
        elif c.files:
            lines.append(f"complete -c llmfiles -n {_fq(condition)} -F")
    return "\n".join(lines) + "\n"
