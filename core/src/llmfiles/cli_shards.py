"""The command line's ``split``, ``upload --split`` and ``upload -p a,b`` (one file to several providers).

Settings of one provider of several are written ``-s vertex_ai.bucket=NAME`` and ``--convert vertex_ai=gemini``;
plain ``-s name=value`` goes to every provider that has such a setting.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, Literal

from llmfiles.errors import InputError, InvalidSetting, speaking_to
from llmfiles.redact import printable

if TYPE_CHECKING:
    from llmfiles.api import Client
    from llmfiles.fanout import FanOut
    from llmfiles.models import FileLimits
    from llmfiles.shards import SplitUpload
    from llmfiles.splitting import Shard
    from llmfiles.terminal import Terminal


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def many(provider: str | None) -> bool:
    """Whether ``-p`` names several providers (``-p openai,vertex_ai``)."""
    return bool(provider and "," in provider)


def split_settings(settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(settings for every provider, settings by provider) from ``-s`` names with and without ``PROVIDER.``."""
    common: dict[str, Any] = {}
    per: dict[str, dict[str, Any]] = {}
    for name, value in settings.items():
        provider, dot, own = name.partition(".")
        if dot:
            per.setdefault(provider, {})[own] = value
        else:
            common[name] = value
    return common, per


def own_settings(client: Client, provider: str | None, settings: dict[str, Any]) -> dict[str, Any]:
    """The settings of an upload to one provider: ``-s PROVIDER.name=value`` of that provider are its own."""
    common, per = split_settings(settings)
    if not per:
        return settings
    info = client.provider_info(provider)
    for name, values in per.items():
        if name not in (info.name, *info.aliases):
            raise InvalidSetting(f"-s {name}.{next(iter(values))}=...: {name} is not the provider of this upload")
        common.update(values)
    return common


def _limits(args: argparse.Namespace) -> FileLimits | Literal[True]:
    from llmfiles.models import FileLimits
    from llmfiles.settings import parse_size

    if args.max_bytes is None and args.max_records is None and args.min_records is None:
        return True
    max_bytes = None if args.max_bytes is None else parse_size(args.max_bytes, name="--max-bytes")
    return FileLimits(max_bytes=max_bytes, max_records=args.max_records, min_records=args.min_records)


def upload_many_or_split(client: Client, args: argparse.Namespace, term: Terminal, settings: dict[str, Any]) -> int:
    """``upload --split`` and ``upload -p a,b``: the uploads, then one result per provider (or shard)."""
    if args.dry_run or args.validation or args.file == "-":
        what = "--dry-run" if args.dry_run else "--validation" if args.validation else "a file from standard input"
        raise InputError(f"{what} does not go with --split or several providers (-p a,b): upload the file alone")
    if not args.split and (args.max_bytes or args.max_records or args.min_records):
        raise InputError("--max-bytes, --max-records and --min-records go with --split")
    common: dict[str, Any] = {
        "purpose": args.purpose,
        "progress": term.progress,
        "wait": args.wait,
        "filename": args.filename,
    }
    try:
        if many(args.provider):
            shared, per = split_settings(settings)
            names = [n.strip() for n in args.provider.split(",")]
            split = _limits(args) if args.split else False
            before = speaking_to("cli-providers")  # a setting one provider lacks is -s PROVIDER.name=...
            try:
                fanout = client.upload(
                    args.file, provider=names, split=split, provider_settings=per, **common, **shared
                )
            finally:
                speaking_to(before)
        else:
            own = own_settings(client, args.provider, settings)
            result = client.upload(args.file, provider=args.provider, split=_limits(args), **common, **own)
    finally:
        term.close()
    if many(args.provider):
        return _print_fanout(fanout, args.json)
    _print_split(result, args.json)
    return 0


def _shard_dict(shard: Shard) -> dict[str, Any]:
    return {
        "shard": shard.index,
        "name": shard.path.name,
        "bytes": shard.bytes,
        "records": shard.records,
        "first_line": shard.first_line,
        "last_line": shard.first_line + shard.lines - 1,
    }


def split_upload_dict(result: SplitUpload) -> dict[str, Any]:
    """The ``--json`` form of an ``upload --split``: the shards' file objects in order."""
    from llmfiles.converter import to_dict

    return {
        "provider": result.provider,
        "purpose": result.purpose,
        "source": result.source,
        "files": [{**to_dict(fo), "shard": _shard_dict(s)} for s, fo in zip(result.shards, result.files, strict=True)],
    }


def _print_split(result: SplitUpload, as_json: bool) -> None:
    if as_json:
        _print_json(split_upload_dict(result))
        return
    n = len(result.files)
    print(printable(f"{result.source}: {n} shard{'s' if n != 1 else ''} uploaded to {result.provider}"))
    for s, fo in zip(result.shards, result.files, strict=True):
        last = s.first_line + s.lines - 1
        print(printable(f"  {s.index}/{n}  {fo.id}  {fo.filename}  lines {s.first_line}-{last}  {s.bytes:,} bytes"))


def _print_fanout(fanout: FanOut, as_json: bool) -> int:
    from llmfiles.converter import to_dict
    from llmfiles.errors import LLMFilesError
    from llmfiles.fanout import summary
    from llmfiles.shards import SplitUpload
    from llmfiles.terminal import error_object

    failed = fanout.failed
    codes = {getattr(r.error, "exit_code", 1) for r in failed}
    code = 0 if not failed else codes.pop() if len(codes) == 1 else 1
    if as_json:
        rows: list[dict[str, Any]] = []
        for r in fanout.results:
            if r.error is not None:
                err = r.error if isinstance(r.error, LLMFilesError) else LLMFilesError(str(r.error))
                rows.append({"provider": r.provider, "ok": False, **error_object(err, getattr(err, "exit_code", 1))})
            elif isinstance(r.result, SplitUpload):
                rows.append({"provider": r.provider, "ok": True, **split_upload_dict(r.result)})
            else:
                rows.append({"provider": r.provider, "ok": True, "file": to_dict(r.result)})
        _print_json(rows)
        return code
    for line in summary(fanout).split("\n"):
        print(printable(line))
    if failed:
        names = ", ".join(r.provider for r in failed)
        print(
            printable(f"failed: {names}; the other uploads are kept (run again with -p {names.replace(' ', '')})"),
            file=sys.stderr,
        )
    return code


def run_split(client: Client, args: argparse.Namespace) -> int:
    """``llmfiles split FILE -o DIR``: the shards written, one line each (or ``--json``)."""
    result = client.split(
        args.file,
        output_dir=args.output_dir,
        purpose=args.purpose,
        provider=args.provider,
        force=args.force,
        max_bytes=args.max_bytes,
        max_records=args.max_records,
        min_records=args.min_records,
    )
    limits = result.limits
    if args.json:
        _print_json(
            {
                "source": result.source,
                "limits": {k: getattr(limits, k) for k in ("max_bytes", "max_records", "min_records", "docs")},
                "shards": [{**_shard_dict(s), "path": str(s.path)} for s in result.shards],
            }
        )
        return 0
    n = len(result.shards)
    rules = [f"{v:,} {label}" for v, label in ((limits.max_bytes, "bytes"), (limits.max_records, "records")) if v]
    if limits.min_records:
        rules.append(f"at least {limits.min_records:,} records")
    bound = ", ".join(rules) or "no documented limit"
    if n == 1:
        print(printable(f"{result.source} already fits ({bound}): one shard"))
    else:
        print(printable(f"{result.source}: {n} shards ({bound} a shard)"))
    for s in result.shards:
        last = s.first_line + s.lines - 1
        records = f"{s.records:,} record{'s' if s.records != 1 else ''}"
        print(printable(f"  {s.path}  {records}  {s.bytes:,} bytes  lines {s.first_line}-{last}"))
    return 0
