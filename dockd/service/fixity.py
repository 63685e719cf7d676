"""Fixity: audits of the store and the full verification of log, catalog, tree and store."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import structlog

from dockd.catalog import Recording
from dockd.clock import isoformat_utc
from dockd.errors import UsageError
from dockd.integrity.chain import LogEntry, Problem, StoredEntry, check_chain
from dockd.integrity.checkpoint import Checkpoint, CheckpointError
from dockd.integrity.crosscheck import (
    check_assignments_against_log,
    check_devices_against_log,
    check_labels_against_log,
    check_rows_against_log,
    check_sessions_against_log,
    json_value,
    logged_keys,
    parse_entries,
)
from dockd.integrity.crosscheck_access import check_access_against_log
from dockd.integrity.crosscheck_store import (
    check_exports_against_log,
    check_fixity_against_log,
    check_keys_against_log,
)
from dockd.integrity.merkle import build_nodes, leaf_hash, root_hash
from dockd.integrity.note import NoteError, VerifierKey, open_note
from dockd.integrity.replay import check_labels_and_retention
from dockd.progress import NULL_METER, Meter
from dockd.replicate.anchor import BucketCheckpoint, compare
from dockd.replicate.bucket import Bucket, BucketError
from dockd.service.base import ServiceBase
from dockd.service.values import FLAG_LATE, AuditReport, VerifyReport
from dockd.store import hash_file, is_read_only, is_sha256_hex

log = structlog.get_logger("dockd.service")
# (level, index) -> hash: every perfect subtree of the log's tree (merkle.build_nodes).
_Nodes = dict[tuple[int, int], bytes]


class Fixity(ServiceBase):
    """Audit, verify, and the tree/checkpoint checks verify runs."""

    # -- fixity audits --------------------------------------------------------------

    def audit(self, fraction: float | None = None, progress: Meter = NULL_METER) -> AuditReport:
        """Re-hash a slice of the store, longest-unchecked first; one log entry per audit.

        A mismatch is logged loudly and reported; nothing is "repaired".
        `progress` hears of the bytes re-hashed, out of the slice's size.
        """
        if fraction is None:
            fraction = 1 / self.config.integrity.audit_period_days
        if not 0 < fraction <= 1:
            raise UsageError(f"fraction: must be in (0, 1], got {fraction}", field="fraction")
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
            {"sha256": sha, "found": found, "recordings": self.catalog.recording_ids_of_object(sha)}
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
                    # Whose bytes were re-hashed: each recording's custody shows the audit.
                    "recordings": self.catalog.recording_ids_of_objects(
                        [sha for sha, _, _ in results]
                    ),
                },
                now,
            )
        for failure in failures:
            log.error("audit.mismatch", **failure)
        log.info("audit.done", checked=len(results), bytes=hashed, failures=len(failures))
        return AuditReport(len(results), hashed, total, tuple(failures), entry.seq)

    # -- verification ------------------------------------------------------------

    def _check_tree(
        self, rows: list[StoredEntry], parsed: dict[int, LogEntry], nodes: _Nodes
    ) -> list[Problem]:
        """Check the stored tree and every checkpoint against `nodes`, the tree recomputed
        from the entries.

        A checkpoint is a signed root: any entry changed, removed, inserted or
        moved before its size changes the recomputed root at that size,
        whatever else an attacker rewrote in the catalog.
        """
        problems: list[Problem] = []
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

    def _check_catalog(
        self,
    ) -> tuple[list[StoredEntry], list[Recording], list[Problem], dict[int, LogEntry], _Nodes]:
        """The log, the recordings, every problem of the log and the catalog, and the
        parsed entries and recomputed tree (the check against the bucket reads them too).

        Every catalog fact the log records is compared with the log; which
        column with which entry field, and which columns the log does not
        record, is listed in integrity/crosscheck.py (LOGGED, NOT_LOGGED).
        The catalog is read in one read transaction: a writer committing
        meanwhile (the daemon docking a camera) must not make a row and its
        entry look out of step.
        """
        with self.catalog.transaction():
            rows = list(self.catalog.log_rows())
            problems = check_chain(rows)
            parsed = parse_entries(rows)
            recordings: list[Recording] = []
            for row in self.catalog.recording_rows():
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
            problems += check_assignments_against_log(self.catalog.assignment_rows(), parsed)
            problems += check_labels_against_log(recordings, parsed)
            problems += check_keys_against_log(self.catalog.signing_keys(), parsed)
            problems += check_fixity_against_log(self.catalog.fixity_rows(), parsed)
            problems += check_exports_against_log(
                self.catalog.export_rows(),
                self.catalog.discs(),
                self.catalog.disc_item_rows(),
                parsed,
            )
            problems += check_access_against_log(
                self.catalog.access_request_rows(),
                self.catalog.access_use_rows(),
                recordings,
                parsed,
            )
            # As Catalog.cases() gives them, but a value that is not JSON is reported.
            cases = [
                {**row, **{k: json_value(row[k]) for k in ("parties", "categories")}}
                for row in self.catalog.case_rows()
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
            nodes = build_nodes(leaf_hash(row.raw) for row in rows)
            problems += self._check_tree(rows, parsed, nodes)
        return rows, recordings, problems, parsed, nodes

    def verify(self, progress: Meter = NULL_METER) -> VerifyReport:
        """Re-walk the hash chain, cross-check rows with entries, re-hash the store.

        `progress` hears of two stages: the log (its entries, counted once
        checked) and the store (bytes re-hashed, out of every object's size).
        """
        progress.stage("checking the log", None, "entries")
        rows, recordings, problems, parsed, nodes = self._check_catalog()
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
        anchor, anchored = self._anchor(len(rows), parsed, nodes)
        problems += anchored
        return VerifyReport(
            len(rows), len(recordings), objects, hashed, tuple(problems), tuple(orphans), anchor
        )

    def _anchor(
        self, size: int, parsed: dict[int, LogEntry], nodes: _Nodes
    ) -> tuple[str | None, list[Problem]]:
        """The local log against the bucket's latest checkpoint (replicate/anchor.py).

        A bucket that does not answer is said, not counted as tampering: a dock
        works offline, and the next verify with the network checks it.
        """
        cfg = self.config.replicate
        if not cfg.enabled:
            return None, []
        prefix = self.replication_prefix()
        bucket = Bucket.open(cfg)
        try:
            latest = bucket.latest_checkpoint(prefix)
            pinned = self.config.integrity.trusted_keys
            texts = pinned or tuple(bucket.public_keys(prefix))
        except BucketError as exc:
            return f"NOT checked against bucket {cfg.bucket}: {exc}", []
        trusted = []
        for text in texts:
            with contextlib.suppress(NoteError):
                trusted.append(VerifierKey.from_text(text))
        keys = {seq: entry for seq, entry in parsed.items() if entry.kind.startswith("key.")}
        anchor, problems = compare(
            BucketCheckpoint(*latest) if latest else None,
            trusted,
            size,
            lambda n: root_hash(lambda lv, ix: nodes[(lv, ix)], n),
            {int(cp["size"]) for cp in self.catalog.checkpoints()},
            keys,
        )
        return f"bucket {cfg.bucket}: {anchor.detail}", problems


def _size_or_zero(path: Path) -> int:
    """A file's size for a progress total; a file that cannot be statted is reported later."""
    try:
        return path.stat().st_size
    except OSError:
        return 0
