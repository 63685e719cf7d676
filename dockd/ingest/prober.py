"""Probing many files with a few long-lived processes instead of one ffprobe each.

An ffprobe costs about 45 ms of CPU to start (it loads all of libav*) and
under 5 ms to read a camera clip. A `Prober` keeps up to `workers` copies of
`probe_worker.py` running under the system's Python with Debian's
python3-av, which calls the same libavformat and libavcodec functions that
ffprobe calls, in the same order. What a worker reads is reported as read;
everything else goes to ffprobe, which stays the only judge of
"unreadable_media":
- a file a worker cannot read (ffprobe then gives its own error message),
- a worker that is slower than `timeout` (it is killed; a new one starts),
- a worker that dies or prints nonsense,
- no worker at all: no python3-av, or libraries other than ffprobe's (the
  versions are compared when the first worker starts; after a failed start
  workers are tried again `retry_after_s` later).

`probe()` may be called from several threads at once (a dock's sessions share
one Prober); each call uses an idle worker, starts one while fewer than
`workers` exist, or waits for one to be free.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog

from dockd.ingest.probe import MediaInfo, parse_ffprobe, probe

log = structlog.get_logger("dockd.ingest")

WORKER = Path(__file__).with_name("probe_worker.py")
_START_TIMEOUT_S = 15.0
_LIBRARIES = ("libavformat", "libavcodec", "libavutil")


class WorkerFailed(Exception):
    """The worker gave no usable answer (dead, slow or garbled); ffprobe decides."""


class _Worker:
    def __init__(self, python: str) -> None:
        # -I: no PYTHON* variables, no user site, not the caller's directory.
        self.proc = subprocess.Popen(
            [python, "-I", str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
        )
        self._buffer = b""

    def ask(self, message: dict[str, Any] | None, timeout: float) -> dict[str, Any]:
        assert self.proc.stdin is not None
        try:
            if message is not None:
                self.proc.stdin.write(json.dumps(message).encode() + b"\n")
                self.proc.stdin.flush()
            line = self._line(timeout)
            answer = json.loads(line)
        except (OSError, ValueError) as exc:
            raise WorkerFailed(f"{type(exc).__name__}: {exc}") from None
        if not isinstance(answer, dict):
            raise WorkerFailed("answer is not an object")
        return answer

    def _line(self, timeout: float) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    raise WorkerFailed(f"no answer within {timeout:g} s")
                data = os.read(fd, 65536)
                if not data:
                    raise WorkerFailed(f"worker exited ({self.proc.wait()})")
                self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):  # a dead worker's pipe: unflushed bytes
                    stream.close()


def ffprobe_libraries(ffprobe: str, timeout: float) -> dict[str, list[int]]:
    """The library versions ffprobe runs with, from `ffprobe -version`."""
    try:
        proc = subprocess.run(
            [ffprobe, "-version"], capture_output=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    # "libavformat    59. 27.100 / 59. 27.100": the second triple is the one loaded.
    pattern = re.compile(rb"^(lib\w+)\s+[\d. ]+/\s*(\d+)\.\s*(\d+)\.\s*(\d+)", re.MULTILINE)
    return {m[1].decode(): [int(m[2]), int(m[3]), int(m[4])] for m in pattern.finditer(proc.stdout)}


class Prober:
    """Probe files through long-lived workers; ffprobe where they are not sure."""

    def __init__(
        self,
        ffprobe: str = "ffprobe",
        timeout: float = 60.0,
        python: str = "/usr/bin/python3",
        workers: int = 2,
        retry_after_s: float = 300.0,
    ) -> None:
        self.ffprobe = ffprobe
        # A daemon runs for months: python3-av installed after a warning from
        # `dockd doctor` is picked up this long after the last failed start.
        self.retry_after_s = retry_after_s
        self._retry_at = 0.0
        self.timeout = timeout
        self.python = python
        self.limit = workers if python else 0
        self._idle: list[_Worker] = []
        self._count = 0
        self._lock = threading.Condition()
        self._checked = False
        self._closed = False
        self.unavailable: str | None = None if self.limit else "no probe workers configured"
        self.fallbacks = 0

    def probe(self, path: Path) -> MediaInfo:
        worker = self._take()
        if worker is None:
            return self._ffprobe(path)
        try:
            answer = worker.ask({"path": str(path)}, self.timeout)
        except WorkerFailed as exc:
            log.warning("ingest.probe_worker.failed", path=str(path), reason=str(exc))
            self._drop(worker)
            return self._ffprobe(path)
        self._give_back(worker)
        data = answer.get("ok")
        if isinstance(data, dict):
            media = parse_ffprobe(data)
            if media.readable:
                return media
        return self._ffprobe(path)

    def available(self) -> bool:
        """Start a worker now (or find one idle): whether files will be read without
        an ffprobe each. `unavailable` says why not."""
        worker = self._take()
        if worker is not None:
            self._give_back(worker)
        return worker is not None

    def _ffprobe(self, path: Path) -> MediaInfo:
        with self._lock:
            self.fallbacks += 1
        return probe(path, self.ffprobe, self.timeout)

    def _take(self) -> _Worker | None:
        with self._lock:
            if self.unavailable is not None and self.limit and time.monotonic() >= self._retry_at:
                self.unavailable = None  # try once more
            while (
                not self._idle
                and self._count >= self.limit
                and self.unavailable is None
                and not self._closed
            ):
                self._lock.wait()  # all busy: a probe takes milliseconds
            if self._idle:
                return self._idle.pop()
            if self.unavailable is not None or self._closed:
                return None
            self._count += 1
        try:
            return self._start()
        except WorkerFailed as exc:
            with self._lock:
                self._count -= 1
                self._lock.notify_all()
                if self.unavailable is None:
                    self.unavailable = str(exc)
                    self._retry_at = time.monotonic() + self.retry_after_s
                    log.warning(
                        "ingest.probe_worker.unavailable",
                        reason=str(exc),
                        retry_in_s=self.retry_after_s,
                    )
            return None

    def _start(self) -> _Worker:
        try:
            worker = _Worker(self.python)
        except OSError as exc:
            raise WorkerFailed(f"cannot start {self.python}: {exc.strerror}") from None
        try:
            hello = worker.ask(None, _START_TIMEOUT_S)
            if "ready" not in hello:
                raise WorkerFailed(str(hello.get("error", "no greeting"))[:300])
            if not self._checked:
                self._check_libraries(hello["ready"])
                self._checked = True
        except BaseException:
            worker.close()
            raise
        return worker

    def _check_libraries(self, theirs: dict[str, Any]) -> None:
        ours = ffprobe_libraries(self.ffprobe, min(self.timeout, 10.0))
        for name in _LIBRARIES:
            if ours.get(name) != theirs.get(name):
                raise WorkerFailed(
                    f"{name} differs: ffprobe has {ours.get(name)}, python3-av {theirs.get(name)}"
                )

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(worker)
                self._lock.notify()
                return
        self._drop(worker)  # closed while it worked

    def _drop(self, worker: _Worker) -> None:
        worker.close()
        with self._lock:
            self._count -= 1
            self._lock.notify()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()
            idle, self._idle = self._idle, []
            self._count -= len(idle)
        for worker in idle:
            worker.close()

    def __enter__(self) -> Prober:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
