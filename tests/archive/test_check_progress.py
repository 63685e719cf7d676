"""`verify_disc` reports its stages and the payload bytes each hashing pass has done."""

from __future__ import annotations

import logging
from pathlib import Path

from dockd.archive.check import _read_offset, verify_disc
from dockd.integrity import standalone_verify
from tests.archive.discs import Staged


class MeterLog:
    def __init__(self) -> None:
        self.stages: list[tuple[str, int | None, list[int]]] = []

    def stage(self, name: str, total: int | None, unit: str = "bytes") -> None:
        self.stages.append((name, total, []))

    def advance(self, n: int) -> None:
        self.stages[-1][2].append(n)


def _payload(staged: Staged) -> int:
    return sum(p.size for p in staged.payload)


def test_image_extract_then_two_passes_by_bytes(staged: Staged, disc_iso: Path) -> None:
    meter = MeterLog()
    bagit_logger = logging.getLogger("bagit")
    before = (bagit_logger.level, bagit_logger.propagate, list(bagit_logger.handlers))
    report = verify_disc(disc_iso, progress=meter)
    assert report.ok, report.problems
    assert (bagit_logger.level, bagit_logger.propagate, bagit_logger.handlers) == before
    names = [name for name, _, _ in meter.stages]
    assert names == [
        "extracting the image (xorriso)",
        "bagit-python: re-hashing the payload",
        "verify.py: re-hashing the payload, checking proofs",
    ]
    assert meter.stages[0][1] is None
    for name, total, moves in meter.stages[1:]:
        assert total == sum(moves) == _payload(staged), name
    # bagit-python moves the bar at least once per file (it names each), verify.py per block.
    assert len(meter.stages[1][2]) >= len(staged.payload)
    assert len(meter.stages[2][2]) >= len(staged.payload)


def test_a_folder_has_no_extraction_stage(staged: Staged, extracted: Path) -> None:
    meter = MeterLog()
    assert verify_disc(extracted, progress=meter).ok
    assert [name.split(":")[0] for name, _, _ in meter.stages] == ["bagit-python", "verify.py"]


def test_check_bag_calls_back_per_block(staged: Staged, extracted: Path) -> None:
    """The disc's own verify.py hashes with an optional callback (and none by default)."""
    moves: list[int] = []
    result = standalone_verify.check_bag(str(extracted), None, moves.append)
    assert not result.problems
    assert sum(moves) == _payload(staged)
    assert not standalone_verify.check_bag(str(extracted)).problems


def test_bagit_is_followed_within_a_file(tmp_path: Path) -> None:
    """How far an open file has been read, as the watcher of bagit's pass sees it."""
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"x" * 300_000)
    assert _read_offset(str(path.resolve())) == 0  # not open
    with open(path, "rb", buffering=0) as f:  # bagit's reads are buffered: it reads ahead
        f.read(123_456)
        assert _read_offset(str(path.resolve())) == 123_456
