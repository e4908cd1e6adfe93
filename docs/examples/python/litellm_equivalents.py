"""The llmfiles calls that replace ``litellm.create_file`` and ``litellm.acreate_file`` (see the LiteLLM page)."""

import asyncio

import llmfiles

# instead of create_file(file=..., purpose="fine-tune", custom_llm_provider="openai")
f = llmfiles.upload("train.jsonl", purpose="fine-tune", provider="openai")
print(f.id, f.provider, f.status)


# instead of await acreate_file(file=..., purpose="batch", custom_llm_provider="openai")
async def main() -> llmfiles.FileObject:
    return await llmfiles.aupload("batch.jsonl", purpose="batch", provider="openai")


b = asyncio.run(main())
print(b.id, b.purpose)

# the id works with the provider's own tools and with llmfiles' other calls
print(llmfiles.retrieve(b.id, provider="openai").status)
llmfiles.delete(b.id, provider="openai")
