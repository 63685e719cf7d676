"""The one writer of the catalog and the store.

Every front (CLI, daemon, socket, status page) calls this API; every change
it makes is one catalog transaction holding the change and its log entry
(DESIGN invariant 3). The order of writes of DESIGN §4a is kept here:
store object proven and renamed into place, then row + log entry in one
transaction, and only then may a caller delete the camera's copy.

A writing Service holds an exclusive lock on the state directory, so that
start-up recovery (which empties store/tmp) never races another writer.
"""

from __future__ import annotations

import base64
import dataclasses
import fcntl
import hashlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dockd.archive.bag import (
    ArchiveError,
    PayloadFile,
    bag_info,
    bag_path_for,
    disc_tag_files,
    write_bag,
)
from dockd.archive.check import verify_disc
from dockd.archive.iso import build_iso
from dockd.archive.plan import DiscPlan, Item, disc_label, items_of, site_code
from dockd.archive.readme import readme_bytes
from dockd.catalog import Catalog, Recording
from dockd.clock import Clock, SystemClock, isoformat_utc, parse_utc
from dockd.config import Config
from dockd.devices.identity import DeviceHealth, DeviceIdentity, check_serial
from dockd.devices.profiles import Profile
from dockd.devices.registry import Assignment, assignment_at, attribute
from dockd.errors import ConfigError, DockdError, StoreError, UsageError
from dockd.ingest.copier import Copy, copy_verified, hash_source
from dockd.ingest.probe import MediaInfo, probe
from dockd.ingest.scanner import FoundFile
from dockd.ingest.timing import resolve_times
from dockd.ingest.volume import FileIdentity, Volume
from dockd.integrity import standalone_verify
from dockd.integrity.chain import LogEntry, Problem, StoredEntry, check_chain, next_entry
from dockd.integrity.checkpoint import Checkpoint, CheckpointError
from dockd.integrity.crosscheck import (
    check_assignments_against_log,
    check_devices_against_log,
    check_exports_against_log,
    check_fixity_against_log,
    check_keys_against_log,
    check_labels_against_log,
    check_rows_against_log,
    check_sessions_against_log,
    json_value,
    logged_keys,
    parse_entries,
    source_path_b64,
)
from dockd.integrity.keys import host_id, load_or_create
from dockd.integrity.merkle import (
    build_nodes,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_hash,
    verify_consistency,
)
from dockd.integrity.note import NoteError, VerifierKey, open_note, sign
from dockd.integrity.replay import check_labels_and_retention
from dockd.progress import NULL_METER, Meter
from dockd.retention.compliance import is_late, offload_deadline
from dockd.retention.continuity import Clip, Interruption, interruptions, parse_gap_id
from dockd.retention.plan import Candidate, Plan, plan
from dockd.retention.policy import (
    Facts,
    Policy,
    ceil_second,
    check_categories,
    decide,
    floor_second,
)
from dockd.store import Store, hash_file, is_read_only, is_sha256_hex

log = structlog.get_logger("dockd.service")

# At most this many recording ids in one retention entry (a policy change
# over a large catalog writes several).
RETENTION_ENTRY_IDS = 10_000
# Tombstoned objects unlinked together (one fsync per store directory each time).
UNLINK_GROUP = 10_000

# Flags a recording can carry; each marks something a supervisor must see.
FLAG_EMPTY = "empty"
FLAG_UNREADABLE = "unreadable_media"
FLAG_CHANGED = "changed_during_copy"
FLAG_LATE = "late"
# No assignment covered the recording's time: nobody is on record for it (R2).
FLAG_UNASSIGNED = "unassigned_device"
# Flags about the registry, not the footage: a session with only these
# succeeded (exit 0); supervisors see them in reports.
REGISTRY_FLAGS = frozenset({FLAG_UNASSIGNED})


class StateBusyError(DockdError):
    exit_code = 4


class IntegrityError(DockdError):
    """The log is not what an earlier checkpoint signed."""


EXPORT_README = """dockd evidence log export: entries {first} to {last} of a log of {size}

entries.jsonl   the log entries, one canonical JSON object per line
checkpoint.txt  the signed checkpoint (C2SP tlog-checkpoint in a C2SP signed note)
keys.txt        the public keys that sign checkpoints (name+id+key)
proofs.json     one RFC 9162 inclusion proof per entry, against the checkpoint
verify.py       the checker (it does not need dockd)

To check it on any machine with Python 3.8 or newer and the `cryptography`
package (pip install cryptography), open a terminal in this folder and run:

    python3 verify.py --key "<key from an independent copy>"
    py verify.py --key "<key from an independent copy>"        (on Windows)

Take the key (name+id+key) from a copy this folder did not travel with: a
court file, an earlier disc, the agency's published key. keys.txt came with
the entries, so whoever changed them could have changed it too; without
--key, verify.py trusts keys.txt. It prints OK and exits 0 if every entry is
in the signed log and chained to the one before; otherwise it prints each
problem and exits 1.

A recording's entry names its SHA-256: `sha256sum FILE` (on Windows
`certutil -hashfile FILE SHA256`) of the evidence file must print the same
value.
"""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class SessionInfo:
    id: int
    serial: str
    profile: str
    source: str
    wipe: bool
    officer: str | None = None
    clock_offset_s: int | None = None


@dataclass(frozen=True)
class DeviceStatus:
    """One device of the registry, as `dockd device list` shows it."""

    serial: str
    vendor: str
    model: str
    profile: str
    first_seen: str
    last_docked: str | None
    last_slot: str | None
    recordings: int
    current: Assignment | None
    history: tuple[Assignment, ...]
    # Assigned, and not docked within devices.overdue_hours (R1: offload daily).
    overdue: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "vendor": self.vendor,
            "model": self.model,
            "profile": self.profile,
            "first_seen": self.first_seen,
            "last_docked": self.last_docked,
            "last_slot": self.last_slot,
            "recordings": self.recordings,
            "assigned_to": self.current.as_json() if self.current else None,
            "history": [a.as_json() for a in self.history],
            "overdue": self.overdue,
        }


@dataclass(frozen=True)
class FileOutcome:
    """What became of one camera file in a session."""

    status: str  # "ingested" | "duplicate"
    found: FoundFile
    recording: Recording
    # The source may be deleted: its bytes are proven in the store and it did
    # not change while being read. `seen` is what it must still look like.
    may_wipe: bool
    seen: FileIdentity


@dataclass(frozen=True)
class Staged:
    """A file whose proven copy is in the store, awaiting its probe and its row."""

    found: FoundFile
    copy: Copy
    flags: tuple[str, ...]


@dataclass(frozen=True)
class VerifyReport:
    entries: int
    recordings: int
    objects: int
    bytes_hashed: int
    problems: tuple[Problem, ...] = field(default=())
    # Intact objects no row refers to yet: left by a crash, adopted next docking.
    orphans: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class SweepReport:
    plan: Plan
    marked: tuple[int, ...]
    deleted: tuple[int, ...]
    objects_removed: tuple[str, ...]
    dry_run: bool = False

    def summary(self) -> dict[str, Any]:
        """Counts and ids, without the plan's details (small enough for the socket)."""
        return {
            "dry_run": self.dry_run,
            "as_of": isoformat_utc(self.plan.as_of),
            "policy_version": self.plan.policy_version,
            "marked_pending": list(self.marked),
            "deleted": list(self.deleted),
            "objects_removed": len(self.objects_removed),
            "waiting": len(self.plan.waiting),
            "protected": len(self.plan.protected),
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "plan": self.plan.as_json(),
            "marked_pending": list(self.marked),
            "deleted": list(self.deleted),
            "objects_removed": list(self.objects_removed),
        }


@dataclass(frozen=True)
class AuditReport:
    checked: int
    bytes_hashed: int
    store_objects: int
    failures: tuple[dict[str, Any], ...]
    log_seq: int

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "bytes_hashed": self.bytes_hashed,
            "store_objects": self.store_objects,
            "failures": list(self.failures),
            "log_entry": self.log_seq,
        }


class Service:
    def __init__(
        self,
        config: Config,
        clock: Clock | None = None,
        *,
        write: bool = True,
        lock_wait_s: float = 30.0,
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.state_dir = config.state_dir
        self._lock_fd = -1
        try:
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise DockdError(
                f"{self.state_dir}: cannot create the state directory: {exc.strerror}"
            ) from None
        if write:
            self._lock(lock_wait_s)
        self.store = Store(self.state_dir / "store", config.ingest.min_free_bytes)
        self.catalog = Catalog(self.state_dir / "catalog.sqlite")
        self.origin = config.integrity.origin or f"dockd/{host_id()}"
        self._signer: tuple[Ed25519PrivateKey, VerifierKey] | None = None
        if write:
            self.recover()
            self._signer = self._load_signing_key()
            self.apply_retention_policy()

    def _lock(self, wait_s: float) -> None:
        self._lock_fd = os.open(
            self.state_dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StateBusyError(
                        f"{self.state_dir}: another dockd process is writing this state "
                        "directory (the daemon, if `dockd status` answers: import footage "
                        "through its drop folder, daemon.drop_dir)"
                    ) from None
                time.sleep(0.2)

    def log_grew(self) -> bool:
        """True when the log has entries that no checkpoint signs yet."""
        size, _ = self.catalog.head()
        last = self.catalog.last_checkpoint()
        return size > (int(last["size"]) if last else 0)

    def close(self) -> None:
        # A writer signs what it added before it lets go, so that an export, a
        # proof or an outsider's check right after a tag or an ingest finds a
        # checkpoint covering it (the daemon's sessions do this at their end).
        if self._signer is not None and self.log_grew():
            try:
                self.checkpoint()
            except DockdError as exc:
                # Refusing to sign an inconsistent tree is the point of checking:
                # say so, and still release the catalog and the lock.
                log.error("checkpoint.failed", reason=str(exc))
        self._signer = None  # closed: a second close() signs nothing
        self.catalog.close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the log ---------------------------------------------------------------

    def _log(self, kind: str, data: dict[str, Any], moment: datetime | None = None) -> LogEntry:
        """Append one entry; the caller holds the catalog transaction."""
        seq, digest = self.catalog.head()
        entry = next_entry(seq, digest, moment or self.clock.now(), kind, data)
        self.catalog.append(entry)
        return entry

    # -- recovery --------------------------------------------------------------

    def recover(self) -> None:
        """Start-up recovery (DESIGN §4a): drop partial copies, close dead sessions.

        Files of an interrupted session are still on the camera (nothing is
        deleted before its row is committed), so the next docking of that
        camera re-queues them; objects renamed into place before the crash
        are reused by it.
        """
        for path in self.store.recover():
            log.warning("recovery.temp_removed", path=str(path))
        # A sweep stopped between its tombstones' commit and the unlinks.
        if self.store.sweep_marked():
            leftover = [sha for sha in self.catalog.tombstoned_objects() if self.store.has(sha)]
            for sha in self.store.remove_objects(leftover):
                log.warning("recovery.object_removed", sha256=sha, reason="tombstoned")
            self.store.mark_sweep(False)
        for row in self.catalog.sessions_in_state("running"):
            with self.catalog.transaction():
                now = self.clock.now()
                self.catalog.update_session(
                    row["id"], {"state": "interrupted", "ended_at": isoformat_utc(now)}
                )
                self._log(
                    "session.interrupted",
                    {"session": row["id"], "device_serial": row["device_serial"]},
                    now,
                )
            log.warning(
                "recovery.session_interrupted", session=row["id"], serial=row["device_serial"]
            )

    # -- keys and checkpoints ------------------------------------------------------

    def _key_path(self) -> Path:
        configured = self.config.integrity.key_path
        return Path(configured) if configured else self.state_dir / "keys" / "checkpoint.key"

    def _load_signing_key(self) -> tuple[Ed25519PrivateKey, VerifierKey]:
        """The signing key, created on first start; its public key goes into the log."""
        key, _ = load_or_create(self._key_path())
        vkey = VerifierKey.of(self.origin, key)
        key_id = f"{vkey.key_id:08x}"
        if key_id not in {row["key_id"] for row in self.catalog.signing_keys()}:
            now = self.clock.now()
            with self.catalog.transaction():
                entry = self._log(
                    "key.created",
                    {"key_id": key_id, "vkey": vkey.to_text(), "origin": self.origin},
                    now,
                )
                self.catalog.insert_key(
                    {
                        "key_id": key_id,
                        "vkey": vkey.to_text(),
                        "created_at": isoformat_utc(now),
                        "log_seq": entry.seq,
                    }
                )
            log.info("key.created", key_id=key_id, vkey=vkey.to_text())
        return key, vkey

    def rotate_key(self) -> VerifierKey:
        """Replace the signing key; the old public key stays trusted for old checkpoints."""
        if self._signer is None:
            raise DockdError("key rotation needs a writing service")
        old = self._signer[1]
        path = self._key_path()
        os.rename(path, path.with_name(f"{path.name}.retired-{old.key_id:08x}"))
        key, _ = load_or_create(path)
        vkey = VerifierKey.of(self.origin, key)
        now = self.clock.now()
        with self.catalog.transaction():
            entry = self._log(
                "key.rotated",
                {
                    "old_key_id": f"{old.key_id:08x}",
                    "key_id": f"{vkey.key_id:08x}",
                    "vkey": vkey.to_text(),
                    "origin": self.origin,
                },
                now,
            )
            self.catalog.retire_key(f"{old.key_id:08x}", isoformat_utc(now))
            self.catalog.insert_key(
                {
                    "key_id": f"{vkey.key_id:08x}",
                    "vkey": vkey.to_text(),
                    "created_at": isoformat_utc(now),
                    "log_seq": entry.seq,
                }
            )
        self._signer = (key, vkey)
        log.info("key.rotated", old_key_id=f"{old.key_id:08x}", key_id=f"{vkey.key_id:08x}")
        self.checkpoint()
        return vkey

    def checkpoint(self) -> str:
        """Sign a checkpoint of the log as it is now and keep it; return the signed note.

        Before it is stored, the new tree is proven consistent with the last
        checkpoint (append-only since then); if that fails, nothing is
        signed and an IntegrityError is raised.
        """
        if self._signer is None:
            raise DockdError("signing a checkpoint needs a writing service")
        key, vkey = self._signer
        size, _ = self.catalog.head()
        root = root_hash(self.catalog.node, size)
        previous = self.catalog.last_checkpoint()
        if previous is not None:
            old_size, old_root = int(previous["size"]), bytes(previous["root"])
            if (old_size, old_root) == (size, root) and previous["key_id"] == f"{vkey.key_id:08x}":
                return str(previous["note"])
            proof = consistency_proof(self.catalog.node, old_size, size) if old_size <= size else []
            if not verify_consistency(old_size, size, old_root, root, proof):
                log.error("checkpoint.inconsistent", old_size=old_size, size=size)
                raise IntegrityError(
                    f"the log of size {size} is not an extension of checkpoint {previous['id']} "
                    f"(size {old_size}); refusing to sign. Run `dockd verify`."
                )
        note = sign(Checkpoint(self.origin, size, root).to_text(), self.origin, key)
        now = self.clock.now()
        with self.catalog.transaction():
            self.catalog.insert_checkpoint(
                {
                    "size": size,
                    "root": root,
                    "note": note,
                    "key_id": f"{vkey.key_id:08x}",
                    "created_at": isoformat_utc(now),
                }
            )
        log.info("checkpoint.signed", size=size, root=base64.b64encode(root).decode())
        return note

    def trusted_keys(self) -> list[VerifierKey]:
        """Configured pins if any, else every key the catalog recorded."""
        pinned = self.config.integrity.trusted_keys
        texts = pinned or tuple(row["vkey"] for row in self.catalog.signing_keys())
        return [VerifierKey.from_text(t) for t in texts]

    def _covering_checkpoint(self, size: int) -> dict[str, Any]:
        for row in reversed(self.catalog.checkpoints()):
            if int(row["size"]) >= size:
                return dict(row)
        raise DockdError(f"no checkpoint covers log entry {size} yet; run `dockd checkpoint`")

    def inclusion(self, recording_id: int) -> dict[str, Any]:
        """Everything an outsider needs to check that a recording's entry is in the log."""
        recording = self.catalog.recording(recording_id)
        if recording is None:
            raise DockdError(f"no recording {recording_id}")
        raw = self.catalog.log_entry(recording.log_seq) or b""
        checkpoint = self._covering_checkpoint(recording.log_seq)
        index, size = recording.log_seq - 1, int(checkpoint["size"])
        return {
            "recording": recording_id,
            "entry": raw.decode("utf-8"),
            "leaf_index": index,
            "leaf_hash": _b64(leaf_hash(raw)),
            "tree_size": size,
            "inclusion_path": [_b64(h) for h in inclusion_proof(self.catalog.node, index, size)],
            "checkpoint": checkpoint["note"],
            "keys": [k.to_text() for k in self.trusted_keys()],
        }

    def consistency(self, old_size: int, new_size: int | None = None) -> dict[str, Any]:
        size, _ = self.catalog.head()
        new = size if new_size is None else new_size
        if not 0 <= old_size <= new <= size:
            raise DockdError(f"sizes must satisfy 0 <= {old_size} <= {new} <= {size} (log size)")
        return {
            "old_size": old_size,
            "new_size": new,
            "old_root": _b64(root_hash(self.catalog.node, old_size)),
            "new_root": _b64(root_hash(self.catalog.node, new)),
            "consistency_path": [
                _b64(h) for h in consistency_proof(self.catalog.node, old_size, new)
            ],
            "keys": [k.to_text() for k in self.trusted_keys()],
        }

    def export_log(self, out: Path, first: int = 1, last: int | None = None) -> dict[str, Any]:
        """Write entries first..last, their inclusion proofs, the covering checkpoint,
        the public keys and the checker verify.py to `out`.

        This is the layout verify.py (dockd/integrity/standalone_verify.py, the
        disc's checker too) recognises and checks: entries.jsonl, proofs.json
        {"from", "to", "tree_size", "prev_of_first", "inclusion": one list of
        base64 hashes per line}, checkpoint.txt, keys.txt, README.txt.
        """
        size, _ = self.catalog.head()
        last = size if last is None else last
        if not 1 <= first <= last <= size:
            raise DockdError(f"entries must satisfy 1 <= {first} <= {last} <= {size} (log size)")
        checkpoint = self._covering_checkpoint(last)
        tree_size = int(checkpoint["size"])
        out.mkdir(parents=True, exist_ok=True)
        entries: list[bytes] = []
        paths: list[list[str]] = []
        for seq in range(first, last + 1):
            raw = self.catalog.log_entry(seq) or b""
            entries.append(raw)
            paths.append([_b64(h) for h in inclusion_proof(self.catalog.node, seq - 1, tree_size)])
        prev = LogEntry.from_bytes(entries[0]).prev
        (out / "entries.jsonl").write_bytes(b"".join(e + b"\n" for e in entries))
        (out / "checkpoint.txt").write_text(str(checkpoint["note"]), "utf-8")
        (out / "keys.txt").write_text("".join(k.to_text() + "\n" for k in self.trusted_keys()))
        proofs = {
            "from": first,
            "to": last,
            "tree_size": tree_size,
            "prev_of_first": prev,
            "inclusion": paths,
        }
        (out / "proofs.json").write_text(json.dumps(proofs, indent=1), "utf-8")
        # The checker travels with the entries, so that whoever receives them needs
        # Python and `cryptography`, not dockd.
        (out / "verify.py").write_bytes(standalone_verify.source())
        (out / "README.txt").write_text(
            EXPORT_README.format(first=first, last=last, size=tree_size), "utf-8"
        )
        return {"out": str(out), "from": first, "to": last, "tree_size": tree_size}

    # -- sessions ----------------------------------------------------------------

    def begin_session(
        self,
        serial: str,
        profile: str,
        source: str,
        *,
        wipe: bool,
        officer: str | None = None,
        clock_offset_s: int | None = None,
        device: DeviceIdentity | None = None,
        health: DeviceHealth | None = None,
    ) -> SessionInfo:
        """Open a docking session; the device is registered on its first docking."""
        now = self.clock.now()
        if health is not None and clock_offset_s is None:
            clock_offset_s = health.clock_offset_s
        slot = device.slot if device else None
        with self.catalog.transaction():
            self._register_device(serial, profile, device, now)
            session_id = self.catalog.insert_session(
                {
                    "device_serial": serial,
                    "profile": profile,
                    "source": source,
                    "started_at": isoformat_utc(now),
                    "state": "running",
                    "clock_offset_s": clock_offset_s,
                    "slot": slot,
                    "health": _json_text(health.as_json()) if health else None,
                }
            )
            self._log(
                "session.started",
                {
                    "session": session_id,
                    "device_serial": serial,
                    "profile": profile,
                    "source": source,
                    "wipe_after_verify": wipe,
                    "officer": officer,
                    "clock_offset_s": clock_offset_s,
                    "slot": slot,
                    "device": device.as_json() if device else None,
                    "health": health.as_json() if health else None,
                },
                now,
            )
        log.info(
            "session.start",
            session=session_id,
            serial=serial,
            profile=profile,
            source=source,
            slot=slot,
        )
        return SessionInfo(session_id, serial, profile, source, wipe, officer, clock_offset_s)

    def end_session(self, session: SessionInfo, state: str, summary: dict[str, Any]) -> None:
        now = self.clock.now()
        with self.catalog.transaction():
            self.catalog.update_session(
                session.id,
                {"state": state, "ended_at": isoformat_utc(now), "summary": _json_text(summary)},
            )
            self._log("session.ended", {"session": session.id, "state": state, **summary}, now)
        log.info("session.done", session=session.id, serial=session.serial, state=state, **summary)
        self.checkpoint()

    # -- devices and assignments (seed rule R2) -----------------------------------

    def _register_device(
        self, serial: str, profile: str, device: DeviceIdentity | None, now: datetime
    ) -> None:
        """Record a docking on the device row (registry of known devices)."""
        known = self.catalog.device(serial)
        values: dict[str, Any] = {
            "serial": serial,
            "profile": profile,
            "last_docked": isoformat_utc(now),
            "last_slot": device.slot if device else None,
        }
        if device is not None:
            values |= {
                "vendor_id": device.vendor_id,
                "model_id": device.model_id,
                "vendor": device.vendor,
                "model": device.model,
            }
        if known is None:
            values["first_seen"] = isoformat_utc(now)
        # The docking's own session.started entry records it: no entry of its own.
        self.catalog.upsert_device(values)

    def assign_device(
        self,
        serial: str,
        *,
        officer: str | None,
        unit: str | None,
        device_number: str | None = None,
        valid_from: datetime | None = None,
        valid_to: datetime | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> tuple[Assignment, list[int]]:
        """Append an assignment (officer None: back to the pool) and re-attribute.

        Recordings of this device made within the period get the officer and
        unit now in force at their start time; the ids changed are in the
        entry. Returns the assignment and those ids.
        """
        check_serial(serial)
        if officer is not None and not (officer.strip() and (unit or "").strip()):
            raise DockdError("an assignment needs both --officer and --unit")
        now = self.clock.now()
        start = valid_from or now
        if valid_to is not None and valid_to <= start:
            raise DockdError(
                f"--to ({isoformat_utc(valid_to)}) must be after --from ({isoformat_utc(start)})"
            )
        with self.catalog.transaction():
            assignment_id = int(
                self.catalog.db.execute(
                    "SELECT COALESCE(MAX(id), 0) + 1 FROM assignments"
                ).fetchone()[0]
            )
            existing = self.catalog.assignments(serial)
            proposed = Assignment(
                assignment_id, serial, officer, unit, device_number, start, valid_to, now, 0
            )
            changed = self._reattribute(serial, [*existing, proposed])
            facts = {k: v for k, v in proposed.as_json().items() if k not in ("id", "log_seq")}
            entry = self._log(
                "device.assigned",
                {
                    **facts,
                    "assignment": assignment_id,
                    "reason": reason,
                    "by": actor,
                    "reattributed": changed,
                },
                now,
            )
            self.catalog.insert_assignment(
                {
                    **proposed.as_json(),
                    "id": assignment_id,
                    "reason": reason,
                    "log_seq": entry.seq,
                }
            )
            if self.catalog.device(serial) is None:
                self.catalog.upsert_device({"serial": serial, "first_seen": isoformat_utc(now)})
        log.info(
            "device.assigned",
            serial=serial,
            officer=officer,
            unit=unit,
            assignment=assignment_id,
            reattributed=len(changed),
        )
        return dataclasses.replace(proposed, log_seq=entry.seq), changed

    def _reattribute(self, serial: str, assignments: list[Assignment]) -> list[int]:
        """Bring officer/unit/flags of this device's recordings in line; caller holds the txn."""
        changed: list[int] = []
        for rec in self.catalog.recordings_of_device(serial):
            who = attribute(
                assignments,
                parse_utc(rec.recorded_start),
                name_officer=rec.name_officer,
                name_device=rec.name_device,
            )
            flags = set(rec.flags) - {FLAG_UNASSIGNED}
            if not who.assigned:
                flags.add(FLAG_UNASSIGNED)
            values = {
                "officer": who.officer,
                "unit": who.unit,
                "device_number": who.device_number,
                "flags": sorted(flags),
            }
            current = {
                "officer": rec.officer,
                "unit": rec.unit,
                "device_number": rec.device_number,
                "flags": sorted(rec.flags),
            }
            if values != current:
                self.catalog.update_attribution(rec.id, values)
                changed.append(rec.id)
        return changed

    def devices(self) -> list[DeviceStatus]:
        """Every device known from dockings or assignments, with who has it now."""
        now = self.clock.now()
        counts = dict(
            self.catalog.db.execute(
                "SELECT device_serial, COUNT(*) FROM recordings GROUP BY device_serial"
            ).fetchall()
        )
        result: list[DeviceStatus] = []
        limit = timedelta(hours=self.config.devices.overdue_hours)
        for row in self.catalog.devices():
            history = self.catalog.assignments(row["serial"])
            current = assignment_at(history, now)
            last = parse_utc(row["last_docked"]) if row.get("last_docked") else None
            # Counted from the later of the last docking and the hand-out: a
            # camera issued from the pool an hour ago is not overdue.
            overdue = (
                current is not None
                and now - max([t for t in (last, current.valid_from) if t is not None]) > limit
            )
            result.append(
                DeviceStatus(
                    serial=row["serial"],
                    vendor=row.get("vendor") or "",
                    model=row.get("model") or "",
                    profile=row.get("profile") or "",
                    first_seen=row["first_seen"],
                    last_docked=row.get("last_docked"),
                    last_slot=row.get("last_slot"),
                    recordings=int(counts.get(row["serial"], 0)),
                    current=current,
                    history=tuple(history),
                    overdue=overdue,
                )
            )
        return result

    # -- ingest ----------------------------------------------------------------------

    def ingest_file(
        self, session: SessionInfo, volume: Volume, profile: Profile, found: FoundFile
    ) -> FileOutcome:
        """Bring one camera file into the store and catalog, or raise DockdError.

        On any error nothing of this file is left in store/tmp and nothing
        is committed; the camera's copy must then stay where it is. The
        three steps are public so that a session can overlap the probe of
        one file with the copy of the next (see ingest/session.py).
        """
        staged = self.stage_file(session, volume, found)
        if isinstance(staged, FileOutcome):
            return staged
        return self.finish_file(session, profile, staged, self.probe_staged(staged))

    def stage_file(
        self,
        session: SessionInfo,
        volume: Volume,
        found: FoundFile,
        should_stop: Callable[[], bool] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> FileOutcome | Staged:
        """Step 1: a duplicate's outcome, or the proven object renamed into the store.

        `progress` hears of the source's bytes as they are read (negative: a
        read starts over), for a bar that moves within a large file.
        """
        cfg = self.config.ingest
        known = self.catalog.find_same_file(
            session.serial, found.rel_path, found.identity.size, found.identity.mtime_ns
        )
        if known is not None and self.store.has(known.sha256):
            sha, size, before, after = hash_source(
                volume, found.rel_parts, cfg.buffer_size, progress
            )
            if sha == known.sha256 and before == after and size == before.size:
                return self._duplicate(session, found, known, after, changed=False)
            if progress is not None:
                progress(-size)  # not the same file after all: it is copied from the start

        flags: list[str] = []
        copy = self._copy_until_stable(volume, found, flags, should_stop, progress)
        try:
            existing = self.catalog.find_exact(session.serial, found.rel_path, copy.sha256)
            if existing is not None and existing.deleted:
                # Not stored again: only a tombstone would refer to it.
                self.store.discard_temp(copy.temp)
            else:
                self.store.commit_temp(copy.temp, copy.sha256, cfg.buffer_size)
        except BaseException:
            self.store.discard_temp(copy.temp)
            raise
        if existing is not None:
            return self._duplicate(session, found, existing, copy.after, changed=bool(flags))
        return Staged(found, copy, tuple(flags))

    def probe_staged(self, staged: Staged) -> MediaInfo:
        """Step 2: ffprobe the stored object. Touches no catalog: safe in a worker thread."""
        if staged.copy.size == 0:
            return MediaInfo(error="empty file")
        cfg = self.config.ingest
        return probe(self.store.object_path(staged.copy.sha256), cfg.ffprobe, cfg.ffprobe_timeout)

    def finish_file(
        self, session: SessionInfo, profile: Profile, staged: Staged, media: MediaInfo
    ) -> FileOutcome:
        """Step 3: the recording row and its log entry, in one transaction."""
        found, copy, flags = staged.found, staged.copy, list(staged.flags)
        if copy.size == 0:
            flags.append(FLAG_EMPTY)
        elif not media.readable:
            flags.append(FLAG_UNREADABLE)
        recording = self._commit_recording(session, profile, found, copy, media, flags)
        event = "ingest.file.flagged" if recording.flags else "ingest.file.ingested"
        log.info(
            event,
            session=session.id,
            recording=recording.id,
            path=found.display,
            sha256=recording.sha256,
            size=recording.size,
            flags=",".join(recording.flags),
        )
        return FileOutcome("ingested", found, recording, FLAG_CHANGED not in flags, copy.after)

    def _copy_until_stable(
        self,
        volume: Volume,
        found: FoundFile,
        flags: list[str],
        should_stop: Callable[[], bool] | None,
        progress: Callable[[int], None] | None = None,
    ) -> Copy:
        cfg = self.config.ingest
        attempts = cfg.change_retries + 1
        for attempt in range(1, attempts + 1):
            copy = copy_verified(
                volume, found.rel_parts, self.store, cfg.buffer_size, should_stop, progress
            )
            if not copy.source_changed:
                return copy
            if attempt == attempts:
                # Keep what was read: a file that will not hold still is evidence too.
                flags.append(FLAG_CHANGED)
                log.warning("ingest.file.changing", path=found.display, attempts=attempts)
                return copy
            self.store.discard_temp(copy.temp)
            if progress is not None:
                progress(-copy.size)  # the retry reads the file again from its start
            log.info("ingest.file.retry", path=found.display, attempt=attempt)
            time.sleep(cfg.change_retry_delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _duplicate(
        self,
        session: SessionInfo,
        found: FoundFile,
        known: Recording,
        seen: FileIdentity,
        changed: bool,
    ) -> FileOutcome:
        may_wipe = False
        if known.deleted:
            # The retention sweep deleted this recording's bytes; the camera's
            # copy is now the only one. Kept there, reported, never wiped.
            log.warning(
                "ingest.file.retention_deleted",
                session=session.id,
                recording=known.id,
                path=found.display,
                deleted_at=known.deleted_at,
            )
            return FileOutcome("duplicate", found, known, False, seen)
        if session.wipe and not changed:
            # About to delete the camera's copy on the strength of an older
            # object: prove that object still holds these bytes first.
            actual, _ = hash_file(
                self.store.object_path(known.sha256), self.config.ingest.buffer_size
            )
            if actual != known.sha256:
                log.error("store.object_damaged", sha256=known.sha256, recording=known.id)
                raise StoreError(
                    f"store object {known.store_path} of recording {known.id} is damaged; "
                    "the camera's copy is kept (run `dockd verify`)"
                )
            may_wipe = True
        log.info(
            "ingest.file.duplicate", session=session.id, recording=known.id, path=found.display
        )
        return FileOutcome("duplicate", found, known, may_wipe, seen)

    def _commit_recording(
        self,
        session: SessionInfo,
        profile: Profile,
        found: FoundFile,
        copy: Copy,
        media: MediaInfo,
        flags: list[str],
    ) -> Recording:
        now = self.clock.now()
        name = profile.parse_name(found.rel_parts[-1])
        times = resolve_times(name, media, copy.after.mtime_ns)
        deadline = offload_deadline(times.end)
        late = is_late(times.end, now)
        if late:
            flags.append(FLAG_LATE)
        name_officer = session.officer or name.officer
        store_path = self.store.relative_path(copy.sha256)
        policy = self.policy
        retention = decide(Facts(times.end), policy)
        expires = isoformat_utc(retention.expires_at) if retention.expires_at else None
        with self.catalog.transaction():
            # Read inside the transaction: an assignment committed meanwhile
            # (socket thread) must either see this row or be seen by it.
            who = attribute(
                self.catalog.assignments(session.serial),
                times.start,
                name_officer=name_officer,
                name_device=name.device,
            )
            if not who.assigned:
                flags.append(FLAG_UNASSIGNED)
            recording_id = int(
                self.catalog.db.execute(
                    "SELECT COALESCE(MAX(id), 0) + 1 FROM recordings"
                ).fetchone()[0]
            )
            entry = self._log(
                "recording.ingested",
                {
                    "recording": recording_id,
                    "session": session.id,
                    "sha256": copy.sha256,
                    "size": copy.size,
                    "source_path": found.display,
                    "source_path_b64": source_path_b64(found.rel_path),
                    "store_path": store_path,
                    "device_serial": session.serial,
                    "device_number": who.device_number,
                    "officer": who.officer,
                    "unit": who.unit,
                    "assignment": who.assignment,
                    "name_officer": name_officer,
                    "name_device": name.device,
                    "sequence": name.seq,
                    "profile": profile.name,
                    "recorded_start": isoformat_utc(times.start),
                    "recorded_end": isoformat_utc(times.end),
                    "time_source": times.source,
                    "clock_offset_s": session.clock_offset_s,
                    "deadline": isoformat_utc(deadline),
                    "flags": sorted(flags),
                    "source_disposition": "delete"
                    if session.wipe and FLAG_CHANGED not in flags
                    else "keep",
                    "tier": retention.tier,
                    "expires_at": expires,
                    "policy_version": policy.version,
                },
                now,
            )
            self.catalog.insert_recording(
                {
                    "id": recording_id,
                    "sha256": copy.sha256,
                    "size": copy.size,
                    "source_path": found.rel_path,
                    "source_path_text": found.display,
                    "source_mtime_ns": copy.after.mtime_ns,
                    "store_path": store_path,
                    "device_serial": session.serial,
                    "device_number": who.device_number,
                    "profile": profile.name,
                    "officer": who.officer,
                    "unit": who.unit,
                    "name_officer": name_officer,
                    "name_device": name.device,
                    "sequence": name.seq,
                    "recorded_start": isoformat_utc(times.start),
                    "recorded_end": isoformat_utc(times.end),
                    "time_source": times.source,
                    "clock_offset_s": session.clock_offset_s,
                    "ingested_at": isoformat_utc(now),
                    "deadline": isoformat_utc(deadline),
                    "late": late,
                    "flags": sorted(flags),
                    "media": media.as_json(),
                    "session_id": session.id,
                    "log_seq": entry.seq,
                    "tier": retention.tier,
                    "expires_at": expires,
                }
            )
        recording = self.catalog.recording(recording_id)
        assert recording is not None
        return recording

    # -- labels and cases (seed rule R2) -------------------------------------------

    def _existing(self, ids: list[int]) -> list[Recording]:
        if not ids:
            raise UsageError("name at least one recording id")
        unique = sorted(set(ids))
        found = self.catalog.recordings_by_id(unique)
        missing = sorted(set(unique) - {r.id for r in found})
        if missing:
            raise UsageError(f"no recording {', '.join(map(str, missing))} (see dockd list)")
        return found

    def tag(
        self,
        ids: list[int],
        *,
        cause: str | None = None,
        parties: tuple[str, ...] = (),
        categories: tuple[str, ...] = (),
        remove_categories: tuple[str, ...] = (),
        note: str | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Label recordings: cause (replaces), parties and categories (added), a note.

        Removing a category can shorten retention, so it needs a reason.
        Nothing about the footage changes; one entry records the change and,
        if tiers moved, a `retention.updated` entry follows it.
        """
        added = check_categories(categories)
        dropped = check_categories(remove_categories)
        if added & dropped:
            raise UsageError(f"category {sorted(added & dropped)[0]} both added and removed")
        if dropped and not (reason or "").strip():
            raise UsageError("removing a category needs --reason (it may shorten retention)")
        parties = tuple(_clean(p, "--party") for p in parties)
        cause = _clean(cause, "--cause") if cause is not None else None
        note = _clean(note, "--note") if note is not None else None
        if cause is None and not (parties or added or dropped or note):
            raise UsageError("nothing to tag: give --cause, --party, --category or --note")
        now = self.clock.now()
        with self.catalog.transaction():
            rows = self._existing(ids)
            entry = self._log(
                "recording.tagged",
                {
                    "recordings": [r.id for r in rows],
                    "cause": cause,
                    "parties_added": sorted(set(parties)),
                    "categories_added": sorted(added),
                    "categories_removed": sorted(dropped),
                    "note": note,
                    "reason": reason,
                    "by": actor,
                },
                now,
            )
            for r in rows:
                values: dict[str, Any] = {
                    "parties": sorted(set(r.parties) | set(parties)),
                    "categories": sorted((set(r.categories) | added) - dropped),
                }
                if cause is not None:
                    values["cause"] = cause
                if note is not None:
                    values["notes"] = [
                        *r.notes,
                        {"text": note, "by": actor, "at": isoformat_utc(now), "entry": entry.seq},
                    ]
                self.catalog.update_labels(r.id, values)
            moved = self._update_retention(
                [r.id for r in rows], "recording.tagged", entry.seq, actor
            )
        log.info("recording.tagged", recordings=len(rows), entry=entry.seq, **moved)
        return {"recordings": [r.id for r in rows], "log_entry": entry.seq, **moved}

    def create_case(
        self,
        no: str,
        *,
        cause: str,
        parties: tuple[str, ...] = (),
        categories: tuple[str, ...] = (),
        actor: str | None = None,
    ) -> dict[str, Any]:
        no = _clean(no, "case number")
        cause = _clean(cause, "--cause")
        chosen = check_categories(categories)
        now = self.clock.now()
        with self.catalog.transaction():
            if self.catalog.case(no) is not None:
                raise UsageError(f"case {no} exists already (dockd case show {no})")
            facts = {
                "case": no,
                "cause": cause,
                "parties": sorted({_clean(p, "--party") for p in parties}),
                "categories": sorted(chosen),
            }
            entry = self._log("case.created", {**facts, "by": actor}, now)
            self.catalog.insert_case(
                {
                    "no": no,
                    "cause": cause,
                    "parties": facts["parties"],
                    "categories": facts["categories"],
                    "state": "open",
                    "created_at": isoformat_utc(now),
                    "log_seq": entry.seq,
                }
            )
        log.info("case.created", case=no, entry=entry.seq)
        return {"case": no, "log_entry": entry.seq}

    def _case(self, no: str) -> dict[str, Any]:
        case = self.catalog.case(no)
        if case is None:
            raise UsageError(f"no case {no!r} (dockd case create {no} --cause …)")
        return case

    def link_case(
        self, no: str, ids: list[int], *, reason: str | None = None, actor: str | None = None
    ) -> dict[str, Any]:
        now = self.clock.now()
        with self.catalog.transaction():
            self._case(no)
            rows = self._existing(ids)
            linked = {int(link["recording_id"]) for link in self.catalog.case_links(no)}
            new = [r.id for r in rows if r.id not in linked]
            if not new:
                raise UsageError(f"every recording named is linked to case {no} already")
            entry = self._log(
                "case.linked", {"case": no, "recordings": new, "reason": reason, "by": actor}, now
            )
            self.catalog.link(no, new, isoformat_utc(now), entry.seq)
            moved = self._update_retention(new, "case.linked", entry.seq, actor)
        log.info("case.linked", case=no, recordings=len(new), entry=entry.seq)
        return {"case": no, "linked": new, "log_entry": entry.seq, **moved}

    def unlink_case(
        self, no: str, ids: list[int], *, reason: str, actor: str | None = None
    ) -> dict[str, Any]:
        if not reason.strip():
            raise UsageError("unlinking needs --reason (it may shorten retention)")
        now = self.clock.now()
        with self.catalog.transaction():
            self._case(no)
            linked = {int(link["recording_id"]) for link in self.catalog.case_links(no)}
            gone = sorted(set(ids) & linked)
            if not gone:
                raise UsageError(f"none of these recordings is linked to case {no}")
            entry = self._log(
                "case.unlinked",
                {"case": no, "recordings": gone, "reason": reason, "by": actor},
                now,
            )
            self.catalog.unlink(no, gone)
            moved = self._update_retention(gone, "case.unlinked", entry.seq, actor)
        log.info("case.unlinked", case=no, recordings=len(gone), entry=entry.seq)
        return {"case": no, "unlinked": gone, "log_entry": entry.seq, **moved}

    def set_case_state(
        self, no: str, state: str, *, reason: str, actor: str | None = None
    ) -> dict[str, Any]:
        """Close (state "closed") or reopen ("open") a case; its recordings' retention follows."""
        if state not in ("open", "closed"):
            raise UsageError(f"a case is open or closed, not {state!r}")
        if not reason.strip():
            raise UsageError("closing or reopening a case needs --reason")
        now = self.clock.now()
        kind = "case.closed" if state == "closed" else "case.reopened"
        with self.catalog.transaction():
            case = self._case(no)
            if case["state"] == state:
                raise UsageError(f"case {no} is {state} already")
            entry = self._log(kind, {"case": no, "reason": reason, "by": actor}, now)
            self.catalog.update_case(
                no, {"state": state, "closed_at": isoformat_utc(now) if state == "closed" else None}
            )
            ids = [int(link["recording_id"]) for link in self.catalog.case_links(no)]
            moved = self._update_retention(ids, kind, entry.seq, actor)
        log.info(kind, case=no, entry=entry.seq)
        return {"case": no, "state": state, "log_entry": entry.seq, **moved}

    def case_detail(self, no: str) -> dict[str, Any]:
        case = self._case(no)
        ids = [int(link["recording_id"]) for link in self.catalog.case_links(no)]
        holds = [h for h in self.holds() if h["case"] == no]
        return {
            **{k: v for k, v in case.items() if k != "no"},
            "case": no,
            "recordings": [r.as_json() for r in self.catalog.recordings_by_id(ids)],
            "holds": holds,
        }

    def cases(self) -> list[dict[str, Any]]:
        counts = dict(
            self.catalog.db.execute(
                "SELECT case_no, COUNT(*) FROM case_links GROUP BY case_no"
            ).fetchall()
        )
        return [{**c, "recordings": int(counts.get(c["no"], 0))} for c in self.catalog.cases()]

    # -- legal holds ----------------------------------------------------------------

    def set_hold(
        self,
        *,
        case: str | None = None,
        ids: list[int] | None = None,
        reason: str,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Hold a case (every recording linked to it, now or later) or listed recordings."""
        if (case is None) == (not ids):
            raise UsageError("hold either --case NO or recording ids, not both or neither")
        reason = _clean(reason, "--reason")
        now = self.clock.now()
        with self.catalog.transaction():
            targets: list[int] = []
            if case is not None:
                self._case(case)
            else:
                targets = [r.id for r in self._existing(list(ids or []))]
                gone = [r.id for r in self.catalog.recordings_by_id(targets) if r.deleted]
                if gone:
                    raise UsageError(
                        f"recording {', '.join(map(str, gone))} was deleted by the retention "
                        "sweep; only its tombstone is left to hold"
                    )
            hold_id = int(
                self.catalog.db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM holds").fetchone()[0]
            )
            entry = self._log(
                "hold.set",
                {
                    "hold": hold_id,
                    "case": case,
                    "recordings": targets,
                    "reason": reason,
                    "by": actor,
                },
                now,
            )
            self.catalog.insert_hold(
                {
                    "id": hold_id,
                    "case_no": case,
                    "reason": reason,
                    "set_at": isoformat_utc(now),
                    "set_by": actor,
                    "log_seq": entry.seq,
                },
                targets,
            )
            covered = self.catalog.held_ids(hold_id)
            moved = self._update_retention(covered, "hold.set", entry.seq, actor)
        log.info("hold.set", hold=hold_id, case=case, recordings=len(covered), entry=entry.seq)
        return {"hold": hold_id, "recordings": covered, "log_entry": entry.seq, **moved}

    def release_hold(
        self, hold_id: int, *, reason: str, actor: str | None = None
    ) -> dict[str, Any]:
        reason = _clean(reason, "--reason")
        now = self.clock.now()
        with self.catalog.transaction():
            hold = self.catalog.hold(hold_id)
            if hold is None:
                raise UsageError(f"no hold {hold_id} (dockd hold list)")
            if hold["released_at"] is not None:
                raise UsageError(f"hold {hold_id} was released at {hold['released_at']}")
            entry = self._log(
                "hold.released", {"hold": hold_id, "reason": reason, "by": actor}, now
            )
            self.catalog.release_hold(
                hold_id,
                {
                    "released_at": isoformat_utc(now),
                    "released_by": actor,
                    "release_reason": reason,
                    "release_log_seq": entry.seq,
                },
            )
            covered = self.catalog.held_ids(hold_id)
            moved = self._update_retention(covered, "hold.released", entry.seq, actor)
        log.info("hold.released", hold=hold_id, entry=entry.seq)
        return {"hold": hold_id, "recordings": covered, "log_entry": entry.seq, **moved}

    def holds(self) -> list[dict[str, Any]]:
        return [
            {
                "hold": h["id"],
                "case": h["case_no"],
                "recordings": self.catalog.held_ids(int(h["id"])),
                "reason": h["reason"],
                "set_at": h["set_at"],
                "set_by": h["set_by"],
                "active": h["released_at"] is None,
                "released_at": h["released_at"],
                "released_by": h["released_by"],
                "release_reason": h["release_reason"],
            }
            for h in self.catalog.holds()
        ]

    # -- retention (seed rule R4) ------------------------------------------------------

    @property
    def policy(self) -> Policy:
        cfg = self.config.retention
        return Policy(cfg.preset, cfg.grace_days)

    def apply_retention_policy(self) -> None:
        """Log the policy this writer applies; give every recording its tier under it.

        Runs at each writing start: after a policy change (config) every
        tier is recomputed, and recordings from before schema 5 get theirs.
        """
        policy = self.policy
        last = self.catalog.db.execute(
            "SELECT entry FROM log WHERE kind = 'retention.policy' ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        current = {
            "version": policy.version,
            "preset": policy.preset,
            "routine_tier": policy.routine_tier,
            "grace_days": policy.grace_days,
        }
        logged = LogEntry.from_bytes(bytes(last[0])).data if last else None
        if logged is not None:
            logged = {k: v for k, v in logged.items() if k != "by"}
        untiered = self.catalog.db.execute(
            "SELECT EXISTS (SELECT 1 FROM recordings "
            "WHERE tier IS NULL AND retention_state != 'deleted')"
        ).fetchone()[0]
        if logged == current and not untiered:
            return
        with self.catalog.transaction():
            entry = None
            if logged != current:
                entry = self._log("retention.policy", {**current, "by": "config"})
            reason = "retention policy " + (
                f"changed from {logged['version']}" if logged else "first applied"
            )
            moved = self._update_retention(None, reason, entry.seq if entry else None, "config")
        log.info("retention.policy", version=policy.version, **moved)

    def _update_retention(
        self, ids: list[int] | None, reason: str, trigger: int | None, actor: str | None
    ) -> dict[str, int]:
        """Recompute tier, expiry and protection; log what moved. Caller holds the transaction.

        A pending recording that is no longer deletable (held, an open case,
        a longer tier) goes back to live in the same entry.
        """
        policy = self.policy
        now = self.clock.now()
        tiers: dict[str, list[int]] = {}
        kept: list[int] = []
        changes: list[tuple[int, dict[str, Any]]] = []
        for row in self.catalog.retention_facts(ids):
            categories = set(json.loads(row["categories"]))
            for text in json.loads(row["case_categories"] or "[]"):
                categories |= set(json.loads(text))
            keep = row["keep_until"]
            facts = Facts(
                parse_utc(row["recorded_end"]),
                frozenset(categories),
                open_case=bool(row["open_case"]),
                held=bool(row["held"]),
                keep_until=parse_utc(keep) if keep else None,
            )
            decision = decide(facts, policy)
            expires = isoformat_utc(decision.expires_at) if decision.expires_at else None
            values: dict[str, Any] = {}
            if (decision.tier, expires) != (row["tier"], row["expires_at"]):
                values |= {"tier": decision.tier, "expires_at": expires}
                tiers.setdefault(decision.tier, []).append(int(row["id"]))
            if row["retention_state"] == "pending_deletion" and not decision.deletable(now):
                values |= {"retention_state": "live", "pending_since": None}
                kept.append(int(row["id"]))
            if values:
                changes.append((int(row["id"]), values))
        self.catalog.update_retention_many(changes)
        ids_moved = [(tier, i) for tier, group in sorted(tiers.items()) for i in group]
        for start in range(0, max(len(ids_moved), len(kept)), RETENTION_ENTRY_IDS):
            chunk: dict[str, list[int]] = {}
            for tier, i in ids_moved[start : start + RETENTION_ENTRY_IDS]:
                chunk.setdefault(tier, []).append(i)
            self._log(
                "retention.updated",
                {
                    "reason": reason,
                    "trigger": trigger,
                    "policy_version": policy.version,
                    "tiers": chunk,
                    "kept": kept[start : start + RETENTION_ENTRY_IDS],
                    "by": actor,
                },
                now,
            )
        return {"tier_changed": len(ids_moved), "kept_from_deletion": len(kept)}

    def retention_plan(self, as_of: datetime | None = None) -> Plan:
        """What a sweep at `as_of` (default now) would do; changes nothing."""
        as_of = as_of or self.clock.now()
        rows = self.catalog.expired_candidates(isoformat_utc(floor_second(as_of)))
        protected = self.catalog.protected_ids()
        candidates = [Candidate.from_row(r, protected.get(int(r["id"]), ())) for r in rows]
        refs = self.catalog.live_references([c.sha256 for c in candidates])
        policy = self.policy
        return plan(
            candidates, refs, as_of, grace_days=policy.grace_days, policy_version=policy.version
        )

    def upcoming(self, days: float, as_of: datetime | None = None) -> list[dict[str, Any]]:
        """Live recordings whose expiry falls within `days` (to tag or hold in time)."""
        as_of = as_of or self.clock.now()
        until = isoformat_utc(ceil_second(as_of + timedelta(days=days)))
        protected = self.catalog.protected_ids()
        rows = self.catalog.db.execute(
            "SELECT id FROM recordings WHERE retention_state = 'live' "
            "AND expires_at > ? AND expires_at <= ? ORDER BY expires_at, id",
            [isoformat_utc(floor_second(as_of)), until],
        )
        ids = [int(r[0]) for r in rows if int(r[0]) not in protected]
        return [r.as_json() for r in self.catalog.recordings_by_id(ids)]

    def sweep(
        self,
        as_of: datetime | None = None,
        *,
        dry_run: bool = False,
        actor: str | None = None,
        batch: int = 500,
    ) -> SweepReport:
        """Apply the retention plan: mark expired recordings pending, delete those past grace.

        Deletion order (docs/FORMAT.md): each batch's tombstones and
        `retention.deleted` entries are committed first, then the objects no
        live row uses are unlinked. Each row is re-checked inside its batch's
        transaction, so a hold or tag made meanwhile always wins.
        """
        now = self.clock.now()
        as_of = as_of or now
        if as_of > now and not dry_run:
            raise ConfigError(
                f"--as-of {isoformat_utc(as_of)} is in the future: that would delete early "
                "(use it with --dry-run to see what will expire)"
            )
        the_plan = self.retention_plan(as_of)
        if dry_run:
            return SweepReport(the_plan, (), (), (), dry_run=True)
        policy = self.policy
        marked: list[int] = []
        delete_after = isoformat_utc(now + timedelta(days=policy.grace_days))
        pending = [c.id for c in the_plan.mark_pending]
        for start in range(0, len(pending), RETENTION_ENTRY_IDS):
            with self.catalog.transaction():
                fresh = self._still_deletable(pending[start : start + RETENTION_ENTRY_IDS], as_of)
                chunk = [i for i, row in fresh.items() if row["retention_state"] == "live"]
                if not chunk:
                    continue
                self._log(
                    "retention.pending",
                    {
                        "recordings": chunk,
                        "as_of": isoformat_utc(as_of),
                        "delete_after": delete_after,
                        "policy_version": policy.version,
                        "by": actor,
                    },
                    now,
                )
                pending_values = {
                    "retention_state": "pending_deletion",
                    "pending_since": isoformat_utc(now),
                }
                self.catalog.update_retention_many([(i, pending_values) for i in chunk])
                marked += chunk
        deleted: list[int] = []
        removed: list[str] = []
        unlink: list[str] = []
        deletions = list(the_plan.delete)
        if deletions:
            # Until the sweep ends, a crash may leave tombstoned objects on
            # disk; the marker tells the next start-up to look (recover()).
            self.store.mark_sweep(True)
        for start in range(0, len(deletions), batch):
            group = deletions[start : start + batch]
            done: list[tuple[int, str, bool]] = []
            with self.catalog.transaction():
                fresh = self._still_deletable([d.candidate.id for d in group], as_of)
                going = [
                    d
                    for d in group
                    if d.candidate.id in fresh
                    and fresh[d.candidate.id]["retention_state"] == "pending_deletion"
                ]
                tombstone = {"retention_state": "deleted", "deleted_at": isoformat_utc(now)}
                self.catalog.update_retention_many([(d.candidate.id, tombstone) for d in going])
                # Counted now, with this batch's rows tombstones: a hold that came
                # in since the plan may keep a sharer (and so the bytes) alive.
                alive = self.catalog.live_references([d.candidate.sha256 for d in going])
                # The object goes with the last of this batch's recordings using it.
                final = {d.candidate.sha256: d.candidate.id for d in going}
                for d in going:
                    row = fresh[d.candidate.id]
                    sha = d.candidate.sha256
                    last = alive.get(sha, 0) == 0 and final[sha] == d.candidate.id
                    self._log(
                        "retention.deleted",
                        {
                            "recording": d.candidate.id,
                            "sha256": d.candidate.sha256,
                            # As the row is now, inside this transaction.
                            "tier": row["tier"],
                            "expires_at": row["expires_at"],
                            "pending_since": row["pending_since"],
                            "reason": d.reason,
                            "policy_version": policy.version,
                            "object_removed": last,
                            "by": actor,
                        },
                        now,
                    )
                    done.append((d.candidate.id, sha, last))
            deleted += [i for i, _, _ in done]
            # Only now, with the tombstones committed: the bytes (FORMAT.md),
            # gathered so that each store directory is fsynced once per group.
            unlink += [sha for _, sha, last in done if last]
            if len(unlink) >= UNLINK_GROUP or start + batch >= len(deletions):
                removed += self.store.remove_objects(sorted(set(unlink)))
                unlink = []
        if deletions:
            self.store.mark_sweep(False)
        # Objects only tombstones refer to but still on disk (an unlink the file
        # system lost, a store restored from a backup): gone with each sweep.
        stray = [sha for sha in self.catalog.tombstoned_objects() if self.store.has(sha)]
        for sha in self.store.remove_objects(stray):
            log.warning("retention.stray_object_removed", sha256=sha)
            removed.append(sha)
        for i in deleted:
            log.info("retention.deleted", recording=i)
        log.info(
            "retention.sweep",
            as_of=isoformat_utc(as_of),
            marked=len(marked),
            deleted=len(deleted),
            objects_removed=len(removed),
        )
        if marked or deleted:
            self.checkpoint()
        return SweepReport(the_plan, tuple(marked), tuple(deleted), tuple(removed))

    def _still_deletable(self, ids: list[int], as_of: datetime) -> dict[int, dict[str, Any]]:
        """The rows among `ids` that are, inside this transaction, expired and unprotected."""
        result: dict[int, dict[str, Any]] = {}
        cutoff = isoformat_utc(floor_second(as_of))
        for row in self.catalog.retention_facts(ids):
            expires = row["expires_at"]
            if expires is None or expires > cutoff or row["held"] or row["open_case"]:
                continue
            result[int(row["id"])] = row
        return result

    def restore(
        self, recording_id: int, *, reason: str, actor: str | None = None
    ) -> dict[str, Any]:
        """Take a recording back from pending deletion; it is not expired again for restore_days."""
        reason = _clean(reason, "--reason")
        now = self.clock.now()
        keep_until = isoformat_utc(
            ceil_second(now + timedelta(days=self.config.retention.restore_days))
        )
        with self.catalog.transaction():
            (rec,) = self._existing([recording_id])
            if rec.retention_state == "deleted":
                raise UsageError(
                    f"recording {rec.id} was deleted at {rec.deleted_at}: its bytes are gone, "
                    "only the tombstone (hash and labels) remains"
                )
            if rec.retention_state != "pending_deletion":
                raise UsageError(
                    f"recording {rec.id} is not pending deletion (it is {rec.retention_state}); "
                    "to keep it longer, tag it or hold it"
                )
            entry = self._log(
                "retention.restored",
                {"recording": rec.id, "reason": reason, "keep_until": keep_until, "by": actor},
                now,
            )
            self.catalog.update_retention(
                rec.id, {"retention_state": "live", "pending_since": None, "keep_until": keep_until}
            )
            moved = self._update_retention([rec.id], "retention.restored", entry.seq, actor)
        log.info("retention.restored", recording=rec.id, keep_until=keep_until, entry=entry.seq)
        return {"recording": rec.id, "keep_until": keep_until, "log_entry": entry.seq, **moved}

    # -- continuity and supervision (R3, R7, R8) --------------------------------------

    def interruptions(self, serial: str | None = None) -> list[Interruption]:
        """Every sequence hole and time gap of the device(s), the ordinary pauses
        included (`Interruption.counts` is False for them): continuity.py."""
        cfg = self.config.retention
        cases: dict[int, set[str]] = {}
        for link in self.catalog.case_links():
            cases.setdefault(int(link["recording_id"]), set()).add(str(link["case_no"]))
        clips = [
            Clip(int(i), str(d), s, q, parse_utc(a), parse_utc(b), frozenset(cases.get(i, ())))
            for i, d, s, q, a, b in self.catalog.clips(serial)
        ]
        return interruptions(clips, cfg.gap_threshold_seconds, cfg.gap_max_seconds)

    def gap_explanations(self) -> dict[str, list[dict[str, Any]]]:
        """gap id -> its written explanations, oldest first."""
        found: dict[str, list[dict[str, Any]]] = {}
        for row in self.catalog.gap_explanations():
            found.setdefault(str(row["gap"]), []).append(row)
        return found

    def explain_gap(self, gap_id: str, text: str, *, actor: str | None = None) -> dict[str, Any]:
        """Record an officer's written explanation of an interruption (002 Art. 13).

        An ordinary pause (`gap list --all`) may be explained too: whether a gap
        counts can change (case links, a segment length learnt later), its id not.
        """
        before, _ = parse_gap_id(gap_id)
        text = _clean(text, "--text")
        rec = self.catalog.recording(before)
        gaps = {g.id: g for g in self.interruptions(rec.device_serial)} if rec else {}
        gap = gaps.get(gap_id.strip())
        if gap is None:
            raise UsageError(f"no interruption {gap_id!r} (dockd gap list shows them)")
        now = self.clock.now()
        with self.catalog.transaction():
            entry = self._log(
                "gap.explained",
                {"gap": gap.id, "device_serial": gap.device_serial, "text": text, "by": actor},
                now,
            )
            self.catalog.insert_gap_explanation(
                {
                    "gap": gap.id,
                    "device_serial": gap.device_serial,
                    "text": text,
                    "by": actor,
                    "at": isoformat_utc(now),
                    "log_seq": entry.seq,
                }
            )
        log.info("gap.explained", gap=gap.id, serial=gap.device_serial, entry=entry.seq)
        return {"gap": gap.id, "log_entry": entry.seq}

    def spot_check(
        self,
        sample: int,
        *,
        seed: int | None = None,
        ids: list[int] | None = None,
        filters: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Draw `sample` recordings (of `ids`, default all live ones) for review; log the draw.

        The draw is reproducible: the same seed over the same population
        gives the same recordings, and the entry names both (002 Art. 22).
        """
        if sample < 1:
            raise UsageError("--sample must be at least 1")
        population = sorted(
            set(ids)
            if ids is not None
            else (
                int(r[0])
                for r in self.catalog.db.execute(
                    "SELECT id FROM recordings WHERE retention_state != 'deleted'"
                )
            )
        )
        if not population:
            raise UsageError("no recordings to draw from")
        if seed is None:
            seed = int.from_bytes(os.urandom(4), "big")
        drawn = sorted(random.Random(seed).sample(population, min(sample, len(population))))
        now = self.clock.now()
        with self.catalog.transaction():
            entry = self._log(
                "report.spot_check",
                {
                    "seed": seed,
                    "sample": sample,
                    "population": len(population),
                    "recordings": drawn,
                    "filters": filters or {},
                    "by": actor,
                },
                now,
            )
        log.info("report.spot_check", seed=seed, drawn=len(drawn), entry=entry.seq)
        return {
            "seed": seed,
            "population": len(population),
            "recordings": [r.as_json() for r in self.catalog.recordings_by_id(drawn)],
            "log_entry": entry.seq,
        }

    # -- archival discs (seed rule R5) ----------------------------------------------------

    def export_items(
        self,
        *,
        tier: str | None = "permanent",
        cases: tuple[str, ...] = (),
        not_exported: bool = False,
    ) -> list[Item]:
        """The recordings an export would take: live, of `tier` (None: any), of `cases`."""
        clauses = ["r.retention_state != 'deleted'"]
        args: list[Any] = []
        if tier:
            clauses.append("r.tier = ?")
            args.append(tier)
        if cases:
            marks = ",".join("?" * len(cases))
            clauses.append(
                f"EXISTS (SELECT 1 FROM case_links l WHERE l.recording_id = r.id "
                f"AND l.case_no IN ({marks}))"
            )
            args += list(cases)
        if not_exported:
            clauses.append("NOT EXISTS (SELECT 1 FROM disc_items d WHERE d.recording_id = r.id)")
        rows = self.catalog.db.execute(
            "SELECT r.id, r.size, (SELECT MIN(case_no) FROM case_links l "
            f"WHERE l.recording_id = r.id) FROM recordings r WHERE {' AND '.join(clauses)} "
            "ORDER BY r.id",
            args,
        )
        return items_of([(int(i), int(s), c) for i, s, c in rows])

    def create_export(
        self,
        disc_plan: DiscPlan,
        selection: dict[str, Any],
        *,
        approved_by: str,
        reason: str,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Record an approved export and its discs (R6: a copy needs approval), before any I/O."""
        approved_by = _clean(approved_by, "--approved-by")
        reason = _clean(reason, "--reason")
        if not disc_plan.discs:
            raise UsageError("nothing to export: the selection is empty")
        now = self.clock.now()
        with self.catalog.transaction():
            export_id = int(
                self.catalog.db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM exports").fetchone()[
                    0
                ]
            )
            discs = [
                {
                    "label": disc_label(site_code(self.origin), export_id, d.number, d.copy),
                    **d.as_json(),
                }
                for d in disc_plan.discs
            ]
            entry = self._log(
                "export.planned",
                {
                    "export": export_id,
                    "medium": disc_plan.medium.name,
                    "capacity": disc_plan.medium.capacity,
                    "copies": disc_plan.copies,
                    "selection": selection,
                    "discs": [{"label": d["label"], "recordings": d["recordings"]} for d in discs],
                    "approved_by": approved_by,
                    "reason": reason,
                    "by": actor,
                },
                now,
            )
            self.catalog.db.table("exports").insert(
                {
                    "id": export_id,
                    "created_at": isoformat_utc(now),
                    "medium": disc_plan.medium.name,
                    "capacity": disc_plan.medium.capacity,
                    "copies": disc_plan.copies,
                    "selection": json.dumps(selection, sort_keys=True),
                    "approved_by": approved_by,
                    "reason": reason,
                    "by": actor,
                    "log_seq": entry.seq,
                }
            )
            for d in disc_plan.discs:
                label = disc_label(site_code(self.origin), export_id, d.number, d.copy)
                self.catalog.db.table("discs").insert(
                    {"label": label, "export_id": export_id, "number": d.number, "copy": d.copy}
                )
                self.catalog.db.table("disc_items").insert_all(
                    {"label": label, "recording_id": i} for i in d.recordings
                )
        log.info("export.planned", export=export_id, discs=len(discs), entry=entry.seq)
        return {"export": export_id, "discs": discs, "log_entry": entry.seq}

    def discs(self, export_id: int | None = None) -> list[dict[str, Any]]:
        where: str | None = None
        args: list[Any] = []
        if export_id is not None:
            where, args = "export_id = ?", [export_id]
        found: list[dict[str, Any]] = []
        for row in self.catalog.db["discs"].rows_where(
            where, args, order_by="export_id, copy, number"
        ):
            ids = [
                int(r[0])
                for r in self.catalog.db.execute(
                    "SELECT recording_id FROM disc_items WHERE label = ? ORDER BY recording_id",
                    [row["label"]],
                )
            ]
            found.append({**row, "recordings": ids})
        return found

    def build_disc(
        self, label: str, out_dir: Path, on_bytes: Callable[[int], None] | None = None
    ) -> dict[str, Any]:
        """Build one disc's ISO image in `out_dir`; a disc already built is only re-checked.

        The staged bag is hard-linked from the store and validated by
        re-hashing before the image is made; the image appears under its
        final name only when complete (iso.build_iso), and only then is the
        disc recorded, with the image's SHA-256, in the catalog and the log.
        """
        matching = [d for d in self.discs() if d["label"] == label]
        if not matching:
            raise UsageError(f"no disc {label!r} (dockd export list)")
        disc = matching[0]
        image = out_dir / f"{label}.iso"
        if disc["image_sha256"] and image.exists():
            digest, size = hash_file(image, self.config.ingest.buffer_size)
            if digest == disc["image_sha256"]:
                return {"label": label, "image": str(image), "sha256": digest, "built": False}
        recordings = self.catalog.recordings_by_id(disc["recordings"])
        gone = [r.id for r in recordings if r.deleted]
        if gone:
            raise UsageError(f"recordings {gone} of {label} were deleted by the retention sweep")
        self.checkpoint()
        tag_files, payload, info = self._disc_contents(label, disc, recordings)
        staging = out_dir / f".{label}.staging"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            write_bag(staging, payload, tag_files, info)
            if on_bytes:
                on_bytes(sum(p.size for p in payload))
            # What a clerk's verify.py will say, asked before the image exists.
            keys = [k.to_text() for k in self.trusted_keys()]
            staged = verify_disc(staging, keys)
            if not staged.ok:
                raise ArchiveError(
                    f"disc {label} would not verify: "
                    + "; ".join(str(p) for p in staged.problems[:5])
                )
            build_iso(staging, image, label)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        digest, size = hash_file(image, self.config.ingest.buffer_size)
        now = self.clock.now()
        with self.catalog.transaction():
            entry = self._log(
                "export.disc_built",
                {
                    "export": disc["export_id"],
                    "label": label,
                    "image_sha256": digest,
                    "image_size": size,
                    "recordings": disc["recordings"],
                },
                now,
            )
            self.catalog.db.table("discs").update(
                label,
                {"image_sha256": digest, "image_size": size, "built_at": isoformat_utc(now),
                 "build_log_seq": entry.seq},
            )  # fmt: skip
            for r, p in zip(recordings, payload, strict=True):
                self.catalog.db.execute(
                    "UPDATE disc_items SET bag_path = ? WHERE label = ? AND recording_id = ?",
                    [p.bag_path, label, r.id],
                )
        log.info("export.disc_built", label=label, sha256=digest, size=size, entry=entry.seq)
        return {"label": label, "image": str(image), "sha256": digest, "built": True}

    def burn_disc(
        self,
        label: str,
        images: Path,
        drive: str,
        *,
        burn: Callable[[Path, str], None],
        read_back: Callable[[str, int], str],
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Burn a built disc, read the medium back, compare with the image; log the outcome."""
        matching = [d for d in self.discs() if d["label"] == label]
        if not matching or not matching[0]["image_sha256"]:
            raise UsageError(f"disc {label!r} is not built (dockd export build / resume)")
        disc = matching[0]
        image = images / f"{label}.iso"
        digest, size = hash_file(image, self.config.ingest.buffer_size)
        if digest != disc["image_sha256"]:
            raise UsageError(
                f"{image} hashes to {digest}, not to the image built for {label} "
                f"({disc['image_sha256']}); rebuild it (dockd export resume)"
            )
        burn(image, drive)
        found = read_back(drive, size)
        ok = found == digest
        now = self.clock.now()
        with self.catalog.transaction():
            entry = self._log(
                "export.disc_burned",
                {
                    "label": label,
                    "drive": drive,
                    "image_sha256": digest,
                    "read_back_sha256": found,
                    "ok": ok,
                    "by": actor,
                },
                now,
            )
            if ok:
                self.catalog.db.table("discs").update(
                    label,
                    {"burned_at": isoformat_utc(now), "drive": drive, "burn_log_seq": entry.seq},
                )
        (log.info if ok else log.error)("export.disc_burned", label=label, drive=drive, ok=ok)
        return {"label": label, "drive": drive, "ok": ok, "read_back_sha256": found,
                "image_sha256": digest, "log_entry": entry.seq}  # fmt: skip

    def check_disc_against_catalog(
        self, report: Any, path: Path, progress: Meter = NULL_METER
    ) -> list[dict[str, str]]:
        """Does the disc hold what the catalog says this label holds, byte for byte?

        `progress` hears of the image's bytes as they are hashed.
        """
        where = f"disc {report.label}"
        matching = [d for d in self.discs() if d["label"] == report.label]
        if not matching:
            return [{"kind": "catalog_unknown_disc", "where": where,
                     "detail": "this catalog made no disc with this label"}]  # fmt: skip
        disc = matching[0]
        problems: list[dict[str, str]] = []
        expected = {r.id: r for r in self.catalog.recordings_by_id(disc["recordings"])}
        found = {r.recording_id: r for r in report.recordings if r.recording_id is not None}
        for rid in sorted(set(expected) - set(found)):
            problems.append({"kind": "catalog_recording_missing", "where": where,
                             "detail": f"recording {rid} should be on this disc"})  # fmt: skip
        for rid in sorted(set(found) - set(expected)):
            problems.append({"kind": "catalog_recording_extra", "where": where,
                             "detail": f"recording {rid} is not listed for this disc"})  # fmt: skip
        for rid in sorted(set(found) & set(expected)):
            if found[rid].sha256 != expected[rid].sha256:
                problems.append(
                    {"kind": "catalog_hash_mismatch", "where": found[rid].bag_path,
                     "detail": f"SHA-256 {found[rid].sha256}, the catalog proved "
                               f"{expected[rid].sha256} for recording {rid}"}
                )  # fmt: skip
        if path.is_file() and disc["image_sha256"]:
            # A disc read back into a file may run on past the image (padding).
            progress.stage("hashing the image against the catalog", int(disc["image_size"]))
            digest = _sha256_prefix(path, int(disc["image_size"]), progress=progress)
            if digest != disc["image_sha256"]:
                problems.append(
                    {"kind": "catalog_image_changed", "where": str(path),
                     "detail": f"the image hashes to {digest}, built as {disc['image_sha256']}"}
                )  # fmt: skip
        return problems

    def _export(self, export_id: int) -> dict[str, Any]:
        rows = list(self.catalog.db["exports"].rows_where("id = ?", [export_id]))
        if not rows:
            raise UsageError(f"no export {export_id} (dockd export list)")
        return rows[0]

    def exports(self) -> list[dict[str, Any]]:
        return [
            {**e, "selection": json.loads(e["selection"]), "discs": self.discs(int(e["id"]))}
            for e in self.catalog.db["exports"].rows_where(order_by="id")
        ]

    def _discs_per_copy(self, export_id: int) -> int:
        return int(
            self.catalog.db.execute(
                "SELECT COUNT(*) FROM discs WHERE export_id = ? AND copy = 1", [export_id]
            ).fetchone()[0]
        )

    def _disc_contents(
        self, label: str, disc: dict[str, Any], recordings: list[Recording]
    ) -> tuple[dict[str, bytes], list[PayloadFile], dict[str, str]]:
        """Tag files and payload of one disc (dockd/archive/__init__.py: the disc layout).

        The entries are each recording's ingest entry and the tag and case
        entries naming it, each with its inclusion proof against the newest
        checkpoint, which this disc carries with the keys that sign it.
        """
        ids = {r.id for r in recordings}
        seqs = {r.log_seq for r in recordings}
        # Only the kinds that name recordings (the log(kind) index), not the whole log.
        naming = {
            "recording.tagged": "recordings",
            "case.linked": "recordings",
            "device.assigned": "reattributed",
        }
        for seq, kind, raw in self.catalog.entries_of_kinds(tuple(naming)):
            data = json.loads(raw)["data"]
            if ids & set(data.get(naming[kind]) or []):
                seqs.add(seq)
        checkpoint = self._covering_checkpoint(max(seqs))
        tree_size = int(checkpoint["size"])
        zone = ZoneInfo(self.config.profiles.camera_timezone)
        extract: list[dict[str, Any]] = []
        payload: list[PayloadFile] = []
        for r in recordings:
            record = {**r.as_json(), "cases": self.catalog.cases_of(r.id)}
            record["bag_path"] = bag_path_for(record, zone)
            extract.append(record)
            payload.append(
                PayloadFile(self.store.object_path(r.sha256), record["bag_path"], r.sha256, r.size)
            )
        export = self._export(int(disc["export_id"]))
        info = bag_info(
            origin=self.origin,
            label=label,
            disc=int(disc["number"]),
            discs=self._discs_per_copy(int(disc["export_id"])),
            export_id=f"dockd export {disc['export_id']}",
            copy=int(disc["copy"]),
            copies=int(export["copies"]),
            bagging_date=self.clock.now().date().isoformat(),
            description=f"approved by {export['approved_by']}: {export['reason']}",
        )
        tag_files = disc_tag_files(
            recordings=extract,
            entries=[self.catalog.log_entry(s) or b"" for s in sorted(seqs)],
            tree_size=tree_size,
            proofs={
                s: [_b64(h) for h in inclusion_proof(self.catalog.node, s - 1, tree_size)]
                for s in sorted(seqs)
            },
            checkpoint=str(checkpoint["note"]),
            keys=[k.to_text() for k in self.trusted_keys()],
            readme=readme_bytes(
                label,
                {**info, "Payload-Oxum": f"{sum(p.size for p in payload)}.{len(payload)}"},
            ),
        )
        return tag_files, payload, info

    # -- reading ----------------------------------------------------------------

    def recordings(self) -> list[Recording]:
        return self.catalog.recordings()

    def recording(self, recording_id: int) -> Recording | None:
        return self.catalog.recording(recording_id)

    def log_entry(self, seq: int) -> bytes | None:
        return self.catalog.log_entry(seq)

    # -- fixity audits --------------------------------------------------------------

    def audit(self, fraction: float | None = None, progress: Meter = NULL_METER) -> AuditReport:
        """Re-hash a slice of the store, longest-unchecked first; one log entry per audit.

        A mismatch is logged loudly and reported; nothing is "repaired".
        `progress` hears of the bytes re-hashed, out of the slice's size.
        """
        if fraction is None:
            fraction = 1 / self.config.integrity.audit_period_days
        if not 0 < fraction <= 1:
            raise DockdError(f"--fraction must be in (0, 1], got {fraction}")
        total = len(self.catalog.referenced_objects())
        queue = self.catalog.audit_queue(max(1, math.ceil(total * fraction)) if total else 0)
        progress.stage(
            f"auditing {len(queue):,} store object{'' if len(queue) == 1 else 's'}",
            sum(_size_or_zero(self.store.object_path(sha)) for sha, _ in queue),
        )
        results: list[tuple[str, bool, str]] = []
        hashed = 0
        for sha, _ in queue:
            path = self.store.object_path(sha)
            try:
                actual, size = hash_file(path, self.config.ingest.buffer_size, progress.advance)
            except OSError as exc:
                results.append((sha, False, f"unreadable: {exc.strerror}"))
                continue
            hashed += size
            results.append((sha, actual == sha, "ok" if actual == sha else f"hashes to {actual}"))
        failures = [
            {"sha256": sha, "found": found, "recordings": self._recording_ids(sha)}
            for sha, ok, found in results
            if not ok
        ]
        now = self.clock.now()
        with self.catalog.transaction():
            for sha, ok, _ in results:
                self.catalog.record_fixity(sha, isoformat_utc(now), ok)
            entry = self._log(
                "audit.done",
                {
                    "checked": len(results),
                    "bytes": hashed,
                    "store_objects": total,
                    "first": results[0][0] if results else None,
                    "last": results[-1][0] if results else None,
                    "failures": failures,
                },
                now,
            )
        for failure in failures:
            log.error("audit.mismatch", **failure)
        log.info("audit.done", checked=len(results), bytes=hashed, failures=len(failures))
        return AuditReport(len(results), hashed, total, tuple(failures), entry.seq)

    def _recording_ids(self, sha256: str) -> list[int]:
        return [
            int(r[0])
            for r in self.catalog.db.execute("SELECT id FROM recordings WHERE sha256 = ?", [sha256])
        ]

    # -- verification ------------------------------------------------------------

    def _check_tree(self, rows: list[StoredEntry], parsed: dict[int, LogEntry]) -> list[Problem]:
        """Recompute every leaf and node; check every checkpoint against the recomputed tree.

        A checkpoint is a signed root: any entry changed, removed, inserted or
        moved before its size changes the recomputed root at that size,
        whatever else an attacker rewrote in the catalog.
        """
        problems: list[Problem] = []
        nodes = build_nodes(leaf_hash(row.raw) for row in rows)
        stored = self.catalog.stored_nodes()
        changed = sorted(k for k in nodes.keys() & stored.keys() if nodes[k] != stored[k])
        missing = sorted(nodes.keys() - stored.keys())
        extra = sorted(stored.keys() - nodes.keys())
        for kind, keys in (
            ("merkle_node_changed", changed),
            ("merkle_node_missing", missing),
            ("merkle_node_extra", extra),
        ):
            if keys:
                listed = ", ".join(f"({lv},{ix})" for lv, ix in keys[:5])
                more = f" and {len(keys) - 5} more" if len(keys) > 5 else ""
                problems.append(
                    Problem(kind, f"Merkle nodes {listed}{more}", "stored tree differs")
                )
        size = len(rows)
        logged = logged_keys(parsed)
        pinned = self.config.integrity.trusted_keys
        trusted: list[VerifierKey] = []
        for text in pinned or tuple(logged.values()):
            try:
                trusted.append(VerifierKey.from_text(text))
            except NoteError as exc:
                problems.append(Problem("signing_key_malformed", f"key {text!r}", str(exc)))
        for cp in self.catalog.checkpoints():
            where = f"checkpoint {cp['id']}"
            try:
                opened = open_note(str(cp["note"]), trusted)
                body = Checkpoint.from_text(opened.text)
            except (NoteError, CheckpointError) as exc:
                problems.append(Problem("checkpoint_untrusted", where, str(exc)))
                continue
            if body.size > size:
                problems.append(
                    Problem(
                        "checkpoint_ahead_of_log",
                        where,
                        f"signed size {body.size}, the log has {size} entries "
                        "(entries were removed)",
                    )
                )
            elif body.root != root_hash(lambda lv, ix: nodes[(lv, ix)], body.size):
                problems.append(
                    Problem(
                        "checkpoint_inconsistent",
                        where,
                        f"the first {body.size} entries no longer hash to its root",
                    )
                )
            signers = {f"{k.key_id:08x}" for k in opened.verified_by}
            if (
                body.origin != self.origin
                or (int(cp["size"]), bytes(cp["root"])) != (body.size, body.root)
                or cp["key_id"] not in signers
            ):
                problems.append(
                    Problem("checkpoint_row_changed", where, "the row differs from its signed note")
                )
        return problems

    def _check_catalog(self) -> tuple[list[StoredEntry], list[Recording], list[Problem]]:
        """The log, the recordings, and every problem of the log and the catalog.

        Every catalog fact the log records is compared with the log; which
        column with which entry field, and which columns the log does not
        record, is listed in integrity/crosscheck.py (LOGGED, NOT_LOGGED).
        The catalog is read in one read transaction: a writer committing
        meanwhile (the daemon docking a camera) must not make a row and its
        entry look out of step.
        """
        db = self.catalog.db
        with self.catalog.transaction():
            rows = list(self.catalog.log_rows())
            problems = check_chain(rows)
            parsed = parse_entries(rows)
            recordings: list[Recording] = []
            for row in db["recordings"].rows_where(order_by="id"):
                # A value no writer could have stored (flags that are not JSON) is
                # reported; it must not stop the rest of the check.
                try:
                    recordings.append(Recording.from_row(row))
                except (ValueError, TypeError) as exc:
                    where = f"recording {row.get('id')}"
                    problems.append(Problem("catalog_row_malformed", where, str(exc)))
            problems += check_rows_against_log(
                recordings, {row.seq for row in rows}, parsed, late_flag=FLAG_LATE
            )
            problems += check_sessions_against_log(self.catalog.sessions(), parsed)
            problems += check_devices_against_log(self.catalog.devices(), parsed)
            # Rows as stored: a tampered time must be reported, not fail Assignment's parse.
            problems += check_assignments_against_log(
                list(db["assignments"].rows_where(order_by="id")), parsed
            )
            problems += check_labels_against_log(recordings, parsed, FLAG_UNASSIGNED)
            problems += check_keys_against_log(self.catalog.signing_keys(), parsed)
            problems += check_fixity_against_log(
                list(db["fixity"].rows_where(order_by="sha256")), parsed
            )
            problems += check_exports_against_log(
                [dict(r) for r in db["exports"].rows_where(order_by="id")],
                self.discs(),
                list(db["disc_items"].rows_where()),
                parsed,
            )
            # As Catalog.cases() gives them, but a value that is not JSON is reported.
            cases = [
                {**row, **{k: json_value(row[k]) for k in ("parties", "categories")}}
                for row in db["cases"].rows_where(order_by="created_at, no")
            ]
            problems += check_labels_and_retention(
                recordings,
                cases,
                self.catalog.case_links(),
                self.catalog.holds(),
                self.catalog.hold_items(),
                self.catalog.gap_explanations(),
                parsed,
            )
            problems += self._check_tree(rows, parsed)
        return rows, recordings, problems

    def verify(self, progress: Meter = NULL_METER) -> VerifyReport:
        """Re-walk the hash chain, cross-check rows with entries, re-hash the store.

        `progress` hears of two stages: the log (its entries, counted once
        checked) and the store (bytes re-hashed, out of every object's size).
        """
        progress.stage("checking the log", None, "entries")
        rows, recordings, problems = self._check_catalog()
        # A tombstone's object is correctly absent; any other missing object is tampering.
        referenced = {r.sha256 for r in recordings if not r.deleted}
        tombstoned = {r.sha256 for r in recordings if r.deleted} - referenced
        seen: set[str] = set()
        hashed = 0
        objects = 0
        orphans: list[str] = []
        progress.advance(len(rows))
        store_files = list(self.store.iter_objects())
        progress.stage(
            f"re-hashing {len(store_files):,} store file{'' if len(store_files) == 1 else 's'}",
            sum(_size_or_zero(path) for _, path in store_files),
        )
        for name, path in store_files:
            where = f"store file {path.relative_to(self.store.root)}"
            expected = (
                self.store.root / self.store.relative_path(name) if is_sha256_hex(name) else None
            )
            if expected != path:
                problems.append(Problem("store_file_extra", where, "not a store object name"))
                continue
            if name in referenced:
                objects += 1
                seen.add(name)
            try:
                actual, size = hash_file(path, self.config.ingest.buffer_size, progress.advance)
            except OSError as exc:
                problems.append(Problem("store_file_unreadable", where, exc.strerror or str(exc)))
                continue
            if name in tombstoned and actual == name:
                # Its recordings were deleted by the sweep, which stopped before
                # the unlink; the next writer's start-up removes it.
                orphans.append(name)
                continue
            if name not in referenced:
                # A crash between rename and commit leaves such an object; the
                # next docking of its camera adopts it (DESIGN §4a). Intact, it
                # is listed; otherwise it is a problem.
                if actual == name:
                    orphans.append(name)
                else:
                    problems.append(
                        Problem("store_file_extra", where, "no recording refers to this file")
                    )
                continue
            hashed += size
            if actual != name:
                problems.append(Problem("store_file_changed", where, f"content hashes to {actual}"))
            if not is_read_only(path):
                problems.append(Problem("store_file_writable", where, "object is not read-only"))
        for sha in sorted(referenced - seen):
            ids = ", ".join(str(r.id) for r in recordings if r.sha256 == sha and not r.deleted)
            problems.append(
                Problem(
                    "store_file_missing",
                    f"store file {self.store.relative_path(sha)}",
                    f"recording {ids}",
                )
            )
        return VerifyReport(
            len(rows), len(recordings), objects, hashed, tuple(problems), tuple(orphans)
        )


def _sha256_prefix(
    path: Path, size: int, block: int = 1 << 20, progress: Meter = NULL_METER
) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        left = size
        while left > 0:
            chunk = f.read(min(block, left))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
            progress.advance(len(chunk))
    return digest.hexdigest()


def _size_or_zero(path: Path) -> int:
    """A file's size for a progress total; a file that cannot be statted is reported later."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _clean(text: str, what: str) -> str:
    """A label as given, stripped; empty or control characters are refused."""
    value = text.strip()
    if not value:
        raise UsageError(f"{what}: must not be empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise UsageError(f"{what}: control characters are not allowed: {text!r}")
    if len(value) > 1000:
        raise UsageError(f"{what}: longer than 1000 characters")
    return value


def _json_text(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True)
