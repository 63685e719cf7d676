"""What goes where in the bucket, locked until when, tried again when: pure.

Layout under a dock's prefix (default: the log's origin, so that docks share
a bucket and a central site tells them apart):

  <prefix>/objects/sha256/ab/<sha256>        a store object, under its content key
  <prefix>/log/<first>-<last>.jsonl          log entries first..last (12 digits each)
  <prefix>/checkpoints/<size>.txt            each signed checkpoint, by tree size
  <prefix>/keys/<key id>.txt                 each public key (name+id+key)
  <prefix>/catalog/session-<id>.json         a docking session's catalog extract

Object Lock in COMPLIANCE mode can only be made longer, never shorter (the
server refuses, and dockd never asks): `retain_until` is the later of what is
set and what the recording's retention wants; `permanent` footage is locked
to a horizon that a periodic pass pushes further out.
"""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta

from dockd.errors import UsageError

SHA256 = re.compile(r"[0-9a-f]{64}")
# How far ahead permanent footage is locked; extended before it comes near.
PERMANENT_HORIZON = timedelta(days=10 * 366)
PERMANENT_RENEW_BEFORE = timedelta(days=366)


def clean_prefix(prefix: str) -> str:
    clean = prefix.strip("/")
    if not clean or any(part in ("", ".", "..") for part in clean.split("/")):
        raise UsageError(f"replicate.prefix: {prefix!r} is not a key prefix", field="prefix")
    return clean


def object_key(prefix: str, sha256: str) -> str:
    if not SHA256.fullmatch(sha256):
        raise ValueError(f"not a SHA-256 in hex: {sha256!r}")
    return f"{clean_prefix(prefix)}/objects/sha256/{sha256[:2]}/{sha256}"


def log_segment_key(prefix: str, first: int, last: int) -> str:
    if not 1 <= first <= last:
        raise ValueError(f"not a range of log entries: {first}..{last}")
    return f"{clean_prefix(prefix)}/log/{first:012d}-{last:012d}.jsonl"


def checkpoint_key(prefix: str, size: int) -> str:
    if size < 0:
        raise ValueError(f"not a tree size: {size}")
    return f"{clean_prefix(prefix)}/checkpoints/{size:012d}.txt"


def retain_until(
    tier: str | None,
    expires_at: datetime | None,
    now: datetime,
    current: datetime | None = None,
) -> datetime:
    """Until when the bucket must keep an object: its retention's end (permanent: the
    horizon), never earlier than `current` (what the bucket holds: COMPLIANCE only
    grows). Whole seconds, rounded up, as S3 keeps them."""
    wanted = expires_at
    if tier == "permanent" or wanted is None:
        wanted = now + PERMANENT_HORIZON
    if wanted.microsecond:
        wanted = wanted.replace(microsecond=0) + timedelta(seconds=1)
    return max(wanted, current) if current is not None else wanted


def needs_extension(
    tier: str | None, expires_at: datetime | None, now: datetime, current: datetime
) -> bool:
    """Whether the lock must be pushed out: a later end is wanted, or a permanent
    object's lock has less than the horizon less PERMANENT_RENEW_BEFORE left (so it
    is renewed about once a year, and at once when a tier becomes permanent)."""
    if tier == "permanent" or expires_at is None:
        return current - now < PERMANENT_HORIZON - PERMANENT_RENEW_BEFORE
    return retain_until(tier, expires_at, now) > current


def backoff(
    attempt: int, base_s: float = 5.0, cap_s: float = 3600.0, rng: random.Random | None = None
) -> float:
    """Seconds before try number `attempt` (1 = the first retry): "full jitter"
    exponential back-off, so that docks that lost the same bucket do not all come
    back at the same instant."""
    if attempt < 1:
        return 0.0
    ceiling = min(cap_s, base_s * 2 ** min(attempt - 1, 30))
    return (rng or random).uniform(0, ceiling)


def public_key_key(prefix: str, key_id: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{8}", key_id):
        raise ValueError(f"not a key id: {key_id!r}")
    return f"{clean_prefix(prefix)}/keys/{key_id}.txt"


def session_key(prefix: str, session_id: int) -> str:
    if session_id < 1:
        raise ValueError(f"not a session id: {session_id}")
    return f"{clean_prefix(prefix)}/catalog/session-{session_id:012d}.json"
