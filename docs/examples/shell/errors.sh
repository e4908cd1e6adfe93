llmfiles upload broken.jsonl --purpose fine-tune || echo "exit code $?"      # 2: validation error, nothing sent
llmfiles upload train.jsonl --provider acme || echo "exit code $?"           # 2: provider not installed
llmfiles get file-does-not-exist || echo "exit code $?"                      # 1: the provider answered 404
