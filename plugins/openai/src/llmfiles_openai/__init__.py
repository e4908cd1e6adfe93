"""llmfiles-openai: the OpenAI provider for llmfiles (Files and Uploads APIs).

Installing this distribution is all it takes: its entry point ``openai`` in group ``llmfiles`` registers the
provider, and ``llmfiles.upload(..., provider="openai")`` works.  :mod:`llmfiles_openai.wire` holds the wire
format as pure functions, reused by ``llmfiles-azure`` and by any OpenAI-compatible in-house gateway plugin.
"""

__version__ = "0.1.0"
