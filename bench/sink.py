"""A fast OpenAI-compatible sink for the benchmarks: it takes files and throws the bytes away.

    python bench/sink.py --port 0                          # prints "listening PORT" once it accepts connections
    python bench/sink.py --rate-mib 100 --latency-ms 20    # each connection capped at 100 MiB/s, 20 ms per answer

It speaks the parts of OpenAI's Files and Uploads APIs that uploads use (``POST /v1/files``, ``/v1/uploads``,
``/v1/uploads/{id}/parts``, ``/complete``, ``/cancel``, ``GET``/``DELETE /v1/files/{id}``, ``GET /v1/files``), on
raw sockets with one thread per connection, so that it is never what a benchmark measures:

- bodies are read with ``recv_into`` into one reused 1 MiB buffer and dropped; only the first and last 64 KiB of a
  multipart body are kept, enough to find where the file part starts and ends, so the ``bytes`` it answers is the
  size of the file as received (the harness checks it against the file on disk);
- ``TCP_NODELAY`` is set and every answer (headers and body) goes out in one ``sendall``: an answer written in two
  pieces meets Nagle's algorithm and delayed ACKs on a reused connection and costs about 40 ms per request;
- ``--rate-mib`` caps what each connection may send by reading no faster (TCP's flow control slows the client),
  and ``--latency-ms`` delays every answer, to imitate a real network between a client and a provider.

``GET /_stats`` answers what it has received (requests, body bytes, files, upload parts).
"""

from __future__ import annotations

import argparse
import json
import secrets
import socket
import sys
import threading
import time
from typing import Any

MiB = 1024 * 1024
KEEP = 64 * 1024
READ = MiB

_REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


class BadRequest(Exception):
    pass


class Conn:
    """One client connection: a buffered reader over the socket, with the rate cap."""

    def __init__(self, sock: socket.socket, rate: float | None) -> None:
        self.sock = sock
        self.rate = rate
        self.buf = bytearray(READ)
        self.view = memoryview(self.buf)
        self.pending = b""  # read past the end of the last thing asked for
        self.started = time.monotonic()
        self.total = 0

    def _recv(self, limit: int) -> memoryview:
        if self.rate:
            limit = min(limit, max(16 * 1024, int(self.rate / 100)))
        n = self.sock.recv_into(self.view, min(limit, READ))
        if n == 0:
            raise ConnectionError("closed")
        if self.rate:
            self.total += n
            ahead = self.started + self.total / self.rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        return self.view[:n]

    def read_until(self, marker: bytes, limit: int = 64 * 1024) -> bytes:
        data = self.pending
        while (i := data.find(marker)) < 0:
            if len(data) > limit:
                raise BadRequest("header too long")
            data += bytes(self._recv(READ))
        self.pending = data[i + len(marker) :]
        return data[:i]

    def read_body(self, length: int, head: bytearray, tail: bytearray, keep_all: bool) -> None:
        """Read ``length`` bytes, keeping the first and last 64 KiB in ``head`` and ``tail`` (all of it in ``head``
        when ``keep_all``)."""
        left = length
        if self.pending:
            piece: bytes | memoryview = self.pending[:left]
            self.pending = self.pending[left:]
            left -= len(piece)
            self._keep(piece, head, tail, keep_all)
        while left > 0:
            piece = self._recv(left)
            left -= len(piece)
            self._keep(piece, head, tail, keep_all)

    @staticmethod
    def _keep(piece: bytes | memoryview, head: bytearray, tail: bytearray, keep_all: bool) -> None:
        if keep_all:
            head += piece
            return
        if len(head) < KEEP:
            head += piece[: KEEP - len(head)]
        if len(piece) >= KEEP:
            tail[:] = piece[-KEEP:]
        else:
            tail += piece
            if len(tail) > 2 * KEEP:
                del tail[:-KEEP]

    def read_chunked(self, head: bytearray, tail: bytearray, keep_all: bool) -> int:
        total = 0
        while True:
            size = int(self.read_until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                self.read_until(b"\r\n")
                return total
            self.read_body(size, head, tail, keep_all)
            total += size
            self.read_until(b"\r\n")


class Sink:
    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.lock = threading.Lock()
        self.files: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.stats = {"requests": 0, "body_bytes": 0, "files": 0, "parts": 0, "connections": 0}

    # -- the API ----------------------------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, ctype: str, head: bytearray, tail: bytearray, size: int
    ) -> tuple[int, Any]:
        path = path.split("?", 1)[0].rstrip("/")
        parts = path.split("/")
        if path == "/_stats":
            with self.lock:
                return 200, dict(self.stats)
        if path == "/v1/files" and method == "POST":
            fields, name, nbytes = multipart(ctype, head, tail, size)
            return 200, self._new_file(name, fields.get("purpose", ""), nbytes)
        if path == "/v1/files" and method == "GET":
            with self.lock:
                data = list(self.files.values())[-10000:]
            return 200, {"object": "list", "data": data, "has_more": False}
        if len(parts) == 4 and parts[2] == "files":
            return self._file(method, parts[3])
        if path == "/v1/uploads" and method == "POST":
            return self._start(json.loads(head))
        if len(parts) >= 4 and parts[2] == "uploads" and method == "POST":
            return self._upload(parts[3], parts[4] if len(parts) > 4 else "", ctype, head, tail, size)
        return 404, error(f"{method} {path} is not something this sink knows", "not_found")

    def _file(self, method: str, file_id: str) -> tuple[int, Any]:
        with self.lock:
            fo = self.files.get(file_id)
            if fo is not None and method == "DELETE":
                del self.files[file_id]
                return 200, {"id": fo["id"], "object": "file", "deleted": True}
        if fo is None:
            return 404, error(f"No such File object: {file_id}", "not_found")
        return 200, fo

    def _start(self, body: dict[str, Any]) -> tuple[int, Any]:
        upload_id = "upload_" + secrets.token_hex(12)
        created: dict[str, Any] = {
            "id": upload_id,
            "object": "upload",
            "bytes": int(body["bytes"]),
            "created_at": int(time.time()),
            "filename": body["filename"],
            "purpose": body["purpose"],
            "status": "pending",
            "expires_at": int(time.time()) + 3600,
            "file": None,
        }
        with self.lock:
            self.uploads[upload_id] = dict(created, _parts={})
        return 200, created

    def _upload(
        self, upload_id: str, action: str, ctype: str, head: bytearray, tail: bytearray, size: int
    ) -> tuple[int, Any]:
        with self.lock:
            upload = self.uploads.get(upload_id)
        if upload is None:
            return 404, error(f"No such Upload: {upload_id}", "not_found")
        public = {k: v for k, v in upload.items() if not k.startswith("_")}
        if action == "parts":
            _, _, nbytes = multipart(ctype, head, tail, size)
            part = {"id": "part_" + secrets.token_hex(12), "object": "upload.part", "upload_id": upload["id"]}
            part["created_at"] = int(time.time())
            with self.lock:
                upload["_parts"][part["id"]] = nbytes
                self.stats["parts"] += 1
            return 200, part
        if action == "complete":
            ids = json.loads(head)["part_ids"]
            with self.lock:
                got = sum(upload["_parts"].get(i, 0) for i in ids)
            if got != upload["bytes"] or any(i not in upload["_parts"] for i in ids):
                return 400, error(f"parts hold {got} bytes, the upload {upload['bytes']}", "invalid_request")
            fo = self._new_file(upload["filename"], upload["purpose"], got)
            upload.update(status="completed", file=fo)
            return 200, dict(public, status="completed", file=fo)
        if action == "cancel":
            upload["status"] = "cancelled"
            return 200, dict(public, status="cancelled")
        return 404, error(f"POST uploads/{upload_id}/{action} is not something this sink knows", "not_found")

    def _new_file(self, name: str, purpose: str, nbytes: int) -> dict[str, Any]:
        file_id = "file-" + secrets.token_hex(12)
        fo: dict[str, Any] = {
            "id": file_id,
            "object": "file",
            "bytes": nbytes,
            "created_at": int(time.time()),
            "filename": name,
            "purpose": purpose,
            "status": "processed",
            "status_details": None,
        }
        with self.lock:
            self.files[file_id] = fo
            self.stats["files"] += 1
        return fo

    # -- HTTP -------------------------------------------------------------------------------------------------

    def serve(self, sock: socket.socket, rate: float | None) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Conn(sock, rate)
        with self.lock:
            self.stats["connections"] += 1
        try:
            while True:
                try:
                    request = conn.read_until(b"\r\n\r\n")
                except ConnectionError:
                    return
                lines = request.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                ctype = headers.get("content-type", "")
                keep_all = not ctype.startswith("multipart/")
                if headers.get("expect", "").lower() == "100-continue":
                    sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                head, tail = bytearray(), bytearray()
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    size = conn.read_chunked(head, tail, keep_all)
                else:
                    size = int(headers.get("content-length", "0"))
                    conn.read_body(size, head, tail, keep_all)
                if keep_all:
                    tail = head
                with self.lock:
                    self.stats["requests"] += 1
                    self.stats["body_bytes"] += size
                try:
                    status, answer = self.handle(method, target, ctype, head, tail, size)
                except (BadRequest, ValueError, KeyError) as exc:
                    status, answer = 400, error(f"bad request: {exc}", "invalid_request")
                body = json.dumps(answer).encode()
                close = headers.get("connection", "").lower() == "close"
                out = (
                    f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nx-request-id: req_{secrets.token_hex(6)}\r\n"
                    f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
                ).encode() + body
                if self.latency:
                    time.sleep(self.latency)
                sock.sendall(out)  # headers and body in one write (see the module docstring)
                if close:
                    return
        except (ConnectionError, OSError, BadRequest, ValueError):
            return
        finally:
            sock.close()


def error(message: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


def multipart(ctype: str, head: bytearray, tail: bytearray, size: int) -> tuple[dict[str, str], str, int]:
    """The small fields, the file's name and the file's size of a multipart/form-data body of ``size`` bytes of
    which ``head`` is the beginning and ``tail`` the end (the same bytes when the body is small)."""
    boundary = ""
    for param in ctype.split(";")[1:]:
        k, _, v = param.strip().partition("=")
        if k.lower() == "boundary":
            boundary = v.strip('"')
    if not boundary:
        raise BadRequest("multipart body without a boundary")
    delim = b"\r\n--" + boundary.encode()
    fields: dict[str, str] = {}
    name = ""
    start = -1
    pos = head.find(b"--" + boundary.encode())
    while pos >= 0:
        hdr_end = head.find(b"\r\n\r\n", pos)
        if hdr_end < 0:
            break
        part_headers = head[pos:hdr_end].decode("utf-8", "replace")
        field = _param(part_headers, "name")
        if "filename=" in part_headers:
            name = _param(part_headers, "filename")
            start = hdr_end + 4
            break
        value_end = head.find(delim, hdr_end + 4)
        if value_end < 0:
            break
        fields[field] = head[hdr_end + 4 : value_end].decode("utf-8", "replace")
        pos = value_end + 2
    if start < 0:
        raise BadRequest("no file part in the first 64 KiB of the multipart body")
    tail_at = size - len(tail)
    end = tail.find(delim, max(0, start - tail_at))
    if end < 0:
        raise BadRequest("the file part does not end in the last 64 KiB of the multipart body")
    rest = tail[end:]
    while (i := rest.find(b'name="')) >= 0:  # small fields after the file
        field = rest[i + 6 : rest.find(b'"', i + 6)].decode()
        v0 = rest.find(b"\r\n\r\n", i) + 4
        v1 = rest.find(delim, v0)
        fields[field] = rest[v0:v1].decode("utf-8", "replace")
        rest = rest[v1:]
    return fields, name, tail_at + end - start


def _param(headers: str, key: str) -> str:
    marker = f'{key}="'
    i = headers.find(marker)
    while i > 0 and headers[i - 1] not in " ;":
        i = headers.find(marker, i + 1)
    if i < 0:
        return ""
    return headers[i + len(marker) : headers.find('"', i + len(marker))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate-mib", type=float, default=0, help="MiB/s each connection may send (0: no cap)")
    parser.add_argument("--latency-ms", type=float, default=0, help="added to every answer")
    args = parser.parse_args(argv)
    sink = Sink(args.latency_ms / 1000)
    rate = args.rate_mib * MiB or None
    srv = socket.create_server((args.host, args.port), backlog=256)
    print(f"listening {srv.getsockname()[1]}", flush=True)
    try:
        while True:
            client, _ = srv.accept()
            threading.Thread(target=sink.serve, args=(client, rate), daemon=True).start()
    except KeyboardInterrupt:
        return 0
    finally:
        srv.close()


if __name__ == "__main__":
    sys.exit(main())
