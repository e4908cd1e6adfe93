"""The ``bedrock`` provider: one :class:`BedrockProvider` object, and the plugin's hooks.

Bedrock model customization (and batch inference) reads its data from S3, so a file goes to a bucket and its
``s3://bucket/key`` URI is the file id, ready for ``create_model_customization_job(trainingDataConfig={"s3Uri":
...})``.  Credentials, the profile's region and SigV4 signatures come from botocore; requests are built in
:mod:`llmfiles_bedrock.s3` and sent by the core's transport.  The plugin also registers the Bedrock conversions
(``claude``, ``nova``, ``prompt-completion``) and answers ``llmfiles_get_secret`` from AWS Secrets Manager.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from attrs import field, frozen

from llmfiles import hookimpl
from llmfiles.errors import MissingCredentials, MissingSetting, PluginError, advice
from llmfiles.models import (
    Credentials,
    Delete,
    Download,
    ListFiles,
    Operation,
    Problem,
    ProviderInfo,
    Retrieve,
    Secret,
    Settings,
    SettingSpec,
    Upload,
    UploadParts,
)
from llmfiles.provider import BaseProvider, Exchange, Http, UploadProtocol
from llmfiles.validate.convert import Converter, settings_free
from llmfiles.validate.records import RecordChecker
from llmfiles_bedrock import formats, s3

#: where the bucket may come from in the environment, first match wins
BUCKET_ENV = ("LLMFILES_S3_BUCKET", "AWS_S3_BUCKET_NAME")
NAME = "bedrock"
PURPOSES = ("fine-tune", "batch")
MiB = 1024 * 1024
DEFAULT_THRESHOLD = 8 * MiB
DEFAULT_PREFIX = "llmfiles/"

SETTINGS = (
    SettingSpec(
        name="bucket",
        env=BUCKET_ENV,
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
        name="model",
        help="the base model a fine-tuning file is for (its Bedrock id, e.g. anthropic.claude-3-haiku-20240307-v1:0): "
        "the checks then hold the file to that model's format and documented limits (records, tokens per record)",
        fingerprint=False,
    ),
)
CREDENTIAL_SETTINGS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_profile")

INFO = ProviderInfo(
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
    # the ETag of a single PutObject is the MD5 of the object: the core compares it with the MD5 of what it sent
    checksums=("md5",),
    # convert=True is the first: Claude, the model family the README's examples train
    conversions=(*formats.FORMATS, "bedrock-batch"),
    file_limits={"batch": formats.BATCH_LIMITS},
)


# --- credentials ---------------------------------------------------------------------------------------------


@frozen(kw_only=True)
class AwsContext:
    """What :meth:`BedrockProvider.credentials` found: the identity (botocore credentials) and the region to sign
    for."""

    identity: Any = field(repr=False)
    region: str
    region_source: str


def _profile(settings: Settings) -> str | None:
    value = settings.get("aws_profile")
    return (str(value).strip() or None) if value else None


def _explicit_places() -> tuple[str, ...]:
    return (
        "argument aws_access_key_id= with aws_secret_access_key= (and aws_session_token=)",
        "Client(aws_access_key_id=..., aws_secret_access_key=...)",
        "argument aws_profile= / Client(aws_profile=...)",
    )


def _identity(settings: Settings, *, offline: bool) -> Any:
    """Explicit keys from the settings (both or neither), else botocore's default chain (``offline``, for a dry
    run: only its links that read the environment and files; a string says which others would be asked)."""
    from llmfiles_bedrock import aws

    key_id = settings.get("aws_access_key_id")
    secret = settings.secret("aws_secret_access_key")
    token = settings.secret("aws_session_token")
    if not (key_id or secret or token):
        chain = aws.offline_identity if offline else aws.default_identity
        return chain(_profile(settings), provider=NAME, looked_first=_explicit_places())
    if not (key_id and secret):
        missing = "aws_access_key_id" if not key_id else "aws_secret_access_key"
        raise MissingCredentials(
            NAME,
            f"{missing} (explicit AWS credentials need both aws_access_key_id and aws_secret_access_key)",
            [f"argument {missing}=", f"Client({missing}=...)"],
            hint=advice(
                "pass aws_access_key_id and aws_secret_access_key together, or neither to use botocore's chain",
                "pass -s aws_access_key_id=... and -s aws_secret_access_key=... together, or neither",
            ),
        )
    return aws.explicit_identity(str(key_id), secret, token, settings.source("aws_access_key_id"))


def _region(settings: Settings) -> tuple[str, str]:
    from llmfiles_bedrock import aws

    return aws.resolve_region(settings.get("aws_region"), settings.source("aws_region"), _profile(settings))


# --- the provider --------------------------------------------------------------------------------------------


class BedrockProvider(BaseProvider):
    """Files in S3 for Amazon Bedrock: PutObject, or multipart above the threshold; HeadObject, ListObjectsV2,
    GetObject and DeleteObject for the rest.  Ids are ``s3://bucket/key`` URIs."""

    info = INFO

    def credentials(self, settings: Settings, environ: Mapping[str, str], http: Http) -> Credentials:
        """AWS credentials (explicit keys, else botocore's chain) and the region; both are found before anything is
        read or sent."""
        identity = _identity(settings, offline=http.offline)
        region, region_source = _region(settings)
        if isinstance(identity, str):  # a dry run: the chain would ask a server for them
            return Credentials(
                kind="aws_sigv4",
                source=identity,
                extra=AwsContext(identity=None, region=region, region_source=region_source),
            )
        frozen_keys = identity.frozen()
        token = getattr(frozen_keys, "token", None)
        return Credentials(
            kind="aws_sigv4",
            source=identity.source,
            secret=Secret(frozen_keys.secret_key),
            # the header these credentials send besides the signature (named so it is redacted like the key)
            headers={"X-Amz-Security-Token": str(token)} if token else {},
            extra=AwsContext(identity=identity, region=region, region_source=region_source),
        )

    def exchange(self, op: Operation, credentials: Credentials, settings: Settings) -> Exchange[Any] | UploadProtocol:
        """What to send for ``op`` (see :mod:`llmfiles_bedrock.s3`)."""
        ep = endpoint(credentials, settings)
        if isinstance(op, Upload | UploadParts):
            facts = op.file
            key = s3.new_key(_prefix(settings), facts.purpose, facts.filename)
            loc = s3.Location(bucket=_bucket(settings), key=key)
            fmt = self._format(settings, facts.purpose)
            if isinstance(op, UploadParts):
                return s3.Multipart(ep, loc, facts, fmt)
            return s3.put_object(ep, loc, facts, fmt)
        if isinstance(op, ListFiles):
            prefix = _prefix(settings) + (f"{op.purpose}/" if op.purpose else "")
            return s3.list_objects(ep, _bucket(settings), prefix, cursor=op.cursor, limit=op.limit, purpose=op.purpose)
        loc = s3.parse_file_id(op.file_id)
        if isinstance(op, Retrieve):
            return s3.head_object(ep, loc)
        if isinstance(op, Download):
            return s3.get_object(ep, loc)
        assert isinstance(op, Delete)
        return s3.delete_object(ep, loc)

    def _format(self, settings: Settings, purpose: str) -> str | None:
        """The Bedrock format a fine-tune file was converted to by the core (``convert``), kept as the object's
        ``x-amz-meta-format``."""
        from llmfiles.conversions import conversion_name

        name = conversion_name(self.info, settings.get("convert")) if purpose == "fine-tune" else None
        return name if name in formats.FORMATS else None

    def record_checker(self, purpose: str, settings: Settings) -> RecordChecker | None:
        """Fine-tune files by the rules of the Bedrock format they are in, batch files as batch-inference input.

        With ``convert`` the core checks the converted file, so the rules are the same."""
        if purpose == "batch":
            return formats.BatchChecker()
        if purpose == "fine-tune":
            model = settings.get("model")
            return formats.FineTuneChecker(str(model) if model else None)
        return None


def endpoint(credentials: Credentials, settings: Settings) -> s3.Endpoint:
    """The S3 endpoint of these settings, signing with these credentials (unsigned for a dry run, which has
    none)."""
    from llmfiles_bedrock import aws

    extra = credentials.extra
    identity: aws.AwsIdentity | None
    if isinstance(extra, AwsContext):
        identity, region = extra.identity, extra.region
    else:
        region, _ = _region(settings)
        if extra is not None and (hasattr(extra, "get_frozen_credentials") or hasattr(extra, "access_key")):
            identity = aws.AwsIdentity(credentials=extra, source=credentials.source)  # an in-house resolver's
        elif credentials.kind == "none":
            identity = None  # a dry run (describe_upload): requests are built, never sent
        else:
            raise PluginError(
                f"provider {NAME!r} got credentials of kind {credentials.kind!r} without AWS keys in 'extra'; "
                "an llmfiles_credentials hook for bedrock must put botocore credentials there"
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
        raise MissingSetting(
            NAME,
            "bucket",
            what="a bucket (an existing S3 bucket in the region of your Bedrock jobs)",
            example="BUCKET",
            env=BUCKET_ENV,
        )
    return s3.check_bucket(bucket, settings.source("bucket"))


def _prefix(settings: Settings) -> str:
    value = settings.values.get("prefix")
    return s3.check_prefix(DEFAULT_PREFIX if value is None else value, settings.source("prefix"))


# --- conversions ---------------------------------------------------------------------------------------------


def converter(target: str) -> Converter:
    """The conversion of OpenAI chat records to the Bedrock format ``target``."""

    def convert(record: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[Problem]]:
        # the core checks the converted file with the target's rules (the checker below)
        return formats.convert_for_upload(record, target)

    return Converter(
        name=target,
        prepare=settings_free(convert),
        # the target's rules; the base model's limits are the provider's checker's (it has the model setting)
        checker=functools.partial(formats.FineTuneChecker, remind=False),
        description=f"Bedrock {target} fine-tuning records",
        package="llmfiles-bedrock",
    )


# --- hooks ---------------------------------------------------------------------------------------------------


@hookimpl
def llmfiles_register_providers(register: Callable[[BedrockProvider], None]) -> None:
    """The ``bedrock`` provider."""
    register(BedrockProvider())


def batch_converters() -> tuple[Converter, Converter]:
    """``bedrock-batch`` (OpenAI batch lines to batch-inference records, for the ``model`` setting's family) and
    ``openai-from-bedrock`` (batch-inference results back to OpenAI batch output lines)."""
    from llmfiles.validate.openai_batch import requests_converter, results_converter
    from llmfiles_bedrock import batch, batch_output

    return (
        requests_converter(
            name=batch.NAME,
            prepare=batch.prepare,
            checker=formats.BatchChecker,
            description="Bedrock batch-inference records {recordId, modelInput} in the model family's InvokeModel "
            "body (Anthropic Messages, Nova, Llama, Titan Text; -s model=...)",
            package="llmfiles-bedrock",
            provider=NAME,
            settings=("model",),
        ),
        results_converter(
            name=batch_output.NAME,
            prepare=batch_output.prepare,
            reads="Bedrock batch-inference results (.jsonl.out: {recordId, modelInput, modelOutput | error}); "
            "-s model=... names the model in results that do not",
            package="llmfiles-bedrock",
            provider=NAME,
            settings=("model",),
        ),
    )


@hookimpl
def llmfiles_register_converters(register: Callable[[Converter], None]) -> None:
    """``llmfiles convert --to claude|nova|prompt-completion`` (fine-tuning records), ``bedrock-batch`` (batch
    records) and ``openai-from-bedrock`` (results back): the first four are what ``convert=`` applies on upload."""
    for target in formats.FORMATS:
        register(converter(target))
    for conv in batch_converters():
        register(conv)


@hookimpl
def llmfiles_get_secret(name: str, provider: str, http: Http) -> str | None:
    """AWS Secrets Manager as the last link of every provider's settings chain (see :mod:`llmfiles_bedrock.secrets`),
    sent through ``http``: the core's transport with the caller's TLS and timeout settings."""
    from llmfiles_bedrock import secrets

    return secrets.get_secret(name, http)
