"""The Ceph cluster the replication tests share (one per test session, ~15 s)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


class Relay:
    """A TCP relay in front of radosgw whose link can be cut and mended, so that a test
    takes the bucket away (connections refused, those open reset) without stopping
    the shared radosgw (a restart costs the next test some 20 s)."""

    def __init__(self, target_port: int) -> None:
        import socket

        self.target = ("127.0.0.1", target_port)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = int(probe.getsockname()[1])
        probe.close()
        self._open: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.mend()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def mend(self) -> None:
        import socket
        import threading

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        import contextlib
        import socket

        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        for conn in self._open:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self._open.clear()

    def _accept(self, listener: Any) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: Any, dst: Any) -> None:
        import contextlib

        with contextlib.suppress(OSError):
            while data := src.recv(1 << 16):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(1)
