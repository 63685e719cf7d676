"""Real archival discs for the archive tests, made with the real Service.

`make_dock` docks two cameras (real MP4s from the clip bank, plus files with
names no disc accepts as they are), assigns, re-assigns and labels the
recordings (Chinese labels), and signs a checkpoint. `stage_disc` gathers
what a disc of some recordings holds, the way the service does (catalog
rows, the log entries naming them, inclusion proofs against the latest
checkpoint, keys) and stages the bag with `write_bag`; `build_disc` adds
the ISO image. `reseal` plays a careful forger who rewrites the manifests
and Payload-Oxum after changing a bag.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dockd.archive.bag import (
    PayloadFile,
    bag_info,
    bag_path_for,
    disc_tag_files,
    write_bag,
)
from dockd.archive.iso import build_iso
from dockd.archive.readme import readme_bytes
from dockd.clock import FixedClock
from dockd.config import Config, IngestConfig, IntegrityConfig
from dockd.devices.profiles import make_profile
from dockd.integrity.merkle import inclusion_proof
from dockd.integrity.standalone_verify import BAG_INFO, MANIFEST, TAGMANIFEST
from dockd.runner.session import run_session
from dockd.service import Service
from tests.conftest import put

ORIGIN = "dockd/archive-test"
ZONE_NAMES = {
    # officer 012345, camera DSJ0001, 2026-11-25 09:00 camera time (UTC+8)
    "DCIM/100MEDIA/012345_DSJ0001_20261125090000_0001.MP4": 0,
    "DCIM/100MEDIA/012345_DSJ0001_20261125090500_0002.MP4": 1,
    # names the disc must rewrite: reserved characters, Chinese, far too long
    "DCIM/100MEDIA/现场:执法?记录;<1>|*#&'[$x].MP4": 2,
    "DCIM/100MEDIA/" + "很长的文件名abc" * 11 + ".MP4": 3,
}
OTHER_NAMES = {"DCIM/054321_DSJ0002_20261124230000_0007.MP4": 4}


@dataclass(frozen=True)
class Dock:
    state: Path
    config: Config
    key: str  # the dock's verifier key (name+id+base64)
    ids: tuple[int, ...]  # every recording


def dock_config(tmp: Path) -> Config:
    ingest = IngestConfig(change_retry_delay=0.0, min_free_bytes=0)
    return dataclasses.replace(
        Config(),
        state_dir=tmp / "state",
        ingest=ingest,
        integrity=IntegrityConfig(origin=ORIGIN),
    )


@contextmanager
def open_service(dock: Dock) -> Iterator[Service]:
    clock = FixedClock(datetime(2026, 11, 26, 9, 0, tzinfo=UTC))
    with Service(dock.config, clock, write=False) as svc:
        yield svc


def make_dock(tmp: Path, clip_bank: list[Path]) -> Dock:
    config = dock_config(tmp)
    clock = FixedClock(datetime(2026, 11, 25, 9, 0, tzinfo=UTC))
    profile = make_profile("gat947", config.profiles)
    with Service(config, clock) as svc:
        svc.assign_device(
            "DSJ0001", officer="012345", unit="一中队 Patrol/3", device_number="BWC-01",
            valid_from=datetime(2026, 11, 1, tzinfo=UTC), actor="admin",
        )  # fmt: skip
        cam = tmp / "cam1"
        for name, clip in ZONE_NAMES.items():
            put(cam, name, clip_bank[clip])
        run_session(svc, cam, "DSJ0001", profile, wipe=True)
        cam = tmp / "cam2"
        for name, clip in OTHER_NAMES.items():
            put(cam, name, clip_bank[clip])
        run_session(svc, cam, "DSJ0002", profile, wipe=True)
        # Handed out after the recording was docked: re-attributes it (a device.assigned
        # entry whose `reattributed` names it).
        svc.assign_device(
            "DSJ0002", officer="054321", unit="二中队", device_number=None,
            valid_from=datetime(2026, 11, 20, tzinfo=UTC), actor="admin",
        )  # fmt: skip
        ids = tuple(sorted(r.id for r in svc.recordings()))
        svc.tag(
            [ids[0], ids[1]], cause="占道经营", parties=("张三", "李四"),
            categories=("evidence", "review"), note="当事人拒绝签字", actor="clerk",
        )  # fmt: skip
        svc.tag([ids[1]], categories=(), remove_categories=("review",), reason="复议撤回",
                actor="clerk")  # fmt: skip
        svc.tag([ids[4]], cause="阻碍执法", categories=("obstruction",), actor="clerk")
        svc.checkpoint()
        key = svc.trusted_keys()[0].to_text()
    return Dock(config.state_dir, config, key, ids)


def _names(data: dict[str, Any]) -> set[int]:
    named: set[int] = set()
    if isinstance(data.get("recording"), int):
        named.add(data["recording"])
    for field in ("recordings", "reattributed"):
        named.update(i for i in data.get(field) or [] if isinstance(i, int))
    return named


@dataclass(frozen=True)
class Staged:
    bag: Path
    label: str
    records: tuple[dict[str, Any], ...]  # catalog.json objects
    payload: tuple[PayloadFile, ...]


def stage_disc(
    svc: Service,
    ids: list[int],
    staging: Path,
    *,
    label: str = "DOCKD_20261126_01",
    disc: int = 1,
    discs: int = 1,
    copy: int = 1,
) -> Staged:
    """Stage the bag of a disc holding `ids`, as the service will."""
    wanted = set(ids)
    records: list[dict[str, Any]] = []
    payload: list[PayloadFile] = []
    for rid in sorted(wanted):
        rec = svc.catalog.recording(rid)
        assert rec is not None
        record = rec.as_json()
        record["bag_path"] = bag_path_for(record)
        records.append(record)
        payload.append(
            PayloadFile(svc.store.object_path(rec.sha256), record["bag_path"], rec.sha256, rec.size)
        )
    checkpoint = svc.catalog.last_checkpoint()
    assert checkpoint is not None
    tree_size = int(checkpoint["size"])
    entries: list[bytes] = []
    proofs: dict[int, list[str]] = {}
    for row in svc.catalog.log_rows():
        if row.seq > tree_size:
            break
        data = json.loads(row.raw).get("data") or {}
        if _names(data) & wanted:
            entries.append(row.raw)
            path = inclusion_proof(svc.catalog.node, row.seq - 1, tree_size)
            proofs[row.seq] = [base64.b64encode(h).decode() for h in path]
    info = bag_info(
        origin=svc.origin, label=label, disc=disc, discs=discs, export_id="EXPORT-2026-0001",
        copy=copy, copies=2, bagging_date="2026-11-26",
        description=f"{len(records)} recordings for long-term keeping (dockd archive test)",
    )  # fmt: skip
    tags = disc_tag_files(
        recordings=records,
        entries=entries,
        tree_size=tree_size,
        proofs=proofs,
        checkpoint=str(checkpoint["note"]),
        keys=[k.to_text() for k in svc.trusted_keys()],
        readme=readme_bytes(label, info),
    )
    write_bag(staging, payload, tags, info)
    return Staged(staging, label, tuple(records), tuple(payload))


def build_disc(staged: Staged, out: Path) -> Path:
    return build_iso(staged.bag, out, staged.label)


def copy_bag(bag: Path, dest: Path) -> Path:
    """A writable copy of a staged (or extracted) bag, to tamper with."""
    shutil.copytree(bag, dest)
    for folder, _dirs, files in os.walk(dest):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    return dest


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reseal(bag: Path) -> None:
    """Rewrite manifest, Payload-Oxum and tag manifest for the bag as it now is."""
    files = sorted(p for p in (bag / "data").rglob("*") if p.is_file())
    rel = [p.relative_to(bag).as_posix() for p in files]
    (bag / MANIFEST).write_text(
        "".join(f"{_sha256(p)}  {r}\n" for p, r in zip(files, rel, strict=True)), "utf-8"
    )
    info = (bag / BAG_INFO).read_text("utf-8").splitlines()
    oxum = f"Payload-Oxum: {sum(p.stat().st_size for p in files)}.{len(files)}"
    info = [oxum if line.startswith("Payload-Oxum:") else line for line in info]
    (bag / BAG_INFO).write_text("\n".join(info) + "\n", "utf-8")
    tags = sorted(
        p
        for p in bag.rglob("*")
        if p.is_file() and not p.relative_to(bag).as_posix().startswith(("data/", "tagmanifest-"))
    )
    (bag / TAGMANIFEST).write_text(
        "".join(f"{_sha256(p)}  {p.relative_to(bag).as_posix()}\n" for p in tags), "utf-8"
    )


def run_verify_py(python: Path | str, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the disc's own verify.py with `python`, from a folder outside the repository."""
    return subprocess.run(
        [str(python), "-I", str(root / "verify.py"), *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=root.parent,
        env={"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8"},
        timeout=120,
    )


def python_for_tests() -> str:
    return sys.executable
