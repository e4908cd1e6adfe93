"""The ``vertex_ai`` provider (also answers to ``vertex``): one :class:`VertexProvider` object and the ``gemini``
conversion, registered through llmfiles' hooks.

Vertex AI tuning and batch jobs read their data from Cloud Storage, so uploading "to Vertex" means putting the
JSONL into a bucket and handing back its ``gs://bucket/object`` URI as the file id.  The wire format is in
:mod:`llmfiles_vertex.gcs`, the credentials in :mod:`llmfiles_vertex.auth`, the Gemini formats in
:mod:`llmfiles_vertex.gemini`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from llmfiles import hookimpl
from llmfiles.errors import MissingSetting
from llmfiles.models import (
    Credentials,
    Delete,
    Download,
    ListFiles,
    Operation,
    ProviderInfo,
    Retrieve,
    Settings,
    SettingSpec,
    Upload,
    UploadFacts,
    UploadParts,
)
from llmfiles.provider import BaseProvider, Exchange, Http, UploadProtocol
from llmfiles.validate.convert import Converter, settings_free
from llmfiles.validate.records import RecordChecker
from llmfiles_vertex import auth, gcs, gemini

#: where the bucket may come from in the environment, first match wins
BUCKET_ENV = ("LLMFILES_GCS_BUCKET", "GCS_BUCKET_NAME")
NAME = "vertex_ai"
ALIASES = ("vertex",)
PURPOSES = ("fine-tune", "batch")
MiB = 1024 * 1024
TiB = 1024 * 1024 * MiB

SETTINGS = (
    SettingSpec(
        name="bucket",
        env=BUCKET_ENV,
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
        help="a credentials file google-auth reads (a service account key, an authorized user, ...)",
        fingerprint=False,  # how to sign in, not where files go
    ),
    SettingSpec(
        name="api_base",
        env=("STORAGE_EMULATOR_HOST",),
        default=gcs.DEFAULT_API_BASE,
        help="the Cloud Storage endpoint; STORAGE_EMULATOR_HOST points at an emulator",
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
    checksums=("md5",),
    conversions=(gemini.GEMINI, "vertex-batch"),
    file_limits={"batch": gemini.BATCH_LIMITS},
)


class VertexProvider(BaseProvider):
    """Vertex AI's files: objects in a Cloud Storage bucket (one ``multipart`` request, or a resumable session for
    large files), credentials through google-auth, Gemini record rules."""

    info = INFO

    def __init__(self) -> None:
        self.auth = auth.GoogleAuth(INFO)

    def credentials(self, settings: Settings, environ: Mapping[str, str], http: Http) -> Credentials:
        """See :mod:`llmfiles_vertex.auth` (``environ`` went into the settings already)."""
        return self.auth.resolve(settings, http)

    def exchange(self, op: Operation, credentials: Credentials, settings: Settings) -> Exchange[Any] | UploadProtocol:
        """The Cloud Storage request (or resumable session) for ``op``."""
        ep = endpoint(credentials, settings)
        if isinstance(op, (Upload, UploadParts)):
            bucket = bucket_of(settings)
            metadata = object_metadata(op.file, settings, credentials)
            if isinstance(op, UploadParts):
                return gcs.ResumableSession(ep, bucket, metadata, op.file, part_size=int(settings["part_size"]))
            return gcs.upload(ep, bucket, metadata, op.file)
        if isinstance(op, ListFiles):
            prefix = gcs.normalize_prefix(settings.get("prefix"))
            return gcs.list_page(ep, bucket_of(settings), prefix, purpose=op.purpose, cursor=op.cursor, limit=op.limit)
        default_bucket = bucket_of(settings) if settings.get("bucket") else None
        bucket, name = gcs.parse_file_id(op.file_id, default_bucket)
        if isinstance(op, Retrieve):
            return gcs.retrieve(ep, bucket, name, op.file_id)
        if isinstance(op, Delete):
            return gcs.delete(ep, bucket, name, op.file_id)
        assert isinstance(op, Download)
        return gcs.download(ep, bucket, name, op.file_id)

    def record_checker(self, purpose: str, settings: Settings) -> RecordChecker | None:
        """Gemini tuning records (or OpenAI chat records, for open models) for ``fine-tune``, Vertex batch
        prediction requests for ``batch``.  A ``convert`` setting changes nothing here: the core converts the file
        first and checks what it uploads."""
        if purpose == "fine-tune":
            return gemini.TuningChecker()
        if purpose == "batch":
            return gemini.BatchChecker()
        return None


def endpoint(credentials: Credentials, settings: Settings) -> gcs.Endpoint:
    """The Cloud Storage endpoint for these settings, with the credentials' headers."""
    headers = dict(credentials.headers)
    if credentials.secret is not None:
        headers["Authorization"] = f"Bearer {credentials.secret.reveal()}"
    return gcs.Endpoint(provider=NAME, base=gcs.normalize_api_base(str(settings["api_base"])), headers=headers)


def bucket_of(settings: Settings) -> str:
    """The ``bucket`` setting, checked; an :class:`InvalidSetting` (a :class:`ConfigurationError`) saying how to set
    it when there is none (the dry run lists it beside missing credentials)."""
    value = settings.get("bucket")
    if not value:
        raise MissingSetting(
            NAME, "bucket", what="a Cloud Storage bucket to put the files in", example="my-bucket", env=BUCKET_ENV
        )
    return gcs.check_bucket(str(value), settings.source("bucket"))


def object_metadata(facts: UploadFacts, settings: Settings, credentials: Credentials) -> dict[str, Any]:
    """The new object's resource: a fresh unique name, the content type, and as custom metadata the purpose, the
    original file name, the project and location of the jobs, and the format when the core converted the file."""
    from llmfiles.conversions import conversion_name

    custom = {gcs.META_PURPOSE: facts.purpose, gcs.META_FILENAME: facts.filename}
    extra = credentials.extra if isinstance(credentials.extra, Mapping) else {}
    project = settings.get("project") or extra.get("project")
    if project:
        custom[gcs.META_PROJECT] = str(project)
    if settings.get("location"):
        custom[gcs.META_LOCATION] = str(settings["location"])
    converted = conversion_name(INFO, settings.get("convert"))
    if converted:
        custom[gcs.META_FORMAT] = converted
    return {
        "name": gcs.object_name(gcs.normalize_prefix(settings.get("prefix")), facts.filename),
        "contentType": gcs.content_type(facts.filename),
        "metadata": custom,
    }


@hookimpl
def llmfiles_register_providers(register: Callable[[VertexProvider], None]) -> None:
    """Register the ``vertex_ai`` provider."""
    register(VertexProvider())


@hookimpl
def llmfiles_register_converters(register: Callable[[Converter], None]) -> None:
    """Register the ``gemini`` conversion (``llmfiles convert --to gemini``, ``convert="gemini"``), ``vertex-batch``
    (OpenAI batch lines to batch prediction records, ``convert="vertex-batch"`` on batch uploads) and
    ``openai-from-vertex`` (batch prediction output back to OpenAI batch output lines)."""
    from llmfiles.validate.openai_batch import requests_converter, results_converter
    from llmfiles_vertex import batch

    register(
        requests_converter(
            name=batch.TO_BATCH,
            prepare=batch.prepare_batch,
            checker=gemini.BatchChecker,
            description="Vertex AI batch prediction records for Gemini {request: GenerateContentRequest}, the "
            "custom_id in request.labels",
            package="llmfiles-vertex",
            provider=NAME,
        )
    )
    register(
        results_converter(
            name=batch.FROM_RESULTS,
            prepare=batch.prepare_results,
            reads="Vertex AI batch prediction output ({status, processed_time, request, response}) of a vertex-batch "
            "input",
            package="llmfiles-vertex",
            provider=NAME,
        )
    )
    register(
        Converter(
            name=gemini.GEMINI,
            prepare=settings_free(gemini.convert_record),
            checker=gemini.TuningChecker,
            description="Vertex AI Gemini tuning records (contents/systemInstruction/tools)",
            reads="OpenAI chat fine-tuning records ({'messages': [...]}); Gemini records are kept as they are",
            package="llmfiles-vertex",
        )
    )
