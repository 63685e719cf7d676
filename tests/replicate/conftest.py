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
