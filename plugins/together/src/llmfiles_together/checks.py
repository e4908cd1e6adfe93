"""The checks Together runs on a file before it takes it, as record checkers: the same problems caught offline.

These are the rules of ``together files check`` (Together's CLI reference, "Check": "UTF-8, line type, text field,
key/value, minimum samples") as its SDK applies them (``together-python``, ``src/together/utils/files.py`` and
``constants.py``).  The core already makes sure a JSONL file is UTF-8 with one JSON object per line; the checkers add
the rest:

* every line is in one of the fine-tuning formats, the same one for the whole file, with no other keys:
  ``{"text"}`` (general), ``{"messages"}`` (conversation), ``{"prompt", "completion"}`` (instruction),
  ``{"input", "preferred_output", "non_preferred_output"}`` (preference, OpenAI's DPO shape);
* conversations: a non-empty list of ``{"role", "content"}`` messages, roles ``system``, ``user``, ``assistant``,
  no two turns of the same role in a row, at least one assistant message, ``weight`` an integer 0 or 1; content a
  string or a list of ``text`` / ``image_url`` parts (images in user messages only, JPEG, PNG or WebP base64 data
  URLs under 10 MB, at most 10 images an example, not on a weighted message, and never text-only and multimodal
  messages mixed in one example);
* preference examples: ``input.messages`` as above without the assistant requirement and not ending with an
  assistant turn, each output a list of exactly one assistant message with content;
* at least one sample (``MIN_SAMPLES``).

``batch-api`` files (Together's Batch API tutorial): lines ``{"custom_id", "body"}``, ``custom_id`` unique, at
most 64 characters; at most 50,000 requests and 100 MB a file (the batch overview, :data:`BATCH_LIMITS`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from llmfiles.models import FileLimits, Problem
from llmfiles.validate.stats import ExampleStats, FileFacts, HashIndex

MIN_SAMPLES = 1
FORMATS: Mapping[str, frozenset[str]] = {
    "general": frozenset({"text"}),
    "conversation": frozenset({"messages"}),
    "instruction": frozenset({"prompt", "completion"}),
    "preference_openai": frozenset({"input", "preferred_output", "non_preferred_output"}),
}
ROLES = ("system", "user", "assistant")
MAX_IMAGES = 10
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_IMAGE_URL = len("data:image/jpeg;base64,") + 4 * MAX_IMAGE_BYTES // 3
IMAGE_PREFIXES = tuple(f"data:image/{fmt};base64," for fmt in ("jpeg", "png", "webp"))
MAX_CUSTOM_ID = 64


class Bad(Exception):
    """One problem of a line (the first found, as Together reports it)."""

    def __init__(self, path: str, code: str, message: str) -> None:
        super().__init__(message)
        self.problem = Problem(line=None, code=code, message=message, path=path)


def detect_format(record: Mapping[str, Any]) -> str:
    """The format of ``record``: the one whose keys it has, and no other key."""
    found = [name for name, keys in FORMATS.items() if keys <= record.keys()]
    if len(found) > 1:
        raise Bad("", "mixed_formats", f"the line has the keys of both the {found[0]} and {found[1]} formats")
    if not found:
        keys = ", ".join(sorted(map(str, record))) or "none"
        raise Bad(
            "",
            "unknown_format",
            f"no Together format has these keys ({keys}): use text; messages; prompt and completion; or input, "
            "preferred_output and non_preferred_output",
        )
    extra = sorted(str(k) for k in record if k not in FORMATS[found[0]])
    if extra:
        raise Bad(extra[0], "unknown_field", f'extra column "{extra[0]}": the {found[0]} format has no such key')
    return found[0]


def check_content(content: Any, role: str, path: str) -> tuple[bool, int]:
    """(whether the content is multimodal, its number of images)."""
    if isinstance(content, str):
        return False, 0
    if not isinstance(content, list):
        raise Bad(path, "bad_content", "content must be a string or a list of text and image_url parts")
    images = 0
    for i, item in enumerate(content):
        where = f"{path}[{i}]"
        if not isinstance(item, dict) or "type" not in item:
            raise Bad(where, "bad_content_part", "each content part must be an object with a type")
        if item["type"] == "text":
            if not isinstance(item.get("text"), str):
                raise Bad(f"{where}.text", "bad_content_part", "a text part needs a string text")
        elif item["type"] == "image_url":
            check_image(item, role, where)
            images += 1
        else:
            raise Bad(f"{where}.type", "bad_content_part", "a content part's type must be 'text' or 'image_url'")
    if images > MAX_IMAGES:
        raise Bad(path, "too_many_images", f"content holds {images} images; at most {MAX_IMAGES} are allowed")
    return True, images


def check_image(item: Mapping[str, Any], role: str, where: str) -> None:
    if role != "user":
        raise Bad(where, "image_not_user", "only user messages can contain images")
    url = item.get("image_url").get("url") if isinstance(item.get("image_url"), dict) else None  # type: ignore[union-attr]
    if not isinstance(url, str) or not url:
        raise Bad(f"{where}.image_url.url", "bad_image_url", "image_url must be an object with a string url")
    if not url.startswith(IMAGE_PREFIXES):
        raise Bad(
            f"{where}.image_url.url",
            "bad_image_url",
            "the image must be a JPEG, PNG or WEBP base64 data URL (data:image/<format>;base64,...)",
        )
    if len(url) > MAX_IMAGE_URL:
        raise Bad(f"{where}.image_url.url", "image_too_large", "the image must be under 10 MB")


def check_messages(messages: Any, path: str, *, require_assistant: bool = True) -> list[str]:
    """The roles of a valid conversation."""
    if not isinstance(messages, list) or not messages:
        raise Bad(path, "no_messages", "messages must be a non-empty list of messages")
    roles: list[str] = []
    multimodal: bool | None = None
    images = 0
    for i, m in enumerate(messages):
        where = f"{path}[{i}]"
        role, weight = check_message(m, where, roles[-1] if roles else None)
        roles.append(role)
        is_multi, count = check_content(m["content"], role, f"{where}.content")
        if count and weight not in (None, 0):
            raise Bad(f"{where}.weight", "weighted_image", "messages with images cannot have a non-zero weight")
        if multimodal is not None and multimodal != is_multi:
            raise Bad(where, "mixed_content", "an example's messages must be all multimodal or all text")
        multimodal = is_multi
        images += count
    if images > MAX_IMAGES:
        raise Bad(path, "too_many_images", f"the example holds {images} images; at most {MAX_IMAGES} are allowed")
    if require_assistant and "assistant" not in roles:
        raise Bad(path, "no_assistant_message", "at least one message must have the assistant role")
    return roles


def check_message(m: Any, where: str, previous: str | None) -> tuple[str, Any]:
    if not isinstance(m, dict):
        raise Bad(where, "bad_message", "each message must be an object with role and content")
    for key in ("role", "content"):
        if key not in m:
            raise Bad(f"{where}.{key}", f"missing_{key}", f"the message has no {key}")
    weight = m.get("weight")
    if "weight" in m and (type(weight) is not int or weight not in (0, 1)):
        raise Bad(f"{where}.weight", "bad_weight", "weight must be the integer 0 or 1")
    role = m["role"]
    if not isinstance(role, str) or role not in ROLES:
        raise Bad(f"{where}.role", "bad_role", f"role must be one of {', '.join(ROLES)}")
    if role == previous:
        raise Bad(
            f"{where}.role",
            "repeated_role",
            "after the optional system message, roles must alternate between user and assistant",
        )
    return role, weight


def check_preference(record: Mapping[str, Any]) -> list[str]:
    given = record["input"]
    if not isinstance(given, dict) or "messages" not in given:
        raise Bad("input", "bad_input", "input must be an object with messages")
    roles = check_messages(given["messages"], "input.messages", require_assistant=False)
    if roles[-1] == "assistant":
        raise Bad("input.messages", "last_is_assistant", "the input's last message must not be the assistant's")
    for key in ("preferred_output", "non_preferred_output"):
        out = record[key]
        if not isinstance(out, list) or len(out) != 1 or not isinstance(out[0], dict):
            raise Bad(key, "bad_output", f"{key} must be a list of exactly one message")
        if out[0].get("role") != "assistant" or "content" not in out[0]:
            raise Bad(f"{key}[0]", "bad_output", f"{key}'s message must have the assistant role and content")
        check_content(out[0]["content"], "assistant", f"{key}[0].content")
    return roles


class FineTuneChecker:
    """Together's ``files check`` rules for a fine-tuning file (see the module documentation)."""

    def __init__(self) -> None:
        self.samples = 0
        self.format: str | None = None
        self.format_line = 0
        self.stats = ExampleStats(unit="examples")

    def check(self, line_no: int, record: dict[str, Any]) -> list[Problem]:
        self.samples += 1
        try:
            kind = detect_format(record)
            if self.format is None:
                self.format, self.format_line = kind, line_no
            elif kind != self.format:
                raise Bad(
                    "",
                    "mixed_formats",
                    f"this line is in the {kind} format but line {self.format_line} is in the {self.format} format; "
                    "all samples must have the same format",
                )
            roles = self._by_format(kind, record)
        except Bad as bad:
            return [bad.problem]
        self.stats.add(messages=len(roles) or None, roles=roles, format=kind)
        return []

    @staticmethod
    def _by_format(kind: str, record: Mapping[str, Any]) -> list[str]:
        if kind == "conversation":
            return check_messages(record["messages"], "messages")
        if kind == "preference_openai":
            return check_preference(record)
        for column in FORMATS[kind]:
            check_content(record[column], "assistant" if column == "completion" else "user", column)
        return []

    def finish(self) -> list[Problem]:
        if self.samples < MIN_SAMPLES:
            return [
                Problem(
                    line=None,
                    code="too_few_examples",
                    message=f"the file has {self.samples} samples; Together's minimum is {MIN_SAMPLES}",
                )
            ]
        return []


#: Together's batch overview: "up to 50,000 requests per batch" and "up to 100 MB per input file"
BATCH_LIMITS = FileLimits(
    max_bytes=100 * 1000 * 1000,
    max_records=50_000,
    docs="https://docs.together.ai/docs/inference/batch/overview",
)
SPLIT_HINT = "cut it into files that fit with: llmfiles split FILE -p together --purpose batch -o DIR"


class BatchChecker:
    """Lines of a ``batch`` file (Together's ``batch-api``): ``custom_id`` (unique, at most 64 characters) and
    ``body`` (an object), at most :data:`BATCH_LIMITS` requests and bytes."""

    def __init__(self, limits: FileLimits = BATCH_LIMITS) -> None:
        self.limits = limits
        self.requests = 0
        self.ids = HashIndex()
        self.stats = ExampleStats(unit="requests")

    def start(self, facts: FileFacts) -> Iterable[Problem]:
        most = self.limits.max_bytes
        if most is not None and facts.size > most:
            message = f"the file has {facts.size:,} bytes; a batch input file takes at most {most:,}: {SPLIT_HINT}"
            return [Problem(line=None, code="file_too_large", message=message)]
        return ()

    def check(self, line_no: int, record: dict[str, Any]) -> list[Problem]:
        out: list[Problem] = []
        cid = record.get("custom_id")
        if not isinstance(cid, str) or not cid or len(cid) > MAX_CUSTOM_ID:
            out.append(
                Problem(
                    line=None,
                    code="bad_custom_id",
                    path="custom_id",
                    message=f"custom_id must be a string of 1 to {MAX_CUSTOM_ID} characters, unique in the file",
                )
            )
        elif earlier := self.ids.add(hash(cid), line_no):
            out.append(
                Problem(
                    line=None,
                    code="duplicate_custom_id",
                    path="custom_id",
                    message=f"custom_id {cid!r} is already used on line {earlier}",
                )
            )
        if not isinstance(record.get("body"), dict):
            out.append(Problem(line=None, code="bad_body", path="body", message="body must be the request's object"))
        self.stats.add()
        self.requests += 1
        return out

    def finish(self) -> list[Problem]:
        most = self.limits.max_records
        if most is not None and self.requests > most:
            message = f"the file has {self.requests:,} requests; a batch takes at most {most:,}: {SPLIT_HINT}"
            return [Problem(line=None, code="too_many_requests", message=message)]
        return []
