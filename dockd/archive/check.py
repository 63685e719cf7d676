"""`dockd verify-disc ISO_OR_FOLDER`: check an archival disc, its image, or a copy of it.

An ISO file is extracted with xorriso into a temporary folder (no mount,
no root); a folder (a mounted disc, a copy) is read in place. The bag is
validated by bagit-python, then the checks of the disc's own verify.py run
(the same module, `disc_verify`): manifests, signed checkpoint, inclusion
proofs, files against their log entries, catalog labels against the log.
The catalog of this dock is not consulted here (the service adds that).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bagit  # type: ignore[import-untyped,unused-ignore]

from dockd.archive import disc_verify, iso
from dockd.archive.bag import ArchiveError

KINDS = disc_verify.KINDS


@dataclass(frozen=True)
class DiscProblem:
    kind: str  # one of KINDS
    where: str  # the file (bag path) or record concerned
    detail: str

    def __str__(self) -> str:
        return f"{self.where}: {self.detail} [{self.kind}]"

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "where": self.where, "detail": self.detail}


@dataclass(frozen=True)
class DiscRecording:
    bag_path: str
    sha256: str  # as read from the disc
    recording_id: int | None  # as catalog.json names it

    def as_json(self) -> dict[str, Any]:
        return {"bag_path": self.bag_path, "sha256": self.sha256, "recording": self.recording_id}


@dataclass(frozen=True)
class DiscReport:
    path: Path
    label: str | None  # bag-info.txt External-Identifier
    volume_id: str | None  # the ISO volume id (None for a folder)
    info: tuple[tuple[str, str], ...]  # bag-info.txt
    checkpoint_origin: str | None
    checkpoint_size: int | None
    entries_proven: int
    recordings: tuple[DiscRecording, ...]
    problems: tuple[DiscProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def kinds(self) -> set[str]:
        return {p.kind for p in self.problems}

    def as_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "label": self.label,
            "volume_id": self.volume_id,
            "info": dict(self.info),
            "checkpoint": {"origin": self.checkpoint_origin, "size": self.checkpoint_size},
            "entries_proven": self.entries_proven,
            "recordings": [r.as_json() for r in self.recordings],
            "problems": [p.as_json() for p in self.problems],
            "ok": self.ok,
        }


def _bagit_problem(root: Path) -> DiscProblem | None:
    """bagit-python's verdict (full validation, re-hashing), as one problem or None."""
    quiet = logging.getLogger("bagit")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # it logs every mismatch as a warning; we report them
    try:
        bagit.Bag(str(root)).validate(processes=1)
    except bagit.BagError as exc:
        details = getattr(exc, "details", None) or []
        text = getattr(exc, "message", None) or str(exc)
        if details:
            text += ": " + "; ".join(str(d) for d in details[:5])
            if len(details) > 5:
                text += f" (and {len(details) - 5} more)"
        return DiscProblem("bag_invalid", "bag", f"bagit-python: {text}")
    finally:
        quiet.setLevel(level)
    return None


def _check_folder(
    root: Path, path: Path, volume_id: str | None, trusted_keys: list[str] | None
) -> DiscReport:
    problems: list[DiscProblem] = []
    if (root / disc_verify.BAGIT_TXT).is_file():
        found = _bagit_problem(root)
        if found is not None:
            problems.append(found)
    result = disc_verify.check_bag(str(root), trusted_keys)
    problems += [DiscProblem(p.kind, p.where, p.detail) for p in result.problems]
    label = result.info.get("External-Identifier")
    if volume_id is not None and label is not None:
        try:
            expected: str | None = iso.iso_volume_id(label)
        except ArchiveError:
            expected = None
        if expected != volume_id:
            problems.append(
                DiscProblem(
                    "bag_invalid",
                    "bag-info.txt",
                    f"External-Identifier {label!r} does not match the volume id {volume_id!r}",
                )
            )
    cp = result.checkpoint
    return DiscReport(
        path=path,
        label=label,
        volume_id=volume_id,
        info=tuple(result.info.items()),
        checkpoint_origin=cp.origin if cp is not None else None,
        checkpoint_size=cp.size if cp is not None else None,
        entries_proven=result.entries,
        recordings=tuple(DiscRecording(*r) for r in result.recordings),
        problems=tuple(problems),
    )


def verify_disc(
    path: Path, trusted_keys: list[str] | None = None, *, workdir: Path | None = None
) -> DiscReport:
    """Check the disc image or disc folder at `path`.

    `trusted_keys` (verifier key texts) replace the disc's own keys.txt: give
    the keys of this dock (or from an independent copy) to detect a disc
    whose checkpoint and keys were both replaced. An image (or a disc drive's
    block device, e.g. /dev/sr0) is extracted under `workdir` (default: the
    system's temporary folder), which needs room for the whole image.
    """
    if trusted_keys:
        for text in trusted_keys:
            try:
                disc_verify.parse_key(text)
            except ValueError as exc:
                raise ArchiveError(f"trusted key {text!r}: {exc}") from None
    if path.is_dir():
        return _check_folder(path, path, None, trusted_keys)
    if not (path.is_file() or path.is_block_device()):
        raise ArchiveError(f"{path}: no such disc image, disc drive or folder")
    volume_id = iso.volume_label(path)
    scratch = Path(tempfile.mkdtemp(prefix="dockd-disc-", dir=workdir))
    try:
        root = iso.extract_iso(path, scratch / "disc")
        return _check_folder(root, path, volume_id, trusted_keys)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
