"""Azure OpenAI's content checks: OpenAI's rules (:mod:`llmfiles_openai.checks`) with Azure's limits and BOM.

Fine-tuning files follow OpenAI's formats; Microsoft asks for them in UTF-8 with a BOM, which llmfiles adds while
uploading (:mod:`llmfiles_azure.bom`), so the report notes whether the file has one instead of calling it a
problem.  Batch files use Azure's endpoint paths (``/chat/completions``, or ``/v1/...`` on the v1 API), name the
global batch deployment in ``body.model`` - the same on every line - and take up to 100,000 requests and 200 MB.

From "Customize a model with fine-tuning" (Azure OpenAI, https://learn.microsoft.com/azure/ai-foundry/openai/
how-to/fine-tuning: UTF-8 with a BOM, OpenAI's formats) and "Getting started with Azure OpenAI batch deployments"
(https://learn.microsoft.com/azure/ai-foundry/openai/how-to/batch: the endpoints, the deployment name in
``body.model``, 100,000 requests and 200 MB a file).
"""

from __future__ import annotations

from llmfiles.models import FileLimits, Problem
from llmfiles.validate.stats import FileFacts
from llmfiles_openai.checks import MB, BatchRules, FineTuneChecker

#: "Getting started with Azure OpenAI batch deployments" (global batch): 100,000 requests and 200 MB an input file
AZURE_BATCH_LIMITS = FileLimits(
    max_bytes=200 * MB,
    max_records=100_000,
    docs="https://learn.microsoft.com/azure/ai-foundry/openai/how-to/batch",
)

AZURE_BATCH = BatchRules.of(
    AZURE_BATCH_LIMITS,
    provider="Azure OpenAI",
    name="azure",
    endpoints=(
        "/chat/completions",
        "/embeddings",
        "/responses",
        "/v1/chat/completions",
        "/v1/embeddings",
        "/v1/responses",
    ),
    same_model="error",
    warn_bom=False,  # as before: Azure documents a BOM for fine-tuning files and says nothing of batch files
)

BOM_PRESENT = "the file starts with the UTF-8 BOM Azure OpenAI asks of fine-tuning files"
BOM_ADDED = (
    "the file has no UTF-8 BOM; Azure OpenAI asks for one on fine-tuning files: llmfiles sends it in front of "
    "the file when it uploads (the file on disk is not changed), other tools need it in the file"
)


class AzureFineTuneChecker(FineTuneChecker):
    """OpenAI's fine-tuning rules, named for Azure, with a note about the file's BOM (which Azure asks for)."""

    warn_bom = False

    def start(self, facts: FileFacts) -> list[Problem]:
        self.stats.note(BOM_PRESENT if facts.has_bom else BOM_ADDED)
        return super().start(facts)
