"""Every error is an ``llmfiles.LLMFilesError``; subclasses say what went wrong and carry the details."""

import llmfiles

try:
    llmfiles.upload("broken.jsonl", purpose="fine-tune", provider="local")
except llmfiles.ValidationError as exc:  # nothing was sent
    for problem in exc.problems:
        print(problem.line, problem.code, problem.message)
    print("exit code of the CLI:", exc.exit_code)  # 2

try:
    llmfiles.upload("train.jsonl", purpose="fine-tune", provider="acme")
except llmfiles.ProviderNotInstalled as exc:
    print(exc)  # provider 'acme' is not installed; ... (installed providers: ...)

try:
    llmfiles.retrieve("file-does-not-exist", provider="local")
except llmfiles.FileNotFound as exc:
    print(type(exc).__name__, exc.status)  # FileNotFound 404
