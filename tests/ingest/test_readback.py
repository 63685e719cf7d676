"""The read-back runs beside the next file's copy, and still stops a bad copy.

A copy whose bytes on the store's disk no longer hash as they were written
(here: one byte flipped on disk after the fsync, before the read-back, by
the real file system) fails its file: nothing of it reaches the store or the
catalog, and the camera keeps its copy even with wipe on. The other files of
the session, whose read-backs overlap, are stored and wiped as usual.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import pytest

from dockd.devices.profiles import make_profile
from dockd.runner.session import run_session
from dockd.service import Service
from dockd.service.docking import Docking
from dockd.service.values import Staged

MiB = 1 << 20


def test_a_copy_damaged_before_its_read_back_fails_and_stays_on_the_camera(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cam = tmp_path / "cam" / "DCIM"
    cam.mkdir(parents=True)
    rng = random.Random(5)
    for i in range(5):
        (cam / f"clip{i}.mp4").write_bytes(rng.randbytes(2 * MiB + i))
    real = Docking.prove_staged

    def damage_then_prove(self: Docking, staged: Staged) -> Any:
        if staged.found.rel_parts[-1] == b"clip2.mp4":
            with staged.copy.temp.open("r+b") as f:  # the copy as it lies on disk
                f.seek(MiB)
                byte = f.read(1)
                f.seek(MiB)
                f.write(bytes([byte[0] ^ 0x40]))
        return real(self, staged)

    monkeypatch.setattr(Docking, "prove_staged", damage_then_prove)
    profile = make_profile("generic", service.config.profiles)
    report = run_session(service, cam.parent, "DSJ0009", profile, wipe=True)
    assert report.counts()["ingested"] == 4 and report.counts()["failed"] == 1
    (failure,) = report.failed
    assert failure.display == "DCIM/clip2.mp4"
    assert "read back from disk differs" in failure.reason
    assert sorted(p.name for p in cam.iterdir()) == ["clip2.mp4"]  # kept; the rest wiped
    bad = hashlib.sha256((cam / "clip2.mp4").read_bytes()).hexdigest()
    assert not service.store.has(bad)
    assert [r for r in service.recordings() if r.sha256 == bad] == []
    assert list(service.store.tmp.iterdir()) == [] and list(service.store.partial.iterdir()) == []
