"""The UTF-8 byte-order mark Azure OpenAI wants on fine-tuning files.

Microsoft's documentation asks for fine-tuning files "in UTF-8 with a BOM".  A ``fine-tune`` upload of a file
without one gets the three bytes sent in front of the file's own bytes while it streams: the file on disk is never
rewritten, the declared sizes include the three bytes.  A file that already starts with a BOM is sent as it is.

A BOM claims the file is UTF-8, so a file that is not must never get one.  The core's content check (on by default
for ``fine-tune``) already refuses such a file with the line of the first bad byte; with ``validate=False`` this
module checks the encoding itself, in one streaming pass with constant memory, before adding the BOM.
"""

from __future__ import annotations

import codecs

from llmfiles.errors import ValidationError
from llmfiles.models import Operation, Problem, Settings, Source

BOM = codecs.BOM_UTF8
#: the purposes whose files get a BOM when they have none
BOM_PURPOSES = ("fine-tune",)
_BLOCK = 1024 * 1024


def starts_with_bom(source: Source) -> bool:
    """Whether the file's first three bytes are the UTF-8 BOM (reads three bytes)."""
    if source.size < len(BOM):
        return False
    return b"".join(source.read_range(0, len(BOM), len(BOM))) == BOM


def first_utf8_problem(source: Source) -> Problem | None:
    """The first byte that is not valid UTF-8, as a line-numbered :class:`Problem`, or ``None``.

    One streaming pass with an incremental decoder: memory does not grow with the file or its line lengths.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # bytes of the file before the current block
    lines_before = 0  # newlines before the current block
    line_start = 0  # file offset where the current line starts
    for block in source.read_range(0, source.size, _BLOCK):
        pending = len(decoder.getstate()[0])
        try:
            decoder.decode(block)
        except UnicodeDecodeError as exc:
            bad = offset - pending + exc.start  # file offset of the first bad byte
            inside = max(0, bad - offset)
            line = lines_before + block.count(b"\n", 0, inside) + 1
            nl = block.rfind(b"\n", 0, inside)
            start = offset + nl + 1 if nl >= 0 else line_start
            return _problem(line, bad - start + 1, bytes(exc.object[exc.start : exc.start + 4]))
        lines_before += block.count(b"\n")
        nl = block.rfind(b"\n")
        if nl >= 0:
            line_start = offset + nl + 1
        offset += len(block)
    pending = len(decoder.getstate()[0])
    try:
        decoder.decode(b"", final=True)  # a multi-byte sequence cut short at the end of the file
    except UnicodeDecodeError as exc:
        bad = offset - pending + exc.start
        return _problem(lines_before + 1, bad - line_start + 1, bytes(exc.object[exc.start : exc.start + 4]))
    return None


def _problem(line: int, column: int, bad: bytes) -> Problem:
    return Problem(
        line=line,
        code="not_utf8",
        message=(
            f"byte {column} of the line ({bad!r}) is not valid UTF-8; Azure OpenAI needs fine-tuning files in "
            "UTF-8 (llmfiles adds the BOM Azure asks for). Save the file as UTF-8, for example: "
            "iconv -f LATIN1 -t UTF-8 in.jsonl > out.jsonl"
        ),
    )


def prefix_for(operation: Operation, settings: Settings) -> bytes:
    """The bytes to send before the file: the BOM for a ``fine-tune`` file that has none, else nothing.

    Raises :class:`ValidationError` (before any request) when the file would get a BOM but is not UTF-8 and the
    core's check did not run (``validate=False``).
    """
    source = operation.source
    if operation.purpose not in BOM_PURPOSES or source is None or starts_with_bom(source):
        return b""
    if not settings.get("validate", True):
        problem = first_utf8_problem(source)
        if problem is not None:
            raise ValidationError(source.display, [problem])
    return BOM
