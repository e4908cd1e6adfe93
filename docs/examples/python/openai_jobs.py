"""Upload with llmfiles, then start a fine-tuning job and a batch with OpenAI's own client (``pip install openai``)."""

from openai import OpenAI

import llmfiles

files = llmfiles.upload_training_files("train.jsonl", "valid.jsonl", provider="openai", wait=True)
client = OpenAI()  # reads OPENAI_API_KEY, like llmfiles
job = client.fine_tuning.jobs.create(
    model="gpt-4o-mini-2024-07-18",
    training_file=files.training.id,
    validation_file=files.validation.id,
)

batch_input = llmfiles.upload("batch.jsonl", purpose="batch", provider="openai")
batch = client.batches.create(
    input_file_id=batch_input.id,
    endpoint="/v1/chat/completions",
    completion_window="24h",
)
