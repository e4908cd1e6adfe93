"""llmfiles-mistral: Mistral's Files API as an llmfiles provider.

Installing this distribution is all it takes: its entry point ``mistral`` in group ``llmfiles`` registers the
provider, and ``llmfiles.upload(..., provider="mistral")`` works.  :mod:`llmfiles_mistral.files` holds the wire
format, :mod:`llmfiles_mistral.checks` Mistral's fine-tuning and batch rules.
"""

__version__ = "0.1.0"
