"""A large file goes up in parts, in parallel, with a progress callback — the same call as a small one.

``big.jsonl`` is a few MiB here; the thresholds are lowered so the ``local`` provider uses its parts protocol.
"""

import llmfiles
from llmfiles.models import Progress


def show(event: Progress) -> None:  # may be called from worker threads
    if event.total and event.done == event.total:
        print(f"{event.operation} {event.filename}: {event.done:,} bytes")


f = llmfiles.upload(
    "big.jsonl",
    purpose="batch",
    provider="local",
    multipart_threshold="1MiB",  # above this: parts (default: the provider's own)
    part_size="1MiB",  # grown automatically to fit the provider's part limit
    max_concurrency=4,  # parts in flight at once
    progress=show,
)
print(f.id, f.bytes)
