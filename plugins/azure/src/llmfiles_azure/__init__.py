"""llmfiles-azure: the Azure OpenAI provider for llmfiles (Files and Uploads APIs).

Installing this distribution is all it takes: its entry point ``azure`` in group ``llmfiles`` registers the
provider, and ``llmfiles.upload(..., provider="azure")`` works.  The wire format is ``llmfiles-openai``'s
(:mod:`llmfiles_openai.wire`); this package adds what Azure does differently: ``/openai`` paths and the
``api-version`` query, the ``api-key`` header or Entra ID tokens (:mod:`llmfiles_azure.auth`), Azure's purposes,
statuses and error bodies, and the UTF-8 BOM Azure wants on fine-tuning files (:mod:`llmfiles_azure.bom`).
Importing it does not import ``azure.identity``: that happens only when Entra ID is used.
"""

__version__ = "0.1.0"
