"""Checks of a file's content before it is uploaded (streaming, line-numbered problems), and conversions."""

from llmfiles.validate.jsonl import Report, check_jsonl
from llmfiles.validate.records import RecordChecker
from llmfiles.validate.stats import ExampleStats, FileFacts

__all__ = ["ExampleStats", "FileFacts", "RecordChecker", "Report", "check_jsonl"]
