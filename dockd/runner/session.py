"""One docking session: scan the volume, ingest each file, wipe what is proven.

The camera's copy of a file is deleted only when the service returned it as
proven (store object verified, row and log entry committed) and the file
still looks exactly as it did when read (DESIGN invariant 1). Any error
leaves that file on the camera and moves on; a vanished volume ends the
session, and the next docking resumes it (invariant 4).
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import structlog

from dockd.devices.identity import DeviceHealth, DeviceIdentity
from dockd.devices.profiles import Profile
from dockd.errors import DockdError, SourceError, StopRequested, VolumeGoneError
from dockd.ingest.probe import MediaInfo
from dockd.ingest.scanner import FoundFile, ScanResult, Skipped, scan
from dockd.ingest.volume import Volume
from dockd.service import REGISTRY_FLAGS, FileOutcome, Service, SessionInfo, Staged

log = structlog.get_logger("dockd.ingest")

EXIT_OK = 0
EXIT_FLAGGED = 3
EXIT_FAILED = 4


class Progress(Protocol):
    def start(self, files: int, total_bytes: int) -> None: ...

    def file_done(self, found: FoundFile) -> None: ...

    def phase(self, name: str) -> None:
        """The session moved on: "copying", "wiping"."""


@runtime_checkable
class ByteProgress(Progress, Protocol):
    """A Progress that also follows the bytes within each file (the CLI's bar).

    A Progress without `advance` hears of a file's bytes only in `file_done`.
    """

    def advance(self, n: int) -> None:
        """`n` more bytes were read (n < 0: a file is read again from its start).

        Per file the calls sum to its scanned size, and they are all made
        before the session moves on to the next file; `file_done` may come
        later (once the file's row is committed) and then counts the file only.
        """


# Opens the camera's volume read-write for the wipe step and yields its root
# (the daemon remounts; a plain directory needs nothing).
Writable = Callable[[], AbstractContextManager[Path]]


@dataclass(frozen=True)
class Failure:
    display: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"source_path": self.display, "reason": self.reason}


@dataclass(frozen=True)
class SessionReport:
    session_id: int
    serial: str
    state: str
    outcomes: tuple[FileOutcome, ...]
    skipped: tuple[Skipped, ...]
    failed: tuple[Failure, ...]
    wiped: tuple[int, ...]  # recording ids whose camera copy was deleted
    wipe_failed: tuple[Failure, ...]
    # Proven here, kept on the camera until the bucket holds them too
    # (replicate.require_before_wipe): "waiting for upload".
    held: tuple[FileOutcome, ...] = ()

    @property
    def ingested(self) -> tuple[FileOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "ingested")

    @property
    def flagged(self) -> tuple[FileOutcome, ...]:
        return tuple(o for o in self.ingested if set(o.recording.flags) - REGISTRY_FLAGS)

    def counts(self) -> dict[str, int]:
        counts = {
            "ingested": len(self.ingested),
            "duplicates": len(self.outcomes) - len(self.ingested),
            "flagged": len(self.flagged),
            "skipped": len(self.skipped),
            "failed": len(self.failed),
            "wiped": len(self.wiped),
            "wipe_failed": len(self.wipe_failed),
        }
        if self.held:  # only where replicate.require_before_wipe kept files back
            counts["waiting_for_upload"] = len(self.held)
        return counts

    @property
    def exit_code(self) -> int:
        if self.failed:
            return EXIT_FAILED
        if self.flagged:
            return EXIT_FLAGGED
        return EXIT_OK

    def as_json(self) -> dict[str, Any]:
        return {
            "session": self.session_id,
            "device_serial": self.serial,
            "state": self.state,
            "counts": self.counts(),
            "recordings": [
                {
                    "id": o.recording.id,
                    "status": o.status,
                    "sha256": o.recording.sha256,
                    "size": o.recording.size,
                    "source_path": o.found.display,
                    "store_path": o.recording.store_path,
                    "flags": list(o.recording.flags),
                    "wiped": o.recording.id in self.wiped,
                    "waiting_for_upload": any(h is o for h in self.held),
                }
                for o in self.outcomes
            ],
            "skipped": [{"source_path": s.display, "reason": s.reason} for s in self.skipped],
            "failed": [f.as_dict() for f in self.failed],
            "wipe_failed": [f.as_dict() for f in self.wipe_failed],
        }


def run_session(
    service: Service,
    source: Path,
    serial: str,
    profile: Profile,
    *,
    wipe: bool,
    officer: str | None = None,
    progress: Progress | None = None,
    device: DeviceIdentity | None = None,
    health: DeviceHealth | None = None,
    writable: Writable | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> SessionReport:
    """Ingest everything `profile` calls footage on the volume at `source`.

    Files are copied from a read-only view; the camera copies of proven files
    are deleted only at the end, through `writable()` (invariant 6: the
    volume is writable only for the wipe). `should_stop` is asked between
    files: a removed camera or a stopping daemon ends the session cleanly,
    and the next docking resumes it.
    """
    with Volume(source) as volume:
        found = scan(volume, profile, service.config.ingest.max_depth)
        for skipped in found.skipped:
            log.info("ingest.file.skipped", path=skipped.display, reason=skipped.reason)
        session = service.begin_session(
            serial,
            profile.name,
            str(source),
            wipe=wipe,
            officer=officer,
            device=device,
            health=health,
        )
        if progress:
            progress.start(len(found.files), sum(f.identity.size for f in found.files))
        state, outcomes, failed = _ingest_all(
            service, volume, profile, found, session, progress, should_stop
        )
    wiped: list[int] = []
    wipe_failed: list[Failure] = []
    to_wipe = [o for o in outcomes if o.may_wipe] if wipe and state == "done" else []
    to_wipe, held = upload_gate(service, to_wipe)
    if to_wipe:
        if progress:
            progress.phase("wiping")
        try:
            _wipe(service, source, writable, to_wipe, wiped, wipe_failed)
        except (DockdError, OSError) as exc:
            # Nothing unproven is touched; what stays on the camera is
            # found as a duplicate at the next docking and wiped then.
            reason = str(exc) if isinstance(exc, DockdError) else f"{type(exc).__name__}: {exc}"
            log.error("ingest.wipe_failed", session=session.id, reason=reason)
            done_ids = set(wiped)
            wipe_failed.extend(
                Failure(o.found.display, reason) for o in to_wipe if o.recording.id not in done_ids
            )
    report = SessionReport(
        session.id,
        session.serial,
        state,
        tuple(outcomes),
        found.skipped,
        tuple(failed),
        tuple(wiped),
        tuple(wipe_failed),
        tuple(held),
    )
    service.end_session(
        session,
        state,
        {
            **report.counts(),
            "wiped_recordings": list(report.wiped),
            "failed_files": [f.as_dict() for f in report.failed],
        },
    )
    return report


def upload_gate(
    service: Service, outcomes: list[FileOutcome]
) -> tuple[list[FileOutcome], list[FileOutcome]]:
    """(may be wiped now, must wait): with replicate.require_before_wipe a camera's
    file is deleted only once its object is verified in the bucket."""
    if not service.config.replicate.require_before_wipe or not outcomes:
        return outcomes, []
    verified = service.replicated([o.recording.sha256 for o in outcomes])
    return (
        [o for o in outcomes if o.recording.sha256 in verified],
        [o for o in outcomes if o.recording.sha256 not in verified],
    )


def wipe_uploaded(
    service: Service, source: Path, writable: Writable | None, held: list[FileOutcome]
) -> tuple[list[int], list[Failure]]:
    """The deferred wipe of a docking's held files, once the bucket holds them: the same
    checks as at the session's end (each file still looks as it did)."""
    wiped: list[int] = []
    failed: list[Failure] = []
    _wipe(service, source, writable, held, wiped, failed)
    return wiped, failed


def _wipe(
    service: Service,
    source: Path,
    writable: Writable | None,
    outcomes: list[FileOutcome],
    wiped: list[int],
    wipe_failed: list[Failure],
) -> None:
    """Delete the camera copies of proven files, each only if it still looks as it did."""
    with (writable or (lambda: nullcontext(source)))() as root, Volume(root) as volume:
        for outcome in outcomes:
            item = outcome.found
            try:
                volume.unlink_if_unchanged(
                    item.rel_parts,
                    outcome.seen,
                    outcome.recording.sha256,
                    service.config.ingest.buffer_size,
                )
            except VolumeGoneError:
                raise
            except SourceError as exc:
                log.warning("ingest.file.wipe_failed", path=item.display, reason=str(exc))
                wipe_failed.append(Failure(item.display, str(exc)))
            else:
                wiped.append(outcome.recording.id)
                log.info("ingest.file.wiped", recording=outcome.recording.id, path=item.display)


def _ingest_all(
    service: Service,
    volume: Volume,
    profile: Profile,
    found: ScanResult,
    session: SessionInfo,
    progress: Progress | None,
    should_stop: Callable[[], bool],
) -> tuple[str, list[FileOutcome], list[Failure]]:
    outcomes: list[FileOutcome] = []
    failed: list[Failure] = []
    state = "done"
    files = list(found.files)
    # Files copied whose read-back, rename into the store and probe run in
    # `pool` (Service.prove_staged), oldest first, while the next file is
    # copied. Rows are committed in file order; a crash leaves at most
    # `ahead` copies in store/tmp (removed at start-up) or objects without a
    # row (adopted by the next docking, DESIGN §4a recovery).
    ahead = service.config.ingest.probe_ahead
    pending: deque[tuple[Staged, Future[MediaInfo]]] = deque()

    def fail(item: FoundFile, exc: BaseException) -> None:
        reason = str(exc) if isinstance(exc, DockdError) else f"{type(exc).__name__}: {exc}"
        log.error("ingest.file.failed", session=session.id, path=item.display, reason=reason)
        failed.append(Failure(item.display, reason))
        if progress:
            progress.file_done(item)

    def done(item: FoundFile, outcome: FileOutcome) -> None:
        outcomes.append(outcome)
        if progress:
            progress.file_done(item)

    advance = progress.advance if isinstance(progress, ByteProgress) else None

    def settle(keep: int) -> None:
        """Commit the oldest pending files until at most `keep` remain."""
        while len(pending) > keep:
            staged, media = pending.popleft()
            try:
                outcome = service.finish_file(session, profile, staged, media.result())
            except (DockdError, OSError, sqlite3.Error) as exc:
                fail(staged.found, exc)
            else:
                done(staged.found, outcome)

    if progress:
        progress.phase("copying")
    with ThreadPoolExecutor(max(ahead, 1), thread_name_prefix="dockd-probe") as pool:
        for index, item in enumerate(files):
            if should_stop():
                settle(0)
                state = "stopped"
                log.warning("ingest.stopped", session=session.id, remaining=len(files) - index)
                break
            on_bytes, finish_bytes = _file_bytes(item.identity.size, advance)
            try:
                staged = service.stage_file(session, volume, item, should_stop, on_bytes)
            except StopRequested as exc:
                settle(0)
                state = "stopped"
                log.warning("ingest.stopped", session=session.id, reason=str(exc))
                break
            except VolumeGoneError as exc:
                settle(0)
                state = "volume_gone"
                log.error("ingest.volume_gone", session=session.id, reason=str(exc))
                failed.extend(Failure(f.display, f"volume vanished: {exc}") for f in files[index:])
                break
            except (DockdError, OSError, sqlite3.Error) as exc:
                finish_bytes()
                settle(0)
                fail(item, exc)
                continue
            finish_bytes()
            if isinstance(staged, FileOutcome):
                settle(0)
                done(item, staged)
                continue
            pending.append((staged, pool.submit(service.prove_staged, staged)))
            settle(ahead)
        settle(0)
    return state, outcomes, failed


def _file_bytes(
    size: int, advance: Callable[[int], None] | None
) -> tuple[Callable[[int], None] | None, Callable[[], None]]:
    """The byte callback for one file of `size` bytes, and what completes its share.

    What reaches `advance` stays within [0, size] for the file: a re-read (a
    duplicate's check, a retry after the file changed) never pushes the bar
    past the file, and a file that shrank, grew or failed still adds exactly
    `size` once finished, so the bar ends at the session's total.
    """
    if advance is None:
        return None, _nothing
    done = 0

    def on_bytes(n: int) -> None:
        nonlocal done
        moved = min(max(done + n, 0), size) - done
        if moved:
            done += moved
            advance(moved)

    def finish() -> None:
        on_bytes(size - done)

    return on_bytes, finish


def _nothing() -> None:
    pass
