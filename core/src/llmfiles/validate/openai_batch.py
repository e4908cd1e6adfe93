"""OpenAI's batch file formats, which the batch conversions read (requests) and write (results): the common
language of ``vertex-batch``, ``gemini-batch``, ``bedrock-batch``, ``mistral-batch`` and ``openai-from-*``.

A request line is ``{"custom_id": str, "method": "POST", "url": "/v1/chat/completions", "body": {...}}``
("Batch API", https://platform.openai.com/docs/guides/batch#1-prepare-your-batch-file; "The request input
object", https://platform.openai.com/docs/api-reference/batch/request-input).  A result line is ``{"id",
"custom_id", "response": {"status_code", "request_id", "body"} | null, "error": {"code", "message"} | null}``
("The request output object", https://platform.openai.com/docs/api-reference/batch/request-output), whose
``body`` for chat requests is a chat completion object
(https://platform.openai.com/docs/api-reference/chat/object).

The helpers here hold what every conversion shares: reading a request line (:func:`read_request`), reporting the
body fields a target cannot take (:func:`unmapped`), one model per batch (:class:`ModelNote`), ``data:`` URLs
(:func:`data_url`), and writing result lines (:func:`result_line`, :func:`error_line`, :func:`chat_completion`)
checked by :class:`ResultChecker`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from attrs import frozen

from llmfiles.models import Problem
from llmfiles.validate.stats import FileFacts, HashIndex

if TYPE_CHECKING:
    from llmfiles.validate.convert import Converter, PrepareFn
    from llmfiles.validate.records import RecordChecker

INPUT_DOC = "https://platform.openai.com/docs/api-reference/batch/request-input"
OUTPUT_DOC = "https://platform.openai.com/docs/api-reference/batch/request-output"
CHAT_DOC = "https://platform.openai.com/docs/api-reference/chat/create"
#: the endpoints of chat completions, as OpenAI batch lines name them (with and without the version)
CHAT_URLS = frozenset({"/v1/chat/completions", "/chat/completions"})
#: body fields whose value changes nothing in the answer: dropped with a warning, never silently
NO_EFFECT = frozenset({"user", "metadata", "store", "service_tier", "stream_options", "safety_identifier"})
_DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)(?:;[^,;]*)*;base64,(?P<data>.*)", re.S)


@frozen(kw_only=True)
class BatchRequest:
    """A request line of an OpenAI batch file: its ``custom_id`` and the chat completions ``body``."""

    custom_id: str
    body: Mapping[str, Any]


def problem(code: str, path: str, message: str, *, severity: Literal["error", "warning"] = "error") -> Problem:
    """A problem of a record (the core gives it the record's line)."""
    return Problem(line=None, code=code, message=message, path=path, severity=severity)


def read_request(record: Mapping[str, Any], target: str) -> tuple[BatchRequest | None, list[Problem]]:
    """The request of one OpenAI batch line, or ``None`` and why it cannot be converted to ``target``: a line must
    have a ``custom_id`` (a non-empty string), ``method`` POST, a chat completions ``url`` (``target`` runs chat
    requests only) and a ``body`` with ``messages`` (:data:`INPUT_DOC`)."""
    out: list[Problem] = []
    custom_id = record.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        out.append(
            problem("bad_custom_id", "custom_id", f"each line needs a custom_id, a non-empty string ({INPUT_DOC})")
        )
    method = record.get("method", "POST")
    if method != "POST":
        out.append(problem("bad_method", "method", f"method is POST in an OpenAI batch line, not {method!r}"))
    url = record.get("url")
    if url not in CHAT_URLS:
        out.append(
            problem(
                "not_chat_completions",
                "url",
                f"this line calls {url!r}; a {target} batch runs chat completions (/v1/chat/completions) only: "
                "send this line in an OpenAI batch, or drop it",
            )
        )
    body = record.get("body")
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
        out.append(problem("bad_body", "body", "body is a chat completions request with a non-empty messages list"))
    extra = sorted(str(k) for k in record if k not in ("custom_id", "method", "url", "body"))
    if extra:
        out.append(problem("unknown_field", extra[0], f"an OpenAI batch line has no field {extra[0]!r}: remove it"))
    if out:
        return None, out
    assert isinstance(custom_id, str) and isinstance(body, dict)
    return BatchRequest(custom_id=custom_id, body=body), []


def unmapped(
    body: Mapping[str, Any], handled: Collection[str], target: str, advice: Mapping[str, str] | None = None
) -> list[Problem]:
    """A problem for each body field ``target`` has no equivalent of: an error (``unsupported_field``) for one that
    changes the answer, a warning (``field_dropped``) for one that does not (:data:`NO_EFFECT`); ``null`` values
    ask for the default and are not reported.  ``advice`` says what to do instead, by field."""
    out: list[Problem] = []
    for key, value in body.items():
        if key in handled or value is None:
            continue
        what = (advice or {}).get(key, "remove it from the body")
        if key in NO_EFFECT or (key == "stream" and value is False):
            message = f"{target} has no {key!r}: it is dropped (it does not change the answer)"
            out.append(problem("field_dropped", f"body.{key}", message, severity="warning"))
        else:
            message = f"{target} has no equivalent of {key!r}: {what}"
            out.append(problem("unsupported_field", f"body.{key}", message))
    return out


class ModelNote:
    """``body.model`` of a batch whose target picks the model when the job is created: a warning at the first line
    that names one (the model given at job creation runs every line) and at each line that names another."""

    def __init__(self, target: str, where: str) -> None:
        self.target = target
        self.where = where
        self.model: str | None = None

    def see(self, body: Mapping[str, Any]) -> list[Problem]:
        """The warning for this body's model, if any."""
        model = body.get("model")
        if not isinstance(model, str) or model == self.model:
            return []
        first = self.model is None
        if first:
            self.model = model
            message = f"{self.target} runs the model {self.where} (body.model {model!r} is not sent)"
        else:
            message = f"model {model!r}, while earlier lines have {self.model!r}: a {self.target} batch runs one model"
        return [problem("model_not_sent", "body.model", message, severity="warning")]


def data_url(url: str) -> tuple[str, str] | None:
    """``(mime type, base64 data)`` of a ``data:`` URL (``data:image/png;base64,...``), else ``None``."""
    match = _DATA_URL.fullmatch(url)
    return (match["mime"], match["data"]) if match else None


def text_of(content: Any) -> str | None:
    """The text of a message's content: a string, or the text parts of a list joined; ``None`` when it has other
    parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    return None


def stops(value: Any) -> list[str]:
    """``stop`` as a list of strings (OpenAI takes a string or a list)."""
    if isinstance(value, str):
        return [value]
    return [str(s) for s in value] if isinstance(value, list) else []


# --- messages -----------------------------------------------------------------------------------------------------


@frozen(kw_only=True)
class Block:
    """One piece of a message, whatever the target's shape: ``text`` (``text``), ``image`` (``mime`` and base64
    ``data`` of a ``data:`` URL, or its ``url``), ``audio`` (``mime``, ``data``), ``tool_call`` (``call_id``,
    ``name``, ``arguments`` as an object) or ``tool_result`` (``call_id``, ``name`` of the function it answers,
    ``text``)."""

    kind: str
    text: str = ""
    mime: str = ""
    data: str = ""
    url: str = ""
    call_id: str = ""
    name: str = ""
    arguments: Mapping[str, Any] | None = None


@frozen(kw_only=True)
class Turn:
    """A turn of the conversation: ``user`` (tool results included) or ``assistant``, and its blocks."""

    role: str
    blocks: list[Block]


@frozen(kw_only=True)
class Conversation:
    """A chat request's messages: the system text (system and developer messages before the first turn, joined by
    blank lines; ``None`` when there are none) and the turns, consecutive turns of one role merged."""

    system: str | None
    turns: list[Turn]


def read_messages(messages: list[Any]) -> tuple[Conversation | None, list[Problem]]:
    """``body.messages`` as a :class:`Conversation`, or ``None`` and the problems of the messages that cannot be read
    (https://platform.openai.com/docs/api-reference/chat/create#chat-create-messages)."""
    system: list[str] = []
    turns: list[Turn] = []
    names: dict[str, str] = {}
    out: list[Problem] = []
    for i, msg in enumerate(messages):
        where = f"body.messages[{i}]"
        role = msg.get("role") if isinstance(msg, dict) else None
        if role in ("system", "developer"):
            text = text_of(msg.get("content"))
            if turns or text is None:
                why = "after the first turn" if turns else "with parts other than text"
                out.append(
                    problem(
                        "cannot_convert",
                        f"{where}.role",
                        f"a {role} message {why} cannot be converted: "
                        "the target takes one system text before the conversation",
                    )
                )
            else:
                system.append(text)
            continue
        blocks = _blocks(msg, where, names, out) if role in ("user", "assistant", "tool") else None
        if blocks is None:
            if role not in ("user", "assistant", "tool"):
                out.append(
                    problem(
                        "cannot_convert",
                        f"{where}.role",
                        f"role {role!r} cannot be converted; use system, developer, user, assistant or tool",
                    )
                )
            continue
        kind = "assistant" if role == "assistant" else "user"
        if turns and turns[-1].role == kind:
            turns[-1].blocks.extend(blocks)
        else:
            turns.append(Turn(role=kind, blocks=blocks))
    if not out and (not turns or turns[0].role != "user"):
        out.append(problem("cannot_convert", "body.messages", "the conversation must start with a user message"))
    if out:
        return None, out
    return Conversation(system="\n\n".join(system) if system else None, turns=turns), []


def _blocks(msg: Mapping[str, Any], where: str, names: dict[str, str], out: list[Problem]) -> list[Block] | None:
    """The blocks of a user, assistant or tool message (``names``: the function each earlier tool call called)."""
    role = msg["role"]
    content = msg.get("content")
    if role == "tool":
        call_id = str(msg.get("tool_call_id", ""))
        if call_id not in names:
            out.append(
                problem("cannot_convert", f"{where}.tool_call_id", "the tool message answers no earlier tool call")
            )
            return None
        text = text_of(content) if content is not None else ""
        return [Block(kind="tool_result", call_id=call_id, name=names[call_id], text=text or "")]
    blocks = [] if content in (None, "") else _content_blocks(content, where, out)
    if blocks is None:
        return None
    for j, call in enumerate(msg.get("tool_calls") or [] if role == "assistant" else []):
        block = _tool_call(call, f"{where}.tool_calls[{j}]", out)
        if block is None:
            return None
        names[block.call_id] = block.name
        blocks.append(block)
    if not blocks:
        out.append(problem("cannot_convert", f"{where}.content", "the message has no content"))
        return None
    return blocks


def _content_blocks(content: Any, where: str, out: list[Problem]) -> list[Block] | None:
    if isinstance(content, str):
        return [Block(kind="text", text=content)]
    if not isinstance(content, list):
        out.append(problem("cannot_convert", f"{where}.content", "content is a string or a list of parts"))
        return None
    blocks: list[Block] = []
    for k, part in enumerate(content):
        here = f"{where}.content[{k}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            blocks.append(Block(kind="text", text=part["text"]))
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            found = data_url(url) if isinstance(url, str) else None
            blocks.append(
                Block(kind="image", mime=found[0], data=found[1]) if found else Block(kind="image", url=str(url))
            )
        elif kind == "input_audio" and isinstance(part.get("input_audio"), dict):
            audio = part["input_audio"]
            mime = {"wav": "audio/wav", "mp3": "audio/mp3"}.get(str(audio.get("format")), "")
            blocks.append(Block(kind="audio", mime=mime, data=str(audio.get("data", ""))))
        else:
            out.append(
                problem(
                    "cannot_convert",
                    f"{here}.type",
                    f"content part type {kind!r} cannot be converted; use text, image_url or input_audio parts",
                )
            )
            return None
    return blocks


def _tool_call(call: Any, where: str, out: list[Problem]) -> Block | None:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        out.append(
            problem(
                "cannot_convert", where, "a tool call is {'id', 'type': 'function', 'function': {'name', 'arguments'}}"
            )
        )
        return None
    raw = fn.get("arguments", "{}")
    try:
        args = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        args = None
    if not isinstance(args, dict):
        out.append(problem("cannot_convert", f"{where}.function.arguments", "the arguments are not a JSON object"))
        return None
    return Block(kind="tool_call", call_id=str(call.get("id", "")), name=fn["name"], arguments=args)


def function_tools(tools: Any) -> tuple[list[dict[str, Any]] | None, list[Problem]]:
    """``body.tools`` as ``[{"name", "description"?, "parameters"?}]``, or ``None`` and why not (only function
    tools convert)."""
    if not isinstance(tools, list):
        return None, [problem("cannot_convert", "body.tools", "tools is a list")]
    found: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) and tool.get("type", "function") == "function" else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            return None, [
                problem(
                    "cannot_convert",
                    f"body.tools[{i}]",
                    "only function tools convert: "
                    "{'type': 'function', 'function': {'name', 'description', 'parameters'}}",
                )
            ]
        found.append({k: fn[k] for k in ("name", "description", "parameters") if k in fn})
    return found, []


def tool_choice(value: Any) -> tuple[str, str | None] | None:
    """``body.tool_choice`` as ``(mode, function name)``: mode ``auto``, ``none``, ``required`` or ``function``;
    ``None`` for a value OpenAI does not define."""
    if value in ("auto", "none", "required"):
        return str(value), None
    fn = value.get("function") if isinstance(value, dict) and value.get("type") == "function" else None
    if isinstance(fn, dict) and isinstance(fn.get("name"), str):
        return "function", fn["name"]
    return None


def max_tokens(body: Mapping[str, Any]) -> int | None:
    """``max_completion_tokens``, else ``max_tokens`` (the older name), of a body."""
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    return value if isinstance(value, int) else None


# --- results ------------------------------------------------------------------------------------------------------


def line_id(provider: str, custom_id: str) -> str:
    """The ``id`` of a result line: stable for a provider's result of a request (the same output, the same id)."""
    return "batch_req_" + hashlib.sha256(f"{provider}\0{custom_id}".encode()).hexdigest()[:24]


def chat_completion(
    *,
    completion_id: str,
    model: str,
    created: int,
    choices: list[dict[str, Any]],
    usage: Mapping[str, int] | None,
) -> dict[str, Any]:
    """A chat completion object (https://platform.openai.com/docs/api-reference/chat/object); ``choices`` are
    ``{"index", "message": {"role": "assistant", "content", "tool_calls"?}, "finish_reason", "logprobs"}``."""
    out: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        prompt, completion = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
        out["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    return out


def choice(
    index: int, content: str | None, finish_reason: str, tool_calls: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """One choice of a chat completion."""
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"index": index, "message": message, "finish_reason": finish_reason, "logprobs": None}


def result_line(provider: str, custom_id: str, body: Mapping[str, Any], *, request_id: str = "") -> dict[str, Any]:
    """A result line of a request that succeeded (:data:`OUTPUT_DOC`)."""
    return {
        "id": line_id(provider, custom_id),
        "custom_id": custom_id,
        "response": {"status_code": 200, "request_id": request_id, "body": dict(body)},
        "error": None,
    }


def error_line(provider: str, custom_id: str, code: str, message: str) -> dict[str, Any]:
    """A result line of a request that failed: ``response`` null, ``error`` ``{"code", "message"}``
    (:data:`OUTPUT_DOC`)."""
    return {
        "id": line_id(provider, custom_id),
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }


def requests_converter(
    *,
    name: str,
    prepare: PrepareFn,
    checker: Callable[[], RecordChecker | None],
    description: str,
    package: str,
    provider: str,
    settings: tuple[str, ...] = (),
) -> Converter:
    """The :class:`~llmfiles.validate.convert.Converter` of OpenAI batch lines to a provider's batch input
    (``NAME-batch``): ``convert=NAME`` on ``batch`` uploads, ``checker`` the provider's batch rules, ``settings``
    those it reads."""
    from llmfiles.validate.convert import Converter

    return Converter(
        name=name,
        prepare=prepare,
        checker=checker,
        description=description,
        reads="OpenAI batch lines ({custom_id, method, url: /v1/chat/completions, body})",
        package=package,
        purposes=("batch",),
        provider=provider,
        settings=settings,
    )


def results_converter(
    *, name: str, prepare: PrepareFn, reads: str, package: str, provider: str, settings: tuple[str, ...] = ()
) -> Converter:
    """The :class:`~llmfiles.validate.convert.Converter` of a provider's batch results to OpenAI batch output
    lines (``openai-from-...``): checked by :class:`ResultChecker`, used by ``llmfiles convert`` only;
    ``settings`` are the provider's settings it reads."""
    from llmfiles.validate.convert import Converter

    return Converter(
        name=name,
        prepare=prepare,
        checker=ResultChecker,
        description="OpenAI batch output lines {id, custom_id, response: {status_code, request_id, body: "
        "chat.completion}, error}",
        reads=reads,
        package=package,
        purposes=(),
        provider=provider,
        settings=settings,
    )


class ResultChecker:
    """Checks the lines of an OpenAI batch output file (:data:`OUTPUT_DOC`): ``id`` and ``custom_id`` strings,
    exactly one of ``response`` (``status_code`` and a ``body`` object) and ``error`` (``code`` and ``message``);
    a ``custom_id`` seen twice is a warning (its results cannot be told apart)."""

    def __init__(self) -> None:
        self.ids = HashIndex(max_items=1 << 22)

    def start(self, facts: FileFacts) -> list[Problem]:
        """Nothing about the file as a whole."""
        return []

    def check(self, line_no: int, record: dict[str, Any]) -> Iterable[Problem]:
        """The problems of one result line."""
        out: list[Problem] = []
        for key in ("id", "custom_id"):
            if not isinstance(record.get(key), str) or not record[key]:
                out.append(_at(line_no, "bad_result", key, f"a result line has {key}, a non-empty string"))
        response, error = record.get("response"), record.get("error")
        if (response is None) == (error is None):
            out.append(_at(line_no, "bad_result", "response", "a result line has either a response or an error"))
        elif response is not None and not (
            isinstance(response, dict)
            and isinstance(response.get("status_code"), int)
            and isinstance(response.get("body"), dict)
        ):
            out.append(_at(line_no, "bad_result", "response", "response has status_code and a body object"))
        elif error is not None and not (isinstance(error, dict) and "code" in error and "message" in error):
            out.append(_at(line_no, "bad_result", "error", "error has code and message"))
        custom_id = record.get("custom_id")
        if isinstance(custom_id, str) and custom_id:
            earlier = self.ids.add(hash(custom_id), line_no)
            if earlier:
                message = f"custom_id {custom_id!r} is also the custom_id of line {earlier}"
                out.append(
                    Problem(
                        line=line_no, code="duplicate_custom_id", message=message, path="custom_id", severity="warning"
                    )
                )
        return out

    def finish(self) -> list[Problem]:
        """Nothing about the file as a whole."""
        return []


def _at(line_no: int, code: str, path: str, message: str) -> Problem:
    return Problem(line=line_no, code=code, message=f"{message} ({OUTPUT_DOC})", path=path)
