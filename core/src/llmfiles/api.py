"""The public operations: :class:`Client`, the module-level functions that use a default client, and the async twins.

The work is done elsewhere: per-call resolution in :mod:`llmfiles.calls`, uploads in :mod:`llmfiles.uploads`,
the other operations in :mod:`llmfiles.operations`, bookkeeping in :mod:`llmfiles.bookkeeping`.
"""

from __future__ import annotations

import contextvars
import functools
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from llmfiles.models import FileLimits, FileObject, Progress, ProviderInfo, TrainingFiles

if TYPE_CHECKING:
    from llmfiles.clock import Clock
    from llmfiles.fanout import FanOut
    from llmfiles.models import Settings
    from llmfiles.plugins import PluginManager
    from llmfiles.shards import SplitUpload
    from llmfiles.splitting import SplitResult
    from llmfiles.transport import RetryNotice
    from llmfiles.validate.convert import ConvertResult
    from llmfiles.validate.jsonl import Report

T = TypeVar("T")
ProgressCallback = Callable[[Progress], None]
FileArg = Any  # str | os.PathLike[str] | BinaryIO


class Client:
    """Holds settings and a connection pool, and performs every operation.

    ``Client(**settings)`` settings sit between a call's explicit arguments and the environment in the settings
    chain; ``provider`` is the default provider of its calls (else ``$LLMFILES_PROVIDER``, else the config
    profile's, else ``local``); ``profile`` picks the config file's profile (else ``$LLMFILES_PROFILE``, else
    ``default``).  The provider, the profile and the settings are checked when the client is made: a provider that
    is not installed, a name that is no setting of the core or of any installed provider, or a value of the wrong
    kind is refused at once.  ``on_retry`` is told about every retry (the command line prints them); ``clock``
    replaces the real clock (for tests).  Use it as ``with Client(...) as client`` or ``async with``; it is safe to
    share between threads and asyncio tasks.
    """

    def __init__(
        self,
        provider: str | None = None,
        *,
        plugin_manager: PluginManager | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        on_retry: Callable[[RetryNotice], None] | None = None,
        profile: str | None = None,
        **settings: Any,
    ) -> None:
        from llmfiles.bookkeeping import Ledger
        from llmfiles.calls import Resolver
        from llmfiles.clock import SYSTEM_CLOCK
        from llmfiles.config import ConfigFile
        from llmfiles.plugins import get_plugin_manager
        from llmfiles.settings import check_client_settings
        from llmfiles.transport import Transport
        from llmfiles.uploads import Uploader

        if profile is not None and (not isinstance(profile, str) or not profile.strip()):
            raise TypeError(f"profile must be the name of a profile of the config file (a str), not {profile!r}")
        self._provider = provider
        # values of settings that look like credentials are kept as Secrets, so vars(client) never shows them
        self._settings = {k: _guarded(k, v) for k, v in settings.items()}
        self._environ = environ
        self._pm = plugin_manager or get_plugin_manager()
        self._clock = clock or SYSTEM_CLOCK
        self._config = ConfigFile(profile, self._env)
        # checked now, not at the first call: the provider is installed, the profile exists, the settings are settings
        if provider is not None:
            if not isinstance(provider, str):
                raise TypeError(f"provider must be a provider's name (a str), not {type(provider).__name__}")
            if provider:
                self._pm.get(provider)
        if profile is not None:
            self._config.profile()
        check_client_settings(self._settings, self._installed)
        self._transport = Transport(maxsize=max(32, _int(settings.get("max_concurrency"), 4)), clock=self._clock)
        self._ledger = Ledger(settings.get("home"))
        self._resolver = Resolver(
            plugins=self._pm,
            transport=self._transport,
            client_settings=self._settings,
            environ=self._env,
            default_provider=provider,
            clock=self._clock,
            on_retry=on_retry,
            config=self._config,
        )
        self._uploader = Uploader(self._resolver, self._ledger, self._pm, settings.get("home"))

    def _installed(self) -> list[ProviderInfo]:
        return [r.provider.info for r in self._pm.providers().values()]

    def __repr__(self) -> str:
        return f"Client(provider={self._provider!r}, settings={sorted(self._settings)!r})"

    def close(self) -> None:
        """Close pooled connections (and the state database)."""
        self._transport.close()
        self._ledger.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def _env(self) -> Mapping[str, str]:
        from llmfiles.environ import process_environ

        return process_environ() if self._environ is None else self._environ

    def provider_info(self, provider: str | None = None) -> ProviderInfo:
        """The :class:`~llmfiles.models.ProviderInfo` of ``provider`` (or the default provider)."""
        return self._resolver.registered(provider).provider.info

    # -- uploads ---------------------------------------------------------------------------------------------

    @overload
    def upload(
        self,
        file: FileArg,
        *,
        purpose: str,
        provider: str | None = None,
        split: Literal[False] = False,
        **settings: Any,
    ) -> FileObject: ...

    @overload
    def upload(
        self,
        file: FileArg,
        *,
        purpose: str,
        provider: str | None = None,
        split: Literal[True] | FileLimits,
        **settings: Any,
    ) -> SplitUpload: ...

    @overload
    def upload(
        self,
        file: FileArg,
        *,
        purpose: str,
        provider: list[str] | tuple[str, ...],
        split: bool | FileLimits = False,
        **settings: Any,
    ) -> FanOut: ...

    def upload(
        self,
        file: FileArg,
        *,
        purpose: str,
        provider: str | list[str] | tuple[str, ...] | None = None,
        filename: str | None = None,
        progress: ProgressCallback | None = None,
        wait: bool = False,
        wait_timeout: float = 3600.0,
        split: bool | FileLimits = False,
        provider_settings: Mapping[str, Mapping[str, Any]] | None = None,
        **settings: Any,
    ) -> FileObject | SplitUpload | FanOut:
        """Upload ``file`` (a path, a ``pathlib.Path`` or a file opened with ``'rb'``) and return its FileObject.

        The purpose, the settings, the file, its size and the credentials are checked before the first byte is sent.
        The file is then read once: for ``fine-tune`` and ``batch`` its content is checked while it is sent, and the
        upload is committed only when the checks passed and the file did not change meanwhile (``check_first=True``
        checks it all before the first byte).  Files above ``multipart_threshold`` use the provider's large-file
        protocol; such an upload that is interrupted (Ctrl-C, the network, a provider that stays down) continues
        where it stopped when the same upload runs again (``resume=False`` turns that off).  ``if_exists="reuse"``
        returns the file already uploaded with the same content and purpose instead of a second copy, ``"error"``
        raises :class:`~llmfiles.errors.AlreadyUploaded`.  ``wait=True`` polls until the provider has processed
        the file.  Every other keyword is a setting of the core or of the provider (for example ``api_key``,
        ``part_size`` or OpenAI's ``expires_after``); an unknown one is refused.

        ``split=True`` cuts the file (after any ``convert``) into shards that fit the provider's documented limits
        (``split=FileLimits(...)``: these numbers instead) and uploads them all, in parallel, returning a
        :class:`~llmfiles.shards.SplitUpload`; see :meth:`split`.  ``provider=["openai", "vertex_ai"]`` uploads to
        each provider in parallel and returns a :class:`~llmfiles.fanout.FanOut` with one result per provider, in
        order (a failure is that provider's result, never raised); ``provider_settings={"vertex_ai": {...}}`` gives
        one provider's own settings, the other keywords go to every provider that knows them.
        """
        from llmfiles.fanout import provider_names

        names = provider_names(provider)
        if names is not None:
            return self._upload_many(
                file,
                purpose=purpose,
                names=names,
                progress=progress,
                provider_settings=provider_settings or {},
                explicit={"filename": filename, "wait": wait, "wait_timeout": wait_timeout, "split": split, **settings},
            )
        if provider_settings:
            raise TypeError("provider_settings is for an upload to several providers (provider=[...])")
        assert not isinstance(provider, (list, tuple))
        if split is not False:
            calls = {"wait": wait, "wait_timeout": wait_timeout}
            return self._upload_split(
                file,
                purpose=purpose,
                provider=provider,
                filename=filename,
                progress=progress,
                split=split,
                settings={**settings, **calls},
            )
        prep = self._uploader.prepare(file, purpose=purpose, provider=provider, filename=filename, explicit=settings)
        result, _ = self._uploader.send_once(prep, progress)
        if wait:
            from llmfiles.operations import wait_processed

            result = wait_processed(prep.call, result, wait_timeout)
        return result

    def _upload_split(
        self,
        file: FileArg,
        *,
        purpose: str,
        provider: str | None,
        filename: str | None,
        progress: ProgressCallback | None,
        split: bool | FileLimits,
        settings: dict[str, Any],
    ) -> SplitUpload:
        from llmfiles import shards
        from llmfiles.conversions import cache_dir, converted_file
        from llmfiles.paths import private_dir
        from llmfiles.sources import open_source
        from llmfiles.splitting import provider_limits
        from llmfiles.uploads import check_purpose

        info = self._resolver.registered(provider).provider.info
        purpose = check_purpose(info, purpose)
        path = shards.source_path(file, "upload --split")
        call = self._resolver.call(
            provider, {k: v for k, v in settings.items() if k not in ("wait", "wait_timeout")}, credentials=False
        )
        folder = cache_dir(self._uploader.home)
        source = open_source(path, filename=filename, default_name="upload.jsonl")
        try:
            name = source.name
            converted = converted_file(self._pm, call, source, purpose, lambda: folder)
        finally:
            source.close()
        limits = shards.limits_for(provider_limits(info, purpose), split)
        sent = converted or path
        where = shards.shard_folder(private_dir(folder.parent / "split"), sent, limits, name)
        cut = shards.cut(sent, where, limits, name)
        each = functools.partial(self.upload, purpose=purpose, provider=info.name)
        rest = {**settings, "convert": False}
        rest.setdefault("if_exists", "reuse")
        files = shards.upload_shards(
            each, cut, display=str(path), progress=progress, concurrency=shards.SHARD_CONCURRENCY, settings=rest
        )
        shards.remove_folder(where)
        return shards.SplitUpload(
            provider=info.name, purpose=purpose, source=str(path), limits=limits, shards=cut, files=files
        )

    def _upload_many(
        self,
        file: FileArg,
        *,
        purpose: str,
        names: list[str],
        progress: ProgressCallback | None,
        provider_settings: Mapping[str, Mapping[str, Any]],
        explicit: dict[str, Any],
    ) -> FanOut:
        from llmfiles import fanout
        from llmfiles.settings import CORE_NAMES
        from llmfiles.shards import source_path
        from llmfiles.uploads import check_purpose

        source_path(file, "an upload to several providers")
        infos = {name: self._resolver.registered(name).provider.info for name in names}
        for info in infos.values():
            check_purpose(info, purpose)
        calls = {"filename", "wait", "wait_timeout", "split"}
        per = fanout.plan_settings(infos, set(CORE_NAMES) | calls, explicit, provider_settings)
        for name in names:  # every provider's settings resolve (types, values) before anything is sent
            self._resolver.call(name, {k: v for k, v in per[name].items() if k not in calls}, credentials=False)
        each = functools.partial(self.upload, file, purpose=purpose)
        return fanout.run(each, names, per, progress)

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

        Both files pass every check that needs no read before either is sent.  If the validation file fails to
        upload, the training file already uploaded is deleted again (unless ``keep_on_error=True``), so no orphan is
        left behind.
        """
        up = self._uploader
        prep_t = up.prepare(training, purpose=purpose, provider=provider, filename=None, explicit=settings)
        try:
            prep_v = None
            if validation is not None:
                prep_v = up.prepare(validation, purpose=purpose, provider=provider, filename=None, explicit=settings)
        except BaseException:
            prep_t.source.close()
            raise
        files = up.training_files((prep_t, prep_v), keep_on_error=keep_on_error, progress=progress)
        if wait:
            from attrs import evolve

            from llmfiles.operations import wait_processed

            files = evolve(files, training=wait_processed(prep_t.call, files.training, wait_timeout))
            if files.validation is not None:
                files = evolve(files, validation=wait_processed(prep_t.call, files.validation, wait_timeout))
        return files

    def describe_upload(
        self,
        file: FileArg,
        *,
        purpose: str,
        provider: str | None = None,
        filename: str | None = None,
        progress: ProgressCallback | None = None,
        **settings: Any,
    ) -> dict[str, Any]:
        """The dry run: what :meth:`upload` would do, sending nothing.  Every offline check runs (purpose, settings,
        size, credentials being there, the content); ``plan["ok"]`` is false, and ``plan["problems"]`` says why,
        when the upload would be refused.  ``progress`` is told how far the content checks got
        (``Progress(operation="check")``)."""
        prep = self._uploader.prepare(
            file, purpose=purpose, provider=provider, filename=filename, explicit=settings, credentials=False
        )
        try:
            return self._uploader.dry_run(prep, progress)
        finally:
            prep.source.close()

    def unfinished_uploads(self) -> list[dict[str, Any]]:
        """The large uploads recorded in ``$LLMFILES_HOME/state.db`` that did not finish (oldest first): what
        ``llmfiles uploads`` lists.  Run the same upload again to continue one; :meth:`abort_upload` ends one."""
        from llmfiles.sessions import unfinished

        return unfinished(self._ledger)

    def abort_upload(self, upload_id: str, **settings: Any) -> dict[str, Any]:
        """End the unfinished upload ``upload_id`` (from :meth:`unfinished_uploads`): send the provider's abort
        request and forget it.  ``settings`` are those of the upload (endpoint, bucket ...) where the environment
        does not give them."""
        from llmfiles.sessions import abort

        return abort(self._ledger, self._resolver, upload_id, settings)

    # -- checks and conversions --------------------------------------------------------------------------------

    def validate(
        self,
        file: FileArg,
        *,
        purpose: str = "fine-tune",
        provider: str | None = None,
        max_problems: int = 50,
        progress: ProgressCallback | None = None,
        **settings: Any,
    ) -> Report:
        """Check ``file`` as :meth:`upload` would, offline, and return the full report.

        Needs no credentials and no network.  ``report.ok`` is false when there is any error; every problem has a
        line number, a code and a message saying how to fix it.
        """
        from llmfiles.checking import validate

        return validate(
            self._resolver,
            file,
            purpose=purpose,
            provider=provider,
            max_problems=max_problems,
            progress=progress,
            explicit=settings,
        )

    def convert(
        self,
        file: FileArg,
        *,
        to: str,
        output: str | os.PathLike[str],
        overwrite: bool = False,
        max_problems: int = 50,
        **settings: Any,
    ) -> ConvertResult:
        """Convert ``file`` record by record into ``output`` in the format ``to``, then check the result.

        ``to`` names a conversion a plugin provides (``llmfiles convert --list``, :meth:`converters`): ``gemini``
        from llmfiles-vertex; ``claude``, ``nova`` and ``prompt-completion`` from llmfiles-bedrock; OpenAI batch
        files to ``vertex-batch``, ``gemini-batch``, ``bedrock-batch``, ``mistral-batch``, and their results back
        with ``openai-from-vertex`` and the like.  ``settings`` are the target provider's (``model=...`` for
        ``bedrock-batch``), resolved as an upload resolves them (arguments, then ``Client`` settings, the config
        file, the environment).  The input is streamed; ``output`` appears only when every record converted and the
        result passed the target format's checks (it is written to a temporary file first, then renamed), so it is
        never half-written.  Offline: no credentials, no network.  Problems are in the returned
        :class:`~llmfiles.validate.convert.ConvertResult` (``result.ok``), not raised; a missing or wrong setting is
        an :class:`~llmfiles.errors.InvalidSetting`.
        """
        from llmfiles.sources import open_source
        from llmfiles.validate.convert import convert_file

        converter = self._pm.get_converter(to)
        resolved = self._conversion_settings(converter.provider, settings)
        source = open_source(file, default_name="input.jsonl")
        try:
            return convert_file(
                source, output, converter, settings=resolved, overwrite=overwrite, max_problems=max_problems
            )
        finally:
            source.close()

    def _conversion_settings(self, provider: str, explicit: Mapping[str, Any]) -> Settings:
        """The settings a conversion gets: its provider's, resolved (offline: no credentials), when that provider
        is installed; else the explicit ones as they are."""
        from llmfiles.models import Settings

        if provider and provider in self._pm.providers():
            return self._resolver.call(provider, explicit, credentials=False).settings
        return Settings(provider=provider, values=dict(explicit), sources={k: f"argument {k}" for k in explicit})

    @overload
    def converters(self, *, details: Literal[False] = False) -> dict[str, str]: ...
    @overload
    def converters(self, *, details: Literal[True]) -> dict[str, dict[str, Any]]: ...
    def converters(self, *, details: bool = False) -> dict[str, str] | dict[str, dict[str, Any]]:
        """The installed conversions: name -> description; with ``details``, name -> what it reads and makes, the
        purposes it converts while uploading, the package it comes with and the settings it reads."""
        found = sorted(self._pm.converters().items())
        if not details:
            return {name: c.description for name, c in found}
        return {
            name: {
                "description": c.description,
                "reads": c.reads,
                "purposes": list(c.purposes),
                "package": c.package,
                "provider": c.provider,
                "settings": list(c.settings),
            }
            for name, c in found
        }

    def split(
        self,
        file: str | os.PathLike[str],
        *,
        output_dir: str | os.PathLike[str],
        purpose: str = "batch",
        provider: str | None = None,
        force: bool = False,
        max_bytes: int | str | None = None,
        max_records: int | None = None,
        min_records: int | None = None,
    ) -> SplitResult:
        """Cut ``file`` into shards in ``output_dir`` that each fit the provider's documented limits for ``purpose``
        (:attr:`ProviderInfo.file_limits <llmfiles.models.ProviderInfo.file_limits>`; ``max_bytes``, ``max_records``
        and ``min_records`` replace those numbers).

        Lines are never cut and the shards, put back together in order, are the file byte for byte; they are named
        so that they sort in order (``data.001-of-003.jsonl``).  Two reads of the file, constant memory; the shards
        are written under temporary names and renamed only when all are complete, so an error leaves nothing
        half-written, and existing files are not replaced unless ``force``.  A file that already fits gives one
        shard.  Offline: no credentials, no network.  :class:`~llmfiles.errors.CannotSplit` for a line longer than
        the byte limit or fewer records than a job's minimum.
        """
        from llmfiles.settings import parse_size
        from llmfiles.splitting import SplitResult, effective_limits, provider_limits, split_file
        from llmfiles.uploads import check_purpose

        info = self._resolver.registered(provider).provider.info
        purpose = check_purpose(info, purpose)
        limits = effective_limits(
            provider_limits(info, purpose),
            max_bytes=None if max_bytes is None else parse_size(max_bytes, name="max_bytes"),
            max_records=max_records,
            min_records=min_records,
        )
        shards = split_file(file, output_dir, limits, force=force)
        return SplitResult(source=os.fspath(file), limits=limits, shards=shards)

    # -- other operations ------------------------------------------------------------------------------------

    def retrieve(self, file_id: str, *, provider: str | None = None, **settings: Any) -> FileObject:
        """The FileObject of ``file_id``; :class:`~llmfiles.errors.FileNotFound` if the provider has no such file."""
        from llmfiles.operations import retrieve

        return retrieve(self._resolver.call(provider, settings), file_id)

    def delete(self, file_id: str, *, provider: str | None = None, **settings: Any) -> bool:
        """Delete ``file_id`` at the provider; returns ``True``."""
        from llmfiles.operations import delete

        call = self._resolver.call(provider, settings)
        deleted = delete(call, file_id)
        self._ledger.forget(call, file_id)
        return deleted

    def list_files(
        self, *, provider: str | None = None, purpose: str | None = None, page_size: int | None = None, **settings: Any
    ) -> Iterator[FileObject]:
        """Every file at the provider (optionally of one ``purpose``), fetching pages lazily as you iterate."""
        from llmfiles.operations import iter_files
        from llmfiles.uploads import check_purpose

        call = self._resolver.call(provider, settings)
        if purpose is not None:
            check_purpose(call.info, purpose)
        return iter_files(call, purpose, page_size)

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
        from llmfiles.operations import download

        call = self._resolver.call(provider, settings)
        return download(call, file_id, dest, overwrite=overwrite, progress=progress)

    # -- async twins -----------------------------------------------------------------------------------------

    @overload
    async def aupload(
        self, file: FileArg, *, purpose: str, provider: str | None = None, split: Literal[False] = False, **kwargs: Any
    ) -> FileObject: ...

    @overload
    async def aupload(
        self,
        file: FileArg,
        *,
        purpose: str,
        provider: str | None = None,
        split: Literal[True] | FileLimits,
        **kwargs: Any,
    ) -> SplitUpload: ...

    @overload
    async def aupload(
        self,
        file: FileArg,
        *,
        purpose: str,
        provider: list[str] | tuple[str, ...],
        split: bool | FileLimits = False,
        **kwargs: Any,
    ) -> FanOut: ...

    async def aupload(self, file: FileArg, **kwargs: Any) -> FileObject | SplitUpload | FanOut:
        """:meth:`upload` for asyncio callers (runs in an executor with the caller's contextvars): a FileObject, or
        with ``split`` a SplitUpload, or to several providers a FanOut."""
        result: FileObject | SplitUpload | FanOut = await run_async(self.upload, file, **kwargs)
        return result

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


_SECRET_NAMES = ("key", "secret", "token", "password", "credential")


def _guarded(name: str, value: Any) -> Any:
    from llmfiles.models import Secret

    if isinstance(value, str) and value and any(w in name.lower() for w in _SECRET_NAMES):
        return Secret(value)
    return value


def _int(value: Any, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


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


@overload
def upload(
    file: FileArg, *, purpose: str, provider: str | None = None, split: Literal[False] = False, **kwargs: Any
) -> FileObject: ...


@overload
def upload(
    file: FileArg, *, purpose: str, provider: str | None = None, split: Literal[True] | FileLimits, **kwargs: Any
) -> SplitUpload: ...


@overload
def upload(
    file: FileArg,
    *,
    purpose: str,
    provider: list[str] | tuple[str, ...],
    split: bool | FileLimits = False,
    **kwargs: Any,
) -> FanOut: ...


def upload(
    file: FileArg, *, purpose: str, provider: Any = None, split: bool | FileLimits = False, **kwargs: Any
) -> FileObject | SplitUpload | FanOut:
    """Upload ``file`` to ``provider`` (or to each of several: ``provider=[...]``); see :meth:`Client.upload`."""
    return default_client().upload(file, purpose=purpose, provider=provider, split=split, **kwargs)


def split(file: str | os.PathLike[str], *, output_dir: str | os.PathLike[str], **kwargs: Any) -> SplitResult:
    """Cut ``file`` into shards that fit a provider's limits; see :meth:`Client.split`."""
    return default_client().split(file, output_dir=output_dir, **kwargs)


def convert(file: FileArg, *, to: str, output: str | os.PathLike[str], **kwargs: Any) -> ConvertResult:
    """Convert ``file`` into ``output`` in the format ``to`` (with the target's settings); see
    :meth:`Client.convert`."""
    return default_client().convert(file, to=to, output=output, **kwargs)


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


@overload
async def aupload(
    file: FileArg, *, purpose: str, provider: str | None = None, split: Literal[False] = False, **kwargs: Any
) -> FileObject: ...


@overload
async def aupload(
    file: FileArg, *, purpose: str, provider: str | None = None, split: Literal[True] | FileLimits, **kwargs: Any
) -> SplitUpload: ...


@overload
async def aupload(
    file: FileArg,
    *,
    purpose: str,
    provider: list[str] | tuple[str, ...],
    split: bool | FileLimits = False,
    **kwargs: Any,
) -> FanOut: ...


async def aupload(
    file: FileArg, *, purpose: str, provider: Any = None, **kwargs: Any
) -> FileObject | SplitUpload | FanOut:
    """See :meth:`Client.aupload`."""
    result: FileObject | SplitUpload | FanOut = await run_async(
        upload, file, purpose=purpose, provider=provider, **kwargs
    )
    return result


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
