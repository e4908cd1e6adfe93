"""``convert=`` while uploading: the file converted with a registered conversion (see ``llmfiles convert``) into a
file of llmfiles' own, checked with the target format's rules, which is then uploaded instead of the caller's.

The converted file is made once per input file (named after its path, size, mtime, inode and the conversion) and
kept until it is uploaded, so an interrupted upload of it resumes like any other; old ones are cleared away.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmfiles.calls import Call, plugin_boundary
from llmfiles.errors import FileChanged, InputError, InvalidSetting, ValidationError
from llmfiles.models import ProviderInfo
from llmfiles.sources import Source

if TYPE_CHECKING:
    from llmfiles.models import Settings
    from llmfiles.plugins import PluginManager
    from llmfiles.validate.convert import Converter

log = logging.getLogger("llmfiles")
#: converted files older than this are removed from the cache of conversions
CONVERTED_TTL = 7 * 24 * 3600


def conversion_name(info: ProviderInfo, value: Any) -> str | None:
    """The ``convert`` setting as the name of a conversion (``True``: the provider's usual one; ``None``: none)."""
    if value is None or value is False:
        return None
    text = str(value).strip().lower()
    if text in ("", "0", "false", "no", "none", "off"):
        return None
    if value is True or text in ("1", "true", "yes", "on"):
        if not info.conversions:
            raise InvalidSetting(f"convert=True: provider {info.name!r} has no usual conversion; name one")
        return info.conversions[0]
    if info.conversions and text not in info.conversions:
        raise InvalidSetting(
            f"convert={value!r} is not a conversion for provider {info.name!r}; use one of: "
            f"{', '.join(info.conversions)}"
        )
    return text


def usual_conversion(plugins: PluginManager, call: Call, purpose: str) -> str | None:
    """The conversion the call's ``convert`` setting names for a ``purpose`` file (``None``: none).

    ``convert=True`` is the provider's first conversion (``ProviderInfo.conversions``) that converts ``purpose``
    files (``claude`` for a Bedrock fine-tune file, ``bedrock-batch`` for a batch file).  The call's settings are
    given the name, so the provider sees the conversion it got (a Vertex object records it, for example)."""
    import attrs

    value = call.settings.get("convert")
    if value is True or str(value).strip().lower() in ("1", "true", "yes", "on"):
        for name in call.info.conversions:
            try:
                converter = plugins.get_converter(name)
            except InputError:
                continue
            if purpose in converter.purposes:
                values = {**call.settings.values, "convert": name}
                call.settings = attrs.evolve(call.settings, values=values)
                return name
        raise InvalidSetting(f"convert=True: provider {call.info.name!r} has no usual conversion of {purpose!r} files")
    return conversion_name(call.info, value)


def check_purpose_converts(converter: Converter, purpose: str) -> None:
    """:class:`InvalidSetting` when the conversion is asked for a purpose whose files it does not convert
    (``Converter.purposes``: ``claude`` converts fine-tune files, ``bedrock-batch`` batch files)."""
    if purpose not in converter.purposes:
        raise InvalidSetting(
            f"convert={converter.name!r} converts {' and '.join(converter.purposes)} files, not {purpose!r} files"
        )


def cache_dir(home: Any) -> Path:
    """The folder of converted files (``$LLMFILES_HOME/converted``), cleared of old ones."""
    from llmfiles.paths import default_home, private_dir

    root = Path(home).expanduser() if home else default_home()
    folder = private_dir(root / "converted")
    now = time.time()
    for old in folder.iterdir():
        try:
            if now - old.stat().st_mtime > CONVERTED_TTL:
                old.unlink()
        except OSError:
            pass
    return folder


def _cached_name(source: Source, converter: Converter, settings: Settings) -> str | None:
    """The name of the converted file of ``source``: the same input, conversion and settings that change its output
    (``Converter.settings``) give the same name; ``None`` for an input that is not a file on disk."""
    ident = source.identity
    if source.path is None or ident is None:
        return None
    name = converter.name
    used = [str(settings.get(s)) for s in converter.settings]
    key = json.dumps([os.path.realpath(source.path), ident.size, ident.mtime_ns, ident.inode, name, *used])
    return f"{hashlib.sha256(key.encode()).hexdigest()[:24]}-{name}.jsonl"


def converted_file(
    plugins: PluginManager, call: Call, source: Source, purpose: str, where: Callable[[], Path]
) -> Path | None:
    """The converted file to upload instead of ``source`` (``None``: no conversion asked for); a
    :class:`ValidationError` naming the input's lines when records cannot be converted or break the target's rules."""
    name = usual_conversion(plugins, call, purpose)
    if name is None:
        return None
    from llmfiles.validate.convert import convert_file

    converter = plugins.get_converter(name)
    check_purpose_converts(converter, purpose)
    folder = where()  # the cache folder, made only when a conversion is asked for
    cached = _cached_name(source, converter, call.settings)
    if cached is not None and (folder / cached).exists():
        log.info("using %s, converted from %s earlier", folder / cached, source.display)
        return folder / cached
    out = folder / (cached or f"{os.getpid()}-{time.time_ns()}-{name}.jsonl")
    with plugin_boundary(name, "the conversion", ()):
        result = convert_file(source, out, converter, settings=call.settings, overwrite=True)
    try:
        # a file edited while it was converted is not uploaded (a change first: problems found in it may be its doing)
        source.check_unchanged()
    except FileChanged:
        if result.written:
            out.unlink(missing_ok=True)
        raise
    if not result.written:
        report = result.output if result.conversion.ok and result.output is not None else result.conversion
        raise ValidationError(source.display, report.problems, report.total)
    if result.conversion.warnings:
        shown = "; ".join(p.describe() for p in result.conversion.problems[:3])
        log.warning(
            "%s: converted to %r with %d warning(s): %s", source.display, name, result.conversion.warnings, shown
        )
    return out
