# AZURE_OPENAI_ENDPOINT is set, and AZURE_OPENAI_API_KEY (or nothing: Entra ID via DefaultAzureCredential)
llmfiles upload train.jsonl --provider azure --purpose fine-tune --dry-run     # checks everything, sends nothing
llmfiles upload train.jsonl --provider azure --purpose fine-tune --wait
