"""Round 2 of the adversarial review, item 7: secrets survived in exception attributes (``param``, ``error_type``,
``request_id``, ``details``), an echo cut short or JSON-escaped was not masked, and ``vars(client)`` held the key in
plain text.

Here a server echoes the planted credential in every field of its error answers (whole, cut short, JSON-escaped, in
its request-id header), in a body that breaks the connection (which ends up in a network error's message), and in
an answer a lost create's probe cannot read; every error that comes out is searched, attribute by attribute (its
``last`` error, ``details``, ``args``, notes and chained causes included), with the log records, and ``vars`` of the
client.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
from faultlib import AWS_SECRET, AZURE_KEY, GOOGLE_TOKEN, OPENAI_KEY, Harness, chat_file

import llmfiles
from llmfiles.models import Secret
from servers.fault_proxy import DropResponse, Respond

REQUEST_ID_HEADERS = ("x-request-id", "apim-request-id", "x-ms-request-id", "x-guploader-uploadid", "x-amz-request-id")


def secret_of(h: Harness) -> str:
    return {"openai": OPENAI_KEY, "azure": AZURE_KEY, "vertex_ai": GOOGLE_TOKEN, "bedrock": AWS_SECRET}[h.name]


def escaped(secret: str) -> str:
    """``secret`` as JSON may write it: ``\\u002d`` for ``-``, ``\\/`` for ``/``."""
    return secret.replace("-", "\\u002d").replace("/", "\\/")


def forbidden(secret: str) -> list[str]:
    """What must not come out: the secret, its JSON-escaped form, and any 12 characters of it in a row."""
    return [secret, escaped(secret), *(secret[i : i + 12] for i in range(len(secret) - 11))]


def strings_in(value: Any, depth: int = 0, seen: set[int] | None = None) -> Iterator[str]:
    """Every string reachable from ``value``: containers, exceptions (attributes, args, notes, causes) and llmfiles'
    own objects (their ``__dict__`` or attrs fields); a :class:`Secret` is opaque, as it is meant to be."""
    seen = set() if seen is None else seen
    if id(value) in seen or depth > 12 or isinstance(value, Secret):
        return
    seen.add(id(value))
    if isinstance(value, str):
        yield value
    elif isinstance(value, bytes):
        yield value.decode("latin-1")
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from strings_in(k, depth + 1, seen)
            yield from strings_in(v, depth + 1, seen)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            yield from strings_in(v, depth + 1, seen)
    elif isinstance(value, BaseException):
        yield str(value)
        yield repr(value)
        yield from strings_in(vars(value), depth + 1, seen)
        yield from strings_in(value.args, depth + 1, seen)
        yield from strings_in(value.__cause__, depth + 1, seen)
        yield from strings_in(value.__context__, depth + 1, seen)
    elif type(value).__module__.startswith("llmfiles"):
        yield repr(value)
        if attrs.has(type(value)):
            yield from strings_in({f.name: getattr(value, f.name) for f in attrs.fields(type(value))}, depth + 1, seen)
        elif hasattr(value, "__dict__"):
            yield from strings_in(vars(value), depth + 1, seen)


def assert_clean(texts: Iterator[str] | list[str], secret: str, where: str) -> None:
    bad = forbidden(secret)
    for text in texts:
        for piece in bad:
            assert piece not in text, f"{where}: {piece!r} came out in ...{text[max(0, text.find(piece) - 60) :][:160]}"


def error_answer(h: Harness, secret: str, status: int) -> Respond:
    """An error answer echoing ``secret`` in every field the provider's error reader keeps."""
    headers = {name: f"Bearer {secret}" for name in REQUEST_ID_HEADERS}
    if h.name == "bedrock":
        body = (
            f"<Error><Code>{secret}</Code><Message>bad credential Bearer {secret} ({escaped(secret)})</Message>"
            f"<RequestId>{secret}</RequestId><Key>{secret[:-3]}</Key><BucketName>{escaped(secret)}</BucketName>"
            f"<Region>{secret[:-4]}</Region></Error>"
        ).encode()
        return Respond(status, {**headers, "Content-Type": "application/xml"}, body)
    err = {
        "message": f"bad credential Bearer {secret} (partly: {secret[:-3]})",
        "type": secret,
        "param": f"Bearer {secret[:-2]}",
        "code": secret,
        "innererror": {"code": secret[:-4], "echo": [secret, {"deeper": secret[:-1]}]},
        "details": {"key": secret},
        "errors": [{"reason": secret}],
    }
    return Respond(status, {**headers, "Content-Type": "application/json"}, json.dumps({"error": err}).encode())


def text_answer(h: Harness, secret: str, status: int) -> Respond:
    """A body that is not JSON, quoting the secret JSON-escaped and cut short."""
    body = f'{{"echo": "{escaped(secret)}", "cut": "{secret[:-3]}"'.encode()
    return Respond(status, {"Content-Type": "text/plain", "x-amz-request-id": secret[:-3]}, body)


def failures(h: Harness, client: llmfiles.Client, small: Path) -> Iterator[tuple[str, BaseException | None]]:
    """Each way an echo can come back, and the error it ended in (``None``: the call succeeded)."""
    secret = secret_of(h)
    proxy = h.proxy

    def attempt(what: str, call: Callable[[], Any]) -> tuple[str, BaseException | None]:
        try:
            call()
        except llmfiles.LLMFilesError as exc:
            return what, exc
        finally:
            proxy.rules.clear()
        return what, None

    fo = client.upload(small, purpose="fine-tune")
    # an error answer echoing the credential in every field
    proxy.add_rule(h.is_upload, error_answer(h, secret, 400))
    yield attempt("an error answer", lambda: client.upload(small, purpose="fine-tune"))
    proxy.add_rule(lambda r: r.method in ("GET", "HEAD"), error_answer(h, secret, 403))
    yield attempt("a refusal", lambda: client.retrieve(fo.id))
    # a server error, retried, whose body is not JSON
    proxy.add_rule(lambda r: r.method in ("GET", "HEAD"), text_answer(h, secret, 503), times=10)
    yield attempt("retries of a 503", lambda: client.retrieve(fo.id, max_retries=1, max_retry_wait=0.01))
    # a body that breaks the connection: the network error quotes it; retries exhausted
    broken = Respond(200, {"Transfer-Encoding": "chunked"}, f"{secret}\r\n".encode())
    proxy.add_rule(lambda r: r.method == "GET", broken, times=10)
    yield attempt("a broken connection", lambda: client.list_files(max_retries=1, max_retry_wait=0.01).__next__())
    proxy.add_rule(lambda r: r.method == "GET", broken, times=10)
    yield attempt("a broken connection, no retry", lambda: client.list_files(max_retries=0).__next__())
    # a lost create, whose probe gets an answer it cannot read
    proxy.add_rule(h.is_upload, DropResponse())
    proxy.add_rule(lambda r: r.method == "GET", text_answer(h, secret, 200), times=10)
    yield attempt("a lost answer", lambda: client.upload(small, purpose="fine-tune", max_retries=1))
    # a 2xx to a create that cannot be read, echoing the credential
    proxy.add_rule(h.is_upload, text_answer(h, secret, 200))
    proxy.add_rule(lambda r: r.method == "GET", text_answer(h, secret, 500), times=10)
    yield attempt("an unreadable answer", lambda: client.upload(small, purpose="fine-tune", max_retries=0))


def test_no_echo_of_a_secret_survives_in_any_error_attribute_log_or_the_client(
    harness: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = secret_of(harness)
    small = chat_file(tmp_path / "small.jsonl", min_bytes=4_000)
    with harness.client() as client:
        outcomes = list(failures(harness, client, small))
        assert_clean(strings_in(vars(client)), secret, "vars(client)")
        assert_clean([repr(client), repr(vars(client))], secret, "the client")
    failed = [(what, exc) for what, exc in outcomes if exc is not None]
    # S3 finds what a lost PutObject made (HeadObject of its unique key), and its answer to PutObject has no body
    succeeded = {"a lost answer", "an unreadable answer"} if harness.name == "bedrock" else set()
    assert {what for what, exc in outcomes if exc is None} == succeeded, outcomes
    for what, exc in failed:
        assert exc is not None
        texts = [*strings_in(exc), "".join(traceback.format_exception(exc)), *getattr(exc, "__notes__", ())]
        assert_clean(texts, secret, f"{what}: {type(exc).__name__}")
    assert caplog.records
    assert_clean([r.getMessage() for r in caplog.records] + [caplog.text], secret, "the log")
    # the errors kept what they could without the secret: a status, a masked message
    refused = dict(failed)["a refusal"]
    assert isinstance(refused, llmfiles.ProviderError) and refused.status == 403 and "***" in str(refused)
