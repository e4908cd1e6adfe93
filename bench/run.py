"""The benchmarks: llmfiles side by side with what users would otherwise run, in one run on this machine.

    tox -e bench                          # everything; the report goes to bench/results/
    tox -e bench -- --large               # adds a 4 GiB upload
    tox -e bench -- --only import,small   # some sections (import, upload, small, capped, validate)
    python bench/run.py --quick --out /tmp/r   # a minute's smoke run (what the test suite runs)

Set-up: ``bench/sink.py`` (a fast OpenAI-compatible sink) on 127.0.0.1, pinned to the last CPU with ``taskset``
where that works, every client pinned to the other CPUs; a second sink caps each connection at ``--rate-mib`` and
adds ``--latency-ms`` to every answer.  The chat fine-tuning files are generated deterministically once into
``$LLMFILES_BENCH_CACHE`` (default ``~/.cache/llmfiles-bench``).  Every measurement is a fresh process
(``bench/peers.py``, or curl itself), and the runs of the peers are interleaved: round 1 runs each peer once, then
round 2, and so on (the order rotates each round).  The kernel's accounting of each child (``os.wait4``) gives the
whole process's wall time, CPU time and peak RSS; the child reports the seconds of the work itself.  Each upload's
``bytes`` as the sink received them is checked against the file: a benchmark of a broken upload stops the run.

Peers: ``curl -F`` (the physical reference), the ``openai`` SDK (``files.create`` with an open file and with a
``Path``, ``uploads.upload_file_chunked``), ``litellm.create_file`` (with ``LITELLM_LOCAL_MODEL_COST_MAP=True`` so
that it does not reach for the internet).  llmfiles runs twice where it matters: with its defaults, from a plain
install (the content checks and the whole-file MD5 of the Uploads API, on the one read of the file that also sends
it; a large file is checked in a worker process) and ``raw`` (``validate=False, checksum=False``: the same work as
curl and the SDKs do).

The report (``report.md``, the PNG plots and ``results.json``) gives the median of the runs with min-max, and the
goals of issues 9 and 14 with the measured value beside each.  Its head gives this machine's speed, on one core, at
the per-byte work a default upload adds to a raw one (MD5, orjson's parse, the whole check pass), and the CPU
seconds per GiB they cost at least: the CPU goals are met on a machine that fast, not on every machine.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from validate_speed import cache_dir, example, generate  # noqa: E402

MiB = 1024 * 1024
PEERS = ("curl", "llmfiles", "llmfiles-raw", "openai-file", "openai-path", "openai-chunked", "litellm")
RAW = {"validate": False, "checksum": False}
SMALL_FILES = 50
SMALL_SIZE = 100 * 1024


# --- machine and processes ----------------------------------------------------------------------------------


def cpu_split() -> tuple[str | None, str | None]:
    """(the sink's CPU, the clients' CPUs) for taskset, or (None, None) where pinning does not work."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return None, None
    if subprocess.run(["taskset", "-c", str(cpus[-1]), "true"], capture_output=True, check=False).returncode != 0:
        return None, None
    return str(cpus[-1]), ",".join(str(c) for c in cpus[:-1])


SINK_CPU, CLIENT_CPUS = cpu_split()


def pinned(cmd: list[str], cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus, *cmd] if cpus else cmd


def measure_rusage(cmd: list[str], env: dict[str, str] | None = None, *, pin: bool = True) -> dict[str, Any]:
    """Run ``cmd`` (pinned to the clients' CPUs unless ``pin`` is false): its wall time, and its CPU seconds and peak
    RSS (``os.wait4``: this process's, with the processes it started and waited for, such as llmfiles' check worker;
    the peak RSS is the largest of them)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        pinned(cmd, CLIENT_CPUS if pin else None),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env or os.environ.copy(),
    )
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n{err.decode(errors='replace')[-3000:]}"
        )
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mib": usage.ru_maxrss / 1024,  # KiB on Linux
        "stdout": out.decode(),
    }


@contextmanager
def sink(rate_mib: float = 0, latency_ms: float = 0, *, pin: bool = True) -> Iterator[str]:
    """A sink server; yields its base URL (``http://127.0.0.1:PORT/v1``)."""
    cmd = [sys.executable, str(HERE / "sink.py"), "--rate-mib", str(rate_mib), "--latency-ms", str(latency_ms)]
    proc = subprocess.Popen(pinned(cmd, SINK_CPU if pin else None), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("listening "):
            raise RuntimeError(f"the sink did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}/v1"
    finally:
        proc.terminate()
        proc.wait(10)


def sink_stats(base: str) -> dict[str, int]:
    import urllib.request

    with urllib.request.urlopen(base.removesuffix("/v1") + "/_stats", timeout=10) as resp:  # noqa: S310 (loopback)
        stats: dict[str, int] = json.load(resp)
    return stats


# --- the peers ----------------------------------------------------------------------------------------------


def installed(peer: str) -> bool:
    if peer == "curl":
        return shutil.which("curl") is not None
    module = {"openai-file": "openai", "openai-path": "openai", "openai-chunked": "openai"}.get(peer, peer)
    module = "llmfiles" if module.startswith("llmfiles") else module
    return _importable(module)


def _importable(module: str) -> bool:
    """Whether the children can import ``module`` (they run this interpreter), without importing it here."""
    import importlib.util

    return importlib.util.find_spec(module) is not None


@functools.cache
def tiktoken_cache() -> str | None:
    """A tiktoken cache folder holding the encodings litellm ships, so that tiktoken works offline here (it
    downloads them otherwise, and falls back to the estimate without a network)."""
    import importlib.util

    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    bundled = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
    target = cache_dir() / "tiktoken"
    target.mkdir(parents=True, exist_ok=True)
    for f in bundled.glob("*"):
        if len(f.name) == 40 and not (target / f.name).exists():  # tiktoken names its cache files by a SHA-1
            shutil.copyfile(f, target / f.name)
    return str(target)


def child_env() -> dict[str, str]:
    env = os.environ.copy()
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    if "TIKTOKEN_CACHE_DIR" not in env and (cache := tiktoken_cache()) is not None:
        env["TIKTOKEN_CACHE_DIR"] = cache
    env.setdefault("LLMFILES_HOME", str(cache_dir() / "home"))  # the state database of the llmfiles runs
    env.pop("OPENAI_API_KEY", None)
    return env


def peer_spec(peer: str) -> tuple[str, dict[str, Any]]:
    if peer == "llmfiles-raw":
        return "llmfiles", dict(RAW)
    return peer, {}


def upload_once(
    peer: str, path: Path, base: str, extra: dict[str, Any] | None = None, *, pin: bool = True
) -> dict[str, Any]:
    size = path.stat().st_size
    if peer == "curl":
        cmd = [
            "curl", "-sS", "--fail-with-body", "-H", "Authorization: Bearer sk-bench", "-F", "purpose=fine-tune",
            "-F", f"file=@{path}", "-w", "\n%{time_total}", f"{base}/files",
        ]  # fmt: skip
        r = measure_rusage(cmd, pin=pin)
        body, _, seconds = r.pop("stdout").rpartition("\n")
        r.update(seconds=float(seconds), bytes=json.loads(body)["bytes"])
    else:
        tool, settings = peer_spec(peer)
        settings.update(extra or {})
        spec = {"op": "upload", "tool": tool, "path": str(path), "base": base, "settings": settings}
        r = measure_rusage([sys.executable, str(HERE / "peers.py"), json.dumps(spec)], child_env(), pin=pin)
        r.update(json.loads(r.pop("stdout").strip().splitlines()[-1]))
    if r["bytes"] != size:
        raise RuntimeError(f"{peer}: the sink received {r['bytes']:,} bytes of {path} ({size:,}): the upload is broken")
    r["mib_s"] = size / MiB / r["seconds"]
    r["cpu_per_gib"] = r["cpu"] / (size / (1024 * MiB))
    return r


# --- data ---------------------------------------------------------------------------------------------------


def small_files(count: int, size: int) -> list[Path]:
    """``count`` deterministic chat files of about ``size`` bytes each (at least 10 examples: they pass the checks)."""
    folder = cache_dir() / f"small-{count}x{size // 1024}KiB"
    paths = [folder / f"{i:03d}.jsonl" for i in range(count)]
    if all(p.exists() for p in paths):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(20261125)
    for i, p in enumerate(paths):
        lines: list[bytes] = []
        n = 0
        while n < size or len(lines) < 10:
            line = json.dumps(example(rnd, i * 1000 + len(lines)), ensure_ascii=False).encode() + b"\n"
            lines.append(line)
            n += len(line)
        p.write_bytes(b"".join(lines))
    return paths


def sized_file(mib: int, quick: bool) -> Path:
    if not quick:
        return generate(mib)
    path = cache_dir() / f"quick-{mib}MiB.jsonl"
    if not path.exists():
        big = generate(max(mib, 10))
        with open(big, "rb") as src, open(path, "wb") as dst:
            dst.writelines(_lines_upto(src, mib * MiB))
    return path


def _lines_upto(fh: Any, limit: int) -> Iterator[bytes]:
    n = 0
    for line in fh:
        if n + len(line) > limit and n:
            return
        n += len(line)
        yield line


# --- sections -----------------------------------------------------------------------------------------------


def rounds(peers: Sequence[str], repeat: int) -> Iterator[tuple[int, str]]:
    """Interleaved: each round runs every peer once, in an order that rotates."""
    for r in range(repeat):
        k = r % len(peers)
        for peer in [*peers[k:], *peers[:k]]:
            yield r, peer


def section_import(peers: list[str], repeat: int, log: Any) -> list[dict[str, Any]]:
    wanted = {p.split("-")[0] for p in peers}
    modules = [m for m in ("llmfiles", "openai", "litellm") if m in wanted]
    out = []
    for r, module in rounds(modules, repeat):
        spec = {"op": "import", "module": module}
        m = measure_rusage([sys.executable, str(HERE / "peers.py"), json.dumps(spec)], child_env())
        m.update(json.loads(m.pop("stdout").strip().splitlines()[-1]))
        out.append(dict(m, section="import", peer=module, round=r))
        log(f"import {module}: {m['seconds'] * 1000:.1f} ms (process {m['wall']:.2f}s, {m['rss_mib']:.0f} MiB)")
    return out


def section_upload(peers: list[str], sizes: list[int], repeat: int, base: str, quick: bool, log: Any,
                   extra: dict[str, Any]) -> list[dict[str, Any]]:  # fmt: skip
    out = []
    for mib in sizes:
        path = sized_file(mib, quick)
        for r, peer in rounds(peers, repeat):
            m = upload_once(peer, path, base, extra if peer.startswith("llmfiles") else None)
            out.append(dict(m, section="upload", peer=peer, size_mib=mib, round=r))
            log(f"upload {mib} MiB {peer}: {m['seconds']:.2f}s {m['mib_s']:.0f} MiB/s, peak RSS {m['rss_mib']:.0f} MiB")
    return out


def section_small(peers: list[str], repeat: int, base: str, count: int, log: Any) -> list[dict[str, Any]]:
    tools: list[str] = [p for p in ("llmfiles", "llmfiles-raw", "openai-file", "litellm") if p in peers]
    if "llmfiles" in peers:
        tools[2:2] = ["floor", "floor-raw"]  # sequential only: what llmfiles' own code adds to an upload
    paths = [str(p) for p in small_files(count, SMALL_SIZE)]
    out = []
    for mode in ("seq", "threads", "asyncio"):
        for r, tool in rounds([t for t in tools if mode == "seq" or not t.startswith("floor")], repeat):
            name, settings = peer_spec(tool)
            spec = {"op": "small", "tool": name, "mode": mode, "paths": paths, "base": base, "settings": settings}
            m = measure_rusage([sys.executable, str(HERE / "peers.py"), json.dumps(spec)], child_env())
            m.update(json.loads(m.pop("stdout").strip().splitlines()[-1]))
            expected = sum(os.path.getsize(p) for p in paths)
            if m["bytes"] != expected:
                raise RuntimeError(f"{tool} {mode}: the sink received {m['bytes']:,} bytes, not {expected:,}")
            out.append(dict(m, section="small", peer=tool, mode=mode, round=r))
            log(f"small {mode} {tool}: {m['ms_per_file']:.1f} ms/file, process {m['wall']:.2f}s")
    return out


def section_capped(peers: list[str], repeat: int, base: str, sizes: list[int], quick: bool, log: Any,
                   extra: dict[str, Any]) -> list[dict[str, Any]]:  # fmt: skip
    """Over a capped link: a file above OpenAI's single-request limit (parts: llmfiles' Uploads API, the SDK's
    ``upload_file_chunked``) and one below it (one request: the SDK's ``files.create``).  Nothing is pinned: the
    link, not the machine, is the limit, and llmfiles' check worker takes the other core as it would anywhere."""
    out = []
    for mib in sizes:
        path = sized_file(mib, quick)
        one_request = mib * MiB <= 512 * 1000 * 1000 and not quick
        sdk = "openai-file" if one_request else "openai-chunked"
        chosen = [p for p in ("llmfiles", "llmfiles-raw", sdk, "curl") if p in peers]
        for r, peer in rounds(chosen, repeat):
            m = upload_once(peer, path, base, extra if peer.startswith("llmfiles") else None, pin=False)
            out.append(dict(m, section="capped", peer=peer, size_mib=mib, round=r))
            log(f"capped {mib} MiB {peer}: {m['seconds']:.2f}s, {m['cpu_per_gib']:.2f} CPU s/GiB")
    return out


def section_machine(mib: int, quick: bool, log: Any) -> list[dict[str, Any]]:
    """This machine's speed at the per-byte work a default upload adds (MD5, the parse, the checks), on the client's
    CPU: what the CPU goals of the capped link cannot go below here."""
    spec = {"op": "calibrate", "path": str(sized_file(mib, quick))}
    m = measure_rusage([sys.executable, str(HERE / "peers.py"), json.dumps(spec)], child_env())
    m.update(json.loads(m.pop("stdout").strip().splitlines()[-1]))
    log(f"machine: MD5 {m['md5_mib_s']} MiB/s, parse {m['parse_mib_s']} MiB/s, checks {m['checks_mib_s']} MiB/s")
    return [dict(m, section="machine", peer="calibrate")]


def _least_cpu_per_gib(results: list[dict[str, Any]]) -> float | None:
    """CPU seconds per GiB the checks and the MD5 of a default upload cost at least on this machine."""
    cal = group(results, "machine")
    if not cal:
        return None
    return 1024 / float(cal[0]["checks_mib_s"]) + 1024 / float(cal[0]["md5_mib_s"])


def section_validate(sizes: list[int], repeat: int, quick: bool, log: Any) -> list[dict[str, Any]]:
    """The check pass alone: with the default tokenizer (``auto``), with ``estimate`` and, on the smallest file
    only (it runs at a tenth of the speed), with ``tiktoken`` counting every example exactly."""
    out = []
    tiktoken = _importable("tiktoken")
    for r in range(repeat):
        for mib in sizes:
            variants = ["auto", "estimate"] + (["tiktoken"] if tiktoken and mib == min(sizes) else [])
            for tokenizer in variants:
                spec = {"op": "validate", "path": str(sized_file(mib, quick))}
                env = dict(child_env(), LLMFILES_TOKENIZER=tokenizer)
                m = measure_rusage([sys.executable, str(HERE / "peers.py"), json.dumps(spec)], env)
                m.update(json.loads(m.pop("stdout").strip().splitlines()[-1]))
                out.append(dict(m, section="validate", peer=f"llmfiles ({tokenizer})", size_mib=mib, round=r))
                log(f"validate {mib} MiB {tokenizer}: {m['mib_per_s']} MiB/s, peak RSS {m['peak_rss_mib']} MiB")
    return out


# --- the report ---------------------------------------------------------------------------------------------


def stat(rows: list[dict[str, Any]], key: str) -> tuple[float, float, float]:
    values = [float(r[key]) for r in rows]
    return statistics.median(values), min(values), max(values)


def group(results: list[dict[str, Any]], section: str, **where: Any) -> list[dict[str, Any]]:
    return [r for r in results if r["section"] == section and all(r.get(k) == v for k, v in where.items())]


def fmt(t: tuple[float, float, float], digits: int = 2, scale: float = 1.0) -> str:
    med, lo, hi = (x * scale for x in t)
    return f"{med:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


def row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def process_cells(rows: list[dict[str, Any]]) -> tuple[str, str, str]:
    """Whole process: wall seconds, CPU seconds, peak RSS."""
    return fmt(stat(rows, "wall")), fmt(stat(rows, "cpu")), fmt(stat(rows, "rss_mib"), 0)


def versions() -> dict[str, str]:
    from importlib import metadata

    got = {"python": platform.python_version()}
    for dist in ("llmfiles", "llmfiles-openai", "openai", "litellm", "httpx", "urllib3", "tiktoken", "orjson"):
        try:
            got[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    if shutil.which("curl"):
        got["curl"] = subprocess.run(["curl", "--version"], capture_output=True, text=True, check=False).stdout.split()[
            1
        ]
    return got


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({model or 'unknown model'})"


Goal = tuple[str, str, bool | None]


def _med(rows: list[dict[str, Any]], key: str) -> float | None:
    return statistics.median(float(r[key]) for r in rows) if rows else None


def goals(results: list[dict[str, Any]], big: int) -> list[Goal]:
    """(goal, measured, met) for each goal of issues 9 and 14 that this run measured."""
    return [*_import_goals(results), *_upload_goals(results, big), *_small_goals(results), *_capped_goals(results),
            *_validate_goals(results)]  # fmt: skip


def _import_goals(results: list[dict[str, Any]]) -> list[Goal]:
    li, oi = (
        _med(group(results, "import", peer="llmfiles"), "seconds"),
        _med(group(results, "import", peer="openai"), "seconds"),
    )
    if li is None or oi is None:
        return []
    return [
        (
            "`import llmfiles` ≤ 0.3× `import openai`",
            f"{li / oi:.3f}× ({li * 1000:.0f} ms vs {oi * 1000:.0f} ms)",
            li / oi <= 0.3,
        )
    ]


def _upload_goals(results: list[dict[str, Any]], big: int) -> list[Goal]:
    out: list[Goal] = []
    curl = _med(group(results, "upload", peer="curl", size_mib=big), "mib_s")
    lf = _med(group(results, "upload", peer="llmfiles-raw", size_mib=big), "mib_s")
    if curl and lf:
        out.append(
            (
                f"loopback: raw {big} MiB ≥ 0.8× curl's throughput",
                f"{lf / curl:.2f}× ({lf:.0f} vs {curl:.0f} MiB/s)",
                lf / curl >= 0.8,
            )
        )
    rss = [r for r in results if r["section"] in ("upload", "capped") and r["peer"].startswith("llmfiles")]
    if rss:
        worst = max(float(r["rss_mib"]) for r in rss)
        sizes = sorted({r["size_mib"] for r in rss})
        out.append(
            (
                f"peak RSS ≤ 64 MiB at every size ({', '.join(map(str, sizes))} MiB, defaults and raw)",
                f"{worst:.0f} MiB at most",
                worst <= 64,
            )
        )
    return out


def _small_goals(results: list[dict[str, Any]]) -> list[Goal]:
    out: list[Goal] = []
    seq = _med(group(results, "small", peer="llmfiles", mode="seq"), "ms_per_file")
    floor = _med(group(results, "small", peer="floor", mode="seq"), "ms_per_file")
    unchecked = _med(group(results, "small", peer="floor-raw", mode="seq"), "ms_per_file")
    if seq is not None:
        below = f" (the floor: {floor:.2f} ms; unchecked {unchecked:.2f} ms)" if floor and unchecked else ""
        out.append(("100 KiB files ≤ 1 ms each with the defaults (warm, sequential)", f"{seq:.2f} ms{below}", seq <= 1))
    for mode in ("seq", "threads", "asyncio"):
        lw, ow = (
            _med(group(results, "small", peer="llmfiles", mode=mode), "wall"),
            _med(group(results, "small", peer="openai-file", mode=mode), "wall"),
        )
        if lw and ow:
            out.append(
                (
                    f"{SMALL_FILES} small files, {mode}: whole process ≤ 0.5× the openai SDK's",
                    f"{lw / ow:.2f}× ({lw:.2f}s vs {ow:.2f}s)",
                    lw / ow <= 0.5,
                )
            )
        lm, tm = (
            _med(group(results, "small", peer="llmfiles", mode=mode), "ms_per_file"),
            _med(group(results, "small", peer="litellm", mode=mode), "ms_per_file"),
        )
        if lm and tm:
            out.append(
                (
                    f"{SMALL_FILES} small files, {mode}: ≥ 10× faster per file than litellm",
                    f"{tm / lm:.1f}× ({lm:.1f} vs {tm:.1f} ms/file)",
                    tm / lm >= 10,
                )
            )
    return out


def _capped_goals(results: list[dict[str, Any]]) -> list[Goal]:
    out: list[Goal] = []
    for mib in sorted({r["size_mib"] for r in group(results, "capped")}, reverse=True):
        d = _med(group(results, "capped", peer="llmfiles", size_mib=mib), "seconds")
        raw = _med(group(results, "capped", peer="llmfiles-raw", size_mib=mib), "seconds")
        if d and raw:
            out.append(
                (
                    f"capped link, {mib} MiB: the default upload ≤ 1.25× raw",
                    f"{d / raw:.2f}× ({d:.2f}s vs {raw:.2f}s)",
                    d / raw <= 1.25,
                )
            )
            dc = _med(group(results, "capped", peer="llmfiles", size_mib=mib), "cpu_per_gib")
            rc = _med(group(results, "capped", peer="llmfiles-raw", size_mib=mib), "cpu_per_gib")
            if dc is not None and rc is not None:
                least = _least_cpu_per_gib(results)
                floor = f"; the checks and MD5 alone: {least:.2f} here" if least else ""
                out.append(
                    (
                        f"capped link, {mib} MiB: the default costs ≤ 5 CPU s/GiB more than raw",
                        f"+{dc - rc:.2f} CPU s/GiB ({dc:.2f} vs {rc:.2f}{floor})",
                        dc - rc <= 5,
                    )
                )
        ch = _med(group(results, "capped", peer="openai-chunked", size_mib=mib), "seconds")
        if d and ch:
            out.append(
                (
                    f"capped link, {mib} MiB: the default ≥ 3× faster than `upload_file_chunked`",
                    f"{ch / d:.1f}× ({d:.2f}s vs {ch:.2f}s)",
                    ch / d >= 3,
                )
            )
    return out


def _validate_goals(results: list[dict[str, Any]]) -> list[Goal]:
    out: list[Goal] = []
    for peer in sorted({r["peer"] for r in group(results, "validate")} - {"llmfiles (tiktoken)"}):
        val = group(results, "validate", peer=peer)
        top = max(r["size_mib"] for r in val)
        speed = _med([r for r in val if r["size_mib"] == top], "mib_per_s")
        assert speed is not None
        out.append((f"validation ≥ 200 MiB/s ({top} MiB file, {peer})", f"{speed:.0f} MiB/s", speed >= 200))
        by_size = {
            s: max(float(r["peak_rss_mib"]) for r in val if r["size_mib"] == s)
            for s in sorted({r["size_mib"] for r in val})
        }
        growth = max(by_size.values()) - min(by_size.values())
        measured = ", ".join(f"{s} MiB: {v:.0f} MiB RSS" for s, v in by_size.items())
        out.append((f"validation in constant memory ({peer})", measured, growth < 16))
    return out


def plots(results: list[dict[str, Any]], out: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []

    def bars(
        name: str,
        title: str,
        ylabel: str,
        labels: list[str],
        series: dict[str, list[tuple[float, float, float]]],
        log: bool = False,
    ) -> None:
        fig, ax = plt.subplots(figsize=(10.5, 4.5))
        width = 0.8 / max(len(series), 1)
        for k, (peer, vals) in enumerate(series.items()):
            xs = [i + k * width for i in range(len(labels))]
            meds = [v[0] for v in vals]
            err = [[v[0] - v[1] for v in vals], [v[2] - v[0] for v in vals]]
            ax.bar(xs, meds, width, yerr=err, capsize=2, label=peer)
        ax.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(labels))], labels)
        if log:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars, never over them
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        made.append(name)

    imp = {
        p: [stat(group(results, "import", peer=p), "seconds")]
        for p in ("llmfiles", "openai", "litellm")
        if group(results, "import", peer=p)
    }
    if imp:
        bars("import.png", "import time (median, min–max)", "seconds", ["import"], imp)
    sizes = sorted({r["size_mib"] for r in group(results, "upload")})
    if sizes:
        peers = [p for p in PEERS if group(results, "upload", peer=p)]
        labels = [f"{s} MiB" for s in sizes]
        bars(
            "upload_throughput.png",
            "upload throughput (median, min–max)",
            "MiB/s",
            labels,
            {p: [stat(group(results, "upload", peer=p, size_mib=s), "mib_s") for s in sizes] for p in peers},
        )
        bars(
            "upload_rss.png",
            "peak RSS of the whole process (log scale)",
            "MiB",
            labels,
            {p: [stat(group(results, "upload", peer=p, size_mib=s), "rss_mib") for s in sizes] for p in peers},
            log=True,
        )
    modes = [m for m in ("seq", "threads", "asyncio") if group(results, "small", mode=m)]
    if modes:
        tools = [p for p in ("llmfiles", "openai-file", "litellm") if group(results, "small", peer=p)]
        bars(
            "small_files.png",
            f"{SMALL_FILES} files of 100 KiB: whole process (median, min–max)",
            "seconds",
            modes,
            {p: [stat(group(results, "small", peer=p, mode=m), "wall") for m in modes] for p in tools},
        )
    capped_sizes = sorted({r["size_mib"] for r in group(results, "capped")}, reverse=True)
    cap = [
        p
        for p in ("llmfiles", "llmfiles-raw", "openai-chunked", "openai-file", "curl")
        if group(results, "capped", peer=p)
    ]
    if cap:
        nothing = (float("nan"), float("nan"), float("nan"))
        bars(
            "capped.png",
            "upload over a capped link (median, min–max)",
            "seconds",
            [f"{m} MiB" for m in capped_sizes],
            {
                p: [
                    stat(rows, "seconds") if (rows := group(results, "capped", peer=p, size_mib=m)) else nothing
                    for m in capped_sizes
                ]
                for p in cap
            },
        )
    return made


def report(
    results: list[dict[str, Any]],
    args: argparse.Namespace,
    out: Path,
    started: float,
    skipped: dict[str, str],
    received: dict[str, int],
) -> Path:
    lines = _report_head(results, args, started, skipped, received)
    lines += _report_import(results) + _report_upload(results) + _report_small(results)
    lines += _report_capped(results, args) + _report_validate(results)
    made = plots(results, out)
    if made:
        lines += ["", "## Plots", ""] + [f"![{m}]({m})" for m in made]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return path


def _report_head(
    results: list[dict[str, Any]],
    args: argparse.Namespace,
    started: float,
    skipped: dict[str, str],
    received: dict[str, int],
) -> list[str]:
    lines = [
        "# llmfiles benchmarks",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))} in {time.time() - started:.0f} s: "
        f"`python bench/run.py {' '.join(sys.argv[1:])}`".rstrip(),
        "",
        f"- machine: {machine()}; sink pinned to CPU {SINK_CPU}, clients to CPU(s) {CLIENT_CPUS} (but over the "
        "capped link)"
        if SINK_CPU
        else f"- machine: {machine()}; no CPU pinning (taskset unavailable or one CPU)",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()),
        *_machine_speeds(results),
        f"- median of {args.repeat} interleaved runs, (min–max); every run a fresh process; "
        "every upload's size checked at the sink",
        f"- the sink received {received['requests']:,} requests, {received['body_bytes'] / MiB:,.0f} MiB of bodies, "
        f"{received['files']:,} files, {received['parts']:,} upload parts",
    ]
    lines += [f"- {peer}: not measured ({why})" for peer, why in skipped.items()]
    lines += ["", "## Goals", "", "| goal | measured | |", "|---|---|---|"]
    sizes = {r["size_mib"] for r in group(results, "upload")}
    big = 1024 if 1024 in sizes else max(sizes, default=0)
    for goal, measured, met in goals(results, big):
        lines.append(f"| {goal} | {measured} | {'met' if met else '**missed**'} |")
    return lines


def _machine_speeds(results: list[dict[str, Any]]) -> list[str]:
    cal = group(results, "machine")
    if not cal:
        return []
    c, least = cal[0], _least_cpu_per_gib(results)
    return [
        f"- this machine, one core, in memory (best of 5 over {c['bytes'] / MiB:.0f} MiB of the chat file): MD5 "
        f"{c['md5_mib_s']:.0f} MiB/s, orjson's parse of the lines {c['parse_mib_s']:.0f} MiB/s, the checks of an "
        f"upload (the parse and the OpenAI record rules) {c['checks_mib_s']:.0f} MiB/s: the checks and the MD5 of "
        f"a default upload cost at least {least:.2f} CPU s/GiB here"
    ]


def _report_import(results: list[dict[str, Any]]) -> list[str]:
    if not group(results, "import"):
        return []
    lines = ["", "## 1. Import", "", "| module | import (ms) | whole process (s) | CPU (s) | peak RSS (MiB) |"]
    lines.append("|---|---|---|---|---|")
    for p in ("llmfiles", "openai", "litellm"):
        rows = group(results, "import", peer=p)
        if rows:
            lines.append(row(p, fmt(stat(rows, "seconds"), 1, 1000), *process_cells(rows)))
    return lines


def _report_upload(results: list[dict[str, Any]]) -> list[str]:
    up = group(results, "upload")
    if not up:
        return []
    lines = [
        "",
        "## 2. One file of each size",
        "",
        "Upload seconds are those of the upload call (imports and client set-up excluded; curl: its `time_total`); "
        "ratio: throughput divided by curl's. llmfiles sends files above 512 MB through the Uploads API "
        "(64 MiB parts, 4 at a time) as it must for OpenAI; curl and the other single-request peers send one "
        "request the sink accepts but OpenAI would refuse above 512 MB.",
        "",
        "| size | peer | upload (s) | MiB/s | × curl | whole process (s) | CPU (s) | peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in sorted({r["size_mib"] for r in up}):
        curl_rows = group(results, "upload", peer="curl", size_mib=s)
        curl = stat(curl_rows, "mib_s")[0] if curl_rows else None
        for p in PEERS:
            rows = group(results, "upload", peer=p, size_mib=s)
            if rows:
                ratio = f"{stat(rows, 'mib_s')[0] / curl:.2f}" if curl else "–"
                cells = (fmt(stat(rows, "seconds")), fmt(stat(rows, "mib_s"), 0), ratio, *process_cells(rows))
                lines.append(row(f"{s} MiB", p, *cells))
    return lines


def _report_small(results: list[dict[str, Any]]) -> list[str]:
    if not group(results, "small"):
        return []
    lines = [
        "",
        f"## 3. {SMALL_FILES} files of 100 KiB",
        "",
        "8 threads or 8 asyncio tasks at a time; ms per file of the uploads alone (one warm-up upload first). "
        "`floor`: each file checked as an upload checks it (`JsonlChecker` with the OpenAI record rules) and POSTed "
        "with urllib3, nothing else: what a checked upload cannot cost less than with the libraries llmfiles is built "
        "on; llmfiles' own code is the difference. `floor-raw`: the same POST, unchecked (beside `llmfiles-raw`).",
        "",
        "| mode | peer | ms per file | whole process (s) | CPU (s) | peak RSS (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for mode in ("seq", "threads", "asyncio"):
        for p in ("llmfiles", "llmfiles-raw", "floor", "floor-raw", "openai-file", "litellm"):
            rows = group(results, "small", peer=p, mode=mode)
            if rows:
                lines.append(row(mode, p, fmt(stat(rows, "ms_per_file"), 1), *process_cells(rows)))
    return lines


def _report_capped(results: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    lines: list[str] = []
    cap = group(results, "capped")
    if cap:
        lines += [
            "",
            "## 4. Over a capped link",
            "",
            f"Each connection capped at {args.rate_mib:g} MiB/s, {args.latency_ms:g} ms added to every answer; nothing "
            "pinned (the link is the limit). Files above 512 MB go up in parts (llmfiles: 4 in parallel; the SDK: "
            "`upload_file_chunked`), smaller ones in one request. CPU: the whole process, llmfiles' check worker "
            "included.",
            "",
            "| size | peer | upload (s) | MiB/s | CPU s/GiB | peak RSS (MiB) |",
            "|---|---|---|---|---|---|",
        ]
        for mib in sorted({r["size_mib"] for r in cap}, reverse=True):
            for p in ("llmfiles", "llmfiles-raw", "openai-chunked", "openai-file", "curl"):
                rows = group(results, "capped", peer=p, size_mib=mib)
                if rows:
                    lines.append(
                        row(
                            f"{mib} MiB",
                            p,
                            fmt(stat(rows, "seconds")),
                            fmt(stat(rows, "mib_s"), 0),
                            fmt(stat(rows, "cpu_per_gib")),
                            fmt(stat(rows, "rss_mib"), 0),
                        )
                    )
    return lines


def _report_validate(results: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    val = group(results, "validate")
    if val:
        lines += [
            "",
            "## 5. Validation",
            "",
            "`Client().validate(path, provider='openai', purpose='fine-tune')` in a fresh process; "
            "peak RSS of the whole process. Tokens: `auto` (the default) estimates and counts exactly with "
            "tiktoken only an example that may be over the limit; `estimate` never loads tiktoken; `tiktoken` "
            "counts every example exactly (run on the smallest file only). tiktoken reads its encodings from "
            "a copy of the ones litellm ships, so it works offline.",
            "",
            "| size | tokens | MiB/s | seconds | peak RSS (MiB) | RSS before reading (MiB) | parser |",
            "|---|---|---|---|---|---|---|",
        ]
        for s, peer in sorted({(r["size_mib"], r["peer"]) for r in val}):
            rows = [r for r in val if r["size_mib"] == s and r["peer"] == peer]
            lines.append(
                f"| {s} MiB | {peer.split('(')[-1].rstrip(')')} | {fmt(stat(rows, 'mib_per_s'), 0)} "
                f"| {fmt(stat(rows, 'seconds'))} | {fmt(stat(rows, 'peak_rss_mib'), 0)} "
                f"| {fmt(stat(rows, 'rss_before_mib'), 0)} | {rows[0]['parser']} |"
            )
    return lines


# --- main ---------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(HERE / "results"), help="where the report goes (default bench/results)")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved runs of each measurement (default 5)")
    parser.add_argument("--sizes", default="10,200,1024", help="MiB of the single-file uploads")
    parser.add_argument("--large", action="store_true", help="also upload a 4 GiB file")
    parser.add_argument("--only", default="import,upload,small,capped,validate", help="sections to run")
    parser.add_argument("--peers", default=",".join(PEERS), help="peers to run")
    parser.add_argument("--rate-mib", type=float, default=100, help="the capped link: MiB/s per connection")
    parser.add_argument("--latency-ms", type=float, default=20, help="the capped link: ms added to each answer")
    parser.add_argument("--capped-mib", default="1024,400", help="sizes (MiB) of the files sent over the capped link")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: small files, one run, parts forced for llmfiles, "
                        "peers that are not installed skipped")  # fmt: skip
    args = parser.parse_args(argv)
    started = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sections = {s.strip() for s in args.only.split(",") if s.strip()}
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    skipped: dict[str, str] = {}
    for peer in list(peers):
        if not installed(peer):
            if not args.quick:
                raise SystemExit(f"{peer} is not installed; run the benchmarks with `tox -e bench`")
            skipped[peer] = "not installed"
            peers.remove(peer)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()] + ([4096] if args.large else [])
    extra: dict[str, Any] = {}
    count = SMALL_FILES
    if args.quick:
        sizes, args.repeat, args.capped_mib, count = [1, 3], max(1, min(args.repeat, 1)), "3", 5
        args.rate_mib = min(args.rate_mib, 4)
        extra = {"multipart_threshold": 2 * MiB, "part_size": MiB}  # the parallel parts path, on small files
    log = (lambda *a: print(*a, flush=True)) if not args.quick else (lambda *a: print(*a, file=sys.stderr))
    results = section_machine(sizes[0], args.quick, log)
    if "import" in sections:
        results += section_import(peers, args.repeat, log)
    with sink() as base:
        if "upload" in sections:
            results += section_upload(peers, sizes, args.repeat, base, args.quick, log, extra)
        if "small" in sections:
            results += section_small(peers, args.repeat, base, count, log)
        received = sink_stats(base)
    if "capped" in sections:
        capped_sizes = [int(m) for m in str(args.capped_mib).split(",") if m.strip()]
        with sink(args.rate_mib, args.latency_ms, pin=False) as capped:
            results += section_capped(peers, args.repeat, capped, capped_sizes, args.quick, log, extra)
    if "validate" in sections:
        small = [s for s in sizes if s >= 200][:1] if not args.quick else sizes[:1]
        results += section_validate(sorted({*small, *sizes[-2:]}), args.repeat, args.quick, log)
    path = report(results, args, out, started, skipped, received)
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
