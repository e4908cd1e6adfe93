"""The ``llmfiles`` command (also ``python -m llmfiles``).

Exit codes: 0 ok, 1 provider or network error, 2 usage, configuration or validation error.  Errors are one
clear line on stderr (plus notes), with a traceback only under ``--debug``.  ``--json`` prints machine-readable
JSON only.  Human output shows text that came from a server (ids, names, statuses, error messages) with its control
characters escaped (:func:`llmfiles.redact.printable`): it cannot recolour the terminal, set its title or fake a line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from llmfiles.redact import printable

if TYPE_CHECKING:
    from llmfiles.api import Client
    from llmfiles.models import FileObject, Progress
    from llmfiles.validate.jsonl import Report


def _settings_from(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for item in getattr(args, "set", None) or []:
        if "=" not in item:
            raise SystemExit(_usage_error(f"--set expects NAME=VALUE, got {item!r}"))
        name, value = item.split("=", 1)
        settings[name.strip().replace("-", "_")] = value
    for name in (
        "timeout",
        "deadline",
        "part_size",
        "max_concurrency",
        "multipart_threshold",
        "max_retries",
        "if_exists",
    ):
        value = getattr(args, name, None)
        if value is not None:
            settings[name] = value
    if getattr(args, "no_validate", False):
        settings["validate"] = False
    if getattr(args, "no_checksum", False):
        settings["checksum"] = False
    if getattr(args, "check_first", False):
        settings["check_first"] = True
    if getattr(args, "convert", None):
        settings["convert"] = args.convert
    return settings


def _usage_error(message: str) -> int:
    print(f"llmfiles: error: {printable(message)}", file=sys.stderr)
    return 2


def _common(p: argparse.ArgumentParser, *, settings: bool = True) -> None:
    p.add_argument("--provider", "-p", help="provider name (default: $LLMFILES_PROVIDER or 'local')")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON only")
    if settings:
        p.add_argument(
            "--set",
            "-s",
            action="append",
            metavar="NAME=VALUE",
            help="a provider setting, e.g. -s api_base=https://example.com/v1 (repeatable)",
        )
        p.add_argument("--timeout", help="seconds a connect or any stall may last (default 600)")
        p.add_argument("--deadline", help="seconds the whole operation may take")
        p.add_argument("--max-retries", help="retries of a failed request (default 5)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmfiles",
        description="Put training, validation and batch files onto any LLM provider.",
        epilog="Exit codes: 0 ok, 1 provider or network error, 2 usage, configuration or validation error.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("--version", action="version", version=f"llmfiles {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("providers", help="list installed providers")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON only")
    _upload_parser(sub)
    _file_parsers(sub)
    _check_parsers(sub)
    return parser


def _upload_parser(sub: Any) -> None:
    p = sub.add_parser("upload", help="upload a file (and optionally its validation file)")
    p.add_argument("file", help="the file to upload")
    p.add_argument("--purpose", default="fine-tune", help="what the file is for (default: fine-tune)")
    p.add_argument("--validation", metavar="FILE", help="a validation file to upload together with FILE")
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
        help="convert the file to this format before uploading it, for providers that can "
        "(bedrock: claude, nova, prompt-completion; vertex_ai: gemini)",
    )
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
    _common(p)
    p = sub.add_parser("uploads", help="list unfinished large uploads (run the same upload again to continue one)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON only")
    p = sub.add_parser("abort", help="end an unfinished large upload at the provider and forget it")
    p.add_argument("id", help="the id `llmfiles uploads` shows (a unique prefix is enough)")
    _common(p)


def _file_parsers(sub: Any) -> None:
    p = sub.add_parser("list", help="list files at the provider")
    p.add_argument("--purpose", help="only files with this purpose")
    _common(p)
    p = sub.add_parser("get", help="show one file")
    p.add_argument("id", help="the file's id at the provider")
    _common(p)
    p = sub.add_parser("delete", help="delete one file")
    p.add_argument("id", help="the file's id at the provider")
    _common(p)
    p = sub.add_parser("download", help="download a file's content")
    p.add_argument("id", help="the file's id at the provider")
    p.add_argument("-o", "--output", required=True, help="file path, or a folder to keep the file's name")
    p.add_argument("--force", action="store_true", help="replace the output file if it exists")
    _common(p)


def _check_parsers(sub: Any) -> None:
    p = sub.add_parser("validate", help="check a file offline, as upload would")
    p.add_argument("file", help="the JSONL file to check")
    p.add_argument("--purpose", default="fine-tune", help="what the file is for (default: fine-tune)")
    p.add_argument("--max-problems", type=int, default=50, help="problems to list (the rest are counted)")
    p.add_argument("--convert", metavar="FORMAT", help="check the file as it will be after this conversion")
    _common(p)
    p = sub.add_parser(
        "convert",
        help="convert a JSONL file to another format (offline, streaming), check it, write it atomically",
        description="Convert FILE record by record with a conversion a plugin provides, check the result with the "
        "target format's rules, and write OUT only if both passed (a temporary file is renamed: never a "
        "half-written OUT).",
    )
    p.add_argument("file", help="the JSONL file to convert")
    p.add_argument(
        "--to",
        required=True,
        metavar="FORMAT",
        help="the target format: gemini (llmfiles-vertex); claude, nova, prompt-completion (llmfiles-bedrock)",
    )
    p.add_argument("-o", "--output", required=True, help="the converted file to write")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.add_argument("--max-problems", type=int, default=50, help="problems to list (the rest are counted)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON only")


def _version() -> str:
    from llmfiles import __version__

    return __version__


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


def _error_text(exc: BaseException) -> str:
    """An error's message for the terminal: a validation error keeps the lines llmfiles made of its problems; any
    other message may hold a server's text, whose newlines must not start lines of their own."""
    from llmfiles.errors import ValidationError

    text = str(exc)
    return "\n".join(_lines(text)) if isinstance(exc, ValidationError) else printable(text)


def _describe(f: FileObject) -> str:
    p = printable
    details = f" ({p(f.status_details)})" if f.status_details else ""
    return (
        f"{p(f.id)}\n  filename:   {p(f.filename)}\n  purpose:    {p(f.purpose)}\n  bytes:      {f.bytes:,}\n"
        f"  status:     {p(f.status)}{details}\n"
        f"  created:    {_when(f.created_at)}\n  provider:   {p(f.provider)}"
    )


class _Bar:
    """A progress bar on stderr (tqdm), only on a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bars: dict[str, Any] = {}
        self.last: dict[str, int] = {}

    def __call__(self, event: Progress) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        key = f"{event.operation}:{event.filename}"
        bar = self.bars.get(key)
        if bar is None:
            bar = tqdm(
                total=event.total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"{event.operation} {event.filename}",
                file=sys.stderr,
                leave=True,
                dynamic_ncols=True,
            )
            self.bars[key], self.last[key] = bar, 0
        bar.update(event.done - self.last[key])
        self.last[key] = event.done

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


# --- commands ------------------------------------------------------------------------------------------------


def _cmd_providers(client: Client, args: argparse.Namespace) -> int:
    from llmfiles.plugins import get_plugin_manager

    providers = {name: r.provider.info for name, r in get_plugin_manager().providers().items()}
    rows: list[dict[str, Any]] = [
        {
            "name": info.name,
            "aliases": list(info.aliases),
            "package": info.package,
            "purposes": list(info.purposes),
            "large_files": info.supports_parts,
            "settings": [s.name for s in info.settings],
            "description": info.description,
        }
        for info in sorted(providers.values(), key=lambda i: i.name)
    ]
    if args.json:
        _print_json(rows)
    else:
        for r in rows:
            alias = f" (also: {', '.join(r['aliases'])})" if r["aliases"] else ""
            print(printable(f"{r['name']}{alias}  [{r['package']}]  {r['description']}"))
            print(printable(f"    purposes: {', '.join(r['purposes'])}"))
    return 0


def _dry_run(client: Client, args: argparse.Namespace, settings: dict[str, Any]) -> int:
    bar = _Bar(enabled=not args.json and sys.stderr.isatty())  # the content checks read the whole file
    try:
        plans = {
            "training": client.describe_upload(
                args.file,
                purpose=args.purpose,
                provider=args.provider,
                filename=args.filename,
                progress=bar,
                **settings,
            )
        }
        if args.validation:
            plans["validation"] = client.describe_upload(
                args.validation, purpose=args.purpose, provider=args.provider, progress=bar, **settings
            )
    finally:
        bar.close()
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


def _cmd_upload(client: Client, args: argparse.Namespace) -> int:
    from llmfiles.converter import to_dict

    settings = _settings_from(args)
    if args.dry_run:
        return _dry_run(client, args, settings)
    bar = _Bar(enabled=not args.json and sys.stderr.isatty())
    try:
        if args.validation:
            result = client.upload_training_files(
                args.file,
                args.validation,
                purpose=args.purpose,
                provider=args.provider,
                keep_on_error=args.keep_on_error,
                progress=bar,
                wait=args.wait,
                **settings,
            )
        else:
            fo = client.upload(
                args.file,
                purpose=args.purpose,
                provider=args.provider,
                filename=args.filename,
                progress=bar,
                wait=args.wait,
                **settings,
            )
    finally:
        bar.close()  # before the result is printed, so the two do not interleave
    if args.validation:
        if args.json:
            _print_json({"training": to_dict(result.training), "validation": to_dict(result.validation)})
        else:
            print("training:   " + _describe(result.training).replace("\n", "\n" + " " * 12))
            assert result.validation is not None
            print("validation: " + _describe(result.validation).replace("\n", "\n" + " " * 12))
    elif args.json:
        _print_json(to_dict(fo))
    else:
        print(_describe(fo))
    return 0


def _cmd_list(client: Client, args: argparse.Namespace) -> int:
    from llmfiles.converter import to_dict

    files = client.list_files(provider=args.provider, purpose=args.purpose, **_settings_from(args))
    if args.json:
        _print_json([to_dict(f) for f in files])
        return 0
    count = 0
    for f in files:
        count += 1
        p = printable
        print(f"{p(f.id)}  {p(f.purpose):<11} {f.bytes:>14,}  {_when(f.created_at)}  {p(f.status):<9}  {p(f.filename)}")
    if count == 0:
        print("no files", file=sys.stderr)
    return 0


def _cmd_get(client: Client, args: argparse.Namespace) -> int:
    from llmfiles.converter import to_dict

    fo = client.retrieve(args.id, provider=args.provider, **_settings_from(args))
    if args.json:
        _print_json(to_dict(fo))
    else:
        print(_describe(fo))
    return 0


def _cmd_delete(client: Client, args: argparse.Namespace) -> int:
    client.delete(args.id, provider=args.provider, **_settings_from(args))
    if args.json:
        _print_json({"id": args.id, "deleted": True})
    else:
        print(f"deleted {printable(args.id)}")
    return 0


def _cmd_download(client: Client, args: argparse.Namespace) -> int:
    bar = _Bar(enabled=not args.json and sys.stderr.isatty())
    try:
        path = client.download(
            args.id, args.output, provider=args.provider, overwrite=args.force, progress=bar, **_settings_from(args)
        )
    finally:
        bar.close()
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


def _cmd_uploads(client: Client, args: argparse.Namespace) -> int:
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


def _cmd_abort(client: Client, args: argparse.Namespace) -> int:
    result = client.abort_upload(args.id, **_settings_from(args))
    if args.json:
        _print_json(result)
    else:
        print(printable(f"upload {result['id']} of {result['file']}: {result['note']}; forgotten"))
    return 0


def _cmd_validate(client: Client, args: argparse.Namespace) -> int:
    bar = _Bar(enabled=not args.json and sys.stderr.isatty())
    try:
        report = client.validate(
            args.file,
            purpose=args.purpose,
            provider=args.provider,
            max_problems=args.max_problems,
            progress=bar,
            **_settings_from(args),
        )
    finally:
        bar.close()  # before the report is printed, so the two do not interleave
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


def _cmd_convert(client: Client, args: argparse.Namespace) -> int:
    result = client.convert(
        args.file, to=args.to, output=args.output, overwrite=args.force, max_problems=args.max_problems
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


COMMANDS = {
    "providers": _cmd_providers,
    "upload": _cmd_upload,
    "list": _cmd_list,
    "get": _cmd_get,
    "delete": _cmd_delete,
    "download": _cmd_download,
    "validate": _cmd_validate,
    "convert": _cmd_convert,
    "uploads": _cmd_uploads,
    "abort": _cmd_abort,
}


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


def _setup_logging(debug: bool) -> None:
    """Where log records go: warnings (everything with ``--debug``) to stderr, escaped, unless the process has
    configured logging itself."""
    root = logging.getLogger()
    if not root.handlers:
        handler = _Stderr()
        handler.setFormatter(_Printable("%(levelname)s %(name)s: %(message)s" if debug else "%(message)s"))
        root.addHandler(handler)
        if debug:
            root.setLevel(logging.DEBUG)
    if debug:
        # urllib3 logs whole URLs at DEBUG, signed query strings included; llmfiles logs its own, redacted
        logging.getLogger("urllib3").setLevel(logging.INFO)


def _report(exc: BaseException, debug: bool) -> None:
    """An error (or an interruption) on stderr: one line, then its notes (what became of the upload)."""
    if isinstance(exc, KeyboardInterrupt):
        print("llmfiles: interrupted", file=sys.stderr)
    else:
        if debug:
            import traceback

            traceback.print_exception(exc)
        print(f"llmfiles: error: {_error_text(exc)}", file=sys.stderr)
    for note in getattr(exc, "__notes__", ()):
        print(f"  {printable(str(note))}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    _setup_logging(args.debug)
    from llmfiles.api import Client
    from llmfiles.errors import LLMFilesError

    client = Client()
    try:
        return COMMANDS[args.command](client, args)
    except LLMFilesError as exc:
        _report(exc, args.debug)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        _report(exc, args.debug)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"llmfiles: internal error: {type(exc).__name__}: {printable(str(exc))} (run with --debug for the "
            "traceback)",
            file=sys.stderr,
        )
        return 1
    finally:
        client.close()
