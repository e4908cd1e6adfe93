"""The Vertex AI batch conversions: ``vertex-batch`` (OpenAI batch lines to Gemini batch prediction records) and
``openai-from-vertex`` (the prediction output back to OpenAI batch output lines).

Input: "Each line in the batch input data is a request to the model, following the same format for Gemini API":
``{"request": GenerateContentRequest}`` ("Batch prediction from Cloud Storage",
https://cloud.google.com/vertex-ai/generative-ai/docs/multimodal/batch-prediction-from-cloud-storage); the model is
named when the job is created.  The request objects are llmfiles-gemini's (:mod:`llmfiles_gemini.chat`); images are
``gs://`` URIs (``fileData``) or ``data:`` URLs (``inlineData``).

The ``custom_id`` rides in the request's ``labels`` (``{"custom_id": ...}``), the user-defined metadata of a Vertex
``GenerateContentRequest`` ("Add labels to API calls",
https://cloud.google.com/vertex-ai/generative-ai/docs/multimodal/add-labels-to-api-calls), because each output line
repeats the request it answers: ``{"status", "processed_time", "request", "response"}`` (same page as the input,
"Retrieve batch output").  Label values are at most 63 characters of lowercase letters, digits, ``_`` and ``-``
("Requirements for labels", https://cloud.google.com/resource-manager/docs/labels-overview#requirements): other ids
are reported at their line.
"""

from __future__ import annotations

import mimetypes
import re
from typing import Any

from llmfiles.models import Problem, Settings
from llmfiles.provider import rfc3339_seconds
from llmfiles.validate import openai_batch as ob
from llmfiles.validate.convert import ConvertFn
from llmfiles.validate.openai_batch import Block
from llmfiles_gemini import chat

TO_BATCH = "vertex-batch"
FROM_RESULTS = "openai-from-vertex"
PROVIDER = "vertex_ai"
LABEL = "custom_id"
LABELS_DOC = "https://cloud.google.com/resource-manager/docs/labels-overview#requirements"
OUTPUT_DOC = "https://cloud.google.com/vertex-ai/generative-ai/docs/multimodal/batch-prediction-from-cloud-storage"
_LABEL_VALUE = re.compile(r"[\w-]{0,63}")


def media_part(block: Block, where: str, out: list[Problem]) -> dict[str, Any] | None:
    """An image or audio block as a Vertex part: ``data:`` URLs inline, ``gs://`` objects by URI."""
    inline = chat.inline_part(block)
    if inline is not None:
        return inline
    mime = mimetypes.guess_type(block.url)[0]
    if block.url.startswith("gs://") and mime:
        return {"fileData": {"mimeType": mime, "fileUri": block.url}}
    message = (
        f"the {block.kind} {block.url[:80]!r} cannot be given to Vertex AI: put it in Cloud Storage and use its gs:// "
        "URI (with a file extension that tells its type), or inline it as a data: URL"
    )
    out.append(ob.problem("cannot_convert", where, message))
    return None


def _label(custom_id: str) -> list[Problem]:
    if _LABEL_VALUE.fullmatch(custom_id) and custom_id == custom_id.lower():
        return []
    message = (
        f"custom_id {custom_id!r} cannot be a Vertex label value (at most 63 lowercase letters, digits, _ and -; "
        f"{LABELS_DOC}), which is how it comes back with the result: rename it"
    )
    return [ob.problem("bad_custom_id", "custom_id", message)]


def prepare_batch(settings: Settings) -> ConvertFn:
    """The ``vertex-batch`` conversion of one OpenAI batch line."""
    note = ob.ModelNote(TO_BATCH, "named when the job is created (batchPredictionJobs.create model)")

    def convert(record: dict[str, Any]) -> tuple[dict[str, Any] | None, list[Problem]]:
        custom_id, converted, out = chat.convert_line(record, "Vertex AI Gemini", note, media_part, _label)
        if converted is None:
            return None, out
        return {"request": {**converted, "labels": {LABEL: custom_id}}}, out

    return convert


def prepare_results(settings: Settings) -> ConvertFn:
    """The ``openai-from-vertex`` conversion of one prediction output line."""

    def convert(record: dict[str, Any]) -> tuple[dict[str, Any] | None, list[Problem]]:
        request = record.get("request")
        labels = request.get("labels") if isinstance(request, dict) else None
        custom_id = labels.get(LABEL) if isinstance(labels, dict) else None
        if not isinstance(custom_id, str) or not custom_id:
            message = (
                f"the output line's request has no labels.{LABEL}: its input was not made by {TO_BATCH}, so the "
                f"result cannot be matched to a custom_id ({OUTPUT_DOC})"
            )
            return None, [ob.problem("no_custom_id", "request.labels", message)]
        status = record.get("status")
        response = record.get("response")
        if status or not isinstance(response, dict):
            message = str(status) if status else "the output line has no response"
            return ob.error_line(PROVIDER, custom_id, "vertex_error", message), []
        body = chat.completion(response, custom_id, "gemini", rfc3339_seconds(record.get("processed_time")) or 0)
        return ob.result_line(PROVIDER, custom_id, body, request_id=str(response.get("responseId") or "")), []

    return convert
