"""Docking: sessions, staging a camera file into the store, probing it, committing its recording."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import structlog

from dockd.catalog import Recording
from dockd.clock import isoformat_utc
from dockd.devices.identity import DeviceHealth, DeviceIdentity
from dockd.devices.profiles import Profile
from dockd.devices.registry import labels_for
from dockd.errors import StoreError
from dockd.ingest.copier import Copy, Resumable, copy_verified, hash_source, prove_copy
from dockd.ingest.probe import MediaInfo
from dockd.ingest.resume import partial_key
from dockd.ingest.scanner import FoundFile
from dockd.ingest.timing import resolve_times
from dockd.ingest.volume import FileIdentity, Volume
from dockd.integrity.crosscheck import source_path_b64
from dockd.retention.compliance import is_late, offload_deadline
from dockd.retention.policy import Facts, decide
from dockd.service.base import ServiceBase
from dockd.service.values import (
    FLAG_CHANGED,
    FLAG_EMPTY,
    FLAG_LATE,
    FLAG_UNREADABLE,
    FileOutcome,
    SessionInfo,
    Staged,
)
from dockd.store import hash_file

log = structlog.get_logger("dockd.service")


class Docking(ServiceBase):
    """Sessions (begin/end), staging, probing, committing a recording, duplicates."""

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
            self._queue_session(session.id)
        log.info("session.done", session=session.id, serial=session.serial, state=state, **summary)
        self.checkpoint()

    def record_late_wipe(self, session_id: int, wiped: list[int]) -> None:
        """The camera copies of an ended session's files deleted once the bucket held
        them (replicate.require_before_wipe): `session.wiped`."""
        if not wiped:
            return
        with self.catalog.transaction():
            self._log(
                "session.wiped",
                {"session": session_id, "wiped_recordings": sorted(wiped), "after": "upload"},
            )
        log.info("session.wiped", session=session_id, wiped=len(wiped), after="upload")

    # -- ingest ----------------------------------------------------------------------

    def ingest_file(
        self, session: SessionInfo, volume: Volume, profile: Profile, found: FoundFile
    ) -> FileOutcome:
        """Bring one camera file into the store and catalog, or raise DockdError.

        On any error nothing of this file is left in store/tmp and nothing
        is committed; the camera's copy must then stay where it is. The
        three steps are public so that a session can overlap the read-back
        and probe of one file with the copy of the next (runner/session.py).
        """
        staged = self.stage_file(session, volume, found)
        if isinstance(staged, FileOutcome):
            return staged
        return self.finish_file(session, profile, staged, self.prove_staged(staged))

    def stage_file(
        self,
        session: SessionInfo,
        volume: Volume,
        found: FoundFile,
        should_stop: Callable[[], bool] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> FileOutcome | Staged:
        """Step 1: a duplicate's outcome, or the camera file copied into store/tmp/
        (or store/partial/), not yet read back: `prove_staged` does that.

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
        resumable = None
        if cfg.resume_interval:
            resumable = Resumable(partial_key(session.serial, found.rel_path), cfg.resume_interval)
        copy = self._copy_until_stable(volume, found, flags, should_stop, progress, resumable)
        try:
            existing = self.catalog.find_exact(session.serial, found.rel_path, copy.sha256)
        except BaseException:
            self.store.discard_temp(copy.temp)
            raise
        if existing is None:
            return Staged(found, copy, tuple(flags))
        # Not stored again if only a tombstone would refer to it.
        self._prove_and_store(copy, found.display, keep=not existing.deleted)
        return self._duplicate(session, found, existing, copy.after, changed=bool(flags))

    def prove_staged(self, staged: Staged) -> MediaInfo:
        """Step 2: read the copy back from disk, rename it into the store (FORMAT.md,
        order of writes, 1), and probe the object, in the dock's long-lived probe
        workers (ingest/prober.py) or by ffprobe, the judge of "unreadable". Touches
        no catalog: safe in a worker thread, beside the copy of the next file."""
        copy = staged.copy
        self._prove_and_store(copy, staged.found.display)
        if copy.size == 0:
            return MediaInfo(error="empty file")
        return self._prober.probe(self.store.object_path(copy.sha256))

    def _prove_and_store(self, copy: Copy, where: str, keep: bool = True) -> None:
        """Read `copy` back from disk, then rename it into the store (`keep`) or drop
        it; on any failure it is dropped and the error raised."""
        buffer_size = self.config.ingest.buffer_size
        prove_copy(copy, self.store, buffer_size, where)
        try:
            if keep:
                self.store.commit_temp(copy.temp, copy.sha256, buffer_size)
            else:
                self.store.discard_temp(copy.temp)
        except BaseException:
            self.store.discard_temp(copy.temp)
            raise

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
        resumable: Resumable | None = None,
    ) -> Copy:
        cfg = self.config.ingest
        attempts = cfg.change_retries + 1
        for attempt in range(1, attempts + 1):
            copy = copy_verified(
                volume,
                found.rel_parts,
                self.store,
                cfg.buffer_size,
                should_stop,
                progress,
                resumable,
                prove=False,  # by prove_staged (or stage_file, for a duplicate)
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
            # (the discarded copy took its checkpoint with it: the retry starts at 0)
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
            who = labels_for(
                self.catalog.assignments(session.serial),
                times.start,
                name_officer=name_officer,
                name_device=name.device,
                flags=flags,
            )
            flags = list(who.flags)
            recording_id = self.catalog.next_id("recordings")
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
                    # Only when a pulled or crashed copy was continued (resume.py).
                    **({"copy_resumed_from": copy.resumed_from} if copy.resumed_from else {}),
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
            # Queued with its row: a duplicate's content key is queued already.
            self._queue_object(copy.sha256, copy.size)
        if copy.resumed_from:
            log.info(
                "ingest.file.assembled",
                recording=recording_id,
                resumed_from=copy.resumed_from,
                size=copy.size,
            )
        recording = self.catalog.recording(recording_id)
        assert recording is not None
        return recording


def _json_text(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True)
