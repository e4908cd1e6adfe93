"""llmfiles-anthropic: Anthropic's Files API as an llmfiles provider.

Installing this distribution is all it takes: its entry point ``anthropic`` in group ``llmfiles`` registers the
provider, and ``llmfiles.upload(..., provider="anthropic")`` works.  :mod:`llmfiles_anthropic.files` holds the wire
format.
"""

__version__ = "0.1.0"
