"""Vertex AI's Gemini data formats: record checks, and the OpenAI chat → Gemini conversion of one record.

A Gemini tuning record is ``{"systemInstruction"?: {"parts": [...]}, "contents": [{"role": "user"|"model",
"parts": [{"text": ...}, ...]}, ...], "tools"?: [...]}``; a batch-prediction record is ``{"request": {"contents":
[...], ...}}``.  :func:`chat_to_gemini` turns an OpenAI chat fine-tuning record (``messages``, optional ``tools``)
into a tuning record; :func:`convert_record` is the ``gemini`` conversion the plugin registers, which the core
applies to a whole file (``llmfiles convert --to gemini``, ``convert="gemini"`` while uploading).

The rules follow "Prepare supervised fine-tuning data for Gemini models" (Vertex AI,
https://cloud.google.com/vertex-ai/generative-ai/docs/models/gemini-supervised-tuning-prepare) for tuning records
and "Batch prediction from Cloud Storage" (https://cloud.google.com/vertex-ai/generative-ai/docs/multimodal/
batch-prediction-from-cloud-storage) for batch records; each checker's docstring says which rule comes from where.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Mapping
from typing import Any, Literal

from llmfiles.models import FileLimits, Problem
from llmfiles.validate.rules import bom_warning
from llmfiles.validate.stats import ExampleStats, FileFacts, estimate_tokens, json_chars

#: the name of the conversion to the Gemini tuning format
GEMINI = "gemini"
Format = Literal["gemini", "chat"]

ROLES = ("user", "model")
#: the data fields of a Gemini ``Part``; each part holds exactly one of them
PART_DATA = (
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
)
TUNING_KEYS = frozenset({"contents", "systemInstruction", "tools", "toolConfig"})


#: Vertex batch prediction from Cloud Storage: the page describes the input file (one JSONL file, a request a line)
#: but llmfiles found no per-file limit of bytes or requests it could cite, so none is declared (``llmfiles split
#: -p vertex_ai`` needs --max-records/--max-bytes; say which page documents one and it goes here)
BATCH_LIMITS = FileLimits(
    docs="https://cloud.google.com/vertex-ai/generative-ai/docs/multimodal/batch-prediction-from-cloud-storage",
    note="no per-file limit documented on the page llmfiles cites",
)


class ConversionError(ValueError):
    """A record that cannot be turned into the Gemini format; ``path`` says where in the record."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.path = path


# --- OpenAI chat -> Gemini ----------------------------------------------------------------------------------


def _text_parts(content: Any, where: str, *, allow_empty: bool = False) -> list[dict[str, Any]]:
    """The parts of a message's ``content``: a string or a list of content parts."""
    if content is None or content in ("", []):
        if allow_empty:
            return []
        raise ConversionError("the message has no content", f"{where}.content")
    if isinstance(content, str):
        return [{"text": content}]
    if not isinstance(content, list):
        raise ConversionError("content must be a string or a list of content parts", f"{where}.content")
    parts: list[dict[str, Any]] = []
    for k, item in enumerate(content):
        here = f"{where}.content[{k}]"
        if not isinstance(item, dict):
            raise ConversionError("each content part must be an object", here)
        kind = item.get("type")
        if kind == "text" and isinstance(item.get("text"), str):
            parts.append({"text": item["text"]})
        elif kind == "image_url":
            image = item.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url.startswith("gs://"):
                raise ConversionError(
                    "only images in Cloud Storage can be converted: upload the image to a bucket and use its "
                    "gs:// URI as image_url.url",
                    f"{here}.image_url",
                )
            mime = mimetypes.guess_type(url)[0]
            if mime is None:
                raise ConversionError(f"cannot tell the image type of {url!r} from its name", f"{here}.image_url")
            parts.append({"fileData": {"mimeType": mime, "fileUri": url}})
        else:
            raise ConversionError(f"content part type {kind!r} cannot be converted; use text parts", f"{here}.type")
    return parts


def _function_call(call: Any, where: str) -> tuple[str | None, dict[str, Any]]:
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        raise ConversionError("a tool call must be an object with a function", where)
    fn = call["function"]
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise ConversionError("the tool call has no function name", f"{where}.function.name")
    raw = fn.get("arguments", "{}")
    try:
        args = json.loads(raw) if isinstance(raw, str) else raw
    except (ValueError, RecursionError):
        raise ConversionError("the tool call's arguments are not valid JSON", f"{where}.function.arguments") from None
    if not isinstance(args, dict):
        raise ConversionError("the tool call's arguments must be a JSON object", f"{where}.function.arguments")
    call_id = call.get("id")
    return (call_id if isinstance(call_id, str) else None), {"functionCall": {"name": name, "args": args}}


def _function_response(content: Any) -> dict[str, Any]:
    if isinstance(content, str):
        try:
            value = json.loads(content)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
        return {"content": content}
    if isinstance(content, list):
        text = "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
        return {"content": text}
    return {"content": content}


def chat_to_gemini(record: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI chat fine-tuning record as a Vertex Gemini tuning record.

    ``system``/``developer`` messages before the first turn become ``systemInstruction``; ``user`` turns stay
    ``user``, ``assistant`` turns become ``model`` (their ``tool_calls`` become ``functionCall`` parts), ``tool``
    messages become ``functionResponse`` parts of a ``user`` turn; consecutive turns of one role are merged, as
    Gemini expects alternating turns.  ``tools`` become ``functionDeclarations``.  ``name`` and ``weight`` have no
    Gemini equivalent and are dropped.  Raises :class:`ConversionError` for what cannot be converted.
    """
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ConversionError("messages must be a non-empty list", "messages")
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise ConversionError("each message must be an object", where)
        if msg.get("role") in ("system", "developer"):
            if contents:
                raise ConversionError(
                    "a system message after the first turn cannot be converted: Gemini has one systemInstruction, "
                    "before the conversation",
                    f"{where}.role",
                )
            system.extend(_text_parts(msg.get("content"), where))
            continue
        gemini_role, parts = _turn(msg, where, call_names)
        if contents and contents[-1]["role"] == gemini_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": gemini_role, "parts": parts})
    out: dict[str, Any] = {}
    if system:
        out["systemInstruction"] = {"role": "system", "parts": system}
    out["contents"] = contents
    tools = record.get("tools")
    if tools:
        out["tools"] = [{"functionDeclarations": _function_declarations(tools)}]
    return out


def _turn(msg: dict[str, Any], where: str, call_names: dict[str, str]) -> tuple[str, list[dict[str, Any]]]:
    """The Gemini role and parts of one user, assistant or tool message (``call_names`` maps tool call ids to the
    functions they called, for the tool messages that answer them)."""
    role = msg.get("role")
    if role == "user":
        return "user", _text_parts(msg.get("content"), where)
    if role == "assistant":
        calls = msg.get("tool_calls") or []
        if not isinstance(calls, list):
            raise ConversionError("tool_calls must be a list", f"{where}.tool_calls")
        parts = _text_parts(msg.get("content"), where, allow_empty=bool(calls))
        for j, call in enumerate(calls):
            call_id, part = _function_call(call, f"{where}.tool_calls[{j}]")
            if call_id:
                call_names[call_id] = part["functionCall"]["name"]
            parts.append(part)
        return "model", parts
    if role in ("tool", "function"):
        name = msg.get("name") if role == "function" else call_names.get(str(msg.get("tool_call_id")))
        if not isinstance(name, str) or not name:
            raise ConversionError(
                "the tool message answers no earlier tool call (its tool_call_id matches none)",
                f"{where}.tool_call_id",
            )
        return "user", [{"functionResponse": {"name": name, "response": _function_response(msg.get("content"))}}]
    raise ConversionError(
        f"role {role!r} has no Gemini equivalent; use system, user, assistant or tool", f"{where}.role"
    )


def _function_declarations(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise ConversionError("tools must be a list", "tools")
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise ConversionError("each tool must be {'type': 'function', 'function': {'name': ...}}", f"tools[{i}]")
        decl = {k: fn[k] for k in ("name", "description", "parameters") if k in fn}
        out.append(decl)
    return out


def convert_record(record: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[Problem]]:
    """The ``gemini`` conversion of ``llmfiles convert``: a chat record converted, a Gemini record kept as it is.

    Returns ``(record, problems)`` as ``llmfiles_register_converters`` asks: ``None`` and a ``cannot_convert``
    error when the record cannot be converted, a ``weight_dropped`` warning per assistant message of weight 0.
    """
    if record_format(record) == "gemini":
        return dict(record), []
    try:
        converted = chat_to_gemini(record)
    except ConversionError as exc:
        return None, [Problem(line=None, code="cannot_convert", message=exc.message, path=exc.path)]
    messages = record.get("messages")
    problems = [
        Problem(
            line=None,
            code="weight_dropped",
            severity="warning",
            path=f"messages[{i}].weight",
            message="weight 0 has no Gemini equivalent: this message is trained on like the others "
            "(remove the message to leave it out)",
        )
        for i, m in enumerate(messages if isinstance(messages, list) else [])
        if isinstance(m, dict) and m.get("weight") == 0
    ]
    return converted, problems


# --- checks -------------------------------------------------------------------------------------------------


def _check_part(part: Any, where: str) -> list[tuple[str, str, str]]:
    if not isinstance(part, dict):
        return [(where, "bad_part", 'each part must be an object such as {"text": "..."}')]
    kinds = [k for k in PART_DATA if k in part]
    if len(kinds) != 1:
        found = ", ".join(kinds) or "none"
        return [(where, "bad_part", f"a part holds exactly one of {', '.join(PART_DATA)} (found: {found})")]
    kind = kinds[0]
    value = part[kind]
    here = f"{where}.{kind}"
    if kind == "text":
        if not isinstance(value, str) or not value:
            return [(here, "empty_text", "text must be a non-empty string")]
    elif kind == "fileData":
        if not isinstance(value, dict) or not isinstance(value.get("fileUri"), str):
            return [(here, "bad_file_data", "fileData needs fileUri (a gs:// URI) and mimeType")]
        if not isinstance(value.get("mimeType"), str):
            return [(here, "bad_file_data", "fileData needs mimeType (for example image/png)")]
    elif kind == "inlineData":
        if not isinstance(value, dict) or not isinstance(value.get("data"), str) or "mimeType" not in value:
            return [(here, "bad_inline_data", "inlineData needs mimeType and base64 data")]
    elif kind in ("functionCall", "functionResponse"):
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            return [(here, "bad_function_part", f"{kind} needs a name")]
        if kind == "functionResponse" and not isinstance(value.get("response"), dict):
            return [(here, "bad_function_part", "functionResponse needs a response object")]
    return []


def check_contents(contents: Any, where: str, *, last_model: bool) -> list[tuple[str, str, str]]:
    """Problems ``(path, code, message)`` of a Gemini ``contents`` list.

    From "Prepare supervised fine-tuning data for Gemini models" (Vertex AI,
    https://cloud.google.com/vertex-ai/generative-ai/docs/models/gemini-supervised-tuning-prepare): each turn is
    ``{"role": "user" | "model", "parts": [...]}``, each part holds one kind of data.  For a tuning example
    (``last_model``) the turn rules of the same page apply: the conversation starts with the user, the ``user`` and
    ``model`` roles repeat in an alternating manner (two turns of one role in a row are one turn: merge their
    parts), and the example ends with the model's answer, the output to learn.
    """
    if not isinstance(contents, list) or not contents:
        return [(where, "no_contents", "contents must be a non-empty list of turns")]
    out: list[tuple[str, str, str]] = []
    for i, turn in enumerate(contents):
        here = f"{where}[{i}]"
        if not isinstance(turn, dict):
            out.append((here, "bad_turn", "each turn must be an object with role and parts"))
            continue
        if turn.get("role") not in ROLES:
            out.append((f"{here}.role", "bad_role", f"role must be 'user' or 'model', not {turn.get('role')!r}"))
        parts = turn.get("parts")
        if not isinstance(parts, list) or not parts:
            out.append((f"{here}.parts", "no_parts", "parts must be a non-empty list"))
            continue
        for k, part in enumerate(parts):
            out.extend(_check_part(part, f"{here}.parts[{k}]"))
    if out:
        return out
    if contents[0].get("role") != "user":
        out.append((f"{where}[0].role", "first_turn_not_user", "the conversation must start with a user turn"))
    if last_model:
        out.extend(_turn_order(contents, where))
    return out


def _turn_order(contents: list[dict[str, Any]], where: str) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    for i in range(1, len(contents)):
        role = contents[i]["role"]
        if role == contents[i - 1]["role"]:
            out.append(
                (
                    f"{where}[{i}].role",
                    "turns_not_alternating",
                    f"two {role!r} turns in a row (turns {i - 1} and {i}); user and model turns alternate in a "
                    "tuning example: put the parts of both in one turn",
                )
            )
            break
    if contents[-1]["role"] != "model":
        out.append(
            (
                f"{where}[{len(contents) - 1}].role",
                "last_turn_not_model",
                "a tuning example must end with the model's answer (role 'model')",
            )
        )
    return out


def check_tuning_record(record: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """Problems of a Gemini tuning record (unknown top-level fields are reported with code ``unknown_field``)."""
    out = check_contents(record.get("contents"), "contents", last_model=True)
    system = record.get("systemInstruction")
    if system is not None:
        parts = system.get("parts") if isinstance(system, dict) else None
        if not isinstance(parts, list) or not parts:
            out.append(("systemInstruction.parts", "bad_system", "systemInstruction needs a non-empty parts list"))
        else:
            for k, part in enumerate(parts):
                out.extend(_check_part(part, f"systemInstruction.parts[{k}]"))
    tools = record.get("tools")
    if tools is not None and not isinstance(tools, list):
        out.append(("tools", "bad_tools", "tools must be a list"))
    for key in record:
        if key not in TUNING_KEYS:
            out.append((key, "unknown_field", f"Vertex tuning records have no field {key!r}; remove it"))
    return out


def check_chat_record(record: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """Problems of an OpenAI chat-format record, the format Vertex takes for open-model tuning.

    A ``messages`` record with a ``model`` turn is the tuning format of Gemini 1.0 Pro (``{"messages": [{"role":
    "system" | "user" | "model", "content": "..."}]}``, from "Prepare supervised tuning data" of Gemini 1.0 Pro,
    https://cloud.google.com/vertex-ai/generative-ai/docs/models/gemini-supervised-tuning-about), which is retired
    with Gemini 1.0 ("Model versions and lifecycle",
    https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions): it is refused as such, with the
    format that replaced it.
    """
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        return [("messages", "no_messages", "messages must be a non-empty list")]
    roles = [m.get("role") if isinstance(m, dict) else None for m in messages]
    if "model" in roles:
        i = roles.index("model")
        return [
            (
                f"messages[{i}].role",
                "retired_format",
                "this is the tuning format of Gemini 1.0 Pro (messages with role 'model'), which is retired with "
                "Gemini 1.0: write the example as {'systemInstruction'?: {'parts': [...]}, 'contents': [{'role': "
                "'user' | 'model', 'parts': [{'text': ...}]}]}",
            )
        ]
    out: list[tuple[str, str, str]] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            out.append((f"messages[{i}]", "bad_message", "each message must be an object with a role"))
    if not out and messages[-1].get("role") != "assistant":
        out.append(
            (f"messages[{len(messages) - 1}].role", "last_not_assistant", "the last message must be the assistant's")
        )
    return out


def record_format(record: Mapping[str, Any]) -> Format | None:
    """``"gemini"`` for a record with ``contents``, ``"chat"`` for one with ``messages``, else ``None``."""
    if "contents" in record:
        return "gemini"
    if "messages" in record:
        return "chat"
    return None


def _text_chars(turn: Any) -> int:
    """The characters of a turn's text (a Gemini turn's text parts, a chat message's content; function calls and
    responses as compact JSON), not of the JSON around it: what the token estimate counts."""
    if not isinstance(turn, dict):
        return 0
    content = turn.get("content")
    if isinstance(content, str):
        return len(content)
    parts = turn.get("parts") if "parts" in turn else content
    chars = 0
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, dict):
            continue
        text = part.get("text")
        if isinstance(text, str):
            chars += len(text)
        for key in ("functionCall", "functionResponse"):
            if key in part:
                chars += json_chars(part[key])
    return chars


class TuningChecker:
    """Checks the records of a Vertex ``fine-tune`` file: in the Gemini format, or in the OpenAI chat format, which
    Vertex takes for open models such as Llama and Gemma (a warning says Gemini models need the Gemini format:
    ``convert='gemini'``), not a mix of both."""

    def __init__(self) -> None:
        self.file_format: Format | None = None
        self.first_line = 0
        self.stats = ExampleStats()

    def start(self, facts: FileFacts) -> list[Problem]:
        """A BOM at the start of the file is a warning (:func:`llmfiles.validate.rules.bom_warning`)."""
        return [bom_warning("Vertex AI")] if facts.has_bom else []

    def check(self, line_no: int, record: dict[str, Any]) -> list[Problem]:
        """The problems of one record (``line_no`` is its line in the file)."""
        fmt = record_format(record)
        if fmt is None:
            return [
                Problem(
                    line=line_no,
                    code="unknown_format",
                    message="a Vertex tuning record needs contents (Gemini format) or messages (chat format)",
                )
            ]
        if self.file_format is None:
            self.file_format, self.first_line = fmt, line_no
        elif fmt != self.file_format:
            return [
                Problem(
                    line=line_no,
                    code="mixed_formats",
                    message=f"this record is in {fmt} format but line {self.first_line} is in "
                    f"{self.file_format} format; use one format per file",
                )
            ]
        problems = check_tuning_record(record) if fmt == "gemini" else check_chat_record(record)
        self._count(record, fmt)
        return [
            Problem(
                line=line_no,
                code=code,
                message=message,
                path=path,
                severity="warning" if code == "unknown_field" else "error",
            )
            for path, code, message in problems
        ]

    def _count(self, record: Mapping[str, Any], fmt: Format) -> None:
        """Feeds the report's statistics: turns, roles and estimated tokens of the example."""
        turns = record.get("contents" if "contents" in record else "messages")
        if not isinstance(turns, list):
            self.stats.add(format=fmt)
            return
        roles = [t["role"] for t in turns if isinstance(t, dict) and isinstance(t.get("role"), str)]
        system = record.get("systemInstruction")
        chars = sum(map(_text_chars, turns)) + (_text_chars(system) if system is not None else 0)
        self.stats.add(messages=len(turns), tokens=estimate_tokens(chars), roles=roles, format=fmt)

    def finish(self) -> list[Problem]:
        """The problems of the file as a whole (a chat-format file: a warning)."""
        if self.file_format != "chat":
            return []
        return [
            Problem(
                line=None,
                code="chat_format",
                severity="warning",
                message="the file is in OpenAI chat format (messages): Vertex takes it for open models "
                "(Llama, Gemma, ...); Gemini models need the Gemini format: pass convert='gemini' "
                "(CLI: --convert gemini) to convert it while uploading",
            )
        ]


class BatchChecker:
    """Checks the records of a Vertex batch-prediction input file: ``{"request": {"contents": [...], ...}}``."""

    def start(self, facts: FileFacts) -> list[Problem]:
        """A BOM at the start of the file is a warning (:func:`llmfiles.validate.rules.bom_warning`)."""
        return [bom_warning("Vertex AI")] if facts.has_bom else []

    def check(self, line_no: int, record: dict[str, Any]) -> list[Problem]:
        """The problems of one batch record (``line_no`` is its line in the file)."""
        request = record.get("request")
        if not isinstance(request, dict):
            return [
                Problem(
                    line=line_no,
                    code="no_request",
                    path="request",
                    message='a Vertex batch record is {"request": {"contents": [...]}}',
                )
            ]
        return [
            Problem(line=line_no, code=code, message=message, path=path)
            for path, code, message in check_contents(request.get("contents"), "request.contents", last_model=False)
        ]

    def finish(self) -> list[Problem]:
        """Nothing about the file as a whole."""
        return []
