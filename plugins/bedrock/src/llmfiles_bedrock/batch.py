"""The ``bedrock-batch`` conversion: OpenAI batch lines to Bedrock batch-inference records.

A Bedrock batch-inference record is ``{"recordId": str, "modelInput": {...}}``, ``modelInput`` being the
``InvokeModel`` body of the job's model ("Format and upload your batch inference data",
https://docs.aws.amazon.com/bedrock/latest/userguide/batch-inference-data.html); the record id is documented as an
alphanumeric string (the example has 11 characters) and comes back with the result.  The body's shape is the model
family's, picked from the ``model`` setting (a model id, an inference profile such as ``us.anthropic...``, or an
ARN):

``anthropic`` (``anthropic.claude-*``)
    Anthropic's Messages API: ``anthropic_version`` ``bedrock-2023-05-31``, ``max_tokens`` (required), ``system``
    lifted out of the messages, content blocks, ``stop_sequences``, ``tools`` / ``tool_choice``
    (https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-anthropic-claude-messages-request-response.html).
``nova`` (``amazon.nova-*``)
    ``schemaVersion`` ``messages-v1``, ``system`` text blocks, ``messages`` of content blocks, ``inferenceConfig``
    (``maxTokens``, ``temperature``, ``topP``, ``stopSequences``), ``toolConfig``
    (https://docs.aws.amazon.com/nova/latest/userguide/complete-request-schema.html).
``llama`` (``meta.llama3*``, ``meta.llama4*``)
    ``prompt`` in Llama 3's chat template, ``max_gen_len``, ``temperature``, ``top_p``
    (https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-meta.html).
``titan`` (``amazon.titan-text-*``)
    ``inputText`` (``User: ...`` / ``Bot:`` turns), ``textGenerationConfig`` (``maxTokenCount``, ``temperature``,
    ``topP``, ``stopSequences``: only ``|`` and ``User:``)
    (https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-text.html).

Every body field a family cannot take is a problem at its line (:func:`llmfiles.validate.openai_batch.unmapped`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from llmfiles.errors import InvalidSetting, setting_advice
from llmfiles.models import Problem, Settings
from llmfiles.validate import openai_batch as ob
from llmfiles.validate.convert import ConvertFn
from llmfiles.validate.openai_batch import Block, Conversation

NAME = "bedrock-batch"
DATA_DOC = "https://docs.aws.amazon.com/bedrock/latest/userguide/batch-inference-data.html"
ANTHROPIC_VERSION = "bedrock-2023-05-31"
#: the model families and the model ids (after an inference profile's region prefix) that pick them
FAMILIES = {
    "anthropic": ("anthropic.claude-",),
    "nova": ("amazon.nova-",),
    "llama": ("meta.llama3", "meta.llama4"),
    "titan": ("amazon.titan-text-", "amazon.titan-tg1"),
}
_PROFILE = re.compile(r"^(?:us|eu|apac|us-gov|ca|jp|au|global)\.")
_RECORD_ID = re.compile(r"[A-Za-z0-9]+")
#: the body fields each family takes (the rest are reported)
_COMMON = ("messages", "model", "max_tokens", "max_completion_tokens", "temperature", "top_p")
HANDLED = {
    "anthropic": (*_COMMON, "stop", "tools", "tool_choice"),
    "nova": (*_COMMON, "stop", "tools", "tool_choice"),
    "llama": _COMMON,
    "titan": (*_COMMON, "stop"),
}
ADVICE = {
    "response_format": "ask for JSON in the prompt, or describe the schema as a tool and set tool_choice to it",
    "seed": "Bedrock's InvokeModel bodies have no seed: remove it",
    "logprobs": "Bedrock returns no log probabilities: remove it",
    "top_logprobs": "Bedrock returns no log probabilities: remove it",
    "n": "one answer per record: repeat the line with another custom_id for more",
}


def family_of(model: str) -> str | None:
    """The family of a Bedrock model id, inference profile id or ARN; ``None`` for one no family takes."""
    name = _PROFILE.sub("", model.strip().lower().rsplit("/", 1)[-1])
    return next((fam for fam, prefixes in FAMILIES.items() if name.startswith(prefixes)), None)


def prepare(settings: Settings) -> ConvertFn:
    """The conversion for the ``model`` setting's family; :class:`InvalidSetting` naming the families when there is
    no model or no family takes it."""
    model = settings.get("model")
    families = "; ".join(f"{fam}: {', '.join(p + '*' for p in prefixes)}" for fam, prefixes in FAMILIES.items())
    if not model:
        raise InvalidSetting(
            f"{NAME} writes the request body of the job's model, so it needs the model: "
            f"{setting_advice('model', 'anthropic.claude-3-5-haiku-20241022-v1:0', 'bedrock')} (families: {families})"
        )
    family = family_of(str(model))
    if family is None:
        raise InvalidSetting(
            f"model {model!r} ({settings.source('model')}) is of no family {NAME} can write; families: {families}"
        )
    build = BUILDERS[family]
    note = ob.ModelNote(NAME, "named when the job is created (create_model_invocation_job modelId)")

    def convert(record: dict[str, Any]) -> tuple[dict[str, Any] | None, list[Problem]]:
        request, out = ob.read_request(record, f"Bedrock {family}")
        if request is None:
            return None, out
        body = request.body
        out = [*note.see(body), *_record_id(request.custom_id)]
        out.extend(ob.unmapped(body, HANDLED[family], f"Bedrock {family}", ADVICE))
        conversation, problems = ob.read_messages(body["messages"])
        out.extend(problems)
        if conversation is None or any(p.severity == "error" for p in out):
            return None, out
        model_input = build(body, conversation, out)
        if model_input is None:
            return None, out
        return {"recordId": request.custom_id, "modelInput": model_input}, out

    return convert


def _record_id(custom_id: str) -> list[Problem]:
    if _RECORD_ID.fullmatch(custom_id):
        return []
    message = (
        f"custom_id {custom_id!r} becomes the recordId, which Bedrock documents as an alphanumeric string "
        f"({DATA_DOC}): a job may refuse it; use letters and digits only to be safe"
    )
    return [ob.problem("record_id_not_alphanumeric", "custom_id", message, severity="warning")]


def _refuse(out: list[Problem], path: str, message: str) -> None:
    out.append(ob.problem("cannot_convert", path, message))


# --- Anthropic -----------------------------------------------------------------------------------------------------


def anthropic_body(body: Mapping[str, Any], conv: Conversation, out: list[Problem]) -> dict[str, Any] | None:
    """The Anthropic Messages body of a request on Bedrock."""
    limit = ob.max_tokens(body)
    if limit is None:
        _refuse(out, "body.max_tokens", "Anthropic's Messages API needs max_tokens: add max_completion_tokens")
        return None
    result: dict[str, Any] = {"anthropic_version": ANTHROPIC_VERSION, "max_tokens": limit}
    if conv.system is not None:
        result["system"] = conv.system
    messages = [{"role": t.role, "content": [_anthropic_block(b, out) for b in t.blocks]} for t in conv.turns]
    result["messages"] = messages
    _copy(body, result, {"temperature": "temperature", "top_p": "top_p"})
    if body.get("stop") is not None:
        result["stop_sequences"] = ob.stops(body["stop"])
    if not _anthropic_tools(body, result, out):
        return None
    return None if any(p.severity == "error" for p in out) else result


def _anthropic_block(block: Block, out: list[Problem]) -> dict[str, Any]:
    if block.kind == "text":
        return {"type": "text", "text": block.text}
    if block.kind == "image" and block.data:
        return {"type": "image", "source": {"type": "base64", "media_type": block.mime, "data": block.data}}
    if block.kind == "tool_call":
        return {"type": "tool_use", "id": block.call_id, "name": block.name, "input": dict(block.arguments or {})}
    if block.kind == "tool_result":
        return {"type": "tool_result", "tool_use_id": block.call_id, "content": block.text}
    _refuse(out, "body.messages", f"{block.kind} parts cannot be sent to Claude on Bedrock (images: as data: URLs)")
    return {}


def _anthropic_tools(body: Mapping[str, Any], result: dict[str, Any], out: list[Problem]) -> bool:
    if body.get("tools"):
        tools, problems = ob.function_tools(body["tools"])
        out.extend(problems)
        if tools is None:
            return False
        result["tools"] = [
            {"name": t["name"], "description": t.get("description", ""), "input_schema": t.get("parameters", {})}
            for t in tools
        ]
    if body.get("tool_choice") is not None:
        choice = ob.tool_choice(body["tool_choice"])
        if choice is None:
            _refuse(out, "body.tool_choice", "tool_choice is auto, none, required or a function")
            return False
        mode, name = choice
        result["tool_choice"] = {"type": {"required": "any", "function": "tool"}.get(mode, mode)}
        if name:
            result["tool_choice"]["name"] = name
    return True


# --- Nova ----------------------------------------------------------------------------------------------------------


def nova_body(body: Mapping[str, Any], conv: Conversation, out: list[Problem]) -> dict[str, Any] | None:
    """The Nova ``messages-v1`` body of a request."""
    result: dict[str, Any] = {"schemaVersion": "messages-v1"}
    if conv.system is not None:
        result["system"] = [{"text": conv.system}]
    result["messages"] = [{"role": t.role, "content": [_nova_block(b, out) for b in t.blocks]} for t in conv.turns]
    config: dict[str, Any] = {}
    if ob.max_tokens(body) is not None:
        config["maxTokens"] = ob.max_tokens(body)
    _copy(body, config, {"temperature": "temperature", "top_p": "topP"})
    if body.get("stop") is not None:
        config["stopSequences"] = ob.stops(body["stop"])
    if config:
        result["inferenceConfig"] = config
    if body.get("tools"):
        tools, problems = ob.function_tools(body["tools"])
        out.extend(problems)
        if tools is None:
            return None
        specs = [{"toolSpec": {"name": t["name"], "description": t.get("description", ""),
                               "inputSchema": {"json": t.get("parameters", {})}}} for t in tools]  # fmt: skip
        result["toolConfig"] = {"tools": specs}
        choice = ob.tool_choice(body.get("tool_choice", "auto"))
        if choice is None or choice[0] == "none":
            _refuse(out, "body.tool_choice", "Nova's toolChoice is auto, any (required) or one tool, not none")
            return None
        mode, name = choice
        modes: dict[str, dict[str, Any]] = {"auto": {"auto": {}}, "required": {"any": {}}}
        chosen = modes.get(mode, {"tool": {"name": name}})
        result["toolConfig"]["toolChoice"] = chosen
    return None if any(p.severity == "error" for p in out) else result


def _nova_block(block: Block, out: list[Problem]) -> dict[str, Any]:
    if block.kind == "text":
        return {"text": block.text}
    if block.kind == "image" and block.data and block.mime.startswith("image/"):
        return {"image": {"format": block.mime.split("/", 1)[1], "source": {"bytes": block.data}}}
    if block.kind == "tool_call":
        return {"toolUse": {"toolUseId": block.call_id, "name": block.name, "input": dict(block.arguments or {})}}
    if block.kind == "tool_result":
        return {"toolResult": {"toolUseId": block.call_id, "content": [{"text": block.text}]}}
    _refuse(out, "body.messages", f"{block.kind} parts cannot be sent to Nova (images: as data: URLs)")
    return {}


# --- Llama and Titan: one prompt -----------------------------------------------------------------------------------


def _texts(conv: Conversation, family: str, out: list[Problem]) -> list[tuple[str, str]] | None:
    turns: list[tuple[str, str]] = []
    for turn in conv.turns:
        if any(b.kind != "text" for b in turn.blocks):
            kinds = sorted({b.kind for b in turn.blocks if b.kind != "text"})
            _refuse(out, "body.messages", f"{family} on Bedrock takes text only, not {', '.join(kinds)} parts")
            return None
        turns.append((turn.role, "".join(b.text for b in turn.blocks)))
    return turns


def llama_body(body: Mapping[str, Any], conv: Conversation, out: list[Problem]) -> dict[str, Any] | None:
    """The Meta Llama body: the conversation in Llama 3's chat template, ending with the assistant's header."""
    turns = _texts(conv, "Llama", out)
    if turns is None:
        return None
    head = "<|start_header_id|>{}<|end_header_id|>\n\n"
    prompt = "<|begin_of_text|>"
    if conv.system is not None:
        prompt += head.format("system") + conv.system + "<|eot_id|>"
    for role, text in turns:
        prompt += head.format(role) + text + "<|eot_id|>"
    result: dict[str, Any] = {"prompt": prompt + head.format("assistant")}
    if ob.max_tokens(body) is not None:
        result["max_gen_len"] = ob.max_tokens(body)
    _copy(body, result, {"temperature": "temperature", "top_p": "top_p"})
    return result


def titan_body(body: Mapping[str, Any], conv: Conversation, out: list[Problem]) -> dict[str, Any] | None:
    """The Titan Text body: ``User:`` / ``Bot:`` turns ending with ``Bot:``, the system text first."""
    turns = _texts(conv, "Titan Text", out)
    if turns is None:
        return None
    lines = [conv.system] if conv.system is not None else []
    lines += [f"{'User' if role == 'user' else 'Bot'}: {text}" for role, text in turns]
    config: dict[str, Any] = {}
    if ob.max_tokens(body) is not None:
        config["maxTokenCount"] = ob.max_tokens(body)
    _copy(body, config, {"temperature": "temperature", "top_p": "topP"})
    stop = ob.stops(body.get("stop"))
    if any(s not in ("|", "User:") for s in stop):
        _refuse(out, "body.stop", "Titan Text takes only '|' and 'User:' as stop sequences")
        return None
    if stop:
        config["stopSequences"] = stop
    result: dict[str, Any] = {"inputText": "\n".join([*lines, "Bot:"])}
    if config:
        result["textGenerationConfig"] = config
    return result


def _copy(body: Mapping[str, Any], into: dict[str, Any], names: Mapping[str, str]) -> None:
    for src, dst in names.items():
        if body.get(src) is not None:
            into[dst] = body[src]


Builder = Callable[[Mapping[str, Any], Conversation, list[Problem]], "dict[str, Any] | None"]
BUILDERS: dict[str, Builder] = {
    "anthropic": anthropic_body,
    "nova": nova_body,
    "llama": llama_body,
    "titan": titan_body,
}
