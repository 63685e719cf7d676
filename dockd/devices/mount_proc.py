"""The processes a mount runs: one-shot commands with a timeout, and the FUSE
tools that stay in the foreground as dockd's children (devices/mount.py)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading

from dockd.devices.mount_argv import MountError

# libfuse's -d (debug) chatter, which exfat-fuse cannot run in the foreground
# without: request traces ("unique: 4, opcode: …", "getattr /x", "read[0] …").
# Kept out of error messages; the tools' own errors look different
# ("ERROR: failed to open …", "open() (RDONLY) error: …").
_FUSE_DEBUG = re.compile(
    r"^(unique: \d|INIT: |flags=0x|max_\w+=|congestion_threshold=|time_gran=|nullpath_ok:|"
    r"nopath:|utime_omit_ok:|FUSE library version|NODEID: |"
    # fusefat's own chatter: its banner and a line per cluster read.
    r"Cluster|fat type:|Fsioff:|--- \w+ ---|dataclusters|first data byte|\S+ fat off|"
    r"fat_eoc_value|"
    r"(getattr|readdir|read|write|open|opendir|release|releasedir|lookup|unlink|rmdir|mkdir|"
    r"statfs|flush|fsync|fsyncdir|create|rename|truncate|ftruncate|utimens|chmod|chown|"
    r"access|destroy|forget|LOOKUP|FORGET)(\[\d+\])?( |$))"
)


# -- processes ------------------------------------------------------------------------------


def _run(argv: list[str], timeout: float, what: str) -> tuple[int, str]:
    """Run a tool; (exit status, stderr). MountError if it is missing or hangs.

    Not subprocess.run(timeout=…): after a timeout it waits without limit for
    the killed child, and a mount stuck on a dead USB device cannot die.
    """
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            close_fds=True,
        )
    except OSError as exc:
        raise MountError(
            f"{what}: cannot run {argv[0]} ({exc.strerror}); `dockd doctor` lists what is missing"
        ) from None
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        # A process stuck in the kernel cannot even die: leave it, do not hang too.
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=2)
        raise MountError(
            f"{what}: {argv[0]} did not finish within {timeout:g} s (a hung USB device?); "
            "unplug the camera and dock it again"
        ) from None
    return proc.returncode, _one_line(err.decode("utf-8", errors="replace"))


def _one_line(text: str) -> str:
    """Tool output as one clause of an error message (which must stay one log line)."""
    lines = (line.strip().rstrip(".") for line in text.splitlines())
    return "; ".join(line for line in lines if line)


def _exit_text(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:  # pragma: no cover - unknown signal number
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


class _FuseDaemon:
    """A FUSE tool running in the foreground, with the tail of its stderr.

    Its own session, so that a Ctrl-C meant for dockd does not unmount the
    camera under a running copy. stderr is read continuously by a thread:
    a full pipe would stall the file system.
    """

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.argv = argv
        try:
            self.process = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # both tools print a banner there
                stderr=subprocess.PIPE,
                close_fds=True,
                start_new_session=True,
            )
        except OSError as exc:
            raise MountError(
                f"cannot run {argv[0]} ({exc.strerror}); `dockd doctor` lists what is missing"
            ) from None
        self._tail = bytearray()
        self._reader = threading.Thread(target=self._read, name="dockd-fuse-stderr", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        # Big reads, no per-line work: fusefat writes a debug line for every
        # cluster it reads (~260,000 per GiB at 4 KiB clusters).
        stream = self.process.stderr
        assert stream is not None
        with stream:
            fd = stream.fileno()
            while chunk := os.read(fd, 1 << 16):
                self._tail += chunk
                del self._tail[: -(1 << 16)]

    def _said(self) -> list[str]:
        lines = bytes(self._tail).decode("utf-8", errors="replace").splitlines()
        kept = [line.strip() for line in lines if line.strip()]
        return [line for line in kept if not _FUSE_DEBUG.match(line)][-20:]

    def message(self) -> str:
        """How it ended and what it said, for a MountError."""
        self._reader.join(1.0)
        said = _one_line("\n".join(self._said()))[-600:]
        code = self.process.poll()
        status = f"{self.argv[0]} {_exit_text(code)}" if code is not None else self.argv[0]
        return f"{status}: {said}" if said else status

    def wait(self, timeout: float) -> bool:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.wait(5.0)
