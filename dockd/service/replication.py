"""Replication: the queue of what goes to the bucket, one upload at a time, the locks kept.

The service owns the queue (docs/FORMAT.md "Schema 8"); the runner's
uploader threads (runner/replication.py) ask it for the next upload, and it
claims the row, sends the bytes (replicate/bucket.py), proves them by HEAD
and settles the row, each step its own transaction, the network outside
any. What is queued is queued in the transaction that made it (a
recording, a checkpoint, a key, a session's end), and a writer's start
fills in whatever is missing, so that nothing committed is ever left out.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from dockd.clock import isoformat_utc, parse_utc
from dockd.errors import DockdError
from dockd.replicate.bucket import Bucket, BucketError, Uploaded
from dockd.replicate.keys import (
    backoff,
    checkpoint_key,
    clean_prefix,
    log_segment_key,
    needs_extension,
    object_key,
    public_key_key,
    retain_until,
    session_key,
)
from dockd.replicate.status import ReplicationStatus
from dockd.service.base import ServiceBase
from dockd.service.values import Upload

log = structlog.get_logger("dockd.replicate")

# At most this many log entries per segment: a dock that turns replication on
# with a long log sends it in pieces, none of them large in memory.
SEGMENT_MAX = 10_000
# Objects named by one `replicate.verified` / `replicate.extended` entry.
VERIFIED_PER_ENTRY = 500


class _NothingToSend(Exception):
    """The row's content no longer needs to go up (deleted before it was uploaded)."""


def _whole_seconds(moment: datetime) -> str:
    """retain-until as the queue keeps it: whole seconds, so that text order is time order."""
    return isoformat_utc(moment.replace(microsecond=0))


class Replication(ServiceBase):
    """The replication queue, uploads, lock extensions, status."""

    # -- what goes into the queue (the caller holds the transaction) ------------------

    def replication_prefix(self) -> str:
        return clean_prefix(self.config.replicate.prefix or self.origin)

    # Each _queue_* does nothing while replication is off, and returns how many rows
    # it added (a key queued already adds none).

    def _queue(self, key: str, kind: str, ref: str, size: int | None = None) -> int:
        now = isoformat_utc(self.clock.now())
        return int(
            self.catalog.insert_upload(self.config.replicate.bucket, key, kind, ref, now, size)
        )

    def _queue_object(self, sha256: str, size: int) -> int:
        if not self.config.replicate.enabled:
            return 0
        return self._queue(object_key(self.replication_prefix(), sha256), "object", sha256, size)

    def _queue_key(self, key_id: str) -> int:
        if not self.config.replicate.enabled:
            return 0
        return self._queue(public_key_key(self.replication_prefix(), key_id), "key", key_id)

    def _queue_session(self, session_id: int) -> int:
        if not self.config.replicate.enabled:
            return 0
        key = session_key(self.replication_prefix(), session_id)
        return self._queue(key, "session", str(session_id))

    def _queue_checkpoint(self, size: int) -> int:
        """The log since the last segment, then the checkpoint that signs it."""
        cfg = self.config.replicate
        if not cfg.enabled:
            return 0
        prefix = self.replication_prefix()
        first = self.catalog.last_segment_end(cfg.bucket, prefix) + 1
        added = 0
        while first <= size:
            last = min(size, first + SEGMENT_MAX - 1)
            added += self._queue(log_segment_key(prefix, first, last), "log", f"{first}-{last}")
            first = last + 1
        return added + self._queue(checkpoint_key(prefix, size), "checkpoint", str(size))

    def queue_missing(self) -> int:
        """Queue what the catalog holds and the queue lacks (replication turned on for
        an existing dock, a new bucket or prefix, a row a crash kept out); the count."""
        cfg = self.config.replicate
        if not cfg.enabled:
            return 0
        prefix = self.replication_prefix()
        added = 0
        with self.catalog.transaction():
            for row in self.catalog.signing_keys():
                added += self._queue_key(str(row["key_id"]))
            queued = self.catalog.queued_refs(cfg.bucket, prefix, "checkpoint")
            for row in self.catalog.checkpoints():
                if str(row["size"]) not in queued:
                    added += self._queue_checkpoint(int(row["size"]))
            for sha, size in self.catalog.unqueued_objects(cfg.bucket, prefix):
                added += self._queue_object(sha, size)
            sessions = self.catalog.queued_refs(cfg.bucket, prefix, "session")
            for session_id in self.catalog.ended_session_ids():
                if str(session_id) not in sessions:
                    added += self._queue_session(session_id)
        if added:
            log.info("replicate.queued", added=added, bucket=cfg.bucket)
        return added

    # -- the uploader's side -------------------------------------------------------------

    def replication_recover(self, bucket: Bucket) -> int:
        """Uploads a stopped writer left `uploading` go back to pending (their multipart
        uploads aborted): a half object is never verified. Returns how many."""
        rows = self.catalog.interrupted_uploads(bucket.name)
        for row in rows:
            if row["upload_id"]:
                bucket.abort(str(row["key"]), str(row["upload_id"]))
            with self.catalog.transaction():
                self.catalog.update_upload(
                    bucket.name,
                    str(row["key"]),
                    {"state": "pending", "upload_id": None, "last_error": "interrupted"},
                )
            log.warning("replicate.interrupted", key=row["key"], attempts=row["attempts"])
        return len(rows)

    def next_upload(self) -> Upload | None:
        """Claim the next due upload (pending → uploading), or None if none is due."""
        bucket = self.config.replicate.bucket
        now = self.clock.now()
        with self.catalog.transaction():
            for row in self.catalog.due_uploads(bucket, now.timestamp(), 8):
                if self.catalog.mark_uploading(bucket, str(row["key"]), isoformat_utc(now)):
                    return Upload(str(row["key"]), str(row["kind"]), str(row["ref"]),
                                  int(row["attempts"]) + 1)  # fmt: skip
        return None

    def next_retry_at(self) -> float | None:
        return self.catalog.next_retry(self.config.replicate.bucket)

    def _content(self, up: Upload) -> tuple[Path | bytes, str, int, datetime]:
        """What to send for `up`: its bytes (or the store file), SHA-256, size, lock."""
        now = self.clock.now()
        forever = retain_until("permanent", None, now)
        if up.kind == "object":
            path = self.store.object_path(up.ref)
            live, never, expires = self.catalog.object_retention(up.ref)
            if not live:
                raise _NothingToSend("its recordings were deleted by the retention sweep first")
            until = retain_until(
                "permanent" if never else None, parse_utc(expires) if expires else None, now
            )
            return path, up.ref, path.stat().st_size, until
        data: bytes
        if up.kind == "log":
            first, last = (int(n) for n in up.ref.split("-"))
            data = b"".join(
                (self.catalog.log_entry(seq) or b"") + b"\n" for seq in range(first, last + 1)
            )
        elif up.kind == "checkpoint":
            notes = [c["note"] for c in self.catalog.checkpoints() if str(c["size"]) == up.ref]
            if not notes:
                raise DockdError(f"no checkpoint of size {up.ref} in the catalog")
            data = str(notes[-1]).encode()
        elif up.kind == "key":
            keys = [k["vkey"] for k in self.catalog.signing_keys() if k["key_id"] == up.ref]
            if not keys:
                raise DockdError(f"no signing key {up.ref} in the catalog")
            data = (str(keys[0]) + "\n").encode()
        elif up.kind == "session":
            extract = self.catalog.session_extract(int(up.ref))
            if extract is None:
                raise DockdError(f"no session {up.ref} in the catalog")
            data = json.dumps(extract, sort_keys=True, ensure_ascii=False, indent=1).encode()
        else:
            raise DockdError(f"unknown kind of upload {up.kind!r}")
        return data, hashlib.sha256(data).hexdigest(), len(data), forever

    def replicate(
        self, bucket: Bucket, up: Upload, should_stop: Callable[[], bool] = lambda: False
    ) -> bool:
        """Send and prove one claimed upload; settle its row. True once verified.

        A failure (the bucket, the network, a store file unreadable) puts it
        back to pending with the error and a back-off; nothing else waits on it.
        """
        cfg = self.config.replicate
        started = time.monotonic()
        try:
            source, sha, size, until = self._content(up)
        except _NothingToSend as why:
            with self.catalog.transaction():
                self.catalog.update_upload(
                    cfg.bucket, up.key, {"state": "skipped", "last_error": str(why)}
                )
            log.info("replicate.skipped", key=up.key, reason=str(why))
            return True
        except (DockdError, OSError) as exc:
            self._failed(up, str(exc))
            return False
        try:
            done = bucket.existing(up.key, sha, size)
            if done is not None and done.retain_until < until:
                bucket.extend(up.key, done.version_id, until)
                done = Uploaded(done.key, done.version_id, size, sha, until)
            if done is None:
                done = bucket.upload(
                    up.key, source, sha, size, until, cfg.part_size,
                    on_multipart=lambda upload_id: self._note_multipart(up.key, upload_id),
                    should_stop=should_stop,
                )  # fmt: skip
            if not bucket.proven(done):
                raise BucketError(f"{up.key}: the bucket does not hold what was sent")
        except (DockdError, OSError) as exc:
            self._failed(up, str(exc))
            return False
        with self.catalog.transaction():
            self.catalog.update_upload(
                cfg.bucket,
                up.key,
                {
                    "state": "verified",
                    "verified_at": isoformat_utc(self.clock.now()),
                    "version_id": done.version_id,
                    "size": done.size,
                    "sha256": done.sha256,
                    "retain_until": _whole_seconds(done.retain_until),
                    "seconds": round(time.monotonic() - started, 6),
                    "upload_id": None,
                    "last_error": None,
                    "next_try": None,
                },
            )
        log.info(
            "replicate.uploaded", key=up.key, kind=up.kind, size=size,
            version_id=done.version_id, retain_until=_whole_seconds(done.retain_until),
        )  # fmt: skip
        return True

    def _note_multipart(self, key: str, upload_id: str) -> None:
        with self.catalog.transaction():
            self.catalog.update_upload(self.config.replicate.bucket, key, {"upload_id": upload_id})

    def _failed(self, up: Upload, reason: str) -> None:
        wait = backoff(up.attempts)
        with self.catalog.transaction():
            self.catalog.update_upload(
                self.config.replicate.bucket,
                up.key,
                {
                    "state": "pending",
                    "last_error": reason[:2000],
                    "next_try": self.clock.now().timestamp() + wait,
                    "upload_id": None,
                },
            )
        log.warning(
            "replicate.failed", key=up.key, attempts=up.attempts, retry_in_s=round(wait, 1),
            reason=reason,
        )  # fmt: skip

    def _recordings_of(self, kind: str, ref: str) -> list[int]:
        """The recordings an upload carries: those sharing an object, a session's."""
        if kind == "object":
            return self.catalog.recording_ids_of_object(ref)
        if kind == "session":
            return self.catalog.recording_ids_of_session(int(ref))
        return []

    def log_verified(self) -> int:
        """One `replicate.verified` entry per batch of verified objects and session
        extracts not logged yet; returns how many were logged."""
        bucket = self.config.replicate.bucket
        logged = 0
        while True:
            # Read and logged in one transaction: two threads never log a row twice.
            with self.catalog.transaction():
                rows = self.catalog.unlogged_verified(bucket, VERIFIED_PER_ENTRY)
                if not rows:
                    return logged
                objects = [
                    {k: row[k] for k in ("key", "version_id", "sha256", "size", "retain_until")}
                    | {"recordings": self._recordings_of(str(row["kind"]), str(row["ref"]))}
                    for row in rows
                ]
                entry = self._log(
                    "replicate.verified",
                    {
                        "bucket": bucket,
                        # Whose evidence went off the box: custody reports list it.
                        "recordings": sorted({i for o in objects for i in o["recordings"]}),
                        "objects": objects,
                    },
                )
                self.catalog.mark_logged(bucket, [str(r["key"]) for r in rows], entry.seq)
            logged += len(rows)

    def extend_due(self) -> bool:
        """Whether a retention moved since the last extension pass (and forget it)."""
        due = self._extend_due.is_set()
        self._extend_due.clear()
        return due

    def extend_locks(self, bucket: Bucket) -> int:
        """Push out the lock of every verified upload whose retention now wants longer:
        a tier raised, a hold set, permanent footage nearing its horizon. Never shorter.
        One `replicate.extended` entry per batch; returns how many were extended."""
        now = self.clock.now()
        # (key, version, kind, ref, the new retain-until)
        due: list[tuple[str, str, str, str, datetime]] = []
        for row in self.catalog.object_retention_wanted(bucket.name):
            tier = "permanent" if row["forever"] else None
            expires = parse_utc(row["expires_at"]) if row["expires_at"] else None
            current = parse_utc(str(row["retain_until"]))
            if needs_extension(tier, expires, now, current):
                until = retain_until(tier, expires, now, current)
                due.append((row["key"], row["version_id"], "object", row["sha256"], until))
        for row in self.catalog.locked_for_ever(bucket.name):
            current = parse_utc(str(row["retain_until"]))
            if needs_extension("permanent", None, now, current):
                until = retain_until("permanent", None, now, current)
                due.append((row["key"], row["version_id"], row["kind"], row["ref"], until))
        done: list[dict[str, Any]] = []
        for key, version_id, kind, ref, until in due:
            try:
                bucket.extend(key, version_id, until)
            except BucketError as exc:
                log.warning("replicate.extend_failed", key=key, reason=str(exc))
                continue
            done.append(
                {
                    "key": key,
                    "version_id": version_id,
                    "retain_until": _whole_seconds(until),
                    "recordings": self._recordings_of(kind, ref),
                }
            )
        for start in range(0, len(done), VERIFIED_PER_ENTRY):
            batch = done[start : start + VERIFIED_PER_ENTRY]
            with self.catalog.transaction():
                for item in batch:
                    self.catalog.update_upload(
                        bucket.name, item["key"], {"retain_until": item["retain_until"]}
                    )
                self._log(
                    "replicate.extended",
                    {
                        "bucket": bucket.name,
                        "recordings": sorted({i for o in batch for i in o["recordings"]}),
                        "objects": batch,
                    },
                )
        if done:
            log.info("replicate.extended", count=len(done), bucket=bucket.name)
        return len(done)

    # -- reading ------------------------------------------------------------------------

    def replicated(self, shas: list[str]) -> set[str]:
        """Which of these store objects are verified in the bucket."""
        return self.catalog.verified_objects(self.config.replicate.bucket, shas)

    def replication_status(self) -> ReplicationStatus:
        cfg = self.config.replicate
        figures = self.catalog.upload_counts(cfg.bucket)
        counts = figures["counts"]
        pending, pending_bytes = counts.get("pending", (0, 0))
        uploading, _ = counts.get("uploading", (0, 0))
        verified, verified_bytes = counts.get("verified", (0, 0))
        error = figures["last_error"]
        seconds = figures["recent_seconds"]
        return ReplicationStatus(
            bucket=cfg.bucket,
            prefix=self.replication_prefix(),
            pending=pending,
            pending_bytes=pending_bytes,
            uploading=uploading,
            verified=verified,
            verified_bytes=verified_bytes,
            oldest_queued_at=parse_utc(figures["oldest_queued_at"])
            if figures["oldest_queued_at"]
            else None,
            bytes_per_second=figures["recent_bytes"] / seconds if seconds > 0 else None,
            last_error=error["error"] if error else None,
            last_error_key=error["key"] if error else None,
            verified_checkpoints=figures["verified_checkpoints"],
        )
