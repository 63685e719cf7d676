"""Which recordings go on which disc, pure (R5: long-term footage on optical media).

002_f200e2d1272770f4.txt Art. 19 and 004_2fb3dba4410dc436.txt Art. 15:
long-term footage is kept by burning discs or on removable media. The
packer is first-fit decreasing over "bundles" — a case's recordings
together when the whole case fits on one disc, single recordings
otherwise — on discs whose usable size leaves room for the disc's own
metadata. A file is never split; one larger than the medium is an error
that names a medium it would fit on. The same selection always gives the
same discs (sizes, then ids, break every tie).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dockd.errors import UsageError

# Recordable capacities in bytes (single-layer DVD±R; BD-R SL/DL/TL/QL of BDXL).
MEDIA: dict[str, int] = {
    "dvd": 4_700_372_992,
    "bd25": 25_025_314_816,
    "bd50": 50_050_629_632,
    "bd100": 100_103_356_416,
}
SECTOR = 2048
# Per disc: ISO 9660/Joliet/Rock Ridge structures, bagit files, verify.py,
# README, checkpoint and keys. Per recording: its directory records and
# its lines in the manifests, catalog extract, log entries and proofs.
DISC_RESERVE = 32 << 20
PER_RECORDING = 64 << 10
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


@dataclass(frozen=True)
class Medium:
    name: str
    capacity: int

    @property
    def usable(self) -> int:
        return self.capacity - DISC_RESERVE


@dataclass(frozen=True)
class Item:
    recording: int
    size: int
    # The case it should travel with (the first of its cases), or None.
    case: str | None = None

    @property
    def footprint(self) -> int:
        """Bytes on disc: whole sectors, and the recording's share of the metadata."""
        return -(-self.size // SECTOR) * SECTOR + PER_RECORDING


@dataclass(frozen=True)
class Disc:
    number: int  # 1-based, within one copy
    copy: int  # 1-based
    recordings: tuple[int, ...]
    used: int  # footprint bytes, reserve excluded

    def as_json(self) -> dict[str, object]:
        return {
            "number": self.number,
            "copy": self.copy,
            "recordings": list(self.recordings),
            "used": self.used,
        }


@dataclass(frozen=True)
class DiscPlan:
    medium: Medium
    copies: int
    discs: tuple[Disc, ...]  # copy 1's discs, then copy 2's, …

    @property
    def per_copy(self) -> int:
        return len(self.discs) // self.copies if self.copies else 0

    def as_json(self) -> dict[str, object]:
        return {
            "medium": self.medium.name,
            "capacity": self.medium.capacity,
            "usable": self.medium.usable,
            "copies": self.copies,
            "discs": [d.as_json() for d in self.discs],
        }


def parse_medium(text: str) -> Medium:
    """`dvd`, `bd25`, `bd50`, `bd100`, or a size: `700M`, `4.7G`, `25GB`, `64GiB`, bytes."""
    key = text.strip().lower()
    if key in MEDIA:
        return Medium(key, MEDIA[key])
    found = _SIZE_RE.match(text.strip())
    if not found:
        raise UsageError(
            f"--media: {text!r} is neither a medium ({', '.join(MEDIA)}) nor a size like 700M"
        )
    unit = (found.group(2) or "").upper()
    scale = _UNITS.get(unit[:1], 1)
    if "I" in unit:  # KiB, MiB, GiB, TiB
        scale = 1024 ** ("KMGT".index(unit[0]) + 1)
    capacity = int(float(found.group(1)) * scale)
    if capacity <= DISC_RESERVE + PER_RECORDING:
        raise UsageError(
            f"--media: {text} leaves no room: each disc reserves {DISC_RESERVE >> 20} MiB"
        )
    return Medium(text.strip(), capacity)


def _fits(size: int) -> str:
    for name, capacity in sorted(MEDIA.items(), key=lambda kv: kv[1]):
        if Item(0, size).footprint <= capacity - DISC_RESERVE:
            return name
    return "none of dvd, bd25, bd50, bd100"


def pack(items: Iterable[Item], medium: Medium, copies: int = 1) -> DiscPlan:
    """Discs for `items`, `copies` identical sets of them."""
    if copies < 1:
        raise UsageError("--copies must be at least 1")
    chosen = sorted({i.recording: i for i in items}.values(), key=lambda i: i.recording)
    for item in chosen:
        if item.footprint > medium.usable:
            raise UsageError(
                f"recording {item.recording} ({item.size:,} bytes) does not fit on "
                f"{medium.name} ({medium.usable:,} usable bytes); use a larger medium: "
                f"{_fits(item.size)}"
            )
    bundles: dict[str, list[Item]] = {}
    singles: list[list[Item]] = []
    for item in chosen:
        if item.case is None:
            singles.append([item])
        else:
            bundles.setdefault(item.case, []).append(item)
    groups: list[list[Item]] = []
    for members in bundles.values():
        if sum(i.footprint for i in members) <= medium.usable:
            groups.append(members)
        else:  # a case larger than a disc: its recordings go one by one
            groups += [[i] for i in members]
    groups += singles
    groups.sort(key=lambda g: (-sum(i.footprint for i in g), g[0].recording))
    contents: list[list[int]] = []
    used: list[int] = []
    for group in groups:
        need = sum(i.footprint for i in group)
        for n, taken in enumerate(used):
            if taken + need <= medium.usable:
                contents[n] += [i.recording for i in group]
                used[n] += need
                break
        else:
            contents.append([i.recording for i in group])
            used.append(need)
    discs = tuple(
        Disc(n + 1, copy, tuple(sorted(contents[n])), used[n])
        for copy in range(1, copies + 1)
        for n in range(len(contents))
    )
    return DiscPlan(medium, copies, discs)


def disc_label(site: str, export_id: int, number: int, copy: int) -> str:
    """The ISO volume id: at most 32 d-characters (A-Z, 0-9, _).

    Windows shows only the first 16 characters (the Joliet volume id), so
    those tell the discs of a dock apart: export, disc, copy. `site` tells
    docks apart (export 1 of two docks must not share labels): six hex
    digits of the SHA-256 of the log's origin (site_code).
    """
    return f"E{export_id:05d}D{number:03d}C{copy}_{site}"


def site_code(origin: str) -> str:
    return hashlib.sha256(origin.encode()).hexdigest()[:6].upper()


def items_of(rows: Sequence[tuple[int, int, str | None]]) -> list[Item]:
    """(recording id, size, first case or None) rows, as the catalog gives them."""
    return [Item(int(r), int(s), c) for r, s, c in rows]
