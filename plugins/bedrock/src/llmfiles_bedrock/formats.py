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

from attrs import frozen

from llmfiles.models import FileLimits, Problem
from llmfiles.validate.rules import bom_warning
from llmfiles.validate.stats import CHARS_PER_TOKEN, FileFacts, estimate_tokens

FORMATS = ("claude", "nova", "prompt-completion")
NOVA_SCHEMA = "bedrock-conversation-2024"
NOVA_RESERVED = ("User:", "Bot:", "Assistant:", "System:", "<image>", "<video>", "[EOS]")
OPENAI_CHAT = "openai-chat"
#: the formats as messages name them
FORMAT_NAMES = {
    "claude": "Claude's messages",
    "nova": "bedrock-conversation-2024 (Nova's)",
    "prompt-completion": "prompt-completion",
    OPENAI_CHAT: "OpenAI chat",
}


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
    """The rules of ``{"prompt", "completion"}`` records (Titan, Llama 3.1, Cohere), from "Prepare data for
    fine-tuning your models", Text-to-Text models (Amazon Bedrock User Guide,
    https://docs.aws.amazon.com/bedrock/latest/userguide/model-customization-prepare.html): both strings, the
    completion the text to learn; other keys are no part of the format (a warning)."""
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
    """The rules of Claude's ``{"system"?, "messages"}`` records on Bedrock.

    From "Prepare data for fine-tuning your models", Text-to-Text models (Amazon Bedrock User Guide,
    https://docs.aws.amazon.com/bedrock/latest/userguide/model-customization-prepare.html) and Anthropic's
    "Finetuning Claude 3 Haiku on Bedrock" (https://platform.claude.com/cookbook/finetuning-finetuning-on-bedrock):
    ``system``
    is an optional string; ``messages`` holds at least two messages, the first from the user, the last from the
    assistant, alternating; each message is ``{"role", "content"}`` with ``content`` a string (not the Messages
    API's list of content blocks); no other keys anywhere.
    """
    out: list[Problem] = []
    extra = sorted(set(record) - {"system", "messages"})
    if extra:
        out.append(_err("extra_keys", f"Claude records allow only 'system' and 'messages', not {', '.join(extra)}"))
    if "system" in record and not isinstance(record["system"], str):
        hint = _BLOCKS_HINT if _text_blocks(record["system"]) is not None else ""
        out.append(_err("bad_system", f'"system" must be a string{hint}', "system"))
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        out.append(_err("missing_messages", '"messages" must be a non-empty list', "messages"))
        return out
    roles = _claude_messages(messages, out)
    if roles is not None:
        out.extend(_turn_order(roles, "messages", "Claude"))
    return out


_BLOCKS_HINT = (
    ", not a list of Messages API content blocks: Bedrock's Claude fine-tuning format takes plain text "
    "(join the text blocks, or run llmfiles convert --to claude, which does)"
)


def _text_blocks(value: Any) -> str | None:
    """The joined text of a list of Messages API text blocks (``[{"type": "text", "text": ...}]``), else None."""
    if not isinstance(value, list) or not value:
        return None
    texts = []
    for block in value:
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            return None
        texts.append(block["text"])
    return "".join(texts)


def _claude_messages(messages: list[Any], out: list[Problem]) -> list[str] | None:
    """Checks each message of a Claude record; their roles, or None when one is not a message at all."""
    roles: list[str] = []
    for i, msg in enumerate(messages):
        path = f"messages[{i}]"
        if not isinstance(msg, dict):
            out.append(_err("bad_message", "each message must be an object with 'role' and 'content'", path))
            return None
        role = msg.get("role")
        if role not in ("user", "assistant"):
            hint = " (put a system prompt in the top-level 'system' field)" if role == "system" else ""
            out.append(_err("bad_role", f"role must be 'user' or 'assistant', not {role!r}{hint}", f"{path}.role"))
            return None
        roles.append(role)
        content = msg.get("content")
        if isinstance(content, list):
            hint = _BLOCKS_HINT if _text_blocks(content) is not None else ""
            out.append(_err("bad_content", f"content must be a string{hint}", f"{path}.content"))
        elif not _text(content):
            out.append(_err("empty_content", "content must be a non-empty string", f"{path}.content"))
        extra_m = sorted(set(msg) - {"role", "content"})
        if extra_m:
            out.append(
                _err("extra_keys", f"a message allows only 'role' and 'content', not {', '.join(extra_m)}", path)
            )
    return roles


def _reserved(text: str) -> str | None:
    return next((word for word in NOVA_RESERVED if word in text), None)


def check_nova(record: Mapping[str, Any]) -> list[Problem]:
    """The rules of Nova's ``bedrock-conversation-2024`` records.

    From "Preparing data for fine-tuning Understanding models" (Amazon Nova User Guide,
    https://docs.aws.amazon.com/nova/latest/userguide/fine-tune-prepare-data-understanding.html):
    ``schemaVersion`` "can be any string value" - the guide does not call it required and AWS's own validator
    (``nova_ft_dataset_validator.py``) accepts a record without it, so its absence is a warning, a value that is not
    a string an error; ``system`` is an optional list of ``{"text"}`` blocks; the roles are ``user`` and
    ``assistant``, the first turn the user's and the last the assistant's; ``User:``, ``Bot:``, ``Assistant:``,
    ``System:``, ``<image>``, ``<video>`` and ``[EOS]`` are reserved keywords (an error in system and user text, a
    warning in the assistant's).
    """
    out: list[Problem] = []
    if "schemaVersion" not in record:
        out.append(
            _warn(
                "missing_schema_version",
                f'no "schemaVersion": Nova records usually carry "schemaVersion": {NOVA_SCHEMA!r} (the user guide '
                "takes any string there); add it to be explicit",
            )
        )
    elif not isinstance(record["schemaVersion"], str):
        out.append(_err("bad_schema_version", f'"schemaVersion" must be a string such as {NOVA_SCHEMA!r}'))
    _nova_system(record.get("system"), out)
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
        _nova_content(msg.get("content"), role, path, out)
    out.extend(_turn_order(roles, "messages", "Nova"))
    return out


def _nova_system(system: Any, out: list[Problem]) -> None:
    if system is None:
        return
    if not isinstance(system, list) or not all(isinstance(b, dict) and isinstance(b.get("text"), str) for b in system):
        out.append(_err("bad_system", '"system" must be a list of {"text": "..."} blocks', "system"))
        return
    for j, block in enumerate(system):
        word = _reserved(block["text"])
        if word:
            out.append(_err("reserved_keyword", f"{word!r} is reserved by Nova; reword it", f"system[{j}].text"))


def _nova_content(content: Any, role: str, path: str, out: list[Problem]) -> None:
    if not isinstance(content, list) or not content:
        out.append(_err("bad_content", 'content must be a non-empty list of blocks such as {"text": "..."}', path))
        return
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


def read_claude(record: Mapping[str, Any]) -> tuple[str | None, list[tuple[str, str]], list[Problem]]:
    """The system prompt and the (role, text) turns of a Claude record, its Messages API text blocks joined into
    strings (what Bedrock's Claude format takes), with what cannot be converted; keys other than ``system`` and
    ``messages`` are left out with a warning, never silently."""
    out: list[Problem] = []
    system = record.get("system")
    if system is not None and not isinstance(system, str):
        system = _text_blocks(system)
        if system is None:
            out.append(_err("cannot_convert", '"system" must be a string or a list of text blocks', "system"))
            return None, [], out
    for key in sorted(set(record) - {"system", "messages"}):
        out.append(_warn("dropped", f"{key!r} has no place in Bedrock's fine-tuning formats and is left out", key))
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        out.append(_err("missing_messages", 'a Claude record needs a non-empty "messages" list', "messages"))
        return None, [], out
    turns: list[tuple[str, str]] = []
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, dict) else None
        content = msg.get("content") if isinstance(msg, dict) else None
        text = content if isinstance(content, str) else _text_blocks(content)
        if role not in ("user", "assistant") or text is None:
            out.append(
                _err(
                    "cannot_convert",
                    "each message must be {'role': 'user' | 'assistant', 'content': text or text blocks}; "
                    "images and tool blocks have no place in the target format",
                    f"messages[{i}]",
                )
            )
            return None, [], out
        turns.append((role, text))
    return system or None, turns, out


# --- the conversions ``llmfiles convert`` and ``convert=`` apply ------------------------------------------------


def convert_for_upload(record: Mapping[str, Any], target: str) -> tuple[dict[str, Any] | None, list[Problem]]:
    """One record of a file being converted to ``target``: an OpenAI chat record converted (the target's own rules
    are checked by the core over the converted file), a Claude record (top-level ``system``, text blocks) rewritten
    with its system prompt and its text blocks as strings, or why it cannot be; a record already in Nova or
    prompt-completion format is named as such."""
    kind = detect(record)
    if kind in ("nova", "prompt-completion"):
        return None, [
            _err(
                "not_openai_chat",
                f"converting to {target} reads OpenAI chat records ({{'messages': [...]}}); this one is already in "
                f"{kind} format: upload it without convert",
            )
        ]
    if kind == "claude":
        system, turns, problems = read_claude(record)
        if errors(problems):
            return None, problems
        converted, more = build(target, system, turns)
        return converted, problems + more
    return convert_record(record, target, check=False)


# --- record checkers (BedrockProvider.record_checker) ----------------------------------------------------------


def _has_typed_blocks(value: Any) -> bool:
    return isinstance(value, list) and any(isinstance(b, dict) and "type" in b for b in value)


def detect(record: Mapping[str, Any]) -> str | None:
    """Which format a record is in: one of :data:`FORMATS`, ``"openai-chat"``, or ``None``.

    A top-level ``system`` is no part of OpenAI's chat format: a string (or Messages API blocks) makes the record
    Claude's, a list of ``{"text"}`` blocks Nova's, whatever the shape of the messages - so a Claude record written
    with Messages API content blocks is checked by Claude's rules (which want strings), not taken for OpenAI chat.
    """
    if "schemaVersion" in record:
        return "nova"
    if "prompt" in record or "completion" in record:
        return "prompt-completion"
    messages = record.get("messages")
    if "system" in record:
        system = record["system"]
        return "nova" if isinstance(system, list) and not _has_typed_blocks(system) else "claude"
    if not isinstance(messages, list):
        return None
    for msg in messages:
        if not isinstance(msg, dict):
            continue
        if msg.get("role") in ("system", "developer", "tool", "function") or "tool_calls" in msg:
            return OPENAI_CHAT
        content = msg.get("content")
        if isinstance(content, list):
            return OPENAI_CHAT if _has_typed_blocks(content) else "nova"
    return "claude"


def _at(line_no: int, problems: Iterable[Problem]) -> list[Problem]:
    return [Problem(line=line_no, code=p.code, message=p.message, severity=p.severity, path=p.path) for p in problems]


# --- the limits of each base model -------------------------------------------------------------------------------
# From "Model requirements for training and validation datasets" (Amazon Bedrock User Guide,
# https://docs.aws.amazon.com/bedrock/latest/userguide/model-training-validation-requirements.html): Titan Text
# (Premier, G1 Express, G1 Lite) 4,096 tokens a record at batch size 1, "Character quota per sample: token quota
# x 6"; Meta Llama 3.1 / 3.2 input, output and their sum at most 16,000 tokens, 100 to 10,000 training and validation
# records; Anthropic Claude 3 Haiku 32 to 10,000 records, 32,000 tokens a record.  Amazon Nova Micro, Lite, Pro:
# 8 to 20,000 records, from the Nova User Guide's "Preparing data for fine-tuning Understanding models"
# (https://docs.aws.amazon.com/nova/latest/userguide/fine-tune-prepare-data-understanding.html; AWS's sample
# validator nova_ft_dataset_validator.py applies the same bounds).  Which format each model reads: Claude 3 Haiku
# the Claude messages format, Nova and Llama 3.2 bedrock-conversation-2024, Titan and Llama 3.1 prompt-completion
# ("Prepare data for fine-tuning your models", above).

_BEDROCK_REQUIREMENTS = (
    "Model requirements for training and validation datasets (Amazon Bedrock User Guide, "
    "https://docs.aws.amazon.com/bedrock/latest/userguide/model-training-validation-requirements.html)"
)
_NOVA_GUIDE = (
    "Preparing data for fine-tuning Understanding models (Amazon Nova User Guide, "
    "https://docs.aws.amazon.com/nova/latest/userguide/fine-tune-prepare-data-understanding.html)"
)


@frozen(kw_only=True)
class ModelLimits:
    """What a Bedrock base model takes in a fine-tuning file: its format, the records a job may have (training and
    validation together), the tokens and characters of one record; ``None``: not documented, not checked."""

    name: str
    format: str
    min_records: int | None = None
    max_records: int | None = None
    max_tokens: int | None = None
    max_chars: int | None = None
    source: str = _BEDROCK_REQUIREMENTS


def _titan(name: str) -> ModelLimits:
    # 4,096 tokens at batch size 1 (2,048 at the larger batch sizes of Express and Lite); characters: tokens x 6
    return ModelLimits(name=name, format="prompt-completion", max_tokens=4_096, max_chars=6 * 4_096)


def _llama(name: str, fmt: str) -> ModelLimits:
    # input, output and their sum each at most 16,000 tokens; 100 to 10,000 training and validation records
    return ModelLimits(
        name=name, format=fmt, min_records=100, max_records=10_000, max_tokens=16_000, max_chars=6 * 16_000
    )


def _nova(name: str) -> ModelLimits:
    return ModelLimits(name=name, format="nova", min_records=8, max_records=20_000, source=_NOVA_GUIDE)


#: the documented limits of the base models Bedrock fine-tunes, by model id (a prefix: versions and ARNs match)
BASE_MODELS: tuple[tuple[str, ModelLimits], ...] = (
    (
        "anthropic.claude-3-haiku-20240307-v1",
        ModelLimits(name="Claude 3 Haiku", format="claude", min_records=32, max_records=10_000, max_tokens=32_000),
    ),
    ("amazon.nova-micro-v1", _nova("Nova Micro")),
    ("amazon.nova-lite-v1", _nova("Nova Lite")),
    ("amazon.nova-pro-v1", _nova("Nova Pro")),
    ("amazon.titan-text-express-v1", _titan("Titan Text G1 - Express")),
    ("amazon.titan-text-lite-v1", _titan("Titan Text G1 - Lite")),
    ("amazon.titan-text-premier-v1", _titan("Titan Text Premier")),
    ("meta.llama3-1-8b-instruct-v1", _llama("Llama 3.1 8B Instruct", "prompt-completion")),
    ("meta.llama3-1-70b-instruct-v1", _llama("Llama 3.1 70B Instruct", "prompt-completion")),
    ("meta.llama3-2-1b-instruct-v1", _llama("Llama 3.2 1B Instruct", "nova")),
    ("meta.llama3-2-3b-instruct-v1", _llama("Llama 3.2 3B Instruct", "nova")),
    ("meta.llama3-2-11b-instruct-v1", _llama("Llama 3.2 11B Vision Instruct", "nova")),
    ("meta.llama3-2-90b-instruct-v1", _llama("Llama 3.2 90B Vision Instruct", "nova")),
)


def model_limits(model: str) -> ModelLimits | None:
    """The limits of the base model ``model`` (an id such as ``anthropic.claude-3-haiku-20240307-v1:0``, or its
    ARN), ``None`` for a model whose limits llmfiles does not know."""
    name = model.strip().lower().rsplit("/", 1)[-1]
    return next((limits for prefix, limits in BASE_MODELS if name.startswith(prefix)), None)


def known_models() -> str:
    """The model ids :func:`model_limits` knows, for messages."""
    return ", ".join(prefix + ":0" for prefix, _ in BASE_MODELS)


def record_chars(kind: str, record: Mapping[str, Any]) -> int:
    """The characters of the text of a record in ``kind`` format (what the token and character limits count)."""
    if kind == "prompt-completion":
        return sum(len(v) for k in ("prompt", "completion") if isinstance(v := record.get(k), str))
    system = record.get("system")
    chars = len(system) if isinstance(system, str) else _blocks_chars(system)
    messages = record.get("messages")
    for msg in messages if isinstance(messages, list) else ():
        content = msg.get("content") if isinstance(msg, dict) else None
        chars += len(content) if isinstance(content, str) else _blocks_chars(content)
    return chars


def _blocks_chars(blocks: Any) -> int:
    if not isinstance(blocks, list):
        return 0
    return sum(len(t) for b in blocks if isinstance(b, dict) and isinstance(t := b.get("text"), str))


class FineTuneChecker:
    """Checks a fine-tuning file: each record by the rules of the one format the file is in, and, with ``model``
    (the Bedrock base model id), the limits of that model (:data:`BASE_MODELS`).

    The format is recognised from the first record and every record must be in it; OpenAI chat records are accepted
    (some Bedrock customizations read them) with a warning naming ``convert``.  A file uploaded with ``convert`` is
    checked after its conversion, so by the rules of the target format.  Without ``model`` a file in a Bedrock
    format gets a warning that the limits were not checked (``remind=False``: not from the checker a conversion
    runs beside the provider's).
    """

    def __init__(self, model: str | None = None, *, remind: bool = True) -> None:
        self.format: str | None = None
        self.first_line = 0
        self.records = 0
        self.model = model
        self.limits = model_limits(model) if model else None
        self.remind = remind

    def start(self, facts: FileFacts) -> list[Problem]:
        """A BOM at the start of the file is a warning (:func:`llmfiles.validate.rules.bom_warning`)."""
        return [bom_warning("Amazon Bedrock")] if facts.has_bom else []

    def check(self, line_no: int, record: dict[str, Any]) -> Iterable[Problem]:
        """The problems of one record, by the rules of the file's format (and the base model's limits)."""
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
        out = RULES[kind](record)
        if self.limits is not None and (self.limits.max_tokens or self.limits.max_chars):
            out.extend(self._size(kind, record))
        return _at(line_no, out)

    def _size(self, kind: str, record: Mapping[str, Any]) -> list[Problem]:
        """The record against the base model's characters (an error: exact) and tokens (a warning: estimated)."""
        limits = self.limits
        assert limits is not None
        chars = record_chars(kind, record)
        if limits.max_chars is not None and chars > limits.max_chars:
            return [
                _err(
                    "too_many_characters",
                    f"the record has {chars:,} characters of text; a {limits.name} record may have at most "
                    f"{limits.max_chars:,} (its token quota x 6; {limits.source})",
                )
            ]
        tokens = estimate_tokens(chars)
        if limits.max_tokens is not None and tokens > limits.max_tokens:
            return [
                _warn(
                    "too_many_tokens",
                    f"the record has about {tokens:,} tokens (estimated: {CHARS_PER_TOKEN} characters a token), "
                    f"more than the {limits.max_tokens:,} a {limits.name} record may have ({limits.source}): "
                    "shorten it or split it",
                )
            ]
        return []

    def finish(self) -> Iterable[Problem]:
        """The file as a whole: a warning for OpenAI chat format (which most Bedrock customizations do not read);
        the base model's format and numbers of records, or a warning that they were not checked."""
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
        if self.format is None:
            return []
        if self.limits is None:
            return self._unchecked()
        return [Problem(line=None, code=p.code, message=p.message, severity=p.severity) for p in self._file_limits()]

    def _unchecked(self) -> list[Problem]:
        if self.model:
            why = f"llmfiles does not know the limits of {self.model!r} (it knows {known_models()})"
        elif not self.remind:
            return []
        else:
            why = "no base model was given"
        return [
            Problem(
                line=None,
                code="limits_not_checked",
                severity="warning",
                message=f"the base model's limits (records per file, tokens per record) were not checked: {why}; "
                "set the model setting to the base model id (model='anthropic.claude-3-haiku-20240307-v1:0', "
                "CLI: -s model=...) to have them checked",
            )
        ]

    def _file_limits(self) -> list[Problem]:
        limits = self.limits
        assert limits is not None
        out: list[Problem] = []
        if self.format != limits.format:
            want, have = FORMAT_NAMES[limits.format], FORMAT_NAMES.get(self.format or "", str(self.format))
            out.append(
                _err(
                    "wrong_format_for_model",
                    f"{limits.name} is fine-tuned on {want} records, and this file is in the {have} format "
                    f"(convert={limits.format!r} converts OpenAI chat records); {limits.source}",
                )
            )
        n = self.records
        if limits.min_records is not None and n < limits.min_records:
            out.append(
                _err(
                    "too_few_records",
                    f"the file has {n:,} records; a {limits.name} fine-tuning job needs at least "
                    f"{limits.min_records:,} ({limits.source})",
                )
            )
        if limits.max_records is not None and n > limits.max_records:
            out.append(
                _err(
                    "too_many_records",
                    f"the file has {n:,} records; a {limits.name} fine-tuning job takes at most "
                    f"{limits.max_records:,}, training and validation records together ({limits.source}): "
                    "split it or sample it",
                )
            )
        return out


#: the batch inference quotas "Format and upload your batch inference data" names (records per input file, minimum
#: records per job, input file size), at their default values in the Amazon Bedrock service quotas; they are set
#: per model and some can be raised, so the checker warns instead of refusing (pass max_records=... to split)
BATCH_LIMITS = FileLimits(
    max_bytes=1_000_000_000,
    max_records=50_000,
    min_records=100,
    docs="https://docs.aws.amazon.com/general/latest/gr/bedrock.html#limits_bedrock",
    note="the default quotas (per model, some adjustable): records per input file 50,000, minimum records per "
    "job 100, input file size 1 GB; see https://docs.aws.amazon.com/bedrock/latest/userguide/batch-inference-data.html",
)


class BatchChecker:
    """Checks a Bedrock batch-inference input file: ``{"recordId"?: str, "modelInput": {...}}`` per line, as "Format
    and upload your batch inference data" (Amazon Bedrock User Guide,
    https://docs.aws.amazon.com/bedrock/latest/userguide/batch-inference-data.html) describes it, and its size and
    records against :data:`BATCH_LIMITS` (warnings: the quotas are per model and some can be raised)."""

    def __init__(self, limits: FileLimits = BATCH_LIMITS) -> None:
        self.limits = limits
        self.records = 0

    def start(self, facts: FileFacts) -> list[Problem]:
        """A BOM at the start of the file is a warning (:func:`llmfiles.validate.rules.bom_warning`); so is a file
        over the input file size quota."""
        out = [bom_warning("Amazon Bedrock")] if facts.has_bom else []
        most = self.limits.max_bytes
        if most is not None and facts.size > most:
            out.append(
                _quota_warning(
                    "file_too_large",
                    f"the file has {facts.size:,} bytes, more than the {most:,} of Bedrock's default batch input "
                    f"file size quota: {SPLIT_HINT}",
                )
            )
        return out

    def check(self, line_no: int, record: dict[str, Any]) -> Iterable[Problem]:
        """The problems of one batch record (``modelInput`` an object, ``recordId`` a string)."""
        self.records += 1
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
        """The number of records against the quotas of one input file and one job."""
        most, least = self.limits.max_records, self.limits.min_records
        if most is not None and self.records > most:
            return [
                _quota_warning(
                    "too_many_records",
                    f"the file has {self.records:,} records, more than the {most:,} of Bedrock's default quota of "
                    f"records per input file: {SPLIT_HINT}",
                )
            ]
        if least is not None and self.records < least:
            return [
                _quota_warning(
                    "too_few_records",
                    f"the file has {self.records:,} records; a Bedrock batch inference job needs at least {least:,} "
                    "(the default quota): add records, or send the file with others in one job",
                )
            ]
        return []


SPLIT_HINT = "cut it into files that fit with: llmfiles split FILE -p bedrock --purpose batch -o DIR"


def _quota_warning(code: str, message: str) -> Problem:
    return Problem(line=None, code=code, message=message, severity="warning")
