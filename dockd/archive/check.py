"""`dockd verify-disc ISO_OR_FOLDER`: check an archival disc, its image, or a copy of it.

An ISO file is extracted with xorriso into a temporary folder (no mount,
no root); a folder (a mounted disc, a copy) is read in place. The bag is
validated by bagit-python, then the checks of the disc's own verify.py run
(the same module, dockd/integrity/standalone_verify.py): manifests, signed checkpoint, inclusion
proofs, files against their log entries, catalog labels against the log.
The catalog of this dock is not consulted here (the service adds that).

An optional `Meter` hears of each stage (extracting, bagit-python's pass,
verify.py's pass) and of the payload bytes each pass has hashed.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bagit  # type: ignore[import-untyped,unused-ignore]

from dockd.archive import iso
from dockd.archive.bag import ArchiveError
from dockd.integrity import standalone_verify
from dockd.progress import NULL_METER, Meter

KINDS = standalone_verify.KINDS


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


class _BagitFiles(logging.Handler):
    """Follows bagit-python's pass: it logs each file at INFO before hashing it.

    When it names a file, the one it named before is hashed. Within a file
    (one clip may be gigabytes), a watcher thread reads how far bagit's open
    file has got from /proc/self/fdinfo, four times a second: bagit offers
    no callback, and only observing it leaves its validation as it is. Only
    payload files count (the bar's total); tag files are small. The log line
    is recognised by the function that logs it, not by its text (bagit
    translates it); should a later bagit log elsewhere, the bar only stands
    still during its pass.
    """

    def __init__(self, root: Path, progress: Meter) -> None:
        super().__init__(logging.INFO)
        self._payload = os.path.join(os.path.abspath(root), "data", "")
        self._progress = progress
        self._lock = threading.Lock()
        self._path = ""  # the payload file bagit is hashing now (its real path)
        self._size = 0
        self._shown = 0  # bytes of it the bar was given
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        if progress is not NULL_METER:
            self._watcher = threading.Thread(
                target=self._watch, name="dockd-bagit-progress", daemon=True
            )
            self._watcher.start()

    def emit(self, record: logging.LogRecord) -> None:
        if record.funcName != "_calculate_file_hashes" or not isinstance(record.args, tuple):
            return
        path = os.path.abspath(str(record.args[0])) if record.args else ""
        with self._lock:
            self._finish_file()
            if path.startswith(self._payload):
                try:
                    self._size = os.lstat(path).st_size
                except OSError:
                    return  # bagit reports the file it cannot read
                self._path = os.path.realpath(path)

    def finish(self) -> None:
        """The pass is over: stop watching; the last file is done."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()
        with self._lock:
            self._finish_file()

    def _finish_file(self) -> None:
        if self._size > self._shown:
            self._progress.advance(self._size - self._shown)
        self._path, self._size, self._shown = "", 0, 0

    def _watch(self) -> None:
        while not self._stop.wait(0.25):
            with self._lock:
                if not self._path:
                    continue
                done = min(_read_offset(self._path), self._size)
                if done > self._shown:
                    self._progress.advance(done - self._shown)
                    self._shown = done


def _read_offset(path: str) -> int:
    """How far this process has read `path` (0 if it has no such file open)."""
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return 0
    for fd in fds:
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != path:
                continue
            with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as info:
                for line in info:
                    if line.startswith("pos:"):
                        return int(line.split()[1])
        except (OSError, ValueError):
            continue  # closed meanwhile
    return 0


def _payload_bytes(root: Path) -> int:
    """The size of the files under data/, the work of one hashing pass."""
    total = 0
    for folder, _dirs, files in os.walk(root / "data"):
        for name in files:
            try:
                st = os.lstat(os.path.join(folder, name))
            except OSError:
                continue  # reported by the pass that cannot read it
            total += st.st_size
    return total


def _bagit_problem(root: Path, progress: Meter = NULL_METER) -> DiscProblem | None:
    """bagit-python's verdict (full validation, re-hashing), as one problem or None."""
    quiet = logging.getLogger("bagit")
    level, propagate = quiet.level, quiet.propagate
    files = _BagitFiles(root, progress)
    # bagit logs every mismatch as a warning (we report them) and every file it
    # hashes at INFO (the bar counts them): neither goes beyond this handler.
    quiet.setLevel(logging.INFO)
    quiet.propagate = False
    quiet.addHandler(files)
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
        quiet.removeHandler(files)
        quiet.setLevel(level)
        quiet.propagate = propagate
        files.finish()
    return None


def _check_folder(
    root: Path,
    path: Path,
    volume_id: str | None,
    trusted_keys: list[str] | None,
    progress: Meter = NULL_METER,
) -> DiscReport:
    problems: list[DiscProblem] = []
    payload = _payload_bytes(root)
    if (root / standalone_verify.BAGIT_TXT).is_file():
        progress.stage("bagit-python: re-hashing the payload", payload)
        found = _bagit_problem(root, progress)
        if found is not None:
            problems.append(found)
    progress.stage("verify.py: re-hashing the payload, checking proofs", payload)
    result = standalone_verify.check_bag(str(root), trusted_keys, progress.advance)
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
    path: Path,
    trusted_keys: list[str] | None = None,
    *,
    workdir: Path | None = None,
    progress: Meter = NULL_METER,
) -> DiscReport:
    """Check the disc image or disc folder at `path`.

    `trusted_keys` (verifier key texts) replace the disc's own keys.txt: give
    the keys of this dock (or from an independent copy) to detect a disc
    whose checkpoint and keys were both replaced. An image (or a disc drive's
    block device, e.g. /dev/sr0) is extracted under `workdir` (default: the
    system's temporary folder), which needs room for the whole image.
    `progress` hears of the stages and of the bytes hashed in each.
    """
    if trusted_keys:
        for text in trusted_keys:
            try:
                standalone_verify.parse_key(text)
            except ValueError as exc:
                raise ArchiveError(f"trusted key {text!r}: {exc}") from None
    if path.is_dir():
        return _check_folder(path, path, None, trusted_keys, progress)
    if not (path.is_file() or path.is_block_device()):
        raise ArchiveError(f"{path}: no such disc image, disc drive or folder")
    volume_id = iso.volume_label(path)
    scratch = Path(tempfile.mkdtemp(prefix="dockd-disc-", dir=workdir))
    try:
        progress.stage("extracting the image (xorriso)", None)
        root = iso.extract_iso(path, scratch / "disc")
        return _check_folder(root, path, volume_id, trusted_keys, progress)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
