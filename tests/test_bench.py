"""The benchmark harness works: its sink receives exactly what is sent, and a quick run writes a report.

The benchmarks themselves (``tox -e bench``) are not run here; these tests keep the harness from rotting.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


@pytest.fixture(scope="module")
def sink_port() -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, str(BENCH / "sink.py")], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("listening "), line
    yield int(line.split()[1])
    proc.terminate()
    proc.wait(10)


def multipart_body(payload: bytes, boundary: str = "b0und4ry", after: bool = False) -> bytes:
    field = f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'.encode()
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="t.jsonl"\r\n'
        "Content-Type: application/jsonl\r\n\r\n"
    ).encode()
    if after:
        return head + payload + b"\r\n" + field + f"--{boundary}--\r\n".encode()
    return field + head + payload + f"\r\n--{boundary}--\r\n".encode()


def post_in_writes(port: int, body: bytes, first: int, write: int, times: int = 2) -> list[dict[str, object]]:
    """POST ``body`` ``times`` on one connection: ``first`` bytes, then writes of ``write`` bytes, with pauses, so
    the sink's reads see pieces of many sizes (a small piece then a large one is the hard case for its tail)."""
    head = (
        "POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b0und4ry\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    answers = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        reader = sock.makefile("rb")
        for _ in range(times):
            sock.sendall(head)
            sock.sendall(body[:first])
            time.sleep(0.005)
            for i in range(first, len(body), write):
                sock.sendall(body[i : i + write])
                time.sleep(0.005)
            status = reader.readline()
            length = 0
            while (line := reader.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            assert b" 200 " in status, status
            answers.append(json.loads(reader.read(length)))
    return answers


@pytest.mark.parametrize("size", [1, 1000, 64 * 1024 - 1, 64 * 1024 + 7, 100_000, 200_000, 3 * 1024 * 1024 + 5])
@pytest.mark.parametrize("after", [False, True])
@pytest.mark.parametrize(("first", "write"), [(1 << 30, 1), (20_000, 1 << 30), (70_000, 20_000)])
def test_the_sink_counts_the_file_part_exactly(sink_port: int, size: int, after: bool, first: int, write: int) -> None:
    payload = (b"0123456789abcdef" * (size // 16 + 1))[:size]
    for answer in post_in_writes(sink_port, multipart_body(payload, after=after), first, write):
        assert (answer["bytes"], answer["filename"], answer["purpose"]) == (size, "t.jsonl", "fine-tune")


def test_the_sink_reads_chunked_bodies_and_checks_uploads(sink_port: int) -> None:
    payload = os.urandom(150_000).replace(b"--b0und4ry", b"xxxxxxxxxx")
    body = multipart_body(payload)
    chunks = (body[i : i + 70_001] for i in range(0, len(body), 70_001))
    conn = http.client.HTTPConnection("127.0.0.1", sink_port, timeout=30)
    headers = {"Content-Type": "multipart/form-data; boundary=b0und4ry", "Transfer-Encoding": "chunked"}
    conn.request("POST", "/v1/files", body=chunks, headers=headers, encode_chunked=True)
    assert json.loads(conn.getresponse().read())["bytes"] == len(payload)

    def post(path: str, doc: object) -> tuple[int, dict[str, object]]:
        conn.request("POST", path, body=json.dumps(doc), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())

    _, upload = post("/v1/uploads", {"filename": "t.jsonl", "purpose": "fine-tune", "bytes": 10, "mime_type": "x"})
    conn.request(
        "POST",
        f"/v1/uploads/{upload['id']}/parts",
        body=multipart_body(b"0123456"),
        headers={"Content-Type": "multipart/form-data; boundary=b0und4ry"},
    )
    part = json.loads(conn.getresponse().read())
    status, answer = post(f"/v1/uploads/{upload['id']}/complete", {"part_ids": [part["id"]]})
    assert status == 400 and "7 bytes" in str(answer)  # 7 of the 10 announced: refused
    conn.close()


def test_a_quick_run_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "report"
    env = dict(os.environ, LLMFILES_BENCH_CACHE=str(tmp_path / "cache"), LLMFILES_HOME=str(tmp_path / "home"))
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--out", str(out), "--peers", "curl,llmfiles,llmfiles-raw"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = (out / "report.md").read_text()
    results = json.loads((out / "results.json").read_text())
    sections = {r["section"] for r in results}
    assert sections == {"machine", "import", "upload", "small", "capped", "validate"}
    # this machine's speeds at the per-byte work of a default upload, and what they make the least CPU per GiB
    (speeds,) = [r for r in results if r["section"] == "machine"]
    assert all(speeds[k] > 1 for k in ("md5_mib_s", "parse_mib_s", "checks_mib_s"))
    assert speeds["checks_mib_s"] < speeds["parse_mib_s"]  # the checks include the parse
    assert "- this machine, one core" in report and "; the checks and MD5 alone: " in report
    uploads = [r for r in results if r["section"] == "upload"]
    assert {r["peer"] for r in uploads} == {"curl", "llmfiles", "llmfiles-raw"}
    assert all(r["rss_mib"] > 1 and r["cpu"] > 0 and r["mib_s"] > 0 for r in uploads)
    assert "| 3 MiB | llmfiles-raw |" in report and "## Goals" in report and "## 5. Validation" in report
    # the small files ran beside both floors, one after another only
    small = {(r["peer"], r["mode"]) for r in results if r["section"] == "small"}
    assert {("floor", "seq"), ("floor-raw", "seq")} <= small
    assert not {p for p, m in small if m != "seq"} & {"floor", "floor-raw"}
    assert "| seq | floor |" in report and "(the floor: " in report
    # the 3 MiB file went up in parts: the quick run sets llmfiles' multipart threshold to 2 MiB, parts of 1 MiB
    parts = int(report.split(" upload parts")[0].rsplit(", ", 1)[-1].replace(",", ""))
    assert parts >= 3 * 2  # 3 parts for each of the two llmfiles variants
