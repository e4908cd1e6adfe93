"""Upload a training and a validation file to Azure OpenAI, with an API key from the environment.

Reads ``AZURE_OPENAI_ENDPOINT`` and ``AZURE_OPENAI_API_KEY``; without a key, Entra ID (DefaultAzureCredential).
"""

import llmfiles

files = llmfiles.upload_training_files("train.jsonl", "valid.jsonl", provider="azure", wait=True)
print(files.training.id, files.training.status)  # file-...  processed
print(files.validation.id, files.validation.bytes)  # three bytes more than on disk: the UTF-8 BOM Azure wants
