"""llmfiles-fireworks: the Fireworks AI provider for llmfiles.

Installing this distribution registers the provider ``fireworks`` (entry point ``fireworks`` in group
``llmfiles``): a file becomes a Fireworks dataset (created, its file uploaded directly or through the signed upload
endpoint, then validated), whose resource name is the file id.
"""

__version__ = "0.1.0"
