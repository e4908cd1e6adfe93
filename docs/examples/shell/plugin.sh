llmfiles providers                    # "example  [llmfiles-example-plugin]  the in-house LLM gateway ..."
export EXAMPLE_API_KEY=sk-gateway-key EXAMPLE_API_BASE=https://llm-gateway.example.internal/v1
llmfiles upload train.jsonl --provider example --purpose fine-tune --dry-run
