"""The doctor's checks of what reads media: ffprobe, and the probe workers beside it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dockd.config import Config
from dockd.doctor.check import Check, _fail, _pass
from dockd.ingest.prober import Prober

# (argv, timeout seconds) -> (exit status, output). 127: not found, 124: timed out.
Runner = Callable[[Sequence[str], float], tuple[int, str]]


def check_ffprobe(config: Config, run: Runner) -> Check:
    program = config.ingest.ffprobe
    status, output = run([program, "-version"], min(config.ingest.ffprobe_timeout, 10.0))
    if status == 0:
        first = output.splitlines()[0] if output else "(no output)"
        return _pass("ffprobe", f"{program}: {first}")
    return _fail(
        "ffprobe",
        "error",
        f"{program} -version failed ({status}): {output}",
        "apt-get install ffmpeg, or set ingest.ffprobe to its full path "
        "(without it every recording is flagged unreadable_media)",
    )


def check_probe_workers(config: Config) -> Check:
    """A worker starts and runs ffprobe's libraries: without one, every file costs
    an ffprobe process (slower, never less exact)."""
    cfg = config.ingest
    if not cfg.probe_python:
        return _pass("probe_workers", "off (ingest.probe_python is empty): one ffprobe per file")
    with Prober(cfg.ffprobe, min(cfg.ffprobe_timeout, 10.0), cfg.probe_python, 1) as prober:
        if prober.available():
            return _pass("probe_workers", f"{cfg.probe_python}: python3-av on ffprobe's libraries")
    return _fail(
        "probe_workers",
        "warning",
        f"no probe worker: {prober.unavailable}; each file costs an ffprobe (about 45 ms)",
        "apt-get install python3-av (Debian's, built on the same FFmpeg as ffprobe), or set "
        "ingest.probe_python to a Python that has it",
    )
