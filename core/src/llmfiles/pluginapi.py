"""The marker plugin authors decorate hook implementations with: ``from llmfiles import hookimpl``."""

from __future__ import annotations

import pluggy

hookimpl = pluggy.HookimplMarker("llmfiles")
