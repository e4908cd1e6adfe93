"""Our Together server behaves as an HTTP server does with requests that never finished: a body cut short before its
``Content-Length`` stores nothing, and a form without its closing boundary is refused. Without this, a client that
gives up on a file whose last line failed its checks would see that file appear a moment later (a flaky test found
it: the server parsed the cut body leniently and stored it after the client had already listed the files)."""

from __future__ import annotations

import http.client
import socket
import time

from servers.together_like import TogetherLikeServer

BOUNDARY = "b0undary"


def _form(content: bytes, *, close: bool = True) -> bytes:
    fields = [("purpose", b"fine-tune"), ("file_name", b"cut.jsonl")]
    out = b"".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'.encode() + v + b"\r\n" for k, v in fields
    )
    out += (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="cut.jsonl"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + content
        + b"\r\n"
    )
    return out + (f"--{BOUNDARY}--\r\n".encode() if close else b"")


def _head(server: TogetherLikeServer, length: int) -> bytes:
    return (
        "POST /v1/files/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {server.api_key}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def test_a_body_cut_short_stores_nothing(together_server: TogetherLikeServer) -> None:
    server = together_server
    body = _form(b'{"messages": []}\n' * 1000)
    port = int(server.origin.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_head(server, len(body)) + body[: len(body) - 100])
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(100) == b""  # no answer: the request never finished
    deadline = time.monotonic() + 5
    while not server.requests_to("upload") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [r.cut for r in server.requests_to("upload")] == [True]
    assert server.files == {}


def test_a_form_without_its_closing_boundary_is_refused(together_server: TogetherLikeServer) -> None:
    server = together_server
    body = _form(b'{"messages": []}\n', close=False)
    conn = http.client.HTTPConnection(server.origin.split("//", 1)[1], timeout=5)
    conn.request(
        "POST",
        "/v1/files/upload",
        body,
        {
            "Authorization": f"Bearer {server.api_key}",
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        },
    )
    answer = conn.getresponse()
    assert answer.status == 400 and b"malformed multipart" in answer.read()
    assert server.files == {}
    # the same form, whole, is stored
    conn.request(
        "POST",
        "/v1/files/upload",
        _form(b'{"messages": []}\n'),
        {
            "Authorization": f"Bearer {server.api_key}",
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        },
    )
    assert conn.getresponse().status == 200 and len(server.files) == 1
