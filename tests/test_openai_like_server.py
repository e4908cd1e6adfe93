"""The OpenAI-like test server itself: the parts of OpenAI's documented behaviour plugins rely on.

Plain ``http.client`` requests, so these tests hold whatever plugin is later tested against the server.
"""

from __future__ import annotations

import hashlib
import http.client
import json
from typing import Any

import pytest

from llmfiles.multipart import multipart_body
from servers.openai_like import OpenAILikeServer


class Api:
    """A bare client for the server: one keep-alive connection, JSON or raw bodies."""

    def __init__(self, server: OpenAILikeServer, key: str | None) -> None:
        self.server = server
        self.key = key
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)

    def call(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], Any]:
        hdrs = dict(headers or {})
        if self.key is not None:
            hdrs["Authorization"] = f"Bearer {self.key}"
        self.conn.request(method, self.server.base_path + path, body=body, headers=hdrs)
        resp = self.conn.getresponse()
        data = resp.read()
        got = {k.lower(): v for k, v in resp.getheaders()}
        if got.get("content-type") == "application/json":
            return resp.status, got, json.loads(data)
        return resp.status, got, data

    def json(self, method: str, path: str, payload: Any) -> tuple[int, dict[str, str], Any]:
        return self.call(method, path, json.dumps(payload).encode(), {"Content-Type": "application/json"})

    def form(self, path: str, fields: list[tuple[str, str]], files: list[tuple[str, str, bytes]]) -> Any:
        content_type, segments = multipart_body(
            fields, [(name, filename, "application/octet-stream", (data,)) for name, filename, data in files]
        )
        body = b"".join(seg for seg in segments if isinstance(seg, bytes))
        return self.call("POST", path, body, {"Content-Type": content_type})

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def api(openai_server: OpenAILikeServer) -> Any:
    a = Api(openai_server, openai_server.api_key)
    yield a
    a.close()


def _error_of(body: Any) -> dict[str, Any]:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]  # type: ignore[no-any-return]


def test_authentication_is_required(openai_server: OpenAILikeServer) -> None:
    anonymous = Api(openai_server, None)
    status, headers, body = anonymous.call("GET", "/files")
    assert status == 401 and headers["x-request-id"].startswith("req_")
    assert "didn't provide an API key" in _error_of(body)["message"]

    wrong = Api(openai_server, "sk-wrong-0123456789")
    status, _, body = wrong.call("GET", "/files")
    error = _error_of(body)
    assert status == 401 and error["code"] == "invalid_api_key" and error["type"] == "invalid_request_error"
    assert "sk-wrong-0123456789" not in error["message"] and "6789" in error["message"]
    anonymous.close()
    wrong.close()


def test_every_answer_has_a_request_id_and_errors_have_openais_shape(api: Api, openai_server: OpenAILikeServer) -> None:
    status, headers, body = api.call("GET", "/nope")
    assert status == 404 and _error_of(body)["message"] == "Invalid URL (GET /v1/nope)"
    status, headers2, body = api.call("GET", "/files/file-missing")
    assert status == 404 and _error_of(body) == {
        "message": "No such File object: file-missing",
        "type": "invalid_request_error",
        "param": "id",
        "code": None,
    }
    assert headers["x-request-id"] != headers2["x-request-id"]
    assert [r.request_id for r in openai_server.requests] == [headers["x-request-id"], headers2["x-request-id"]]


def test_files_round_trip(api: Api, openai_server: OpenAILikeServer) -> None:
    status, _, created = api.form("/files", [("purpose", "batch")], [("file", "in.jsonl", b'{"a": 1}\n')])
    assert status == 200
    assert set(created) == {
        "id",
        "object",
        "bytes",
        "created_at",
        "expires_at",
        "filename",
        "purpose",
        "status",
        "status_details",
    }
    assert created["object"] == "file" and created["bytes"] == 9 and created["status"] == "processed"
    assert created["id"].startswith("file-") and created["expires_at"] is None
    assert api.call("GET", f"/files/{created['id']}")[2] == created
    status, headers, content = api.call("GET", f"/files/{created['id']}/content")
    assert status == 200 and content == b'{"a": 1}\n' and headers["content-type"] == "application/octet-stream"
    assert api.call("DELETE", f"/files/{created['id']}")[2] == {"id": created["id"], "object": "file", "deleted": True}
    assert api.call("GET", f"/files/{created['id']}")[0] == 404


def test_files_create_checks_its_fields(api: Api) -> None:
    status, _, body = api.form("/files", [("purpose", "nonsense")], [("file", "a.jsonl", b"{}\n")])
    assert status == 400 and _error_of(body)["param"] == "purpose"
    status, _, body = api.form("/files", [("purpose", "batch")], [])
    assert status == 400 and _error_of(body)["param"] == "file"
    status, _, body = api.json("POST", "/files", {"purpose": "batch"})
    assert status == 400 and "multipart/form-data" in _error_of(body)["message"]


def test_listing_pages_orders_and_filters(api: Api) -> None:
    ids = [api.form("/files", [("purpose", "batch")], [("file", f"{i}.jsonl", b"{}\n")])[2]["id"] for i in range(3)]
    api.form("/files", [("purpose", "assistants")], [("file", "x.txt", b"x")])

    _, _, page = api.call("GET", "/files?purpose=batch&limit=2")
    assert [f["id"] for f in page["data"]] == [ids[2], ids[1]]  # newest first by default
    assert page["object"] == "list" and page["has_more"] is True
    assert (page["first_id"], page["last_id"]) == (ids[2], ids[1])
    _, _, page = api.call("GET", f"/files?purpose=batch&limit=2&after={ids[1]}")
    assert [f["id"] for f in page["data"]] == [ids[0]] and page["has_more"] is False
    _, _, page = api.call("GET", "/files?order=asc&purpose=batch")
    assert [f["id"] for f in page["data"]] == ids
    assert len(api.call("GET", "/files")[2]["data"]) == 4
    assert api.call("GET", "/files?limit=0")[0] == 400
    assert api.call("GET", "/files?order=sideways")[0] == 400


def test_chunked_request_bodies_are_accepted(api: Api, openai_server: OpenAILikeServer) -> None:
    content_type, segments = multipart_body([("purpose", "batch")], [("file", "c.jsonl", "text/jsonl", (b"{}\n",))])
    body = b"".join(seg for seg in segments if isinstance(seg, bytes))
    api.conn.putrequest("POST", "/v1/files")
    for k, v in {
        "Authorization": f"Bearer {api.key}",
        "Content-Type": content_type,
        "Transfer-Encoding": "chunked",
    }.items():
        api.conn.putheader(k, v)
    api.conn.endheaders()
    for i in range(0, len(body), 50):
        chunk = body[i : i + 50]
        api.conn.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
    api.conn.send(b"0\r\n\r\n")
    resp = api.conn.getresponse()
    created = json.loads(resp.read())
    assert resp.status == 200 and openai_server.files[created["id"]].content == b"{}\n"


def _start_upload(api: Api, data: bytes, **extra: Any) -> str:
    status, _, upload = api.json(
        "POST",
        "/uploads",
        {"filename": "big.jsonl", "purpose": "fine-tune", "bytes": len(data), "mime_type": "text/jsonl", **extra},
    )
    assert status == 200, upload
    assert upload["object"] == "upload" and upload["status"] == "pending" and upload["file"] is None
    assert upload["expires_at"] == upload["created_at"] + 3600
    return str(upload["id"])


def _part(api: Api, upload_id: str, data: bytes) -> str:
    status, _, part = api.form(f"/uploads/{upload_id}/parts", [], [("data", "blob", data)])
    assert status == 200, part
    assert set(part) == {"id", "object", "created_at", "upload_id"}
    assert part["object"] == "upload.part" and part["upload_id"] == upload_id
    return str(part["id"])


def test_uploads_assemble_parts_in_the_given_order(api: Api, openai_server: OpenAILikeServer) -> None:
    data = b"0123456789" * 10
    upload_id = _start_upload(api, data)
    second = _part(api, upload_id, data[50:])  # parts may arrive in any order
    first = _part(api, upload_id, data[:50])
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    status, _, done = api.json("POST", f"/uploads/{upload_id}/complete", {"part_ids": [first, second], "md5": md5})
    assert status == 200 and done["status"] == "completed" and done["id"] == upload_id
    assert done["file"]["bytes"] == 100 and done["file"]["filename"] == "big.jsonl"
    assert openai_server.files[done["file"]["id"]].content == data
    # no parts after completion, and it cannot be cancelled any more
    assert api.form(f"/uploads/{upload_id}/parts", [], [("data", "blob", b"x")])[0] == 400
    assert api.call("POST", f"/uploads/{upload_id}/cancel")[0] == 400


@pytest.mark.parametrize(
    ("case", "param"),
    [("short", "part_ids"), ("md5", "md5"), ("unknown part", "part_ids"), ("twice", "part_ids")],
)
def test_uploads_complete_checks_bytes_parts_and_md5(case: str, param: str, api: Api) -> None:
    data = b"abcdef" * 10
    upload_id = _start_upload(api, data)
    a = _part(api, upload_id, data[:30])
    b = _part(api, upload_id, data[30:])
    payload: dict[str, Any] = {
        "short": {"part_ids": [a]},
        "md5": {"part_ids": [a, b], "md5": "0" * 32},
        "unknown part": {"part_ids": [a, "part_nope"]},
        "twice": {"part_ids": [a, a]},
    }[case]
    status, _, body = api.json("POST", f"/uploads/{upload_id}/complete", payload)
    assert status == 400 and _error_of(body)["param"] == param
    # still pending: the right call completes it
    assert api.json("POST", f"/uploads/{upload_id}/complete", {"part_ids": [a, b]})[2]["status"] == "completed"


def test_a_cancelled_upload_takes_no_parts(api: Api) -> None:
    upload_id = _start_upload(api, b"12345")
    status, _, cancelled = api.call("POST", f"/uploads/{upload_id}/cancel")
    assert status == 200 and cancelled["status"] == "cancelled"
    status, _, body = api.form(f"/uploads/{upload_id}/parts", [], [("data", "blob", b"12345")])
    assert status == 400 and "cancelled" in _error_of(body)["message"]
    assert api.call("POST", "/uploads/upload_nope/cancel")[0] == 404


def test_uploads_create_checks_its_fields(api: Api) -> None:
    base = {"filename": "a.jsonl", "purpose": "batch", "bytes": 10, "mime_type": "text/jsonl"}
    for name in base:
        status, _, body = api.json("POST", "/uploads", {k: v for k, v in base.items() if k != name})
        assert status == 400 and _error_of(body)["param"] == name
    assert api.json("POST", "/uploads", {**base, "bytes": 9 * 1000**3})[0] == 400  # over 8 GB
    assert api.call("POST", "/uploads", b"{not json", {"Content-Type": "application/json"})[0] == 400


def test_part_size_limit(openai_server: OpenAILikeServer, api: Api) -> None:
    openai_server.max_part_bytes = 10
    upload_id = _start_upload(api, b"x" * 20)
    status, _, body = api.form(f"/uploads/{upload_id}/parts", [], [("data", "blob", b"x" * 11)])
    assert status == 400 and _error_of(body)["param"] == "data"


def test_download_can_be_forbidden_by_purpose(api: Api, openai_server: OpenAILikeServer) -> None:
    openai_server.download_forbidden_purposes = ("assistants",)
    created = api.form("/files", [("purpose", "assistants")], [("file", "a.txt", b"abc")])[2]
    status, _, body = api.call("GET", f"/files/{created['id']}/content")
    assert status == 400 and _error_of(body)["message"] == "Not allowed to download files of purpose: assistants"


def test_faults_answer_a_status_then_stop(api: Api, openai_server: OpenAILikeServer) -> None:
    fault = openai_server.fail("files.list", 503, times=2, skip=1, headers={"Retry-After": "7"})
    statuses = []
    for _ in range(4):
        status, headers, body = api.call("GET", "/files")
        statuses.append(status)
        if status == 503:
            assert headers["retry-after"] == "7" and _error_of(body)["type"] == "server_error"
            assert headers["x-request-id"].startswith("req_")
    assert statuses == [200, 503, 503, 200]
    assert fault.hits == 2
    with pytest.raises(ValueError, match="unknown route"):
        openai_server.fail("files.nope")


def test_a_dropped_request_gets_no_answer(api: Api, openai_server: OpenAILikeServer) -> None:
    openai_server.drop("files.create")
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        api.form("/files", [("purpose", "batch")], [("file", "a.jsonl", b"{}\n" * 1000)])
    api.conn.close()
    assert openai_server.requests[-1].fault == "drop" and openai_server.requests[-1].status is None
    assert openai_server.files == {}
    # the next request, on a new connection, is answered
    assert api.call("GET", "/files")[0] == 200


def test_reset_forgets_everything(api: Api, openai_server: OpenAILikeServer) -> None:
    api.form("/files", [("purpose", "batch")], [("file", "a.jsonl", b"{}\n")])
    openai_server.fail("files.list", 500)
    openai_server.reset()
    assert openai_server.files == {} and openai_server.requests == [] and openai_server.faults == []
    assert api.call("GET", "/files")[0] == 200
