"""The ledger: the state directory's lock, recovery, the log, signing keys, checkpoints, proofs."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dockd.catalog import Catalog
from dockd.clock import isoformat_utc
from dockd.errors import DockdError, UsageError
from dockd.integrity import standalone_verify
from dockd.integrity.chain import LogEntry, next_entry
from dockd.integrity.checkpoint import Checkpoint
from dockd.integrity.keys import load_or_create
from dockd.integrity.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_hash,
    verify_consistency,
)
from dockd.integrity.naming import case_named, entries_about, recordings_named
from dockd.integrity.note import VerifierKey, sign
from dockd.service.base import ServiceBase, _b64
from dockd.service.results import (
    ConsistencyProof,
    InclusionProof,
    LogExported,
    ScopedLogExported,
)
from dockd.service.values import IntegrityError, StateBusyError

# A resumable partial copy waits this long for its camera to come back (ingest/resume.py).
PARTIAL_KEEP_DAYS = 14

log = structlog.get_logger("dockd.service")

# How to run verify.py, the same in both READMEs (ends mid-sentence: each says what OK means).
_README_HOW = """\
To check it on any machine with Python 3.8 or newer and the `cryptography`
package (pip install cryptography), open a terminal in this folder and run:

    python3 verify.py --key "<key from an independent copy>"
    py verify.py --key "<key from an independent copy>"        (on Windows)

Take the key (name+id+key) from a copy this folder did not travel with: a
court file, an earlier disc, the agency's published key. keys.txt came with
the entries, so whoever changed them could have changed it too; without
--key, verify.py trusts keys.txt. It prints OK and exits 0 if every entry is
"""

EXPORT_README = """dockd evidence log export: entries {first} to {last} of a log of {size}

entries.jsonl   the log entries, one canonical JSON object per line
checkpoint.txt  the signed checkpoint (C2SP tlog-checkpoint in a C2SP signed note)
keys.txt        the public keys that sign checkpoints (name+id+key)
proofs.json     one RFC 9162 inclusion proof per entry, against the checkpoint
verify.py       the checker (it does not need dockd)

{how}in the signed log and chained to the one before; otherwise it prints each
problem and exits 1.

A recording's entry names its SHA-256: `sha256sum FILE` (on Windows
`certutil -hashfile FILE SHA256`) of the evidence file must print the same
value.
"""

SCOPED_EXPORT_README = """dockd evidence log export: the {count} log entries about {about}

This is a SCOPED export: it holds only the entries about these recordings,
each with its proof of inclusion in the signed log (a log of {size}
entries). It proves that every entry here is in that log, unchanged and at
its place; it does not prove that the log holds no other entry about them.

entries.jsonl   the log entries, one canonical JSON object per line, in log order
checkpoint.txt  the signed checkpoint (C2SP tlog-checkpoint in a C2SP signed note)
keys.txt        the public keys that sign checkpoints (name+id+key)
proofs.json     the scope, and one RFC 9162 inclusion proof per entry, by number
verify.py       the checker (it does not need dockd)

{how}in the signed log and every recording of the scope has its ingest entry
here; otherwise it prints each problem and exits 1.

A recording's `recording.ingested` entry names its SHA-256: `sha256sum FILE`
(on Windows `certutil -hashfile FILE SHA256`) of the evidence file must
print the same value.
"""
EXPORT_README = EXPORT_README.replace("{how}", _README_HOW)
SCOPED_EXPORT_README = SCOPED_EXPORT_README.replace("{how}", _README_HOW)


def entries_about_recordings(
    catalog: Catalog, recordings: Iterable[int], cases: Iterable[str] = ()
) -> list[int]:
    """The sequence numbers of the log entries about `recordings` (and `cases`), in log order.

    The rule is dockd/integrity/naming.py `entries_about`, and only it. So as
    not to hold the whole log in memory, the ingest entries that name none of
    the recordings (the bulk of a log) are not handed to it: such an entry
    names one recording and no case, so the rule never picks it nor learns
    anything from it (tests/integrity/test_scoped_export.py compares the
    result with the rule over the whole log).
    """
    wanted = set(recordings)

    def candidates() -> Iterable[LogEntry]:
        for row in catalog.log_rows():
            entry = LogEntry.from_bytes(row.raw)
            if (
                entry.kind == "recording.ingested"
                and not wanted & recordings_named(entry)
                and case_named(entry) is None
            ):
                continue
            yield entry

    return entries_about(candidates(), wanted, cases)


def inclusion_paths(catalog: Catalog, seqs: Iterable[int], tree_size: int) -> dict[int, list[str]]:
    """seq -> the base64 RFC 9162 inclusion path of log entry seq in the tree of `tree_size`.

    Requires 1 <= seq <= tree_size <= the log's size for every seq.
    """
    return {
        seq: [_b64(h) for h in inclusion_proof(catalog.node, seq - 1, tree_size)] for seq in seqs
    }


class Ledger(ServiceBase):
    """Lock, recovery, log append, signer, checkpoints, key rotation, proofs, log export."""

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
                        "directory (the daemon, if `dockd status` answers: it holds the state "
                        "directory while it runs, and this command must go through it)"
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
        self._prober.close()
        self.catalog.close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

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
        keep_s = PARTIAL_KEEP_DAYS * 86400
        for path in self.store.recover(self.clock.now().timestamp(), keep_s):
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
                self._queue_key(key_id)
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
            self._queue_key(f"{vkey.key_id:08x}")
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
        # One transaction from reading the head to storing the checkpoint: another
        # thread (a second docking session ending) must neither append nor sign in
        # between, or this one would compare a stale head with a newer checkpoint.
        with self.catalog.transaction():
            size, _ = self.catalog.head()
            root = root_hash(self.catalog.node, size)
            previous = self.catalog.last_checkpoint()
            if previous is not None:
                old_size, old_root = int(previous["size"]), bytes(previous["root"])
                same_key = previous["key_id"] == f"{vkey.key_id:08x}"
                if (old_size, old_root) == (size, root) and same_key:
                    return str(previous["note"])
                proof = (
                    consistency_proof(self.catalog.node, old_size, size) if old_size <= size else []
                )
                if not verify_consistency(old_size, size, old_root, root, proof):
                    log.error("checkpoint.inconsistent", old_size=old_size, size=size)
                    raise IntegrityError(
                        f"the log of size {size} is not an extension of checkpoint "
                        f"{previous['id']} (size {old_size}); refusing to sign. Run `dockd verify`."
                    )
            note = sign(Checkpoint(self.origin, size, root).to_text(), self.origin, key)
            self.catalog.insert_checkpoint(
                {
                    "size": size,
                    "root": root,
                    "note": note,
                    "key_id": f"{vkey.key_id:08x}",
                    "created_at": isoformat_utc(self.clock.now()),
                }
            )
            # Off the box as soon as it is signed (with the log it signs).
            self._queue_checkpoint(size)
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

    def inclusion(self, recording_id: int) -> InclusionProof:
        """Everything an outsider needs to check that a recording's entry is in the log."""
        recording = self.catalog.recording(recording_id)
        if recording is None:
            raise UsageError(f"no recording {recording_id}")
        raw = self.catalog.log_entry(recording.log_seq) or b""
        checkpoint = self._covering_checkpoint(recording.log_seq)
        index, size = recording.log_seq - 1, int(checkpoint["size"])
        return InclusionProof(
            recording=recording_id,
            entry=raw.decode("utf-8"),
            leaf_index=index,
            leaf_hash=_b64(leaf_hash(raw)),
            tree_size=size,
            inclusion_path=tuple(_b64(h) for h in inclusion_proof(self.catalog.node, index, size)),
            checkpoint=checkpoint["note"],
            keys=tuple(k.to_text() for k in self.trusted_keys()),
        )

    def consistency(self, old_size: int, new_size: int | None = None) -> ConsistencyProof:
        size, _ = self.catalog.head()
        new = size if new_size is None else new_size
        if not 0 <= old_size <= new <= size:
            raise UsageError(f"sizes must satisfy 0 <= {old_size} <= {new} <= {size} (log size)")
        return ConsistencyProof(
            old_size=old_size,
            new_size=new,
            old_root=_b64(root_hash(self.catalog.node, old_size)),
            new_root=_b64(root_hash(self.catalog.node, new)),
            consistency_path=tuple(
                _b64(h) for h in consistency_proof(self.catalog.node, old_size, new)
            ),
            keys=tuple(k.to_text() for k in self.trusted_keys()),
        )

    def export_log(self, out: Path, first: int = 1, last: int | None = None) -> LogExported:
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
        return LogExported(str(out), first, last, tree_size)

    def export_log_scoped(
        self,
        out: Path,
        *,
        case: str | None = None,
        recordings: Sequence[int] = (),
    ) -> ScopedLogExported:
        """Write the log entries about one case's recordings, or about the recordings
        named, each with its inclusion proof against the newest checkpoint, to `out`.

        Which entries are about them is dockd/integrity/naming.py's rule
        (`entries_about_recordings`): nothing about other recordings leaves the
        dock. Layout (docs/FORMAT.md "Scoped log export"; verify.py checks it):
        entries.jsonl (those entries, in log order), proofs.json {"scope":
        {"case", "recordings"}, "tree_size", "proofs": {"<seq>": [base64, ...]}},
        checkpoint.txt, keys.txt, verify.py, README.txt. `out` must be absent or
        empty, so that nothing else travels with the entries.
        """
        if (case is None) == (not recordings):
            raise UsageError("a scoped export takes a case or recording ids (one of the two)")
        cases: list[str] = []
        if case is not None:
            if self.catalog.case(case) is None:
                raise UsageError(f"no case {case!r} (dockd case list)")
            ids = sorted({int(link["recording_id"]) for link in self.catalog.case_links(case)})
            cases = [case]
        else:
            ids = sorted(set(recordings))
            found = {r.id for r in self.catalog.recordings_by_id(ids)}
            missing = [i for i in ids if i not in found]
            if missing:
                raise UsageError(f"no recording {', '.join(map(str, missing))} (see dockd list)")
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise UsageError(f"{out}: must be an empty folder or not exist yet")
        seqs = entries_about_recordings(self.catalog, ids, cases)
        if not seqs:
            raise UsageError(f"no log entry is about case {case}")
        checkpoint = self._covering_checkpoint(max(seqs))
        tree_size = int(checkpoint["size"])
        entries = [self.catalog.log_entry(seq) or b"" for seq in seqs]
        proofs = {
            "scope": {"case": case, "recordings": ids},
            "tree_size": tree_size,
            "proofs": {
                str(s): p for s, p in inclusion_paths(self.catalog, seqs, tree_size).items()
            },
        }
        out.mkdir(parents=True, exist_ok=True)
        (out / "entries.jsonl").write_bytes(b"".join(e + b"\n" for e in entries))
        (out / "proofs.json").write_text(json.dumps(proofs, indent=1, sort_keys=True), "utf-8")
        (out / "checkpoint.txt").write_text(str(checkpoint["note"]), "utf-8")
        (out / "keys.txt").write_text("".join(k.to_text() + "\n" for k in self.trusted_keys()))
        (out / "verify.py").write_bytes(standalone_verify.source())
        about = f"case {case}" if case is not None else "recordings " + ", ".join(map(str, ids))
        (out / "README.txt").write_text(
            SCOPED_EXPORT_README.format(count=len(seqs), about=about, size=tree_size),
            "utf-8",
        )
        return ScopedLogExported(str(out), case, tuple(ids), len(seqs), tree_size)
