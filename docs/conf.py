"""Sphinx configuration of the llmfiles documentation (built by ``tox -e docs``, warnings are errors).

Why Sphinx: pluggy, pytest and tox document their hooks with it, so plugin authors know the format; autodoc reads
our docstrings (the hook reference *is* ``llmfiles/hookspecs.py``); MyST-Parser lets each provider page include its
plugin's README, so the two cannot drift.  ``_ext/llmfiles_docs.py`` generates the rest from the code: the settings
and environment-variable tables (from each plugin's ``ProviderInfo``), the CLI reference (from
``llmfiles.cli.build_parser()``), the API reference (from ``llmfiles.__all__``) and the hook reference (every
``llmfiles_*`` function of ``llmfiles.hookspecs``).
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

project = "llmfiles"
author = "llmfiles developers"
copyright = "llmfiles developers"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "llmfiles_docs",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "examples",  # the in-house example plugin the tutorial builds (its README is not a page of the site)
    "architecture.md",  # the design document, linked from the README; not part of the user guide
]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"show-inheritance": True}

html_theme = "alabaster"
html_title = "llmfiles"
html_theme_options = {"description": "one API and one command for LLM training and batch files", "fixed_sidebar": True}
html_static_path: list[str] = []
