"""An in-house wrapper plugin for contract tests: it records every request a provider's exchanges send (through the
``llmfiles_request`` hook, the way a company adds a proxy header without forking anything) and every answer they
read (the status of each operation, each part, each complete, and the part receipts), by registering the provider
under test wrapped in :class:`RecordingProvider`.

Usage::

    recorder = Recorder(OpenAIProvider())
    pm = PluginManager(load_entry_points=False)
    pm.register(recorder, "recorder")
    client = llmfiles.Client("openai", plugin_manager=pm, ...)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from llmfiles import hookimpl
from llmfiles.models import (
    Credentials,
    FileObject,
    HttpRequest,
    HttpResponse,
    Operation,
    Part,
    Receipt,
    Settings,
    UploadState,
    operation_name,
)
from llmfiles.provider import Exchange, Http, PartListing, PartsUpload, Provider, UploadProtocol
from llmfiles.validate.records import RecordChecker


class Recorder:
    """Registers ``provider`` wrapped so that what it reads is recorded; records every request sent (after adding
    ``extra_headers``)."""

    def __init__(self, provider: Provider, extra_headers: Mapping[str, str] | None = None) -> None:
        self.provider = provider
        self.extra_headers = dict(extra_headers or {})
        self.requests: list[HttpRequest] = []
        self.statuses: list[tuple[str, int]] = []
        self.receipts: list[Receipt] = []

    @hookimpl
    def llmfiles_register_providers(self, register: Callable[[Provider], None]) -> None:
        register(RecordingProvider(self.provider, self))

    @hookimpl(wrapper=True)
    def llmfiles_request(self, provider: str, request: HttpRequest) -> Any:
        request = yield
        if self.extra_headers:
            request = attrs.evolve(request, headers={**request.headers, **self.extra_headers})
        self.requests.append(request)
        return request

    def reading(self, what: str, read: Callable[[HttpResponse], Any]) -> Callable[[HttpResponse], Any]:
        """``read``, recording the status of each answer it gets as ``(what, status)``."""

        def recorded(response: HttpResponse) -> Any:
            self.statuses.append((what, response.status))
            return read(response)

        return recorded

    def wrap(self, what: str, exchange: Exchange[Any]) -> Exchange[Any]:
        return attrs.evolve(exchange, read=self.reading(what, exchange.read))


class RecordingProvider:
    """The provider under test, its exchanges' readers recorded."""

    def __init__(self, inner: Provider, recorder: Recorder) -> None:
        self.inner = inner
        self.info = inner.info
        self.recorder = recorder

    def credentials(self, settings: Settings, environ: Mapping[str, str], http: Http) -> Credentials:
        return self.inner.credentials(settings, environ, http)

    def exchange(self, op: Operation, credentials: Credentials, settings: Settings) -> Exchange[Any] | UploadProtocol:
        built = self.inner.exchange(op, credentials, settings)
        if isinstance(built, PartsUpload):
            return RecordingParts(built, self.recorder)
        assert isinstance(built, Exchange)
        return self.recorder.wrap(operation_name(op), built)

    def record_checker(self, purpose: str, settings: Settings) -> RecordChecker | None:
        return self.inner.record_checker(purpose, settings)


class RecordingParts(PartsUpload):
    """A provider's parts protocol, its answers recorded (and its part receipts kept)."""

    def __init__(self, inner: PartsUpload, recorder: Recorder) -> None:
        self.inner = inner
        self.recorder = recorder
        for name in ("destination", "limits", "session_ttl", "resumable", "part_digests", "digests", "parallel"):
            setattr(self, name, getattr(inner, name))

    def start(self) -> Exchange[UploadState]:
        return self.recorder.wrap("start", self.inner.start())

    def part(self, state: UploadState, part: Part) -> Exchange[Receipt]:
        built = self.inner.part(state, part)
        read = self.recorder.reading("part", built.read)

        def keep(response: HttpResponse) -> Receipt:
            receipt: Receipt = read(response)
            self.recorder.receipts.append(receipt)
            return receipt

        return attrs.evolve(built, read=keep)

    def complete(
        self, state: UploadState, receipts: Sequence[Receipt], digests: Mapping[str, str]
    ) -> Exchange[FileObject]:
        return self.recorder.wrap("complete", self.inner.complete(state, receipts, digests))

    def list_parts(self, state: UploadState, cursor: str | None) -> Exchange[PartListing] | None:
        return self.inner.list_parts(state, cursor)

    def abort(self, state: UploadState) -> Exchange[object] | None:
        return self.inner.abort(state)
