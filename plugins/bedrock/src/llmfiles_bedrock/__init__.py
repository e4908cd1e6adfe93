"""llmfiles-bedrock: the Amazon Bedrock provider for llmfiles.

Files go to an S3 bucket (Bedrock model customization and batch inference read their data from S3) and their
``s3://bucket/key`` URI is the file id.  Credentials and SigV4 signatures come from botocore, loaded on first use;
requests are sent by llmfiles' own transport.  The plugin also answers ``llmfiles_get_secret`` from AWS Secrets
Manager when ``LLMFILES_AWS_SECRETS_PREFIX`` is set, so any provider's key can live there.
"""

__version__ = "0.1.0"
