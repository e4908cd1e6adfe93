"""OpenAI chat requests as Gemini ``GenerateContentRequest`` objects, and Gemini ``GenerateContentResponse`` objects as
chat completions: what the ``gemini-batch`` and ``openai-from-gemini`` conversions (and llmfiles-vertex's
``vertex-batch`` and ``openai-from-vertex``, Vertex AI's Gemini taking the same objects) are made of.

The request (https://ai.google.dev/api/generate-content#request-body): ``contents`` of ``user`` / ``model`` turns
made of parts (https://ai.google.dev/api/caching#Part), ``systemInstruction``, ``tools`` with
``functionDeclarations`` and ``toolConfig.functionCallingConfig`` (https://ai.google.dev/api/caching#Tool,
https://ai.google.dev/api/caching#FunctionCallingConfig), ``generationConfig``
(https://ai.google.dev/api/generate-content#generationconfig): ``maxOutputTokens``, ``temperature``, ``topP``,
``stopSequences``, ``seed``, ``candidateCount``, ``presencePenalty``, ``frequencyPenalty``, ``responseLogprobs``,
``logprobs``, ``responseMimeType`` and ``responseJsonSchema``.  The response
(https://ai.google.dev/api/generate-content#generatecontentresponse): ``candidates`` with ``content``,
``finishReason`` (https://ai.google.dev/api/generate-content#FinishReason), ``usageMetadata``, ``modelVersion``,
``responseId``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from llmfiles.models import Problem
from llmfiles.validate import openai_batch as ob
from llmfiles.validate.openai_batch import Block, Conversation

#: the body fields a GenerateContentRequest takes (the rest are reported)
HANDLED = (
    "messages",
    "model",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "response_format",
    "tools",
    "tool_choice",
)
ADVICE = {
    "logit_bias": "Gemini has no logit bias: remove it",
    "reasoning_effort": "Gemini's thinking is set in generationConfig.thinkingConfig: remove it and set that",
    "parallel_tool_calls": "Gemini decides how many functions to call: remove it",
    "modalities": "remove it (Gemini answers in text unless generationConfig.responseModalities says otherwise)",
}
#: generationConfig fields taken as they are, by OpenAI name
_GENERATION = {
    "temperature": "temperature",
    "top_p": "topP",
    "seed": "seed",
    "n": "candidateCount",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "logprobs": "responseLogprobs",
    "top_logprobs": "logprobs",
}
#: Gemini's finishReason as OpenAI's finish_reason
FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
#: how a target turns an image or audio block into a part (``None``: it cannot, and has said why in ``out``)
MediaPart = Callable[[Block, str, list[Problem]], "dict[str, Any] | None"]


def inline_part(block: Block) -> dict[str, Any] | None:
    """The ``inlineData`` part of a block with base64 data (a ``data:`` URL, input audio), else ``None``."""
    if block.data and block.mime:
        return {"inlineData": {"mimeType": block.mime, "data": block.data}}
    return None


def generate_content(
    body: Mapping[str, Any], conv: Conversation, media: MediaPart, out: list[Problem]
) -> dict[str, Any] | None:
    """The GenerateContentRequest of a chat completions body (``None`` when a part cannot be converted: the
    problems are in ``out``)."""
    contents = []
    for i, turn in enumerate(conv.turns):
        parts = [_part(block, f"body.messages (turn {i})", media, out) for block in turn.blocks]
        contents.append({"role": "model" if turn.role == "assistant" else "user", "parts": parts})
    request: dict[str, Any] = {"contents": contents}
    if conv.system is not None:
        request["systemInstruction"] = {"parts": [{"text": conv.system}]}
    config = _generation_config(body, out)
    if config:
        request["generationConfig"] = config
    _tools(body, request, out)
    return None if any(p.severity == "error" for p in out) else request


def _part(block: Block, where: str, media: MediaPart, out: list[Problem]) -> dict[str, Any]:
    if block.kind == "text":
        return {"text": block.text}
    if block.kind == "tool_call":
        return {"functionCall": {"name": block.name, "args": dict(block.arguments or {})}}
    if block.kind == "tool_result":
        try:
            value = json.loads(block.text)
        except ValueError:
            value = None
        response = value if isinstance(value, dict) else {"content": block.text}
        return {"functionResponse": {"name": block.name, "response": response}}
    return media(block, where, out) or {}


def _generation_config(body: Mapping[str, Any], out: list[Problem]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if ob.max_tokens(body) is not None:
        config["maxOutputTokens"] = ob.max_tokens(body)
    for src, dst in _GENERATION.items():
        if body.get(src) is not None:
            config[dst] = body[src]
    if body.get("stop") is not None:
        config["stopSequences"] = ob.stops(body["stop"])
    fmt = body.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_object":
        config["responseMimeType"] = "application/json"
    elif kind == "json_schema":
        schema = fmt.get("json_schema") if isinstance(fmt, dict) else None
        if not isinstance(schema, dict) or not isinstance(schema.get("schema"), dict):
            out.append(ob.problem("cannot_convert", "body.response_format", "json_schema needs a schema object"))
        else:
            config["responseMimeType"] = "application/json"
            config["responseJsonSchema"] = schema["schema"]
    elif fmt is not None and kind != "text":
        out.append(
            ob.problem("cannot_convert", "body.response_format", "response_format is text, json_object or json_schema")
        )
    return config


def _tools(body: Mapping[str, Any], request: dict[str, Any], out: list[Problem]) -> None:
    if body.get("tools"):
        tools, problems = ob.function_tools(body["tools"])
        out.extend(problems)
        if tools is not None:
            request["tools"] = [{"functionDeclarations": tools}]
    if body.get("tool_choice") is None:
        return
    choice = ob.tool_choice(body["tool_choice"])
    if choice is None:
        out.append(
            ob.problem("cannot_convert", "body.tool_choice", "tool_choice is auto, none, required or a function")
        )
        return
    mode, name = choice
    config: dict[str, Any] = {"mode": {"auto": "AUTO", "none": "NONE"}.get(mode, "ANY")}
    if name:
        config["allowedFunctionNames"] = [name]
    request["toolConfig"] = {"functionCallingConfig": config}


def convert_line(
    record: dict[str, Any], target: str, note: ob.ModelNote, media: MediaPart, id_rules: Callable[[str], list[Problem]]
) -> tuple[str, dict[str, Any] | None, list[Problem]]:
    """An OpenAI batch line as ``(custom_id, GenerateContentRequest or None, problems)`` for ``target`` (its name
    in messages): the line read, the model noted, the fields Gemini lacks reported, ``id_rules`` applied to the
    custom_id, the messages and the body converted."""
    request, out = ob.read_request(record, target)
    if request is None:
        return "", None, out
    out = [*note.see(request.body), *id_rules(request.custom_id)]
    out.extend(ob.unmapped(request.body, HANDLED, target, ADVICE))
    conversation, problems = ob.read_messages(request.body["messages"])
    out.extend(problems)
    if conversation is None or any(p.severity == "error" for p in out):
        return request.custom_id, None, out
    return request.custom_id, generate_content(request.body, conversation, media, out), out


# --- results -------------------------------------------------------------------------------------------------------


def completion(response: Mapping[str, Any], custom_id: str, model: str, created: int = 0) -> dict[str, Any]:
    """The chat completion of a GenerateContentResponse (a prompt blocked before any candidate: one choice with no
    content and ``finish_reason`` ``content_filter``)."""
    candidates = [c for c in response.get("candidates") or [] if isinstance(c, dict)]
    choices = [_choice(i, c) for i, c in enumerate(candidates)] or [ob.choice(0, None, "content_filter")]
    usage = response.get("usageMetadata") or {}
    completion_tokens = int(usage.get("candidatesTokenCount") or 0) + int(usage.get("thoughtsTokenCount") or 0)
    tokens = {"prompt_tokens": int(usage.get("promptTokenCount") or 0), "completion_tokens": completion_tokens}
    return ob.chat_completion(
        completion_id=str(response.get("responseId") or custom_id),
        model=str(response.get("modelVersion") or model),
        created=created,
        choices=choices,
        usage=tokens,
    )


def _choice(index: int, candidate: Mapping[str, Any]) -> dict[str, Any]:
    parts = [p for p in (candidate.get("content") or {}).get("parts") or [] if isinstance(p, dict)]
    texts = [str(p["text"]) for p in parts if "text" in p and not p.get("thought")]
    calls = [
        {
            "id": f"call_{index}_{j}",
            "type": "function",
            "function": {
                "name": str(p["functionCall"].get("name")),
                "arguments": json.dumps(p["functionCall"].get("args", {})),
            },
        }
        for j, p in enumerate(parts)
        if isinstance(p.get("functionCall"), dict)
    ]
    finish = "tool_calls" if calls else FINISH.get(str(candidate.get("finishReason")), "stop")
    return ob.choice(int(candidate.get("index", index)), "".join(texts) if texts else None, finish, calls)


def error_code(error: Mapping[str, Any]) -> str:
    """The code of a ``google.rpc.Status`` (https://ai.google.dev/api/files#Status) for an OpenAI error line: its
    status name (``INVALID_ARGUMENT``) when it has one, else its number."""
    return str(error.get("status") or error.get("code") or "error")
