"""How close the token estimate of the checks is to tiktoken's exact count (the calibration of
``llmfiles.validate.stats.CHARS_PER_TOKEN``).

    python bench/token_estimate.py                      # 3,000 examples of the benchmark's chat data, o200k_base
    python bench/token_estimate.py --examples 20000 --encoding cl100k_base

Needs ``tiktoken`` and its encodings: they are downloaded once, or taken offline from the copy ``litellm`` ships
(``bench/run.py`` sets ``TIKTOKEN_CACHE_DIR`` the same way).  Each example is checked twice by llmfiles-openai's
fine-tuning checker, once with the estimate and once with tiktoken, so the numbers are those of the checks
themselves (text, tool calls, names and OpenAI's per-message overheads).  Besides the benchmark's chat data
(``bench/validate_speed.py``: English-like words, one example in ten multilingual), it measures chat examples
made of English prose (the docstrings of Python's standard library) and of Python code, so the estimate is seen on
more than one kind of text.
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import statistics
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _tiktoken_offline() -> None:
    if "TIKTOKEN_CACHE_DIR" not in os.environ:
        from run import tiktoken_cache

        cache = tiktoken_cache()
        if cache is not None:
            os.environ["TIKTOKEN_CACHE_DIR"] = cache


def bench_examples(n: int) -> Iterator[dict[str, Any]]:
    from validate_speed import example

    rnd = random.Random(20261101)  # the seed of the benchmark's files
    for i in range(n):
        yield example(rnd, i)


def _docstrings() -> list[str]:
    out: list[str] = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Module)):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 200:
                    out.append(doc)
    return out


def _code() -> list[str]:
    paths = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:200]
    return [p.read_text(encoding="utf-8", errors="replace")[:6000] for p in paths]


def text_examples(texts: list[str], n: int) -> Iterator[dict[str, Any]]:
    rnd = random.Random(7)
    for _ in range(n):
        question, answer = rnd.choice(texts), rnd.choice(texts)
        yield {
            "messages": [
                {"role": "system", "content": "You answer questions about Python."},
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer},
            ]
        }


def measure(name: str, examples: Iterator[dict[str, Any]], encoding: str) -> dict[str, Any]:
    from llmfiles_openai import checks, tokens

    model = "gpt-4o" if encoding == "o200k_base" else "gpt-3.5-turbo"
    exact = tokens.counter(model, "tiktoken")
    if not exact.exact:
        raise SystemExit(f"tiktoken is not usable here: {exact.method}")
    by_estimate = checks.FineTuneChecker(model=model, counter=tokens.ESTIMATE)
    by_tiktoken = checks.FineTuneChecker(model=model, counter=exact)
    ratios = []
    for i, record in enumerate(examples, 1):
        by_estimate.check(i, record)
        by_tiktoken.check(i, record)
        ratios.append(_last(by_estimate) / max(1, _last(by_tiktoken)))
    total_estimate, total_exact = by_estimate.stats.tokens_total, by_tiktoken.stats.tokens_total
    ratios.sort()
    return {
        "data": name,
        "examples": len(ratios),
        "estimate / exact (all tokens)": round(total_estimate / total_exact, 3),
        "per example: median": round(statistics.median(ratios), 3),
        "p5": round(ratios[len(ratios) // 20], 3),
        "p95": round(ratios[len(ratios) * 19 // 20], 3),
    }


def _last(checker: Any) -> int:
    """The tokens of the example the checker saw last (the statistics keep running totals)."""
    stats = checker.stats
    previous = getattr(checker, "_bench_total", 0)
    checker._bench_total = stats.tokens_total
    return int(stats.tokens_total - previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=3000)
    parser.add_argument("--encoding", default="o200k_base", choices=("o200k_base", "cl100k_base"))
    args = parser.parse_args(argv)
    _tiktoken_offline()
    from llmfiles.validate.stats import CHARS_PER_TOKEN

    rows = [
        measure("benchmark chat data (bench/validate_speed.py)", bench_examples(args.examples), args.encoding),
        measure("English prose (stdlib docstrings)", text_examples(_docstrings(), args.examples // 3), args.encoding),
        measure("Python code (stdlib modules)", text_examples(_code(), args.examples // 10), args.encoding),
    ]
    print(f"estimate: {CHARS_PER_TOKEN} characters per token, against tiktoken {args.encoding}")
    for row in rows:
        print("  " + ", ".join(f"{k}: {v}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
