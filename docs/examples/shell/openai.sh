# OPENAI_API_KEY is set (and OPENAI_BASE_URL, for another OpenAI-compatible server)
llmfiles upload train.jsonl --provider openai --purpose fine-tune --dry-run    # checks everything, sends nothing
llmfiles upload train.jsonl --provider openai --purpose fine-tune --validation valid.jsonl --wait
