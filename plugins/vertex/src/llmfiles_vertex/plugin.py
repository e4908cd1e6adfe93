"""The ``vertex_ai`` provider's hook implementations (also answers to ``vertex``).

Vertex AI tuning and batch jobs read their data from Cloud Storage, so uploading "to Vertex" means putting the
JSONL into a bucket and handing back its ``gs://bucket/object`` URI as the file id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from llmfiles import hookimpl
from llmfiles.errors import ConfigurationError, InvalidSetting
from llmfiles.models import (
    Credentials,
    FileObject,
    FilePage,
    HttpRequest,
    HttpResponse,
    Operation,
    ProviderInfo,
    Settings,
    SettingSpec,
    Source,
    UploadPlan,
)
from llmfiles.validate.convert import Converter
from llmfiles.validate.records import RecordChecker
from llmfiles_vertex import auth, gcs, gemini

NAME = "vertex_ai"
ALIASES = ("vertex",)
PURPOSES = ("fine-tune", "batch")
MiB = 1024 * 1024
TiB = 1024 * 1024 * MiB

SETTINGS = (
    SettingSpec(
        name="bucket",
        env=("LLMFILES_GCS_BUCKET", "GCS_BUCKET_NAME"),
        help="the Cloud Storage bucket the files go to (Vertex jobs read them from there)",
    ),
    SettingSpec(
        name="prefix",
        env=("LLMFILES_GCS_PREFIX",),
        default="llmfiles/",
        help="the folder in the bucket: uploads go under it, list shows what is under it",
    ),
    SettingSpec(
        name="project",
        env=("VERTEXAI_PROJECT", "GOOGLE_CLOUD_PROJECT"),
        help="the Google Cloud project of the Vertex jobs (recorded with each file)",
    ),
    SettingSpec(
        name="location",
        env=("VERTEXAI_LOCATION",),
        help="the Vertex AI region of the jobs, e.g. us-central1 (recorded with each file)",
    ),
    SettingSpec(
        name="credentials",
        kind="object",
        help="a google-auth Credentials object (scoped to cloud-platform when it needs scopes)",
    ),
    SettingSpec(
        name="access_token",
        kind="secret",
        env=("GOOGLE_OAUTH_ACCESS_TOKEN",),
        help="an OAuth 2 access token, sent as Authorization: Bearer (google-auth is not used)",
    ),
    SettingSpec(
        name="credentials_file",
        kind="path",
        env=("GOOGLE_APPLICATION_CREDENTIALS",),
        help="a service account key file (or any credentials file google-auth reads)",
        fingerprint=False,  # how to sign in, not where files go
    ),
    SettingSpec(
        name="api_base",
        env=("STORAGE_EMULATOR_HOST",),
        default=gcs.DEFAULT_API_BASE,
        help="the Cloud Storage endpoint; STORAGE_EMULATOR_HOST points at an emulator",
    ),
    SettingSpec(
        name="convert",
        kind="object",
        help="'gemini' (or True): convert OpenAI chat fine-tune files to the Gemini tuning format while uploading",
        fingerprint=True,  # what is stored: a converted file is another file
    ),
)

INFO = ProviderInfo(
    name=NAME,
    package="llmfiles-vertex",
    purposes=PURPOSES,
    description="Vertex AI: tuning and batch files in a Cloud Storage bucket (gs:// ids), google-auth credentials",
    aliases=ALIASES,
    settings=SETTINGS,
    credential_settings=auth.CREDENTIAL_SETTINGS,
    max_file_size=5 * TiB,
    default_multipart_threshold=8 * MiB,
    default_part_size=16 * MiB,
    supports_parts=True,
    upload_digests=("md5",),
)


@hookimpl
def llmfiles_register_providers(register: Callable[[ProviderInfo], None]) -> None:
    register(INFO)


@hookimpl
def llmfiles_resolve_credentials(provider: str, settings: Settings, environ: Mapping[str, str]) -> Credentials | None:
    if provider != NAME:
        return None
    return auth.resolve(INFO, settings, environ)


def convert_format(settings: Settings | Mapping[str, Any]) -> str | None:
    """The ``convert`` setting as ``"gemini"`` or ``None``."""
    value = settings.get("convert")
    if value is None or value is False:
        return None
    if value is True:
        return gemini.GEMINI
    text = str(value).strip().lower()
    if text in ("", "0", "false", "no", "none", "off"):
        return None
    if text in (gemini.GEMINI, "1", "true", "yes", "on"):
        return gemini.GEMINI
    raise InvalidSetting(f"convert: {value!r} is not a format this provider converts to; use 'gemini' (or True)")


def endpoint(credentials: Credentials, settings: Settings) -> gcs.Endpoint:
    headers = dict(credentials.headers)
    if credentials.secret is not None:
        headers["Authorization"] = f"Bearer {credentials.secret.reveal()}"
    return gcs.Endpoint(provider=NAME, base=gcs.normalize_api_base(str(settings["api_base"])), headers=headers)


def bucket_of(settings: Settings) -> str:
    value = settings.get("bucket")
    if not value:
        raise ConfigurationError(
            f"provider {NAME!r} needs a Cloud Storage bucket to put the files in: pass bucket='my-bucket' "
            "(CLI: -s bucket=my-bucket), or set LLMFILES_GCS_BUCKET (or GCS_BUCKET_NAME)"
        )
    return gcs.check_bucket(str(value), settings.source("bucket"))


def _metadata(operation: Operation, settings: Settings, credentials: Credentials, fmt: str | None) -> dict[str, Any]:
    assert operation.filename is not None and operation.purpose is not None
    custom = {gcs.META_PURPOSE: operation.purpose, gcs.META_FILENAME: operation.filename}
    extra = credentials.extra if isinstance(credentials.extra, Mapping) else {}
    project = settings.get("project") or extra.get("project")
    if project:
        custom[gcs.META_PROJECT] = str(project)
    if settings.get("location"):
        custom[gcs.META_LOCATION] = str(settings["location"])
    if fmt:
        custom[gcs.META_FORMAT] = fmt
    prefix = gcs.normalize_prefix(settings.get("prefix"))
    return {
        "name": gcs.object_name(prefix, operation.filename),
        "contentType": gcs.content_type(operation.filename),
        "metadata": custom,
    }


def _md5_of(source: Source) -> str:
    import hashlib

    if isinstance(source, gemini.ConvertedSource):
        return source.md5
    h = hashlib.md5(usedforsecurity=False)
    for block in source.read_range(0, source.size, MiB):
        h.update(block)
    return h.hexdigest()


def _upload(operation: Operation, credentials: Credentials, settings: Settings) -> HttpRequest | UploadPlan:
    assert operation.source is not None and operation.purpose is not None
    bucket = bucket_of(settings)
    fmt = convert_format(settings)
    if fmt is not None and operation.purpose != "fine-tune":
        raise InvalidSetting(
            f"convert={fmt!r} converts fine-tune files; {operation.purpose!r} files are sent as they are"
        )
    ep = endpoint(credentials, settings)
    metadata = _metadata(operation, settings, credentials, fmt)
    media_type = metadata["contentType"]
    converted = gemini.ConvertedSource(operation.source) if fmt else None
    if operation.name == "upload_parts":
        return gcs.resumable_plan(
            ep, bucket, operation, metadata, media_type=media_type, part_size=settings["part_size"], converted=converted
        )
    body = converted if converted is not None else operation.source
    # Cloud Storage checks the bytes it gets against this MD5 and refuses the upload if they differ
    metadata["md5Hash"] = gcs.md5_base64(_md5_of(body))
    return gcs.upload_request(ep, bucket, metadata, body, media_type=media_type)


@hookimpl
def llmfiles_build_request(
    provider: str, operation: Operation, credentials: Credentials, settings: Settings
) -> HttpRequest | UploadPlan | None:
    if provider != NAME:
        return None
    if operation.name in ("upload", "upload_parts"):
        return _upload(operation, credentials, settings)
    ep = endpoint(credentials, settings)
    if operation.name == "list":
        prefix = gcs.normalize_prefix(settings.get("prefix"))
        return gcs.list_request(ep, bucket_of(settings), prefix, cursor=operation.cursor, limit=operation.limit)
    assert operation.file_id is not None
    default_bucket = bucket_of(settings) if settings.get("bucket") else None
    bucket, name = gcs.parse_file_id(operation.file_id, default_bucket)
    if operation.name == "retrieve":
        return gcs.retrieve_request(ep, bucket, name)
    if operation.name == "delete":
        return gcs.delete_request(ep, bucket, name)
    if operation.name == "download":
        return gcs.download_request(ep, bucket, name)
    return None


@hookimpl
def llmfiles_normalize_response(
    provider: str, operation: Operation, response: HttpResponse
) -> FileObject | FilePage | Exception | bool | None:
    if provider != NAME:
        return None
    return gcs.normalize(NAME, operation, response)


@hookimpl
def llmfiles_record_checker(provider: str, purpose: str, settings: Mapping[str, Any]) -> RecordChecker | None:
    if provider != NAME:
        return None
    fmt = convert_format(settings)
    if purpose == "fine-tune":
        return gemini.TuningChecker(fmt)
    if fmt is not None:
        raise InvalidSetting(f"convert={fmt!r} converts fine-tune files; {purpose!r} files are sent as they are")
    if purpose == "batch":
        return gemini.BatchChecker()
    return None


@hookimpl
def llmfiles_register_converters(register: Callable[[Converter], None]) -> None:
    register(
        Converter(
            name=gemini.GEMINI,
            convert=gemini.convert_record,
            checker=lambda: gemini.TuningChecker(None),
            description="Vertex AI Gemini tuning records (contents/systemInstruction/tools)",
            reads="OpenAI chat fine-tuning records ({'messages': [...]}); Gemini records are kept as they are",
            package="llmfiles-vertex",
        )
    )
