"""Numbers about a checked file, collected while it streams: per-example statistics and bounded hash sets.

A record checker that wants statistics in the report keeps an :class:`ExampleStats` in its ``stats`` attribute and
calls :meth:`ExampleStats.add` once per example; the core puts it in the report (``Report.examples``) and in
``llmfiles validate`` (``--json``: ``"stats"``).  The core itself counts records and duplicate lines.

Memory stays bounded whatever the file size: :class:`HashIndex` keeps 12 bytes per remembered key in flat arrays
(no Python object per key) and stops remembering new keys at a fixed capacity, which the report then states.
"""

from __future__ import annotations

import collections
from array import array
from collections.abc import Callable, Iterable
from typing import Any

from attrs import define, field, frozen


def _count_in_python(mapping: dict[str, int], iterable: Iterable[str]) -> None:
    for item in iterable:
        mapping[item] = mapping.get(item, 0) + 1


#: counts an iterable into a dict, in C where CPython has it (what ``collections.Counter.update`` uses)
_count_elements: Callable[[dict[str, int], Iterable[str]], None] = getattr(
    collections, "_count_elements", _count_in_python
)

#: the heuristic used when no exact tokenizer is available: about this many characters make one token.
#: Calibrated against tiktoken's o200k_base (``python bench/token_estimate.py``): on the benchmark's chat data
#: (bench/validate_speed.py) the estimate is 1.07x the exact count (per example 1.05x to 1.10x, 5th to 95th
#: percentile), on English prose 0.95x (0.80x to 1.09x), on Python code 0.90x; cl100k_base gives the same within
#: 0.02.  The former 4 characters a token gave 1.20x, 1.07x and 1.01x.
CHARS_PER_TOKEN = 4.5
#: the most tokens a text of ``estimate_tokens(...) == n`` can have: every token is at least one UTF-8 byte and a
#: character at most four bytes, so at most ``4 * CHARS_PER_TOKEN`` tokens per estimated token
MAX_TOKENS_PER_ESTIMATED_TOKEN = 18


def estimate_tokens(chars: int) -> int:
    """Tokens of a text of ``chars`` characters by the ``CHARS_PER_TOKEN`` heuristic (rounded up).

    Within about 10% of tiktoken's o200k_base count for chat data, English prose and code (see
    :data:`CHARS_PER_TOKEN`); languages without spaces between words (Chinese, Japanese) take more tokens than
    this says.  Integer arithmetic: ``ceil(chars / 4.5)``.
    """
    return -(-chars * 2 // 9)


def json_chars(value: Any, _depth: int = 0) -> int:
    """About how many characters ``value`` takes as compact JSON, without serializing it (for token estimates of
    tool schemas and other structured fields).  Deep structures are cut at 100 levels."""
    if isinstance(value, str):
        return len(value) + 2
    if isinstance(value, dict):
        if _depth > 100:
            return 2
        return 2 + sum(len(str(k)) + 3 + json_chars(v, _depth + 1) for k, v in value.items())
    if isinstance(value, list):
        if _depth > 100:
            return 2
        return 2 + sum(1 + json_chars(v, _depth + 1) for v in value)
    if value is None or isinstance(value, bool):
        return 4
    if isinstance(value, (int, float)):
        return 8
    return 4


@frozen(kw_only=True)
class FileFacts:
    """What the core knows about a file when its records start, given to a checker's optional ``start()``."""

    display: str
    size: int
    has_bom: bool


def _summary(count: int, total: int, low: int, high: int) -> dict[str, Any] | None:
    if count == 0:
        return None
    return {"min": low, "mean": round(total / count, 1), "max": high, "total": total}


@define(kw_only=True)
class ExampleStats:
    """Statistics a checker collects per example (a training example, a batch request).

    ``unit`` names what is counted ("examples", "requests"); ``token_method`` says how tokens were counted, and
    ``tokens_exact`` whether that is an exact tokenizer (``False``: an estimate, marked as such everywhere it is
    shown).  ``notes`` are remarks for the reader that are not problems (for example "the file has no BOM; llmfiles
    adds it on upload").  ``formats`` counts the record formats seen (chat, preference, ...).

    :meth:`add` is called once per example, so it is kept to a few attribute updates.
    """

    unit: str = "examples"
    token_method: str = f"estimate: about {CHARS_PER_TOKEN} characters per token"
    tokens_exact: bool = False
    examples: int = 0
    #: examples with a message count, their sum, the fewest and the most messages
    with_messages: int = 0
    messages_total: int = 0
    messages_min: int = 0
    messages_max: int = 0
    #: examples with a token count, their sum, the fewest and the most tokens
    with_tokens: int = 0
    tokens_total: int = 0
    tokens_min: int = 0
    tokens_max: int = 0
    roles: dict[str, int] = field(factory=dict)
    formats: dict[str, int] = field(factory=dict)
    notes: list[str] = field(factory=list)

    def add(
        self,
        messages: int | None = None,
        tokens: int | None = None,
        roles: Iterable[str] = (),
        format: str | None = None,
    ) -> None:
        """Count one example with its number of messages, its tokens, the roles of its messages and its format."""
        self.examples += 1
        if messages is not None:
            if not self.with_messages or messages < self.messages_min:
                self.messages_min = messages
            self.messages_max = max(self.messages_max, messages)
            self.with_messages += 1
            self.messages_total += messages
        if tokens is not None:
            if not self.with_tokens or tokens < self.tokens_min:
                self.tokens_min = tokens
            self.tokens_max = max(self.tokens_max, tokens)
            self.with_tokens += 1
            self.tokens_total += tokens
        if roles:
            _count_elements(self.roles, roles)
        if format is not None:
            self.formats[format] = self.formats.get(format, 0) + 1

    def note(self, text: str) -> None:
        """Add a remark for the reader (not a problem); the same text is kept once."""
        if text not in self.notes:
            self.notes.append(text)

    def messages_summary(self) -> dict[str, Any] | None:
        """``{"min", "mean", "max", "total"}`` of the messages per example, ``None`` when none were counted."""
        return _summary(self.with_messages, self.messages_total, self.messages_min, self.messages_max)

    def tokens_summary(self) -> dict[str, Any] | None:
        """``{"min", "mean", "max", "total"}`` of the tokens per example, ``None`` when none were counted."""
        return _summary(self.with_tokens, self.tokens_total, self.tokens_min, self.tokens_max)

    def as_dict(self) -> dict[str, Any]:
        tokens = self.tokens_summary()
        if tokens is not None:
            tokens["method"] = self.token_method
            tokens["exact"] = self.tokens_exact
        return {
            "unit": self.unit,
            "count": self.examples,
            "formats": dict(self.formats),
            "messages_per_example": self.messages_summary(),
            "tokens_per_example": tokens,
            "roles": dict(self.roles),
        }


_MASK64 = (1 << 64) - 1


class HashIndex:
    """A set of 64-bit hashes with a value (a line number) each, and optionally a second one (a file offset), in
    flat arrays: 12 bytes a slot, 20 with offsets - no Python object per key.

    Open addressing with linear probing, at most half full; it grows fourfold as it fills, up to ``max_items``
    keys (so at most ``2 * max_items`` slots, rounded up to a power of two), then stops remembering new keys
    (``full`` turns true) while still finding the ones it has.  Use it with ``hash(bytes_or_str)``: 64 random bits
    per key, so two different keys collide with odds of about
    ``n / 2**64`` - never in practice (and callers that need certainty compare the keyed data on a hit).
    """

    def __init__(self, max_items: int = 1 << 20, *, with_offsets: bool = False, start_slots: int = 1 << 12) -> None:
        self.max_items = max_items
        self.count = 0
        self.full = False
        self.with_offsets = with_offsets
        #: the offset stored with the key that :meth:`add` found (when ``with_offsets``)
        self.found_offset = 0
        #: the table never grows past the power of two that holds max_items at half load
        self._max_slots = 1 << (2 * max_items - 1).bit_length()
        self._alloc(min(start_slots, self._max_slots))

    def _alloc(self, slots: int) -> None:
        self._slots = slots
        self._mask = slots - 1
        self._keys = array("Q", bytes(8 * slots))
        self._values = array("I", bytes(4 * slots))
        self._offsets = array("Q", bytes(8 * slots)) if self.with_offsets else array("Q")

    def add(self, key: int, value: int, offset: int = 0) -> int:
        """Remember ``key`` with ``value`` (and ``offset``); return 0 if it is new, else the value it was first
        added with (its offset is then in :attr:`found_offset`)."""
        key = (key & _MASK64) or 1  # 0 marks an empty slot
        keys = self._keys
        mask = self._mask
        i = key & mask
        while True:
            k = keys[i]
            if k == key:
                if self.with_offsets:
                    self.found_offset = self._offsets[i]
                return self._values[i] or 1
            if k == 0:
                break
            i = (i + 1) & mask
        if self.full:
            return 0
        keys[i] = key
        self._values[i] = value & 0xFFFFFFFF
        if self.with_offsets:
            self._offsets[i] = offset
        self.count += 1
        if self.count >= self.max_items:
            self.full = True
        elif self.count * 2 >= self._slots:
            self._grow()
        return 0

    def _grow(self) -> None:
        old_keys, old_values, old_offsets = self._keys, self._values, self._offsets
        self._alloc(min(self._slots * 4, self._max_slots))
        keys, values, offsets, mask = self._keys, self._values, self._offsets, self._mask
        with_offsets = self.with_offsets
        for j, k in enumerate(old_keys):
            if k:
                i = k & mask
                while keys[i]:
                    i = (i + 1) & mask
                keys[i] = k
                values[i] = old_values[j]
                if with_offsets:
                    offsets[i] = old_offsets[j]

    @property
    def nbytes(self) -> int:
        """The memory the arrays take."""
        return self._slots * (8 + 4 + (8 if self.with_offsets else 0))
