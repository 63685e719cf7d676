"""What ffprobe would say of an MP4/MOV, read from its boxes in-process, or "not sure".

A camera's clip is an ISO BMFF file (ISO/IEC 14496-12): `ftyp`, `mdat` and
`moov` boxes. Reading `moov` (mvhd, each trak's tkhd/mdhd/hdlr/stsd and its
sample tables) gives what `ffprobe -show_format -show_streams` prints of it
and dockd keeps (probe.MediaInfo): the duration, the codecs, the frame size
and the creation time, in well under a millisecond, where ffprobe costs a
process and ~50 ms a file (issue 18: 10,000 small files took 9 minutes).

It is a fast path, not the judge. `fast_probe` answers only when the file
is whole and plain: every top-level box inside the file, one `moov`, an
`mdat`, no fragments, every track's sample table present with its chunks
inside an `mdat`, codecs it knows. Anything else (a truncated or odd file,
an unknown codec, QuickTime without `ftyp`) is None, and ffprobe decides,
so "unreadable_media" is still ffprobe's word. It checks what libavformat
checks while reading the header (tables that fit their boxes, stsc against
stco, sample sizes, data references, the AAC and AVC configurations), as a
damage fuzz test against real ffprobe found them; that test still finds,
about once in 800 randomly damaged clips, a file ffprobe refuses and this
calls readable, so `ingest.fast_probe` is off by default. Values follow ffprobe's rules
(format duration from mvhd, rounded to the microsecond as libavformat does;
creation time from mvhd, else the video track's mdhd); tests check they are
equal to ffprobe's on real clips.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dockd.ingest.probe import MediaInfo, creation_time_of

FORMAT_NAME = "mov,mp4,m4a,3gp,3g2,mj2"  # what ffprobe calls every ISO BMFF file
MP4_EPOCH = datetime(1904, 1, 1, tzinfo=UTC)
MOOV_LIMIT = 64 << 20  # a moov larger than this is not a camera clip's: ffprobe decides

# Sample entry fourcc -> ffprobe's codec_name. Anything else: not sure.
VIDEO_CODECS = {b"avc1": "h264", b"avc3": "h264", b"hvc1": "hevc", b"hev1": "hevc",
                b"mp4v": "mpeg4", b"jpeg": "mjpeg", b"mjpa": "mjpeg"}  # fmt: skip
AUDIO_CODECS = {b"sowt": "pcm_s16le", b"twos": "pcm_s16be", b"ulaw": "pcm_mulaw",
                b"alaw": "pcm_alaw"}  # fmt: skip
# mp4a's objectTypeIndication (esds) -> codec: AAC (MPEG-4, and MPEG-2's profiles).
MP4A_CODECS = {0x40: "aac", 0x66: "aac", 0x67: "aac", 0x68: "aac", 0x69: "mp3", 0x6B: "mp3"}


# The sample tables that are a count and that many fixed-size entries: (bytes per entry).
TABLE_WIDTHS = {b"stts": 8, b"ctts": 8, b"stss": 4, b"stps": 4, b"stsc": 12, b"stco": 4,
                b"co64": 8}  # fmt: skip


# Video sample entries whose decoder configuration box must be there and sane.
CODEC_CONFIG = {b"avc1": b"avcC", b"avc3": b"avcC", b"hvc1": b"hvcC", b"hev1": b"hvcC"}


class Unsure(Exception):
    """The file is not plain enough to answer for: ffprobe decides."""


def _box_header(data: bytes, at: int, room: int) -> tuple[bytes, int, int]:
    """The box header at data[at:]: (type, header length, box size), the box `room` bytes
    long at most (0 means "to the end"); Unsure if it is cut off or does not fit."""
    if min(room, len(data) - at) < 8:
        raise Unsure("a box header is cut off")
    size, kind = struct.unpack_from(">I4s", data, at)
    header = 8
    if size == 1:
        if min(room, len(data) - at) < 16:
            raise Unsure("a large box header is cut off")
        size = struct.unpack_from(">Q", data, at + 8)[0]
        header = 16
    elif size == 0:
        size = room
    if size < header or size > room:
        raise Unsure(f"box {kind!r} does not fit")
    return kind, header, size


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of each box in data[start:end]; Unsure if a box
    does not fit."""
    end = len(data) if end is None else end
    at = start
    while at < end:
        kind, header, size = _box_header(data, at, end - at)
        yield kind, at + header, at + size
        at += size


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int]:
    for k, s, e in _boxes(data, start, end):
        if k == kind:
            return s, e
    raise Unsure(f"no {kind.decode('latin-1')} box")


def _children(data: bytes, start: int, end: int, kind: bytes) -> list[tuple[int, int]]:
    return [(s, e) for k, s, e in _boxes(data, start, end) if k == kind]


def _header_times(data: bytes, start: int) -> tuple[int, int, int]:
    """mvhd / mdhd: (creation time in seconds since 1904, timescale, duration)."""
    version = data[start]
    if version == 1:
        creation, _mod, scale, duration = struct.unpack_from(">QQIQ", data, start + 4)
    elif version == 0:
        creation, _mod, scale, duration = struct.unpack_from(">IIII", data, start + 4)
    else:
        raise Unsure(f"header version {version}")
    return creation, scale, duration


def _moment(seconds: int) -> datetime | None:
    if seconds <= 0:
        return None
    try:
        return MP4_EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        return None


@dataclass(frozen=True)
class _Track:
    handler: bytes
    codec: str
    width: int | None
    height: int | None
    created: datetime | None
    chunks: tuple[int, ...]


def _descriptors(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(tag, payload start, payload end) of the MPEG-4 descriptors in data[start:end],
    descending into the ES_Descriptor and the DecoderConfigDescriptor."""
    at = start
    while at < end:
        tag = data[at]
        at += 1
        length = 0
        for _ in range(4):  # the descriptor's length: up to 4 bytes of 7 bits
            b = data[at]
            at += 1
            length = (length << 7) | (b & 0x7F)
            if not b & 0x80:
                break
        if at + length > end:
            raise Unsure("a descriptor does not fit")
        yield tag, at, at + length
        if tag == 0x03:  # ES_Descriptor: ES_ID, flags, then its sub-descriptors
            flags = data[at + 2]
            inner = at + 3 + (2 if flags & 0x80 else 0)
            if flags & 0x40:
                inner += 1 + data[inner]
            if flags & 0x20:
                inner += 2
            yield from _descriptors(data, inner, at + length)
        elif tag == 0x04:  # DecoderConfigDescriptor: 13 bytes, then DecoderSpecificInfo
            yield from _descriptors(data, at + 13, at + length)
        at += length


def _mp4a_codec(data: bytes, start: int, end: int) -> str:
    """The codec of an mp4a entry's esds, when libavformat will take its configuration
    as it is: AAC (LC, main, SSR, LTP) with a standard rate and 1-7 channels, or MP3."""
    found = {tag: (s, e) for tag, s, e in _descriptors(data, start + 4, end)}
    if 0x04 not in found:
        raise Unsure("no decoder config in esds")
    oti = data[found[0x04][0]]
    codec = MP4A_CODECS.get(oti)
    if codec is None:
        raise Unsure(f"mp4a object type {oti:#x}")
    if codec == "aac":
        if 0x05 not in found:
            raise Unsure("AAC without its AudioSpecificConfig")
        s, e = found[0x05]
        if e - s < 2:
            raise Unsure("a short AudioSpecificConfig")
        bits = int.from_bytes(data[s : s + 2], "big")
        object_type, rate_index, channels = bits >> 11, (bits >> 7) & 0xF, (bits >> 3) & 0xF
        if object_type not in (1, 2, 3, 4) or rate_index > 12 or not 1 <= channels <= 7:
            raise Unsure("an AudioSpecificConfig the fast path does not vouch for")
    return codec


def _avc_parameter_sets(data: bytes, start: int, end: int) -> None:
    """avcC: version 1, then at least one SPS and one PPS, each inside the box."""
    at = start + 5
    for mask in (0x1F, 0xFF):  # the number of SPS (5 bits), then of PPS
        count = data[at] & mask
        at += 1
        if count < 1:
            raise Unsure("avcC without parameter sets")
        for _ in range(count):
            (length,) = struct.unpack_from(">H", data, at)
            at += 2 + length
            if length < 1 or at > end:
                raise Unsure("an avcC parameter set does not fit")


def _codec(
    data: bytes, handler: bytes, stsd: tuple[int, int]
) -> tuple[str, int | None, int | None]:
    start, end = stsd
    (count,) = struct.unpack_from(">I", data, start + 4)
    entries = list(_boxes(data, start + 8, end))
    if count < 1 or count != len(entries):
        raise Unsure("stsd's entry count is not its entries'")
    kind, s, e = entries[0]
    if handler == b"vide":
        if kind not in VIDEO_CODECS or e - s < 78:
            raise Unsure(f"video codec {kind!r}")
        width, height = struct.unpack_from(">HH", data, s + 24)
        config = CODEC_CONFIG.get(kind)
        if config is not None:  # the decoder's configuration box, which ffprobe decodes with
            cs, ce = _child(data, s + 78, e, config)
            if ce - cs < 7 or data[cs] != 1:
                raise Unsure(f"{config.decode('latin-1')} the fast path does not vouch for")
            if config == b"avcC":
                _avc_parameter_sets(data, cs, ce)
        return VIDEO_CODECS[kind], width, height
    if kind == b"mp4a":
        version = struct.unpack_from(">H", data, s + 8)[0] if e - s >= 10 else 0
        inner = s + 28 + {0: 0, 1: 16, 2: 36}.get(version, 0)
        return _mp4a_codec(data, *_child(data, inner, e, b"esds")), None, None
    if kind in AUDIO_CODECS:
        return AUDIO_CODECS[kind], None, None
    raise Unsure(f"audio codec {kind!r}")


def _table(data: bytes, stbl: tuple[int, int], kind: bytes, width: int) -> tuple[int, int]:
    """A full box's (entry count, entries' start), its entries inside it."""
    s, e = _child(data, *stbl, kind)
    (count,) = struct.unpack_from(">I", data, s + 4)
    if 8 + count * width > e - s:
        raise Unsure(f"{kind.decode('latin-1')} cut off")
    return count, s + 8


def _chunk_offsets(data: bytes, stbl: tuple[int, int]) -> tuple[int, ...]:
    """The chunk offsets of a sample table that libavformat would take as it is: stts,
    stsc and stsz present and consistent with stco/co64 (else it refuses or repairs
    the track, and ffprobe decides)."""
    kinds = {k for k, _, _ in _boxes(data, *stbl)}
    for kind in kinds & TABLE_WIDTHS.keys():  # libavformat reads `count` entries, no fewer
        _table(data, stbl, kind, TABLE_WIDTHS[kind])
    if b"stsz" not in kinds:
        raise Unsure("no stsz")  # stz2 (compact sizes) is rare: ffprobe decides
    stts, _ = _table(data, stbl, b"stts", 8)
    stsc, at = _table(data, stbl, b"stsc", 12)
    s, e = _child(data, *stbl, b"stsz")
    sample_size, samples = struct.unpack_from(">II", data, s + 4)
    if sample_size == 0:  # one size per sample follows: all there, none "negative"
        if 12 + samples * 4 > e - s:
            raise Unsure("stsz cut off")
        sizes = struct.unpack_from(f">{samples}I", data, s + 12)
        if any(size >= 1 << 31 for size in sizes):
            raise Unsure("a sample size libavformat calls invalid")
    elif sample_size >= 1 << 31:
        raise Unsure("a sample size libavformat calls invalid")
    if b"stco" in kinds:
        chunks, start = _table(data, stbl, b"stco", 4)
        offsets = struct.unpack_from(f">{chunks}I", data, start)
    elif b"co64" in kinds:
        chunks, start = _table(data, stbl, b"co64", 8)
        offsets = struct.unpack_from(f">{chunks}Q", data, start)
    else:
        raise Unsure("no chunk offsets")
    if chunks and (not stts or not stsc or not (sample_size or samples)):
        raise Unsure("missing mandatory tables")
    previous = 0
    for i in range(stsc):
        first, per_chunk, entry = struct.unpack_from(">III", data, at + 12 * i)
        if first <= previous or per_chunk < 1 or entry < 1 or first > chunks:
            raise Unsure("an stsc entry libavformat would repair or refuse")
        previous = first
    if stsc and struct.unpack_from(">I", data, at)[0] != 1:
        raise Unsure("stsc does not start at the first chunk")
    return tuple(offsets)


def _data_references(data: bytes, dref: tuple[int, int]) -> None:
    """dref as libavformat takes it: its count is its entries', each a full box (>= 12)."""
    start, end = dref
    (count,) = struct.unpack_from(">I", data, start + 4)
    at = start + 8
    for _ in range(count):  # each entry's own size, never 0 ("to the end") here
        (size,) = struct.unpack_from(">I", data, at)
        if size < 12 or at + size > end:
            raise Unsure("a data reference table libavformat would refuse")
        at += size
    if count < 1 or at != end:
        raise Unsure("a data reference table libavformat would refuse")


def _track(data: bytes, trak: tuple[int, int]) -> _Track | None:
    mdia = _child(data, *trak, b"mdia")
    hs, _ = _child(data, *mdia, b"hdlr")
    handler = data[hs + 8 : hs + 12]
    if handler not in (b"vide", b"soun"):
        return None  # a timecode or data track: ffprobe lists it, dockd keeps nothing of it
    ms, _ = _child(data, *mdia, b"mdhd")
    created, _scale, _duration = _header_times(data, ms)
    for edts_start, edts_end in _children(data, *trak, b"edts"):
        for es, ee in _children(data, edts_start, edts_end, b"elst"):
            (count,) = struct.unpack_from(">I", data, es + 4)
            if 8 + count * (20 if data[es] == 1 else 12) > ee - es:
                raise Unsure("elst cut off")
    minf = _child(data, *mdia, b"minf")
    _data_references(data, _child(data, *_child(data, *minf, b"dinf"), b"dref"))
    stbl = _child(data, *minf, b"stbl")
    codec, width, height = _codec(data, handler, _child(data, *stbl, b"stsd"))
    return _Track(handler, codec, width, height, _moment(created), _chunk_offsets(data, stbl))


def _read_top(path: Path) -> tuple[bytes, list[tuple[int, int]]]:
    """The moov box's bytes and the mdat payload ranges, reading only the box headers."""
    size = path.stat().st_size
    moov: bytes | None = None
    mdats: list[tuple[int, int]] = []
    kinds: list[bytes] = []
    with open(path, "rb") as f:
        at = 0
        while at < size:
            f.seek(at)
            kind, header, box = _box_header(f.read(16), 0, size - at)
            kinds.append(kind)
            if kind == b"moov":
                if moov is not None or box > MOOV_LIMIT:
                    raise Unsure("two moov boxes, or a huge one")
                f.seek(at)
                moov = f.read(box)
            elif kind == b"mdat":
                mdats.append((at + header, at + box))
            at += box
    if not kinds or kinds[0] != b"ftyp":
        raise Unsure("not an ISO BMFF file with ftyp first")
    if moov is None or not mdats or b"moof" in kinds:
        raise Unsure("no moov, no mdat, or a fragmented file")
    return moov, mdats


def fast_probe(path: Path) -> MediaInfo | None:
    """ffprobe's view of a plain MP4/MOV (see the module), or None: ask ffprobe."""
    try:
        moov, mdats = _read_top(path)
        top = next(_boxes(moov))
        if top[0] != b"moov":
            return None
        mvhd = _child(moov, top[1], top[2], b"mvhd")
        created, scale, duration = _header_times(moov, mvhd[0])
        if scale == 0:
            return None
        tracks = [t for t in (_track(moov, tr) for tr in _children(moov, top[1], top[2], b"trak"))
                  if t is not None]  # fmt: skip
        for t in tracks:
            if not all(any(s <= c < e for s, e in mdats) for c in t.chunks):
                return None  # a chunk outside the media data: broken, ffprobe judges
        video = next((t for t in tracks if t.handler == b"vide"), None)
        audio = next((t for t in tracks if t.handler == b"soun"), None)
        if video is None and audio is None:
            return None
    except (Unsure, struct.error, IndexError, OSError, ValueError):
        return None
    # libavformat: the format's duration is mvhd's, rescaled to microseconds (nearest).
    micros = (duration * 1_000_000 + scale // 2) // scale
    moment = _moment(created) or (video.created if video is not None else None)
    return MediaInfo(
        format_name=FORMAT_NAME,
        duration_ms=micros // 1000,
        video_codec=video.codec if video else None,
        audio_codec=audio.codec if audio else None,
        width=video.width if video else None,
        height=video.height if video else None,
        creation_time=creation_time_of({"creation_time": moment.isoformat()}) if moment else None,
    )
