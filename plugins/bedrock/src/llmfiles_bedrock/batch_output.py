"""The ``openai-from-bedrock`` conversion: Bedrock batch-inference results to OpenAI batch output lines.

Bedrock writes one ``.jsonl.out`` file per input file, each line ``{"recordId", "modelInput", "modelOutput"}``, or
``{"recordId", "modelInput", "error": {"errorCode", "errorMessage"}}`` where the model failed ("View the results of
a batch inference job", https://docs.aws.amazon.com/bedrock/latest/userguide/batch-inference-results.html).
``modelOutput`` is the model's ``InvokeModel`` response body; its family is told by its shape:

- Anthropic Messages (``content`` blocks, ``stop_reason``, ``usage.input_tokens``),
  https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-anthropic-claude-messages-request-response.html
- Nova (``output.message``, ``stopReason``, ``usage.inputTokens``),
  https://docs.aws.amazon.com/nova/latest/userguide/complete-request-schema.html
- Llama (``generation``, ``stop_reason``, ``prompt_token_count``),
  https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-meta.html
- Titan Text (``results[].outputText``, ``completionReason``, ``inputTextTokenCount``),
  https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-text.html

Each becomes ``{"id", "custom_id": recordId, "response": {"status_code": 200, "body": <chat.completion>}, "error":
null}``, or the error shape with the Bedrock error code and message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from llmfiles.models import Problem, Settings
from llmfiles.validate import openai_batch as ob
from llmfiles.validate.convert import ConvertFn

NAME = "openai-from-bedrock"
PROVIDER = "bedrock"
RESULTS_DOC = "https://docs.aws.amazon.com/bedrock/latest/userguide/batch-inference-results.html"
#: stop reasons of each family as OpenAI's finish_reason
FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "stop": "stop",
    "max_tokens": "length",
    "length": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
    "FINISH": "stop",
    "STOP_CRITERIA_MET": "stop",
    "LENGTH": "length",
    "CONTENT_FILTERED": "content_filter",
}


def prepare(settings: Settings) -> ConvertFn:
    """The conversion; the ``model`` setting, when given, names the model in results whose output does not."""
    model = str(settings.get("model") or "bedrock")

    def convert(record: dict[str, Any]) -> tuple[dict[str, Any] | None, list[Problem]]:
        record_id = record.get("recordId")
        if not isinstance(record_id, str) or not record_id:
            return None, [ob.problem("bad_result", "recordId", f"a Bedrock result has a recordId ({RESULTS_DOC})")]
        error = record.get("error")
        if isinstance(error, dict):
            code = str(error.get("errorCode", "error"))
            return ob.error_line(PROVIDER, record_id, code, str(error.get("errorMessage", ""))), []
        output = record.get("modelOutput")
        if not isinstance(output, dict):
            message = f"a Bedrock result has modelOutput or error ({RESULTS_DOC})"
            return None, [ob.problem("bad_result", "modelOutput", message)]
        body = completion(output, record_id, model)
        if body is None:
            message = "modelOutput is of no model family llmfiles reads (Anthropic, Nova, Llama, Titan Text)"
            return None, [ob.problem("unknown_output", "modelOutput", message)]
        return ob.result_line(PROVIDER, record_id, body), []

    return convert


def completion(output: Mapping[str, Any], record_id: str, model: str) -> dict[str, Any] | None:
    """The chat completion of one ``modelOutput``, ``None`` for a shape of no known family."""
    if isinstance(output.get("content"), list):  # Anthropic Messages
        text, calls = _anthropic_content(output["content"])
        usage = output.get("usage") or {}
        tokens = {"prompt_tokens": usage.get("input_tokens", 0), "completion_tokens": usage.get("output_tokens", 0)}
        choice = ob.choice(0, text, _finish(output.get("stop_reason")), calls)
        return _completion(str(output.get("id") or record_id), str(output.get("model") or model), [choice], tokens)
    if isinstance(output.get("output"), dict):  # Nova
        message = output["output"].get("message") or {}
        text, calls = _nova_content(message.get("content") or [])
        usage = output.get("usage") or {}
        tokens = {"prompt_tokens": usage.get("inputTokens", 0), "completion_tokens": usage.get("outputTokens", 0)}
        return _completion(record_id, model, [ob.choice(0, text, _finish(output.get("stopReason")), calls)], tokens)
    if "generation" in output:  # Llama
        tokens = {
            "prompt_tokens": output.get("prompt_token_count") or 0,
            "completion_tokens": output.get("generation_token_count") or 0,
        }
        choice = ob.choice(0, str(output["generation"]), _finish(output.get("stop_reason")))
        return _completion(record_id, model, [choice], tokens)
    if isinstance(output.get("results"), list):  # Titan Text
        results = [r for r in output["results"] if isinstance(r, dict)]
        choices = [
            ob.choice(i, str(r.get("outputText", "")), _finish(r.get("completionReason")))
            for i, r in enumerate(results)
        ]
        tokens = {
            "prompt_tokens": output.get("inputTextTokenCount") or 0,
            "completion_tokens": sum(int(r.get("tokenCount") or 0) for r in results),
        }
        return _completion(record_id, model, choices, tokens)
    return None


def _completion(cid: str, model: str, choices: list[dict[str, Any]], usage: Mapping[str, int]) -> dict[str, Any]:
    return ob.chat_completion(completion_id=cid, model=model, created=0, choices=choices, usage=usage)


def _finish(reason: Any) -> str:
    return FINISH.get(str(reason), "stop")


def _call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    return {"id": str(call_id), "type": "function", "function": {"name": str(name), "arguments": json.dumps(arguments)}}


def _anthropic_content(blocks: list[Any]) -> tuple[str | None, list[dict[str, Any]]]:
    texts = [str(b.get("text", "")) for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
    calls = [
        _call(b.get("id"), b.get("name"), b.get("input", {}))
        for b in blocks
        if isinstance(b, dict) and b.get("type") == "tool_use"
    ]
    return ("".join(texts) if texts else None), calls


def _nova_content(blocks: list[Any]) -> tuple[str | None, list[dict[str, Any]]]:
    texts = [str(b["text"]) for b in blocks if isinstance(b, dict) and "text" in b]
    uses = [b["toolUse"] for b in blocks if isinstance(b, dict) and isinstance(b.get("toolUse"), dict)]
    calls = [_call(u.get("toolUseId"), u.get("name"), u.get("input", {})) for u in uses]
    return ("".join(texts) if texts else None), calls
