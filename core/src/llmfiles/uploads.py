"""Uploads, from the caller's file to the provider's file object.

The order of an upload: the provider, then the purpose (before the file is even opened), the settings, the file and
its size against the provider's limits, the credentials; then, for a conversion, the converted file; then one read
of the file that checks, hashes and sends it (:mod:`llmfiles.pipeline`), through one request or the provider's
large-file protocol (:mod:`llmfiles.parts`), committed only once the checks passed and the file did not change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from attrs import define, field

from llmfiles.bookkeeping import Ledger
from llmfiles.calls import Call, Resolver, plugin_boundary, verify_stored
from llmfiles.conversions import cache_dir, converted_file
from llmfiles.errors import (
    AlreadyUploaded,
    FileTooLarge,
    InvalidPurpose,
    InvalidSetting,
    LLMFilesError,
    MissingCredentials,
    UploadFailed,
    ValidationError,
    advice,
)
from llmfiles.models import FileObject, Progress, ProviderInfo, TrainingFiles, Upload, UploadFacts, UploadParts
from llmfiles.pipeline import Counter, Inspection, Pipeline, make_checks, read_head, sha256_of
from llmfiles.plugins import PluginManager
from llmfiles.provider import Exchange, PartsUpload, UploadProtocol
from llmfiles.sources import Source, open_source

log = logging.getLogger("llmfiles")
ProgressCallback = Callable[[Progress], None]


@define
class Prepared:
    """An upload that passed every check that needs no read of the file."""

    call: Call
    source: Source
    purpose: str
    large: bool
    #: the file the caller named (a conversion uploads another one)
    display: str
    sha256: str | None = None
    #: a converted file made for this upload (removed once it is uploaded)
    converted: Path | None = None
    #: why the upload would be refused, for the dry run (which reports these instead of raising them)
    refusals: list[str] = field(factory=list)


def check_purpose(info: ProviderInfo, purpose: Any) -> str:
    """``purpose`` when ``info`` accepts it; :class:`InvalidPurpose` otherwise, saying what the provider offers
    instead when it declares that (``ProviderInfo.purpose_notes``)."""
    if not isinstance(purpose, str) or purpose not in info.purposes:
        note = info.purpose_notes.get(purpose) if isinstance(purpose, str) else None
        raise InvalidPurpose(info.name, str(purpose), info.purposes, context=f"({note})" if note else "")
    return purpose


class Uploader:
    """Prepares, checks and sends uploads for a client."""

    def __init__(self, resolver: Resolver, ledger: Ledger, plugins: PluginManager, home: Any = None) -> None:
        self.resolver = resolver
        self.ledger = ledger
        self.plugins = plugins
        self.home = home

    # -- preparing -----------------------------------------------------------------------------------------------

    def prepare(
        self,
        file: Any,
        *,
        purpose: Any,
        provider: str | None,
        filename: str | None,
        explicit: Mapping[str, Any],
        credentials: bool = True,
    ) -> Prepared:
        info = self.resolver.registered(provider).provider.info
        purpose = check_purpose(info, purpose)
        call = self.resolver.call(provider, explicit, credentials=False)
        is_jsonl = purpose in info.jsonl_purposes
        source = open_source(file, filename=filename, default_name="upload.jsonl" if is_jsonl else "upload")
        try:
            display = source.display
            converted = converted_file(self.plugins, call, source, purpose, lambda: cache_dir(self.home))
            if converted is not None:
                source.close()
                source = open_source(converted, filename=source.name)
            refusals: list[str] = []
            try:
                large = self._sizing(info, call, source, purpose)
            except (FileTooLarge, InvalidPurpose) as exc:
                if credentials:  # an upload: refused here; the dry run (no credentials asked) reports it
                    raise
                refusals.append(str(exc))
                large = info.supports_parts
            if credentials:
                call = self.resolver.authorize(call)
            sha256 = sha256_of(source) if call.settings["if_exists"] != "new" else None
        except BaseException:
            source.close()
            raise
        return Prepared(call, source, purpose, large, display, sha256, converted, refusals)

    @staticmethod
    def _sizing(info: ProviderInfo, call: Call, source: Source, purpose: str) -> bool:
        """Whether the file goes through the large-file protocol; :class:`FileTooLarge` when it cannot go at all."""
        size = source.size
        if info.max_file_size is not None and size > info.max_file_size:
            raise FileTooLarge(source.display, size, info.max_file_size, info.name)
        threshold = call.settings.get("multipart_threshold")
        if threshold is not None and info.max_single_request_size is not None:
            # a threshold above what one request may carry would only earn a refusal from the provider
            threshold = min(threshold, info.max_single_request_size)
        large = bool(info.supports_parts and threshold is not None and size > threshold)
        if not info.supports_parts and info.max_single_request_size is not None and size > info.max_single_request_size:
            raise FileTooLarge(source.display, size, info.max_single_request_size, info.name)
        if large and info.large_purposes is not None and purpose not in info.large_purposes:
            raise InvalidPurpose(
                info.name,
                purpose,
                info.large_purposes,
                context=f"for files above the multipart threshold ({threshold:,} bytes; this one has {size:,})",
            )
        return large

    # -- sending -----------------------------------------------------------------------------------------------

    def send(self, prep: Prepared, progress: ProgressCallback | None) -> FileObject:
        """Check, hash and send the prepared file; return the provider's file object."""
        call, source = prep.call, prep.source
        facts = UploadFacts(purpose=prep.purpose, filename=source.name, size=source.size, head=read_head(source))
        built = call.exchange(UploadParts(file=facts) if prep.large else Upload(file=facts))
        pipeline = self._pipeline(prep, built, progress, digests=True)
        try:
            if call.settings["check_first"]:
                pipeline.gate()
            pipeline.counter.report()
            if isinstance(built, UploadProtocol):
                fo = self._parts(prep, built, pipeline)
            else:
                assert isinstance(built, Exchange)
                fo = call.run(built, body=pipeline, digests=lambda: pipeline.gate().digests)
                if not isinstance(fo, FileObject):
                    raise LLMFilesError(f"provider {call.name!r} read the upload's answer as {type(fo).__name__}")
            inspected = pipeline.gate()
        except BaseException:
            pipeline.stop()
            raise
        self._verify(prep, fo, inspected.digests)
        return fo

    def _pipeline(self, prep: Prepared, built: Any, progress: ProgressCallback | None, *, digests: bool) -> Pipeline:
        call, source = prep.call, prep.source
        settings, info = call.settings, call.info
        checks = None
        if settings["validate"] and prep.purpose in info.jsonl_purposes:
            with plugin_boundary(call.plugin, "record_checker", call.secrets):
                checker = call.provider.record_checker(prep.purpose, settings)
            checks = make_checks(source, checker, worker=bool(settings["check_worker"]))
        names: set[str] = set()
        if settings["checksum"] and digests:
            if isinstance(built, UploadProtocol):
                names.update(built.digests)
                names.update(info.checksums if built.checksums is None else built.checksums)
            else:
                names.update(info.checksums)
        inspection = Inspection(
            source,
            checks=checks,
            utf8=checks is None and prep.purpose in info.utf8_purposes,
            digests=sorted(names),
        )
        counter = Counter(progress, source.name, source.size)
        return Pipeline(source, inspection, counter, gate_last=True)

    def _parts(self, prep: Prepared, protocol: UploadProtocol, pipeline: Pipeline) -> FileObject:
        from llmfiles.parts import Job, upload_parts

        call = prep.call
        settings = call.settings
        job = Job(
            protocol=protocol,
            pipeline=pipeline,
            run=call.run,
            provider=call.name,
            part_size=protocol.limits.preferred or settings["part_size"],
            max_concurrency=settings["max_concurrency"],
            journal=self.ledger.journal(call, prep.source, prep.purpose, prep.sha256),
            clock_sleep=call.clock.sleep,
            max_retry_wait=float(settings["max_retry_wait"]),
        )
        return upload_parts(job)

    def _verify(self, prep: Prepared, fo: FileObject, digests: Mapping[str, str]) -> None:
        """The provider's checksums of what it stored against the bytes sent; a mismatch is deleted again."""
        try:
            verify_stored(fo, digests, prep.display)
        except UploadFailed as exc:
            from llmfiles.operations import delete

            try:
                delete(prep.call, fo.id)
                exc.add_note(f"llmfiles: {fo.id} was deleted again; upload the file again")
            except LLMFilesError as del_exc:
                exc.add_note(f"llmfiles: {fo.id} could not be deleted ({del_exc}); delete it yourself")
            raise

    def send_once(self, prep: Prepared, progress: ProgressCallback | None) -> tuple[FileObject, bool]:
        """Upload ``prep`` unless ``if_exists`` finds the same content at the provider; returns the file and whether
        it was there before."""
        try:
            mode = prep.call.settings["if_exists"]
            if mode == "new" or prep.sha256 is None:
                fo = self.send(prep, progress)
                self._done(prep)
                return fo, False
            with self.ledger.holding(prep.call, prep.purpose, prep.sha256):
                existing = self._existing(prep)
                if existing is not None:
                    if mode == "error":
                        raise AlreadyUploaded(
                            f"{prep.display} is already at {prep.call.name} as {existing.id} (same SHA-256 and "
                            f"purpose {prep.purpose!r}, uploaded {_ago(existing.created_at)}); "
                            + advice(
                                "pass if_exists='reuse' to use it, or if_exists='new' to upload another copy",
                                "pass --if-exists reuse to use it, or --if-exists new to upload another copy",
                            ),
                            existing,
                        )
                    log.info("%s is already at %s as %s: reusing it", prep.display, prep.call.name, existing.id)
                    return existing, True
                fo = self.send(prep, progress)
                self.ledger.remember(prep.call, prep.purpose, prep.sha256, fo)
                self._done(prep)
                return fo, False
        finally:
            prep.source.close()

    def _existing(self, prep: Prepared) -> FileObject | None:
        from llmfiles.operations import retrieve

        assert prep.sha256 is not None
        return self.ledger.existing(prep.call, prep.purpose, prep.sha256, lambda file_id: retrieve(prep.call, file_id))

    @staticmethod
    def _done(prep: Prepared) -> None:
        if prep.converted is not None:
            prep.converted.unlink(missing_ok=True)

    # -- two files in one call -----------------------------------------------------------------------------------

    def training_files(
        self,
        preps: tuple[Prepared, Prepared | None],
        *,
        keep_on_error: bool,
        progress: ProgressCallback | None,
    ) -> TrainingFiles:
        """Upload a training file and an optional validation file; if the second fails, the first is deleted
        again (unless ``keep_on_error``, or it existed before)."""
        from llmfiles.operations import delete

        prep_t, prep_v = preps
        trained, existed = self.send_once(prep_t, progress)
        if prep_v is None:
            return TrainingFiles(training=trained)
        try:
            validated, _ = self.send_once(prep_v, progress)
        except BaseException as exc:
            if existed:
                exc.add_note(f"llmfiles: the training file {trained.id} was kept (it existed before: if_exists)")
            elif keep_on_error:
                exc.add_note(f"llmfiles: the training file {trained.id} was kept (keep_on_error=True)")
            else:
                try:
                    delete(prep_t.call, trained.id)
                    self.ledger.forget(prep_t.call, trained.id)
                    exc.add_note(f"llmfiles: the training file {trained.id} was deleted again, so nothing is orphaned")
                except LLMFilesError as del_exc:
                    exc.add_note(f"llmfiles: the training file {trained.id} could not be deleted: {del_exc}")
            raise
        return TrainingFiles(training=trained, validation=validated)

    # -- the dry run -------------------------------------------------------------------------------------------

    def dry_run(self, prep: Prepared, progress: ProgressCallback | None = None) -> dict[str, Any]:
        """What the upload would do, checking everything that needs no network: the purpose, the settings, the
        size, the credentials being there, the content.  ``plan["ok"]`` is false when the upload would be refused;
        ``plan["problems"]`` then says why.  ``progress`` is told how far the content checks got
        (``Progress(operation="check")``)."""
        from llmfiles.parts import choose_part_size

        call, source = prep.call, prep.source
        info = call.info
        plan: dict[str, Any] = {
            "provider": info.name,
            "file": prep.display,
            "filename": source.name,
            "bytes": source.size,
            "purpose": prep.purpose,
        }
        problems: list[str] = list(prep.refusals)
        try:
            # the exchange is built with the credentials the upload would use (a provider may sign with them)
            call = self.resolver.authorize(call, offline=True)
            plan["credentials"] = call.credentials.source
        except MissingCredentials as exc:
            plan["credentials"] = "missing"
            problems.append(str(exc))
        facts = UploadFacts(purpose=prep.purpose, filename=source.name, size=source.size, head=read_head(source))
        try:
            built = call.exchange(UploadParts(file=facts) if prep.large else Upload(file=facts))
        except LLMFilesError as exc:
            built = None
            # without credentials a provider may well fail for that reason (reported above); a setting it refuses
            # (no bucket, a bad endpoint) is refused with credentials too, so it is listed beside them
            if plan["credentials"] != "missing" or isinstance(exc, InvalidSetting):
                problems.append(str(exc))
        plan.update(_destination(built, source.size, call, choose_part_size))
        plan["checks"] = self._dry_checks(prep, built, problems, progress)
        plan["problems"] = problems
        plan["ok"] = not problems
        return plan

    def _dry_checks(
        self, prep: Prepared, built: Any, problems: list[str], progress: ProgressCallback | None
    ) -> list[str]:
        """Runs the content checks the upload would run, on the one read of the file; the checks done (with their
        verdicts), and the upload's own refusal added to ``problems`` when they fail."""
        call, info = prep.call, prep.call.info
        done = [f"purpose {prep.purpose!r} accepted by {info.name}"]
        if not prep.refusals:
            done.append(f"size {prep.source.size:,} bytes within limits")
        pipeline = self._pipeline(prep, built, None, digests=False)
        checks = pipeline.inspection.checks
        rules = None
        if checks is not None:
            has_rules = getattr(checks, "checker", None) is not None
            rules = (
                f"{info.name} rules for {prep.purpose!r} records"
                if has_rules
                else f"{info.name} has no record rules for {prep.purpose!r} files"
            )
        elif not call.settings["validate"]:
            done.append("content not checked (validate=False)")
        try:
            if progress is not None:
                _inspect_telling(pipeline, progress)
            inspected = pipeline.gate()
        except ValidationError as exc:
            problems.append(str(exc))
            what = "UTF-8 JSONL, one JSON object per line" + (f", {rules}" if rules else "")
            done.append(f"{what}: FAILED, {exc.total} problem(s) (listed under problems)")
            return done
        finally:
            pipeline.stop()
        report = inspected.report
        if report is not None:
            done.append(f"UTF-8 JSONL, one JSON object per line: {report.records:,} record(s)")
            if rules:
                done.append(rules)
            done.extend(f"warning: {p.describe()}" for p in report.problems)
        return done


#: how often the dry run's content checks tell their progress
CHECK_STEP = 16 * 1024 * 1024


def _inspect_telling(pipeline: Pipeline, progress: ProgressCallback) -> None:
    """Feeds the whole file to ``pipeline``'s checks a step at a time, telling ``progress`` after each; what goes
    wrong is left for :meth:`Pipeline.gate`, which reads on from where this stopped and raises it."""
    source = pipeline.source
    try:
        for end in [*range(CHECK_STEP, source.size, CHECK_STEP), source.size]:
            pipeline.inspect_until(end)
            progress(Progress(operation="check", filename=source.name, done=end, total=source.size))
    except LLMFilesError:
        return


def _destination(built: Any, size: int, call: Call, choose: Callable[..., int]) -> dict[str, Any]:
    from llmfiles.redact import redact_url

    if isinstance(built, UploadProtocol):
        part = choose(
            size, built.limits, built.limits.preferred or call.settings["part_size"], provider=call.name, path="-"
        )
        count = -(-size // part)
        parallel = isinstance(built, PartsUpload) and built.parallel
        return {
            "destination": built.destination,
            "mode": "parts",
            "part_size": part,
            "parts": count,
            "parallel": min(call.settings["max_concurrency"], count) if parallel else 1,
        }
    if isinstance(built, Exchange):
        return {"destination": f"{built.request.method} {redact_url(built.request.url)}", "mode": "single request"}
    return {"destination": "unknown"}


def _ago(ts: int) -> str:
    if not ts:
        return "earlier"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))
