"""Streaming multipart/form-data bodies: exact declared length, parseable by a standard parser, safe headers."""

from __future__ import annotations

import email.parser
import email.policy
import os
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pytest

from llmfiles.models import FileRange, HttpRequest, Segment, body_length
from llmfiles.multipart import multipart_body
from llmfiles.sources import PathSource
from llmfiles.transport import Policy, _BodyStream


class _Body:
    def __init__(self, source: PathSource | None) -> None:
        self.source = source

    def stream(self, offset: int, length: int) -> Iterator[bytes]:
        assert self.source is not None
        return self.source.read_range(offset, length, 4096)


def serialize(body: tuple[Segment, ...], source: PathSource | None = None) -> bytes:
    """The bytes the transport would send for ``body`` (through its own body stream, the file's ranges read from
    ``source``)."""
    request = HttpRequest(method="POST", url="http://127.0.0.1/", body=body)
    return b"".join(bytes(piece) for piece in _BodyStream(request, _Body(source), Policy(provider="t")))


def parse(content_type: str, data: bytes) -> list[Message]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + data)
    assert msg.is_multipart()
    assert not msg.defects, msg.defects
    return list(msg.iter_parts())  # type: ignore[attr-defined]


@pytest.fixture
def source(tmp_path: Path) -> Iterator[PathSource]:
    path = tmp_path / "data.bin"
    # random bytes, plus the sequences a careless framing would trip over
    path.write_bytes(os.urandom(100_000) + b"\r\n--llmfiles-\r\n\r\n" + os.urandom(5_000))
    src = PathSource(str(path), "data.bin")
    yield src
    src.close()


def test_body_has_exactly_the_declared_length_and_parses_back(source: PathSource) -> None:
    fields = [("purpose", "fine-tune"), ("note", "héllo wörld ✓")]
    segment = FileRange(offset=0, length=source.size)
    ctype, body = multipart_body(fields, [("file", "train.jsonl", "application/jsonl", [segment])])
    data = serialize(body, source)
    assert body_length(body) == len(data)
    assert ctype.startswith("multipart/form-data; boundary=")

    parts = parse(ctype, data)
    assert [p.get_param("name", header="content-disposition") for p in parts] == ["purpose", "note", "file"]
    assert parts[0].get_payload(decode=True) == b"fine-tune"
    assert parts[1].get_payload(decode=True) == "héllo wörld ✓".encode()
    assert parts[2].get_filename() == "train.jsonl"
    assert parts[2].get_content_type() == "application/jsonl"
    assert parts[2].get_payload(decode=True) == Path(source.path or "").read_bytes()


def test_a_range_of_the_file_is_sent(source: PathSource) -> None:
    segment = FileRange(offset=1000, length=20_000)
    ctype, body = multipart_body([], [("data", "part", "application/octet-stream", [segment])])
    data = serialize(body, source)
    assert body_length(body) == len(data)
    (part,) = parse(ctype, data)
    assert part.get_payload(decode=True) == Path(source.path or "").read_bytes()[1000:21_000]


def test_the_file_is_not_copied_into_the_body(source: PathSource) -> None:
    segment = FileRange(offset=0, length=source.size)
    _, body = multipart_body([("a", "b")], [("file", "f", "application/octet-stream", [segment])])
    assert segment in body
    assert sum(len(s) for s in body if isinstance(s, bytes)) < 1000


def test_fixed_boundary_and_several_files() -> None:
    ctype, body = multipart_body(
        [("x", "1")],
        [("a", "a.txt", "text/plain", [b"alpha"]), ("b", "b.txt", "text/plain", [b"be", b"ta"])],
        boundary="BOUNDARY",
    )
    assert ctype == "multipart/form-data; boundary=BOUNDARY"
    data = serialize(body)
    assert data.startswith(b"--BOUNDARY\r\n") and data.endswith(b"--BOUNDARY--\r\n")
    parts = parse(ctype, data)
    assert [p.get_filename() for p in parts] == [None, "a.txt", "b.txt"]
    assert [p.get_payload(decode=True) for p in parts] == [b"1", b"alpha", b"beta"]


def test_random_boundaries_differ() -> None:
    assert multipart_body([], [])[0] != multipart_body([], [])[0]


@pytest.mark.parametrize(
    ("filename", "escaped"),
    [
        ('evil".jsonl', "evil%22.jsonl"),
        ("two\r\nlines.jsonl", "two%0D%0Alines.jsonl"),
        ('x"\r\nContent-Type: text/html\r\n\r\n<b>.jsonl', "x%22%0D%0AContent-Type: text/html%0D%0A%0D%0A<b>.jsonl"),
    ],
)
def test_quotes_and_newlines_in_names_are_escaped(filename: str, escaped: str) -> None:
    ctype, body = multipart_body(
        [('na"me\n', "v")], [("file", filename, "application/jsonl", [b'{"a": 1}\n'])], boundary="B"
    )
    data = serialize(body)
    assert body_length(body) == len(data)
    heads = [block.split(b"\r\n\r\n", 1)[0] for block in data.split(b"--B\r\n")[1:]]
    assert len(heads) == 2
    for head in heads:  # each part has exactly its own header lines, nothing injected
        lines = head.split(b"\r\n")
        assert lines[0].startswith(b"Content-Disposition: form-data; name=")
        assert all(line.startswith((b"Content-Disposition:", b"Content-Type:")) for line in lines)
    field, file = parse(ctype, data)
    assert field.get_param("name", header="content-disposition") == "na%22me%0A"
    assert file.get_filename() == escaped
    assert file.get_content_type() == "application/jsonl"
    assert file.get_payload(decode=True) == b'{"a": 1}\n'
