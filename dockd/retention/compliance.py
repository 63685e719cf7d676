"""The 24-hour offload rule (R1), pure.

001_a4d0be362abbcb47.txt Art. 26: recordings may not stay with the officer
and must be stored in the agency system within 24 hours of being made.
"""

from __future__ import annotations

from datetime import datetime, timedelta

OFFLOAD_WINDOW = timedelta(hours=24)


def offload_deadline(recorded_end: datetime) -> datetime:
    return recorded_end + OFFLOAD_WINDOW


def is_late(recorded_end: datetime, ingested_at: datetime) -> bool:
    return ingested_at > offload_deadline(recorded_end)
