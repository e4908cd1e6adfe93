"""Upload a fine-tuning file to OpenAI (or any OpenAI-compatible server) and wait until it is processed.

Reads ``OPENAI_API_KEY`` (and ``OPENAI_BASE_URL`` for another server) from the environment.
"""

import llmfiles

f = llmfiles.upload("train.jsonl", purpose="fine-tune", provider="openai", wait=True)
print(f.id, f.status)  # file-...  processed
