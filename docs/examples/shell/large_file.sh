llmfiles upload big.jsonl --purpose batch --multipart-threshold 1MiB --part-size 1MiB --max-concurrency 4 --dry-run
llmfiles upload big.jsonl --purpose batch --multipart-threshold 1MiB --part-size 1MiB --max-concurrency 4
