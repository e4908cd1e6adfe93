"""Every hook a llmfiles plugin can implement.

A plugin is a module (named by an entry point in group ``llmfiles``) with hook implementations marked
:data:`llmfiles.hookimpl`.  Two hooks register things, once, when the plugins load:

* :func:`llmfiles_register_providers` registers provider objects (see :class:`llmfiles.provider.Provider`): the core
  then calls exactly the provider a call names, directly and typed;
* :func:`llmfiles_register_converters` registers record conversions for ``llmfiles convert`` and ``convert=``.

Three hooks cut across providers, for in-house plugins that change how every provider works without forking any:

* :func:`llmfiles_get_secret`: the last link of the settings chain (a secret manager);
* :func:`llmfiles_credentials`: credentials from elsewhere (a vault) instead of the provider's own resolution;
* :func:`llmfiles_request`: sees, and may change, every request before it is sent (parts, probes, aborts and
  completes included): a proxy header, a gateway in front of a provider.

Example::

    from llmfiles import hookimpl

    @hookimpl
    def llmfiles_register_providers(register):
        register(AcmeProvider())

    @hookimpl(wrapper=True)
    def llmfiles_request(provider, request):
        request = yield
        return attrs.evolve(request, headers={**request.headers, "X-Proxy-Team": "ml"})
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from llmfiles.models import Credentials, HttpRequest, Settings
    from llmfiles.provider import Http, Provider
    from llmfiles.validate.convert import Converter

hookspec = pluggy.HookspecMarker("llmfiles")


@hookspec
def llmfiles_register_providers(register: Callable[[Provider], None]) -> None:
    """Declare the providers this plugin implements: call ``register(provider)`` once per provider object.

    The object's ``info`` (a :class:`~llmfiles.models.ProviderInfo`) names the provider and its aliases, the
    distribution to ``pip install`` for it, the purposes it accepts, its settings with their environment variables
    and its limits.  Two plugins that register the same name (or alias) are rejected with
    :class:`~llmfiles.errors.PluginError`.  Keep this cheap: import heavy libraries where they are used.
    """


@hookspec
def llmfiles_register_converters(register: Callable[[Converter], None]) -> None:
    """Declare the record conversions this plugin provides, for ``llmfiles convert FILE --to NAME -o OUT`` and
    ``convert=NAME`` while uploading.

    Call ``register(Converter(name=..., prepare=..., checker=...))`` once per conversion
    (:class:`~llmfiles.validate.convert.Converter`).  ``prepare(settings)`` gets the target provider's resolved
    :class:`~llmfiles.models.Settings` (``-s model=...``, the upload's settings) once per file and returns the
    conversion of one record (``settings_free(fn)`` for one that reads none); it raises
    :class:`~llmfiles.errors.InvalidSetting` when a setting it needs is missing.  The conversion takes one parsed
    JSONL record (a ``dict``) and returns ``(converted_record_or_None, problems)``: an error problem means the
    record cannot be converted (nothing is written then), warnings are reported and the record is kept.  It must
    not raise and must not keep state that grows with the file.  ``checker()`` returns a fresh
    :class:`~llmfiles.validate.records.RecordChecker` with the rules of the target format; the converted file is
    checked with it before it is used.  ``purposes`` names the files ``convert=NAME`` converts while uploading.
    The core streams the input in constant memory and writes the output atomically.  Names are global across
    plugins; two plugins that register the same name are rejected with :class:`~llmfiles.errors.PluginError`.
    Registration is asked for only when a conversion is used.
    """


@hookspec(firstresult=True)
def llmfiles_get_secret(name: str, provider: str, http: Http) -> str | None:
    """Look up a secret by ``name`` (for example ``OPENAI_API_KEY``) in a secret manager.

    The last link of the settings chain: asked only for secret settings that no argument, ``Client`` setting,
    environment variable or config file supplied.  ``http`` sends requests through the core's transport with the
    caller's TLS and timeout settings (use it rather than a client of your own).  Return ``None`` when you do not
    have it; the first answer that is not ``None`` wins.
    """


@hookspec(firstresult=True)
def llmfiles_credentials(
    provider: str, settings: Settings, environ: Mapping[str, str], http: Http
) -> Credentials | None:
    """Credentials for ``provider`` from somewhere the provider itself does not look (a vault, a broker), instead
    of the provider's own ``credentials()``.

    Return ``None`` to leave it to the provider.  ``settings`` went through the whole settings chain; ``http``
    sends requests through the core's transport.  The first answer that is not ``None`` wins; use
    ``@hookimpl(tryfirst=True)`` to answer before other plugins.
    """


@hookspec(firstresult=True)
def llmfiles_request(provider: str, request: HttpRequest) -> HttpRequest:  # type: ignore[empty-body]
    """Every request of ``provider``, just before it is sent: return it, or a changed copy.

    The core answers with the request unchanged; implement this hook as a wrapper so that several plugins
    compose: ``request = yield`` gives the request as the inner implementations left it, and what you return is
    sent (``attrs.evolve(request, headers=...)``).  It sees the parts, completes, aborts and probes of large
    uploads too.  A header added after a provider signed the request (AWS SigV4) is not covered by the signature.
    """
