"""The Ceph cluster the replication tests share (one per test session, ~15 s)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.replicate.ceph import Ceph, S3User, missing_binaries


@pytest.fixture(scope="session")
def ceph() -> Iterator[tuple[Ceph, S3User]]:
    missing = missing_binaries()
    if missing:
        # Not a skip: the Makefile installs Ceph; without it replication is untested.
        pytest.fail(f"Ceph is not installed ({', '.join(missing)}): run make setup")
    root = Path(tempfile.mkdtemp(prefix="dockd-ceph-"))
    cluster = Ceph(root)
    try:
        user = cluster.start()
        yield cluster, user
    finally:
        cluster.stop()
        # Kept when a daemon would not stop (its logs say why); else nothing stays.
        if not cluster.running():
            shutil.rmtree(root, ignore_errors=True)


def new_bucket(user: S3User, lock: bool = True) -> str:
    """A fresh bucket (Object Lock on unless `lock` is False; versioning comes with it)."""
    import uuid

    name = f"ev-{uuid.uuid4().hex[:12]}"
    user.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=lock)
    return name


def credentials_file(folder: Path, user: S3User, secret: str | None = None) -> Path:
    """An AWS-style credentials file, 0600, as README "Replication" tells IT to write."""
    path = folder / "s3-credentials"
    path.write_text(
        "[default]\n"
        f"aws_access_key_id = {user.access_key}\n"
        f"aws_secret_access_key = {secret or user.secret_key}\n"
    )
    path.chmod(0o600)
    return path


def replicate_toml(user: S3User, bucket: str, credentials: Path, **extra: object) -> str:
    """The [replicate] table of a dock's config for `bucket` on the test cluster."""
    lines = [
        "[replicate]",
        f'endpoint = "{user.endpoint}"',
        f'bucket = "{bucket}"',
        f'credentials = "{credentials}"',
        "part_size = 5242880",
    ]
    for key, value in extra.items():
        text = str(value).lower() if isinstance(value, bool) else repr(value)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"
