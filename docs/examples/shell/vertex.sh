# credentials: gcloud auth application-default login (or GOOGLE_APPLICATION_CREDENTIALS=key.json)
export LLMFILES_GCS_BUCKET=my-tuning-bucket VERTEXAI_PROJECT=my-project VERTEXAI_LOCATION=us-central1
llmfiles upload train.jsonl --provider vertex_ai --purpose fine-tune --convert gemini --dry-run
