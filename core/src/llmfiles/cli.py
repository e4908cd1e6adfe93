"""The ``llmfiles`` command (also ``python -m llmfiles``).

Exit codes: 0 ok, 1 provider or network error, 2 usage, configuration or validation error, 130 interrupted.
Errors are a short first line on stderr (what failed and the one thing to do), then the lines llmfiles laid out
(the places looked at) and notes, with a traceback only under ``--debug``; under ``--json`` an error is one JSON
object on stdout instead (:func:`llmfiles.terminal.error_object`).  ``--debug``, ``--json``, ``--quiet`` and
``--profile`` are accepted anywhere on the line.  Retries and resumed uploads are said on stderr, one line each
(``--quiet`` silences them and the progress bars).  Human output shows text that came from a server (ids, names,
statuses, error messages) with its control characters escaped (:func:`llmfiles.redact.printable`): it cannot
recolour the terminal, set its title or fake a line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

from llmfiles.redact import printable

if TYPE_CHECKING:
    from pathlib import Path

    from llmfiles.api import Client
    from llmfiles.models import FileObject
    from llmfiles.terminal import Terminal
    from llmfiles.validate.jsonl import Report

EXIT_CODES = (
    "Exit codes: 0 ok, 1 provider or network error, 2 usage, configuration or validation error, 130 interrupted."
)
#: the core settings that have options of their own (``--part-size`` ...), as the settings they are
_SETTING_OPTIONS = ("timeout", "deadline", "part_size", "max_concurrency", "multipart_threshold", "max_retries")


# --- the parser ----------------------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """argparse with llmfiles' usage errors: a subcommand's error shows that subcommand's usage (an unknown option
    too), unknown commands, choices and options get a "did you mean", and under ``--json`` the error is one JSON
    object."""

    #: set by :func:`main` when the command line asks for ``--json``
    json_errors = False
    top = False

    def error(self, message: str) -> NoReturn:
        if Parser.json_errors:
            error = {"type": "UsageError", "message": f"{self.prog}: {message}", "exit_code": 2}
            error.update(hint=f"see `{self.prog} --help`", notes=[])
            _print_json({"error": error})
            raise SystemExit(2)
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        ns, extras = super().parse_known_args(args, namespace)
        if extras and not self.top:  # a subcommand's own usage, not the top-level one
            from llmfiles.errors import did_you_mean

            flags = [s for a in self._actions for s in a.option_strings]
            first = next((e for e in extras if e.startswith("-")), extras[0])
            self.error(f"unrecognized arguments: {' '.join(extras)}{did_you_mean(first.split('=')[0], flags)}")
        return ns, extras

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        choices = action.choices
        if choices is None or value in choices:
            return
        from llmfiles.errors import did_you_mean

        names = [str(c) for c in choices]
        if isinstance(action, argparse._SubParsersAction):
            message = f"unknown command {value!r}{did_you_mean(str(value), names)}; the commands: {', '.join(names)}"
        else:
            message = f"invalid choice: {value!r}{did_you_mean(str(value), names)} (choose from {', '.join(names)})"
        raise argparse.ArgumentError(action, message)


def _name_value(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expects NAME=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    return name.strip().replace("-", "_"), value


def _files(action: argparse.Action) -> argparse.Action:
    """Mark ``action`` as taking a path (shell completion offers files)."""
    action.complete = "file"  # type: ignore[attr-defined]
    return action


def _global_options(p: argparse.ArgumentParser) -> None:
    """The options every command takes, anywhere on the line (``default=SUPPRESS``: a subcommand does not reset
    what the line gave before it)."""
    g = p.add_argument_group("options of every command")
    s = argparse.SUPPRESS
    g.add_argument("--json", action="store_true", default=s, help="print machine-readable JSON only (errors too)")
    g.add_argument("-q", "--quiet", action="store_true", default=s, help="no progress bars, retry or resume notices")
    g.add_argument("--debug", action="store_true", default=s, help="show tracebacks, and the logs of the libraries")
    g.add_argument(
        "--profile",
        metavar="NAME",
        default=s,
        help="the config file's profile (default: $LLMFILES_PROFILE, else default)",
    )


def _provider_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--provider", "-p", help="provider name (default: $LLMFILES_PROVIDER, the profile's, else local)")
    _set_option(p, "a setting, e.g. -s api_base=https://example.com/v1 (repeatable)")


def _set_option(p: argparse.ArgumentParser, help: str) -> None:
    """``--set``/``-s NAME=VALUE``, repeatable."""
    p.add_argument("--set", "-s", action="append", type=_name_value, metavar="NAME=VALUE", help=help)


def _network_options(p: argparse.ArgumentParser) -> None:
    _provider_option(p)
    p.add_argument("--timeout", help="seconds any stall may last (default 600; connecting: connect_timeout, 15)")
    p.add_argument("--deadline", help="seconds the whole operation may take")
    p.add_argument("--max-retries", help="retries of a failed request (default 5)")


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``llmfiles`` command (the docs, the shell completion and the tests read it too)."""
    parser = Parser(
        prog="llmfiles",
        description="Put training, validation and batch files onto any LLM provider.",
        epilog=EXIT_CODES,
    )
    parser.top = True
    parser.add_argument("--version", action="version", version=f"llmfiles {_version()}")
    _global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("providers", help="list the providers: installed, and the others with what to install")
    _upload_parsers(sub)
    _file_parsers(sub)
    _check_parsers(sub)
    _split_parser(sub)
    p = sub.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh or fish), made from this parser",
        description='bash: eval "$(llmfiles completion bash)" in ~/.bashrc; zsh: llmfiles completion zsh > '
        '"${fpath[1]}/_llmfiles"; fish: llmfiles completion fish > ~/.config/fish/completions/llmfiles.fish',
    )
    p.add_argument("shell", choices=("bash", "zsh", "fish"), help="the shell to complete for")
    for command in sub.choices.values():
        _global_options(command)
    return parser


def _upload_parsers(sub: Any) -> None:
    p = sub.add_parser("upload", help="upload a file (and optionally its validation file)")
    _files(p.add_argument("file", help="the file to upload; - reads standard input (then --filename names it)"))
    p.add_argument("--purpose", default="fine-tune", help="what the file is for (default: fine-tune)")
    _files(p.add_argument("--validation", metavar="FILE", help="a validation file to upload together with FILE"))
    p.add_argument("--filename", help="the name to give the file at the provider (default: its own)")
    p.add_argument("--dry-run", action="store_true", help="run every offline check and print the plan; send nothing")
    p.add_argument("--wait", action="store_true", help="wait until the provider has processed the file")
    p.add_argument("--no-validate", action="store_true", help="skip the content checks")
    p.add_argument(
        "--no-checksum",
        action="store_true",
        help="do not compute the checksums a provider verifies or reports (faster, less checked)",
    )
    p.add_argument(
        "--check-first",
        action="store_true",
        help="check the whole file before its first byte is sent (default: check while sending, commit only if "
        "the checks passed)",
    )
    p.add_argument(
        "--convert",
        metavar="FORMAT",
        action="append",
        help="convert the file to this format before uploading it, for providers that can "
        "(bedrock: claude, nova, prompt-completion; vertex_ai: gemini); PROVIDER=FORMAT for one provider of "
        "several (repeatable)",
    )
    p.add_argument(
        "--split",
        action="store_true",
        help="cut the file into shards that fit the provider's limits (see llmfiles split) and upload them all",
    )
    _limit_options(p, "with --split: ")
    p.add_argument(
        "--keep-on-error", action="store_true", help="keep the training file if the validation file fails to upload"
    )
    p.add_argument("--part-size", help="size of each part of a large upload, e.g. 64MiB")
    p.add_argument("--max-concurrency", help="parts sent at the same time (default 4)")
    p.add_argument("--multipart-threshold", help="files larger than this are sent in parts")
    p.add_argument(
        "--if-exists",
        choices=("new", "reuse", "error"),
        help="when the provider already has a file with the same content and purpose (recorded by an earlier "
        "upload): upload another copy (new, the default), return that file (reuse), or fail (error)",
    )
    _network_options(p)
    sub.add_parser("uploads", help="list unfinished large uploads (run the same upload again to continue one)")
    p = sub.add_parser("abort", help="end an unfinished large upload at the provider and forget it")
    p.add_argument("id", help="the id `llmfiles uploads` shows (a unique prefix is enough)")
    _network_options(p)


def _file_parsers(sub: Any) -> None:
    p = sub.add_parser("list", help="list files at the provider")
    p.add_argument("--purpose", help="only files with this purpose")
    p.add_argument("--limit", type=_positive, metavar="N", help="list at most N files")
    _network_options(p)
    p = sub.add_parser("get", help="show one file")
    p.add_argument("id", help="the file's id at the provider")
    _network_options(p)
    p = sub.add_parser("delete", help="delete files (each id in turn; the others still go when one fails)")
    p.add_argument("ids", nargs="+", metavar="ID", help="the id of a file at the provider")
    _network_options(p)
    p = sub.add_parser("download", help="download a file's content")
    p.add_argument("id", help="the file's id at the provider")
    _files(p.add_argument("-o", "--output", required=True, help="file path, or a folder to keep the file's name"))
    p.add_argument("--force", action="store_true", help="replace the output file if it exists")
    _network_options(p)


def _check_parsers(sub: Any) -> None:
    p = sub.add_parser("validate", help="check a file offline, as upload would (no network, no credentials)")
    _files(p.add_argument("file", help="the JSONL file to check"))
    p.add_argument("--purpose", default="fine-tune", help="what the file is for (default: fine-tune)")
    p.add_argument("--max-problems", type=int, default=50, help="problems to list (the rest are counted)")
    p.add_argument("--convert", metavar="FORMAT", help="check the file as it will be after this conversion")
    _provider_option(p)
    p = sub.add_parser(
        "convert",
        help="convert a JSONL file to another format (offline, streaming), check it, write it atomically",
        description="Convert FILE record by record with a conversion a plugin provides, check the result with the "
        "target format's rules, and write OUT only if both passed (a temporary file is renamed: never a "
        "half-written OUT).",
    )
    _files(p.add_argument("file", nargs="?", help="the JSONL file to convert"))
    p.add_argument(
        "--to",
        metavar="FORMAT",
        help="the target format (--list shows them): gemini (llmfiles-vertex); claude, nova, prompt-completion, "
        "bedrock-batch (llmfiles-bedrock); vertex-batch, gemini-batch, mistral-batch; results back to OpenAI's batch "
        "output: openai-from-vertex, openai-from-gemini, openai-from-bedrock, openai-from-mistral",
    )
    _files(p.add_argument("-o", "--output", help="the converted file to write"))
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.add_argument("--max-problems", type=int, default=50, help="problems to list (the rest are counted)")
    _set_option(
        p,
        "a setting of the target provider, e.g. -s model=anthropic.claude-3-5-haiku-20241022-v1:0 for bedrock-batch "
        "(repeatable)",
    )
    p.add_argument("--list", action="store_true", help="list the installed conversions and exit")


def _limit_options(p: argparse.ArgumentParser, prefix: str = "") -> None:
    p.add_argument("--max-bytes", metavar="SIZE", help=prefix + "at most this many bytes a shard (e.g. 100MB)")
    p.add_argument("--max-records", type=_positive, metavar="N", help=prefix + "at most N records a shard")
    p.add_argument("--min-records", type=_positive, metavar="N", help=prefix + "at least N records a shard")


def _split_parser(sub: Any) -> None:
    p = sub.add_parser(
        "split",
        help="cut a JSONL file into shards that each fit a provider's limits (offline)",
        description="Cut FILE into shards in DIR that each fit the provider's documented limits for the purpose "
        "(bytes and records a file, records a job); lines are never cut and the shards, in order, are FILE byte "
        "for byte. --max-bytes, --max-records and --min-records replace the provider's numbers.",
    )
    _files(p.add_argument("file", help="the JSONL file to cut"))
    p.add_argument("--provider", "-p", help="whose limits (default: $LLMFILES_PROVIDER, the profile's, else local)")
    p.add_argument("--purpose", default="batch", help="what the file is for (default: batch)")
    _files(p.add_argument("-o", "--output-dir", required=True, metavar="DIR", help="the folder to write the shards to"))
    p.add_argument("--force", action="store_true", help="replace shards of the same names in DIR")
    _limit_options(p)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expects a number greater than 0, got {value}")
    return value


def _version() -> str:
    from llmfiles import __version__

    return __version__


def _settings_from(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the command line gives: ``-s NAME=VALUE`` and the options that are settings."""
    settings: dict[str, Any] = dict(getattr(args, "set", None) or [])
    for name in (*_SETTING_OPTIONS, "if_exists"):
        value = getattr(args, name, None)
        if value is not None:
            settings[name] = value
    if getattr(args, "no_validate", False):
        settings["validate"] = False
    if getattr(args, "no_checksum", False):
        settings["checksum"] = False
    if getattr(args, "check_first", False):
        settings["check_first"] = True
    converts = getattr(args, "convert", None)
    for value in converts if isinstance(converts, list) else [converts] if converts else []:
        if isinstance(value, str) and "=" in value:
            provider, _, name = value.partition("=")
            settings[f"{provider.strip()}.convert"] = name.strip()
        else:
            settings["convert"] = value
    return settings


# --- output --------------------------------------------------------------------------------------------------


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def _when(ts: int | None) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _lines(text: str) -> list[str]:
    """``text``'s own lines (llmfiles' layout), each with its control characters escaped."""
    return [printable(line) for line in text.split("\n")]


def _describe(f: FileObject) -> str:
    p = printable
    details = f" ({p(f.status_details)})" if f.status_details else ""
    return (
        f"{p(f.id)}\n  filename:   {p(f.filename)}\n  purpose:    {p(f.purpose)}\n  bytes:      {f.bytes:,}\n"
        f"  status:     {p(f.status)}{details}\n"
        f"  created:    {_when(f.created_at)}\n  provider:   {p(f.provider)}"
    )


# --- commands ------------------------------------------------------------------------------------------------


def _cmd_providers(client: Client, args: argparse.Namespace, term: Terminal) -> int:
    from llmfiles.plugins import KNOWN_PACKAGES, get_plugin_manager, install_commands

    providers = {name: r.provider.info for name, r in get_plugin_manager().providers().items()}
    taken = {n for info in providers.values() for n in (info.name, *info.aliases)}
    rows: list[dict[str, Any]] = [
        {
            "name": info.name,
            "installed": True,
            "aliases": list(info.aliases),
            "package": info.package,
            "purposes": list(info.purposes),
            "large_files": info.supports_parts,
            "settings": [s.name for s in info.settings],
            "description": info.description,
        }
        for info in sorted(providers.values(), key=lambda i: i.name)
    ]
    missing = [name for name in KNOWN_PACKAGES if name not in taken]
    for name in missing:
        pip, checkout = install_commands(name) or ("", "")
        rows.append({"name": name, "installed": False, "package": KNOWN_PACKAGES[name][0], "install": pip})
        rows[-1]["install_from_checkout"] = checkout
    if args.json:
        _print_json(rows)
        return 0
    for r in rows[: len(providers)]:
        alias = f" (also: {', '.join(r['aliases'])})" if r["aliases"] else ""
        print(printable(f"{r['name']}{alias}  [{r['package']}]  {r['description']}"))
        print(printable(f"    purposes: {', '.join(r['purposes'])}"))
    by_package: dict[str, list[dict[str, Any]]] = {}
    for r in rows[len(providers) :]:
        by_package.setdefault(r["package"], []).append(r)
    if by_package:
        print("\nnot installed:")
    for group in by_package.values():
        first = group[0]
        print(printable(f"{', '.join(r['name'] for r in group)}  [{first['package']}]"))
        print(printable(f"    {first['install']}  (from a checkout of llmfiles: {first['install_from_checkout']})"))
    return 0


def _dry_run(client: Client, args: argparse.Namespace, settings: dict[str, Any], term: Terminal) -> int:
    try:  # the content checks read the whole file: a bar shows how far
        common = {"purpose": args.purpose, "provider": args.provider, "progress": term.progress}
        plans = {"training": client.describe_upload(args.file, filename=args.filename, **common, **settings)}
        if args.validation:
            plans["validation"] = client.describe_upload(args.validation, **common, **settings)
    finally:
        term.close()
    ok = all(plan["ok"] for plan in plans.values())
    if args.json:
        _print_json(plans if args.validation else plans["training"])
        return 0 if ok else 2
    for role, plan in plans.items():
        verdict = "nothing will be sent" if plan["ok"] else "the upload would be REFUSED"
        print(f"dry run ({role}): {verdict}")
        for k, v in plan.items():
            if k == "ok" or (k == "problems" and not v):
                continue
            if isinstance(v, list):
                text = "\n      ".join("\n      ".join(_lines(str(x))) for x in v)
            else:
                text = f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else printable(str(v))
            print(f"  {k + ':':<13} {text}")
    return 0 if ok else 2


def _cmd_upload(client: Client, args: argparse.Namespace, term: Terminal) -> int:
    from llmfiles.cli_shards import many, own_settings, upload_many_or_split

    if args.split or many(args.provider) or args.max_bytes or args.max_records or args.min_records:
        return upload_many_or_split(client, args, term, _settings_from(args))
    if args.file == "-":
        return _upload_stdin(client, args, term)
    settings = own_settings(client, args.provider, _settings_from(args))
    if args.dry_run:
        return _dry_run(client, args, settings, term)
    common = {"purpose": args.purpose, "provider": args.provider, "progress": term.progress, "wait": args.wait}
    try:
        if args.validation:
            result = client.upload_training_files(
                args.file, args.validation, keep_on_error=args.keep_on_error, **common, **settings
            )
        else:
            fo = client.upload(args.file, filename=args.filename, **common, **settings)
    finally:
        term.close()  # before the result is printed, so the two do not interleave
    from llmfiles.converter import to_dict

    if not args.validation:
        _print_json(to_dict(fo)) if args.json else print(_describe(fo))
    elif args.json:
        _print_json({"training": to_dict(result.training), "validation": to_dict(result.validation)})
    else:
        print("training:   " + _describe(result.training).replace("\n", "\n" + " " * 12))
        assert result.validation is not None
        print("validation: " + _describe(result.validation).replace("\n", "\n" + " " * 12))
    return 0


def _upload_stdin(client: Client, args: argparse.Namespace, term: Terminal) -> int:
    """``upload -``: standard input into a private temporary file (constant memory), uploaded under ``--filename``
    with every check, retry and part of a file's upload, then removed."""
    from llmfiles.errors import InputError

    if not args.filename:
        raise InputError(
            "upload -: name the file with --filename (standard input has no name), e.g. --filename x.jsonl"
        )
    if args.validation == "-":
        raise InputError("--validation -: only the uploaded file may come from standard input")
    info = client.provider_info(args.provider)
    if sys.stdin.isatty():
        term.notice("reading the file from standard input (end it with Ctrl-D)")
    path = _spool(sys.stdin.buffer, info.max_file_size, info.name)
    try:
        with open(path, "rb") as fh:
            args.file = fh
            return _cmd_upload(client, args, term)
    finally:
        path.unlink(missing_ok=True)


def _spool(stream: Any, limit: int | None, provider: str) -> Path:
    """Copy ``stream`` into a new owner-only file in llmfiles' data folder (not ``/tmp``, often memory), stopping
    as soon as it grows past ``limit``."""
    import tempfile
    from pathlib import Path

    from llmfiles.errors import BadFile, FileTooLarge
    from llmfiles.paths import default_home, private_dir

    folder = private_dir(default_home() / "stdin")
    fd, name = tempfile.mkstemp(dir=folder, prefix="stdin-", suffix=".part")
    path = Path(name)
    try:
        size = 0
        with os.fdopen(fd, "wb") as out:
            while block := stream.read(1024 * 1024):
                size += len(block)
                if limit is not None and size > limit:
                    raise FileTooLarge("standard input", size, limit, provider, "(it was read this far)")
                out.write(block)
        if size == 0:
            raise BadFile("standard input was empty; providers refuse empty files")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _cmd_list(client: Client, args: argparse.Namespace, term: Terminal) -> int:
    from itertools import islice

    from llmfiles.converter import to_dict

    files: Iterator[FileObject] = client.list_files(
        provider=args.provider, purpose=args.purpose, **_settings_from(args)
    )
    if args.limit:
        files = islice(files, args.limit)
    if args.json:
        _print_json([to_dict(f) for f in files])
        return 0
    if not _table(files):
        print("no files", file=sys.stderr)
    return 0


def _table(files: Iterable[FileObject]) -> int:
    """The files as a table with a header row, streamed (column widths from the first rows); how many."""
    p = printable
    it = iter(files)
    count = 0
    width = 2
    while batch := _take(it, 100):
        if count == 0:
            width = max(width, *(len(p(f.id)) for f in batch))
            print(f"{'ID':<{width}}  {'PURPOSE':<11} {'BYTES':>14}  {'CREATED':<20}  {'STATUS':<9}  FILENAME")
        for f in batch:
            created = _when(f.created_at)
            row = f"{p(f.id):<{width}}  {p(f.purpose):<11} {f.bytes:>14,}  {created:<20}  {p(f.status):<9}"
            print(f"{row}  {p(f.filename)}")
        count += len(batch)
    return count


def _take(it: Iterator[Any], n: int) -> list[Any]:
    from itertools import islice

    return list(islice(it, n))


def _cmd_get(client: Client, args: argparse.Namespace, term: Terminal) -> int:
    from llmfiles.converter import to_dict

    fo = client.retrieve(args.id, provider=args.provider, **_settings_from(args))
    if args.json:
        _print_json(to_dict(fo))
    else:
        print(_describe(fo))
    return 0


def _cmd_delete(client: Client, args: argparse.Namespace, term: Terminal) -> int:
    """Each id in turn; one that fails is reported and the others still go (as ``rm``); the exit code is the first
    failure's.  One id: its result (or its error), as any command; several: a list of results under ``--json``."""
    from llmfiles.errors import LLMFilesError
    from llmfiles.terminal import error_lines, error_object

    settings = _settings_from(args)
    if len(args.ids) == 1:
        client.delete(args.ids[0], provider=args.provider, **settings)
        if args.json:
            _print_json({"id": args.ids[0], "deleted": True})
        else:
            print(f"deleted {printable(args.ids[0])}")
        return 0
    results: list[dict[str, Any]] = []
    code = 0
    for file_id in args.ids:
        try:
            client.delete(file_id, provider=args.provider, **settings)
        except LLMFilesError as exc:
            code = code or exc.exit_code
            results.append({"id": file_id, "deleted": False, **error_object(exc, exc.exit_code)})
            if not args.json:
                print("\n".join(error_lines(exc)), file=sys.stderr)
            continue
        results.append({"id": file_id, "deleted": True})
        if not args.json:
            print(f"deleted {printable(file_id)}")
    if args.json:
        _print_json(results)
    return code


def _cmd_download(client: Client, args: argparse.Namespace, term: Terminal) -> int:
    try:
        path = client.download(
            args.id,
            args.output,
            provider=args.provider,
            overwrite=args.force,
            progress=term.progress,
            **_settings_from(args),
        )
    finally:
        term.close()
    if args.json:
        _print_json({"id": args.id, "path": os.fspath(path), "bytes": path.stat().st_size})
    else:
        print(f"saved {printable(args.id)} to {printable(str(path))} ({path.stat().st_size:,} bytes)")
    return 0


def _print_report(label: str, report: Report) -> None:
    """The listed problems of ``report``, each on a line starting with ``label`` (the file whose lines they are)."""
    for p in report.problems:
        print("\n".join(_lines(f"{label}: {p.describe()}")))
    if report.hidden:
        print(f"... and {report.hidden} more problem(s) (raise --max-problems to see them)")


def _cmd_uploads(client: Client, args: argparse.Namespace, term: Terminal) -> int:
    rows = client.unfinished_uploads()
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("no unfinished uploads", file=sys.stderr)
    for r in rows:
        done = f"{r['bytes_done']:,} of {r['bytes']:,} bytes ({r['parts_done']}/{r['parts']} parts)"
        state = "running now" if r["running"] else f"expires {_when(r['expires_at'])}" if r["expires_at"] else ""
        print(printable(f"{r['id']}  {r['provider']:<10} {done}  started {_when(r['started_at'])}  {state}"))
        print(printable(f"    {r['file']} -> {r['destination']} ({r['purpose']})"))
    return 0


def _cmd_abort(client: Client, args: argparse.Namespace, term: Terminal) -> int:
    result = client.abort_upload(args.id, **_settings_from(args))
    if args.json:
        _print_json(result)
    else:
        print(printable(f"upload {result['id']} of {result['file']}: {result['note']}; forgotten"))
    return 0


def _cmd_validate(client: Client, args: argparse.Namespace, term: Terminal) -> int:
    try:
        report = client.validate(
            args.file,
            purpose=args.purpose,
            provider=args.provider,
            max_problems=args.max_problems,
            progress=term.progress,
            **_settings_from(args),
        )
    finally:
        term.close()  # before the report is printed, so the two do not interleave
    if args.json:
        _print_json(report.as_dict())
    else:
        _print_report(args.file, report)
        verdict = "ok" if report.ok else "NOT ok"
        if report.record_rules is False:
            verdict += " as JSONL (no record rules ran: see 'checked')"
        counts = f"{report.records:,} records, {report.errors} error(s), {report.warnings} warning(s)"
        print(printable(f"{args.file}: {verdict}: {counts}"))
        for line in report.summary():
            print(f"  {printable(line)}")
    return 0 if report.ok else 2


def _cmd_convert(client: Client, args: argparse.Namespace, term: Terminal) -> int:
    if args.list:
        return _list_converters(client, args)
    missing = [flag for flag, value in (("FILE", args.file), ("--to", args.to), ("-o", args.output)) if not value]
    if missing:
        from llmfiles.errors import InputError

        raise InputError(f"llmfiles convert needs {', '.join(missing)} (or --list)")
    result = client.convert(
        args.file,
        to=args.to,
        output=args.output,
        overwrite=args.force,
        max_problems=args.max_problems,
        **dict(args.set or []),
    )
    if args.json:
        _print_json(result.as_dict())
        return 0 if result.ok else 2
    _print_report(args.file, result.conversion)
    if result.output is not None:  # the converted records, at the input's lines: named after the input
        _print_report(f"{args.file} (converted to {result.converter})", result.output)
    if result.written:
        assert result.output is not None
        out = result.output
        print(
            printable(
                f"{args.output}: written: {out.records:,} records in the {result.converter} format, checked: "
                f"{out.errors} error(s), {out.warnings} warning(s)"
            )
        )
        for line in out.summary():
            print(f"  {printable(line)}")
        return 0
    if result.output is None:
        why = f"{result.conversion.errors} error(s) in {args.file} stop its conversion"
    else:
        why = (
            f"the records of {args.file}, converted, break {result.output.errors} rule(s) of the "
            f"{result.converter} format"
        )
    print(printable(f"{args.output}: NOT written: {why}; fix {args.file} and run again"))
    return 2


def _list_converters(client: Client, args: argparse.Namespace) -> int:
    """``llmfiles convert --list``: each installed conversion, what it reads and makes, its settings."""
    listed = client.converters(details=True)
    if args.json:
        _print_json(listed)
        return 0
    for name, about in listed.items():
        uses = f"convert= on {', '.join(about['purposes'])} uploads" if about["purposes"] else "llmfiles convert only"
        print(printable(f"{name}  ({about['package'] or 'a plugin'}; {uses})"))
        print(printable(f"    reads: {about['reads']}"))
        print(printable(f"    makes: {about['description']}"))
        if about["settings"]:
            print(printable(f"    settings: {', '.join(about['settings'])} (-s NAME=VALUE)"))
    if not listed:
        print("no conversions are installed (pip install llmfiles-vertex, llmfiles-bedrock, ...)")
    return 0


def _cmd_split(client: Client, args: argparse.Namespace, term: Terminal) -> int:
    from llmfiles.cli_shards import run_split

    return run_split(client, args)


def _cmd_completion(client: Client, args: argparse.Namespace, term: Terminal) -> int:
    from llmfiles.completion import script

    sys.stdout.write(script(args.shell, build_parser()))
    return 0


COMMANDS = {
    "providers": _cmd_providers,
    "upload": _cmd_upload,
    "list": _cmd_list,
    "get": _cmd_get,
    "delete": _cmd_delete,
    "download": _cmd_download,
    "validate": _cmd_validate,
    "split": _cmd_split,
    "convert": _cmd_convert,
    "uploads": _cmd_uploads,
    "abort": _cmd_abort,
    "completion": _cmd_completion,
}


# --- logging, errors and the entry point ------------------------------------------------------------------------


class _Printable(logging.Formatter):
    """Log lines with the control characters of their messages escaped (a message may quote a server)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = printable(record.message)
        return super().formatMessage(record)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler writing to whatever ``sys.stderr`` is when a record comes (as Python's last-resort handler)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _ours(record: logging.LogRecord) -> bool:
    """Records of llmfiles and its plugins (``llmfiles``, ``llmfiles.*``, ``llmfiles_*``); the libraries' own
    (azure-identity's report of every credential it tried, botocore ...) only under ``--debug``."""
    return record.name.startswith("llmfiles")


def _setup_logging(debug: bool) -> logging.Handler | None:
    """Where log records go: llmfiles' warnings (everything, the libraries' too, with ``--debug``) to stderr,
    escaped, unless the process has configured logging itself.  Returns the handler it added."""
    root = logging.getLogger()
    if root.handlers:
        return None
    handler = _Stderr()
    handler.setFormatter(_Printable("%(levelname)s %(name)s: %(message)s" if debug else "%(message)s"))
    if debug:
        root.setLevel(logging.DEBUG)
        # urllib3 logs whole URLs at DEBUG, signed query strings included; llmfiles logs its own, redacted
        logging.getLogger("urllib3").setLevel(logging.INFO)
    else:
        handler.addFilter(_ours)
    root.addHandler(handler)
    return handler


def _report(exc: BaseException, code: int, args: argparse.Namespace) -> None:
    """An error (or an interruption): lines on stderr, or under ``--json`` one JSON object on stdout."""
    from llmfiles.terminal import error_lines, error_object

    if args.json:
        if isinstance(exc, KeyboardInterrupt):
            error = {"type": "Interrupted", "message": "interrupted", "exit_code": code, "hint": None}
            _print_json({"error": {**error, "notes": [str(n) for n in getattr(exc, "__notes__", ())]}})
        else:
            _print_json(error_object(exc, code))
        return
    if isinstance(exc, KeyboardInterrupt):
        lines = ["llmfiles: interrupted", *(f"  {printable(str(n))}" for n in getattr(exc, "__notes__", ()))]
    else:
        if args.debug:
            import traceback

            traceback.print_exception(exc)
        lines = error_lines(exc)
    print("\n".join(lines), file=sys.stderr)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    words = list(sys.argv[1:] if argv is None else argv)
    Parser.json_errors = "--json" in words[: words.index("--")] if "--" in words else "--json" in words
    try:
        args = build_parser().parse_args(words)
    finally:
        Parser.json_errors = False
    for name in ("json", "quiet", "debug"):
        setattr(args, name, getattr(args, name, False))
    args.profile = getattr(args, "profile", None)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``llmfiles`` with ``argv`` (default: the process's arguments); return its exit code."""
    args = _parse(argv)
    if args.command is None:
        build_parser().print_help()
        return 2
    from llmfiles import errors
    from llmfiles.terminal import Terminal

    levels = {name: logging.getLogger(name).level for name in ("", "urllib3")}
    handler = _setup_logging(args.debug)
    before = errors.speaking_to("cli")
    term = Terminal(quiet=args.quiet, bars=not args.json and sys.stderr.isatty())
    try:
        return _run(args, term)
    finally:
        term.close()
        errors.speaking_to(before)
        if handler is not None:  # as it was (main may run in a process that goes on)
            logging.getLogger().removeHandler(handler)
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)


def _run(args: argparse.Namespace, term: Terminal) -> int:
    from llmfiles.errors import LLMFilesError

    client = None
    try:
        from llmfiles.api import Client

        client = Client(profile=args.profile, on_retry=term.retry)
        return COMMANDS[args.command](client, args, term)
    except LLMFilesError as exc:
        _report(exc, exc.exit_code, args)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        term.close()
        _report(exc, 130, args)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if args.debug:
            raise
        if args.json:
            _report(exc, 1, args)
        else:
            print(
                f"llmfiles: internal error: {type(exc).__name__}: {printable(str(exc))} (run with --debug for the "
                "traceback)",
                file=sys.stderr,
            )
        return 1
    finally:
        if client is not None:
            client.close()
