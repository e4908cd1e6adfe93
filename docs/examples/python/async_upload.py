"""Async use: every call has an ``a``-prefixed twin; one ``Client`` is shared by all tasks."""

import asyncio

import llmfiles


async def main() -> None:
    async_client = llmfiles.Client("local", max_concurrency=8)  # settings + one connection pool
    try:
        training, validation = await asyncio.gather(
            async_client.aupload("train.jsonl", purpose="fine-tune"),
            async_client.aupload("valid.jsonl", purpose="fine-tune"),
        )
        print(training.id, validation.id)
        async for f in async_client.alist_files(purpose="fine-tune"):
            print(f.id, f.filename)
    finally:
        async_client.close()


asyncio.run(main())
