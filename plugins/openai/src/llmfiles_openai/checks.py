"""The rules of OpenAI's JSONL files, as record checkers for ``llmfiles_record_checker`` (Azure OpenAI reuses them).

``fine-tune`` files hold one of three formats, never a mix:

chat (supervised fine-tuning)
    ``{"messages": [{"role": "system" | "user" | "assistant" | "tool" | "function", "content": ...}, ...],
    "tools"?: [...], "functions"?: [...], "parallel_tool_calls"?: bool}``: at least one assistant message; an
    assistant message has ``content`` or ``tool_calls`` (or a legacy ``function_call``); ``weight`` (0 or 1) only on
    assistant messages; a ``tool`` message answers a tool call (``tool_call_id``).
preference (DPO)
    ``{"input": {"messages": [...], "tools"?: [...]}, "preferred_output": [assistant message],
    "non_preferred_output": [assistant message]}`` (``preferred_completion`` / ``non_preferred_completion`` are an
    older spelling, accepted with a warning).
prompt-completion (legacy completion models: babbage-002, davinci-002)
    ``{"prompt": "...", "completion": "..."}``.

A file needs at least :data:`MIN_EXAMPLES` examples.  Each example's tokens are counted (exactly with tiktoken,
else estimated: see :mod:`llmfiles_openai.tokens`) and compared with the model's training-example limit.

``batch`` files hold one request a line: ``{"custom_id": unique string, "method": "POST", "url": endpoint,
"body": {...}}``, all to one endpoint, within the provider's request and size limits (:class:`BatchRules`).

Every problem has a JSON path (``messages[2].role``), a code, a severity and a message that says how to fix it.
The checkers never raise, whatever the JSON: they are fed arbitrary objects by property tests.

Where the rules come from: OpenAI's "Supervised fine-tuning" guide
(https://platform.openai.com/docs/guides/supervised-fine-tuning: the chat format, tools, ``weight``, the minimum
of 10 examples, the token limits per model), "Vision fine-tuning" (https://platform.openai.com/docs/guides/
vision-fine-tuning: ``image_url`` parts in user messages), "Direct preference optimization"
(https://platform.openai.com/docs/guides/direct-preference-optimization: the preference format), the API
reference's training formats (https://platform.openai.com/docs/api-reference/fine-tuning/chat-input,
.../preference-input, .../completions-input), the "Batch API" guide (https://platform.openai.com/docs/guides/batch:
``custom_id``, ``method``, ``url``, ``body``, 50,000 requests and 200 MB a file, one endpoint a file) and the
cookbook's "How to count tokens with tiktoken" (https://cookbook.openai.com/examples/
how_to_count_tokens_with_tiktoken: the per-message overheads).  What the documentation leaves open is a warning,
not an error, and says so (an unknown key on a message; a BOM: :func:`llmfiles.validate.rules.bom_warning`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from attrs import frozen

from llmfiles.models import FileLimits, Problem
from llmfiles.validate.rules import bom_warning
from llmfiles.validate.stats import (
    MAX_TOKENS_PER_ESTIMATED_TOKEN,
    ExampleStats,
    FileFacts,
    HashIndex,
    estimate_tokens,
    json_chars,
)
from llmfiles_openai import tokens
from llmfiles_openai.tokens import (
    ESTIMATE,
    TOKENS_PER_MESSAGE,
    TOKENS_PER_NAME,
    TOKENS_PER_REPLY,
    TokenCounter,
    estimate,
)

MIN_EXAMPLES = 10
ROLES = frozenset({"system", "user", "assistant", "tool", "function"})
MESSAGE_KEYS = frozenset(
    {"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call", "refusal"}
)
CHAT_KEYS = frozenset({"messages", "tools", "functions", "parallel_tool_calls", "metadata"})
PREFERENCE_KEYS = frozenset(
    {"input", "preferred_output", "non_preferred_output", "preferred_completion", "non_preferred_completion"}
)
PROMPT_KEYS = frozenset({"prompt", "completion"})
#: content part types each role may use
PART_TYPES: Mapping[str, frozenset[str]] = {
    "system": frozenset({"text"}),
    "user": frozenset({"text", "image_url"}),
    "assistant": frozenset({"text", "refusal"}),
    "tool": frozenset({"text"}),
    "function": frozenset({"text"}),
}

CHAT, PREFERENCE, PROMPT = "chat", "preference", "prompt-completion"

#: the longest training example (in tokens) of OpenAI's fine-tunable models, by model-name prefix (longest first)
EXAMPLE_TOKEN_LIMITS: tuple[tuple[str, int], ...] = (
    ("gpt-3.5-turbo-0613", 4_096),
    ("gpt-35-turbo-0613", 4_096),
    ("gpt-3.5-turbo", 16_385),
    ("gpt-35-turbo", 16_385),
    ("babbage-002", 16_384),
    ("davinci-002", 16_384),
    ("gpt-4o-mini", 65_536),
    ("gpt-4o", 65_536),
    ("gpt-4.1", 65_536),
)
#: the limit when the model is not known: the longest example any current fine-tunable model takes
DEFAULT_EXAMPLE_TOKENS = 65_536


def example_token_limit(model: str | None) -> tuple[int, str]:
    """(the training-example token limit of ``model``, a label naming where it comes from)."""
    if model:
        name = model.strip().lower()
        for prefix, limit in EXAMPLE_TOKEN_LIMITS:
            if name.startswith(prefix):
                return limit, f"the {limit:,} tokens a training example of {model} may have"
    hint = "" if model else "; set fine_tune_model for your model's own limit"
    return DEFAULT_EXAMPLE_TOKENS, f"the {DEFAULT_EXAMPLE_TOKENS:,} tokens of the largest fine-tunable models{hint}"


def example_format(record: dict[str, Any]) -> str | None:
    """The fine-tuning format of ``record`` (chat, preference or prompt-completion), ``None`` for none of them."""
    if "messages" in record:
        return CHAT
    if not PREFERENCE_KEYS.isdisjoint(record):
        return PREFERENCE
    if "prompt" in record or "completion" in record:
        return PROMPT
    return None


def short(value: Any, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters (for messages about arbitrary values)."""
    try:
        text = repr(value)
    except Exception:  # a repr can fail on pathological values (deep nesting)
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(type(value), "a number")


def err(path: str, code: str, message: str) -> Problem:
    return Problem(line=None, code=code, message=message, path=path)


def warn(path: str, code: str, message: str) -> Problem:
    return Problem(line=None, code=code, message=message, path=path, severity="warning")


# --- fine-tuning ----------------------------------------------------------------------------------------------


class FineTuneChecker:
    """Checks the records of a ``fine-tune`` file (chat, preference or prompt-completion format).

    ``provider`` names the provider in messages; ``model`` (the ``fine_tune_model`` setting) picks the token limit
    and tiktoken's encoding; ``counter`` counts tokens (:func:`llmfiles_openai.tokens.counter`).
    """

    def __init__(
        self,
        *,
        provider: str = "OpenAI",
        model: str | None = None,
        tokenizer: str | None = "auto",
        counter: TokenCounter | None = None,
        min_examples: int = MIN_EXAMPLES,
    ) -> None:
        self.provider = provider
        self.model = model
        self.tokenizer = tokenizer
        self.token_limit, self.limit_label = example_token_limit(model)
        self.min_examples = min_examples
        self.examples = 0
        self.format: str | None = None
        self.format_line = 0
        self.over_limit = 0
        self.stats = ExampleStats(unit="examples")
        #: messages of the short path by role (see _messages), added to stats.roles by finish()
        self._tally = [0, 0, 0, 0]
        self.counter = ESTIMATE
        self.exact = False
        self.count_tokens: Callable[[str], int] = estimate
        self._ready = False
        #: "auto": examples that may be over the limit are counted again exactly; tiktoken's counter, once loaded
        self._recount = False
        self._exact: TokenCounter | Literal[False] | None = None
        if counter is not None:
            self._use(counter)

    def _use(self, counter: TokenCounter) -> None:
        self.counter = counter
        self.exact = counter.exact
        self.count_tokens = counter.count
        self.stats.token_method, self.stats.tokens_exact = counter.method, counter.exact
        self._ready = True

    #: whether a file that starts with a BOM gets :func:`llmfiles.validate.rules.bom_warning` (Azure asks for one)
    warn_bom = True

    def start(self, facts: FileFacts) -> list[Problem]:
        """Picks the token counter (tiktoken is loaded here, not when the checker is made for a dry run); a BOM at
        the start of the file is a warning (see :func:`llmfiles.validate.rules.bom_warning`)."""
        if not self._ready:
            self._pick_counter()
        return [bom_warning(self.provider)] if facts.has_bom and self.warn_bom else []

    def _pick_counter(self) -> None:
        if (self.tokenizer or "auto").strip().lower() == "auto":
            # exact counts of every text cost ten times the rest of the checks: "auto" estimates, and counts
            # exactly (with tiktoken, loaded then) only an example the estimate cannot place under the limit
            self._use(tokens.AUTO)
            self._recount = True
        else:
            self._use(tokens.counter(self.model, self.tokenizer))

    # -- records --

    def check(self, line_no: int, record: dict[str, Any]) -> list[Problem]:
        if not self._ready:
            self._pick_counter()
        self.examples += 1
        fmt = CHAT if "messages" in record else example_format(record)
        if fmt is None:
            keys = ", ".join(sorted(map(str, record))[:5]) or "none"
            return [
                err(
                    "",
                    "unknown_format",
                    f"not a fine-tuning example (keys: {keys}): use the chat format {{'messages': [...]}}, "
                    "the preference format {'input', 'preferred_output', 'non_preferred_output'} or "
                    "{'prompt', 'completion'}",
                )
            ]
        if self.format is None:
            self.format, self.format_line = fmt, line_no
        elif fmt != self.format:
            return [
                err(
                    "",
                    "mixed_formats",
                    f"this example is in the {fmt} format but line {self.format_line} is in the {self.format} "
                    f"format; a file holds one format: move the {fmt} examples to a file of their own",
                )
            ]
        out: list[Problem] = []
        if fmt == CHAT:
            size, n, roles = self._chat(record, out)
        elif fmt == PREFERENCE:
            size, n, roles = self._preference(record, out)
        else:
            size, n, roles = self._prompt(record, out)
        self.stats.add(n, size, roles, fmt)
        exact, method = self.exact, self.counter.method
        # a text never has more tokens than UTF-8 bytes, nor more bytes than 4 a character: an estimate above
        # 1/18 of the limit cannot rule out that the example is over it, so such an example is counted exactly
        if self._recount and MAX_TOKENS_PER_ESTIMATED_TOKEN * size > self.token_limit:
            counter = self._exact_counter()
            if counter is not None:
                size, exact, method = self._exact_size(fmt, record, counter), True, counter.method
        if size > self.token_limit:
            self.over_limit += 1
            how = "" if exact else "estimated "
            out.append(
                warn(
                    "",
                    "too_many_tokens",
                    f"the example has {'about ' if not exact else ''}{size:,} {how}tokens "
                    f"({method}), more than {self.limit_label}; longer examples are cut during "
                    "training: shorten it or split the conversation",
                )
            )
        return out

    def _exact_counter(self) -> TokenCounter | None:
        """tiktoken's counter for the model, loaded at the first example that needs it (``None``: not usable)."""
        if self._exact is None:
            counter = tokens.counter(self.model, "auto")
            self._exact = counter if counter.exact else False
        return self._exact or None

    def _exact_size(self, fmt: str, record: dict[str, Any], counter: TokenCounter) -> int:
        """The exact token count of ``record``: its checks run again with ``counter``, their problems and
        statistics discarded (they were collected by the first run)."""
        saved = self.stats, self.exact, self.count_tokens, self._tally
        self.stats, self.exact, self.count_tokens = ExampleStats(unit="examples"), True, counter.count
        self._tally = [0, 0, 0, 0]
        try:
            walk = self._chat if fmt == CHAT else self._preference if fmt == PREFERENCE else self._prompt
            size, _, _ = walk(record, [])
        finally:
            self.stats, self.exact, self.count_tokens, self._tally = saved
        return size

    def _text(self, text: str) -> int:
        return self.count_tokens(text) if self.exact else len(text)

    def _tokens(self, counted: int, messages: int, names: int) -> int:
        """Tokens of an example from the counted text (tokens when exact, else characters) and its overheads."""
        text = counted if self.exact else estimate_tokens(counted)
        return text + TOKENS_PER_MESSAGE * messages + TOKENS_PER_NAME * names + TOKENS_PER_REPLY

    def _chat(self, record: dict[str, Any], out: list[Problem]) -> tuple[int, int, list[str]]:
        messages = record.get("messages")
        roles: list[str] = []
        if type(messages) is not list or not messages:
            out.append(
                err(
                    "messages",
                    "no_messages",
                    f"messages must be a non-empty array of messages, not {_json_type(messages)}",
                )
            )
            return 0, 0, roles
        counted, names, assistants, trained = self._messages(messages, "messages", out, roles)
        if assistants == 0:
            out.append(
                err(
                    "messages",
                    "no_assistant_message",
                    "the example has no assistant message, so there is nothing to learn: add the answer as "
                    '{"role": "assistant", "content": "..."}',
                )
            )
        elif trained == 0:
            out.append(
                warn(
                    "messages",
                    "all_weights_zero",
                    "every assistant message has weight 0, so the example teaches nothing: set weight 1 on the "
                    "answers to learn",
                )
            )
        if len(record) > 1:
            counted += self._record_tools(record, "", out)
            for key in record:
                if key not in CHAT_KEYS:
                    out.append(_unknown_key(key, "", "chat examples", CHAT_KEYS))
        n = len(messages)
        if self.exact:
            return counted + TOKENS_PER_MESSAGE * n + TOKENS_PER_NAME * names + TOKENS_PER_REPLY, n, roles
        text = estimate_tokens(counted)
        return text + TOKENS_PER_MESSAGE * n + TOKENS_PER_NAME * names + TOKENS_PER_REPLY, n, roles

    def _record_tools(self, record: dict[str, Any], prefix: str, out: list[Problem]) -> int:
        """Checks ``tools``/``functions``/``parallel_tool_calls`` of ``record``; their counted size."""
        counted = 0
        if "tools" in record:
            counted += self._tools(record["tools"], f"{prefix}tools", out)
        if "functions" in record:
            counted += self._functions(record["functions"], f"{prefix}functions", out)
        if "parallel_tool_calls" in record and type(record["parallel_tool_calls"]) is not bool:
            out.append(
                err(
                    f"{prefix}parallel_tool_calls",
                    "bad_parallel_tool_calls",
                    "parallel_tool_calls must be true or false",
                )
            )
        return counted

    def _messages(
        self, messages: list[Any], prefix: str, out: list[Problem], roles: list[str], *, count_roles: bool = True
    ) -> tuple[int, int, int, int]:
        """Checks a list of chat messages; returns (counted text, names, assistant messages, trained ones).

        The common message, ``{"role": "system" | "user" | "assistant", "content": "non-empty text"}`` (an assistant
        message may add ``"weight": 0 | 1``; a tool message with its text and the ``tool_call_id`` of an earlier call
        of the example), takes a short path that tallies its role for :meth:`finish`; every other message gets the
        full rules in :meth:`_message`, which appends its role to ``roles``.
        """
        counted = names = assistants = trained = 0
        exact = self.exact
        count = self.count_tokens
        call_ids: set[str] = set()
        # the short path's messages by FAST_ROLES slot (assistant, user, system, tool): the file's tally, merged into
        # the statistics by finish(), so that counting them costs nothing per example
        fast = self._tally if count_roles else [0, 0, 0, 0]
        fast_assistants = fast[0]
        fast_roles = FAST_ROLES
        i = -1
        for m in messages:
            i += 1
            try:
                k = fast_roles[m["role"]]
                content = m["content"]
            except (TypeError, KeyError, IndexError):  # not an object, another role, no content: the full rules say
                pass
            else:
                if content.__class__ is str and content:
                    size = len(m)
                    if size == 2 and k != 3:
                        fast[k] += 1
                        counted += count(content) if exact else len(content)
                        continue
                    if size == 3:
                        if k == 0:
                            weight = m.get("weight")
                            if weight.__class__ is int and weight in (0, 1):
                                counted += count(content) if exact else len(content)
                                fast[0] += 1
                                trained += weight - 1  # every short-path assistant is trained on, but for this one
                                continue
                        elif k == 3:  # a tool message answering an earlier call of this example
                            call_id = m.get("tool_call_id")
                            if call_id.__class__ is str and call_id in call_ids:
                                counted += count(content) if exact else len(content)
                                fast[3] += 1
                                continue
            c, n, a, t = self._message(i, m, prefix, out, roles, call_ids)
            counted += c
            names += n
            assistants += a
            trained += t
        fast_assistants = fast[0] - fast_assistants
        return counted, names, assistants + fast_assistants, trained + fast_assistants

    def _message(
        self, i: int, m: Any, prefix: str, out: list[Problem], roles: list[str], call_ids: set[str]
    ) -> tuple[int, int, int, int]:
        """The full rules of one message; returns (counted text, names, is assistant, is trained).

        Paths are formatted only for the problems found (this runs for every message with tool calls)."""
        if type(m) is not dict:
            out.append(
                err(
                    f"{prefix}[{i}]",
                    "bad_message",
                    f'each message must be an object such as {{"role": "user", "content": "..."}}, not {_json_type(m)}',
                )
            )
            return 0, 0, 0, 0
        role = m.get("role")
        if type(role) is not str or role not in ROLES:
            out.append(_bad_role(f"{prefix}[{i}].role", role))
            role = None
        else:
            roles.append(role)
        content = m.get("content")
        if type(content) is str and content:
            counted = self.count_tokens(content) if self.exact else len(content)
        else:
            counted = self._content(content, f"{prefix}[{i}]", role, out)
        assistants = trained = 0
        if role == "assistant":
            assistants = 1
            c, trained = self._assistant(m, prefix, i, out, call_ids)
            counted += c
        elif role is not None:
            self._not_assistant(m, prefix, i, role, out, call_ids)
        names = 0
        if len(m) > 2:
            c, names = self._other_fields(m, prefix, i, role, out)
            counted += c
        return counted, names, assistants, trained

    def _content(self, content: Any, here: str, role: str | None, out: list[Problem]) -> int:
        """Checks a message's ``content`` (text or content parts); its counted size."""
        if type(content) is str:
            if not content and role in ("system", "user"):
                out.append(
                    warn(
                        f"{here}.content",
                        "empty_content",
                        f"the {role} message is empty: give it its text, or remove the message",
                    )
                )
            return self.count_tokens(content) if self.exact else len(content)
        if content is not None:
            return self._content_parts(content, f"{here}.content", role, out)
        return 0

    def _assistant(
        self, m: dict[str, Any], prefix: str, i: int, out: list[Problem], call_ids: set[str]
    ) -> tuple[int, int]:
        """The rules of an assistant message beyond its content: tool calls, content or calls, ``weight``;
        returns (counted size of its calls, whether it is trained on)."""
        counted = 0
        content = m.get("content")
        has_calls = "tool_calls" in m or "function_call" in m
        if has_calls:
            counted += self._assistant_calls(m, f"{prefix}[{i}]", out, call_ids)
        if (content is None or content == "") and not has_calls:
            out.append(
                err(
                    f"{prefix}[{i}].content",
                    "missing_content",
                    "an assistant message needs content (the answer to learn) or tool_calls",
                )
            )
        if "weight" not in m:
            return counted, 1
        weight = m["weight"]
        if type(weight) is not int or weight not in (0, 1):
            out.append(
                err(
                    f"{prefix}[{i}].weight",
                    "bad_weight",
                    f"weight must be 0 (do not learn this message) or 1 (learn it), not {short(weight)}",
                )
            )
            return counted, 1
        return counted, weight

    def _not_assistant(
        self, m: dict[str, Any], prefix: str, i: int, role: str, out: list[Problem], call_ids: set[str]
    ) -> None:
        """The rules of a system, user, tool or function message beyond its content."""
        if m.get("content") is None:
            out.append(
                err(f"{prefix}[{i}].content", "missing_content", f'a {role} message needs content: "content": "..."')
            )
        if role == "tool":
            tcid = m.get("tool_call_id")
            if type(tcid) is not str or not tcid:
                out.append(
                    err(
                        f"{prefix}[{i}].tool_call_id",
                        "missing_tool_call_id",
                        "a tool message needs tool_call_id: the id of the assistant's tool call it answers",
                    )
                )
            elif tcid not in call_ids:
                out.append(
                    warn(
                        f"{prefix}[{i}].tool_call_id",
                        "unknown_tool_call_id",
                        f"no earlier assistant tool call has the id {short(tcid)}; "
                        "use the id of the call this message answers",
                    )
                )
        elif role == "function" and (type(m.get("name")) is not str or not m.get("name")):
            out.append(
                err(
                    f"{prefix}[{i}].name",
                    "missing_name",
                    "a function message needs name: the function whose result it holds",
                )
            )

    def _other_fields(
        self, m: dict[str, Any], prefix: str, i: int, role: str | None, out: list[Problem]
    ) -> tuple[int, int]:
        """``name``, a misplaced ``weight`` and unknown keys of a message; returns (counted size, names).

        Unknown keys are warnings, not errors: OpenAI's fine-tuning guide ("Supervised fine-tuning",
        https://platform.openai.com/docs/guides/supervised-fine-tuning) and its API reference for the training
        format (https://platform.openai.com/docs/api-reference/fine-tuning/chat-input) list the fields a message has
        but say nothing of what happens to others, so they are flagged for a spelling check without refusing the
        file (the cookbook's "Data preparation and analysis for chat model fine-tuning" counts them as format
        errors of its own checks, which is its choice, not a documented rule of the API).
        """
        counted = names = 0
        if "name" in m:
            name = m["name"]
            if type(name) is not str:
                out.append(err(f"{prefix}[{i}].name", "bad_name", f"name must be a string, not {_json_type(name)}"))
            else:
                names = 1
                counted = self.count_tokens(name) if self.exact else len(name)
        if "weight" in m and role != "assistant" and role is not None:
            out.append(
                err(
                    f"{prefix}[{i}].weight",
                    "weight_not_assistant",
                    f"weight is only for assistant messages; remove it from this {role} message",
                )
            )
        for key in m:
            if key not in MESSAGE_KEYS:
                out.append(_unknown_key(key, f"{prefix}[{i}].", "messages", MESSAGE_KEYS))
        return counted, names

    def _content_parts(self, content: Any, path: str, role: str | None, out: list[Problem]) -> int:
        if type(content) is not list:
            out.append(
                err(
                    path,
                    "bad_content",
                    f"content must be a string or an array of content parts, not {_json_type(content)}",
                )
            )
            return 0
        if not content:
            out.append(err(path, "bad_content", "content is an empty array: give the message its text"))
            return 0
        allowed = PART_TYPES.get(role or "", frozenset({"text"}))
        counted = 0
        for k, part in enumerate(content):
            here = f"{path}[{k}]"
            if type(part) is not dict:
                out.append(
                    err(
                        here, "bad_content_part", 'each content part must be an object: {"type": "text", "text": "..."}'
                    )
                )
                continue
            kind = part.get("type")
            if type(kind) is not str or kind not in allowed:
                kinds = ", ".join(sorted(allowed))
                out.append(
                    err(
                        f"{here}.type",
                        "bad_content_part",
                        f"content part type {short(kind)} is not allowed in a {role or 'message'}'s content; "
                        f"use {kinds}",
                    )
                )
                continue
            if kind in ("text", "refusal"):
                text = part.get(kind)
                if type(text) is not str:
                    out.append(err(f"{here}.{kind}", "bad_content_part", f"a {kind} part needs {kind}: a string"))
                else:
                    counted += self.count_tokens(text) if self.exact else len(text)
            else:  # image_url
                image = part.get("image_url")
                url = image.get("url") if type(image) is dict else None
                if type(url) is not str or not url:
                    out.append(
                        err(
                            f"{here}.image_url.url",
                            "bad_image_url",
                            'an image part needs "image_url": {"url": "https://..." or "data:image/...;base64,..."}',
                        )
                    )
        return counted

    def _assistant_calls(self, m: dict[str, Any], path: str, out: list[Problem], call_ids: set[str]) -> int:
        counted = 0
        if "tool_calls" in m:
            calls = m["tool_calls"]
            if type(calls) is not list or not calls:
                out.append(
                    err(f"{path}.tool_calls", "bad_tool_calls", "tool_calls must be a non-empty array of tool calls")
                )
            else:
                for j, call in enumerate(calls):
                    counted += self._tool_call(call, f"{path}.tool_calls[{j}]", out, call_ids)
        if "function_call" in m:
            counted += self._function_call(m["function_call"], f"{path}.function_call", out)
        return counted

    def _tool_call(self, call: Any, path: str, out: list[Problem], call_ids: set[str]) -> int:
        shape = '{"id": "call_1", "type": "function", "function": {"name": "...", "arguments": "{...}"}}'
        if type(call) is not dict:
            out.append(err(path, "bad_tool_call", f"a tool call must be an object: {shape}"))
            return 0
        call_id = call.get("id")
        if type(call_id) is not str or not call_id:
            out.append(
                err(f"{path}.id", "bad_tool_call", "a tool call needs an id (a string the tool message repeats)")
            )
        else:
            call_ids.add(call_id)
        if call.get("type", "function") != "function":
            out.append(
                err(f"{path}.type", "bad_tool_call", f"a tool call's type is 'function', not {short(call.get('type'))}")
            )
        return self._function_call(call.get("function"), f"{path}.function", out)

    def _function_call(self, fn: Any, path: str, out: list[Problem]) -> int:
        if type(fn) is not dict:
            out.append(
                err(path, "bad_tool_call", 'the call needs a function object: {"name": "...", "arguments": "{...}"}')
            )
            return 0
        name, arguments = fn.get("name"), fn.get("arguments")
        counted = 0
        if type(name) is not str or not name:
            out.append(err(f"{path}.name", "bad_tool_call", "the function call needs the function's name"))
        else:
            counted += self._text(name)
        if type(arguments) is not str:
            out.append(
                err(
                    f"{path}.arguments",
                    "bad_tool_call",
                    f'arguments must be a string holding a JSON object (such as "{{\\"city\\": \\"Paris\\"}}"), '
                    f"not {_json_type(arguments)}",
                )
            )
        else:
            counted += self._text(arguments)
            if not _is_json_object(arguments):
                out.append(
                    warn(
                        f"{path}.arguments",
                        "bad_arguments",
                        "arguments is not a JSON object in a string; the model learns to call the function with it",
                    )
                )
        return counted

    def _tools(self, tools: Any, path: str, out: list[Problem]) -> int:
        if type(tools) is not list:
            out.append(err(path, "bad_tools", f"tools must be an array of tool definitions, not {_json_type(tools)}"))
            return 0
        for k, tool in enumerate(tools):
            fn = tool.get("function") if type(tool) is dict else None
            if type(tool) is not dict or tool.get("type", "function") != "function" or type(fn) is not dict:
                out.append(
                    err(
                        f"{path}[{k}]",
                        "bad_tool",
                        'each tool must be {"type": "function", "function": {"name": "...", "parameters": {...}}}',
                    )
                )
            elif type(fn.get("name")) is not str or not fn.get("name"):
                out.append(err(f"{path}[{k}].function.name", "bad_tool", "each function needs a name"))
            elif "parameters" in fn and type(fn["parameters"]) is not dict:
                out.append(
                    err(f"{path}[{k}].function.parameters", "bad_tool", "parameters must be a JSON Schema object")
                )
        return self._structured(tools)

    def _functions(self, functions: Any, path: str, out: list[Problem]) -> int:
        if type(functions) is not list:
            out.append(err(path, "bad_functions", f"functions must be an array, not {_json_type(functions)}"))
            return 0
        for k, fn in enumerate(functions):
            if type(fn) is not dict or type(fn.get("name")) is not str or not fn.get("name"):
                out.append(
                    err(f"{path}[{k}]", "bad_functions", 'each function must be {"name": "...", "parameters": {...}}')
                )
        out.append(
            warn(
                path,
                "deprecated_functions",
                "functions (with function_call) is the deprecated form of tools (with tool_calls); prefer tools",
            )
        )
        return self._structured(functions)

    def _structured(self, value: Any) -> int:
        """Counted size of a structured field (tool schemas): its tokens as compact JSON, or its characters."""
        if self.exact:
            try:
                return self.count_tokens(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
            except (ValueError, TypeError, RecursionError):
                return estimate_tokens(json_chars(value))
        return json_chars(value)

    def _preference(self, record: dict[str, Any], out: list[Problem]) -> tuple[int, int, list[str]]:
        roles: list[str] = []
        counted, names, n = self._preference_input(record.get("input"), out, roles)
        sizes: list[int] = []
        values: list[Any] = []
        for name in ("preferred_output", "non_preferred_output"):
            old = name.replace("_output", "_completion")
            key = name
            if name not in record and old in record:
                key = old
                out.append(warn(old, "old_field_name", f"{old} is an older name of {name}; rename the field to {name}"))
            value = record.get(key)
            values.append(value)
            sizes.append(self._output(value, key, out))
            if name == "preferred_output" and type(value) is list and value:
                roles.append("assistant")  # the answer the example teaches
        if values[0] is not None and values[0] == values[1]:
            out.append(
                warn(
                    "non_preferred_output",
                    "same_outputs",
                    "the preferred and the non-preferred output are the same, so there is no preference to learn",
                )
            )
        for key in record:
            if key not in PREFERENCE_KEYS:
                out.append(_unknown_key(key, "", "preference examples", PREFERENCE_KEYS))
        counted += max(sizes)
        return self._tokens(counted, n + 1, names), n + 1, roles

    def _preference_input(self, data: Any, out: list[Problem], roles: list[str]) -> tuple[int, int, int]:
        """Checks the ``input`` of a preference example; returns (counted size, names, messages)."""
        if type(data) is not dict:
            out.append(
                err(
                    "input",
                    "missing_input",
                    f'a preference example needs "input": {{"messages": [...]}} (the prompt), not {_json_type(data)}',
                )
            )
            return 0, 0, 0
        counted = names = n = 0
        messages = data.get("messages")
        if type(messages) is not list or not messages:
            out.append(err("input.messages", "no_messages", "input.messages must be a non-empty array of messages"))
        else:
            counted, names, _, _ = self._messages(messages, "input.messages", out, roles)
            n = len(messages)
            last = messages[-1]
            if type(last) is dict and last.get("role") == "assistant":
                out.append(
                    warn(
                        f"input.messages[{n - 1}].role",
                        "input_ends_with_assistant",
                        "the input ends with an assistant message; the two outputs are the answers to compare, "
                        "so the input usually ends with the user's turn",
                    )
                )
        counted += self._record_tools(data, "input.", out)
        for key in data:
            if key not in ("messages", "tools", "functions", "parallel_tool_calls"):
                out.append(
                    _unknown_key(key, "input.", "the input", frozenset({"messages", "tools", "parallel_tool_calls"}))
                )
        return counted, names, n

    def _output(self, value: Any, key: str, out: list[Problem]) -> int:
        shape = f'"{key}": [{{"role": "assistant", "content": "..."}}]'
        if value is None:
            out.append(err(key, "missing_output", f"a preference example needs {shape}"))
            return 0
        if type(value) is not list or len(value) != 1:
            out.append(err(key, "bad_output", f"{key} must be an array of exactly one assistant message: {shape}"))
            return 0
        msg = value[0]
        if type(msg) is not dict or msg.get("role") != "assistant":
            out.append(err(f"{key}[0].role", "bad_output", f"{key} holds one message with role 'assistant'"))
            return 0
        roles: list[str] = []
        counted, _, _, _ = self._messages(value, key, out, roles, count_roles=False)
        return counted

    def _prompt(self, record: dict[str, Any], out: list[Problem]) -> tuple[int, int, list[str]]:
        prompt, completion = record.get("prompt"), record.get("completion")
        counted = 0
        if type(prompt) is not str:
            out.append(err("prompt", "missing_prompt", f'"prompt" must be a string, not {_json_type(prompt)}'))
        else:
            counted += self._text(prompt)
        if type(completion) is not str or not completion:
            out.append(
                err(
                    "completion",
                    "missing_completion",
                    f'"completion" must be a non-empty string (the text to learn), not {short(completion)}',
                )
            )
        else:
            counted += self._text(completion)
        for key in record:
            if key not in PROMPT_KEYS:
                out.append(_unknown_key(key, "", "prompt-completion examples", PROMPT_KEYS))
        text = counted if self.exact else estimate_tokens(counted)
        return text, 2, ["prompt", "completion"]

    def finish(self) -> list[Problem]:
        counts = self.stats.roles
        for role, n in zip(_TALLIED, self._tally, strict=False):
            if n:
                counts[role] = counts.get(role, 0) + n
        self._tally = [0, 0, 0, 0]
        out: list[Problem] = []
        if self.examples < self.min_examples:
            out.append(
                err(
                    "",
                    "too_few_examples",
                    f"the file has {self.examples} example(s); {self.provider} fine-tuning needs at least "
                    f"{self.min_examples} (a few dozen to a few hundred give better results): add examples",
                )
            )
        if self.format == PROMPT:
            out.append(
                warn(
                    "",
                    "legacy_format",
                    "prompt-completion is the format of the legacy completion models (babbage-002, davinci-002); "
                    "chat models (gpt-4o, gpt-4.1, ...) need the chat format {'messages': [...]}",
                )
            )
        return out


#: the roles of the common message's short path in FineTuneChecker._messages, and their slots in its tally (3: the
#: full rules)
FAST_ROLES: Mapping[Any, int] = {"assistant": 0, "user": 1, "system": 2, "tool": 3}
_TALLIED = ("assistant", "user", "system", "tool")


def _is_json_object(text: str) -> bool:
    from llmfiles.validate.parse import fast_loads, reference_loads

    raw = text.encode("utf-8", "surrogatepass")
    try:
        return isinstance(fast_loads(raw), dict)
    except Exception:  # noqa: S110 - the reference parser decides what the fast one refuses
        pass
    try:
        return isinstance(reference_loads(raw), dict)
    except (ValueError, RecursionError):
        return False


def _bad_role(path: str, role: Any) -> Problem:
    if role is None:
        return err(path, "missing_role", "each message needs a role: system, user, assistant, tool or function")
    hint = " (use 'system' for instructions)" if role == "developer" else ""
    return err(
        path,
        "bad_role",
        f"role {short(role)} is not one of system, user, assistant, tool, function{hint}",
    )


def _unknown_key(key: Any, prefix: str, where: str, allowed: frozenset[str]) -> Problem:
    return warn(
        f"{prefix}{key}",
        "unknown_field",
        f"{where} have no field {short(key)} (known: {', '.join(sorted(allowed))}); remove it or check its spelling",
    )


# --- batch ----------------------------------------------------------------------------------------------------

BATCH_KEYS = frozenset({"custom_id", "method", "url", "body"})
#: what a request body must hold, by the endpoint's last path segment(s)
BODY_NEEDS: Mapping[str, str] = {
    "chat/completions": "messages",
    "embeddings": "input",
    "responses": "input",
    "completions": "prompt",
    "moderations": "input",
}
MB = 1000 * 1000


#: a limit no file reaches (a provider that documents none)
UNLIMITED = 1 << 62


@frozen(kw_only=True)
class BatchRules:
    """One provider's batch-file limits: endpoints, requests per file, bytes per file, one model per file."""

    provider: str
    endpoints: tuple[str, ...]
    max_requests: int
    max_bytes: int
    same_model: Literal["error", "warning"]
    #: whether a file that starts with a BOM gets :func:`llmfiles.validate.rules.bom_warning`
    warn_bom: bool = True
    #: the provider's name, for the ``llmfiles split`` command the messages suggest ("": no command)
    name: str = ""

    @classmethod
    def of(
        cls,
        limits: FileLimits,
        *,
        provider: str,
        endpoints: tuple[str, ...],
        same_model: Literal["error", "warning"],
        warn_bom: bool = True,
        name: str = "",
    ) -> BatchRules:
        """The rules of a provider whose limits are ``limits`` (its ``ProviderInfo.file_limits["batch"]``)."""
        return cls(
            provider=provider,
            endpoints=endpoints,
            max_requests=limits.max_records or UNLIMITED,
            max_bytes=limits.max_bytes or UNLIMITED,
            same_model=same_model,
            warn_bom=warn_bom,
            name=name,
        )

    def split_hint(self) -> str:
        """What to do with a file over the limits: the ``llmfiles split`` command."""
        if not self.name:
            return "split it into several files"
        return f"cut it into files that fit with: llmfiles split FILE -p {self.name} --purpose batch -o DIR"


#: OpenAI's "Batch API" guide: 50,000 requests and 200 MB a batch input file
OPENAI_BATCH_LIMITS = FileLimits(
    max_bytes=200 * MB, max_records=50_000, docs="https://platform.openai.com/docs/guides/batch"
)

OPENAI_BATCH = BatchRules.of(
    OPENAI_BATCH_LIMITS,
    provider="OpenAI",
    name="openai",
    endpoints=(
        "/v1/chat/completions",
        "/v1/responses",
        "/v1/embeddings",
        "/v1/completions",
        "/v1/moderations",
        "/v1/images/generations",
        "/v1/images/edits",
        "/v1/videos",
    ),
    same_model="warning",
)


def _endpoint_kind(url: str) -> str:
    for kind in BODY_NEEDS:
        if url.endswith("/" + kind) and not (kind == "completions" and url.endswith("/chat/completions")):
            return kind
    return ""


class BatchChecker:
    """Checks the records of a ``batch`` file against ``rules``."""

    def __init__(self, rules: BatchRules = OPENAI_BATCH) -> None:
        self.rules = rules
        self.requests = 0
        self.ids = HashIndex(max_items=max(rules.max_requests + 1, 1024))
        self.url: str | None = None
        self.url_line = 0
        self.model: str | None = None
        self.model_line = 0
        self.stats = ExampleStats(unit="requests")

    def start(self, facts: FileFacts) -> Iterable[Problem]:
        """The file's size against the provider's batch limit; a BOM is a warning (unless ``rules.warn_bom`` is
        off)."""
        out = [bom_warning(self.rules.provider)] if facts.has_bom and self.rules.warn_bom else []
        if facts.size > self.rules.max_bytes:
            out.append(
                err(
                    "",
                    "file_too_large",
                    f"the file has {facts.size:,} bytes; a {self.rules.provider} batch file may have at most "
                    f"{self.rules.max_bytes:,}: {self.rules.split_hint()}",
                )
            )
        return out

    def check(self, line_no: int, record: dict[str, Any]) -> list[Problem]:
        self.requests += 1
        out: list[Problem] = []
        rules = self.rules
        self._custom_id(record.get("custom_id"), line_no, out)
        method = record.get("method")
        if method != "POST":
            out.append(
                err(
                    "method",
                    "bad_method",
                    f'method must be "POST", not {short(method) if "method" in record else "missing"}',
                )
            )
        url = record.get("url")
        kind = ""
        if type(url) is not str or url not in rules.endpoints:
            out.append(err("url", "bad_url", _url_message(url, rules)))
        else:
            kind = _endpoint_kind(url)
            if self.url is None:
                self.url, self.url_line = url, line_no
            elif url != self.url:
                out.append(
                    err(
                        "url",
                        "mixed_urls",
                        f"this request goes to {url} but line {self.url_line} goes to {self.url}; a batch runs "
                        "against one endpoint: put the requests of each endpoint in a file of their own",
                    )
                )
        body = record.get("body")
        if type(body) is not dict:
            out.append(
                err("body", "bad_body", f"body must be an object (the request's JSON body), not {_json_type(body)}")
            )
        else:
            self._body(body, kind, line_no, out)
        if len(record) > 4:
            for key in record:
                if key not in BATCH_KEYS:
                    out.append(_unknown_key(key, "", "batch requests", BATCH_KEYS))
        return out

    def _custom_id(self, cid: Any, line_no: int, out: list[Problem]) -> None:
        if type(cid) is not str or not cid:
            what = "missing" if cid is None else f"{_json_type(cid)}, not a non-empty string"
            out.append(
                err(
                    "custom_id",
                    "missing_custom_id" if cid is None else "bad_custom_id",
                    f'custom_id is {what}: give every request a unique string id, such as "request-{line_no}"',
                )
            )
            return
        earlier = self.ids.add(hash(cid), line_no)
        if earlier:
            out.append(
                err(
                    "custom_id",
                    "duplicate_custom_id",
                    f"custom_id {short(cid)} is already used on line {earlier}; every request needs its own id",
                )
            )

    def _body(self, body: dict[str, Any], kind: str, line_no: int, out: list[Problem]) -> None:
        model = body.get("model")
        if type(model) is not str or not model:
            out.append(
                err(
                    "body.model",
                    "missing_model",
                    "body.model is missing: name the model"
                    + ("" if self.rules.provider == "OpenAI" else " (the batch deployment's name)"),
                )
            )
        elif self.model is None:
            self.model, self.model_line = model, line_no
        elif model != self.model:
            severity = self.rules.same_model
            problem = (err if severity == "error" else warn)(
                "body.model",
                "mixed_models",
                f"this request uses model {short(model)} but line {self.model_line} uses {short(self.model)}; "
                f"{self.rules.provider} runs a batch file with one model: use one model per file",
            )
            out.append(problem)
        needs = BODY_NEEDS.get(kind)
        if needs is not None and needs not in body:
            out.append(err(f"body.{needs}", "missing_field", f"a request to {kind} needs body.{needs}"))
        messages = body.get("messages")
        if kind == "chat/completions" and "messages" in body and (type(messages) is not list or not messages):
            out.append(err("body.messages", "no_messages", "body.messages must be a non-empty array of messages"))
            messages = None
        if type(messages) is list:
            chars = 0
            roles: list[str] = []
            for m in messages:
                if type(m) is dict:
                    role, content = m.get("role"), m.get("content")
                    if type(role) is str:
                        roles.append(role)
                    if type(content) is str:
                        chars += len(content)
                    elif content is not None:
                        chars += json_chars(content)
            tokens = estimate_tokens(chars) + TOKENS_PER_MESSAGE * len(messages) + TOKENS_PER_REPLY
            self.stats.add(messages=len(messages), tokens=tokens, roles=roles, format=kind or None)
        else:
            data = body.get("input", body.get("prompt"))
            size = estimate_tokens(json_chars(data)) if data is not None else None
            self.stats.add(tokens=size, format=kind or None)

    def finish(self) -> list[Problem]:
        if self.requests > self.rules.max_requests:
            return [
                err(
                    "",
                    "too_many_requests",
                    f"the file has {self.requests:,} requests; a {self.rules.provider} batch takes at most "
                    f"{self.rules.max_requests:,}: {self.rules.split_hint()}",
                )
            ]
        return []


def _url_message(url: Any, rules: BatchRules) -> str:
    known = ", ".join(rules.endpoints)
    if type(url) is not str:
        return f"url must be the endpoint of the request, one of {known}; not {_json_type(url)}"
    for endpoint in rules.endpoints:
        if url.rstrip("/").endswith(endpoint.removeprefix("/v1")) or endpoint.endswith(url.rstrip("/")):
            return f"url {short(url)} is not a {rules.provider} batch endpoint: write {endpoint}"
    return f"url {short(url)} is not a {rules.provider} batch endpoint; use one of {known}"
