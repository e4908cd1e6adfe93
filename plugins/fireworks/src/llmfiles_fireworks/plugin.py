"""The ``fireworks`` provider: a file becomes a Fireworks dataset.

From Fireworks' Gateway REST API (the datasets operations of the API reference, 4.259.0, and ``:upload`` from
``gateway-extra``; copied in ``tests/contract/fireworks-files.json``):

1. ``POST /v1/accounts/{account}/datasets`` with ``datasetId`` and ``dataset`` creates the dataset (its id is made
   fresh for each upload: the purpose, the file's name and random hex);
2. up to 150 MB, ``POST .../datasets/{id}:upload`` (multipart ``file``: "a streamlined way to upload a dataset file
   in a single API request. This path can handle file sizes up to 150Mb"); above it, ``POST ...:getUploadEndpoint``
   with ``filenameToSize`` answers a signed URL the file is ``PUT`` to, and ``POST ...:validateUpload`` asks
   Fireworks to check it;
3. ``GET .../datasets/{id}`` gives the dataset, whose resource name (``accounts/{account}/datasets/{id}``) is the
   file id.

The steps run through the core's parts engine as one part (a create, then the bytes, then validation), so an
interrupted upload continues from the recorded dataset and URL; a failed one deletes its dataset.  Datasets report
no size and no purpose: ``bytes`` is what was sent when known, and the purpose is read from the dataset id llmfiles
made.  Fireworks has no download in this API (``getDownloadEndpoint`` is not supported).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from llmfiles import hookimpl
from llmfiles.errors import InputError, InvalidSetting, ProviderError, UploadFailed
from llmfiles.models import (
    Credentials,
    Delete,
    Download,
    FileLimits,
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
    UploadFacts,
    UploadParts,
    UploadState,
)
from llmfiles.multipart import multipart_body
from llmfiles.provider import BaseProvider, Exchange, PartLimits, PartsUpload, UploadProtocol, rfc3339_seconds

NAME = "fireworks"
MB = 1000 * 1000
#: ``:upload`` takes files up to 150 MB ("150Mb" in its description); larger ones go to the signed URL
DIRECT_LIMIT = 150 * MB
DEFAULT_API_BASE = "https://api.fireworks.ai"
PURPOSES = ("fine-tune", "batch")
_SLUG = re.compile(r"[^a-z0-9]+")
_MD5 = re.compile(r"[0-9a-f]{32}")
STATUS = {"READY": "processed", "UPLOADING": "pending", "STATE_UNSPECIFIED": "uploaded"}

INFO = ProviderInfo(
    name=NAME,
    package="llmfiles-fireworks",
    purposes=PURPOSES,
    description="Fireworks AI datasets (created, uploaded, validated)",
    settings=(
        SettingSpec(name="api_key", kind="secret", env=("FIREWORKS_API_KEY",), help="the API key"),
        SettingSpec(name="account_id", env=("FIREWORKS_ACCOUNT_ID",), help="the account id (required)"),
        SettingSpec(name="api_base", env=("FIREWORKS_API_BASE",), default=DEFAULT_API_BASE, help="the API's origin"),
    ),
    credential_settings=("api_key",),
    # every upload takes several requests (create, bytes, validate): always the dataset protocol
    max_single_request_size=0,
    default_multipart_threshold=0,
    supports_parts=True,
    # "Batch inference" guide: a batch dataset is JSONL "under 500MB"; it gives no number of requests
    file_limits={
        "batch": FileLimits(max_bytes=500 * 1000 * 1000 - 1, docs="https://docs.fireworks.ai/guides/batch-inference")
    },
)


def dataset_id(purpose: str, filename: str) -> str:
    """A fresh dataset id: ``{ft|batch}-{name}-{8 hex}``, lower-case letters, digits and dashes, at most 63."""
    stem = _SLUG.sub("-", filename.lower().rsplit(".", 1)[0]).strip("-")[:40] or "file"
    return f"{'batch' if purpose == 'batch' else 'ft'}-{stem}-{secrets.token_hex(4)}"


class Api:
    """Fireworks' API for one account: URLs, requests with the key, error bodies."""

    def __init__(self, base: str, account: str, headers: Mapping[str, str]) -> None:
        self.base, self.account, self.headers = base.rstrip("/"), account, dict(headers)

    def datasets(self) -> str:
        return f"{self.base}/v1/accounts/{quote(self.account, safe='')}/datasets"

    def dataset(self, file_id: str) -> str:
        """The dataset's URL from a file id: its resource name, or its bare id in this account."""
        if file_id.startswith("accounts/"):
            parts = file_id.split("/")
            if len(parts) != 4 or parts[2] != "datasets" or not all(parts):
                raise InputError(f"{file_id!r} is not a dataset name (accounts/ACCOUNT/datasets/ID)")
            return f"{self.base}/v1/accounts/{quote(parts[1], safe='')}/datasets/{quote(parts[3], safe='')}"
        return f"{self.datasets()}/{quote(file_id, safe='')}"

    def request(self, method: str, url: str, payload: Any = None) -> HttpRequest:
        headers = dict(self.headers)
        body = None
        if payload is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(payload).encode()
        return HttpRequest(method=method, url=url, headers=headers, body=body)

    def exchange(self, request: HttpRequest, read: Callable[[HttpResponse], Any]) -> Exchange[Any]:
        return Exchange(request=request, read=read, error=error)


def error(response: HttpResponse) -> ProviderError:
    """Fireworks' error body: gRPC-gateway's ``{code, message}`` or ``{error: {message, code}}``."""
    try:
        data = response.json()
    except ValueError:
        data = None
    inner = data.get("error") if isinstance(data, dict) and isinstance(data.get("error"), dict) else data
    message = inner.get("message") if isinstance(inner, dict) else None
    if not message:
        message = response.body[:300].decode("utf-8", "replace").strip() or f"HTTP {response.status}"
    code = inner.get("code") if isinstance(inner, dict) else None
    return ProviderError(str(message), provider=NAME, status=response.status, code=None if code is None else str(code))


def file_object(data: Any, size: int | None = None) -> FileObject:
    """A ``gatewayDataset`` as a :class:`FileObject` (``READY`` is processed, ``UPLOADING`` pending; an error
    ``status`` is an error)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("name"), str) or not data["name"]:
        raise ProviderError("unexpected answer: the dataset has no name", provider=NAME)
    name = data["name"]
    found = data.get("status")
    status: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    failed = status.get("code") not in (None, "OK")
    short = name.rsplit("/", 1)[-1]
    return FileObject(
        id=name,
        provider=NAME,
        filename=str(data.get("displayName") or short),
        purpose="batch" if short.startswith("batch-") else "fine-tune",
        bytes=size or 0,
        created_at=rfc3339_seconds(data.get("createTime")) or 0,
        status="error" if failed else STATUS.get(str(data.get("state")), "pending"),  # type: ignore[arg-type]
        status_details=str(status.get("message")) if failed else None,
        object="dataset",
        raw=dict(data),
    )


class DatasetUpload(PartsUpload):
    """Create the dataset, send its file (one part), validate it; delete the dataset when the upload fails."""

    parallel = False
    part_digests = ("md5",)

    def __init__(self, api: Api, facts: UploadFacts) -> None:
        if facts.size <= 0:
            raise InputError("an empty file cannot become a Fireworks dataset")
        self.api, self.facts = api, facts
        self.id = dataset_id(facts.purpose, facts.filename)
        self.direct = facts.size <= DIRECT_LIMIT
        self.limits = PartLimits(preferred=facts.size, minimum=facts.size, maximum=facts.size, max_parts=1)
        self.destination = api.dataset(self.id)

    def start(self) -> Exchange[Any]:
        api, facts = self.api, self.facts
        url = api.dataset(self.id)
        state = {"url": url, "bytes": facts.size, "filename": facts.filename, "direct": self.direct}
        body = {"datasetId": self.id, "dataset": {"displayName": facts.filename, "userUploaded": {}}}

        def created(response: HttpResponse) -> Any:
            if self.direct:
                return state
            ask = {"filenameToSize": {facts.filename: str(facts.size)}}  # int64 as a string (proto JSON)
            return api.exchange(api.request("POST", f"{url}:getUploadEndpoint", ask), signed)

        def signed(response: HttpResponse) -> UploadState:
            urls = response.json().get("filenameToSignedUrls") if response.body else None
            target = urls.get(facts.filename) if isinstance(urls, Mapping) else None
            if not isinstance(target, str) or not target.startswith(("https://", "http://")):
                raise ProviderError("getUploadEndpoint answered no signed URL for the file", provider=NAME)
            return {**state, "signed_url": target}

        return api.exchange(api.request("POST", api.datasets(), body), created)

    def part(self, state: UploadState, part: Part) -> Exchange[Receipt]:
        if state["direct"]:
            content_type, body = multipart_body(
                [], [("file", str(state["filename"]), "application/octet-stream", [part.body])]
            )
            headers = {**self.api.headers, "Content-Type": content_type}
            request = HttpRequest(method="POST", url=f"{state['url']}:upload", headers=headers, body=body)
            return Exchange(request=request, read=lambda r: {"direct": True}, error=error)
        # the signed URL carries its own authorization: Fireworks' key is not sent to the storage host
        request = HttpRequest(
            method="PUT",
            url=str(state["signed_url"]),
            headers={"Content-Type": "application/octet-stream"},
            body=(part.body,),
            idempotent=True,
        )
        return Exchange(request=request, read=lambda r: _checked_put(r, part), error=error)

    def complete(
        self, state: UploadState, receipts: Sequence[Receipt], digests: Mapping[str, str]
    ) -> Exchange[FileObject]:
        api, url, size = self.api, str(state["url"]), int(state["bytes"])
        fetch = api.exchange(api.request("GET", url), lambda r: file_object(r.json(), size))
        if state["direct"]:
            return fetch
        return api.exchange(api.request("POST", f"{url}:validateUpload", {}), lambda r: fetch)

    def abort(self, state: UploadState) -> Exchange[object]:
        return self.api.exchange(self.api.request("DELETE", str(state["url"])), lambda r: True)


def _checked_put(response: HttpResponse, part: Part) -> Receipt:
    etag = (response.header("etag") or "").strip().strip('"').lower()
    sent = part.sent.get("md5")
    if sent and _MD5.fullmatch(etag) and etag != sent:
        raise UploadFailed(f"the storage kept bytes whose MD5 is {etag}, not the {sent} sent; not validated")
    return {"etag": etag}


def read_page(response: HttpResponse, purpose: str | None) -> FilePage:
    data = response.json()
    items = data.get("datasets", []) if isinstance(data, Mapping) else None
    if not isinstance(items, list):
        raise ProviderError("the listing has no 'datasets' array", provider=NAME)
    files = tuple(f for f in (file_object(item) for item in items) if purpose is None or f.purpose == purpose)
    token = data.get("nextPageToken")
    return FilePage(files=files, next_cursor=token if isinstance(token, str) and token else None)


def api_for(credentials: Credentials, settings: Settings) -> Api:
    account = settings.get("account_id")
    if not account:
        raise InvalidSetting("fireworks needs account_id: your Fireworks account id (set FIREWORKS_ACCOUNT_ID)")
    headers = {"Authorization": f"Bearer {credentials.secret.reveal()}"} if credentials.secret else {}
    headers.update(credentials.headers)
    return Api(str(settings["api_base"]), str(account), headers)


class FireworksProvider(BaseProvider):
    """Fireworks AI datasets (see the module documentation)."""

    info = INFO

    def exchange(self, op: Operation, credentials: Credentials, settings: Settings) -> Exchange[Any] | UploadProtocol:
        api = api_for(credentials, settings)
        if isinstance(op, UploadParts):
            return DatasetUpload(api, op.file)
        if isinstance(op, Retrieve):
            return api.exchange(api.request("GET", api.dataset(op.file_id)), lambda r: file_object(r.json()))
        if isinstance(op, Delete):
            return api.exchange(api.request("DELETE", api.dataset(op.file_id)), lambda r: True)
        if isinstance(op, ListFiles):
            params = {k: v for k, v in {"pageSize": op.limit, "pageToken": op.cursor}.items() if v is not None}
            url = api.datasets() + (f"?{urlencode(params)}" if params else "")
            return api.exchange(api.request("GET", url), lambda r: read_page(r, op.purpose))
        if isinstance(op, Download):
            raise InputError("llmfiles cannot download Fireworks datasets (Fireworks serves them through "
                             "getDownloadEndpoint, which it does not support)")  # fmt: skip
        raise InputError("an empty file cannot become a Fireworks dataset")  # Upload: only a 0-byte file gets here


@hookimpl
def llmfiles_register_providers(register: Callable[[FireworksProvider], None]) -> None:
    """Register ``fireworks``."""
    register(FireworksProvider())
