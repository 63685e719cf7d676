"""The bucket layer against a real radosgw: refused targets, single and multipart
uploads checked by the server (Content-MD5) and proven by HEAD, locks that only grow.
(radosgw killed mid-multipart: test_replication.py, through the queue.)"""

from __future__ import annotations

import hashlib
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dockd.errors import ConfigError
from dockd.replicate.bucket import MIN_PART, Bucket, BucketError
from dockd.replicate.keys import object_key
from tests.replicate.ceph import Ceph, S3User


def _bucket(user: S3User, lock: bool = True) -> Bucket:
    s3 = user.client()
    name = f"ev-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=lock)
    return Bucket(s3, name)


def _file(tmp_path: Path, size: int) -> tuple[Path, str]:
    path = tmp_path / f"clip-{size}"
    path.write_bytes(os.urandom(size))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_bad_targets_are_refused_naming_the_setting(ceph: tuple[Ceph, S3User]) -> None:
    _, user = ceph
    _bucket(user).check_target()  # a good one passes
    with pytest.raises(ConfigError, match=r"has no Object Lock|Object Lock disabled"):
        _bucket(user, lock=False).check_target()
    with pytest.raises(ConfigError, match=r"replicate\.bucket: no bucket"):
        Bucket(user.client(), "no-such-bucket-here").check_target()
    wrong = user.client(secret_key="not-the-secret")
    with pytest.raises(ConfigError, match=r"replicate\.credentials"):
        Bucket(wrong, _bucket(user).name).check_target()
    # No answer is not a wrong setting: the dock carries on offline and tries again.
    gone = user.client(endpoint="http://127.0.0.1:9")
    with pytest.raises(BucketError, match=r"replicate\.endpoint: cannot reach"):
        Bucket(gone, "x-bucket").check_target()


@pytest.mark.parametrize("size", [1000, 2 * MIN_PART + 12345])
def test_an_upload_is_locked_and_proven(
    ceph: tuple[Ceph, S3User], tmp_path: Path, size: int
) -> None:
    _, user = ceph
    bucket = _bucket(user)
    path, sha = _file(tmp_path, size)
    until = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    up = bucket.upload(object_key("dockd/test", sha), path, sha, size, until, MIN_PART)
    assert bucket.proven(up)
    got = bucket.s3.get_object(Bucket=bucket.name, Key=up.key, VersionId=up.version_id)
    assert hashlib.sha256(got["Body"].read()).hexdigest() == sha
    # Longer only: extending works, shortening is refused by the server.
    bucket.extend(up.key, up.version_id, until + timedelta(days=10))
    with pytest.raises(BucketError, match="cannot extend"):
        bucket.extend(up.key, up.version_id, until)
    # Claims that do not hold are not proven.
    assert not bucket.proven(type(up)(up.key, up.version_id, size + 1, sha, until))
    assert not bucket.proven(type(up)(up.key, up.version_id, size, "0" * 64, until))
    later = until + timedelta(days=400)
    assert not bucket.proven(type(up)(up.key, up.version_id, size, sha, later))


def test_bytes_the_server_did_not_get_are_refused(
    ceph: tuple[Ceph, S3User], tmp_path: Path
) -> None:
    _, user = ceph
    bucket = _bucket(user)
    path, sha = _file(tmp_path, 3000)
    until = datetime.now(UTC) + timedelta(days=1)
    original = bucket.s3.put_object

    def corrupted(**kwargs: object) -> object:  # the wire flips a byte after the MD5
        body = bytearray(kwargs["Body"])  # type: ignore[arg-type]
        body[0] ^= 1
        return original(**{**kwargs, "Body": bytes(body)})

    bucket.s3.put_object = corrupted
    with pytest.raises(BucketError, match=r"BadDigest|InvalidDigest"):
        bucket.upload(object_key("p", sha), path, sha, 3000, until, MIN_PART)
