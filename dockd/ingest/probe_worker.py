"""A long-lived probe process: ffprobe's reading of a file, without a process per file.

Run by `ingest/prober.py` as `python3 -I probe_worker.py` with Debian's
python3-av, which links the very libavformat and libavcodec that ffprobe
links (the parent checks the versions match). It makes, per file, the calls
ffprobe makes for `-show_format -show_streams` (fftools/ffprobe.c,
open_input_file): avformat_open_input with scan_all_pmts, then
avformat_find_stream_info, then avcodec_open2 on every stream that has a
decoder, single-threaded as ffprobe's are. So where this says "read", ffprobe
reads too; anything else it says ("error") is sent back to ffprobe itself,
the judge of "unreadable_media".

Protocol (one JSON object per line): it prints {"ready": {...versions}} once,
then for each {"path": "..."} read from stdin one {"ok": <the subset of
ffprobe's JSON that ingest/probe.py parses>} or {"error": "..."}.

Only the standard library and `av` may be imported here: this file runs
under the system's Python, not dockd's virtualenv.
"""

from __future__ import annotations

import ctypes
import gc
import json
import sys
from typing import Any

try:
    import av
except ImportError as exc:  # no python3-av: said in the greeting; dockd uses ffprobe
    av = None
    _NO_AV = str(exc)


class _Descriptor(ctypes.Structure):
    # The head of AVCodecDescriptor (libavcodec/codec_desc.h), stable across versions.
    _fields_ = [("id", ctypes.c_int), ("type", ctypes.c_int), ("name", ctypes.c_char_p)]


def _descriptor_names() -> Any:
    """ffprobe names a codec by its descriptor (`h264`), not by its decoder (`libdav1d`)."""
    try:
        lib = ctypes.CDLL(f"libavcodec.so.{av.library_versions['libavcodec'][0]}")
    except (OSError, KeyError):
        return None
    get = lib.avcodec_descriptor_get
    get.restype = ctypes.POINTER(_Descriptor)
    get.argtypes = [ctypes.c_int]
    return get


def _time(value: int | None, base: Any) -> str | None:
    """A duration as ffprobe prints it: seconds with six decimals."""
    if value is None:
        return None
    return f"{float(value * base) if base is not None else value / 1e6:f}"


def describe(path: str, descriptor: Any) -> dict[str, Any]:
    with av.open(path, options={"scan_all_pmts": "1"}) as container:
        streams = []
        for stream in container.streams:
            context = stream.codec_context
            if context is None:
                raise ValueError("a stream has no decoder")
            context.thread_count = 1
            context.open(strict=False)
            name = context.codec.name
            if descriptor is not None:
                found = descriptor(context.codec.id)
                if found:
                    name = found.contents.name.decode("ascii")
            entry: dict[str, Any] = {
                "codec_type": stream.type,
                "codec_name": name,
                "tags": dict(stream.metadata),
            }
            if stream.type == "video":
                entry["width"] = context.width
                entry["height"] = context.height
            duration = _time(stream.duration, stream.time_base)
            if duration is not None:
                entry["duration"] = duration
            streams.append(entry)
        fmt: dict[str, Any] = {
            "format_name": container.format.name,
            "tags": dict(container.metadata),
        }
        duration = _time(container.duration, None)
        if duration is not None:
            fmt["duration"] = duration
    return {"format": fmt, "streams": streams}


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> None:
    if av is None:
        _say({"error": f"cannot import av: {_NO_AV}"})
        return
    versions = {name: list(v) for name, v in av.library_versions.items()}
    descriptor = _descriptor_names()
    _say({"ready": versions})
    for line in sys.stdin:
        try:
            path = json.loads(line)["path"]
            _say({"ok": describe(path, descriptor)})
        except Exception as exc:
            _say({"error": f"{type(exc).__name__}: {exc}"[:500]})
        # PyAV's containers and streams hold each other in cycles that keep the
        # demuxer's buffers (about 1 MB a file) until a collection: collect now.
        gc.collect()


if __name__ == "__main__":
    main()
