"""How far behind replication is: the queue's figures, and when that is an alert (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ReplicationStatus:
    bucket: str
    prefix: str
    pending: int  # rows waiting (pending or uploading)
    pending_bytes: int  # bytes known to wait (store objects; log pieces count once built)
    uploading: int
    verified: int
    verified_bytes: int
    oldest_queued_at: datetime | None  # the oldest row not yet verified
    bytes_per_second: float | None  # over the last 100 uploads
    last_error: str | None
    last_error_key: str | None
    verified_checkpoints: int

    def oldest_age_hours(self, now: datetime) -> float | None:
        if self.oldest_queued_at is None:
            return None
        return max(0.0, (now - self.oldest_queued_at).total_seconds() / 3600)

    def behind(self, now: datetime, alert_after_hours: float) -> bool:
        """The oldest upload has waited longer than `replicate.alert_after_hours`."""
        age = self.oldest_age_hours(now)
        return age is not None and age > alert_after_hours

    def as_json(self, now: datetime) -> dict[str, Any]:
        age = self.oldest_age_hours(now)
        return {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "queue": self.pending + self.uploading,
            "pending": self.pending,
            "pending_bytes": self.pending_bytes,
            "uploading": self.uploading,
            "verified": self.verified,
            "verified_bytes": self.verified_bytes,
            "oldest_pending_hours": None if age is None else round(age, 3),
            "bytes_per_second": None
            if self.bytes_per_second is None
            else round(self.bytes_per_second),
            "last_error": self.last_error,
            "last_error_key": self.last_error_key,
            "verified_checkpoints": self.verified_checkpoints,
        }
