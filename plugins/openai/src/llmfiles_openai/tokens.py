"""Token counts for OpenAI fine-tuning examples: an estimate, and exact counts with ``tiktoken`` where they matter.

``tiktoken`` is not a dependency.  Its exact counts cost about ten times the rest of the checks (about 20 MiB/s
against 250 MiB/s), so the default ``tokenizer="auto"`` estimates every example (:data:`CHARS_PER_TOKEN`
characters a token, plus OpenAI's published per-message overhead: 3 tokens a message, 1 more for a ``name``, 3 to
prime the reply) and counts exactly, with tiktoken when it is importable, only an example whose estimate cannot
rule out that it is over the model's limit — a text has at most as many tokens as UTF-8 bytes.  The statistics
are then estimates, marked as such.  ``tokenizer="tiktoken"`` counts every example exactly (exact statistics);
``"estimate"`` never loads tiktoken.

tiktoken downloads an encoding the first time it is used and caches it; on a machine without network access and
without that cache the estimate is used instead, after at most ``LOAD_TIMEOUT`` seconds, so validation stays
offline.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Callable
from typing import Any

from attrs import frozen

from llmfiles.validate.stats import CHARS_PER_TOKEN, estimate_tokens

#: OpenAI's published overheads of the chat format
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_PER_REPLY = 3
#: the longest wait for tiktoken to load an encoding (it downloads it once when it is not cached)
LOAD_TIMEOUT = 10.0
TOKENIZERS = ("auto", "tiktoken", "estimate")


@frozen
class TokenCounter:
    """Counts the tokens of texts: ``count(text)``; ``exact`` is false for the character estimate."""

    method: str
    exact: bool
    count: Callable[[str], int]


def estimate(text: str) -> int:
    """The estimated tokens of ``text`` (:func:`llmfiles.validate.stats.estimate_tokens` of its length)."""
    return estimate_tokens(len(text))


ESTIMATE = TokenCounter(
    method=f"estimate: about {CHARS_PER_TOKEN} characters per token (install tiktoken for exact counts)",
    exact=False,
    count=estimate,
)
#: what ``tokenizer="auto"`` counts with: the estimate, and tiktoken for an example that may be over the limit
AUTO = TokenCounter(
    method=f"estimate: about {CHARS_PER_TOKEN} characters per token; an example that may exceed the limit is "
    "counted exactly when tiktoken is installed (tokenizer=tiktoken counts every example exactly)",
    exact=False,
    count=estimate,
)


def encoding_name(model: str | None) -> str:
    """The tiktoken encoding of ``model``: ``cl100k_base`` for the GPT-3.5/GPT-4 generation and the legacy
    completion models, ``o200k_base`` for GPT-4o, GPT-4.1 and later (and when the model is not given)."""
    name = (model or "").lower()
    if name.startswith(("gpt-3.5", "gpt-35", "gpt-4-", "babbage", "davinci")) or name == "gpt-4":
        return "cl100k_base"
    return "o200k_base"


_LOAD_LOCK = threading.Lock()


def _load(encoding: str) -> tuple[Any, str]:
    """(the tiktoken encoding or ``None``, why not), loaded once per process: the threads of a parallel batch of
    checks wait for the first one instead of each loading its own copy."""
    with _LOAD_LOCK:
        return _load_once(encoding)


@functools.lru_cache(maxsize=4)
def _load_once(encoding: str) -> tuple[Any, str]:
    try:
        tiktoken = importlib.import_module("tiktoken")
    except ImportError:
        return None, "tiktoken is not installed"
    box: dict[str, Any] = {}

    def load() -> None:
        try:
            box["encoding"] = tiktoken.get_encoding(encoding)
        except Exception as exc:  # no network, no cache, a broken install: fall back to the estimate
            box["error"] = f"{type(exc).__name__}: {exc}"

    thread = threading.Thread(target=load, name="llmfiles-tiktoken", daemon=True)
    thread.start()
    thread.join(LOAD_TIMEOUT)
    if "encoding" in box:
        return box["encoding"], ""
    return None, box.get("error", f"loading the {encoding} encoding took more than {LOAD_TIMEOUT:g}s")


def counter(model: str | None, tokenizer: str | None = "auto") -> TokenCounter:
    """The token counter for ``model``: tiktoken's when ``tokenizer`` allows and it loads, else the estimate."""
    choice = (tokenizer or "auto").strip().lower()
    if choice == "estimate":
        return ESTIMATE
    name = encoding_name(model)
    encoding, why = _load(name)
    if encoding is None:
        if why == "tiktoken is not installed":
            return ESTIMATE
        return TokenCounter(
            method=f"estimate: about {CHARS_PER_TOKEN} characters per token (tiktoken unusable: {why})",
            exact=False,
            count=estimate,
        )
    encode = encoding.encode_ordinary

    def count(text: str) -> int:
        return len(encode(text))

    return TokenCounter(method=f"tiktoken {name}", exact=True, count=count)
