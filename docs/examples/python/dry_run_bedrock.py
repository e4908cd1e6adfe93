"""What an upload to Amazon Bedrock (an S3 bucket) would do — checked, but nothing read or sent: the dry run."""

import llmfiles

client = llmfiles.Client(bucket="my-training-bucket", aws_region="us-east-1")
plan = client.describe_upload("train.jsonl", purpose="fine-tune", provider="bedrock", convert="claude")
for key, value in plan.items():
    print(f"{key}: {value}")
