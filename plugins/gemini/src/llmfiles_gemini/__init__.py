"""llmfiles-gemini: the Gemini API (Developer API) provider for llmfiles.

Installing this distribution is all it takes: its entry point ``gemini`` in group ``llmfiles`` registers the provider,
and ``llmfiles.upload(..., provider="gemini")`` works.  :mod:`llmfiles_gemini.files` holds the Files API's wire format
(one-request and resumable uploads), :mod:`llmfiles_gemini.batch` the Batch API's input rules.
"""

__version__ = "0.1.0"
