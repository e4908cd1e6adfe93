"""Checks of a file's content before it is uploaded (streaming, line-numbered problems)."""

from llmfiles.validate.jsonl import Report, check_jsonl
from llmfiles.validate.records import RecordChecker

__all__ = ["RecordChecker", "Report", "check_jsonl"]
