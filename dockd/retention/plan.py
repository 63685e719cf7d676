"""What a sweep would do, pure: candidates and the time in, a plan out.

The sweep (Service.sweep) reads the candidates from the catalog, asks this
module what to do, and carries the plan out. Two steps, as docs/FORMAT.md
"Retention" says: an expired, unprotected recording is first marked
pending deletion; once its grace period is over it is deleted, and its
object with it when no recording still alive shares the bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from dockd.clock import isoformat_utc, parse_utc


@dataclass(frozen=True)
class Candidate:
    """A live or pending recording whose stored expiry has passed."""

    id: int
    sha256: str
    tier: str
    expires_at: datetime
    state: str  # "live" | "pending_deletion"
    pending_since: datetime | None
    # Why it may not go now: "hold", "open_case" (empty: nothing protects it).
    protected_by: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: Mapping[str, object], protected_by: tuple[str, ...]) -> Candidate:
        pending = row.get("pending_since")
        return cls(
            id=int(str(row["id"])),
            sha256=str(row["sha256"]),
            tier=str(row["tier"]),
            expires_at=parse_utc(str(row["expires_at"])),
            state=str(row["retention_state"]),
            pending_since=parse_utc(str(pending)) if pending else None,
            protected_by=protected_by,
        )

    def as_json(self) -> dict[str, object]:
        return {
            "recording": self.id,
            "sha256": self.sha256,
            "tier": self.tier,
            "expires_at": isoformat_utc(self.expires_at),
            "state": self.state,
            "pending_since": isoformat_utc(self.pending_since) if self.pending_since else None,
            "protected_by": list(self.protected_by),
        }


@dataclass(frozen=True)
class Deletion:
    candidate: Candidate
    # False when another recording still alive shares the bytes: the row
    # becomes a tombstone, the object stays.
    remove_object: bool
    reason: str

    def as_json(self) -> dict[str, object]:
        return {
            **self.candidate.as_json(),
            "remove_object": self.remove_object,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Plan:
    as_of: datetime
    policy_version: str
    grace_days: int
    # Expired and unprotected, live now: become pending_deletion.
    mark_pending: tuple[Candidate, ...]
    # Pending for the whole grace period, still expired and unprotected.
    delete: tuple[Deletion, ...]
    # Pending, grace period not over yet: (candidate, when it may be deleted).
    waiting: tuple[tuple[Candidate, datetime], ...]
    # Expired but protected (hold, open case): not touched.
    protected: tuple[Candidate, ...]

    @property
    def empty(self) -> bool:
        return not (self.mark_pending or self.delete)

    def as_json(self) -> dict[str, object]:
        return {
            "as_of": isoformat_utc(self.as_of),
            "policy_version": self.policy_version,
            "grace_days": self.grace_days,
            "mark_pending": [
                {**c.as_json(), "delete_after": isoformat_utc(self.delete_after(self.as_of))}
                for c in self.mark_pending
            ],
            "delete": [d.as_json() for d in self.delete],
            "waiting": [
                {**c.as_json(), "delete_after": isoformat_utc(when)} for c, when in self.waiting
            ],
            "protected": [c.as_json() for c in self.protected],
        }

    def delete_after(self, pending_since: datetime) -> datetime:
        return pending_since + timedelta(days=self.grace_days)


def plan(
    candidates: Iterable[Candidate],
    live_references: Mapping[str, int],
    as_of: datetime,
    *,
    grace_days: int,
    policy_version: str,
) -> Plan:
    """Decide, for each expired candidate, what the sweep does at `as_of`.

    `live_references[sha]` counts the recordings not yet deleted that use
    the object, the candidates included; an object is removed with the last
    of them that this plan deletes. Candidates whose expiry is after
    `as_of` are ignored (the caller may pass a superset).
    """
    grace = timedelta(days=grace_days)
    mark: list[Candidate] = []
    waiting: list[tuple[Candidate, datetime]] = []
    protected: list[Candidate] = []
    due: list[Candidate] = []
    for c in sorted(candidates, key=lambda c: (c.expires_at, c.id)):
        if c.expires_at > as_of:
            continue
        if c.protected_by:
            protected.append(c)
        elif c.state == "live" or c.pending_since is None:
            mark.append(c)
        elif c.pending_since + grace <= as_of:
            due.append(c)
        else:
            waiting.append((c, c.pending_since + grace))
    remaining = dict(live_references)
    deletions: list[Deletion] = []
    for c in due:
        remaining[c.sha256] = remaining.get(c.sha256, 1) - 1
        assert c.pending_since is not None
        deletions.append(
            Deletion(
                c,
                remove_object=remaining[c.sha256] <= 0,
                reason=(
                    f"tier {c.tier} expired {isoformat_utc(c.expires_at)}; pending deletion "
                    f"since {isoformat_utc(c.pending_since)}, {grace_days} days' grace over"
                ),
            )
        )
    return Plan(
        as_of, policy_version, grace_days, tuple(mark), tuple(deletions), tuple(waiting),
        tuple(protected),
    )  # fmt: skip
