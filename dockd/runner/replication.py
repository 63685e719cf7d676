"""The uploader: threads that empty the replication queue, never in a docking's way.

`replicate.workers` threads each claim the next due upload from the service
(service/replication.py), send it, prove it and settle it; a failure backs
that row off (full jitter) and the worker pauses a little longer after each
failure in a row, so that an unreachable bucket costs no CPU and no
docking ever waits for it. A keeper thread checks the bucket until it
answers (a dock starts offline as well as online), logs verified uploads
in batches, extends locks (within a minute of a tier or hold that makes a
retention longer, and hourly for permanent footage's horizon), and warns in the journal while the
oldest upload waits longer than `replicate.alert_after_hours`.

`drain()` is the same work in the foreground (with as many threads) until
nothing is due, for `dockd replicate push`, the benchmark and the tests.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import structlog

from dockd.clock import Clock
from dockd.errors import ConfigError
from dockd.replicate.bucket import Bucket, BucketError
from dockd.replicate.keys import backoff
from dockd.service import Service

log = structlog.get_logger("dockd.replicate")

IDLE_POLL_S = 5.0  # an idle worker looks for new rows this often (or when woken)
MAX_PAUSE_S = 60.0  # the longest a worker pauses after failures in a row
EXTEND_EVERY_S = 3600.0
ALERT_EVERY_S = 3600.0  # how often the "behind" warning repeats while it holds


@dataclass(frozen=True)
class Drained:
    verified: int
    failed: int
    logged: int
    extended: int
    recovered: int

    def as_json(self) -> dict[str, int]:
        return {
            "verified": self.verified,
            "failed": self.failed,
            "logged": self.logged,
            "extended": self.extended,
            "recovered": self.recovered,
        }


class Uploader:
    def __init__(self, service: Service, bucket: Bucket, clock: Clock) -> None:
        self.service = service
        self.bucket = bucket
        self.clock = clock
        self.config = service.config.replicate
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._ready = threading.Event()  # the bucket answered its check
        self._threads: list[threading.Thread] = []
        self._last_alert = 0.0
        self.problem: str | None = None  # why the bucket is not used (for status)

    # -- the daemon's threads -----------------------------------------------------------

    def start(self) -> None:
        keeper = threading.Thread(target=self._keep, name="dockd-replicate-keeper", daemon=True)
        self._threads.append(keeper)
        for n in range(self.config.workers):
            worker = threading.Thread(target=self._work, name=f"dockd-replicate-{n}", daemon=True)
            self._threads.append(worker)
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Let the uploads in flight finish (bounded); what is left stays pending."""
        self._stopping.set()
        self._wake.set()
        self._ready.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        try:
            self.service.log_verified()
        except Exception as exc:  # the service may be closing: the next start logs them
            log.warning("replicate.log_deferred", reason=str(exc))

    def _keep(self) -> None:
        pause = 0
        while not self._stopping.is_set():
            try:
                self.bucket.check_target()
            except (BucketError, ConfigError) as exc:
                # A setting wrong since the start (edited bucket policy) or no answer:
                # nothing is uploaded until it is right; ingest goes on.
                self.problem = str(exc)
                pause += 1
                log.warning("replicate.unavailable", reason=str(exc))
                self._stopping.wait(min(MAX_PAUSE_S, 5.0 * 2 ** min(pause, 6)))
                continue
            break
        if self._stopping.is_set():
            return
        self.problem = None
        self.service.replication_recover(self.bucket)
        self._ready.set()
        last_extend = 0.0
        while not self._stopping.wait(60.0 if last_extend else 0.0):
            now = time.monotonic()
            try:
                self.service.log_verified()
                hourly = now - last_extend >= EXTEND_EVERY_S or not last_extend
                if self.service.extend_due() or hourly:
                    self.service.extend_locks(self.bucket)
                    last_extend = now
                self._check_behind()
            except Exception as exc:
                log.exception("replicate.keeper_failed", reason=str(exc))

    def _check_behind(self) -> None:
        status = self.service.replication_status()
        now = self.clock.now()
        if not status.behind(now, self.config.alert_after_hours):
            return
        if self._last_alert and time.monotonic() - self._last_alert < ALERT_EVERY_S:
            return  # said within the hour
        self._last_alert = time.monotonic()
        log.warning(
            "replicate.behind",
            oldest_pending_hours=round(status.oldest_age_hours(now) or 0, 1),
            alert_after_hours=self.config.alert_after_hours,
            queue=status.pending + status.uploading,
            last_error=status.last_error,
        )

    def _work(self) -> None:
        self._ready.wait()
        failures = 0
        while not self._stopping.is_set():
            try:
                up = self.service.next_upload()
            except Exception as exc:
                log.exception("replicate.worker_failed", reason=str(exc))
                self._stopping.wait(IDLE_POLL_S)
                continue
            if up is None:
                try:
                    self.service.log_verified()  # a batch ends when the queue runs dry
                except Exception as exc:
                    log.warning("replicate.log_deferred", reason=str(exc))
                self._wake.wait(self._idle_wait())
                self._wake.clear()
                continue
            if self.service.replicate(self.bucket, up, self._stopping.is_set):
                failures = 0
            else:
                failures += 1
                # The whole bucket may be gone: do not hammer it row after row.
                self._stopping.wait(min(MAX_PAUSE_S, backoff(failures, base_s=1.0)))

    def _idle_wait(self) -> float:
        retry = self.service.next_retry_at()
        if retry is None:
            return IDLE_POLL_S
        return max(0.2, min(IDLE_POLL_S, retry - self.clock.now().timestamp()))

    # -- in the foreground --------------------------------------------------------------

    def drain(self, give_up_after: int = 3) -> Drained:
        """Upload everything due now, `replicate.workers` at a time, as the daemon does.
        A failed row stays pending (backed off); after `give_up_after` failures in a
        row the bucket is taken to be down and the drain ends."""
        self.bucket.check_target()
        recovered = self.service.replication_recover(self.bucket)
        tally = _Tally(give_up_after)
        self._drain_with_workers(tally)
        logged = self.service.log_verified()
        extended = self.service.extend_locks(self.bucket)
        if not tally.down.is_set() and self.service.log_grew():
            # The entries just written (replicate.verified, .extended) signed and sent
            # too, so that the bucket's latest checkpoint covers this run. Those two
            # uploads log nothing: the next run finds the queue empty.
            self.service.checkpoint()
            self._drain_with_workers(tally)
        return Drained(tally.verified, tally.failed, logged, extended, recovered)

    def _drain_with_workers(self, tally: _Tally) -> None:
        def work() -> None:
            while not tally.down.is_set() and (up := self.service.next_upload()) is not None:
                tally.add(self.service.replicate(self.bucket, up))

        with ThreadPoolExecutor(self.config.workers, thread_name_prefix="dockd-push") as pool:
            for done in [pool.submit(work) for _ in range(self.config.workers)]:
                done.result()  # a bug in one worker is raised here, not lost


class _Tally:
    """What the drain's workers did; `down` once failures in a row say the bucket is."""

    def __init__(self, give_up_after: int) -> None:
        self.verified = self.failed = self._in_a_row = 0
        self._give_up_after = give_up_after
        self._lock = threading.Lock()
        self.down = threading.Event()

    def add(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self.verified += 1
                self._in_a_row = 0
                return
            self.failed += 1
            self._in_a_row += 1
            if self._in_a_row >= self._give_up_after:
                self.down.set()
