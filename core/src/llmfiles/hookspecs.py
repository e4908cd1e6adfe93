"""Every hook a llmfiles plugin can implement.

Hooks take data and return data.  A plugin describes its provider, builds :class:`~llmfiles.models.HttpRequest`
objects and reads :class:`~llmfiles.models.HttpResponse` objects; the core's transport is the only place that
sends them.  A hook implementation answers ``None`` for a provider that is not its own, so several plugins can
be installed side by side.

Implement a hook with the :data:`llmfiles.hookimpl` marker on a function of the same name in the module your
entry point (group ``llmfiles``) names::

    from llmfiles import hookimpl

    @hookimpl
    def llmfiles_register_providers(register):
        register(ProviderInfo(name="acme", package="llmfiles-acme", purposes=("fine-tune",)))

In-house plugins can wrap another plugin's hooks without forking it: ``@hookimpl(tryfirst=True)`` on
``llmfiles_resolve_credentials`` to read keys from a vault, or ``@hookimpl(wrapper=True)`` on
``llmfiles_build_request`` to add a proxy header to every request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from llmfiles.models import (
        Credentials,
        FileObject,
        FilePage,
        HttpRequest,
        HttpResponse,
        Operation,
        ProviderInfo,
        Settings,
        UploadPlan,
    )
    from llmfiles.validate.convert import Converter
    from llmfiles.validate.records import RecordChecker

hookspec = pluggy.HookspecMarker("llmfiles")


@hookspec
def llmfiles_register_providers(register: Callable[[ProviderInfo], None]) -> None:
    """Declare the providers this plugin implements.

    Call ``register(ProviderInfo(...))`` once per provider.  The :class:`~llmfiles.models.ProviderInfo` names the
    provider (and any aliases), the distribution to ``pip install`` for it, the purposes it accepts, its settings
    with their environment variables, its size limits and whether it has a large-file protocol.  Two plugins that
    register the same name (or alias) are rejected with :class:`~llmfiles.errors.PluginError`.
    """


@hookspec(firstresult=True)
def llmfiles_resolve_credentials(provider: str, settings: Settings, environ: Mapping[str, str]) -> Credentials | None:
    """Turn resolved settings into :class:`~llmfiles.models.Credentials` for ``provider``.

    ``settings`` already went through the chain explicit argument > ``Client`` settings > environment >
    ``llmfiles_get_secret``; ``environ`` is the environment of this call.  Return ``None`` when the provider is
    not yours.  Raise :class:`~llmfiles.errors.MissingCredentials` (naming every place you looked, never a value)
    when none can be found.  Credential libraries (azure-identity, google-auth, botocore) may fetch tokens here.
    The first non-``None`` answer wins; an in-house plugin can answer first with ``@hookimpl(tryfirst=True)``.
    """


@hookspec(firstresult=True)
def llmfiles_get_secret(name: str, provider: str) -> str | None:
    """Look up a secret by ``name`` (for example ``OPENAI_API_KEY``) in a secret manager.

    The last link of the settings chain: asked only for secret settings that no argument, ``Client`` setting or
    environment variable supplied.  Return ``None`` when you do not have it.
    """


@hookspec(firstresult=True)
def llmfiles_build_request(
    provider: str, operation: Operation, credentials: Credentials, settings: Settings
) -> HttpRequest | UploadPlan | None:
    """Build what the core should send for ``operation``.

    Return an :class:`~llmfiles.models.HttpRequest` for one-shot operations (``upload`` of a file below the
    multipart threshold, ``retrieve``, ``list``, ``delete``, ``download``), or an
    :class:`~llmfiles.models.UploadPlan` for ``upload_parts``.  Return ``None`` when the provider is not yours.
    A ``@hookimpl(wrapper=True)`` implementation can change every request of every provider.
    """


@hookspec(firstresult=True)
def llmfiles_normalize_response(
    provider: str, operation: Operation, response: HttpResponse
) -> FileObject | FilePage | Exception | bool | None:
    """Turn the provider's response to ``operation`` into llmfiles' data.

    ``upload``/``retrieve`` -> :class:`~llmfiles.models.FileObject`; ``list`` -> :class:`~llmfiles.models.FilePage`;
    ``delete`` and ``download`` -> ``True``.  For a response with an error status return the exception to raise
    (usually a :class:`~llmfiles.errors.ProviderError` with the provider's code, message and request id); the core
    raises a generic one when you return ``None`` for it.
    """


@hookspec(firstresult=True)
def llmfiles_record_checker(provider: str, purpose: str, settings: Mapping[str, Any]) -> RecordChecker | None:
    """Return a checker for the JSONL records of files with ``purpose`` for ``provider``, or ``None``.

    The core parses each line once (UTF-8, one JSON object per line) and calls ``checker.check(line_no,
    record)`` for every record, then ``checker.finish()`` for file-level rules (minimum example count, unique
    ids).  Both return :class:`~llmfiles.models.Problem` objects with a JSON ``path`` (``messages[2].role``), a
    ``code``, a ``severity`` and a message saying how to fix the record; ``line=None`` from ``check`` means the
    record's line.  The checker is asked for once per file, not once per line, so rules cost a plain method call
    per record; it must keep bounded memory (hashes of ids, not the records) and never raise, whatever the JSON.

    Optionally the checker has ``start(facts)``, called before the first record with the file's size and BOM
    (:class:`~llmfiles.validate.stats.FileFacts`), and a ``stats`` attribute, an
    :class:`~llmfiles.validate.stats.ExampleStats` it feeds per example (messages, tokens, roles) that the
    report shows.  ``settings`` are the call's resolved settings (for example ``convert`` or a model name).
    Raise :class:`~llmfiles.errors.InvalidSetting` for settings that make no sense for this purpose.
    """


@hookspec
def llmfiles_register_converters(register: Callable[[Converter], None]) -> None:
    """Declare the record conversions this plugin provides, for ``llmfiles convert FILE --to NAME -o OUT``.

    Call ``register(Converter(name=..., convert=..., checker=...))`` once per conversion
    (:class:`~llmfiles.validate.convert.Converter`).  ``convert(record)`` takes one parsed JSONL record (a
    ``dict``) and returns ``(converted_record_or_None, problems)``: an error problem means the record cannot be
    converted (nothing is written then), warnings are reported and the record is kept.  It must not raise and
    must not keep state that grows with the file.  ``checker()`` returns a fresh
    :class:`~llmfiles.validate.records.RecordChecker` with the rules of the target format; the converted file is
    checked with it before it replaces the output.  The core does the rest: it streams the input in constant
    memory, writes a temporary file next to the output and renames it only when the conversion and its check
    have no errors.

    Names are global across plugins (``gemini`` from llmfiles-vertex; ``claude``, ``nova`` and
    ``prompt-completion`` from llmfiles-bedrock); two plugins that register the same name are rejected with
    :class:`~llmfiles.errors.PluginError`.  Registration is asked for only when a conversion is used.
    """
