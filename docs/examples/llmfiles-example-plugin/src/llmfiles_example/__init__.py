"""An in-house provider plugin: a company's OpenAI-compatible LLM gateway, as provider ``example``.

The model to copy when writing your own plugin.  It shows that a plugin is a handful of hooks that take data and
return data, and that an OpenAI-compatible service needs no wire code of its own: it reuses
:mod:`llmfiles_openai.wire` (from the ``llmfiles-openai`` distribution) with its own name, settings and
environment variables.  It never sends HTTP and never reads the file; the core does both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from llmfiles import hookimpl
from llmfiles.models import (
    Credentials,
    FileObject,
    FilePage,
    HttpRequest,
    HttpResponse,
    Operation,
    ProviderInfo,
    Secret,
    Settings,
    SettingSpec,
    UploadPlan,
)
from llmfiles_openai import wire

NAME = "example"
MiB = 1024 * 1024


@hookimpl
def llmfiles_register_providers(register: Callable[[ProviderInfo], None]) -> None:
    """Declare the provider: its name, the distribution that provides it, purposes, settings and limits."""
    register(
        ProviderInfo(
            name=NAME,
            package="llmfiles-example-plugin",
            purposes=("assistants", "batch", "fine-tune"),
            description="the in-house LLM gateway (OpenAI-compatible)",
            settings=(
                SettingSpec(name="api_key", kind="secret", env=("EXAMPLE_API_KEY",), help="the gateway key"),
                SettingSpec(
                    name="api_base",
                    env=("EXAMPLE_API_BASE",),
                    default="https://llm-gateway.example.internal/v1",
                    help="the gateway's base URL",
                ),
            ),
            credential_settings=("api_key",),
            max_single_request_size=512 * MiB,
            default_multipart_threshold=512 * MiB,
            default_part_size=64 * MiB,
            supports_parts=True,
            upload_digests=("md5",),
        )
    )


@hookimpl
def llmfiles_resolve_credentials(provider: str, settings: Settings, environ: Mapping[str, str]) -> Credentials | None:
    """The gateway key, from wherever the settings chain found it (the core names the places when there is none)."""
    if provider != NAME:
        return None
    key = settings.values.get("api_key")
    if not isinstance(key, Secret) or not key:
        return None
    return Credentials(kind="api_key", source=settings.source("api_key"), secret=key)


def _endpoint(credentials: Credentials, settings: Settings) -> wire.Endpoint:
    headers = {}
    if credentials.secret is not None:
        headers["Authorization"] = f"Bearer {credentials.secret.reveal()}"
    return wire.Endpoint(provider=NAME, base=str(settings["api_base"]), headers=headers)


@hookimpl
def llmfiles_build_request(
    provider: str, operation: Operation, credentials: Credentials, settings: Settings
) -> HttpRequest | UploadPlan | None:
    """One request per operation, or the Uploads API plan for files above the multipart threshold."""
    if provider != NAME:
        return None
    ep = _endpoint(credentials, settings)
    if operation.name == "upload":
        return wire.upload_request(ep, operation)
    if operation.name == "upload_parts":
        return wire.uploads_plan(ep, operation, part_size=settings["part_size"], max_part_size=64 * MiB)
    return wire.one_shot_request(ep, operation)


@hookimpl
def llmfiles_normalize_response(
    provider: str, operation: Operation, response: HttpResponse
) -> FileObject | FilePage | Exception | bool | None:
    """The gateway answers like OpenAI: file objects, lists, and errors with ``x-request-id``."""
    if provider != NAME:
        return None
    return wire.normalize(NAME, operation, response)
