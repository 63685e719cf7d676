"""What lock each store object of a dock needs, replayed from its log (pure).

`dockd verify --bucket` (central.py) holds each object's retain-until against
this: the latest need of the recordings sharing it, their tier and keep_until
read as integrity/replay.py reads them, held or open-case recordings at least
until now, and nothing for recordings the sweep deleted once expired.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from dockd.clock import isoformat_utc, parse_utc
from dockd.integrity.chain import LogEntry
from dockd.integrity.replay import Replay
from dockd.model import DELETED
from dockd.replicate.keys import SHA256
from dockd.retention.policy import TIER_MONTHS, Tier, expiry


@dataclass
class Need:
    """What one object must be: its size, and until when it must stay locked."""

    size: int
    recordings: list[int] = field(default_factory=list)
    # None: no lock needed any more (only deleted, expired recordings use it).
    until: datetime | None = None
    why: str = ""
    may_be_absent: bool = True
    # When the latest recording that uses it was ingested (its entry's time).
    ingested: datetime | None = None

    def want(self, until: datetime | None, why: str) -> None:
        """Several recordings can share the object: the latest need wins."""
        if until is not None and (self.until is None or until > self.until):
            self.until, self.why = until, why


def needs_of(parsed: dict[int, LogEntry], now: datetime) -> tuple[dict[str, Need], list[int]]:
    """sha256 -> what its object must be, from every recording.ingested entry; and the
    seqs of ingest entries with no id or hash (malformed)."""
    replay = Replay()
    for seq in sorted(parsed):
        replay.apply(seq, parsed[seq])
    protected = protected_ids(replay)
    needs: dict[str, Need] = {}
    malformed: list[int] = []
    for seq, entry in sorted(parsed.items()):
        if entry.kind != "recording.ingested":
            continue
        rec, sha, size = (entry.data.get(k) for k in ("recording", "sha256", "size"))
        if type(rec) is not int or not isinstance(sha, str) or not SHA256.fullmatch(sha):
            malformed.append(seq)
            continue
        need = needs.setdefault(sha, Need(size if type(size) is int else -1))
        need.recordings.append(rec)
        with contextlib.suppress(ValueError):
            need.ingested = parse_utc(entry.time)
        until, why = lock_needed(rec, entry.data, replay, rec in protected, now)
        if until is not None:
            need.may_be_absent = False
        need.want(until, f"recording {rec}: {why}")
    return needs, malformed


def protected_ids(replay: Replay) -> set[int]:
    """Recordings an active hold covers (directly or through its case) or an open case links."""
    linked: dict[str, set[int]] = {}
    for case, rec in replay.links:
        linked.setdefault(case, set()).add(rec)
    protected: set[int] = set()
    for hold in replay.holds.values():
        if hold.released is None:
            protected |= linked.get(str(hold.case), set()) if hold.case else set(hold.recordings)
    for case, recs in linked.items():
        found = replay.cases.get(case)
        if found is not None and found.state == "open":
            protected |= recs
    return protected


def lock_needed(
    rec: int, ingest: dict[str, Any], replay: Replay, protected: bool, now: datetime
) -> tuple[datetime | None, str]:
    """(locked at least until, why) for one recording, its retention read as replay.py
    reads it; None: deleted by the sweep and expired, its object may be gone."""
    state = replay.retention.get(rec)
    try:
        if state is None or not state.tier_seq:
            # No retention.updated names it: the ingest entry's tier and expiry hold.
            tier, text = ingest.get("tier"), ingest.get("expires_at")
            expires = parse_utc(text) if isinstance(text, str) else None
        else:
            tier = state.tier
            keep = parse_utc(state.keep_until) if state.keep_until else None
            end = parse_utc(str(ingest.get("recorded_end")))
            expires = expiry(cast(Tier, tier), end, keep) if tier in TIER_MONTHS else None
    except ValueError:
        return now, "a logged time unreadable: kept at least until now"
    deleted = state is not None and state.state == DELETED and not protected
    if deleted and expires is not None and expires <= now:
        return None, "deleted"
    if tier not in TIER_MONTHS or expires is None:
        return now, f"tier {tier or 'not logged'}: kept for ever"
    if protected:
        return max(expires, now), "held or linked to an open case"
    return expires, f"tier {tier} expires {isoformat_utc(expires)}"
