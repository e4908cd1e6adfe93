"""Check a file offline as an upload would, then convert it to another provider's format."""

import llmfiles

client = llmfiles.Client()
report = client.validate("train.jsonl", purpose="fine-tune", provider="openai")
print(report.ok, report.records, report.errors, report.warnings)
for problem in report.problems:
    print(problem.describe())

result = client.convert("train.jsonl", to="gemini", output="train.gemini.jsonl")  # from llmfiles-vertex
print(result.ok, result.written)
