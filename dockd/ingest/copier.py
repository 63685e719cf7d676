"""The copy engine: one read of the source, hashed while written, then proven.

For each attempt (DESIGN §4a step 1):
  read the source once in bounded chunks, hashing and writing each chunk
  to a temporary file in the store; fsync it; drop its cached pages; read
  it back from disk and compare the hash; take a second look at the source
  (size, mtime, inode, bytes read) to see whether it changed meanwhile.
Memory use is one buffer, whatever the file size. An optional `progress`
callback hears of every chunk read from the source (the CLI's bar moves by
bytes, not by whole files); it costs one call per chunk.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from dockd.chunks import hash_fd, read_chunks
from dockd.errors import SourceError, StopRequested, StoreError, VolumeGoneError
from dockd.ingest.resume import Partial, open_partial
from dockd.ingest.volume import GONE_ERRNOS, FileIdentity, Volume
from dockd.store import Store, hash_file, raise_store_error


@dataclass(frozen=True)
class Copy:
    """A proven temporary copy and what the source looked like around it."""

    sha256: str
    size: int
    temp: Path
    before: FileIdentity
    after: FileIdentity
    # Bytes taken from an interrupted copy's proven prefix (ingest/resume.py).
    resumed_from: int = 0

    @property
    def source_changed(self) -> bool:
        return self.before != self.after or self.size != self.before.size


def _read_error(where: str, exc: OSError) -> SourceError:
    message = f"{where}: read error: {exc.strerror}"
    if exc.errno in GONE_ERRNOS:
        return VolumeGoneError(message)
    return SourceError(message)


def hash_source(
    volume: Volume,
    rel_parts: tuple[bytes, ...],
    buffer_size: int,
    progress: Callable[[int], None] | None = None,
) -> tuple[str, int, FileIdentity, FileIdentity]:
    """Hash a source file without copying it: (sha256, bytes read, before, after)."""
    where = b"/".join(rel_parts).decode("utf-8", "backslashreplace")
    with volume.open_file(rel_parts) as src:
        before = FileIdentity.of(os.fstat(src))
        try:
            sha256, size = hash_fd(src, buffer_size, progress)
        except OSError as exc:
            raise _read_error(where, exc) from None
        after = FileIdentity.of(volume.lstat(rel_parts))
    return sha256, size, before, after


@dataclass(frozen=True)
class Resumable:
    """Copy resumably (ingest/resume.py) if the file has at least `interval` bytes."""

    key: str
    interval: int


def copy_verified(
    volume: Volume,
    rel_parts: tuple[bytes, ...],
    store: Store,
    buffer_size: int,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[int], None] | None = None,
    resumable: Resumable | None = None,
    prove: bool = True,
) -> Copy:
    """Copy one source file into a proven temporary file of `store`.

    With `prove=False` the read-back is left to `prove_copy`, which the caller
    must run before the copy goes into the store (a session runs it beside the
    copy of the next file).

    `progress` is called with the length of each chunk copied (the read-back
    that follows is not reported: it re-reads the same bytes); a resumed
    copy first reports its proven prefix at once.

    Raises SourceError / VolumeGoneError for the source, StoreError /
    StoreFullError for the store, OSError for anything else; in every
    error case no temporary file is left behind, except a resumable copy's
    partial file when the camera's side stopped it (SourceError,
    StopRequested): the next copy of that file continues it.
    """
    where = b"/".join(rel_parts).decode("utf-8", "backslashreplace")
    temp: Path | None = None
    partial: Partial | None = None
    try:
        with volume.open_file(rel_parts) as src:
            before = FileIdentity.of(os.fstat(src))
            store.check_space(before.size)
            if resumable is not None and 0 < resumable.interval <= before.size:
                partial = open_partial(
                    store, resumable.key, src, before, resumable.interval, buffer_size, where
                )
                dst, temp = partial.fd, partial.path
                if progress is not None and partial.offset:
                    progress(partial.offset)
            else:
                dst, temp = store.new_temp()
            try:
                sha256, size = _copy_and_sync(
                    src, dst, where, buffer_size, before.size, should_stop, progress, partial
                )
            finally:
                os.close(dst)
            # The second look happens while the file is still open: FAT
            # drivers (and FUSE) may renumber an inode once nothing holds it.
            after = FileIdentity.of(volume.lstat(rel_parts))
        if prove:
            _read_back(temp, sha256, size, buffer_size, where)
    except (SourceError, StopRequested):
        if temp is not None and partial is None:
            store.discard_temp(temp)
        raise
    except BaseException:
        if temp is not None:
            store.discard_temp(temp)
        raise
    resumed = partial.resumed_from if partial else 0
    return Copy(sha256, size, temp, before, after, resumed_from=resumed)


def prove_copy(copy: Copy, store: Store, buffer_size: int, where: str) -> None:
    """The read-back of a copy made with `prove=False`: its bytes, re-read from disk
    (cached pages dropped), must hash as they did when written. On any failure the
    copy is discarded and StoreError raised."""
    try:
        _read_back(copy.temp, copy.sha256, copy.size, buffer_size, where)
    except BaseException:
        store.discard_temp(copy.temp)
        raise


def _read_back(temp: Path, sha256: str, size: int, buffer_size: int, where: str) -> None:
    try:
        read_back, read_size = hash_file(temp, buffer_size)
    except OSError as exc:
        raise raise_store_error("reading a copy back", exc) from None
    if (read_back, read_size) != (sha256, size):
        raise StoreError(f"{where}: the copy read back from disk differs from what was written")


def _copy_and_sync(
    src: int,
    dst: int,
    where: str,
    buffer_size: int,
    size_hint: int,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[int], None] | None = None,
    partial: Partial | None = None,
) -> tuple[str, int]:
    """Read `src` once, hashing and writing each chunk; fsync `dst` and drop its cache.

    With a `partial`, `src` and `dst` are positioned after its proven prefix,
    whose hash state it holds, and every chunk written may be a checkpoint.
    """
    digest = partial.digest if partial else hashlib.sha256()
    size = partial.offset if partial else 0
    # closing(): the read-ahead thread must stop before `src` is closed.
    with closing(read_chunks(src, buffer_size, size_hint)) as chunks:
        while True:
            try:
                chunk = next(chunks, None)
            except OSError as exc:
                raise _read_error(where, exc) from None
            if chunk is None:
                break
            if should_stop is not None and should_stop():
                raise StopRequested(f"{where}: stopped after {size} bytes; left on the camera")
            digest.update(chunk)
            _write_all(dst, chunk)
            size += len(chunk)
            if partial is not None:
                _checkpoint(partial.written, size)
            if progress is not None:
                progress(len(chunk))
    try:
        if partial is not None:
            partial.checkpoint(size)  # a crash during the read-back resumes at the end
        else:
            os.fsync(dst)
        os.posix_fadvise(dst, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError as exc:
        raise raise_store_error("syncing a copy", exc) from None
    return digest.hexdigest(), size


def _checkpoint(written: Callable[[int], None], size: int) -> None:
    try:
        written(size)
    except OSError as exc:
        raise raise_store_error("checkpointing a copy", exc) from None


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        try:
            written = os.write(fd, data)
        except OSError as exc:
            raise raise_store_error("writing a copy", exc) from None
        data = data[written:]
