"""Bedrock's fine-tuning formats: their rules, and conversion from OpenAI's chat format.

Bedrock model customization reads JSONL whose shape depends on the model family:

``prompt-completion``
    ``{"prompt": "...", "completion": "..."}`` (Amazon Titan, Meta Llama, Cohere).
``claude``
    ``{"system"?: "...", "messages": [{"role": "user", "content": "..."}, {"role": "assistant", ...}]}``: at least
    two messages, starting with ``user``, alternating, ending with ``assistant``, no other keys.
``nova``
    ``bedrock-conversation-2024``: ``{"schemaVersion", "system"?: [{"text"}], "messages": [{"role",
    "content": [{"text"}]}]}``, same turn rules, and none of Nova's reserved strings (``User:``, ``Bot:``,
    ``Assistant:``, ``System:``, ``<image>``, ``<video>``, ``[EOS]``) in system or user text.

:func:`convert_record` turns one OpenAI chat record (``{"messages": [{"role": "system" | "user" | "assistant",
"content": ...}]}``) into one of them; :func:`convert_for_upload` is what the registered conversions apply to each
record of a file (the core streams the file, converts it into a file of its own and checks that with the target's
rules before it is uploaded).  :class:`FineTuneChecker` and :class:`BatchChecker` are the provider's record checkers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from llmfiles.models import Problem

FORMATS = ("claude", "nova", "prompt-completion")
NOVA_SCHEMA = "bedrock-conversation-2024"
NOVA_RESERVED = ("User:", "Bot:", "Assistant:", "System:", "<image>", "<video>", "[EOS]")
OPENAI_CHAT = "openai-chat"


def _err(code: str, message: str, path: str = "") -> Problem:
    return Problem(line=None, code=code, message=message, path=path)


def _warn(code: str, message: str, path: str = "") -> Problem:
    return Problem(line=None, code=code, message=message, path=path, severity="warning")


def errors(problems: Iterable[Problem]) -> list[Problem]:
    """The errors among ``problems`` (warnings left out)."""
    return [p for p in problems if p.severity == "error"]


# --- the rules of each format --------------------------------------------------------------------------------


def _turn_order(roles: list[str], path: str, family: str) -> list[Problem]:
    out: list[Problem] = []
    if len(roles) < 2:
        out.append(_err("too_few_messages", f"{family} needs at least a user and an assistant message", path))
        return out
    if roles[0] != "user":
        out.append(_err("first_not_user", f"the first message must be from the user, not {roles[0]!r}", f"{path}[0]"))
    if roles[-1] != "assistant":
        out.append(
            _err(
                "last_not_assistant",
                f"the last message must be from the assistant (the answer to learn), not {roles[-1]!r}",
                f"{path}[{len(roles) - 1}]",
            )
        )
    for i in range(1, len(roles)):
        if roles[i] == roles[i - 1]:
            out.append(
                _err(
                    "turns_not_alternating",
                    f"two {roles[i]!r} messages in a row; user and assistant must alternate",
                    f"{path}[{i}]",
                )
            )
            break
    return out


def _text(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def check_prompt_completion(record: Mapping[str, Any]) -> list[Problem]:
    """The rules of ``{"prompt", "completion"}`` records."""
    out: list[Problem] = []
    if not isinstance(record.get("prompt"), str):
        out.append(_err("missing_prompt", '"prompt" must be a string', "prompt"))
    if not _text(record.get("completion")):
        out.append(_err("missing_completion", '"completion" must be a non-empty string', "completion"))
    extra = sorted(set(record) - {"prompt", "completion"})
    if extra:
        out.append(_warn("extra_keys", f"keys {', '.join(map(repr, extra))} are not part of the format"))
    return out


def check_claude(record: Mapping[str, Any]) -> list[Problem]:
    """The rules of Claude's ``{"system"?, "messages"}`` records (no other keys allowed)."""
    out: list[Problem] = []
    extra = sorted(set(record) - {"system", "messages"})
    if extra:
        out.append(_err("extra_keys", f"Claude records allow only 'system' and 'messages', not {', '.join(extra)}"))
    if "system" in record and not isinstance(record["system"], str):
        out.append(_err("bad_system", '"system" must be a string', "system"))
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        out.append(_err("missing_messages", '"messages" must be a non-empty list', "messages"))
        return out
    roles: list[str] = []
    for i, msg in enumerate(messages):
        path = f"messages[{i}]"
        if not isinstance(msg, dict):
            out.append(_err("bad_message", "each message must be an object with 'role' and 'content'", path))
            return out
        role = msg.get("role")
        if role not in ("user", "assistant"):
            hint = " (put a system prompt in the top-level 'system' field)" if role == "system" else ""
            out.append(_err("bad_role", f"role must be 'user' or 'assistant', not {role!r}{hint}", f"{path}.role"))
            return out
        roles.append(role)
        if not _text(msg.get("content")):
            out.append(_err("empty_content", "content must be a non-empty string", f"{path}.content"))
        extra_m = sorted(set(msg) - {"role", "content"})
        if extra_m:
            out.append(
                _err("extra_keys", f"a message allows only 'role' and 'content', not {', '.join(extra_m)}", path)
            )
    out.extend(_turn_order(roles, "messages", "Claude"))
    return out


def _reserved(text: str) -> str | None:
    return next((word for word in NOVA_RESERVED if word in text), None)


def check_nova(record: Mapping[str, Any]) -> list[Problem]:
    """The rules of Nova's ``bedrock-conversation-2024`` records."""
    out: list[Problem] = []
    if not isinstance(record.get("schemaVersion"), str):
        out.append(_err("missing_schema_version", f'"schemaVersion" must be a string such as {NOVA_SCHEMA!r}'))
    system = record.get("system")
    if system is not None:
        if not isinstance(system, list) or not all(
            isinstance(b, dict) and isinstance(b.get("text"), str) for b in system
        ):
            out.append(_err("bad_system", '"system" must be a list of {"text": "..."} blocks', "system"))
        else:
            for j, block in enumerate(system):
                word = _reserved(block["text"])
                if word:
                    out.append(
                        _err("reserved_keyword", f"{word!r} is reserved by Nova; reword it", f"system[{j}].text")
                    )
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        out.append(_err("missing_messages", '"messages" must be a non-empty list', "messages"))
        return out
    roles: list[str] = []
    for i, msg in enumerate(messages):
        path = f"messages[{i}]"
        if not isinstance(msg, dict):
            out.append(_err("bad_message", "each message must be an object with 'role' and 'content'", path))
            return out
        role = msg.get("role")
        if role not in ("user", "assistant"):
            out.append(_err("bad_role", f"role must be 'user' or 'assistant', not {role!r}", f"{path}.role"))
            return out
        roles.append(role)
        content = msg.get("content")
        if not isinstance(content, list) or not content:
            out.append(_err("bad_content", 'content must be a non-empty list of blocks such as {"text": "..."}', path))
            continue
        for j, block in enumerate(content):
            bpath = f"{path}.content[{j}]"
            if not isinstance(block, dict) or not block:
                out.append(_err("bad_block", "each content block must be an object such as {'text': '...'}", bpath))
                continue
            if "text" not in block:
                continue  # image, video or reasoning blocks: Bedrock checks their S3 locations itself
            text = block["text"]
            if not _text(text):
                out.append(_err("empty_content", "text must be a non-empty string", f"{bpath}.text"))
                continue
            word = _reserved(text)
            if word:
                make = _err if role == "user" else _warn
                out.append(make("reserved_keyword", f"{word!r} is reserved by Nova; reword it", f"{bpath}.text"))
    out.extend(_turn_order(roles, "messages", "Nova"))
    return out


RULES = {"claude": check_claude, "nova": check_nova, "prompt-completion": check_prompt_completion}


# --- OpenAI chat records as input ----------------------------------------------------------------------------

_OPENAI_ROLES = frozenset({"system", "developer", "user", "assistant"})


def _openai_text(content: Any, path: str, out: list[Problem]) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for j, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                out.append(
                    _err(
                        "cannot_convert",
                        f"a {kind!r} content part has no equivalent in the target format; only text converts",
                        f"{path}[{j}]",
                    )
                )
                return None
        return "".join(texts)
    out.append(_err("bad_content", "content must be a string or a list of text parts", path))
    return None


def read_openai_chat(record: Mapping[str, Any]) -> tuple[str | None, list[tuple[str, str]], list[Problem]]:
    """The system prompt and the (role, text) turns of an OpenAI chat record, with what cannot be converted."""
    out: list[Problem] = []
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        out.append(_err("missing_messages", 'an OpenAI chat record needs a non-empty "messages" list', "messages"))
        return None, [], out
    if "tools" in record or "functions" in record:
        for key in ("tools", "functions"):
            if key in record:
                out.append(_warn("dropped", f"{key!r} has no equivalent in the target format and is left out", key))
    system_parts: list[str] = []
    turns: list[tuple[str, str]] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            out.append(
                _err("bad_message", "each message must be an object with 'role' and 'content'", f"messages[{i}]")
            )
            return None, [], out
        role = msg.get("role")
        if role in ("tool", "function") or msg.get("tool_calls") or msg.get("function_call"):
            out.append(_err("cannot_convert", "tool calls and tool results cannot be converted", f"messages[{i}]"))
            return None, [], out
        if role not in _OPENAI_ROLES:
            out.append(_err("bad_role", f"unknown role {role!r}", f"messages[{i}].role"))
            return None, [], out
        content = msg.get("content")
        text = content if isinstance(content, str) else _openai_text(content, f"messages[{i}].content", out)
        if text is None:
            return None, [], out
        if role in ("system", "developer"):
            if turns:
                out.append(
                    _err(
                        "cannot_convert",
                        "a system message after the conversation started has no place in the target format",
                        f"messages[{i}]",
                    )
                )
                return None, [], out
            system_parts.append(text)
            continue
        if "weight" in msg and msg["weight"] == 0:
            out.append(
                _warn(
                    "dropped",
                    "'weight': 0 is dropped: Bedrock trains on every assistant message",
                    f"messages[{i}].weight",
                )
            )
        turns.append((role, text))
    system = "\n\n".join(system_parts) if system_parts else None
    return system, turns, out


def build(target: str, system: str | None, turns: list[tuple[str, str]]) -> tuple[dict[str, Any] | None, list[Problem]]:
    """The ``target`` record for a system prompt and turns (``None`` and the reason when it cannot be built)."""
    if target == "claude":
        rec: dict[str, Any] = {}
        if system:
            rec["system"] = system
        rec["messages"] = [{"role": r, "content": t} for r, t in turns]
        return rec, []
    if target == "nova":
        rec = {"schemaVersion": NOVA_SCHEMA}
        if system:
            rec["system"] = [{"text": system}]
        rec["messages"] = [{"role": r, "content": [{"text": t}]} for r, t in turns]
        return rec, []
    # prompt-completion: exactly one exchange; a system prompt goes before the prompt, separated by a blank line
    if [r for r, _ in turns] != ["user", "assistant"]:
        shape = " → ".join(r for r, _ in turns) or "no messages"
        return None, [
            _err(
                "cannot_convert",
                f"prompt-completion holds one user message and one assistant answer; this record has {shape}",
                "messages",
            )
        ]
    prompt = turns[0][1] if not system else f"{system}\n\n{turns[0][1]}"
    return {"prompt": prompt, "completion": turns[1][1]}, []


def convert_record(
    record: Mapping[str, Any], target: str, *, check: bool = True
) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Convert one OpenAI chat record to ``target``; with ``check`` the problems include the target format's own
    rules (the upload's content checks), without it only what makes the conversion impossible."""
    system, turns, problems = read_openai_chat(record)
    if problems and errors(problems):
        return None, problems
    converted, more = build(target, system, turns)
    problems.extend(more)
    if converted is None or not check:
        return converted, problems
    problems.extend(
        Problem(
            line=None,
            code=p.code,
            message=f"after conversion to {target}: {p.message}",
            severity=p.severity,
            path=p.path,
        )
        for p in RULES[target](converted)
    )
    return (None if errors(problems) else converted), problems


# --- the conversions ``llmfiles convert`` and ``convert=`` apply ------------------------------------------------


def convert_for_upload(record: Mapping[str, Any], target: str) -> tuple[dict[str, Any] | None, list[Problem]]:
    """One record of a file being converted to ``target``: an OpenAI chat record converted (the target's own rules
    are checked by the core over the converted file), or why it cannot be; a record already in a Bedrock format is
    named as such."""
    kind = detect(record)
    if kind in ("nova", "prompt-completion"):
        return None, [
            _err(
                "not_openai_chat",
                f"converting to {target} reads OpenAI chat records ({{'messages': [...]}}); this one is already in "
                f"{kind} format: upload it without convert",
            )
        ]
    return convert_record(record, target, check=False)


# --- record checkers (BedrockProvider.record_checker) ----------------------------------------------------------


def detect(record: Mapping[str, Any]) -> str | None:
    """Which format a record is in: one of :data:`FORMATS`, ``"openai-chat"``, or ``None``."""
    if "schemaVersion" in record:
        return "nova"
    if "prompt" in record or "completion" in record:
        return "prompt-completion"
    messages = record.get("messages")
    if not isinstance(messages, list):
        return None
    for msg in messages:
        if not isinstance(msg, dict):
            continue
        if msg.get("role") in ("system", "developer", "tool", "function") or "tool_calls" in msg:
            return OPENAI_CHAT
        content = msg.get("content")
        if isinstance(content, list):
            blocks = [b for b in content if isinstance(b, dict)]
            return OPENAI_CHAT if any("type" in b for b in blocks) else "nova"
    return "claude"


def _at(line_no: int, problems: Iterable[Problem]) -> list[Problem]:
    return [Problem(line=line_no, code=p.code, message=p.message, severity=p.severity, path=p.path) for p in problems]


class FineTuneChecker:
    """Checks a fine-tuning file: each record by the rules of the one format the file is in.

    The format is recognised from the first record and every record must be in it; OpenAI chat records are accepted
    (some Bedrock customizations read them) with a warning naming ``convert``.  A file uploaded with ``convert`` is
    checked after its conversion, so by the rules of the target format.
    """

    def __init__(self) -> None:
        self.format: str | None = None
        self.first_line = 0
        self.records = 0

    def check(self, line_no: int, record: dict[str, Any]) -> Iterable[Problem]:
        """The problems of one record, by the rules of the file's format."""
        self.records += 1
        kind = detect(record)
        if kind is None:
            return [
                Problem(
                    line=line_no,
                    code="unknown_format",
                    message=(
                        "not a Bedrock fine-tuning record: use {'prompt', 'completion'}, Claude's "
                        "{'system', 'messages'} or Nova's bedrock-conversation-2024"
                    ),
                )
            ]
        if self.format is None:
            self.format, self.first_line = kind, line_no
        elif kind != self.format:
            return [
                Problem(
                    line=line_no,
                    code="mixed_formats",
                    message=f"this record is in {kind} format but line {self.first_line} is {self.format}; "
                    "one file must use one format",
                )
            ]
        if kind == OPENAI_CHAT:
            _, _, problems = read_openai_chat(record)
            return _at(line_no, errors(problems))
        return _at(line_no, RULES[kind](record))

    def finish(self) -> Iterable[Problem]:
        """A warning for a file in OpenAI chat format (which most Bedrock customizations do not read)."""
        if self.format == OPENAI_CHAT:
            return [
                Problem(
                    line=None,
                    code="openai_chat_format",
                    severity="warning",
                    message=(
                        "the file is in OpenAI chat format, which Claude, Nova, Titan and Llama customization jobs do "
                        "not read: pass convert='claude', 'nova' or 'prompt-completion' (CLI --convert NAME) "
                        "unless your job takes OpenAI chat records"
                    ),
                )
            ]
        return []


class BatchChecker:
    """Checks a Bedrock batch-inference input file: ``{"recordId"?: str, "modelInput": {...}}`` per line."""

    def check(self, line_no: int, record: dict[str, Any]) -> Iterable[Problem]:
        """The problems of one batch record (``modelInput`` an object, ``recordId`` a string)."""
        out: list[Problem] = []
        if not isinstance(record.get("modelInput"), dict):
            out.append(
                Problem(
                    line=line_no,
                    code="missing_model_input",
                    message='each record needs "modelInput": the model\'s request body as an object',
                    path="modelInput",
                )
            )
        if "recordId" in record and not isinstance(record["recordId"], str):
            out.append(
                Problem(line=line_no, code="bad_record_id", message='"recordId" must be a string', path="recordId")
            )
        return out

    def finish(self) -> Iterable[Problem]:
        """No file-level rules."""
        return []
