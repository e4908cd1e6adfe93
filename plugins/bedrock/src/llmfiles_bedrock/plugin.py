"""The ``bedrock`` provider's hook implementations.

Bedrock model customization (and batch inference) reads its data from S3, so a file goes to a bucket and its
``s3://bucket/key`` URI is the file id, ready for ``create_model_customization_job(trainingDataConfig={"s3Uri":
...})``.  Credentials, the profile's region and SigV4 signatures come from botocore; requests are built in
:mod:`llmfiles_bedrock.s3` and sent by the core's transport.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from llmfiles import hookimpl
from llmfiles.errors import FileTooLarge, InvalidSetting, MissingCredentials, PluginError
from llmfiles.models import (
    Credentials,
    FileObject,
    FilePage,
    HttpRequest,
    HttpResponse,
    Operation,
    Problem,
    ProviderInfo,
    Secret,
    Settings,
    SettingSpec,
    Source,
    SourceRange,
    UploadPlan,
)
from llmfiles.validate.convert import Converter
from llmfiles.validate.records import RecordChecker
from llmfiles_bedrock import formats, s3

NAME = "bedrock"
PURPOSES = ("fine-tune", "batch")
MiB = 1024 * 1024
DEFAULT_THRESHOLD = 8 * MiB
DEFAULT_PREFIX = "llmfiles/"

SETTINGS = (
    SettingSpec(
        name="bucket",
        env=("LLMFILES_S3_BUCKET", "AWS_S3_BUCKET_NAME"),
        help="the S3 bucket files go to (it must exist, in aws_region)",
    ),
    SettingSpec(
        name="prefix",
        env=("LLMFILES_S3_PREFIX",),
        default=DEFAULT_PREFIX,
        help="the folder inside the bucket; keys are {prefix}{purpose}/{UTC time}-{random}/{file name}",
    ),
    SettingSpec(
        name="aws_region",
        env=("AWS_REGION", "AWS_DEFAULT_REGION"),
        help="the bucket's region (else the profile's region; never a silent default)",
    ),
    SettingSpec(
        name="api_base",
        env=("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        help="an S3 endpoint URL (path-style requests); default https://{bucket}.s3.{region}.amazonaws.com",
    ),
    SettingSpec(
        name="aws_access_key_id", help="an access key id (else botocore's credential chain)", fingerprint=False
    ),
    SettingSpec(
        name="aws_secret_access_key",
        kind="secret",
        secret_names=(),
        help="the secret key that goes with aws_access_key_id",
    ),
    SettingSpec(
        name="aws_session_token",
        kind="secret",
        secret_names=(),
        help="the session token of temporary credentials",
    ),
    SettingSpec(
        name="aws_profile",
        help="a profile of ~/.aws/config (else botocore's: env AWS_PROFILE or 'default')",
        fingerprint=False,
    ),
    SettingSpec(
        name="convert",
        help="convert an OpenAI chat file while uploading: claude, nova or prompt-completion (CLI --convert)",
    ),
)
CREDENTIAL_SETTINGS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_profile")


@hookimpl
def llmfiles_register_providers(register: Callable[[ProviderInfo], None]) -> None:
    register(
        ProviderInfo(
            name=NAME,
            package="llmfiles-bedrock",
            purposes=PURPOSES,
            description="Amazon Bedrock: customization and batch files in S3 (s3:// ids), signed by botocore",
            settings=SETTINGS,
            credential_settings=CREDENTIAL_SETTINGS,
            max_file_size=s3.MAX_OBJECT,
            max_single_request_size=s3.MAX_PUT,
            default_multipart_threshold=DEFAULT_THRESHOLD,
            default_part_size=DEFAULT_THRESHOLD,
            supports_parts=True,
            jsonl_purposes=PURPOSES,
        )
    )


# --- credentials ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AwsContext:
    """What ``llmfiles_resolve_credentials`` found: the identity (credentials) and the region to sign for."""

    identity: Any = field(repr=False)
    region: str
    region_source: str


def _profile(settings: Settings) -> str | None:
    value = settings.get("aws_profile")
    return str(value).strip() or None if value else None


def _explicit_places() -> tuple[str, ...]:
    return (
        "argument aws_access_key_id= with aws_secret_access_key= (and aws_session_token=)",
        "Client(aws_access_key_id=..., aws_secret_access_key=...)",
        "argument aws_profile= / Client(aws_profile=...)",
    )


@hookimpl
def llmfiles_resolve_credentials(provider: str, settings: Settings, environ: Mapping[str, str]) -> Credentials | None:
    if provider != NAME:
        return None
    from llmfiles_bedrock import aws

    key_id = settings.get("aws_access_key_id")
    secret = settings.secret("aws_secret_access_key")
    token = settings.secret("aws_session_token")
    profile = _profile(settings)
    if key_id or secret or token:
        if not (key_id and secret):
            missing = "aws_access_key_id" if not key_id else "aws_secret_access_key"
            raise MissingCredentials(
                NAME,
                f"{missing} (explicit AWS credentials need both aws_access_key_id and aws_secret_access_key)",
                [f"argument {missing}=", f"Client({missing}=...)"],
                hint="pass aws_access_key_id and aws_secret_access_key together, or neither to use botocore's chain",
            )
        identity = aws.explicit_identity(str(key_id), secret, token, settings.source("aws_access_key_id"))
    else:
        identity = aws.default_identity(profile, provider=NAME, looked_first=_explicit_places())
    region, region_source = aws.resolve_region(settings.get("aws_region"), settings.source("aws_region"), profile)
    frozen = identity.frozen()
    return Credentials(
        kind="aws_sigv4",
        source=identity.source,
        secret=Secret(frozen.secret_key),
        extra=AwsContext(identity=identity, region=region, region_source=region_source),
    )


# --- requests ------------------------------------------------------------------------------------------------


def _endpoint(credentials: Credentials, settings: Settings) -> s3.Endpoint:
    from llmfiles_bedrock import aws

    extra = credentials.extra
    identity: aws.AwsIdentity | None
    if isinstance(extra, AwsContext):
        identity, region = extra.identity, extra.region
    else:
        region, _ = aws.resolve_region(settings.get("aws_region"), settings.source("aws_region"), _profile(settings))
        if extra is not None and (hasattr(extra, "get_frozen_credentials") or hasattr(extra, "access_key")):
            identity = aws.AwsIdentity(credentials=extra, source=credentials.source)  # an in-house resolver's
        elif credentials.kind == "none":
            identity = None  # a dry run (describe_upload): requests are built, never sent
        else:
            raise PluginError(
                f"provider {NAME!r} got credentials of kind {credentials.kind!r} without AWS keys in 'extra'; "
                "an llmfiles_resolve_credentials hook for bedrock must put botocore credentials there"
            )

    def sign(method: str, url: str, headers: Mapping[str, str], body: bytes | None, unsigned: bool) -> dict[str, str]:
        return aws.sign(
            identity,
            service="s3",
            region=region,
            method=method,
            url=url,
            headers=headers,
            body=body,
            unsigned_payload=unsigned,
        )

    base = settings.get("api_base")
    return s3.Endpoint(
        region=region,
        sign=sign,
        base=s3.check_api_base(base, settings.source("api_base")) if base else None,
        suffix=aws.dns_suffix(region),
        provider=NAME,
    )


def _bucket(settings: Settings) -> str:
    bucket = settings.get("bucket")
    if not bucket:
        raise InvalidSetting(
            f"provider {NAME!r} needs a bucket: pass bucket=..., or set env LLMFILES_S3_BUCKET or AWS_S3_BUCKET_NAME "
            "(an existing bucket in the region of your Bedrock jobs)"
        )
    return s3.check_bucket(bucket, settings.source("bucket"))


def _prefix(settings: Settings) -> str:
    value = settings.values.get("prefix")
    return s3.check_prefix(DEFAULT_PREFIX if value is None else value, settings.source("prefix"))


def _convert(settings: Settings, purpose: str | None) -> str | None:
    target = formats.check_target(settings.get("convert"), f"convert (from {settings.source('convert')})")
    if target is not None and purpose != "fine-tune":
        raise InvalidSetting(f"convert applies to fine-tune files, not to {purpose!r} files")
    return target


def _upload(ep: s3.Endpoint, operation: Operation, settings: Settings, large: bool) -> HttpRequest | UploadPlan:
    source = operation.source
    if source is None or operation.purpose is None:
        raise PluginError(f"{operation.name} needs a source and a purpose")
    purpose = operation.purpose
    filename = operation.filename or source.name
    loc = s3.Location(bucket=_bucket(settings), key=s3.new_key(_prefix(settings), purpose, filename))
    target = _convert(settings, purpose)
    body: Source = source if target is None else formats.ConvertedSource(source, target)
    if large:
        # the engine reads a converted stream itself (plan.source), measuring it first, part by part in parallel
        return s3.multipart_plan(
            ep, loc, body=body, own_source=target is not None, purpose=purpose, filename=filename, fmt=target
        )
    size = body.size  # for a conversion: the first pass, which refuses a record that cannot be converted
    if size > s3.MAX_PUT:
        raise FileTooLarge(
            body.display,
            size,
            s3.MAX_PUT,
            NAME,
            detail="in one PutObject; set multipart_threshold lower so that the file goes in parts",
        )
    whole = SourceRange(source=body, offset=0, length=size)
    return s3.put_object(ep, loc, body=(whole,), size=size, purpose=purpose, filename=filename, fmt=target)


@hookimpl
def llmfiles_build_request(
    provider: str, operation: Operation, credentials: Credentials, settings: Settings
) -> HttpRequest | UploadPlan | None:
    if provider != NAME:
        return None
    ep = _endpoint(credentials, settings)
    if operation.name in ("upload", "upload_parts"):
        return _upload(ep, operation, settings, large=operation.name == "upload_parts")
    if operation.name == "list":
        prefix = _prefix(settings) + (f"{operation.purpose}/" if operation.purpose else "")
        return s3.list_objects(ep, _bucket(settings), prefix, cursor=operation.cursor, limit=operation.limit)
    if operation.file_id is None:
        raise PluginError(f"{operation.name} needs a file id")
    loc = s3.parse_file_id(operation.file_id)
    if operation.name == "retrieve":
        return s3.head_object(ep, loc)
    if operation.name == "download":
        return s3.get_object(ep, loc)
    if operation.name == "delete":
        return s3.delete_object(ep, loc)
    return None


@hookimpl
def llmfiles_normalize_response(
    provider: str, operation: Operation, response: HttpResponse
) -> FileObject | FilePage | Exception | bool | None:
    if provider != NAME:
        return None
    if not 200 <= response.status < 300:  # a 3xx the transport did not follow (S3 301: wrong region) included
        return s3.error_from(response, NAME, operation)
    if operation.name == "upload":
        loc, size, purpose = s3.put_target(response)
        return s3.file_from_put(NAME, loc, size, purpose, response)
    if operation.name == "retrieve":
        assert operation.file_id is not None
        return s3.file_from_head(NAME, s3.parse_file_id(operation.file_id), response)
    if operation.name == "list":
        return s3.page_from_list(NAME, response, operation.purpose)
    return True  # delete (204) and download (streamed by the core)


# --- content checks and secrets ------------------------------------------------------------------------------


@hookimpl
def llmfiles_record_checker(provider: str, purpose: str, settings: Mapping[str, Any]) -> RecordChecker | None:
    if provider != NAME:
        return None
    get = getattr(settings, "get", None)
    convert = formats.check_target(get("convert") if get is not None else None)
    if purpose == "batch":
        if convert is not None:
            raise InvalidSetting("convert applies to fine-tune files, not to batch files")
        return formats.BatchChecker()
    if purpose == "fine-tune":
        return formats.FineTuneChecker(convert)
    return None


@hookimpl
def llmfiles_get_secret(name: str, provider: str) -> str | None:
    from llmfiles_bedrock import secrets

    return secrets.get_secret(name)


def _converter(target: str) -> Converter:
    def convert(record: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[Problem]]:
        # check=False: the core runs the target format's checker over the written output
        return formats.convert_record(record, target, check=False)

    return Converter(
        name=target,
        convert=convert,
        checker=lambda: formats.FineTuneChecker(None),
        description=f"Bedrock {target} fine-tuning records",
        package="llmfiles-bedrock",
    )


@hookimpl
def llmfiles_register_converters(register: Callable[[Converter], None]) -> None:
    """``llmfiles convert --to claude|nova|prompt-completion``: the same conversions ``convert=`` applies on upload."""
    for target in formats.FORMATS:
        register(_converter(target))
