"""How fast ``llmfiles validate`` checks a large chat fine-tuning file, and in how much memory.

    python bench/validate_speed.py                     # 512 MiB, openai fine-tune, orjson and json, one core
    python bench/validate_speed.py --size 1024 --parsers orjson --provider azure

The file is generated once, deterministically (a fixed seed: the same bytes on every machine), into a cache
folder outside the repository (``$LLMFILES_BENCH_CACHE``, default ``~/.cache/llmfiles-bench``): OpenAI chat
examples of 1 to 6 turns with a system prompt, texts of 5 to 400 words (English-like; one example in ten also
draws accented, Cyrillic, Chinese and Korean words), about one turn in ten with a tool call and one example in
five with weights.

Each measurement runs in a fresh process pinned to one CPU (``os.sched_setaffinity``), through the public API
(``Client().validate``), and reports MiB/s and peak RSS (``resource.getrusage``: the high-water mark of the whole
process, imports included) next to the RSS before the file is read, so constant memory shows as a small
difference that does not grow with ``--size``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
_VOCABULARY = (
    "the of and to in is that for it as with was on be by this are or from at an which have not but all can "
    "model data train answer question because each other would about there their what when will more time "
    "function value return error file line example customer order invoice summary please thanks yes no 42 2026"
)
WORDS = tuple(_VOCABULARY.split())
#: one example in ten is multilingual: its texts also draw from these
OTHER_WORDS = ("café", "naïve", "über", "straße", "résumé", "東京", "数据", "모델", "привет", "données", "señal")


def cache_dir() -> Path:
    return Path(os.environ.get("LLMFILES_BENCH_CACHE", Path.home() / ".cache" / "llmfiles-bench"))


def example(rnd: random.Random, i: int) -> dict[str, object]:
    words = WORDS + OTHER_WORDS if rnd.random() < 0.1 else WORDS

    def _text(rnd: random.Random, low: int, high: int) -> str:
        return " ".join(rnd.choices(words, k=rnd.randint(low, high)))

    messages: list[dict[str, object]] = [{"role": "system", "content": _text(rnd, 5, 40)}]
    weighted = rnd.random() < 0.2
    for turn in range(rnd.randint(1, 6)):
        messages.append({"role": "user", "content": _text(rnd, 5, 200)})
        if rnd.random() < 0.1:
            call_id = f"call_{i}_{turn}"
            messages.append(
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {"name": "lookup", "arguments": json.dumps({"q": _text(rnd, 1, 5)})},
                        }
                    ],
                }
            )
            messages.append({"role": "tool", "tool_call_id": call_id, "content": _text(rnd, 5, 60)})
        answer: dict[str, object] = {"role": "assistant", "content": _text(rnd, 5, 400)}
        if weighted:
            answer["weight"] = rnd.randint(0, 1)
        messages.append(answer)
    return {"messages": messages}


def generate(size_mib: int) -> Path:
    """The benchmark file of ``size_mib`` MiB (made once, then reused), written in constant memory."""
    path = cache_dir() / f"chat-{size_mib}MiB-v2.jsonl"
    if path.exists() and path.stat().st_size >= size_mib * MiB:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    rnd = random.Random(20261101)
    written = 0
    i = 0
    print(f"generating {path} ({size_mib} MiB) ...", file=sys.stderr)
    with open(tmp, "wb") as fh:
        while written < size_mib * MiB:
            line = json.dumps(example(rnd, i), ensure_ascii=False).encode("utf-8") + b"\n"
            fh.write(line)
            written += len(line)
            i += 1
    tmp.replace(path)
    return path


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_one(path: Path, provider: str, purpose: str, cpu: int | None) -> dict[str, object]:
    """One measurement, in this process (the parent starts a fresh process for each)."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    import llmfiles
    from llmfiles.validate.parse import PARSER

    client = llmfiles.Client()
    client.provider_info(provider)  # loads the plugins before the baseline is taken
    before = _rss_mib()
    size = path.stat().st_size
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    report = client.validate(path, provider=provider, purpose=purpose)
    seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - cpu0
    return {
        "parser": PARSER,
        "bytes": size,
        "records": report.records,
        "errors": report.errors,
        "warnings": report.warnings,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu_seconds, 3),
        "mib_per_s": round(size / MiB / seconds, 1),
        "rss_before_mib": round(before, 1),
        "peak_rss_mib": round(_rss_mib(), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512, help="file size in MiB (default 512)")
    parser.add_argument("--provider", default="openai")
    parser.add_argument("--purpose", default="fine-tune")
    parser.add_argument("--parsers", default="orjson,json", help="comma-separated: orjson, json")
    parser.add_argument("--cpu", type=int, default=0, help="the CPU to pin each run to (-1: no pinning)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per parser (the best is reported)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--run", metavar="FILE", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    cpu = None if args.cpu < 0 else args.cpu
    if args.run:
        print(json.dumps(run_one(Path(args.run), args.provider, args.purpose, cpu)))
        return 0
    path = generate(args.size)
    results = []
    for name in [p.strip() for p in args.parsers.split(",") if p.strip()]:
        env = dict(os.environ, LLMFILES_JSON=name)
        best: dict[str, Any] | None = None
        for _ in range(args.repeat):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--run",
                    str(path),
                    "--provider",
                    args.provider,
                    "--purpose",
                    args.purpose,
                    "--cpu",
                    str(args.cpu),
                ],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            result = json.loads(out.strip().splitlines()[-1])
            if best is None or float(result["seconds"]) < float(best["seconds"]):
                best = result
        assert best is not None
        results.append(best)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(
        f"file: {path} ({path.stat().st_size / MiB:,.0f} MiB), {args.provider} {args.purpose}, "
        f"one CPU ({'pinned to ' + str(cpu) if cpu is not None else 'not pinned'})"
    )
    for r in results:
        print(
            f"  {r['parser']:<7} {r['mib_per_s']:>7} MiB/s  {r['seconds']:>7}s  "
            f"peak RSS {r['peak_rss_mib']} MiB (before reading: {r['rss_before_mib']} MiB)  "
            f"{r['records']:,} records, {r['errors']} errors, {r['warnings']} warnings"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
