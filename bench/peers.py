"""One benchmark measurement, run by ``bench/run.py`` in a fresh process: ``python bench/peers.py '<json spec>'``.

It prints one JSON line: what was measured inside the process (``seconds`` of the work itself, with the import
and set-up before it excluded) and what the work answered (``bytes`` as the server received them), so the parent
can check every upload arrived whole.  The parent adds what the kernel measured of the whole process (wall, CPU,
peak RSS).  Specs:

- ``{"op": "import", "module": "llmfiles"}``
- ``{"op": "upload", "tool": TOOL, "path": P, "base": URL, "settings": {...}}``: one upload, purpose fine-tune
- ``{"op": "small", "tool": TOOL, "mode": "seq" | "threads" | "asyncio", "paths": [...], "base": URL}``
- ``{"op": "validate", "path": P}``
- ``{"op": "calibrate", "path": P}``: this machine's speed at the per-byte work of a default upload, on one core

TOOL is ``llmfiles``, ``openai-file`` (``files.create`` with an open file), ``openai-path`` (with a ``Path``),
``openai-chunked`` (``uploads.upload_file_chunked``), ``litellm`` (``litellm.create_file``), ``floor`` (the file
checked as an upload checks it and POSTed with urllib3, nothing else: what a checked upload cannot cost less than)
or ``floor-raw`` (the same POST, unchecked).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

KEY = "sk-bench-not-a-secret"
CONCURRENCY = 8


def _import(module: str) -> dict[str, Any]:
    import importlib

    t0, c0 = time.perf_counter(), time.process_time()
    importlib.import_module(module)
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}


def _uploader(tool: str, base: str, settings: dict[str, Any]) -> Any:
    """A function path -> bytes received, with everything it needs imported and built."""
    if tool == "llmfiles":
        import llmfiles

        client = llmfiles.Client("openai", api_key=KEY, api_base=base, **settings)
        client.provider_info("openai")  # load the plugin before the clock starts, as the SDKs import theirs

        def up(path: str) -> int:
            return client.upload(path, purpose="fine-tune").bytes

        return up
    if tool.startswith("openai"):
        import openai

        oc = openai.OpenAI(api_key=KEY, base_url=base, max_retries=0, timeout=600)

        def up(path: str) -> int:
            if tool == "openai-file":
                with open(path, "rb") as fh:
                    return int(oc.files.create(file=fh, purpose="fine-tune").bytes)
            if tool == "openai-path":
                return int(oc.files.create(file=Path(path), purpose="fine-tune").bytes)
            upload = oc.uploads.upload_file_chunked(file=Path(path), mime_type="application/jsonl", purpose="fine-tune")
            assert upload.file is not None
            return int(upload.file.bytes)

        return up
    if tool in ("floor", "floor-raw"):
        return _floor_uploader(base, checked=tool == "floor")
    if tool == "litellm":
        import litellm

        def up(path: str) -> int:
            with open(path, "rb") as fh:
                fo = litellm.create_file(
                    file=fh, purpose="fine-tune", custom_llm_provider="openai", api_base=base, api_key=KEY
                )
            return int(fo.bytes)

        return up
    raise SystemExit(f"unknown tool {tool!r}")


def _floor_uploader(base: str, *, checked: bool) -> Any:
    """What an upload of a small file cannot cost less than with what llmfiles is built on: the file read, parsed and
    checked with the OpenAI plugin's record rules (``JsonlChecker``, as an upload checks it; not when ``checked`` is
    false), then one urllib3 POST of the multipart body, its answer parsed.  Nothing else: no settings, credentials,
    retries, deadline, identity checks, held-back bytes or normalized answer."""
    import urllib3

    from llmfiles.validate.jsonl import JsonlChecker
    from llmfiles_openai.checks import FineTuneChecker

    pool = urllib3.PoolManager()
    url = base.rstrip("/") + "/files"
    boundary = "llmfiles-bench-floor"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n--{boundary}\r\n'
        'Content-Disposition: form-data; name="file"; filename="train.jsonl"\r\n'
        "Content-Type: application/jsonl\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": f"multipart/form-data; boundary={boundary}"}

    def up(path: str) -> int:
        with open(path, "rb") as fh:
            data = fh.read()
        if checked:
            checks = JsonlChecker(path, len(data), checker=FineTuneChecker(provider="OpenAI"))
            checks.feed(data)
            if not checks.finish().ok:
                raise SystemExit(f"{path} does not pass the checks")
        answer = pool.request("POST", url, body=head + data + tail, headers=headers, retries=False)
        return int(json.loads(answer.data)["bytes"])

    return up


def _async_uploader(tool: str, base: str) -> Any:
    if tool == "llmfiles":
        import llmfiles

        client = llmfiles.Client("openai", api_key=KEY, api_base=base)
        client.provider_info("openai")

        async def up(path: str) -> int:
            return (await client.aupload(path, purpose="fine-tune")).bytes

        return up
    if tool.startswith("openai"):
        import openai

        oc = openai.AsyncOpenAI(api_key=KEY, base_url=base, max_retries=0)

        async def up(path: str) -> int:
            with open(path, "rb") as fh:
                return int((await oc.files.create(file=fh, purpose="fine-tune")).bytes)

        return up
    if tool == "litellm":
        import litellm

        async def up(path: str) -> int:
            with open(path, "rb") as fh:
                fo = await litellm.acreate_file(
                    file=fh, purpose="fine-tune", custom_llm_provider="openai", api_base=base, api_key=KEY
                )
            return int(fo.bytes)

        return up
    raise SystemExit(f"unknown tool {tool!r}")


def _upload(spec: dict[str, Any]) -> dict[str, Any]:
    up = _uploader(spec["tool"], spec["base"], spec.get("settings", {}))
    t0, c0 = time.perf_counter(), time.process_time()
    received = up(spec["path"])
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0, "bytes": received}


def _small(spec: dict[str, Any]) -> dict[str, Any]:
    paths: list[str] = spec["paths"]
    mode = spec["mode"]
    if mode == "asyncio":
        import asyncio

        up_async = _async_uploader(spec["tool"], spec["base"])

        async def run_all() -> list[int]:
            gate = asyncio.Semaphore(CONCURRENCY)

            async def one(path: str) -> int:
                async with gate:
                    return int(await up_async(path))

            return list(await asyncio.gather(*(one(p) for p in paths)))

        t0 = time.perf_counter()
        sizes = asyncio.run(run_all())
    else:
        up = _uploader(spec["tool"], spec["base"], spec.get("settings", {}))
        up(paths[0])  # warm: the first upload of a client loads what it needs
        t0 = time.perf_counter()
        if mode == "threads":
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(CONCURRENCY) as pool:
                sizes = list(pool.map(up, paths))
        else:
            sizes = [up(p) for p in paths]
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "bytes": sum(sizes), "files": len(sizes), "ms_per_file": seconds * 1000 / len(paths)}


def _validate(spec: dict[str, Any]) -> dict[str, Any]:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from validate_speed import run_one

    return run_one(Path(spec["path"]), "openai", "fine-tune", None)


def _best_mib_s(work: Any, size: int, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - t0)
    return round(size / (1024 * 1024) / best, 1)


def _calibrate(spec: dict[str, Any]) -> dict[str, Any]:
    """How fast this machine does, on one core and in memory, the per-byte work a default upload adds to a raw one:
    the MD5 of the file, orjson's parse of its lines, and the whole check pass (``JsonlChecker`` with the OpenAI
    record rules, which includes the parse).  Best of 5 over the first 16 MiB of the file (whole lines)."""
    import hashlib

    import orjson

    from llmfiles.validate.jsonl import JsonlChecker
    from llmfiles_openai.checks import FineTuneChecker

    with open(spec["path"], "rb") as fh:
        data = fh.read(16 * 1024 * 1024)
    data = data[: data.rfind(b"\n") + 1]
    lines = data.splitlines()

    def parse() -> None:
        for line in lines:
            orjson.loads(line)

    def check() -> None:
        checks = JsonlChecker(spec["path"], len(data), checker=FineTuneChecker(provider="OpenAI"))
        checks.feed(data)
        checks.finish()

    return {
        "bytes": len(data),
        "md5_mib_s": _best_mib_s(lambda: hashlib.md5(data, usedforsecurity=False).digest(), len(data)),
        "parse_mib_s": _best_mib_s(parse, len(data)),
        "checks_mib_s": _best_mib_s(check, len(data)),
    }


def main() -> int:
    spec = json.loads(sys.argv[1])
    op = spec["op"]
    if op == "import":
        out = _import(spec["module"])
    elif op == "upload":
        out = _upload(spec)
    elif op == "small":
        out = _small(spec)
    elif op == "validate":
        out = _validate(spec)
    elif op == "calibrate":
        out = _calibrate(spec)
    else:
        raise SystemExit(f"unknown op {op!r}")
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
