"""The built-in ``local`` provider: a file store in a folder on this machine, no account needed.

It registers through the ``llmfiles`` entry point group like any third-party plugin and is a provider like the
others: its exchanges are ``local://`` requests, which the transport hands to the provider itself (it is an
:class:`~llmfiles.provider.InProcessServer`) through the same streaming path a network request takes, so uploads to
it run through the same engine as every cloud provider: checks, streaming, large-file parts, progress, retries.

Files live under ``$LLMFILES_HOME/local`` (default: the platform's user data folder): ``files/<id>.data`` and
``files/<id>.json``.  Ids are ``file-<32 hex>`` and are checked before any path is built from them, so no id can
reach outside the store; a store folder that is a symbolic link is refused.  Everything is written to a temporary
name first and renamed into place.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from llmfiles.errors import ProviderError
from llmfiles.models import (
    NO_CREDENTIALS,
    Credentials,
    Delete,
    Download,
    FileObject,
    FilePage,
    HttpRequest,
    HttpResponse,
    ListFiles,
    Operation,
    Part,
    ProviderInfo,
    Receipt,
    Retrieve,
    Settings,
    SettingSpec,
    Upload,
    UploadFacts,
    UploadParts,
    UploadState,
)
from llmfiles.paths import default_home, private_dir
from llmfiles.pluginapi import hookimpl
from llmfiles.provider import BaseProvider, Exchange, Http, PartsUpload, Probe, guarded_error, guarded_read

NAME = "local"
SCHEME = "local"
PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
MiB = 1024 * 1024
_ID = re.compile(r"^file-[0-9a-f]{32}$")
_UPLOAD_ID = re.compile(r"^upload-[0-9a-f]{32}$")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: errors of the file system that a retry cannot cure: answered as 507 (no space) or 403 (not writable)
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}

INFO = ProviderInfo(
    name=NAME,
    package="llmfiles",
    purposes=PURPOSES,
    description="files in a folder on this machine; no account needed",
    settings=(
        SettingSpec(
            name="home",
            kind="path",
            env=("LLMFILES_HOME",),
            help="llmfiles' data folder; the store is its 'local' subfolder",
        ),
    ),
    default_multipart_threshold=64 * MiB,
    default_part_size=8 * MiB,
    supports_parts=True,
    checksums=("md5",),
)


# --- the provider --------------------------------------------------------------------------------------------


class LocalProvider(BaseProvider):
    """The ``local`` provider: builds ``local://`` exchanges and answers them from its store."""

    info = INFO
    scheme = SCHEME

    def credentials(self, settings: Settings, environ: Mapping[str, str], http: Http) -> Credentials:
        return NO_CREDENTIALS

    def exchange(self, op: Operation, credentials: Credentials, settings: Settings) -> Exchange[Any] | PartsUpload:
        root = store_root(settings)
        if isinstance(op, Upload):
            return _upload(root, op.file)
        if isinstance(op, UploadParts):
            return LocalParts(root, op.file)
        if isinstance(op, ListFiles):
            url = _url(root, "/files", purpose=op.purpose, after=op.cursor, limit=op.limit)
            return Exchange(request=HttpRequest(method="GET", url=url), read=_page, error=_error)
        # the id is quoted into one path segment: "../x", "a/content" or "x?store=..." cannot change the route or store
        file_id = quote(op.file_id, safe="")
        if isinstance(op, Retrieve):
            return Exchange(
                request=HttpRequest(method="GET", url=_url(root, f"/files/{file_id}")), read=_file, error=_error
            )
        if isinstance(op, Delete):
            return Exchange(
                request=HttpRequest(method="DELETE", url=_url(root, f"/files/{file_id}")), read=_true, error=_error
            )
        assert isinstance(op, Download)
        request = HttpRequest(method="GET", url=_url(root, f"/files/{file_id}/content"))
        return Exchange(request=request, read=_true, error=_error)

    def serve(self, request: HttpRequest, body: Iterator[bytes | memoryview], sink: IO[bytes] | None) -> HttpResponse:
        """Answer a ``local://`` request from the store, as a server would."""
        return handle_local_request(request, body, sink)


@hookimpl
def llmfiles_register_providers(register: Callable[[LocalProvider], None]) -> None:
    register(LocalProvider())


def store_root(settings: Settings) -> Path:
    home = settings.get("home")
    return (Path(home).expanduser() if home else default_home()) / "local"


def _url(root: Path, path: str, **query: Any) -> str:
    q = {"store": str(root)}
    q.update({k: str(v) for k, v in query.items() if v is not None})
    return f"{SCHEME}://{path}?{urlencode(q)}"


def _upload(root: Path, facts: UploadFacts) -> Exchange[FileObject]:
    from llmfiles.models import FileRange

    request = HttpRequest(
        method="POST",
        url=_url(root, "/files", filename=facts.filename, purpose=facts.purpose),
        body=(FileRange(offset=0, length=facts.size),),
    )
    # the store never loses an answer, but its listing can tell what a lost one created (the md5 is compared)
    probe = Probe(
        request=HttpRequest(method="GET", url=_url(root, "/files", purpose=facts.purpose)), read=_candidates(facts)
    )
    return Exchange(request=request, read=_file, error=_error, probe=probe)


def _candidates(facts: UploadFacts) -> Callable[[HttpResponse], Sequence[FileObject]]:
    def read(response: HttpResponse) -> Sequence[FileObject]:
        return [f for f in _page(response).files if f.filename == facts.filename and f.bytes == facts.size]

    return guarded_read(NAME, read)


class LocalParts(PartsUpload):
    """The store's large-file protocol: a session, parts written at their offsets, complete, cancel."""

    def __init__(self, root: Path, facts: UploadFacts) -> None:
        self.root = root
        self.facts = facts
        self.destination = str(root)
        self.part_digests = ("md5",)

    def start(self) -> Exchange[UploadState]:
        facts = self.facts
        url = _url(self.root, "/uploads", filename=facts.filename, purpose=facts.purpose, bytes=facts.size)
        return Exchange(request=HttpRequest(method="POST", url=url), read=_upload_id, error=_error)

    def part(self, state: UploadState, part: Part) -> Exchange[Receipt]:
        url = _url(self.root, f"/uploads/{state['upload_id']}/parts", offset=part.offset)

        def read(response: HttpResponse) -> Receipt:
            data = response.json()
            if not isinstance(data, dict):
                raise TypeError(f"the answer is a {type(data).__name__}")
            if data.get("md5") != part.sent.get("md5"):
                raise ProviderError(
                    f"part {part.number} arrived damaged (md5 {data.get('md5')} != sent {part.sent.get('md5')})",
                    provider=NAME,
                    status=response.status,
                )
            return {"id": data["id"], "offset": part.offset, "length": part.length}

        request = HttpRequest(method="PUT", url=url, body=(part.body,))
        return Exchange(request=request, read=guarded_read(NAME, read), error=_error)

    def complete(
        self, state: UploadState, receipts: Sequence[Receipt], digests: Mapping[str, str]
    ) -> Exchange[FileObject]:
        url = _url(self.root, f"/uploads/{state['upload_id']}/complete")
        body = json.dumps({"parts": list(receipts)}).encode()
        request = HttpRequest(method="POST", url=url, headers={"Content-Type": "application/json"}, body=body)
        return Exchange(request=request, read=_file, error=_error)

    def abort(self, state: UploadState) -> Exchange[object]:
        url = _url(self.root, f"/uploads/{state['upload_id']}/cancel")
        return Exchange(request=HttpRequest(method="POST", url=url), read=_true, error=_error)


# --- answers -------------------------------------------------------------------------------------------------


def _file_object(data: Mapping[str, Any]) -> FileObject:
    texts = [data["id"], data["filename"], data["purpose"]]
    if not all(isinstance(t, str) for t in texts):
        raise TypeError("the file's id, name and purpose must be strings")
    md5 = data.get("md5")
    return FileObject(
        id=data["id"],
        provider=NAME,
        filename=data["filename"],
        purpose=data["purpose"],
        bytes=int(data["bytes"]),
        created_at=int(data["created_at"]),
        status=data.get("status", "processed"),
        checksums={"md5": md5} if isinstance(md5, str) else {},
        raw=dict(data),
    )


def _read_file(response: HttpResponse) -> FileObject:
    return _file_object(response.json())


def _read_page(response: HttpResponse) -> FilePage:
    data = response.json()
    files = tuple(_file_object(d) for d in data["data"])
    return FilePage(files=files, next_cursor=files[-1].id if data.get("has_more") and files else None)


def _read_upload_id(response: HttpResponse) -> UploadState:
    upload_id = response.json()["id"]
    if not isinstance(upload_id, str):
        raise TypeError(f"the upload id is a {type(upload_id).__name__}")
    return {"upload_id": upload_id}


def _true(response: HttpResponse) -> bool:
    return True


def _read_error(response: HttpResponse) -> ProviderError:
    try:
        err = response.json()["error"]
        message, code = str(err["message"]), err.get("code")
    except (ValueError, KeyError, TypeError):
        message, code = response.body.decode("utf-8", "replace")[:500], None
    return ProviderError(message, provider=NAME, status=response.status, code=None if code is None else str(code))


# an answer of another shape than the store's is an error of the provider, never a KeyError
_file = guarded_read(NAME, _read_file)
_page = guarded_read(NAME, _read_page)
_upload_id = guarded_read(NAME, _read_upload_id)
_error = guarded_error(NAME, _read_error)


# --- the store, answering local: requests --------------------------------------------------------------------


class _Error(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _json(status: int, data: Any) -> HttpResponse:
    return HttpResponse(
        status=status, headers={"content-type": "application/json"}, body=json.dumps(data).encode(), url="local:"
    )


class LocalStore:
    """The folder behind the ``local`` provider."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = root / "files"
        self.uploads = root / "uploads"
        self.tmp = root / "tmp"

    def ensure(self) -> None:
        self.refuse_links()
        for d in (self.root, self.files, self.uploads, self.tmp):
            private_dir(d)

    def refuse_links(self) -> None:
        """A store (or one of its folders) that is a symbolic link is refused: it would be followed, and made
        owner-only, wherever it points."""
        for d in (self.root, self.files, self.uploads, self.tmp):
            if d.is_symlink():
                raise _Error(
                    403,
                    "store_is_a_link",
                    f"the local store's folder {d} is a symbolic link; llmfiles does not follow it. Point "
                    "LLMFILES_HOME (or home=) at the real folder instead",
                )

    # -- paths, checked --------------------------------------------------------------------------------------

    def _file_paths(self, file_id: str) -> tuple[Path, Path]:
        if not _ID.match(file_id):
            raise _Error(
                404, "not_found", f"no file with id {file_id!r} in the local store (ids look like file-<32 hex>)"
            )
        return self.files / f"{file_id}.json", self.files / f"{file_id}.data"

    def _upload_dir(self, upload_id: str) -> Path:
        if not _UPLOAD_ID.match(upload_id):
            raise _Error(404, "not_found", f"no upload session {upload_id!r}")
        d = self.uploads / upload_id
        if not d.is_dir():
            raise _Error(404, "not_found", f"no upload session {upload_id!r}")
        return d

    def _write_json(self, path: Path, data: Any) -> None:
        tmp = self.tmp / f"{secrets.token_hex(8)}.json"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)

    def _read_meta(self, file_id: str) -> dict[str, Any]:
        meta, _ = self._file_paths(file_id)
        try:
            fd = os.open(meta, os.O_RDONLY | _NOFOLLOW)
        except FileNotFoundError:
            raise _Error(404, "not_found", f"no file with id {file_id!r} in the local store") from None
        except OSError as exc:
            raise _Error(500, "store_error", f"cannot read {file_id}: {exc.strerror}") from None
        with os.fdopen(fd, encoding="utf-8") as fh:
            return json.load(fh)  # type: ignore[no-any-return]

    # -- operations ------------------------------------------------------------------------------------------

    def create(self, filename: str, purpose: str, body: Iterator[bytes | memoryview]) -> dict[str, Any]:
        self.ensure()
        file_id = f"file-{secrets.token_hex(16)}"
        _, data_path = self._file_paths(file_id)
        tmp = self.tmp / f"{file_id}.partial"
        size = 0
        md5 = hashlib.md5(usedforsecurity=False)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as fh:
                for chunk in body:
                    fh.write(chunk)
                    md5.update(chunk)
                    size += len(chunk)
            os.replace(tmp, data_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return self._finish(file_id, filename, purpose, size, md5.hexdigest())

    def _finish(self, file_id: str, filename: str, purpose: str, size: int, md5: str | None = None) -> dict[str, Any]:
        meta_path, _ = self._file_paths(file_id)
        data: dict[str, Any] = {
            "id": file_id,
            "object": "file",
            "filename": filename,
            "purpose": purpose,
            "bytes": size,
            "created_at": int(time.time()),
            "status": "processed",
        }
        if md5 is not None:
            data["md5"] = md5
        self._write_json(meta_path, data)
        return data

    def get(self, file_id: str) -> dict[str, Any]:
        return self._read_meta(file_id)

    def delete(self, file_id: str) -> dict[str, Any]:
        self._read_meta(file_id)
        meta, data = self._file_paths(file_id)
        meta.unlink(missing_ok=True)
        data.unlink(missing_ok=True)
        return {"id": file_id, "object": "file", "deleted": True}

    def list_files(self, purpose: str | None, after: str | None, limit: int) -> dict[str, Any]:
        items: list[dict[str, Any]] = []
        if self.files.is_dir():
            for entry in os.scandir(self.files):
                name = entry.name
                if name.endswith(".json") and _ID.match(name[:-5]) and not entry.is_symlink():
                    try:
                        meta = self._read_meta(name[:-5])
                    except _Error:
                        continue  # deleted meanwhile
                    if purpose is None or meta.get("purpose") == purpose:
                        items.append(meta)
        items.sort(key=lambda m: (-int(m["created_at"]), m["id"]))
        if after is not None:
            ids = [m["id"] for m in items]
            if after not in ids:
                raise _Error(400, "invalid_cursor", f"cursor {after!r} is not a file of this listing")
            items = items[ids.index(after) + 1 :]
        return {"object": "list", "data": items[:limit], "has_more": len(items) > limit}

    def open_content(self, file_id: str) -> IO[bytes]:
        self._read_meta(file_id)
        _, data = self._file_paths(file_id)
        try:
            fd = os.open(data, os.O_RDONLY | _NOFOLLOW)
        except OSError:
            raise _Error(404, "not_found", f"the content of {file_id} is missing from the local store") from None
        return os.fdopen(fd, "rb")

    # -- large-file sessions ---------------------------------------------------------------------------------

    def start_upload(self, filename: str, purpose: str, size: int) -> dict[str, Any]:
        self.ensure()
        upload_id = f"upload-{secrets.token_hex(16)}"
        d = private_dir(self.uploads / upload_id)
        fd = os.open(d / "data", os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
        os.ftruncate(fd, size)
        os.close(fd)
        self._write_json(d / "meta.json", {"filename": filename, "purpose": purpose, "bytes": size})
        return {"id": upload_id, "object": "upload", "status": "pending", "bytes": size}

    def put_part(self, upload_id: str, offset: int, body: Iterator[bytes | memoryview]) -> dict[str, Any]:
        d = self._upload_dir(upload_id)
        meta = json.loads((d / "meta.json").read_text())
        md5 = hashlib.md5(usedforsecurity=False)
        pos = offset
        fd = os.open(d / "data", os.O_WRONLY | _NOFOLLOW)
        try:
            for chunk in body:
                if pos + len(chunk) > meta["bytes"]:
                    raise _Error(400, "part_out_of_range", "the part goes past the declared size of the upload")
                os.pwrite(fd, chunk, pos)
                md5.update(chunk)
                pos += len(chunk)
        finally:
            os.close(fd)
        return {"id": f"part-{offset}-{pos - offset}", "offset": offset, "length": pos - offset, "md5": md5.hexdigest()}

    def complete_upload(self, upload_id: str, parts: list[Any]) -> dict[str, Any]:
        d = self._upload_dir(upload_id)
        meta = json.loads((d / "meta.json").read_text())
        pos = 0
        for p in sorted(parts, key=lambda item: int(item["offset"])):
            if int(p["offset"]) != pos:
                raise _Error(400, "parts_incomplete", f"the parts leave a gap or overlap at byte {pos:,}")
            pos += int(p["length"])
        if pos != meta["bytes"]:
            raise _Error(
                400, "parts_incomplete", f"the parts hold {pos:,} bytes; the upload declared {meta['bytes']:,}"
            )
        file_id = f"file-{secrets.token_hex(16)}"
        _, data_path = self._file_paths(file_id)
        os.replace(d / "data", data_path)
        result = self._finish(file_id, meta["filename"], meta["purpose"], pos)
        shutil.rmtree(d, ignore_errors=True)
        return result

    def cancel_upload(self, upload_id: str) -> dict[str, Any]:
        d = self._upload_dir(upload_id)
        shutil.rmtree(d, ignore_errors=True)
        return {"id": upload_id, "object": "upload", "status": "cancelled"}


_Route = Callable[
    ["LocalStore", list[str], dict[str, str], Iterator[bytes | memoryview], "IO[bytes] | None"], HttpResponse
]


def _download(store: LocalStore, path: list[str], sink: IO[bytes] | None) -> HttpResponse:
    with store.open_content(path[1]) as fh:
        if sink is None:
            return HttpResponse(status=200, body=fh.read(), url="local:")
        while block := fh.read(MiB):
            sink.write(block)
    return HttpResponse(status=200, url="local:")


def _complete(store: LocalStore, path: list[str], body: Iterator[bytes | memoryview]) -> HttpResponse:
    payload = json.loads(b"".join(bytes(b) for b in body) or b"{}")
    return _json(200, store.complete_upload(path[1], payload.get("parts", [])))


#: (method, path shape) -> how the store answers; a path shape is the path with its ids as "*"
_ROUTES: dict[tuple[str, tuple[str, ...]], _Route] = {
    ("POST", ("files",)): lambda st, p, q, b, s: _json(
        200, st.create(q.get("filename", "upload"), q.get("purpose", ""), b)
    ),
    ("GET", ("files",)): lambda st, p, q, b, s: _json(
        200, st.list_files(q.get("purpose"), q.get("after"), int(q.get("limit") or 100))
    ),
    ("GET", ("files", "*")): lambda st, p, q, b, s: _json(200, st.get(p[1])),
    ("DELETE", ("files", "*")): lambda st, p, q, b, s: _json(200, st.delete(p[1])),
    ("GET", ("files", "*", "content")): lambda st, p, q, b, s: _download(st, p, s),
    ("POST", ("uploads",)): lambda st, p, q, b, s: _json(
        200, st.start_upload(q.get("filename", "upload"), q.get("purpose", ""), int(q["bytes"]))
    ),
    ("PUT", ("uploads", "*", "parts")): lambda st, p, q, b, s: _json(200, st.put_part(p[1], int(q["offset"]), b)),
    ("POST", ("uploads", "*", "complete")): lambda st, p, q, b, s: _complete(st, p, b),
    ("POST", ("uploads", "*", "cancel")): lambda st, p, q, b, s: _json(200, st.cancel_upload(p[1])),
}


def handle_local_request(
    request: HttpRequest, body: Iterator[bytes | memoryview], sink: IO[bytes] | None
) -> HttpResponse:
    """Answer a ``local:`` request from the store, as a server would."""
    parts = urlsplit(request.url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    store = LocalStore(Path(query["store"]))
    path = [p for p in parts.path.split("/") if p]
    shape = tuple(seg if i % 2 == 0 else "*" for i, seg in enumerate(path))
    method = request.method.upper()
    try:
        store.refuse_links()
        route = _ROUTES.get((method, shape))
        if route is None:
            raise _Error(404, "no_route", f"{method} {parts.path} is not an operation of the local store")
        return route(store, path, query, body, sink)
    except _Error as exc:
        return _json(exc.status, {"error": {"message": exc.message, "code": exc.code}})
    except OSError as exc:
        # a full disk or a read-only store is not cured by retrying: only other errors answer 500 (retried)
        status = 507 if exc.errno in _NO_SPACE else 403 if exc.errno in _NOT_WRITABLE else 500
        message = f"local store {store.root}: {exc.strerror or exc}"
        return _json(status, {"error": {"message": message, "code": "store_error"}})
