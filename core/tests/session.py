"""``sess``: a provider with a resumable session (as Cloud Storage's resumable uploads), played by the fault server.

:class:`Session` is the server side, a fault-server behaviour: ``POST /start`` opens the session, ``PUT /s`` with
``X-Offset`` sends a chunk (``keep(n, sent)`` says how many bytes of the n-th chunk it keeps, ``cut(n)`` after how
many it breaks the connection), ``GET /s`` tells how many bytes it has, ``DELETE /s`` aborts.  Once it has every
byte it answers the file, with the MD5 of what it stored (``corrupt``: of other bytes).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any

from faultserver import Exchange as ServerSide

from llmfiles import Client, hookimpl
from llmfiles.errors import ProviderError
from llmfiles.models import (
    NO_CREDENTIALS,
    Credentials,
    Delete,
    FileObject,
    HttpRequest,
    HttpResponse,
    Operation,
    Part,
    ProviderInfo,
    Settings,
    SettingSpec,
    UploadFacts,
    UploadParts,
    UploadState,
)
from llmfiles.plugins import PluginManager
from llmfiles.provider import BaseProvider, Exchange, Http, PartLimits, ResumableUpload

PART = 100_000


class Session:
    """The provider's side of one resumable session (see the module documentation)."""

    def __init__(self) -> None:
        self.stored = bytearray()
        self.total: int | None = None
        self.keep: Callable[[int, int], int] = lambda n, sent: sent
        self.cut: Callable[[int], int | None] = lambda n: None
        self.log: list[str] = []
        self.corrupt = False
        self.chunks = 0
        self.aborted = False
        self.deleted: list[str] = []
        self.file: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def __call__(self, ex: ServerSide) -> None:
        with self._lock:
            self._serve(ex)

    def _serve(self, ex: ServerSide) -> None:
        req = ex.request
        if req.method == "POST" and req.path == "/start":
            ex.read_body()
            self.total = int(req.headers["x-total"])
            self.log.append("start")
            return _json(ex, 200, {"session": "/s"})
        if req.method == "GET" and req.path == "/s":
            self.log.append(f"query {len(self.stored)}")
            return self._answer(ex)
        if req.method == "DELETE" and req.path == "/s":
            self.aborted = True
            self.log.append("abort")
            return _json(ex, 200, {})
        if req.method == "DELETE" and req.path.startswith("/files/"):
            self.deleted.append(req.path.rsplit("/", 1)[1])
            return _json(ex, 200, {})
        if req.method == "PUT" and req.path == "/s":
            return self._chunk(ex)
        return _json(ex, 404, {"error": f"no route {req.method} {req.path}"})

    def _chunk(self, ex: ServerSide) -> None:
        req = ex.request
        n = self.chunks
        self.chunks += 1
        offset = int(req.headers["x-offset"])
        if offset != len(self.stored):
            self.log.append(f"chunk {n} at {offset}, but the session has {len(self.stored)}")
            ex.read_body()
            return _json(ex, 400, {"error": "wrong offset"})
        cut = self.cut(n)
        if cut is not None:
            ex.read_body(limit=cut)
            self.stored += req.body[:cut]
            self.log.append(f"chunk {n} cut after {len(req.body)}")
            ex.reset()
            return None
        ex.read_body()
        if not req.complete:  # the client stopped sending (its checks failed): nothing of it is kept
            self.log.append(f"chunk {n} broken off after {len(req.body)}")
            return None
        kept = self.keep(n, len(req.body))
        self.stored += req.body[:kept]
        self.log.append(f"chunk {n} kept {kept} of {len(req.body)}")
        return self._answer(ex)

    def _answer(self, ex: ServerSide) -> None:
        if self.total is not None and len(self.stored) >= self.total:
            data = bytes(self.stored) if not self.corrupt else b"x" + bytes(self.stored[1:])
            self.file = {
                "id": "file-s1",
                "filename": ex.request.headers.get("x-filename", "f"),
                "bytes": len(self.stored),
                "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
            }
            return _json(ex, 200, {"file": self.file})
        return _json(ex, 200, {"stored": len(self.stored)})


def _json(ex: ServerSide, status: int, data: Any) -> None:
    ex.send(status, {"Content-Type": "application/json"}, json.dumps(data).encode())


# --- the client side ---------------------------------------------------------------------------------------------


def _error(response: HttpResponse) -> ProviderError:
    return ProviderError(response.body.decode("utf-8", "replace"), provider="sess")


class SessionUpload(ResumableUpload):
    """The protocol: chunks in order, ``query`` after an interrupted one, ``DELETE`` to abort."""

    def __init__(self, base: str, facts: UploadFacts, part_size: int) -> None:
        self.base = base
        self.facts = facts
        self.destination = base
        self.limits = PartLimits(preferred=part_size)

    def start(self) -> Exchange[UploadState]:
        request = HttpRequest(method="POST", url=f"{self.base}/start", headers={"X-Total": str(self.facts.size)})
        return Exchange(request=request, read=lambda r: {"session": r.json()["session"]}, error=_error)

    def chunk(self, state: UploadState, part: Part, final: bool) -> Exchange[int | FileObject]:
        headers = {"X-Offset": str(part.offset), "X-Final": str(int(final)), "X-Filename": self.facts.filename}
        request = HttpRequest(method="PUT", url=self.base + state["session"], headers=headers, body=(part.body,))
        return Exchange(request=request, read=self._progress, error=_error)

    def query(self, state: UploadState) -> Exchange[int | FileObject]:
        request = HttpRequest(method="GET", url=self.base + state["session"])
        return Exchange(request=request, read=self._progress, error=_error)

    def abort(self, state: UploadState) -> Exchange[object]:
        return Exchange(request=HttpRequest(method="DELETE", url=self.base + state["session"]), read=bool, error=_error)

    def _progress(self, response: HttpResponse) -> int | FileObject:
        data = response.json()
        if "file" not in data:
            return int(data["stored"])
        f = data["file"]
        return FileObject(
            id=f["id"],
            provider="sess",
            filename=f["filename"],
            purpose=self.facts.purpose,
            bytes=f["bytes"],
            created_at=1,
            status="processed",
            checksums={"md5": f["md5"]},
        )


class SessionProvider(BaseProvider):
    info = ProviderInfo(
        name="sess",
        package="llmfiles-sess",
        purposes=("fine-tune", "assistants"),
        settings=(SettingSpec(name="api_base"), SettingSpec(name="chunk_size", kind="size", default=PART)),
        supports_parts=True,
        default_multipart_threshold=1,
        checksums=("md5",),
    )

    def credentials(self, settings: Settings, environ: Any, http: Http) -> Credentials:
        return NO_CREDENTIALS

    def exchange(self, op: Operation, credentials: Credentials, settings: Settings) -> Any:
        base = settings["api_base"]
        if isinstance(op, UploadParts):
            return SessionUpload(base, op.file, settings["chunk_size"])
        if isinstance(op, Delete):
            return Exchange(
                request=HttpRequest(method="DELETE", url=f"{base}/files/{op.file_id}"), read=bool, error=_error
            )
        raise AssertionError(f"not used by these tests: {op!r}")


class SessionPlugin:
    @hookimpl
    def llmfiles_register_providers(self, register: Callable[[Any], None]) -> None:
        register(SessionProvider())


def session_client(base: str, **settings: Any) -> Client:
    pm = PluginManager(load_entry_points=False, environ={})
    pm.register(SessionPlugin(), name="sess")
    return Client("sess", plugin_manager=pm, environ={}, api_base=base, **settings)
