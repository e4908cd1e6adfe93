"""The Gemini Batch API conversions: ``gemini-batch`` (OpenAI batch lines to ``{"key", "request"}`` lines) and
``openai-from-gemini`` (the batch's results back to OpenAI batch output lines).

Input: "Each line in this file must be a JSON object containing a user-defined key and a request object, where the
request is a valid GenerateContentRequest object" (https://ai.google.dev/gemini-api/docs/batch-api#input-file); the
``custom_id`` is the key, and the model is named when the batch is created (``models/{model}:batchGenerateContent``,
https://ai.google.dev/api/batch-api).  Output: a JSONL file "where each line is either a GenerateContentResponse or
a status object" next to the request's key (https://ai.google.dev/gemini-api/docs/batch-api#retrieving-results):
``{"key", "response": GenerateContentResponse}`` or ``{"key", "error": Status}``.
"""

from __future__ import annotations

import mimetypes
from typing import Any

from llmfiles.models import Problem, Settings
from llmfiles.validate import openai_batch as ob
from llmfiles.validate.convert import ConvertFn
from llmfiles.validate.openai_batch import Block
from llmfiles_gemini import chat

TO_BATCH = "gemini-batch"
FROM_RESULTS = "openai-from-gemini"
PROVIDER = "gemini"
RESULTS_DOC = "https://ai.google.dev/gemini-api/docs/batch-api#retrieving-results"
#: the URIs of files uploaded to the Gemini API (what a fileData part may name)
FILES_API = "https://generativelanguage.googleapis.com/"


def media_part(block: Block, where: str, out: list[Problem]) -> dict[str, Any] | None:
    """An image or audio block as a Gemini API part: ``data:`` URLs inline, files of the Gemini Files API by URI."""
    inline = chat.inline_part(block)
    if inline is not None:
        return inline
    mime = mimetypes.guess_type(block.url)[0]
    if block.url.startswith(FILES_API) and mime:
        return {"fileData": {"mimeType": mime, "fileUri": block.url}}
    out.append(
        ob.problem(
            "cannot_convert",
            where,
            f"the {block.kind} {block.url[:80]!r} cannot be given to the Gemini API: inline it as a data: URL, or "
            "upload it (llmfiles upload FILE --provider gemini --purpose user_data) and use the file's URI",
        )
    )
    return None


def prepare_batch(settings: Settings) -> ConvertFn:
    """The ``gemini-batch`` conversion of one OpenAI batch line."""
    note = ob.ModelNote(TO_BATCH, "named when the batch is created (models/MODEL:batchGenerateContent)")

    def convert(record: dict[str, Any]) -> tuple[dict[str, Any] | None, list[Problem]]:
        key, converted, out = chat.convert_line(record, "the Gemini API", note, media_part, lambda custom_id: [])
        return ({"key": key, "request": converted} if converted is not None else None), out

    return convert


def prepare_results(settings: Settings) -> ConvertFn:
    """The ``openai-from-gemini`` conversion of one result line."""

    def convert(record: dict[str, Any]) -> tuple[dict[str, Any] | None, list[Problem]]:
        key = record.get("key")
        if not isinstance(key, str) or not key:
            message = f"a Gemini batch result has the request's key ({RESULTS_DOC}); this one has none"
            return None, [ob.problem("bad_result", "key", message)]
        error = record.get("error", record.get("status"))
        if isinstance(error, dict):
            return ob.error_line(PROVIDER, key, chat.error_code(error), str(error.get("message", ""))), []
        response = record.get("response")
        if not isinstance(response, dict):
            message = f"a Gemini batch result has a response or an error ({RESULTS_DOC})"
            return None, [ob.problem("bad_result", "response", message)]
        body = chat.completion(response, key, "gemini")
        return ob.result_line(PROVIDER, key, body, request_id=str(response.get("responseId") or "")), []

    return convert
