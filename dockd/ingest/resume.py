"""Resuming a large copy from its proven prefix (断点续传) after a pull or a crash.

A file of at least one checkpoint interval is copied into
`store/partial/<key>.part` instead of `store/tmp/`, where `key` names the
camera and the file's path. Every `interval` bytes (and at the end) the
partial file is fsynced and `<key>.json` is replaced atomically with the
source's size and mtime, the offset reached and the SHA-256 of the bytes
before it, as they were read from the camera. Nothing else changes: the
finished partial is read back from disk, compared and renamed into the
store like any copy.

The next copy of the same file (same camera, path, size and mtime) trusts
the prefix only once it has been re-read from the store's disk (cached pages
dropped) and hashes to the recorded value, and once the camera's last
buffer before the offset equals the partial's. That re-read also rebuilds
the hash state: hashlib cannot save it, and the store's disk is faster than
the camera's link. The file's SHA-256 is still one pass over exactly the
bytes stored. If any of it fails the copy starts from zero.

Only the camera's side may keep a partial: a copy stopped by the camera
(pulled, a read error) or by a stop request keeps it; a copy that failed on
the store's side, or whose source changed, discards it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog

from dockd.chunks import read_chunks
from dockd.ingest.volume import FileIdentity
from dockd.store import Store, fsync_dir

log = structlog.get_logger("dockd.ingest")


def partial_key(serial: str, rel_path: bytes) -> str:
    """The partial's name: one per camera and file path, whatever the bytes."""
    return hashlib.sha256(serial.encode() + b"\0" + rel_path).hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    """What `<key>.json` says: the source as it was, and the prefix proven so far."""

    size: int
    mtime_ns: int
    offset: int
    prefix_sha256: str

    @classmethod
    def load(cls, path: Path) -> Checkpoint | None:
        try:
            data: Any = json.loads(path.read_bytes())
            found = cls(
                size=int(data["size"]),
                mtime_ns=int(data["mtime_ns"]),
                offset=int(data["offset"]),
                prefix_sha256=str(data["prefix_sha256"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return found if 0 < found.offset <= found.size else None


@dataclass
class Partial:
    """A partial copy being written: its file, and where the copy stands."""

    fd: int
    path: Path
    meta: Path
    source: FileIdentity
    interval: int
    digest: Any  # hashlib's sha256 object: the hash of the bytes before `offset`
    offset: int
    resumed_from: int = 0

    def written(self, size: int) -> None:
        """`size` bytes are now written after the resumed prefix: checkpoint if due."""
        if self.offset // self.interval != size // self.interval:
            self.checkpoint(size)
        self.offset = size

    def checkpoint(self, size: int) -> None:
        """Make the first `size` bytes durable and say so (fsync first, then the note)."""
        os.fsync(self.fd)
        point = Checkpoint(
            self.source.size, self.source.mtime_ns, size, self.digest.copy().hexdigest()
        )
        temp = self.meta.with_suffix(".json.new")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, json.dumps(asdict(point), sort_keys=True).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, self.meta)
        fsync_dir(self.meta.parent)


def open_partial(
    store: Store,
    key: str,
    src: int,
    source: FileIdentity,
    interval: int,
    buffer_size: int,
    where: str,
) -> Partial:
    """The partial for `key`, positioned after its proven prefix (or empty).

    `src` is the camera file, open; on return it is positioned at the same offset.
    """
    path, meta = store.partial_paths(key)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        point = Checkpoint.load(meta)
        digest, offset, refused = _proven_prefix(fd, src, point, source, buffer_size)
        if refused:
            log.warning("ingest.file.resume_refused", path=where, reason=refused)
        elif offset:
            log.info("ingest.file.resumed", path=where, offset=offset, size=source.size)
        os.ftruncate(fd, offset)
        os.lseek(fd, offset, os.SEEK_SET)
        os.lseek(src, offset, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return Partial(fd, path, meta, source, interval, digest, offset, resumed_from=offset)


def _proven_prefix(
    fd: int, src: int, point: Checkpoint | None, source: FileIdentity, buffer_size: int
) -> tuple[Any, int, str | None]:
    """(hash state, offset, why not) for the partial open at `fd`."""
    digest = hashlib.sha256()
    if point is None:
        return digest, 0, None
    if (point.size, point.mtime_ns) != (source.size, source.mtime_ns):
        return digest, 0, "the camera's file changed since the interrupted copy"
    if os.fstat(fd).st_size < point.offset:
        return digest, 0, "the partial copy is shorter than its checkpoint"
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # from the disk, not from memory
    left = point.offset
    with contextlib.closing(read_chunks(fd, buffer_size, point.offset)) as chunks:
        for chunk in chunks:
            piece = chunk[:left]
            digest.update(piece)
            left -= len(piece)
            if not left:
                break
    if left or digest.hexdigest() != point.prefix_sha256:
        return hashlib.sha256(), 0, "the partial copy does not hash to its checkpoint"
    # The camera's last buffer before the offset must still be what was stored.
    tail = min(buffer_size, point.offset)
    if os.pread(src, tail, point.offset - tail) != os.pread(fd, tail, point.offset - tail):
        return hashlib.sha256(), 0, "the camera's file differs from the partial copy"
    return digest, point.offset, None
