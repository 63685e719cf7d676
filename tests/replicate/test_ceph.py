"""The S3 engine the replication stage relies on behaves as dockd assumes: a bucket
with Object Lock keeps a COMPLIANCE version against deletion and shortening, versioning
comes with the lock, and a new version never replaces a locked one."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from tests.replicate.ceph import Ceph, S3User


def test_compliance_mode_refuses_deletion_and_shortening(ceph: tuple[Ceph, S3User]) -> None:
    _, user = ceph
    s3 = user.client()
    bucket = f"evidence-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    lock = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    body = b"evidence bytes"
    sha = hashlib.sha256(body).hexdigest()
    put = s3.put_object(Bucket=bucket, Key=f"objects/sha256/{sha[:2]}/{sha}", Body=body,
                        Metadata={"sha256": sha})  # fmt: skip
    key, version = f"objects/sha256/{sha[:2]}/{sha}", put["VersionId"]
    until = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    s3.put_object_retention(Bucket=bucket, Key=key, VersionId=version,
                            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until})  # fmt: skip
    head = s3.head_object(Bucket=bucket, Key=key, VersionId=version)
    assert head["ObjectLockMode"] == "COMPLIANCE" and head["ObjectLockRetainUntilDate"] == until
    assert head["Metadata"]["sha256"] == sha and head["ContentLength"] == len(body)
    for attempt in (
        lambda: s3.delete_object(Bucket=bucket, Key=key, VersionId=version),
        lambda: s3.delete_object(
            Bucket=bucket, Key=key, VersionId=version, BypassGovernanceRetention=True
        ),
        lambda: s3.put_object_retention(
            Bucket=bucket,
            Key=key,
            VersionId=version,
            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until - timedelta(days=1)},
        ),
    ):
        with pytest.raises(ClientError) as refused:
            attempt()
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
    # Longer is allowed: the tier raised extends the lock.
    s3.put_object_retention(Bucket=bucket, Key=key, VersionId=version,
                            Retention={"Mode": "COMPLIANCE",
                                       "RetainUntilDate": until + timedelta(days=30)})  # fmt: skip
    # A plain delete only adds a marker, and an overwrite a new version: the locked
    # version is still there, byte for byte.
    s3.delete_object(Bucket=bucket, Key=key)
    s3.put_object(Bucket=bucket, Key=key, Body=b"forged")
    kept = s3.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"].read()
    assert kept == body


def test_the_readmes_bucket_set_up_is_accepted(ceph: tuple[Ceph, S3User]) -> None:
    """README "Replication": a bucket with Object Lock and the lifecycle rule that
    aborts multipart uploads a dock lost; dockd's check of the target then passes."""
    from dockd.replicate.bucket import Bucket

    _, user = ceph
    s3 = user.client()
    bucket = f"evidence-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    rule = {
        "ID": "abort-lost-uploads",
        "Status": "Enabled",
        "Filter": {"Prefix": ""},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
    }
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [rule]})
    held = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert held[0]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 7
    Bucket(s3, bucket).check_target()
