"""The settings chain: explicit argument > ``Client(...)`` setting > environment variable > secret hooks.

``describe_upload`` (the dry run) says where the credential came from — never what it is.
Run with ``OPENAI_API_KEY`` set in the environment.
"""

import llmfiles

client = llmfiles.Client("openai", api_key="sk-from-the-client")

print(client.describe_upload("train.jsonl", purpose="fine-tune", api_key="sk-from-the-call")["credentials"])
# argument api_key
print(client.describe_upload("train.jsonl", purpose="fine-tune")["credentials"])
# Client setting api_key
print(llmfiles.Client("openai").describe_upload("train.jsonl", purpose="fine-tune")["credentials"])
# env OPENAI_API_KEY
