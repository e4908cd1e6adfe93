llmfiles providers                                   # what is installed
llmfiles validate train.jsonl --purpose fine-tune    # offline, as upload checks it
llmfiles upload train.jsonl --purpose fine-tune --validation valid.jsonl
llmfiles upload train.jsonl --purpose fine-tune --json > uploaded.json
id=$(python3 -c 'import json; print(json.load(open("uploaded.json"))["id"])')
llmfiles get "$id"
llmfiles list --purpose fine-tune
llmfiles download "$id" -o copy.jsonl
llmfiles delete "$id"
