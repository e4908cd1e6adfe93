"""The point of the plugin: the ``s3://`` id it returns is what Bedrock's CreateModelCustomizationJob takes (boto3
against moto's Bedrock here; llmfiles itself never uses boto3)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import BUCKET, bedrock_s3_uri_pattern, boto3_client

import llmfiles


def test_create_model_customization_job_takes_the_returned_uris(
    bedrock_settings: dict[str, Any], moto: str, tmp_path: Path, s3: Any
) -> None:
    chat = {
        "messages": [
            {"role": "system", "content": "Answer in one word."},
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "Paris"},
        ]
    }
    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(json.dumps(chat) for _ in range(32)) + "\n")
    valid = tmp_path / "valid.jsonl"
    valid.write_text("\n".join(json.dumps(chat) for _ in range(8)) + "\n")
    with llmfiles.Client("bedrock", **bedrock_settings) as client:
        files = client.upload_training_files(train, valid, convert="claude")
    assert files.validation is not None
    pattern = bedrock_s3_uri_pattern()
    assert pattern.fullmatch(files.training.id) and pattern.fullmatch(files.validation.id)

    bedrock = boto3_client("bedrock", moto)
    job = bedrock.create_model_customization_job(
        jobName="llmfiles-claude-haiku",
        customModelName="llmfiles-test-model",
        roleArn="arn:aws:iam::123456789012:role/BedrockCustomization",
        baseModelIdentifier="anthropic.claude-3-haiku-20240307-v1:0:200k",
        customizationType="FINE_TUNING",
        trainingDataConfig={"s3Uri": files.training.id},
        validationDataConfig={"validators": [{"s3Uri": files.validation.id}]},
        outputDataConfig={"s3Uri": f"s3://{BUCKET}/llmfiles-output/"},
        hyperParameters={"epochCount": "2", "batchSize": "8", "learningRateMultiplier": "1.0"},
    )
    assert job["jobArn"].endswith("/llmfiles-claude-haiku")
    got = bedrock.get_model_customization_job(jobIdentifier="llmfiles-claude-haiku")
    assert got["trainingDataConfig"]["s3Uri"] == files.training.id
    assert got["validationDataConfig"]["validators"][0]["s3Uri"] == files.validation.id

    # what the job would read: Claude records, in the object the id names
    key = files.training.id[len(f"s3://{BUCKET}/") :]
    first = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().splitlines()[0])
    assert first == {
        "system": "Answer in one word.",
        "messages": [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris"}],
    }
