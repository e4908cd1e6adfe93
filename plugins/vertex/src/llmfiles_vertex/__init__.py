"""llmfiles-vertex: the ``vertex_ai`` provider for llmfiles (Vertex AI training and batch files in Cloud Storage).

Import nothing from here to use it: installing the distribution registers the provider through its entry point
(group ``llmfiles``).  :func:`chat_to_gemini` is public for callers who want the conversion on its own.
"""

from llmfiles_vertex.gemini import chat_to_gemini

__version__ = "0.1.0"
__all__ = ["__version__", "chat_to_gemini"]
