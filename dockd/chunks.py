"""Reading a file in bounded chunks, with the next reads running ahead in a thread.

Hashing (hashlib releases the GIL on large buffers) and reading from disk
then overlap on two cores. Memory stays bounded: `depth + 1` buffers,
whatever the file size. Errors from the reader thread are raised in the
caller unchanged, so an OSError still says which errno it was.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import closing, suppress

# Below this many buffers' worth of data a thread costs more than it saves.
_INLINE_BUFFERS = 4
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)


def return_buffers_to_the_system() -> None:
    """Have glibc give every copy buffer back to the kernel when it is freed.

    glibc raises its mmap threshold to the size of the last mmapped block freed,
    so after the first file every 1 MiB buffer comes from a thread's heap arena
    instead, and those arenas (one per copying, reading-back and probing thread)
    keep their peak: 4 to 5 MiB of dockd's resident memory (bench/ingest.py).
    A fixed threshold keeps buffers in mmap. Does nothing off glibc.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return
    with suppress(OSError, AttributeError):
        ctypes.CDLL(name).mallopt(_M_MMAP_THRESHOLD, 256 * 1024)


def read_chunks(
    fd: int, buffer_size: int, size_hint: int = -1, depth: int = 2
) -> Generator[memoryview, None, None]:
    """Yield successive chunks of `fd` until EOF.

    A yielded view is valid only until the next one is requested.
    """
    if 0 <= size_hint <= buffer_size * _INLINE_BUFFERS:
        yield from _read_inline(fd, buffer_size)
        return
    free: queue.Queue[bytearray] = queue.Queue()
    for _ in range(depth + 1):
        free.put(bytearray(buffer_size))
    filled: queue.Queue[tuple[bytearray, int] | BaseException] = queue.Queue()
    stop = threading.Event()

    def produce() -> None:
        while not stop.is_set():
            buf = free.get()
            if stop.is_set():
                return
            try:
                n = os.readv(fd, [buf])
            except BaseException as exc:  # handed to the consumer, never lost
                filled.put(exc)
                return
            filled.put((buf, n))
            if n == 0:
                return

    reader = threading.Thread(target=produce, name="dockd-read", daemon=True)
    reader.start()
    try:
        while True:
            item = filled.get()
            if isinstance(item, BaseException):
                raise item
            buf, n = item
            if n == 0:
                return
            yield memoryview(buf)[:n]
            free.put(buf)
    finally:
        stop.set()
        free.put(bytearray(0))  # wake the reader if it waits for a buffer
        reader.join()


def hash_fd(
    fd: int, buffer_size: int, progress: Callable[[int], None] | None = None
) -> tuple[str, int]:
    """SHA-256 (hex) and length of what `fd` yields from its offset to EOF.

    `progress` is called with each chunk's length once it is hashed.
    """
    digest = hashlib.sha256()
    size = 0
    # closing(): the read-ahead thread must stop before the caller closes `fd`.
    with closing(read_chunks(fd, buffer_size, os.fstat(fd).st_size)) as chunks:
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            if progress is not None:
                progress(len(chunk))
    return digest.hexdigest(), size


def _read_inline(fd: int, buffer_size: int) -> Iterator[memoryview]:
    buf = bytearray(buffer_size)
    view = memoryview(buf)
    while n := os.readv(fd, [buf]):
        yield view[:n]
