"""Upload, list, download and delete with the built-in ``local`` provider: no account, no network."""

import llmfiles

f = llmfiles.upload("train.jsonl", purpose="fine-tune", provider="local")
print(f.id, f.bytes, f.status)  # file-3f2a...  2210  processed

both = llmfiles.upload_training_files("train.jsonl", "valid.jsonl", provider="local")
print(both.training.id, both.validation.id)

for item in llmfiles.list_files(provider="local"):  # every page, fetched lazily
    print(item.id, item.purpose, item.filename)

llmfiles.download(f.id, "copy.jsonl", provider="local")
llmfiles.delete(f.id, provider="local")
