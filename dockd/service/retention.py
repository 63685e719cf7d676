"""Retention (seed rule R4): the policy and its application, plan, upcoming, sweep, restore."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import structlog

from dockd.catalog import Recording
from dockd.clock import isoformat_utc, parse_utc
from dockd.errors import UsageError
from dockd.integrity.chain import LogEntry
from dockd.retention.plan import Candidate, Plan, plan
from dockd.retention.policy import Facts, Policy, ceil_second, decide, floor_second
from dockd.service.base import ServiceBase, _clean
from dockd.service.results import Moved, Restored
from dockd.service.values import SweepReport

log = structlog.get_logger("dockd.service")

# At most this many recording ids in one retention entry (a policy change
# over a large catalog writes several).
RETENTION_ENTRY_IDS = 10_000
# Tombstoned objects unlinked together (one fsync per store directory each time).
UNLINK_GROUP = 10_000


class Retention(ServiceBase):
    """Policy application, plan, upcoming, sweep, restore."""

    # -- retention (seed rule R4) ------------------------------------------------------

    @property
    def policy(self) -> Policy:
        cfg = self.config.retention
        return Policy(cfg.preset, cfg.grace_days)

    def apply_retention_policy(self) -> None:
        """Log the policy this writer applies; give every recording its tier under it.

        Runs at each writing start: after a policy change (config) every
        tier is recomputed, and recordings from before schema 5 get theirs.
        """
        policy = self.policy
        last = self.catalog.last_entry_of_kind("retention.policy")
        current = {
            "version": policy.version,
            "preset": policy.preset,
            "routine_tier": policy.routine_tier,
            "grace_days": policy.grace_days,
        }
        logged = LogEntry.from_bytes(last).data if last is not None else None
        if logged is not None:
            logged = {k: v for k, v in logged.items() if k != "by"}
        untiered = self.catalog.has_untiered()
        if logged == current and not untiered:
            return
        with self.catalog.transaction():
            entry = None
            if logged != current:
                entry = self._log("retention.policy", {**current, "by": "config"})
            reason = "retention policy " + (
                f"changed from {logged['version']}" if logged else "first applied"
            )
            moved = self._update_retention(None, reason, entry.seq if entry else None, "config")
        log.info("retention.policy", version=policy.version, **moved.as_json())

    def _update_retention(
        self, ids: list[int] | None, reason: str, trigger: int | None, actor: str | None
    ) -> Moved:
        """Recompute tier, expiry and protection; log what moved. Caller holds the transaction.

        A pending recording that is no longer deletable (held, an open case,
        a longer tier) goes back to live in the same entry.
        """
        policy = self.policy
        now = self.clock.now()
        tiers: dict[str, list[int]] = {}
        kept: list[int] = []
        changes: list[tuple[int, dict[str, Any]]] = []
        for row in self.catalog.retention_facts(ids):
            categories = set(json.loads(row["categories"]))
            for text in json.loads(row["case_categories"] or "[]"):
                categories |= set(json.loads(text))
            keep = row["keep_until"]
            facts = Facts(
                parse_utc(row["recorded_end"]),
                frozenset(categories),
                open_case=bool(row["open_case"]),
                held=bool(row["held"]),
                keep_until=parse_utc(keep) if keep else None,
            )
            decision = decide(facts, policy)
            expires = isoformat_utc(decision.expires_at) if decision.expires_at else None
            values: dict[str, Any] = {}
            if (decision.tier, expires) != (row["tier"], row["expires_at"]):
                values |= {"tier": decision.tier, "expires_at": expires}
                tiers.setdefault(decision.tier, []).append(int(row["id"]))
            if row["retention_state"] == "pending_deletion" and not decision.deletable(now):
                values |= {"retention_state": "live", "pending_since": None}
                kept.append(int(row["id"]))
            if values:
                changes.append((int(row["id"]), values))
        self.catalog.update_retention_many(changes)
        ids_moved = [(tier, i) for tier, group in sorted(tiers.items()) for i in group]
        for start in range(0, max(len(ids_moved), len(kept)), RETENTION_ENTRY_IDS):
            chunk: dict[str, list[int]] = {}
            for tier, i in ids_moved[start : start + RETENTION_ENTRY_IDS]:
                chunk.setdefault(tier, []).append(i)
            self._log(
                "retention.updated",
                {
                    "reason": reason,
                    "trigger": trigger,
                    "policy_version": policy.version,
                    "tiers": chunk,
                    "kept": kept[start : start + RETENTION_ENTRY_IDS],
                    "by": actor,
                },
                now,
            )
        if ids_moved:
            self._extend_due.set()  # a bucket's locks may have to grow (the uploader looks)
        return Moved(len(ids_moved), len(kept))

    def retention_plan(self, as_of: datetime | None = None) -> Plan:
        """What a sweep at `as_of` (default now) would do; changes nothing."""
        as_of = as_of or self.clock.now()
        rows = self.catalog.expired_candidates(isoformat_utc(floor_second(as_of)))
        protected = self.catalog.protected_ids()
        candidates = [Candidate.from_row(r, protected.get(int(r["id"]), ())) for r in rows]
        refs = self.catalog.live_references([c.sha256 for c in candidates])
        policy = self.policy
        return plan(
            candidates, refs, as_of, grace_days=policy.grace_days, policy_version=policy.version
        )

    def upcoming(self, days: float, as_of: datetime | None = None) -> list[Recording]:
        """Live recordings whose expiry falls within `days` (to tag or hold in time)."""
        as_of = as_of or self.clock.now()
        until = isoformat_utc(ceil_second(as_of + timedelta(days=days)))
        protected = self.catalog.protected_ids()
        expiring = self.catalog.expiring_ids(isoformat_utc(floor_second(as_of)), until)
        ids = [i for i in expiring if i not in protected]
        return self.catalog.recordings_by_id(ids)

    def sweep(
        self,
        as_of: datetime | None = None,
        *,
        dry_run: bool = False,
        actor: str | None = None,
        batch: int = 500,
    ) -> SweepReport:
        """Apply the retention plan: mark expired recordings pending, delete those past grace.

        Deletion order (docs/FORMAT.md): each batch's tombstones and
        `retention.deleted` entries are committed first, then the objects no
        live row uses are unlinked. Each row is re-checked inside its batch's
        transaction, so a hold or tag made meanwhile always wins.
        """
        now = self.clock.now()
        as_of = as_of or now
        if as_of > now and not dry_run:
            raise UsageError(
                f"as_of {isoformat_utc(as_of)} is in the future: that would delete early "
                "(ask for a dry run to see what will expire)"
            )
        the_plan = self.retention_plan(as_of)
        if dry_run:
            return SweepReport(the_plan, (), (), (), dry_run=True)
        policy = self.policy
        marked: list[int] = []
        delete_after = isoformat_utc(now + timedelta(days=policy.grace_days))
        pending = [c.id for c in the_plan.mark_pending]
        for start in range(0, len(pending), RETENTION_ENTRY_IDS):
            with self.catalog.transaction():
                fresh = self._still_deletable(pending[start : start + RETENTION_ENTRY_IDS], as_of)
                chunk = [i for i, row in fresh.items() if row["retention_state"] == "live"]
                if not chunk:
                    continue
                self._log(
                    "retention.pending",
                    {
                        "recordings": chunk,
                        "as_of": isoformat_utc(as_of),
                        "delete_after": delete_after,
                        "policy_version": policy.version,
                        "by": actor,
                    },
                    now,
                )
                pending_values = {
                    "retention_state": "pending_deletion",
                    "pending_since": isoformat_utc(now),
                }
                self.catalog.update_retention_many([(i, pending_values) for i in chunk])
                marked += chunk
        deleted: list[int] = []
        removed: list[str] = []
        unlink: list[str] = []
        deletions = list(the_plan.delete)
        if deletions:
            # Until the sweep ends, a crash may leave tombstoned objects on
            # disk; the marker tells the next start-up to look (recover()).
            self.store.mark_sweep(True)
        for start in range(0, len(deletions), batch):
            group = deletions[start : start + batch]
            done: list[tuple[int, str, bool]] = []
            with self.catalog.transaction():
                fresh = self._still_deletable([d.candidate.id for d in group], as_of)
                going = [
                    d
                    for d in group
                    if d.candidate.id in fresh
                    and fresh[d.candidate.id]["retention_state"] == "pending_deletion"
                ]
                tombstone = {"retention_state": "deleted", "deleted_at": isoformat_utc(now)}
                self.catalog.update_retention_many([(d.candidate.id, tombstone) for d in going])
                # Counted now, with this batch's rows tombstones: a hold that came
                # in since the plan may keep a sharer (and so the bytes) alive.
                alive = self.catalog.live_references([d.candidate.sha256 for d in going])
                # The object goes with the last of this batch's recordings using it.
                final = {d.candidate.sha256: d.candidate.id for d in going}
                for d in going:
                    row = fresh[d.candidate.id]
                    sha = d.candidate.sha256
                    last = alive.get(sha, 0) == 0 and final[sha] == d.candidate.id
                    self._log(
                        "retention.deleted",
                        {
                            "recording": d.candidate.id,
                            "sha256": d.candidate.sha256,
                            # As the row is now, inside this transaction.
                            "tier": row["tier"],
                            "expires_at": row["expires_at"],
                            "pending_since": row["pending_since"],
                            "reason": d.reason,
                            "policy_version": policy.version,
                            "object_removed": last,
                            "by": actor,
                        },
                        now,
                    )
                    done.append((d.candidate.id, sha, last))
            deleted += [i for i, _, _ in done]
            # Only now, with the tombstones committed: the bytes (FORMAT.md),
            # gathered so that each store directory is fsynced once per group.
            unlink += [sha for _, sha, last in done if last]
            if len(unlink) >= UNLINK_GROUP or start + batch >= len(deletions):
                removed += self.store.remove_objects(sorted(set(unlink)))
                unlink = []
        if deletions:
            self.store.mark_sweep(False)
        # Objects only tombstones refer to but still on disk (an unlink the file
        # system lost, a store restored from a backup): gone with each sweep.
        stray = [sha for sha in self.catalog.tombstoned_objects() if self.store.has(sha)]
        for sha in self.store.remove_objects(stray):
            log.warning("retention.stray_object_removed", sha256=sha)
            removed.append(sha)
        for i in deleted:
            log.info("retention.deleted", recording=i)
        log.info(
            "retention.sweep",
            as_of=isoformat_utc(as_of),
            marked=len(marked),
            deleted=len(deleted),
            objects_removed=len(removed),
        )
        if marked or deleted:
            self.checkpoint()
        return SweepReport(the_plan, tuple(marked), tuple(deleted), tuple(removed))

    def _still_deletable(self, ids: list[int], as_of: datetime) -> dict[int, dict[str, Any]]:
        """The rows among `ids` that are, inside this transaction, expired and unprotected."""
        result: dict[int, dict[str, Any]] = {}
        cutoff = isoformat_utc(floor_second(as_of))
        for row in self.catalog.retention_facts(ids):
            expires = row["expires_at"]
            if expires is None or expires > cutoff or row["held"] or row["open_case"]:
                continue
            result[int(row["id"])] = row
        return result

    def restore(self, recording_id: int, *, reason: str, actor: str | None = None) -> Restored:
        """Take a recording back from pending deletion; it is not expired again for restore_days."""
        reason = _clean(reason, "reason")
        now = self.clock.now()
        keep_until = isoformat_utc(
            ceil_second(now + timedelta(days=self.config.retention.restore_days))
        )
        with self.catalog.transaction():
            (rec,) = self._existing([recording_id])
            if rec.retention_state == "deleted":
                raise UsageError(
                    f"recording {rec.id} was deleted at {rec.deleted_at}: its bytes are gone, "
                    "only the tombstone (hash and labels) remains"
                )
            if rec.retention_state != "pending_deletion":
                raise UsageError(
                    f"recording {rec.id} is not pending deletion (it is {rec.retention_state}); "
                    "to keep it longer, tag it or hold it"
                )
            entry = self._log(
                "retention.restored",
                {"recording": rec.id, "reason": reason, "keep_until": keep_until, "by": actor},
                now,
            )
            self.catalog.update_retention(
                rec.id, {"retention_state": "live", "pending_since": None, "keep_until": keep_until}
            )
            moved = self._update_retention([rec.id], "retention.restored", entry.seq, actor)
        log.info("retention.restored", recording=rec.id, keep_until=keep_until, entry=entry.seq)
        return Restored(rec.id, keep_until, entry.seq, moved)
