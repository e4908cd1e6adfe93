"""``echo``: a small v2 provider over HTTP that the fault server plays, for the tests of the core's call path.

Its errors may quote the key back, as a careless provider's might; the ``mode`` setting makes it misbehave in the
ways a buggy plugin could; ``probe`` says how a lost upload answer is looked for (``list``: by name and size,
``unique``: a lookup of a name made for the request, ``none``: no probe).  It reports the MD5 of stored files when
the server's JSON has an ``md5`` field (``info.checksums``), so the core compares checksums.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from faultserver import Behaviour, respond

from llmfiles import Client, hookimpl
from llmfiles.errors import ProviderError
from llmfiles.models import (
    Credentials,
    Delete,
    FileObject,
    FilePage,
    FileRange,
    HttpRequest,
    HttpResponse,
    ListFiles,
    Operation,
    ProviderInfo,
    Retrieve,
    Settings,
    SettingSpec,
    Upload,
    UploadFacts,
)
from llmfiles.multipart import multipart_body
from llmfiles.plugins import PluginManager
from llmfiles.provider import BaseProvider, Exchange, Probe

SECRET = "sk-api-Qw3rtySECRET987"

INFO = ProviderInfo(
    name="echo",
    package="llmfiles-echo",
    purposes=("batch", "assistants", "fine-tune"),
    settings=(
        SettingSpec(name="api_key", kind="secret", env=("ECHO_API_KEY",)),
        SettingSpec(name="api_base", kind="str"),
        SettingSpec(name="mode", kind="str", default="ok"),
        SettingSpec(name="probe", kind="str", default="list"),
    ),
    credential_settings=("api_key",),
    checksums=("md5",),
)


def file_object(data: dict[str, Any]) -> FileObject:
    md5 = data.get("md5")
    return FileObject(
        id=data["id"],
        provider="echo",
        filename=data["filename"],
        purpose=data["purpose"],
        bytes=int(data["bytes"]),
        created_at=int(data["created_at"]),
        status=data["status"],
        status_details=data.get("status_details"),
        checksums={"md5": md5} if isinstance(md5, str) else {},
        raw=data,
    )


def _file(response: HttpResponse) -> FileObject:
    return file_object(response.json())  # raises on a body that is not JSON: the core must cope


def _page(response: HttpResponse) -> FilePage:
    return FilePage(files=tuple(file_object(d) for d in response.json()["data"]))


def _error(response: HttpResponse) -> ProviderError:
    data = response.json()  # raises on a body that is not JSON: the core must cope
    return ProviderError(data["error"], provider="echo", code="echoed")


class EchoProvider(BaseProvider):
    """See the module documentation."""

    info = INFO

    def exchange(self, op: Operation, credentials: Credentials, settings: Settings) -> Any:
        assert credentials.secret is not None
        key = credentials.secret.reveal()
        mode = settings["mode"]
        if mode == "explode":
            raise RuntimeError(f"plugin bug while holding {key}")
        if mode == "decline":
            return None
        if mode == "wrong-type":
            return {"not": "a request"}
        headers = {"Authorization": f"Bearer {key}"}
        base = settings["api_base"]
        if isinstance(op, Upload):
            return self._upload(base, headers, op.file, settings["probe"])
        if isinstance(op, ListFiles):
            return Exchange(request=HttpRequest(method="GET", url=f"{base}/files"), read=_page, error=_error)
        assert isinstance(op, (Retrieve, Delete))
        method = "DELETE" if isinstance(op, Delete) else "GET"
        request = HttpRequest(method=method, url=f"{base}/files/{op.file_id}", headers=headers)
        return Exchange(request=request, read=_file if method == "GET" else lambda r: True, error=_error)

    @staticmethod
    def _upload(base: str, headers: dict[str, str], facts: UploadFacts, probe: str) -> Exchange[FileObject]:
        ctype, body = multipart_body(
            [("purpose", facts.purpose)],
            [("file", facts.filename, "application/octet-stream", [FileRange(offset=0, length=facts.size)])],
        )
        request = HttpRequest(method="POST", url=f"{base}/files", headers={**headers, "Content-Type": ctype}, body=body)
        found = None
        if probe != "none":

            def candidates(response: HttpResponse) -> Sequence[FileObject]:
                if response.status == 404:
                    return []
                files = [file_object(d) for d in response.json()["data"]]
                return [f for f in files if f.filename == facts.filename and f.bytes == facts.size]

            look = HttpRequest(method="GET", url=f"{base}/lookup?filename={facts.filename}", headers=headers)
            found = Probe(request=look, read=candidates, unique=probe == "unique")
        return Exchange(request=request, read=_file, error=_error, probe=found)


class EchoPlugin:
    @hookimpl
    def llmfiles_register_providers(self, register: Callable[[Any], None]) -> None:
        register(EchoProvider())


def echo_client(base: str, **settings: Any) -> Client:
    pm = PluginManager(load_entry_points=False, environ={})
    pm.register(EchoPlugin(), name="echo")
    return Client("echo", plugin_manager=pm, environ={"ECHO_API_KEY": SECRET}, api_base=base, **settings)


def fo_json(status: str = "processed", **over: Any) -> dict[str, Any]:
    return {
        "id": "file-9",
        "filename": "t.jsonl",
        "purpose": "batch",
        "bytes": 10,
        "created_at": 1,
        "status": status,
    } | over


def answer(data: dict[str, Any], status: int = 200) -> Behaviour:
    return respond(status, body=json.dumps(data).encode())


def listing(*files: dict[str, Any]) -> Behaviour:
    return answer({"data": list(files)})
