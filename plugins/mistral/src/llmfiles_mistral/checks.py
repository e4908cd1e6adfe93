"""Mistral's rules for fine-tuning and batch files, each citing the page of Mistral's documentation it comes from.

They are Mistral's own, which differ from OpenAI's where the same JSON looks alike:

fine-tuning (https://docs.mistral.ai/resources/deprecated/finetuning/text_vision_finetuning)
    ``{"messages": [...], "tools"?: [...]}``; roles are ``system``, ``user``, ``assistant`` and ``tool`` (no
    ``function`` or ``developer``); only assistant messages have ``tool_calls``, and one that has them "cannot have a
    ``content`` key" (OpenAI allows both) and "must be followed by a ``tool`` message, which in turn must be followed
    by another assistant message"; tool call ids are "strings of exactly 9 characters"; ``tools`` defines every tool
    the conversation uses; a vision message's ``image_url`` is a string (OpenAI: an object with ``url``; both are
    read, since Mistral also takes OpenAI's format).  The loss is computed on assistant messages only, so an example
    without one teaches nothing.  Mistral's end-to-end example names two more problems its reformat script removes:
    an empty assistant message and a conversation that does not end with the assistant.
batch (https://docs.mistral.ai/studio/batch-processing)
    ``{"custom_id": "0", "body": {...}}``: "a unique ``custom_id``" and "a ``body`` object with the raw request you
    would have when calling the original endpoint"; no ``method`` or ``url`` (OpenAI's batch lines have them): the
    endpoint and the model are chosen when the job is created ("you can only use one model ... per batch"); up to 1
    million requests a batch.

Every problem names its rule's page in its message; :data:`RULES` lists them (the README shows the table).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from attrs import frozen

from llmfiles.models import FileLimits, Problem
from llmfiles.validate.rules import bom_warning
from llmfiles.validate.stats import ExampleStats, FileFacts, HashIndex, estimate_tokens, json_chars

FT_DOC = "https://docs.mistral.ai/resources/deprecated/finetuning/text_vision_finetuning"
FT_FAQ = f"{FT_DOC}#faq"
E2E_DOC = (
    "https://github.com/mistralai/platform-docs-public/blob/main/src/content/en/docs/_guides/finetuning_sections/"
    "_03_e2e_examples/page.mdx"
)
BATCH_DOC = "https://docs.mistral.ai/studio/batch-processing"
#: RFC 8259, section 8.1: JSON text is sent without a byte order mark (Mistral's pages say nothing of one; the core's
#: :func:`llmfiles.validate.rules.bom_warning` makes the warning, as the other providers' checkers do)
BOM_DOC = "https://www.rfc-editor.org/rfc/rfc8259#section-8.1"
#: the fine-tuning FAQ: "the size limit for an individual training data file is 512MB"
MAX_FILE_BYTES = 512 * 1000 * 1000
#: the batch page: "We support up to 1 million requests in a single batch"
MAX_REQUESTS = 1_000_000
#: the batch page's limit, for ``llmfiles split`` (it documents no byte limit of its own: the Files API's 512 MB
#: a file applies, which the core adds from ``ProviderInfo.max_file_size``)
BATCH_LIMITS = FileLimits(max_records=MAX_REQUESTS, docs=BATCH_DOC)
#: "Both id and tool_call_id are randomly generated strings of exactly 9 characters"
TOOL_CALL_ID_LENGTH = 9

ROLES = frozenset({"system", "user", "assistant", "tool"})
MESSAGE_KEYS = frozenset({"role", "content", "tool_calls", "tool_call_id", "name", "weight"})
RECORD_KEYS = frozenset({"messages", "tools"})
BATCH_KEYS = frozenset({"custom_id", "body"})


@frozen(kw_only=True)
class Rule:
    """One rule: its code, how bad breaking it is, the page it comes from and what the page says."""

    code: str
    severity: Literal["error", "warning"]
    doc: str
    says: str


RULES: Mapping[str, Rule] = {
    r.code: r
    for r in (
        Rule(
            code="no_messages", severity="error", doc=FT_DOC, says='data is stored under the "messages" key as a list'
        ),
        Rule(
            code="bad_message", severity="error", doc=FT_DOC, says="each message is a dictionary with role and content"
        ),
        Rule(code="bad_role", severity="error", doc=FT_DOC, says='role is "system", "user", "assistant" or "tool"'),
        Rule(code="missing_content", severity="error", doc=FT_DOC, says='a message has "content" (or "tool_calls")'),
        Rule(
            code="bad_content",
            severity="error",
            doc=FT_DOC,
            says='content is text, or a list of {"type": "text"|"image_url", ...}',
        ),
        Rule(
            code="tool_calls_not_assistant",
            severity="error",
            doc=FT_DOC,
            says="only assistant messages have tool_calls",
        ),
        Rule(
            code="content_with_tool_calls",
            severity="error",
            doc=FT_DOC,
            says='an assistant message with "tool_calls" cannot have a "content" key',
        ),
        Rule(
            code="tool_call_not_answered",
            severity="error",
            doc=FT_DOC,
            says="tool_calls are followed by a tool message, which is followed by another assistant message",
        ),
        Rule(
            code="bad_tool_call", severity="error", doc=FT_DOC, says="a tool call has an id and a function with a name"
        ),
        Rule(
            code="bad_tool_call_id",
            severity="error",
            doc=FT_DOC,
            says="id and tool_call_id are strings of exactly 9 characters",
        ),
        Rule(
            code="unknown_tool_call_id",
            severity="error",
            doc=FT_DOC,
            says="a tool message's tool_call_id matches the id of an earlier assistant tool call",
        ),
        Rule(code="tool_not_declared", severity="error", doc=FT_DOC, says="tools defines every tool the example uses"),
        Rule(
            code="no_assistant_message",
            severity="error",
            doc=FT_DOC,
            says="the loss is computed on assistant messages only: an example needs one",
        ),
        Rule(
            code="empty_assistant",
            severity="warning",
            doc=E2E_DOC,
            says="an empty assistant message is an issue the reformat script removes",
        ),
        Rule(
            code="last_not_assistant",
            severity="warning",
            doc=E2E_DOC,
            says="a conversation whose last message is not the assistant's is an issue the reformat script removes",
        ),
        Rule(code="unknown_field", severity="warning", doc=FT_DOC, says="examples hold messages (and tools)"),
        Rule(code="file_too_large", severity="error", doc=FT_FAQ, says="a training file has at most 512MB"),
        Rule(
            code="bom",
            severity="warning",
            doc=BOM_DOC,
            says="JSON text is sent without a byte order mark; Mistral's pages say nothing of one",
        ),
        Rule(code="missing_custom_id", severity="error", doc=BATCH_DOC, says="each request has a unique custom_id"),
        Rule(code="bad_custom_id", severity="error", doc=BATCH_DOC, says="custom_id is a string naming the request"),
        Rule(code="duplicate_custom_id", severity="error", doc=BATCH_DOC, says="custom_id is unique"),
        Rule(code="bad_body", severity="error", doc=BATCH_DOC, says="body is an object: the endpoint's request body"),
        Rule(
            code="bad_batch_messages",
            severity="error",
            doc=BATCH_DOC,
            says="a chat completion body's messages are {role, content} objects",
        ),
        Rule(
            code="openai_batch_field",
            severity="warning",
            doc=BATCH_DOC,
            says="a line has custom_id and body only; the endpoint and model are chosen when the job is created",
        ),
        Rule(code="mixed_models", severity="warning", doc=BATCH_DOC, says="one model per batch"),
        Rule(code="too_many_requests", severity="error", doc=BATCH_DOC, says="up to 1 million requests a batch"),
    )
}


def problem(code: str, path: str, message: str) -> Problem:
    """A problem of rule ``code``, its message ending with the page the rule comes from."""
    rule = RULES[code]
    return Problem(line=None, code=code, message=f"{message} (see {rule.doc})", path=path, severity=rule.severity)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(type(value), "a number")


def _is_empty(content: Any) -> bool:
    return content is None or (isinstance(content, (str, list)) and not content)


# --- fine-tuning --------------------------------------------------------------------------------------------------


class FineTuneChecker:
    """Checks the records of a Mistral ``fine-tune`` file (see the module documentation for the rules)."""

    def __init__(self) -> None:
        self.stats = ExampleStats(unit="examples")

    def start(self, facts: FileFacts) -> list[Problem]:
        """A file over the 512 MB a training file may have; a byte order mark (a warning, see :data:`BOM_DOC`)."""
        out = [bom_warning("Mistral")] if facts.has_bom else []
        if facts.size > MAX_FILE_BYTES:
            out.append(
                problem(
                    "file_too_large",
                    "",
                    f"the file has {facts.size:,} bytes; a training file may have {MAX_FILE_BYTES:,}: split it (a job "
                    "takes several files)",
                )
            )
        return out

    def check(self, line_no: int, record: dict[str, Any]) -> list[Problem]:
        messages = record.get("messages")
        if not isinstance(messages, list) or not messages:
            return [problem("no_messages", "messages", f'"messages" is a non-empty list, not {_kind(messages)}')]
        out: list[Problem] = []
        roles: list[str] = []
        calls: dict[str, int] = {}
        used: set[str] = set()
        for i, msg in enumerate(messages):
            out.extend(self._message(msg, i, messages, calls, used, roles))
        out.extend(self._conversation(messages, roles))
        out.extend(_declared(record.get("tools"), used))
        out.extend(
            problem("unknown_field", str(k), f"examples have messages and tools, not {k!r}: remove it")
            for k in record
            if k not in RECORD_KEYS
        )
        chars = json_chars(messages) + json_chars(record.get("tools") or "")
        self.stats.add(messages=len(messages), tokens=estimate_tokens(chars), roles=roles, format="chat")
        return out

    def _message(
        self, msg: Any, i: int, messages: list[Any], calls: dict[str, int], used: set[str], roles: list[str]
    ) -> list[Problem]:
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            return [problem("bad_message", where, f"a message is an object with role and content, not {_kind(msg)}")]
        role = msg.get("role")
        if not isinstance(role, str) or role not in ROLES:
            hint = " (Mistral has no 'function' or 'developer' role)" if role in ("function", "developer") else ""
            return [
                problem("bad_role", f"{where}.role", f"role is system, user, assistant or tool, not {role!r}{hint}")
            ]
        roles.append(role)
        out = [
            problem("unknown_field", f"{where}.{k}", f"messages have no field {k!r}: remove it")
            for k in msg
            if k not in MESSAGE_KEYS
        ]
        if "tool_calls" in msg:
            out.extend(self._tool_calls(msg, i, messages, calls, used))
        elif "content" not in msg:
            out.append(problem("missing_content", where, f'the {role} message has no "content"'))
        else:
            out.extend(_content(msg["content"], f"{where}.content"))
            if role == "assistant" and _is_empty(msg["content"]):
                out.append(problem("empty_assistant", f"{where}.content", "the assistant message is empty"))
        if role == "tool":
            out.extend(_answers(msg, where, calls))
        return out

    def _tool_calls(
        self, msg: dict[str, Any], i: int, messages: list[Any], calls: dict[str, int], used: set[str]
    ) -> list[Problem]:
        where = f"messages[{i}]"
        if msg.get("role") != "assistant":
            return [
                problem("tool_calls_not_assistant", f"{where}.tool_calls", "only assistant messages have tool_calls")
            ]
        out: list[Problem] = []
        if "content" in msg:
            out.append(
                problem(
                    "content_with_tool_calls",
                    f"{where}.content",
                    'an assistant message with "tool_calls" cannot have a "content" key: remove it (OpenAI allows '
                    "both; Mistral does not)",
                )
            )
        tool_calls = msg.get("tool_calls")
        if not isinstance(tool_calls, list) or not tool_calls:
            return [*out, problem("bad_tool_call", f"{where}.tool_calls", "tool_calls is a non-empty list of calls")]
        for j, call in enumerate(tool_calls):
            out.extend(_call(call, f"{where}.tool_calls[{j}]", i, calls, used))
        if not _answered(messages, i):
            out.append(
                problem(
                    "tool_call_not_answered",
                    f"{where}.tool_calls",
                    "a message with tool_calls is followed by the tool's answer (role tool), then by the assistant",
                )
            )
        return out

    @staticmethod
    def _conversation(messages: list[Any], roles: list[str]) -> list[Problem]:
        if "assistant" not in roles:
            return [
                problem(
                    "no_assistant_message",
                    "messages",
                    'the example has no assistant message, so nothing to learn: add {"role": "assistant", ...}',
                )
            ]
        last = messages[-1]
        if _role(last) in ("system", "user", "tool"):
            return [
                problem(
                    "last_not_assistant",
                    f"messages[{len(messages) - 1}].role",
                    "the conversation ends with a message that is not the assistant's: end it with the answer",
                )
            ]
        return []

    def finish(self) -> list[Problem]:
        return []


def _role(message: Any) -> Any:
    return message.get("role") if isinstance(message, dict) else None


def _answered(messages: list[Any], i: int) -> bool:
    """Whether the tool calls of message ``i`` are followed by tool messages and then by the assistant.  A call that
    ends the conversation is fine: the documentation's own example ends so (it teaches making the call)."""
    j = i + 1
    if j == len(messages):
        return True
    if _role(messages[j]) != "tool":
        return False
    while j < len(messages) and _role(messages[j]) == "tool":
        j += 1
    return j < len(messages) and _role(messages[j]) == "assistant"


def _content(content: Any, where: str) -> list[Problem]:
    """A message's content: text, or a list of text and image parts (``image_url`` a string, or OpenAI's object)."""
    if isinstance(content, str):
        return []
    if not isinstance(content, list):
        return [problem("bad_content", where, f"content is a string or a list of parts, not {_kind(content)}")]
    for k, part in enumerate(content):
        here = f"{where}[{k}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            continue
        image = part.get("image_url") if isinstance(part, dict) else None
        if kind == "image_url" and (
            isinstance(image, str) or (isinstance(image, dict) and isinstance(image.get("url"), str))
        ):
            continue
        return [
            problem(
                "bad_content",
                here,
                'a part is {"type": "text", "text": ...} or {"type": "image_url", "image_url": ...}',
            )
        ]
    return []


def _call(call: Any, where: str, index: int, calls: dict[str, int], used: set[str]) -> list[Problem]:
    """One tool call: an id of 9 characters and a function with a name (recorded for the tool messages after it)."""
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
        return [
            problem("bad_tool_call", where, 'a tool call is {"id": ..., "type": "function", "function": {"name", ...}}')
        ]
    used.add(fn["name"])
    call_id = call.get("id")
    if not isinstance(call_id, str) or len(call_id) != TOOL_CALL_ID_LENGTH:
        return [
            problem(
                "bad_tool_call_id",
                f"{where}.id",
                f"a tool call's id is a string of exactly {TOOL_CALL_ID_LENGTH} characters (such as 'TX92Jm8Zi'), not "
                f"{call_id!r}",
            )
        ]
    calls[call_id] = index
    return []


def _answers(msg: dict[str, Any], where: str, calls: dict[str, int]) -> list[Problem]:
    """A tool message answers an earlier call by its 9-character id."""
    call_id = msg.get("tool_call_id")
    if not isinstance(call_id, str) or len(call_id) != TOOL_CALL_ID_LENGTH:
        return [
            problem(
                "bad_tool_call_id",
                f"{where}.tool_call_id",
                f"tool_call_id is the {TOOL_CALL_ID_LENGTH}-character id of the call it answers, not {call_id!r}",
            )
        ]
    if call_id not in calls:
        return [
            problem(
                "unknown_tool_call_id",
                f"{where}.tool_call_id",
                f"tool_call_id {call_id!r} matches no earlier assistant tool call",
            )
        ]
    return []


def _declared(tools: Any, used: set[str]) -> list[Problem]:
    """Every tool a call uses is defined in ``tools``."""
    if not used:
        return []
    names = set()
    if isinstance(tools, list):
        for tool in tools:
            fn = tool.get("function") if isinstance(tool, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("name"), str):
                names.add(fn["name"])
    missing = sorted(used - names)
    if not missing:
        return []
    return [
        problem(
            "tool_not_declared",
            "tools",
            f"the example calls {', '.join(missing)} but tools does not define it: add its definition",
        )
    ]


# --- batch --------------------------------------------------------------------------------------------------------


class BatchChecker:
    """Checks the lines of a Mistral ``batch`` file (see the module documentation for the rules)."""

    def __init__(self) -> None:
        self.requests = 0
        self.ids = HashIndex(max_items=MAX_REQUESTS + 1)
        self.model: str | None = None
        self.model_line = 0
        self.stats = ExampleStats(unit="requests")

    def start(self, facts: FileFacts) -> list[Problem]:
        """A byte order mark (a warning, see :data:`BOM_DOC`)."""
        return [bom_warning("Mistral")] if facts.has_bom else []

    def check(self, line_no: int, record: dict[str, Any]) -> list[Problem]:
        self.requests += 1
        out = self._custom_id(line_no, record.get("custom_id"), "custom_id" in record)
        body = record.get("body")
        if not isinstance(body, dict) or not body:
            out.append(
                problem("bad_body", "body", f"body is the endpoint's request body, an object, not {_kind(body)}")
            )
        else:
            out.extend(self._body(line_no, body))
        for key in record:
            if key not in BATCH_KEYS:
                out.append(
                    problem(
                        "openai_batch_field",
                        str(key),
                        f"Mistral's batch lines have custom_id and body only, not {key!r}"
                        + (": the endpoint is chosen when the job is created" if key in ("url", "method") else ""),
                    )
                )
        return out

    def _custom_id(self, line_no: int, value: Any, present: bool) -> list[Problem]:
        if not present:
            return [
                problem("missing_custom_id", "custom_id", f'the line has no custom_id: add one, such as "{line_no}"')
            ]
        if not isinstance(value, str) or not value:
            return [problem("bad_custom_id", "custom_id", f"custom_id is a non-empty string, not {_kind(value)}")]
        earlier = self.ids.add(hash(value), line_no)
        if earlier:
            return [
                problem("duplicate_custom_id", "custom_id", f"custom_id {value!r} is also the id of line {earlier}")
            ]
        return []

    def _body(self, line_no: int, body: dict[str, Any]) -> list[Problem]:
        out: list[Problem] = []
        model = body.get("model")
        if isinstance(model, str) and model:
            if self.model is None:
                self.model, self.model_line = model, line_no
            elif model != self.model:
                out.append(
                    problem(
                        "mixed_models",
                        "body.model",
                        f"model {model!r}, while line {self.model_line} has {self.model!r}: a batch runs one model",
                    )
                )
        messages = body.get("messages")
        roles: list[str] = []
        if "messages" in body:
            ok = isinstance(messages, list) and bool(messages)
            for m in messages if isinstance(messages, list) else []:
                if isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m:
                    roles.append(m["role"])
                else:
                    ok = False
            if not ok:
                out.append(
                    problem("bad_batch_messages", "body.messages", 'messages is a list of {"role", "content"} objects')
                )
        self.stats.add(
            messages=len(messages) if isinstance(messages, list) else None,
            tokens=estimate_tokens(json_chars(messages if messages is not None else body)),
            roles=roles,
            format="chat" if "messages" in body else None,
        )
        return out

    def finish(self) -> list[Problem]:
        if self.requests > MAX_REQUESTS:
            return [
                problem(
                    "too_many_requests",
                    "",
                    f"the file has {self.requests:,} requests; a batch takes at most {MAX_REQUESTS:,}: cut it into "
                    "files that fit with: llmfiles split FILE -p mistral --purpose batch -o DIR",
                )
            ]
        return []
