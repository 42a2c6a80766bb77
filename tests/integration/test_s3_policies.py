"""The full stack's MinIO users hold only what their service needs: the policy files that
`docker/minio/provision.sh` gives MinIO are given, unchanged, to a real S3 server's IAM API (SeaweedFS
takes the same IAM policy documents), one user per policy, and each user's keys are tried on both
buckets: the MLflow server reads and writes `mlflow`, DVC reads and writes `dvc`, the API only reads
`mlflow`; everything else is AccessDenied."""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from tests.integration.conftest import S3Server

ROOT = Path(__file__).resolve().parents[2]
MINIO = ROOT / "docker" / "minio"
# what each service's user may do on each bucket: read (get, list), write (put, delete, multipart)
EXPECTED = {
    "mlflow": {"mlflow": {"read", "write"}, "dvc": set()},
    "dvc": {"mlflow": set(), "dvc": {"read", "write"}},
    "api": {"mlflow": {"read"}, "dvc": set()},
}


def _client(kind: str, s3: S3Server, key: str, secret: str) -> Any:
    return boto3.client(
        kind,
        endpoint_url=s3.endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
    )


def provisioned() -> dict[str, tuple[str, str]]:
    """policy name -> (access key variable, secret key variable), as provision.sh pairs them."""
    script = (MINIO / "provision.sh").read_text()
    found = re.findall(r'^provision (\w+) "\$(\w+)" "\$(\w+)"$', script, flags=re.M)
    return {policy: (key, secret) for policy, key, secret in found}


def test_every_policy_file_is_provisioned_for_its_service() -> None:
    assert set(provisioned()) == {p.stem for p in (MINIO / "policies").glob("*.json")} == set(EXPECTED)
    for policy, (key, secret) in provisioned().items():
        assert (key, secret) == (f"MINIO_{policy.upper()}_ACCESS_KEY", f"MINIO_{policy.upper()}_SECRET_KEY")


def test_policy_files_name_one_bucket_each_and_no_wildcard() -> None:
    for path in sorted((MINIO / "policies").glob("*.json")):
        document = json.loads(path.read_text())
        buckets = set()
        for statement in document["Statement"]:
            assert statement["Effect"] == "Allow", path.name
            assert all(re.fullmatch(r"s3:[A-Za-z]+", a) for a in statement["Action"]), statement
            for resource in statement["Resource"]:
                bucket = re.fullmatch(r"arn:aws:s3:::(\w+)(/\*)?", resource)
                assert bucket, resource
                buckets.add(bucket.group(1))
        (bucket,) = buckets
        allowed = {bucket} if EXPECTED[path.stem][bucket] else set()
        assert allowed == {b for b, rights in EXPECTED[path.stem].items() if rights}, path.name
        actions = {a for s in document["Statement"] for a in s["Action"]}
        writes = {"s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}
        assert bool(actions & writes) == ("write" in EXPECTED[path.stem][bucket]), path.name


@pytest.fixture(scope="module")
def users(s3_server: S3Server) -> dict[str, Any]:
    """One user per policy file, created through the server's IAM API with that file's document; yields
    an S3 client per service."""
    admin = s3_server.env
    iam = _client("iam", s3_server, admin["AWS_ACCESS_KEY_ID"], admin["AWS_SECRET_ACCESS_KEY"])
    clients = {}
    suffix = uuid.uuid4().hex[:8]
    for policy in provisioned():
        name = f"rakuten-{policy}-{suffix}"
        document = (MINIO / "policies" / f"{policy}.json").read_text()
        arn = iam.create_policy(PolicyName=name, PolicyDocument=document)["Policy"]["Arn"]
        iam.create_user(UserName=name)
        iam.attach_user_policy(UserName=name, PolicyArn=arn)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        clients[policy] = _client("s3", s3_server, key["AccessKeyId"], key["SecretAccessKey"])
    return clients


def _allowed(call: Callable[[], object]) -> bool:
    try:
        call()
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "AccessDenied", exc.response["Error"]
        assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        return False
    return True


def _tried(s3: Any, bucket: str, existing: str, ours: str) -> dict[str, bool]:
    """What these keys may do on the bucket: read `existing`, list, write `ours`, delete `existing`."""
    # a file over the multipart threshold: DVC and MLflow upload large files in parts
    parts = TransferConfig(multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20)
    return {
        "get": _allowed(lambda: s3.get_object(Bucket=bucket, Key=existing)["Body"].read()),
        "list": _allowed(lambda: s3.list_objects_v2(Bucket=bucket, Prefix="seeded/")),
        "put": _allowed(lambda: s3.put_object(Bucket=bucket, Key=ours, Body=b"x")),
        "multipart": _allowed(
            lambda: s3.upload_fileobj(io.BytesIO(b"y" * 6 * 2**20), bucket, ours + ".big", Config=parts)
        ),
        "delete": _allowed(lambda: s3.delete_object(Bucket=bucket, Key=existing)),
    }


@pytest.mark.parametrize("service", sorted(EXPECTED))
def test_each_service_s_keys_reach_only_its_buckets(
    s3_server: S3Server, users: dict[str, Any], service: str
) -> None:
    admin = _client(
        "s3", s3_server, s3_server.env["AWS_ACCESS_KEY_ID"], s3_server.env["AWS_SECRET_ACCESS_KEY"]
    )
    s3 = users[service]
    for bucket, rights in EXPECTED[service].items():
        existing = f"seeded/{uuid.uuid4().hex}"
        admin.put_object(Bucket=bucket, Key=existing, Body=b"written by the administrator")
        ours = f"{service}/{uuid.uuid4().hex}"
        can = _tried(s3, bucket, existing, ours)
        expected = {
            "get": "read" in rights,
            "list": "read" in rights,
            "put": "write" in rights,
            "multipart": "write" in rights,
            "delete": "write" in rights,
        }
        assert can == expected, (service, bucket)
        if "write" not in rights:  # refused writes left nothing behind
            assert [
                o["Key"] for o in admin.list_objects_v2(Bucket=bucket, Prefix=ours).get("Contents", [])
            ] == []
    assert not _allowed(lambda: s3.create_bucket(Bucket=f"new-{service}"))
