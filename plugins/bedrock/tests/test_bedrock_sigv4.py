"""SigV4 really checked: moto's own process with ``INITIAL_NO_AUTH_ACTION_COUNT=3`` — an IAM user, its access key
and a policy are made in the first three calls; from then on every request must be signed by that key.  A wrong
secret gets SignatureDoesNotMatch (an AuthenticationError that names where the key came from, never the key),
and the right one does every operation, multipart included (parts signed with UNSIGNED-PAYLOAD)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REGION, boto3_client

import llmfiles
from servers.moto_server import run_moto

MiB = 1024 * 1024
BUCKET = "llmfiles-sigv4-test"


@pytest.fixture(scope="module")
def signed_moto() -> Iterator[tuple[str, str, str]]:
    """moto checking signatures; yields its URL and a key moto's IAM issued (id, secret)."""
    with run_moto(auth_after=3) as url:
        iam = boto3_client("iam", url)
        iam.create_user(UserName="llmfiles")
        key = iam.create_access_key(UserName="llmfiles")["AccessKey"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName="llmfiles", PolicyName="all", PolicyDocument=json.dumps(policy))
        s3 = boto3_client("s3", url, aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
        s3.create_bucket(Bucket=BUCKET)
        yield url, key["AccessKeyId"], key["SecretAccessKey"]


def settings(url: str, key_id: str, secret: str) -> dict[str, Any]:
    return {
        "api_base": url,
        "aws_region": REGION,
        "bucket": BUCKET,
        "aws_access_key_id": key_id,
        "aws_secret_access_key": secret,
        "max_retry_wait": 0.01,
    }


def test_moto_really_checks_signatures(signed_moto: tuple[str, str, str]) -> None:
    url, key_id, _ = signed_moto
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as info:
        boto3_client("s3", url, aws_access_key_id=key_id, aws_secret_access_key="not-the-secret").list_buckets()
    assert info.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_a_wrong_secret_is_an_authentication_error(signed_moto: tuple[str, str, str], make_jsonl: Any) -> None:
    url, key_id, secret = signed_moto
    wrong = secret[:-4] + "XXXX"
    with llmfiles.Client("bedrock", **settings(url, key_id, wrong)) as c:
        with pytest.raises(llmfiles.AuthenticationError) as info:
            c.upload(make_jsonl(), purpose="fine-tune")
        err = info.value
        assert (err.status, err.code) == (403, "SignatureDoesNotMatch")
        assert "came from Client setting aws_access_key_id" in str(err)  # where the key came from
        assert wrong not in str(err) and wrong not in repr(err.args)
        with pytest.raises(llmfiles.AuthenticationError):
            list(c.list_files())


def test_an_unknown_key_is_an_authentication_error(signed_moto: tuple[str, str, str], make_jsonl: Any) -> None:
    url, _, secret = signed_moto
    client = llmfiles.Client("bedrock", **settings(url, "AKIAUNKNOWNKEY000001", secret))
    with client as c, pytest.raises(llmfiles.AuthenticationError) as info:
        c.upload(make_jsonl(), purpose="fine-tune")
    assert info.value.code == "InvalidAccessKeyId"


def test_the_right_key_does_everything(signed_moto: tuple[str, str, str], make_jsonl: Any, tmp_path: Path) -> None:
    url, key_id, secret = signed_moto
    with llmfiles.Client("bedrock", **settings(url, key_id, secret)) as c:
        small = make_jsonl("small.jsonl")
        fo = c.upload(small, purpose="fine-tune")
        big = make_jsonl("big.jsonl", min_bytes=11 * MiB)
        large = c.upload(big, purpose="fine-tune", multipart_threshold="5MiB", part_size="5MiB")
        converted = c.upload(small, purpose="fine-tune", convert="claude")
        assert c.retrieve(fo.id).bytes == small.stat().st_size
        assert {fo.id, large.id, converted.id} <= {f.id for f in c.list_files(page_size=1)}
        assert c.download(large.id, tmp_path / "big-back.jsonl").read_bytes() == big.read_bytes()
        for f in (fo, large, converted):
            assert c.delete(f.id) is True
        with pytest.raises(llmfiles.FileNotFound):
            c.retrieve(fo.id)


def test_credentials_from_the_environment_are_checked_too(
    signed_moto: tuple[str, str, str], make_jsonl: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, key_id, secret = signed_moto
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", url)
    monkeypatch.setenv("LLMFILES_S3_BUCKET", BUCKET)
    with llmfiles.Client("bedrock") as c:
        fo = c.upload(make_jsonl(), purpose="fine-tune")
        c.delete(fo.id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret + "x")
    with llmfiles.Client("bedrock") as c, pytest.raises(llmfiles.AuthenticationError) as info:
        c.upload(make_jsonl(), purpose="fine-tune")
    assert "env AWS_ACCESS_KEY_ID (botocore credential chain)" in str(info.value)
