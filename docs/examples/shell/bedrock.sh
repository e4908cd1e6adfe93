# credentials: as for the AWS CLI (aws configure, aws sso login, AWS_ACCESS_KEY_ID..., a role)
export AWS_REGION=us-east-1 LLMFILES_S3_BUCKET=my-training-bucket
llmfiles upload train.jsonl --provider bedrock --purpose fine-tune --convert claude --dry-run
