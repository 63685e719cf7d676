"""`/metrics` in the Prometheus text format (prometheus-client), and its textfile twin.

One collector reads, at each scrape, the daemon's live status (slots, queue)
and the service's figures (catalog aggregates, the store's free space, the
replication queue): nothing is counted twice in memory, and a restarted
daemon reports the same totals (they come from the catalog). For hosts that
run node-exporter without a TCP port, the same text is written atomically
into its textfile folder (`metrics.textfile`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dockd.clock import Clock
from dockd.service.figures import Figures

Status = Callable[[], dict[str, Any]]
# Slot states in which a camera is still in the dock and being worked on.
_BUSY = frozenset({"detected", "mounting", "queued", "scanning", "copying", "wiping"})


class DockdCollector(Collector):
    def __init__(self, status: Status, figures: Callable[[], Figures], clock: Clock) -> None:
        self.status, self.figures, self.clock = status, figures, clock

    def collect(self) -> Iterator[Metric]:
        status, fig, now = self.status(), self.figures(), self.clock.now().timestamp()
        yield from _slots(status)
        yield _gauge(
            "dockd_ingest_queue", "Cameras waiting for a worker", status["daemon"]["waiting"]
        )
        ingested = CounterMetricFamily("dockd_ingested_files", "Recordings ingested")
        ingested.add_metric([], fig.recordings)
        yield ingested
        size = CounterMetricFamily("dockd_ingested_bytes", "Bytes of recordings ingested")
        size.add_metric([], fig.bytes)
        yield size
        yield _gauge("dockd_late_recordings", "Recordings offloaded after 24 h (R1)", fig.late)
        flagged = GaugeMetricFamily("dockd_flagged_recordings", "Live recordings per flag",
                                    labels=["flag"])  # fmt: skip
        for flag, n in sorted(fig.flagged.items()):
            flagged.add_metric([flag], n)
        yield flagged
        yield _gauge("dockd_log_entries", "Entries in the evidence log", fig.log_entries)
        if fig.last_checkpoint_at is not None:
            yield _gauge("dockd_last_checkpoint_age_seconds", "Since the last signed checkpoint",
                         now - fig.last_checkpoint_at)  # fmt: skip
        if fig.last_audit_at is not None:
            yield _gauge("dockd_last_audit_timestamp_seconds", "When the last fixity audit ran",
                         fig.last_audit_at)  # fmt: skip
            yield _gauge("dockd_last_audit_failures", "Objects the last audit found damaged",
                         fig.last_audit_failures)  # fmt: skip
        yield _gauge("dockd_store_free_bytes", "Free bytes on the store", fig.store_free_bytes)
        if fig.replication is not None:
            rep = fig.replication
            yield _gauge("dockd_replication_queue", "Uploads waiting or under way",
                         rep.pending + rep.uploading)  # fmt: skip
            age = rep.oldest_age_hours(self.clock.now())
            yield _gauge("dockd_replication_oldest_pending_seconds", "Age of the oldest upload",
                         0.0 if age is None else age * 3600)  # fmt: skip
            yield _gauge("dockd_replication_verified", "Uploads verified in the bucket",
                         rep.verified)  # fmt: skip


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _slots(status: dict[str, Any]) -> Iterator[Metric]:
    slots = status.get("slots", [])
    cameras = [s for s in slots if not str(s["slot"]).startswith("drop:")]
    yield _gauge("dockd_docked_cameras", "Cameras in the dock being worked on",
                 sum(1 for s in cameras if s["state"] in _BUSY))  # fmt: skip
    state = GaugeMetricFamily("dockd_slot_state", "Each slot's state (1)", labels=["slot", "state"])
    rate = GaugeMetricFamily("dockd_slot_bytes_per_second", "Copy rate per slot", labels=["slot"])
    for slot in slots:
        state.add_metric([str(slot["slot"]), str(slot["state"])], 1)
        rate.add_metric([str(slot["slot"])], float(slot.get("rate_bps") or 0.0))
    yield state
    yield rate


def registry(status: Status, figures: Callable[[], Figures], clock: Clock) -> CollectorRegistry:
    found = CollectorRegistry(auto_describe=False)
    found.register(DockdCollector(status, figures, clock))
    return found


def render(reg: CollectorRegistry) -> bytes:
    return generate_latest(reg)


def write_textfile(reg: CollectorRegistry, path: Path) -> None:
    """For node-exporter's textfile collector: written whole, then renamed into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(render(reg))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
