"""What an upload to Vertex AI would do — checked, but nothing read or sent: the dry run."""

import llmfiles

client = llmfiles.Client(bucket="my-tuning-bucket", project="my-project", location="us-central1")
plan = client.describe_upload("train.jsonl", purpose="fine-tune", provider="vertex_ai", convert="gemini")
for key, value in plan.items():
    print(f"{key}: {value}")
