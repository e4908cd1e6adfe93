"""Properties, with hypothesis: where llmfiles decides a request goes is where urllib3 connects (round 2, item 1),
and every provider's answer readers turn any answer into data or an :class:`~llmfiles.errors.LLMFilesError`, never
another exception.

* URLs: an URL :func:`llmfiles.urls.check_url` accepts names the scheme, host and port of the pool urllib3's
  ``PoolManager`` connects to, and ``urlsplit`` reads the same host and port (so no other reading of it can point
  elsewhere); one it refuses is an :class:`InsecureTransport`, never another error.
* Redirects: the transport follows a ``Location`` with credentials only to the origin urllib3 connects to for the
  first URL, and never to an URL that could be read two ways.
* Readers: every ``read``, ``error`` and probe reader of every exchange of every provider (OpenAI, Azure, Vertex AI /
  Cloud Storage, Bedrock / S3, local), large-file protocols included, fed arbitrary statuses, headers and bodies
  (bytes, JSON of any shape, XML of S3's vocabulary).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

import pytest
import urllib3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmfiles
from llmfiles.errors import InsecureTransport, LLMFilesError, ProviderError
from llmfiles.models import (
    Delete,
    Download,
    FileObject,
    HttpRequest,
    HttpResponse,
    ListFiles,
    Part,
    Retrieve,
    Upload,
    UploadFacts,
    UploadParts,
)
from llmfiles.provider import Exchange, PartsUpload, ResumableUpload, UploadProtocol
from llmfiles.redact import SENSITIVE_HEADERS
from llmfiles.transport import Policy, Transport, _BodyStream
from llmfiles.urls import Origin, check_url

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
URL_FUZZ = settings(max_examples=1500, deadline=None)

# --- URLs ---------------------------------------------------------------------------------------------------------

#: characters that make parsers disagree: separators, escapes, white space, controls, a non-ASCII letter
TRICKY = "aZ09.-_~:@/\\?#[]%!$&'()*+,;= \t\n\r\x00\x7f\x85é"
HOSTS = [
    "127.0.0.1",
    "127.0.0.2",
    "localhost",
    "LocalHost",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "example.com",
    "example.invalid",
    "169.254.169.254",
    "127.1",
    "0x7f.0.0.1",
    "a\\@127.0.0.1",
    "127.0.0.1\\@example.com",
    "127.0.0.1%2f@example.com",
    "127.0.0.1\\.example.com",
    "example.com\\127.0.0.1",
    "localhost\\",
    "user@127.0.0.1",
    "xn--bcher-kva.example",
]

hosts = st.sampled_from(HOSTS) | st.sampled_from(HOSTS) | st.text(TRICKY, max_size=16)
ports = st.none() | st.none() | st.integers(-1, 70_000).map(str) | st.text("0123456789:a ", max_size=6)
schemes = st.sampled_from(["http", "https"]) | st.sampled_from(["HTTP", "hTTps", "ftp", "file", "local", "", "http:"])
paths = st.text(TRICKY, max_size=16)


@st.composite
def urls(draw: Any) -> str:
    if draw(st.integers(0, 9)) == 0:
        return str(draw(st.text(TRICKY, max_size=40)))
    userinfo = draw(st.none() | st.text(TRICKY, max_size=8))
    port = draw(ports)
    return (
        f"{draw(schemes)}://{'' if userinfo is None else userinfo + '@'}{draw(hosts)}"
        f"{'' if port is None else ':' + port}/{draw(paths)}"
    )


def pool_origin(url: str) -> Origin:
    """Where urllib3's ``PoolManager`` would connect for ``url`` (its pool; no connection is made)."""
    pool = urllib3.PoolManager().connection_from_url(url)
    host = str(pool.host).strip("[]").lower()
    return Origin(scheme=pool.scheme, host=host, port=pool.port)


def same_host(a: str, b: str) -> bool:
    a, b = a.strip("[]").lower(), b.strip("[]").lower()
    if a == b:
        return True
    try:
        return a.encode("idna").decode() == b
    except UnicodeError:
        return False


@URL_FUZZ
@given(url=urls(), insecure=st.booleans())
def test_an_accepted_url_goes_where_urllib3_connects_and_urlsplit_agrees(url: str, insecure: bool) -> None:
    try:
        where = check_url(url, allow_insecure_http=insecure)
    except InsecureTransport:
        return
    connects = pool_origin(url)
    assert (where.scheme, where.host.strip("[]"), where.port) == (connects.scheme, connects.host, connects.port)
    split = urlsplit(url)
    assert split.hostname is not None and same_host(split.hostname, where.host), (split.hostname, where.host)
    assert (split.port if split.port is not None else {"http": 80, "https": 443}[where.scheme]) == where.port
    if where.scheme == "http" and not insecure:
        assert llmfiles.urls.is_loopback(where.host)


class _Answer:
    """What the transport's ``_open`` returns in the redirect test: a status and a Location."""

    def __init__(self, status: int, location: str | None) -> None:
        self.status = status
        self.headers = {"location": location} if location is not None else {}

    def drain_conn(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


@URL_FUZZ
@given(
    base=st.sampled_from(["http://127.0.0.1:8080/v1/files/x", "https://api.example.com/v1/files/x"]),
    location=urls() | st.text(TRICKY, max_size=30),
)
def test_credentials_follow_a_redirect_only_to_the_origin_urllib3_connects_to(base: str, location: str) -> None:
    """The transport's own redirect handling (``_open`` stubbed: nothing is sent): the second request carries the
    credentials only if urllib3 connects it to the same origin as the first, and goes only to an URL that
    ``check_url`` accepts."""
    transport = Transport()
    sent: list[tuple[str, dict[str, str]]] = []

    def fake_open(method: str, url: str, headers: dict[str, str], *args: Any) -> _Answer:
        sent.append((url, dict(headers)))
        return _Answer(302, location) if len(sent) == 1 else _Answer(200, None)

    transport._open = fake_open  # type: ignore[method-assign]
    transport._read = lambda resp, url, *a: HttpResponse(status=200, url=url)  # type: ignore[method-assign]
    request = HttpRequest(method="GET", url=base, headers={"Authorization": "Bearer k", "Accept": "x"})
    policy = Policy(provider="t", secrets=("k",))
    try:
        transport._attempt(request, _BodyStream(request, None, policy), policy, None, None, None)
    except LLMFilesError:
        assert len(sent) == 1  # refused: nothing more was sent
        return
    if len(sent) == 1:
        return  # not a redirect after all (no usable Location)
    _, (second_url, second) = sent
    check_url(second_url, allow_insecure_http=False)  # would raise: it was accepted before it was sent
    same = pool_origin(second_url) == pool_origin(base)
    assert bool(SENSITIVE_HEADERS & {k.lower() for k in second}) == same, (base, location, second_url)
    assert second.get("Accept") == "x"


# --- every provider's readers ----------------------------------------------------------------------------------

PROVIDER_SETTINGS: dict[str, dict[str, Any]] = {
    "openai": {"api_key": "sk-test-0123456789", "api_base": "https://api.openai.com/v1"},
    "azure": {"api_key": "azure-test-0123456789", "api_base": "https://example.openai.azure.com"},
    "vertex_ai": {"access_token": "ya29.test-0123456789", "bucket": "bucket-x", "project": "p", "prefix": "x/"},
    "bedrock": {
        "aws_access_key_id": "AKIATEST0000000000",
        "aws_secret_access_key": "secret/test+0123456789",
        "aws_region": "us-east-1",
        "bucket": "bucket-x",
        "prefix": "x/",
    },
    "local": {},
}
STATE = {
    "upload_id": "upload-0123456789abcdef0123456789abcdef",
    "expires_at": 1,
    "session": "https://storage.googleapis.com/upload/storage/v1/b/bucket-x/o?uploadType=resumable&upload_id=x",
    "bucket": "bucket-x",
    "key": "x/fine-tune/20260101T000000Z-0123456789abcdef/train.jsonl",
    "purpose": "fine-tune",
    "bytes": 10,
}
RECEIPTS = [
    {"part_id": "part-1", "azure_block_id": "b", "part_number": 1, "etag": '"0"', "id": "p", "offset": 0, "length": 10}
]

Reader = Callable[[HttpResponse], Any]


def _protocol_exchanges(protocol: UploadProtocol) -> list[tuple[str, Exchange[Any]]]:
    part = Part(index=0, offset=0, length=10)
    part.sent.update(md5="0" * 32, crc32c="AAAAAA==")
    out: list[tuple[str, Exchange[Any]]] = [("start", protocol.start())]
    if isinstance(protocol, PartsUpload):
        out += [
            ("part", protocol.part(STATE, part)),
            ("complete", protocol.complete(STATE, RECEIPTS, {"md5": "0" * 32, "sha256": "0" * 64})),
        ]
        listing = protocol.list_parts(STATE, None)
        if listing is not None:
            out.append(("list_parts", listing))
    elif isinstance(protocol, ResumableUpload):
        out += [("chunk", protocol.chunk(STATE, part, False)), ("last chunk", protocol.chunk(STATE, part, True))]
        out.append(("query", protocol.query(STATE)))
    abort = protocol.abort(STATE)
    if abort is not None:
        out.append(("abort", abort))
    return out


@functools.cache
def readers(home: str) -> tuple[tuple[str, Reader, bool], ...]:
    """``(label, reader, is_error_reader)`` for every exchange of every provider (no request is sent)."""
    out: list[tuple[str, Reader, bool]] = []
    facts = UploadFacts(purpose="fine-tune", filename="train.jsonl", size=10, head=b'{"a": 1}\n')
    ops = [
        Upload(file=facts),
        Retrieve(file_id="file-x"),
        ListFiles(purpose="fine-tune", cursor="c", limit=10),
        Delete(file_id="file-x"),
        Download(file_id="file-x"),
    ]
    for name, extra in PROVIDER_SETTINGS.items():
        client = llmfiles.Client(name, home=home, **extra)
        call = client._resolver.call(None, {})
        exchanges: list[tuple[str, Exchange[Any]]] = []
        for op in ops:
            if name in ("vertex_ai", "bedrock") and hasattr(op, "file_id"):
                op = type(op)(file_id="gs://bucket-x/x/a.jsonl" if name == "vertex_ai" else "s3://bucket-x/x/a.jsonl")
            built = call.exchange(op)
            assert isinstance(built, Exchange)
            exchanges.append((type(op).__name__, built))
        protocol = call.exchange(UploadParts(file=facts))
        assert isinstance(protocol, UploadProtocol)
        exchanges += _protocol_exchanges(protocol)
        for label, ex in exchanges:
            out.append((f"{name} {label} read", ex.read, False))
            out.append((f"{name} {label} error", ex.error, True))
            if ex.probe is not None:
                out.append((f"{name} {label} probe", ex.probe.read, False))
        client.close()
    return tuple(out)


FIELDS = [
    "id", "object", "bytes", "created_at", "filename", "purpose", "status", "status_details", "expires_at", "data",
    "has_more", "last_id", "first_id", "error", "message", "code", "type", "param", "innererror", "details",
    "deleted", "file", "bucket", "name", "size", "md5Hash", "crc32c", "timeCreated", "updated", "metadata", "items",
    "nextPageToken", "errors", "reason", "upload_id", "md5", "llmfiles-purpose", "llmfiles-filename", "kind",
]  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["", "processed", "completed", "2026-01-01T00:00:00Z", "-1", "12", "²", "1e400", "bucket-x"])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=30,
)
TAGS = [
    "ListBucketResult", "Contents", "Key", "Size", "LastModified", "ETag", "IsTruncated", "NextContinuationToken",
    "Name", "EncodingType", "Error", "Code", "Message", "RequestId", "InitiateMultipartUploadResult", "UploadId",
    "ListPartsResult", "Part", "PartNumber", "NextPartNumberMarker", "CompleteMultipartUploadResult", "BucketName",
    "Region", "Endpoint",
]  # fmt: skip
xml_texts = st.sampled_from(
    ["", "true", "false", "1", "-1", "10001", "²", '"0"', "%zz", "a/", "2026-01-01T00:00:00Z"]
) | st.text(max_size=12)
xml_elements = st.recursive(
    st.builds(lambda tag, text: f"<{tag}>{escape(text)}</{tag}>", st.sampled_from(TAGS), xml_texts),
    lambda inner: st.builds(
        lambda tag, kids: f"<{tag}>{''.join(kids)}</{tag}>", st.sampled_from(TAGS), st.lists(inner, max_size=4)
    ),
    max_leaves=20,
)
bodies = (
    st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v).encode())
    | xml_elements.map(str.encode)
    | st.sampled_from(
        [b"[" * 5000 + b"]" * 5000, b"<a>" * 3000 + b"</a>" * 3000, b'<!DOCTYPE x [<!ENTITY a "b">]><x/>']
    )
)
HEADER_NAMES = [
    "content-type", "content-length", "etag", "last-modified", "date", "range", "location", "x-request-id",
    "apim-request-id", "x-amz-request-id", "x-amz-meta-purpose", "x-amz-meta-filename", "x-amz-meta-format",
    "x-amz-server-side-encryption", "x-amz-version-id", "x-amz-bucket-region", "x-guploader-uploadid", "retry-after",
]  # fmt: skip
header_values = st.sampled_from(
    ["", "bytes=0-9", "bytes=0-", "bytes=5-9", "-1", "12", '"0123456789abcdef0123456789abcdef"', "aws:kms",
     "https://storage.googleapis.com/upload?upload_id=x", "http://127.0.0.2/\\@x", "Mon, 01 Jan 2024 00:00:00 GMT",
     "yesterday", "application/json", "²"]
) | st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=30)  # fmt: skip
responses = st.builds(
    lambda status, headers, body: HttpResponse(status=status, headers=headers, body=body, url="https://x/y"),
    st.sampled_from([200, 201, 204, 206, 308, 400, 403, 404, 412, 499, 500]) | st.integers(100, 599),
    st.dictionaries(st.sampled_from(HEADER_NAMES), header_values, max_size=5),
    bodies,
)


@pytest.fixture(scope="module")
def every_reader(tmp_path_factory: pytest.TempPathFactory) -> tuple[tuple[str, Reader, bool], ...]:
    found = readers(str(tmp_path_factory.mktemp("home")))
    names = {label.split(" ", 1)[0] for label, _, _ in found}
    assert names == set(PROVIDER_SETTINGS), names
    return found


@FUZZ
@given(data=st.data(), response=responses)
def test_every_reader_of_every_provider_gives_data_or_an_llmfiles_error(
    every_reader: tuple[tuple[str, Reader, bool], ...], data: Any, response: HttpResponse
) -> None:
    label, read, is_error = data.draw(st.sampled_from(every_reader), label="reader")
    try:
        result = read(response)
    except LLMFilesError:
        return
    except Exception as exc:  # the property: nothing else ever
        raise AssertionError(f"{label} raised {type(exc).__name__}: {exc!r:.300}") from exc
    if is_error:
        assert isinstance(result, ProviderError), (label, result)
    elif isinstance(result, (list, tuple)) and label.endswith("probe"):
        assert all(isinstance(f, FileObject) for f in result), (label, result)


def test_the_readers_cover_every_provider_and_operation(every_reader: tuple[tuple[str, Reader, bool], ...]) -> None:
    labels = {label for label, _, _ in every_reader}
    for name in PROVIDER_SETTINGS:
        for op in ("Upload", "Retrieve", "ListFiles", "Delete", "Download", "start", "abort"):
            assert f"{name} {op} read" in labels, (name, op)
        assert f"{name} Upload probe" in labels
    assert {
        "vertex_ai chunk read",
        "vertex_ai query read",
        "bedrock list_parts read",
        "openai complete probe",
    } <= labels
