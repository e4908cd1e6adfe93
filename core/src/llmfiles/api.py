"""The public operations: :class:`Client` and the module-level functions that use a default client.

Every operation follows the same steps: find the provider, check the purpose, resolve the settings (explicit >
``Client`` > environment > secret hooks), check the file, resolve credentials, check the content, then let the
provider's plugin build requests that the transport sends, and normalize what comes back.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from llmfiles.errors import (
    AlreadyUploaded,
    AuthenticationError,
    FileNotFound,
    InputError,
    InvalidPurpose,
    InvalidSetting,
    LLMFilesError,
    MissingCredentials,
    PluginError,
    ProviderError,
    ValidationError,
)
from llmfiles.models import (
    Credentials,
    FileObject,
    FilePage,
    HttpRequest,
    HttpResponse,
    Operation,
    Progress,
    ProviderInfo,
    Secret,
    Settings,
    Source,
    TrainingFiles,
    UploadPlan,
)
from llmfiles.plugins import PluginManager, get_plugin_manager
from llmfiles.settings import places_looked, resolve_settings
from llmfiles.sources import open_source
from llmfiles.transport import Transport, redact

if TYPE_CHECKING:
    from llmfiles.state import Journal, StateDB
    from llmfiles.validate.convert import ConvertResult
    from llmfiles.validate.jsonl import Report

log = logging.getLogger("llmfiles")
T = TypeVar("T")
ProgressCallback = Callable[[Progress], None]
FileArg = Any  # str | os.PathLike[str] | BinaryIO


# --- one call, resolved --------------------------------------------------------------------------------------


class _Call:
    """The provider, settings and credentials of one call, and the helpers that talk to the provider."""

    def __init__(self, client: Client, info: ProviderInfo, settings: Settings, credentials: Credentials | None) -> None:
        self.client = client
        self.info = info
        self.name = info.name
        self.settings = settings
        self.credentials = credentials or Credentials(kind="none", source="none")
        secrets = [v.reveal() for v in settings.values.values() if isinstance(v, Secret)]
        if self.credentials.secret is not None:
            secrets.append(self.credentials.secret.reveal())
        secrets.extend(str(v) for v in self.credentials.headers.values())
        self.secrets = tuple(s for s in secrets if s)
        deadline = settings.get("deadline")
        self.deadline_at = time.monotonic() + float(deadline) if deadline else None

    @property
    def hook(self) -> Any:
        return self.client._pm.hook

    def build(self, operation: Operation) -> HttpRequest | UploadPlan:
        try:
            result: HttpRequest | UploadPlan | None = self.hook.llmfiles_build_request(
                provider=self.name, operation=operation, credentials=self.credentials, settings=self.settings
            )
        except LLMFilesError:
            raise
        except Exception as exc:
            raise PluginError(self._plugin_failed("llmfiles_build_request", operation, exc)) from exc
        if result is None:
            raise PluginError(
                f"no plugin built a request for {operation.name!r} on provider {self.name!r}; "
                f"the plugin {self.client._pm.owner(self.name)!r} does not support it"
            )
        if operation.name == "upload_parts" and not isinstance(result, UploadPlan):
            raise PluginError(
                f"provider {self.name!r} returned {type(result).__name__} for a large upload, not an UploadPlan"
            )
        if operation.name != "upload_parts" and not isinstance(result, HttpRequest):
            raise PluginError(
                f"provider {self.name!r} returned {type(result).__name__} for {operation.name!r}, not an HttpRequest"
            )
        return result

    def request(self, operation: Operation) -> HttpRequest:
        """The one-shot request for ``operation`` (any operation but ``upload_parts``)."""
        built = self.build(operation)
        assert isinstance(built, HttpRequest)
        return built

    def _plugin_failed(self, hook: str, operation: Operation, exc: BaseException) -> str:
        text = redact(f"{type(exc).__name__}: {exc}", self.secrets)
        return f"plugin {self.client._pm.owner(self.name)!r} failed in {hook} for {operation.name!r}: {text}"

    def exchange(
        self,
        operation: Operation,
        request: HttpRequest,
        *,
        on_chunk: Callable[[bytes], None] | None = None,
        on_restart: Callable[[], None] | None = None,
        sink: Any = None,
        on_sink_chunk: Callable[[bytes], None] | None = None,
    ) -> HttpResponse:
        """Send ``request``; return the response when its status is a success, raise the provider's error if not."""
        s = self.settings
        response = self.client._transport.send(
            request,
            provider=self.name,
            timeout=s["timeout"],
            max_retries=s["max_retries"],
            max_retry_wait=s["max_retry_wait"],
            deadline_at=self.deadline_at,
            allow_insecure_http=s["allow_insecure_http"],
            verify=s["verify"],
            secrets=self.secrets,
            on_chunk=on_chunk,
            on_restart=on_restart,
            sink=sink,
            on_sink_chunk=on_sink_chunk,
        )
        if response.status >= 400:
            raise self.error_for(operation, response)
        return response

    def error_for(self, operation: Operation, response: HttpResponse) -> LLMFilesError:
        try:
            answer: Any = self.hook.llmfiles_normalize_response(
                provider=self.name, operation=operation, response=response
            )
        except Exception as exc:  # a plugin bug or a hostile body must not crash the caller
            answer = ProviderError(
                self._plugin_failed("llmfiles_normalize_response", operation, exc), provider=self.name
            )
        if isinstance(answer, LLMFilesError):
            err: LLMFilesError = answer
        else:
            text = response.body[:500].decode("utf-8", "replace").strip() or "(empty body)"
            err = ProviderError(text, provider=self.name, status=response.status)
        if isinstance(err, ProviderError):
            if err.status is None:
                err.status = response.status
            err = self._specialize(err, operation, response)
            attempts = response.header("x-llmfiles-attempts")
            if attempts:
                err.add_note(f"llmfiles: gave up after {attempts} attempts")
        err.args = tuple(redact(a, self.secrets) if isinstance(a, str) else a for a in err.args)
        if isinstance(err, ProviderError) and isinstance(err.message, str):
            err.message = redact(err.message, self.secrets)
        return err

    def _specialize(self, err: ProviderError, operation: Operation, response: HttpResponse) -> ProviderError:
        status = response.status
        kw = dict(
            provider=err.provider,
            status=err.status,
            code=err.code,
            error_type=err.error_type,
            param=err.param,
            request_id=err.request_id,
            details=err.details,
        )
        if status in (401, 403):
            return AuthenticationError(
                f"{err.message} (the credential used came from {self.credentials.source}; check it is valid "
                f"and allowed to use this endpoint)",
                **kw,
            )
        if status == 404 and operation.file_id is not None and not isinstance(err, FileNotFound):
            return FileNotFound(err.message, **kw)
        return err

    def normalize(self, operation: Operation, response: HttpResponse) -> Any:
        try:
            result = self.hook.llmfiles_normalize_response(provider=self.name, operation=operation, response=response)
        except LLMFilesError:
            raise
        except Exception as exc:
            raise ProviderError(
                redact(
                    f"could not read the provider's answer to {operation.name!r}: {type(exc).__name__}: {exc}",
                    self.secrets,
                ),
                provider=self.name,
                status=response.status,
            ) from None
        if isinstance(result, Exception):
            raise result
        expected: dict[str, type] = {"upload": FileObject, "retrieve": FileObject, "list": FilePage}
        want = expected.get(operation.name)
        if want is not None and not isinstance(result, want):
            raise PluginError(
                f"plugin {self.client._pm.owner(self.name)!r} returned {type(result).__name__} for "
                f"{operation.name!r}; expected {want.__name__}"
            )
        return result


class _ProgressCounter:
    def __init__(self, callback: ProgressCallback | None, operation: str, filename: str, total: int | None) -> None:
        self.callback = callback
        self.operation = operation
        self.filename = filename
        self.total = total
        self.done = 0
        self.lock = threading.Lock()

    def report(self, done: int, total: int | None = None) -> None:
        if self.callback is not None:
            self.callback(
                Progress(operation=self.operation, filename=self.filename, done=done, total=total or self.total)
            )

    def add(self, n: int) -> None:
        with self.lock:
            self.done += n
            done = self.done
        self.report(done)


class _Prepared:
    """An upload that passed every check and is ready to send."""

    def __init__(
        self,
        call: _Call,
        source: Source,
        purpose: str,
        large: bool,
        digests: Mapping[str, str],
        sha256: str | None = None,
    ) -> None:
        self.call = call
        self.source = source
        self.purpose = purpose
        self.large = large
        self.digests = digests
        #: the SHA-256 of the file, when the check pass computed it or ``if_exists`` needed it
        self.sha256 = sha256

    def operation(self) -> Operation:
        return Operation(
            name="upload_parts" if self.large else "upload",
            purpose=self.purpose,
            source=self.source,
            filename=self.source.name,
        )


# --- the client ----------------------------------------------------------------------------------------------


class Client:
    """Holds settings and a connection pool, and performs every operation.

    ``Client(**settings)`` settings sit between a call's explicit arguments and the environment in the settings
    chain; ``provider`` is the default provider of its calls (else ``$LLMFILES_PROVIDER``, else ``local``).
    A client is safe to share between threads and asyncio tasks.
    """

    def __init__(
        self,
        provider: str | None = None,
        *,
        plugin_manager: PluginManager | None = None,
        environ: Mapping[str, str] | None = None,
        **settings: Any,
    ) -> None:
        self._provider = provider
        self._settings = dict(settings)
        self._environ = environ
        self._pm = plugin_manager or get_plugin_manager()
        self._transport = Transport(maxsize=max(32, int(settings.get("max_concurrency") or 4)))
        self._state_dbs: dict[str, StateDB] = {}
        self._locks = threading.Lock()
        self._content_locks: dict[tuple[str, ...], threading.Lock] = {}

    def __repr__(self) -> str:
        return f"Client(provider={self._provider!r}, settings={sorted(self._settings)!r})"

    def close(self) -> None:
        """Close pooled connections (and the state database)."""
        self._transport.close()
        with self._locks:
            dbs, self._state_dbs = list(self._state_dbs.values()), {}
        for db in dbs:
            db.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- resolution ------------------------------------------------------------------------------------------

    def _env(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    def provider_info(self, provider: str | None = None) -> ProviderInfo:
        """The :class:`ProviderInfo` of ``provider`` (or the default provider)."""
        name = provider or self._provider or self._env().get("LLMFILES_PROVIDER") or "local"
        return self._pm.get_provider(name)

    def _check_purpose(self, info: ProviderInfo, purpose: Any) -> str:
        if not isinstance(purpose, str) or purpose not in info.purposes:
            raise InvalidPurpose(info.name, str(purpose), info.purposes)
        return purpose

    def _resolve(self, info: ProviderInfo, explicit: Mapping[str, Any]) -> Settings:
        return resolve_settings(
            info, explicit, self._settings, self._env(), get_secret=self._pm.hook.llmfiles_get_secret
        )

    def _credentials(self, info: ProviderInfo, settings: Settings) -> Credentials:
        try:
            creds = self._pm.hook.llmfiles_resolve_credentials(
                provider=info.name, settings=settings, environ=self._env()
            )
        except LLMFilesError:
            raise
        except Exception as exc:
            raise PluginError(
                f"plugin {self._pm.owner(info.name)!r} failed to resolve credentials: {type(exc).__name__}: "
                f"{redact(str(exc), [v.reveal() for v in settings.values.values() if isinstance(v, Secret)])}"
            ) from exc
        if creds is not None:
            return creds  # type: ignore[no-any-return]
        if info.credential_settings:
            raise MissingCredentials(
                info.name,
                "credentials",
                places_looked(info, info.credential_settings),
                hint=f"set one of them, or pass {info.credential_settings[0]}=...",
            )
        return Credentials(kind="none", source="none")

    def _call(self, provider: str | None, explicit: Mapping[str, Any]) -> _Call:
        info = self.provider_info(provider)
        settings = self._resolve(info, explicit)
        return _Call(self, info, settings, self._credentials(info, settings))

    # -- upload ----------------------------------------------------------------------------------------------

    def _prepare(
        self,
        file: FileArg,
        *,
        purpose: str,
        provider: str | None,
        filename: str | None,
        explicit: Mapping[str, Any],
        resolve_credentials: bool = True,
        run_checks: bool = True,
    ) -> _Prepared:
        info = self.provider_info(provider)
        purpose = self._check_purpose(info, purpose)
        settings = self._resolve(info, explicit)
        is_jsonl = purpose in info.jsonl_purposes
        source = open_source(file, filename=filename, default_name="upload.jsonl" if is_jsonl else "upload")
        size = source.size
        if info.max_file_size is not None and size > info.max_file_size:
            from llmfiles.errors import FileTooLarge

            raise FileTooLarge(source.display, size, info.max_file_size, info.name)
        threshold = settings.get("multipart_threshold")
        if threshold is not None and info.max_single_request_size is not None:
            # a threshold above what one request may carry would only earn a refusal from the provider
            threshold = min(threshold, info.max_single_request_size)
        large = bool(info.supports_parts and threshold is not None and size > threshold)
        if not info.supports_parts and info.max_single_request_size is not None and size > info.max_single_request_size:
            from llmfiles.errors import FileTooLarge

            raise FileTooLarge(source.display, size, info.max_single_request_size, info.name)
        if large and info.large_purposes is not None and purpose not in info.large_purposes:
            raise InvalidPurpose(
                info.name,
                purpose,
                info.large_purposes,
                context=f"for files above the multipart threshold ({threshold:,} bytes; this one has {size:,})",
            )
        creds = self._credentials(info, settings) if resolve_credentials else None
        call = _Call(self, info, settings, creds)
        digests: dict[str, str] = {}
        sha256: str | None = None
        if run_checks and is_jsonl and settings["validate"]:
            # the SHA-256 comes from the same read (dedupe, and the identity of a resumed upload); so does the
            # checksum a large upload sends, so that it is the checksum of the bytes that were checked
            wanted = (*(info.upload_digests if large and settings["checksum"] else ()), "sha256")
            report = self.check_file(source, call=call, purpose=purpose, digests=wanted)
            if not report.ok:
                raise ValidationError(source.display, report.problems, report.total)
            for p in report.problems:
                log.warning("%s: %s", source.display, p.describe())
            digests = dict(report.digests)
            sha256 = digests.get("sha256")
        if sha256 is None and run_checks and settings["if_exists"] != "new":
            sha256 = _sha256_of(source)  # the one extra read if_exists costs when no check pass read the file
        return _Prepared(call, source, purpose, large, digests, sha256)

    def check_file(
        self, source: Source, *, call: _Call, purpose: str, digests: tuple[str, ...] = (), max_problems: int = 50
    ) -> Report:
        """Run the content checks of ``purpose`` on ``source`` (one streaming pass); return the report."""
        from llmfiles.validate import check_jsonl

        checker = self._pm.hook.llmfiles_record_checker(provider=call.name, purpose=purpose, settings=call.settings)
        return check_jsonl(source, checker=checker, digests=digests, max_problems=max_problems)

    def validate(
        self,
        file: FileArg,
        *,
        purpose: str = "fine-tune",
        provider: str | None = None,
        max_problems: int = 50,
        **settings: Any,
    ) -> Report:
        """Check ``file`` as :meth:`upload` would before sending it, offline, and return the full report.

        Needs no credentials and no network.  ``report.ok`` is false when there is any error; every problem has a
        line number, a code and a message saying how to fix it.
        """
        info = self.provider_info(provider)
        purpose = self._check_purpose(info, purpose)
        call = _Call(self, info, self._resolve(info, settings), None)
        source = open_source(file, default_name="upload.jsonl")
        return self.check_file(source, call=call, purpose=purpose, max_problems=max_problems)

    def convert(
        self,
        file: FileArg,
        *,
        to: str,
        output: str | os.PathLike[str],
        overwrite: bool = False,
        max_problems: int = 50,
    ) -> ConvertResult:
        """Convert ``file`` record by record into ``output`` in the format ``to``, then check the result.

        ``to`` names a conversion a plugin provides (``gemini`` from llmfiles-vertex; ``claude``, ``nova`` and
        ``prompt-completion`` from llmfiles-bedrock).  The input is streamed; ``output`` appears only when every
        record converted and the result passed the target format's checks (it is written to a temporary file
        first, then renamed), so it is never half-written.  Offline: no credentials, no network.  Problems are in
        the returned :class:`~llmfiles.validate.convert.ConvertResult` (``result.ok``), not raised.
        """
        from llmfiles.validate.convert import convert_file

        converter = self._pm.get_converter(to)
        source = open_source(file, default_name="input.jsonl")
        return convert_file(source, output, converter, overwrite=overwrite, max_problems=max_problems)

    def converters(self) -> dict[str, str]:
        """The installed conversions: name -> description."""
        return {name: c.description for name, c in sorted(self._pm.converters().items())}

    def _send(self, prep: _Prepared, progress: ProgressCallback | None) -> FileObject:
        call = prep.call
        op = prep.operation()
        counter = _ProgressCounter(progress, "upload", prep.source.name, prep.source.size)
        built = call.build(op)
        counter.report(0)
        if isinstance(built, UploadPlan):
            from llmfiles.parts import run_plan

            def exchange(request: HttpRequest, **kw: Any) -> HttpResponse:
                return call.exchange(op, request, **kw)

            return run_plan(
                built,
                prep.source,
                exchange=exchange,
                part_size=built.part_size or call.settings["part_size"],
                max_concurrency=call.settings["max_concurrency"],
                provider=call.name,
                known_digests=prep.digests,
                report=counter.report,
                journal=self._journal(prep),
                whole_digests=bool(call.settings["checksum"]),
            )
        assert isinstance(built, HttpRequest)
        sent = [0]

        def on_chunk(chunk: bytes) -> None:
            sent[0] += len(chunk)
            counter.add(len(chunk))

        def on_restart() -> None:
            counter.add(-sent[0])
            sent[0] = 0

        response = call.exchange(op, built, on_chunk=on_chunk, on_restart=on_restart)
        return call.normalize(op, response)  # type: ignore[no-any-return]

    def upload(
        self,
        file: FileArg,
        *,
        purpose: str,
        provider: str | None = None,
        filename: str | None = None,
        progress: ProgressCallback | None = None,
        wait: bool = False,
        wait_timeout: float = 3600.0,
        **settings: Any,
    ) -> FileObject:
        """Upload ``file`` (a path, a ``pathlib.Path`` or a file opened with ``'rb'``) and return its FileObject.

        Everything is checked before the first byte is sent: the purpose, the settings, the file, the credentials
        and, for ``fine-tune`` and ``batch``, the JSONL content.  Files above ``multipart_threshold`` use the
        provider's large-file protocol; such an upload that is interrupted (Ctrl-C, the network, a provider that
        stays down) is continued where it stopped when the same upload runs again (``resume=False`` turns that off).
        ``if_exists="reuse"`` returns the file already uploaded with the same content and purpose (after checking
        that the provider still has it) instead of a second copy, ``"error"`` raises
        :class:`~llmfiles.errors.AlreadyUploaded`.  ``wait=True`` polls until the provider has processed the file.
        Every other keyword is a setting of the core or of the provider (for example ``api_key``, ``part_size``
        or OpenAI's ``expires_after``); an unknown one is refused.
        """
        prep = self._prepare(file, purpose=purpose, provider=provider, filename=filename, explicit=settings)
        result, _ = self._send_once(prep, progress)
        if wait:
            result = self._wait(prep.call, result, wait_timeout)
        return result

    def _wait(self, call: _Call, fo: FileObject, wait_timeout: float) -> FileObject:
        end = time.monotonic() + wait_timeout
        delay = 0.5
        while fo.status not in ("processed", "error"):
            if time.monotonic() + delay > end:
                raise ProviderError(
                    f"file {fo.id} is still {fo.status!r} after {wait_timeout:g}s; check again later with retrieve",
                    provider=call.name,
                )
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
            fo = self._retrieve(call, fo.id)
        if fo.status == "error":
            raise ProviderError(
                f"the provider could not process file {fo.id}: {fo.status_details or 'no details given'}",
                provider=call.name,
                code="processing_error",
            )
        return fo

    # -- dedupe and resume -----------------------------------------------------------------------------------

    def _state_db(self, *, create: bool = True) -> StateDB | None:
        """The state database in llmfiles' data folder (``None`` when ``create=False`` and there is none yet)."""
        from llmfiles.paths import default_home
        from llmfiles.state import StateDB, db_path

        # Client(home=...), else $LLMFILES_HOME of the process (as for the local store), else the platform's folder
        home = self._settings.get("home")
        path = db_path(Path(home).expanduser() if home else default_home())
        key = os.fspath(path)
        with self._locks:
            db = self._state_dbs.get(key)
            if db is None:
                if not create and not path.exists():
                    return None
                db = self._state_dbs[key] = StateDB(path)
            return db

    def _journal(self, prep: _Prepared) -> Journal | None:
        """Where the engine records a large upload, so that a later run can resume it (``None``: it cannot be)."""
        call = prep.call
        if not call.settings["resume"]:
            return None
        from llmfiles.state import FileIdentity, Journal, account_fingerprint

        identity = FileIdentity.of(prep.source, prep.sha256)
        if identity is None:
            return None  # a file object, not a path: nothing to find it again by
        db = self._state_db()
        assert db is not None
        return Journal(
            db,
            provider=call.name,
            account=account_fingerprint(call.info, call.settings),
            purpose=prep.purpose,
            filename=prep.source.name,
            identity=identity,
        )

    def _content_lock(self, prep: _Prepared) -> threading.Lock:
        """One lock per content, provider and purpose: two threads uploading the same file with if_exists='reuse'
        upload it once."""
        key = (prep.call.name, prep.purpose, prep.sha256 or "")
        with self._locks:
            return self._content_locks.setdefault(key, threading.Lock())

    def _send_once(self, prep: _Prepared, progress: ProgressCallback | None) -> tuple[FileObject, bool]:
        """Upload ``prep`` unless ``if_exists`` finds the same content at the provider; returns the file and whether
        it was there before."""
        mode = prep.call.settings["if_exists"]
        if mode == "new" or prep.sha256 is None:
            fo = self._send(prep, progress)
            self._remember(prep, fo)
            return fo, False
        with self._content_lock(prep):
            existing = self._existing(prep)
            if existing is not None:
                if mode == "error":
                    raise AlreadyUploaded(
                        f"{prep.source.display} is already at {prep.call.name} as {existing.id} (same SHA-256 and "
                        f"purpose {prep.purpose!r}, uploaded {_ago(existing.created_at)}); pass if_exists='reuse' "
                        "(CLI: --if-exists reuse) to use it, or if_exists='new' to upload another copy",
                        existing,
                    )
                log.info(
                    "%s is already at %s as %s: reusing it (if_exists=reuse)",
                    prep.source.display,
                    prep.call.name,
                    existing.id,
                )
                return existing, True
            fo = self._send(prep, progress)
            self._remember(prep, fo)
            return fo, False

    def _existing(self, prep: _Prepared) -> FileObject | None:
        """The newest file uploaded earlier with the same content, purpose and account that the provider still has."""
        import sqlite3

        from llmfiles.state import account_fingerprint

        assert prep.sha256 is not None
        call = prep.call
        account = account_fingerprint(call.info, call.settings)
        db = self._state_db(create=False)
        if db is None:
            return None
        try:
            candidates = db.find_uploads(prep.sha256, call.name, account, prep.purpose)
        except (sqlite3.Error, OSError) as exc:
            log.warning("llmfiles could not read its state database %s (%s); uploading", db.path, exc)
            return None
        for entry in candidates:
            try:
                fo = self._retrieve(call, entry.file_id)
            except FileNotFound:
                fo = None
            if fo is None or fo.status in ("error", "deleted"):
                log.info("%s (uploaded earlier with the same content) is gone; forgetting it", entry.file_id)
                try:
                    db.forget_upload(call.name, account, entry.file_id)
                except (sqlite3.Error, OSError):
                    pass
                continue
            return fo
        return None

    def _remember(self, prep: _Prepared, fo: FileObject) -> None:
        """Record the content of an uploaded file, for a later if_exists (best effort)."""
        if prep.sha256 is None:
            return
        import sqlite3

        from llmfiles.state import UploadedFile, account_fingerprint

        call = prep.call
        db = self._state_db()
        assert db is not None
        try:
            db.record_upload(
                UploadedFile(
                    sha256=prep.sha256,
                    provider=call.name,
                    account=account_fingerprint(call.info, call.settings),
                    purpose=prep.purpose,
                    file_id=fo.id,
                    filename=fo.filename,
                    bytes=fo.bytes,
                    created_at=time.time(),
                )
            )
        except (sqlite3.Error, OSError) as exc:
            log.warning("llmfiles could not record %s in its state database %s (%s)", fo.id, db.path, exc)

    def unfinished_uploads(self) -> list[dict[str, Any]]:
        """The large uploads recorded in ``$LLMFILES_HOME/state.db`` that did not finish (oldest first): what
        ``llmfiles uploads`` lists.  Run the same upload again to continue one; :meth:`abort_upload` ends one."""
        db = self._state_db(create=False)
        if db is None:
            return []
        return [saved.describe() for saved in db.sessions()]

    def abort_upload(self, upload_id: str, **settings: Any) -> dict[str, Any]:
        """End the unfinished upload ``upload_id`` (from :meth:`unfinished_uploads`): send the provider's abort
        request and forget it.  ``settings`` are those of the upload (endpoint, bucket ...) where the environment
        does not give them."""
        from llmfiles.parts import SESSION_ENDED
        from llmfiles.state import account_fingerprint

        db = self._state_db(create=False)
        saved = db.session(upload_id) if db is not None and upload_id else None
        if db is None or saved is None:
            raise InputError(f"no unfinished upload {upload_id!r}; `llmfiles uploads` lists them")
        if saved.running:
            raise InputError(f"upload {saved.id} of {saved.path} is running in another process now; stop it first")
        call = self._call(saved.provider, settings)
        if account_fingerprint(call.info, call.settings) != saved.account:
            raise InvalidSetting(
                f"upload {saved.id} was started with other {saved.provider} settings (endpoint, bucket, prefix ...) "
                "than these; pass the settings it was started with (-s NAME=VALUE, or the same environment)"
            )
        source = _RecordedSource(saved.path, saved.filename, saved.size)
        built = call.build(
            Operation(name="upload_parts", purpose=saved.purpose, source=source, filename=saved.filename)
        )
        assert isinstance(built, UploadPlan)
        result: dict[str, Any] = {"id": saved.id, "provider": saved.provider, "file": saved.path}
        if built.abort is None:
            result.update(aborted=False, note="the provider has no abort request; the session ends when it expires")
        else:
            op = Operation(name="upload_parts", purpose=saved.purpose, filename=saved.filename)
            try:
                call.exchange(op, built.abort(saved.state))
            except ProviderError as exc:
                if exc.status not in SESSION_ENDED:
                    raise
                result.update(aborted=True, note="the session had already ended at the provider")
            else:
                result.update(aborted=True, note="aborted at the provider")
        db.delete_session(saved.id)
        return result

    def upload_training_files(
        self,
        training: FileArg,
        validation: FileArg | None = None,
        *,
        purpose: str = "fine-tune",
        provider: str | None = None,
        keep_on_error: bool = False,
        progress: ProgressCallback | None = None,
        wait: bool = False,
        wait_timeout: float = 3600.0,
        **settings: Any,
    ) -> TrainingFiles:
        """Upload a training file and an optional validation file in one call.

        Both files pass every check before either is sent.  If the validation file fails to upload, the training
        file already uploaded is deleted again (unless ``keep_on_error=True``), so no orphan is left behind.
        """
        kw = dict(purpose=purpose, provider=provider, filename=None, explicit=settings)
        prep_t = self._prepare(training, **kw)  # type: ignore[arg-type]
        prep_v = self._prepare(validation, **kw) if validation is not None else None  # type: ignore[arg-type]
        trained, trained_existed = self._send_once(prep_t, progress)
        validated: FileObject | None = None
        if prep_v is not None:
            try:
                validated, _ = self._send_once(prep_v, progress)
            except BaseException as exc:
                if trained_existed:
                    exc.add_note(f"llmfiles: the training file {trained.id} was kept (it existed before: if_exists)")
                elif keep_on_error:
                    exc.add_note(f"llmfiles: the training file {trained.id} was kept (keep_on_error=True)")
                else:
                    try:
                        self._delete(prep_t.call, trained.id)
                        exc.add_note(
                            f"llmfiles: the training file {trained.id} was deleted again, so nothing is orphaned"
                        )
                    except LLMFilesError as del_exc:
                        exc.add_note(f"llmfiles: the training file {trained.id} could not be deleted: {del_exc}")
                raise
        if wait:
            trained = self._wait(prep_t.call, trained, wait_timeout)
            if validated is not None:
                validated = self._wait(prep_t.call, validated, wait_timeout)
        return TrainingFiles(training=trained, validation=validated)

    def describe_upload(
        self, file: FileArg, *, purpose: str, provider: str | None = None, filename: str | None = None, **settings: Any
    ) -> dict[str, Any]:
        """What :meth:`upload` would do, without sending anything or reading the file: the dry-run plan."""
        prep = self._prepare(
            file,
            purpose=purpose,
            provider=provider,
            filename=filename,
            explicit=settings,
            resolve_credentials=False,
            run_checks=False,
        )
        call = prep.call
        try:
            creds_text = self._credentials(call.info, call.settings).source
        except MissingCredentials as exc:
            creds_text = f"missing ({exc})"
        info = call.info
        checks = [f"purpose {prep.purpose!r} accepted by {info.name}", f"size {prep.source.size:,} bytes within limits"]
        if prep.purpose in info.jsonl_purposes and call.settings["validate"]:
            checks.append("UTF-8 JSONL, one JSON object per line")
            if self._pm.hook.llmfiles_record_checker(provider=info.name, purpose=prep.purpose, settings=call.settings):
                checks.append(f"{info.name} rules for {prep.purpose!r} records")
        plan: dict[str, Any] = {
            "provider": info.name,
            "file": prep.source.display,
            "filename": prep.source.name,
            "bytes": prep.source.size,
            "purpose": prep.purpose,
            "credentials": creds_text,
            "checks": checks,
        }
        try:
            built = call.build(prep.operation())
        except LLMFilesError as exc:
            built = None
            plan["destination"] = f"unknown ({exc})"
        if isinstance(built, UploadPlan):
            from llmfiles.parts import choose_part_size

            part = choose_part_size(
                prep.source.size,
                built,
                built.part_size or call.settings["part_size"],
                provider=info.name,
                path=prep.source.display,
            )
            count = -(-prep.source.size // part)
            plan.update(
                destination=built.destination,
                mode="parts",
                part_size=part,
                parts=count,
                parallel=1 if built.sequential else min(call.settings["max_concurrency"], count),
            )
        elif isinstance(built, HttpRequest):
            from llmfiles.transport import redact_url

            plan.update(destination=f"{built.method} {redact_url(built.url)}", mode="single request")
        return plan

    # -- other operations ------------------------------------------------------------------------------------

    def _retrieve(self, call: _Call, file_id: str) -> FileObject:
        op = Operation(name="retrieve", file_id=file_id)
        return call.normalize(op, call.exchange(op, call.request(op)))  # type: ignore[no-any-return]

    def _delete(self, call: _Call, file_id: str) -> bool:
        op = Operation(name="delete", file_id=file_id)
        call.normalize(op, call.exchange(op, call.request(op)))
        return True

    @staticmethod
    def _check_id(file_id: Any) -> str:
        if not isinstance(file_id, str) or not file_id.strip():
            raise InputError(f"file id must be a non-empty string, not {file_id!r}")
        return file_id

    def retrieve(self, file_id: str, *, provider: str | None = None, **settings: Any) -> FileObject:
        """The FileObject of ``file_id``; :class:`~llmfiles.errors.FileNotFound` if the provider has no such file."""
        return self._retrieve(self._call(provider, settings), self._check_id(file_id))

    def delete(self, file_id: str, *, provider: str | None = None, **settings: Any) -> bool:
        """Delete ``file_id`` at the provider; returns ``True``."""
        call = self._call(provider, settings)
        deleted = self._delete(call, self._check_id(file_id))
        self._forget(call, file_id)
        return deleted

    def _forget(self, call: _Call, file_id: str) -> None:
        """A deleted file is no candidate for if_exists='reuse' any more (best effort)."""
        import sqlite3

        from llmfiles.state import account_fingerprint

        db = self._state_db(create=False)
        if db is None:
            return
        try:
            db.forget_upload(call.name, account_fingerprint(call.info, call.settings), file_id)
        except (sqlite3.Error, OSError) as exc:
            log.debug("could not forget %s in the state database: %s", file_id, exc)

    def list_files(
        self, *, provider: str | None = None, purpose: str | None = None, page_size: int | None = None, **settings: Any
    ) -> Iterator[FileObject]:
        """Every file at the provider (optionally of one ``purpose``), fetching pages lazily as you iterate."""
        call = self._call(provider, settings)
        if purpose is not None:
            self._check_purpose(call.info, purpose)
        return self._iter_files(call, purpose, page_size)

    def _iter_files(self, call: _Call, purpose: str | None, page_size: int | None) -> Iterator[FileObject]:
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            op = Operation(name="list", purpose=purpose, cursor=cursor, limit=page_size)
            page: FilePage = call.normalize(op, call.exchange(op, call.request(op)))
            yield from page.files
            if page.next_cursor is None:
                return
            if page.next_cursor in seen:
                raise ProviderError(
                    f"the listing returned cursor {page.next_cursor!r} twice; stopping instead of looping",
                    provider=call.name,
                )
            seen.add(page.next_cursor)
            cursor = page.next_cursor

    def download(
        self,
        file_id: str,
        dest: str | os.PathLike[str],
        *,
        provider: str | None = None,
        overwrite: bool = False,
        progress: ProgressCallback | None = None,
        **settings: Any,
    ) -> Path:
        """Stream the content of ``file_id`` to ``dest`` (a file path, or a folder to keep the file's own name).

        The bytes go to a temporary file beside the target, renamed into place only when complete, so an
        interrupted download never leaves a half-written file under the target name.
        """
        call = self._call(provider, settings)
        file_id = self._check_id(file_id)
        target = Path(dest)
        if target.is_dir():
            from llmfiles.sources import _safe_name

            # the provider's name for the file: its last part only, without control characters
            fallback = _safe_name(file_id.replace("/", "_").replace("\\", "_"), "download")
            target = target / _safe_name(self._retrieve(call, file_id).filename, fallback)
        if target.exists() and not overwrite:
            raise InputError(f"{target} already exists; pass overwrite=True (CLI: --force) to replace it")
        if not target.parent.is_dir():
            raise InputError(f"{target.parent} is not a folder; create it first")
        op = Operation(name="download", file_id=file_id)
        request = call.request(op)
        counter = _ProgressCounter(progress, "download", target.name, None)
        import tempfile

        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
        try:
            with os.fdopen(fd, "w+b") as sink:
                call.exchange(op, request, sink=sink, on_sink_chunk=lambda b: counter.add(len(b)))
                sink.flush()
                os.fsync(sink.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    # -- async twins -----------------------------------------------------------------------------------------

    async def aupload(self, file: FileArg, **kwargs: Any) -> FileObject:
        """:meth:`upload` for asyncio callers (runs in an executor with the caller's contextvars)."""
        return await run_async(self.upload, file, **kwargs)

    async def aupload_training_files(
        self, training: FileArg, validation: FileArg | None = None, **kwargs: Any
    ) -> TrainingFiles:
        """:meth:`upload_training_files` for asyncio callers."""
        return await run_async(self.upload_training_files, training, validation, **kwargs)

    async def aretrieve(self, file_id: str, **kwargs: Any) -> FileObject:
        """:meth:`retrieve` for asyncio callers."""
        return await run_async(self.retrieve, file_id, **kwargs)

    async def adelete(self, file_id: str, **kwargs: Any) -> bool:
        """:meth:`delete` for asyncio callers."""
        return await run_async(self.delete, file_id, **kwargs)

    async def adownload(self, file_id: str, dest: str | os.PathLike[str], **kwargs: Any) -> Path:
        """:meth:`download` for asyncio callers."""
        return await run_async(self.download, file_id, dest, **kwargs)

    async def alist_files(self, **kwargs: Any) -> AsyncIterator[FileObject]:
        """:meth:`list_files` for asyncio callers: ``async for f in client.alist_files(): ...``."""
        iterator = await run_async(self.list_files, **kwargs)
        sentinel = object()
        while True:
            item = await run_async(next, iterator, sentinel)
            if item is sentinel:
                return
            yield item


def _sha256_of(source: Source) -> str:
    import hashlib

    h = hashlib.sha256()
    for block in source.read_range(0, source.size, 1024 * 1024):
        h.update(block)
    return h.hexdigest()


def _ago(ts: int) -> str:
    if not ts:
        return "earlier"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


class _RecordedSource(Source):
    """The file of a recorded upload, to build its plan's requests for an abort.  No request of an abort carries
    the file, but building a plan may peek at it (Azure looks for a BOM): it reads the file if it is still there,
    and nothing if it is gone."""

    def __init__(self, path: str, name: str, size: int) -> None:
        self.path = self.file = path
        self.name = name
        self.size = size
        self.display = path

    def read_range(self, offset: int, length: int, blocksize: int) -> Iterator[bytes]:
        from llmfiles.models import PathSource

        try:
            yield from PathSource(self.file, self.name, self.size).read_range(offset, length, blocksize)
        except OSError:
            return


async def run_async(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run the sync ``fn`` on the loop's executor in a copy of the caller's context; await its result if it is
    itself awaitable."""
    import asyncio  # here, not at the top: it costs a sync caller 30-60 ms of import
    import inspect

    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    result: Any = await loop.run_in_executor(None, functools.partial(ctx.run, fn, *args, **kwargs))
    if inspect.isawaitable(result):
        result = await result
    return result  # type: ignore[no-any-return]


# --- module-level functions ----------------------------------------------------------------------------------

_default: Client | None = None
_default_lock = threading.Lock()


def default_client() -> Client:
    """The client the module-level functions use (settings only from arguments, environment and secrets)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Client()
    return _default


def _reset_default_client() -> None:
    global _default
    with _default_lock:
        if _default is not None:
            _default.close()
        _default = None


def upload(file: FileArg, *, purpose: str, provider: str | None = None, **kwargs: Any) -> FileObject:
    """Upload ``file`` to ``provider``; see :meth:`Client.upload`."""
    return default_client().upload(file, purpose=purpose, provider=provider, **kwargs)


def upload_training_files(
    training: FileArg,
    validation: FileArg | None = None,
    *,
    purpose: str = "fine-tune",
    provider: str | None = None,
    **kwargs: Any,
) -> TrainingFiles:
    """Upload a training and an optional validation file together; see :meth:`Client.upload_training_files`."""
    return default_client().upload_training_files(training, validation, purpose=purpose, provider=provider, **kwargs)


def retrieve(file_id: str, *, provider: str | None = None, **settings: Any) -> FileObject:
    """See :meth:`Client.retrieve`."""
    return default_client().retrieve(file_id, provider=provider, **settings)


def list_files(*, provider: str | None = None, purpose: str | None = None, **settings: Any) -> Iterator[FileObject]:
    """See :meth:`Client.list_files`."""
    return default_client().list_files(provider=provider, purpose=purpose, **settings)


def delete(file_id: str, *, provider: str | None = None, **settings: Any) -> bool:
    """See :meth:`Client.delete`."""
    return default_client().delete(file_id, provider=provider, **settings)


def download(file_id: str, dest: str | os.PathLike[str], *, provider: str | None = None, **kwargs: Any) -> Path:
    """See :meth:`Client.download`."""
    return default_client().download(file_id, dest, provider=provider, **kwargs)


async def aupload(file: FileArg, *, purpose: str, provider: str | None = None, **kwargs: Any) -> FileObject:
    """See :meth:`Client.aupload`."""
    return await run_async(upload, file, purpose=purpose, provider=provider, **kwargs)


async def aupload_training_files(training: FileArg, validation: FileArg | None = None, **kwargs: Any) -> TrainingFiles:
    """See :meth:`Client.aupload_training_files`."""
    return await run_async(upload_training_files, training, validation, **kwargs)


async def aretrieve(file_id: str, **kwargs: Any) -> FileObject:
    """See :meth:`Client.aretrieve`."""
    return await run_async(retrieve, file_id, **kwargs)


async def adelete(file_id: str, **kwargs: Any) -> bool:
    """See :meth:`Client.adelete`."""
    return await run_async(delete, file_id, **kwargs)


async def adownload(file_id: str, dest: str | os.PathLike[str], **kwargs: Any) -> Path:
    """See :meth:`Client.adownload`."""
    return await run_async(download, file_id, dest, **kwargs)


def alist_files(**kwargs: Any) -> AsyncIterator[FileObject]:
    """See :meth:`Client.alist_files`."""
    return default_client().alist_files(**kwargs)
