"""llmfiles-together: the Together AI provider for llmfiles.

Installing this distribution registers the provider ``together`` (entry point ``together`` in group ``llmfiles``):
``POST /files/upload`` for a file in one request, Together's multipart protocol (initiate, parts to presigned
URLs in parallel, complete) for large files, and Together's ``files check`` rules as a record checker
(:mod:`llmfiles_together.checks`).
"""

__version__ = "0.1.0"
