"""The rules of a Gemini Batch API input file, each citing the page of Google's documentation it comes from.

https://ai.google.dev/gemini-api/docs/batch-api#input-file: "Each line in this file must be a JSON object containing a
user-defined key and a request object, where the request is a valid GenerateContentRequest object.  The user-defined
key is used in the response to indicate which output is the result of which request ... The maximum allowed file size
for an input file is 2GB."  A line therefore looks like::

    {"key": "request-1", "request": {"contents": [{"parts": [{"text": "..."}]}], "generation_config": {...}}}

The request's fields are those of ``GenerateContentRequest`` (https://ai.google.dev/api/generate-content#request-body):
``contents`` (required), ``systemInstruction``, ``tools``, ``toolConfig``, ``safetySettings``, ``generationConfig``,
``cachedContent``; a ``Content`` has ``parts`` and a ``role`` that is ``user`` or ``model``
(https://ai.google.dev/api/caching#Content); a ``Part`` holds exactly one kind of data
(https://ai.google.dev/api/caching#Part).  Field names are protobuf JSON names, so ``generation_config`` and
``generationConfig`` are the same field (both appear in Google's examples).

Every problem names its rule's page in its message; :data:`RULES` lists them (the README shows the table).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from attrs import frozen

from llmfiles.models import FileLimits, Problem
from llmfiles.validate.rules import bom_warning
from llmfiles.validate.stats import ExampleStats, FileFacts, HashIndex, estimate_tokens, json_chars

BATCH_DOC = "https://ai.google.dev/gemini-api/docs/batch-api#input-file"
REQUEST_DOC = "https://ai.google.dev/api/generate-content#request-body"
CONTENT_DOC = "https://ai.google.dev/api/caching#Content"
PART_DOC = "https://ai.google.dev/api/caching#Part"
#: RFC 8259, section 8.1: JSON text is sent without a byte order mark (Google's pages say nothing of one; the core's
#: :func:`llmfiles.validate.rules.bom_warning` makes the warning, as the other providers' checkers do)
BOM_DOC = "https://www.rfc-editor.org/rfc/rfc8259#section-8.1"
#: "The maximum allowed file size for an input file is 2GB."
MAX_INPUT_BYTES = 2 * 1000**3
#: the Batch API's input-file limits, for ``llmfiles split`` (the page gives no number of requests a file)
BATCH_LIMITS = FileLimits(max_bytes=MAX_INPUT_BYTES, docs=BATCH_DOC)


@frozen(kw_only=True)
class Rule:
    """One rule: its code, how bad breaking it is, the page it comes from and what the page says."""

    code: str
    severity: Literal["error", "warning"]
    doc: str
    says: str


RULES: Mapping[str, Rule] = {
    r.code: r
    for r in (
        Rule(
            code="not_keyed",
            severity="error",
            doc=BATCH_DOC,
            says="each line is a JSON object with a user-defined key and a request object",
        ),
        Rule(
            code="bare_request",
            severity="warning",
            doc=BATCH_DOC,
            says="the guide asks for {key, request}; its REST sample uploads bare GenerateContentRequests, whose "
            "results then carry no key",
        ),
        Rule(code="missing_key", severity="error", doc=BATCH_DOC, says="each line has a user-defined key"),
        Rule(code="bad_key", severity="error", doc=BATCH_DOC, says="the key is a string naming the request"),
        Rule(
            code="duplicate_key",
            severity="warning",
            doc=BATCH_DOC,
            says="the key is used in the output to tell which result belongs to which request",
        ),
        Rule(code="bad_request", severity="error", doc=BATCH_DOC, says="request is a GenerateContentRequest object"),
        Rule(code="no_contents", severity="error", doc=REQUEST_DOC, says="contents is required: a list of Content"),
        Rule(code="bad_content", severity="error", doc=CONTENT_DOC, says="a Content is an object with parts"),
        Rule(code="bad_role", severity="error", doc=CONTENT_DOC, says="role must be either 'user' or 'model'"),
        Rule(code="no_parts", severity="error", doc=CONTENT_DOC, says="parts: the ordered parts of one message"),
        Rule(code="bad_part", severity="error", doc=PART_DOC, says="a Part holds exactly one kind of data"),
        Rule(code="bad_file_data", severity="error", doc=PART_DOC, says="fileData needs its fileUri"),
        Rule(code="bad_inline_data", severity="error", doc=PART_DOC, says="inlineData needs mimeType and data"),
        Rule(
            code="bad_function_part",
            severity="error",
            doc=PART_DOC,
            says="functionCall needs a name; functionResponse a name and a response object",
        ),
        Rule(
            code="bad_system_instruction",
            severity="error",
            doc=REQUEST_DOC,
            says="systemInstruction is a Content (text parts)",
        ),
        Rule(
            code="unknown_field",
            severity="warning",
            doc=REQUEST_DOC,
            says="a GenerateContentRequest has contents, tools, toolConfig, safetySettings, systemInstruction, "
            "generationConfig, cachedContent",
        ),
        Rule(code="file_too_large", severity="error", doc=BATCH_DOC, says="an input file is at most 2GB"),
        Rule(
            code="bom",
            severity="warning",
            doc=BOM_DOC,
            says="JSON text is sent without a byte order mark; Google's pages say nothing of one",
        ),
    )
}

#: GenerateContentRequest's fields (protobuf JSON names; ``model`` is the path's, tolerated in a request)
REQUEST_FIELDS = frozenset(
    {
        "model",
        "contents",
        "tools",
        "toolConfig",
        "safetySettings",
        "systemInstruction",
        "generationConfig",
        "cachedContent",
    }
)
#: a Part's data: exactly one of these
PART_DATA = (
    "text",
    "inlineData",
    "functionCall",
    "functionResponse",
    "fileData",
    "executableCode",
    "codeExecutionResult",
)
ROLES = ("user", "model")


def problem(code: str, path: str, message: str) -> Problem:
    """A problem of rule ``code``, its message ending with the page the rule comes from."""
    rule = RULES[code]
    return Problem(line=None, code=code, message=f"{message} (see {rule.doc})", path=path, severity=rule.severity)


def camel(name: str) -> str:
    """The protobuf JSON name of a field given either way: ``generation_config`` -> ``generationConfig``."""
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def key_of(obj: Mapping[str, Any], name: str) -> str | None:
    """The key field ``name`` (lowerCamel) has in a protobuf JSON object, which may spell it either way."""
    if name in obj:
        return name
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
    return snake if snake in obj else None


def get(obj: Mapping[str, Any], name: str) -> Any:
    """Field ``name`` (lowerCamel) of a protobuf JSON object, spelled either way."""
    key = key_of(obj, name)
    return None if key is None else obj[key]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(type(value), "a number")


# --- parts and contents -------------------------------------------------------------------------------------------


def check_part(part: Any, where: str) -> list[Problem]:
    """The problems of one ``Part``."""
    if not isinstance(part, dict):
        return [problem("bad_part", where, f'a part is an object such as {{"text": "..."}}, not {_kind(part)}')]
    kinds = [k for k in PART_DATA if get(part, k) is not None]
    if len(kinds) != 1:
        found = ", ".join(kinds) or "none"
        return [problem("bad_part", where, f"a part holds exactly one of {', '.join(PART_DATA)} (found: {found})")]
    kind = kinds[0]
    value = get(part, kind)
    here = f"{where}.{key_of(part, kind)}"
    if kind == "text" and not isinstance(value, str):
        return [problem("bad_part", here, f"text is a string, not {_kind(value)}")]
    if kind == "fileData" and not (isinstance(value, dict) and isinstance(get(value, "fileUri"), str)):
        return [problem("bad_file_data", here, "fileData needs fileUri: the uri of an uploaded file (files/...)")]
    if kind == "inlineData" and not (
        isinstance(value, dict) and isinstance(get(value, "mimeType"), str) and isinstance(get(value, "data"), str)
    ):
        return [problem("bad_inline_data", here, "inlineData needs mimeType and data (base64)")]
    if kind in ("functionCall", "functionResponse"):
        if not isinstance(value, dict) or not isinstance(get(value, "name"), str):
            return [problem("bad_function_part", here, f"{kind} needs the function's name")]
        if kind == "functionResponse" and not isinstance(get(value, "response"), dict):
            return [problem("bad_function_part", here, "functionResponse needs a response object")]
    return []


def check_content(turn: Any, where: str, *, code: str = "bad_content") -> list[Problem]:
    """The problems of one ``Content`` (``code`` names the rule a content that is not an object breaks)."""
    if not isinstance(turn, dict):
        return [problem(code, where, f"a content is an object with parts (and a role), not {_kind(turn)}")]
    out: list[Problem] = []
    role = turn.get("role")
    if role is not None and role not in ROLES:
        out.append(problem("bad_role", f"{where}.role", f"role is 'user' or 'model', not {role!r}"))
    parts = turn.get("parts")
    if not isinstance(parts, list) or not parts:
        out.append(problem("no_parts", f"{where}.parts", "parts is a non-empty list of parts"))
        return out
    for k, part in enumerate(parts):
        out.extend(check_part(part, f"{where}.parts[{k}]"))
    return out


def check_request(request: dict[str, Any], where: str) -> list[Problem]:
    """The problems of one ``GenerateContentRequest`` (``where`` is its path in the line, ``request.`` or empty)."""
    out: list[Problem] = []
    contents = request.get("contents")
    if not isinstance(contents, list) or not contents:
        out.append(problem("no_contents", f"{where}contents", "contents is a non-empty list of contents (turns)"))
    else:
        for i, turn in enumerate(contents):
            out.extend(check_content(turn, f"{where}contents[{i}]"))
    system_key = key_of(request, "systemInstruction")
    if system_key is not None:
        out.extend(check_content(request[system_key], f"{where}{system_key}", code="bad_system_instruction"))
    for key in request:
        if camel(str(key)) not in REQUEST_FIELDS:
            hint = " (did you mean systemInstruction?)" if str(key).startswith("system_instructions") else ""
            out.append(
                problem(
                    "unknown_field",
                    f"{where}{key}",
                    f"a GenerateContentRequest has no field {key!r}{hint}: it is not sent to the model; remove it "
                    "or check its spelling",
                )
            )
    return out


# --- the checker --------------------------------------------------------------------------------------------------


class BatchChecker:
    """Checks the lines of a Gemini Batch API input file (see the module documentation for the rules)."""

    def __init__(self) -> None:
        self.keys = HashIndex(max_items=1 << 22)
        self.stats = ExampleStats(unit="requests")

    def start(self, facts: FileFacts) -> list[Problem]:
        """A file over the 2 GB an input file may have; a byte order mark (a warning: Google's pages ask for JSONL and
        say nothing of one, see :func:`llmfiles.validate.rules.bom_warning`)."""
        out = [bom_warning("Gemini")] if facts.has_bom else []
        if facts.size > MAX_INPUT_BYTES:
            out.append(
                problem(
                    "file_too_large",
                    "",
                    f"the file has {facts.size:,} bytes; a batch input file may have at most {MAX_INPUT_BYTES:,}: "
                    "cut it into files that fit with: llmfiles split FILE -p gemini --purpose batch -o DIR",
                )
            )
        return out

    def check(self, line_no: int, record: dict[str, Any]) -> list[Problem]:
        """The problems of one line."""
        if "request" not in record:
            if "contents" in record:
                self._count(record)
                bare = problem(
                    "bare_request",
                    "",
                    'a bare GenerateContentRequest: write the line as {"key": "request-1", "request": {...}} so its '
                    "result carries the key",
                )
                return [bare, *check_request(record, "")]
            keys = ", ".join(sorted(map(str, record))[:5]) or "none"
            return [
                problem(
                    "not_keyed",
                    "",
                    f'a batch line is {{"key": "...", "request": {{"contents": [...]}}}} (this one has: {keys})',
                )
            ]
        out = self._key(line_no, record)
        request = record["request"]
        if not isinstance(request, dict):
            out.append(
                problem("bad_request", "request", f"request is a GenerateContentRequest object, not {_kind(request)}")
            )
            return out
        self._count(request)
        out.extend(check_request(request, "request."))
        for key in record:
            if key not in ("key", "request"):
                out.append(
                    problem("unknown_field", str(key), f"a batch line has only key and request, not {key!r}: remove it")
                )
        return out

    def _key(self, line_no: int, record: dict[str, Any]) -> list[Problem]:
        key = record.get("key")
        if key is None:
            return [problem("missing_key", "key", f'the line has no key: add one such as "key": "request-{line_no}"')]
        if not isinstance(key, str) or not key:
            return [problem("bad_key", "key", f"key is a non-empty string, not {_kind(key)}")]
        earlier = self.keys.add(hash(key), line_no)
        if earlier:
            return [
                problem(
                    "duplicate_key",
                    "key",
                    f"key {key!r} is also the key of line {earlier}: their results cannot be told apart",
                )
            ]
        return []

    def _count(self, request: Mapping[str, Any]) -> None:
        contents = request.get("contents")
        if not isinstance(contents, list):
            self.stats.add(format="generateContent")
            return
        roles = [str(t.get("role") or "user") for t in contents if isinstance(t, dict)]
        self.stats.add(
            messages=len(contents),
            tokens=estimate_tokens(json_chars(contents) + json_chars(get(request, "systemInstruction") or "")),
            roles=roles,
            format="generateContent",
        )

    def finish(self) -> list[Problem]:
        """Nothing about the file as a whole."""
        return []
