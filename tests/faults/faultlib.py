"""What the fault suite needs to run the same faults against every provider: one :class:`Harness` per provider that
knows its client settings (pointed at our fault proxy in front of the provider's test server), which requests are
which (a one-request upload, a part, a complete), and how to see from the outside what the server stored.

A module of its own, not ``conftest``: conftest names clash when several suites are collected together.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import llmfiles
from servers.fault_proxy import FaultProxy, ProxyRequest
from servers.openai_like import UTF8_BOM, OpenAILikeServer

KiB = 1024
MiB = 1024 * KiB
GCS_BUCKET = "llmfiles-faults"
S3_BUCKET = "llmfiles-faults"
REGION = "us-east-1"
#: the planted secrets: the tests search every output for them
OPENAI_KEY = "sk-PLANTED-openai-5f0c2b9e41d7a8c3"
AZURE_KEY = "PLANTED-azure-key-8e13c07d2b4a9f65"
AWS_KEY_ID = "AKIAPLANTEDKEYID0001"
AWS_SECRET = "PLANTED/aws+secret/Key0123456789abcdefXYZ"
GOOGLE_TOKEN = "ya29.PLANTED-google-token-0c9d8e7f6a5b"
SECRETS = (OPENAI_KEY, AZURE_KEY, AWS_SECRET, GOOGLE_TOKEN)
#: a stall counts after this long (the proxy stalls for longer)
TIMEOUT = 1.0

PROVIDERS = ("openai", "azure", "vertex_ai", "bedrock")

Predicate = Callable[[ProxyRequest], bool]


def chat_file(path: Path, *, min_bytes: int, tag: str = "") -> Path:
    """A fine-tuning file in OpenAI chat format (which every provider's checks accept), unique lines."""
    with open(path, "w", encoding="utf-8") as fh:
        i = 0
        while fh.tell() < min_bytes or i < 20:
            record = {
                "messages": [
                    {"role": "system", "content": "Réponds brièvement."},
                    {"role": "user", "content": f"{tag}question {i}: combien font {i} + {i} ? " + "·" * 40},
                    {"role": "assistant", "content": f"{2 * i} — voilà."},
                ]
            }
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            i += 1
    return path


class Harness:
    """One provider behind the fault proxy."""

    name: str
    #: settings that make an upload use the large-file protocol, and how big that file is
    large: dict[str, Any]
    large_bytes: int
    #: the part size of ``large``
    part_bytes: int
    sequential = False
    #: the provider's protocol has a complete request (GCS: the last chunk completes)
    has_complete = True
    #: whether what a create whose answer was lost made can be told apart from another upload of the same name and
    #: size (a name unique to the upload, or a checksum the provider reports); OpenAI and Azure cannot: the upload then
    #: stops with ``MaybeUploaded`` naming the file instead of guessing
    tells_lost_answers = True

    def __init__(self, proxy: FaultProxy, settings: dict[str, Any]) -> None:
        self.proxy = proxy
        self.settings = settings

    def client(self, **extra: Any) -> llmfiles.Client:
        return llmfiles.Client(self.name, **{**self.settings, **extra})

    # -- what a request is ---------------------------------------------------------------------------------

    def is_upload(self, r: ProxyRequest) -> bool:
        raise NotImplementedError

    def is_part(self, r: ProxyRequest) -> bool:
        raise NotImplementedError

    def is_complete(self, r: ProxyRequest) -> bool:
        raise NotImplementedError

    def is_start(self, r: ProxyRequest) -> bool:
        raise NotImplementedError

    def nth_part(self, n: int) -> Predicate:
        """The ``n``-th part request (1-based, counting attempts of other parts)."""
        seen: list[int] = [0]

        def match(r: ProxyRequest) -> bool:
            if not self.is_part(r):
                return False
            seen[0] += 1
            return seen[0] == n

        return match

    def parts_from(self, n: int) -> Predicate:
        """Every part request from the ``n``-th on (1-based)."""
        seen: list[int] = [0]

        def match(r: ProxyRequest) -> bool:
            if not self.is_part(r):
                return False
            seen[0] += 1
            return seen[0] >= n

        return match

    # -- what the server has -------------------------------------------------------------------------------

    def stored(self) -> dict[str, bytes]:
        """Every file the server holds for this test: id (or key) -> its bytes."""
        raise NotImplementedError

    def expected(self, data: bytes) -> bytes:
        """The bytes the server should hold for a file with ``data`` (Azure adds a BOM to fine-tune files)."""
        return data

    def unfinished_sessions(self) -> int | None:
        """Upload sessions open at the server (``None``: the server cannot tell)."""
        return None

    def requests(self, pred: Predicate) -> list[ProxyRequest]:
        return [r for r in self.proxy.requests if pred(r)]


class OpenAIHarness(Harness):
    name = "openai"
    tells_lost_answers = False
    large = {"multipart_threshold": 256 * KiB, "part_size": 256 * KiB}
    large_bytes = MiB + 1234
    part_bytes = 256 * KiB

    def __init__(self, proxy: FaultProxy, settings: dict[str, Any], server: OpenAILikeServer) -> None:
        super().__init__(proxy, settings)
        self.server = server

    @property
    def base(self) -> str:
        return self.server.base_path

    def is_upload(self, r: ProxyRequest) -> bool:
        return r.method == "POST" and r.path == f"{self.base}/files"

    def is_part(self, r: ProxyRequest) -> bool:
        return r.method == "POST" and r.path.startswith(f"{self.base}/uploads/") and r.path.endswith("/parts")

    def is_complete(self, r: ProxyRequest) -> bool:
        return r.method == "POST" and r.path.endswith("/complete")

    def is_start(self, r: ProxyRequest) -> bool:
        return r.method == "POST" and r.path == f"{self.base}/uploads"

    def stored(self) -> dict[str, bytes]:
        return {f.id: f.content for f in self.server.files.values()}

    def unfinished_sessions(self) -> int:
        return sum(1 for u in self.server.uploads.values() if u.status == "pending")


class AzureHarness(OpenAIHarness):
    name = "azure"

    def expected(self, data: bytes) -> bytes:
        return data if data.startswith(UTF8_BOM) else UTF8_BOM + data


def fix_gcs_emulator(req: ProxyRequest, response: bytes) -> bytes:
    """gcp-storage-emulator answers the status query of a session that has no bytes yet with ``Range: bytes=0-0``
    (one byte); Cloud Storage sends no Range header then.  Chunks here are 256 KiB multiples, so one byte is never
    really persisted: drop the header, as Cloud Storage would."""
    if (req.header("content-range") or "").startswith("bytes */") and b"\r\nRange: bytes=0-0\r\n" in response:
        return response.replace(b"\r\nRange: bytes=0-0\r\n", b"\r\n", 1)
    return response


class VertexHarness(Harness):
    name = "vertex_ai"
    large = {"multipart_threshold": 256 * KiB, "part_size": 256 * KiB}
    large_bytes = MiB + 1234
    part_bytes = 256 * KiB
    sequential = True
    has_complete = False

    def __init__(self, proxy: FaultProxy, settings: dict[str, Any], emulator: str) -> None:
        super().__init__(proxy, settings)
        self.emulator = emulator

    def is_upload(self, r: ProxyRequest) -> bool:
        return r.method == "POST" and r.query.get("uploadType") == ["multipart"]

    def is_start(self, r: ProxyRequest) -> bool:
        return r.method == "POST" and r.query.get("uploadType") == ["resumable"]

    def is_part(self, r: ProxyRequest) -> bool:
        cr = r.header("content-range") or ""
        return r.method == "PUT" and "upload_id" in r.query and not cr.startswith("bytes */")

    def is_complete(self, r: ProxyRequest) -> bool:
        return False

    def stored(self) -> dict[str, bytes]:
        prefix = self.settings["prefix"]
        q = urllib.parse.urlencode({"prefix": prefix})
        with urllib.request.urlopen(f"{self.emulator}/storage/v1/b/{GCS_BUCKET}/o?{q}", timeout=10) as resp:
            items = json.load(resp).get("items") or []
        out = {}
        for item in items:
            name = urllib.parse.quote(item["name"], safe="")
            with urllib.request.urlopen(f"{self.emulator}/storage/v1/b/{GCS_BUCKET}/o/{name}?alt=media") as resp:
                out[f"gs://{GCS_BUCKET}/{item['name']}"] = resp.read()
        return out


class BedrockHarness(Harness):
    name = "bedrock"
    large = {"multipart_threshold": 5 * MiB, "part_size": 5 * MiB}
    large_bytes = 11 * MiB
    part_bytes = 5 * MiB

    def __init__(self, proxy: FaultProxy, settings: dict[str, Any], moto: str) -> None:
        super().__init__(proxy, settings)
        self.moto = moto

    def s3(self) -> Any:
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.moto, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="y"
        )

    def is_upload(self, r: ProxyRequest) -> bool:
        return r.method == "PUT" and "partNumber" not in r.query

    def is_part(self, r: ProxyRequest) -> bool:
        return r.method == "PUT" and "partNumber" in r.query

    def is_complete(self, r: ProxyRequest) -> bool:
        return r.method == "POST" and "uploadId" in r.query

    def is_start(self, r: ProxyRequest) -> bool:
        return r.method == "POST" and "uploads" in urllib.parse.urlsplit(r.target).query.split("&")

    def stored(self) -> dict[str, bytes]:
        s3 = self.s3()
        listing = s3.list_objects_v2(Bucket=S3_BUCKET, Prefix=self.settings["prefix"]).get("Contents", [])
        return {
            f"s3://{S3_BUCKET}/{o['Key']}": s3.get_object(Bucket=S3_BUCKET, Key=o["Key"])["Body"].read()
            for o in listing
        }

    def unfinished_sessions(self) -> int:
        uploads = self.s3().list_multipart_uploads(Bucket=S3_BUCKET, Prefix=self.settings["prefix"])
        return len(uploads.get("Uploads", []))


# --- the harnesses, behind a fault proxy each -----------------------------------------------------------------


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", maxsplit=1)[0])


def _common() -> dict[str, Any]:
    # retries come fast (Retry-After is still honoured up to max_retry_wait); a stall counts after TIMEOUT seconds
    return {"max_retry_wait": 5.0, "timeout": TIMEOUT, "max_retries": 5}


def make_harness(name: str, request: pytest.FixtureRequest, prefix: str) -> Iterator[Harness]:
    if name in ("openai", "azure"):
        server = OpenAILikeServer(api_key=OPENAI_KEY) if name == "openai" else OpenAILikeServer.azure(api_key=AZURE_KEY)
        with server, FaultProxy("127.0.0.1", server.port) as proxy:
            if name == "openai":
                settings = {"api_base": proxy.url + "/v1", "api_key": OPENAI_KEY, **_common()}
                yield OpenAIHarness(proxy, settings, server)
            else:
                settings = {"api_base": proxy.url, "api_key": AZURE_KEY, **_common()}
                yield AzureHarness(proxy, settings, server)
            assert not server.errors, f"the test server failed: {server.errors!r}"
            assert not proxy.errors, f"the fault proxy failed: {proxy.errors!r}"
        return
    if name == "vertex_ai":
        emulator = request.getfixturevalue("gcs_emulator")
        with FaultProxy("127.0.0.1", _port(emulator), fix_response=fix_gcs_emulator) as proxy:
            settings = {
                "api_base": proxy.url,
                "bucket": GCS_BUCKET,
                "prefix": prefix,
                "access_token": GOOGLE_TOKEN,
                **_common(),
            }
            yield VertexHarness(proxy, settings, emulator)
            assert not proxy.errors, f"the fault proxy failed: {proxy.errors!r}"
        return
    if name == "bedrock":
        moto_url = request.getfixturevalue("moto")
        with FaultProxy("127.0.0.1", _port(moto_url)) as proxy:
            settings = {
                "api_base": proxy.url,
                "aws_region": REGION,
                "bucket": S3_BUCKET,
                "prefix": prefix,
                "aws_access_key_id": AWS_KEY_ID,
                "aws_secret_access_key": AWS_SECRET,
                **_common(),
            }
            yield BedrockHarness(proxy, settings, moto_url)
            assert not proxy.errors, f"the fault proxy failed: {proxy.errors!r}"
        return
    raise ValueError(name)


# --- the command line -----------------------------------------------------------------------------------------


def cli_env(h: Harness) -> dict[str, str]:
    """The environment that points the CLI at the harness's proxy, with the planted secret."""
    env = dict(os.environ)
    s = h.settings
    if h.name == "openai":
        env.update(OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=s["api_base"])
    elif h.name == "azure":
        env.update(AZURE_OPENAI_API_KEY=AZURE_KEY, AZURE_OPENAI_ENDPOINT=s["api_base"])
    elif h.name == "vertex_ai":
        env.update(
            GOOGLE_OAUTH_ACCESS_TOKEN=GOOGLE_TOKEN,
            STORAGE_EMULATOR_HOST=s["api_base"],
            LLMFILES_GCS_BUCKET=GCS_BUCKET,
            LLMFILES_GCS_PREFIX=s["prefix"],
        )
    else:
        env.update(
            AWS_ACCESS_KEY_ID=AWS_KEY_ID,
            AWS_SECRET_ACCESS_KEY=AWS_SECRET,
            AWS_ENDPOINT_URL_S3=s["api_base"],
            AWS_REGION=REGION,
            LLMFILES_S3_BUCKET=S3_BUCKET,
            LLMFILES_S3_PREFIX=s["prefix"],
        )
    env.update(LLMFILES_TIMEOUT="5", LLMFILES_MAX_RETRY_WAIT="0.01")
    return env


def run_cli(
    h: Harness, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``llmfiles ARGS`` in another process, pointed at the harness (``env`` adds to :func:`cli_env`)."""
    return subprocess.run(
        [sys.executable, "-m", "llmfiles", *args],
        env={**cli_env(h), **(env or {})},
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_bounded(call: Callable[[], Any], limit: float) -> Any:
    """What ``call()`` returns or raises (the exception is returned), run in a thread given ``limit`` seconds; a call
    still running then fails the test (it would otherwise hang the suite on a bug)."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit)
    assert not worker.is_alive(), f"still running after {limit:g}s"
    return outcome[0]
