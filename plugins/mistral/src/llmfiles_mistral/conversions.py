"""The Mistral batch conversions: ``mistral-batch`` (OpenAI batch lines to Mistral's ``{"custom_id", "body"}``
lines) and ``openai-from-mistral`` (Mistral's batch results back to OpenAI batch output lines).

Input ("Batch Processing", https://docs.mistral.ai/studio/batch-processing): each line has "a unique custom_id" and
"a body object with the raw request you would have when calling the original endpoint"; the endpoint is chosen when
the job is created and "the model field inside body is optional when you specify the model at job creation time".
The body is Mistral's chat completion request
(https://docs.mistral.ai/api/#tag/chat/operation/chat_completion_v1_chat_completions_post): OpenAI's names, but
``random_seed`` for ``seed``, ``max_tokens`` only, no ``developer`` role, no log probabilities.  Output: lines of
``{"id", "custom_id", "response": {"status_code", "body"}, "error"}``, which are OpenAI's already but for the
``request_id`` and the error's shape: :func:`prepare_results` fills those in.
"""

from __future__ import annotations

from typing import Any

from llmfiles.models import Problem, Settings
from llmfiles.validate import openai_batch as ob
from llmfiles.validate.convert import ConvertFn

TO_BATCH = "mistral-batch"
FROM_RESULTS = "openai-from-mistral"
PROVIDER = "mistral"
CHAT_DOC = "https://docs.mistral.ai/api/#tag/chat/operation/chat_completion_v1_chat_completions_post"
#: body fields Mistral takes by the same name
SAME = (
    "messages",
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "response_format",
    "tools",
    "tool_choice",
    "presence_penalty",
    "frequency_penalty",
    "n",
    "parallel_tool_calls",
    "prediction",
    "safe_prompt",
)
ADVICE = {
    "logprobs": "Mistral returns no log probabilities: remove it",
    "top_logprobs": "Mistral returns no log probabilities: remove it",
    "logit_bias": "Mistral has no logit bias: remove it",
    "reasoning_effort": "remove it (Mistral's reasoning models need no setting)",
}


def prepare_batch(settings: Settings) -> ConvertFn:
    """The ``mistral-batch`` conversion of one OpenAI batch line."""

    note = ob.ModelNote(TO_BATCH, "named when the job is created (client.batch.jobs.create(model=...))")

    def convert(record: dict[str, Any]) -> tuple[dict[str, Any] | None, list[Problem]]:
        request, out = ob.read_request(record, "Mistral")
        if request is None:
            return None, out
        body = request.body
        handled = (*SAME, "model", "seed", "max_completion_tokens", "stream")
        out = [*note.see(body), *ob.unmapped(body, handled, "Mistral", ADVICE)]
        if body.get("stream") is True:
            out.append(ob.problem("unsupported_field", "body.stream", "a batch request cannot stream: remove stream"))
        if any(p.severity == "error" for p in out):
            return None, out
        converted: dict[str, Any] = {k: body[k] for k in SAME if body.get(k) is not None}
        converted["messages"] = [_message(m) for m in body["messages"]]
        if ob.max_tokens(body) is not None:
            converted["max_tokens"] = ob.max_tokens(body)
        if body.get("seed") is not None:
            converted["random_seed"] = body["seed"]
        return {"custom_id": request.custom_id, "body": converted}, out

    return convert


def _message(message: Any) -> Any:
    """A message as Mistral takes it: ``developer`` is ``system``; a message without content gets an empty one."""
    if not isinstance(message, dict):
        return message
    out = dict(message)
    if out.get("role") == "developer":
        out["role"] = "system"
    out.setdefault("content", "")
    return out


def prepare_results(settings: Settings) -> ConvertFn:
    """The ``openai-from-mistral`` conversion of one result line."""

    def convert(record: dict[str, Any]) -> tuple[dict[str, Any] | None, list[Problem]]:
        custom_id = record.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            return None, [ob.problem("bad_result", "custom_id", "a Mistral batch result has the request's custom_id")]
        error = record.get("error")
        response = record.get("response")
        body = response.get("body") if isinstance(response, dict) else None
        if error or not isinstance(body, dict):
            code, message = _error(error, response)
            return ob.error_line(PROVIDER, custom_id, code, message), []
        assert isinstance(response, dict)
        status = response.get("status_code", 200)
        if isinstance(status, int) and status >= 400:
            return ob.error_line(PROVIDER, custom_id, str(status), str(body.get("message", body))), []
        line = ob.result_line(PROVIDER, custom_id, body, request_id=str(response.get("request_id") or ""))
        if isinstance(record.get("id"), str):
            line["id"] = record["id"]
        return line, []

    return convert


def _error(error: Any, response: Any) -> tuple[str, str]:
    if isinstance(error, dict):
        return str(error.get("code") or error.get("type") or "error"), str(error.get("message", ""))
    if error:
        return "error", str(error)
    return "no_response", f"the result has no response body: {str(response)[:200]}"
