"""Labels: tags, cases, legal holds, gap explanations, interruptions, spot checks."""

from __future__ import annotations

import os
import random
from typing import Any

import structlog

from dockd.catalog import Recording
from dockd.clock import isoformat_utc, parse_utc
from dockd.errors import UsageError
from dockd.retention.continuity import (
    Clip,
    GapExplanation,
    Interruption,
    interruptions,
    parse_gap_id,
)
from dockd.retention.policy import check_categories
from dockd.service.base import ServiceBase, _clean
from dockd.service.results import (
    Case,
    CaseChanged,
    CaseDetail,
    GapExplained,
    Hold,
    HoldChanged,
    SpotCheck,
    Tagged,
)

log = structlog.get_logger("dockd.service")


class Labels(ServiceBase):
    """Tags, cases, holds, gap explanations, interruptions, spot checks."""

    # -- labels and cases (seed rule R2) -------------------------------------------

    def _existing(self, ids: list[int]) -> list[Recording]:
        if not ids:
            raise UsageError("name at least one recording id")
        unique = sorted(set(ids))
        found = self.catalog.recordings_by_id(unique)
        missing = sorted(set(unique) - {r.id for r in found})
        if missing:
            raise UsageError(f"no recording {', '.join(map(str, missing))} (see dockd list)")
        return found

    def tag(
        self,
        ids: list[int],
        *,
        cause: str | None = None,
        parties: tuple[str, ...] = (),
        categories: tuple[str, ...] = (),
        remove_categories: tuple[str, ...] = (),
        note: str | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> Tagged:
        """Label recordings: cause (replaces), parties and categories (added), a note.

        Removing a category can shorten retention, so it needs a reason.
        Nothing about the footage changes; one entry records the change and,
        if tiers moved, a `retention.updated` entry follows it.
        """
        added = check_categories(categories)
        dropped = check_categories(remove_categories)
        if added & dropped:
            raise UsageError(f"category {sorted(added & dropped)[0]} both added and removed")
        if dropped and not (reason or "").strip():
            raise UsageError(
                "removing a category needs a reason (it may shorten retention)", field="reason"
            )
        parties = tuple(_clean(p, "party") for p in parties)
        cause = _clean(cause, "cause") if cause is not None else None
        note = _clean(note, "note") if note is not None else None
        if cause is None and not (parties or added or dropped or note):
            raise UsageError("nothing to tag: give a cause, a party, a category or a note")
        now = self.clock.now()
        with self.catalog.transaction():
            rows = self._existing(ids)
            entry = self._log(
                "recording.tagged",
                {
                    "recordings": [r.id for r in rows],
                    "cause": cause,
                    "parties_added": sorted(set(parties)),
                    "categories_added": sorted(added),
                    "categories_removed": sorted(dropped),
                    "note": note,
                    "reason": reason,
                    "by": actor,
                },
                now,
            )
            for r in rows:
                values: dict[str, Any] = {
                    "parties": sorted(set(r.parties) | set(parties)),
                    "categories": sorted((set(r.categories) | added) - dropped),
                }
                if cause is not None:
                    values["cause"] = cause
                if note is not None:
                    values["notes"] = [
                        *r.notes,
                        {"text": note, "by": actor, "at": isoformat_utc(now), "entry": entry.seq},
                    ]
                self.catalog.update_labels(r.id, values)
            moved = self._update_retention(
                [r.id for r in rows], "recording.tagged", entry.seq, actor
            )
        log.info("recording.tagged", recordings=len(rows), entry=entry.seq, **moved.as_json())
        return Tagged(tuple(r.id for r in rows), entry.seq, moved)

    def create_case(
        self,
        no: str,
        *,
        cause: str,
        parties: tuple[str, ...] = (),
        categories: tuple[str, ...] = (),
        actor: str | None = None,
    ) -> CaseChanged:
        no = _clean(no, "case number")
        cause = _clean(cause, "cause")
        chosen = check_categories(categories)
        now = self.clock.now()
        with self.catalog.transaction():
            if self.catalog.case(no) is not None:
                raise UsageError(f"case {no} exists already (dockd case show {no})")
            facts = {
                "case": no,
                "cause": cause,
                "parties": sorted({_clean(p, "party") for p in parties}),
                "categories": sorted(chosen),
            }
            entry = self._log("case.created", {**facts, "by": actor}, now)
            self.catalog.insert_case(
                {
                    "no": no,
                    "cause": cause,
                    "parties": facts["parties"],
                    "categories": facts["categories"],
                    "state": "open",
                    "created_at": isoformat_utc(now),
                    "log_seq": entry.seq,
                }
            )
        log.info("case.created", case=no, entry=entry.seq)
        return CaseChanged(no, entry.seq)

    def _case(self, no: str) -> dict[str, Any]:
        case = self.catalog.case(no)
        if case is None:
            raise UsageError(f"no case {no!r} (create it first: dockd case create)")
        return case

    def link_case(
        self, no: str, ids: list[int], *, reason: str | None = None, actor: str | None = None
    ) -> CaseChanged:
        now = self.clock.now()
        with self.catalog.transaction():
            self._case(no)
            rows = self._existing(ids)
            linked = {int(link["recording_id"]) for link in self.catalog.case_links(no)}
            new = [r.id for r in rows if r.id not in linked]
            if not new:
                raise UsageError(f"every recording named is linked to case {no} already")
            entry = self._log(
                "case.linked", {"case": no, "recordings": new, "reason": reason, "by": actor}, now
            )
            self.catalog.link(no, new, isoformat_utc(now), entry.seq)
            moved = self._update_retention(new, "case.linked", entry.seq, actor)
        log.info("case.linked", case=no, recordings=len(new), entry=entry.seq)
        return CaseChanged(no, entry.seq, linked=tuple(new), moved=moved)

    def unlink_case(
        self, no: str, ids: list[int], *, reason: str, actor: str | None = None
    ) -> CaseChanged:
        if not reason.strip():
            raise UsageError("unlinking needs a reason (it may shorten retention)", field="reason")
        now = self.clock.now()
        with self.catalog.transaction():
            self._case(no)
            linked = {int(link["recording_id"]) for link in self.catalog.case_links(no)}
            gone = sorted(set(ids) & linked)
            if not gone:
                raise UsageError(f"none of these recordings is linked to case {no}")
            entry = self._log(
                "case.unlinked",
                {"case": no, "recordings": gone, "reason": reason, "by": actor},
                now,
            )
            self.catalog.unlink(no, gone)
            moved = self._update_retention(gone, "case.unlinked", entry.seq, actor)
        log.info("case.unlinked", case=no, recordings=len(gone), entry=entry.seq)
        return CaseChanged(no, entry.seq, unlinked=tuple(gone), moved=moved)

    def set_case_state(
        self, no: str, state: str, *, reason: str, actor: str | None = None
    ) -> CaseChanged:
        """Close (state "closed") or reopen ("open") a case; its recordings' retention follows."""
        if state not in ("open", "closed"):
            raise UsageError(f"a case is open or closed, not {state!r}")
        if not reason.strip():
            raise UsageError("closing or reopening a case needs a reason", field="reason")
        now = self.clock.now()
        kind = "case.closed" if state == "closed" else "case.reopened"
        with self.catalog.transaction():
            case = self._case(no)
            if case["state"] == state:
                raise UsageError(f"case {no} is {state} already")
            entry = self._log(kind, {"case": no, "reason": reason, "by": actor}, now)
            self.catalog.update_case(
                no, {"state": state, "closed_at": isoformat_utc(now) if state == "closed" else None}
            )
            ids = [int(link["recording_id"]) for link in self.catalog.case_links(no)]
            moved = self._update_retention(ids, kind, entry.seq, actor)
        log.info(kind, case=no, entry=entry.seq)
        return CaseChanged(no, entry.seq, state=state, moved=moved)

    def case_detail(self, no: str) -> CaseDetail:
        case = self._case(no)
        ids = [int(link["recording_id"]) for link in self.catalog.case_links(no)]
        return CaseDetail(
            case=no,
            **_case_facts(case),
            recordings=tuple(self.catalog.recordings_by_id(ids)),
            holds=tuple(h for h in self.holds() if h.case == no),
        )

    def cases(self) -> tuple[Case, ...]:
        counts = self.catalog.case_link_counts()
        return tuple(
            Case(no=c["no"], **_case_facts(c), recordings=int(counts.get(c["no"], 0)))
            for c in self.catalog.cases()
        )

    # -- legal holds ----------------------------------------------------------------

    def set_hold(
        self,
        *,
        case: str | None = None,
        ids: list[int] | None = None,
        reason: str,
        actor: str | None = None,
    ) -> HoldChanged:
        """Hold a case (every recording linked to it, now or later) or listed recordings."""
        if (case is None) == (not ids):
            raise UsageError("a hold covers either a case or recording ids, not both or neither")
        reason = _clean(reason, "reason")
        now = self.clock.now()
        with self.catalog.transaction():
            targets: list[int] = []
            if case is not None:
                self._case(case)
            else:
                targets = [r.id for r in self._existing(list(ids or []))]
                gone = [r.id for r in self.catalog.recordings_by_id(targets) if r.deleted]
                if gone:
                    raise UsageError(
                        f"recording {', '.join(map(str, gone))} was deleted by the retention "
                        "sweep; only its tombstone is left to hold"
                    )
            hold_id = self.catalog.next_id("holds")
            entry = self._log(
                "hold.set",
                {
                    "hold": hold_id,
                    "case": case,
                    "recordings": targets,
                    "reason": reason,
                    "by": actor,
                },
                now,
            )
            self.catalog.insert_hold(
                {
                    "id": hold_id,
                    "case_no": case,
                    "reason": reason,
                    "set_at": isoformat_utc(now),
                    "set_by": actor,
                    "log_seq": entry.seq,
                },
                targets,
            )
            covered = self.catalog.held_ids(hold_id)
            moved = self._update_retention(covered, "hold.set", entry.seq, actor)
        log.info("hold.set", hold=hold_id, case=case, recordings=len(covered), entry=entry.seq)
        return HoldChanged(hold_id, tuple(covered), entry.seq, moved)

    def release_hold(self, hold_id: int, *, reason: str, actor: str | None = None) -> HoldChanged:
        reason = _clean(reason, "reason")
        now = self.clock.now()
        with self.catalog.transaction():
            hold = self.catalog.hold(hold_id)
            if hold is None:
                raise UsageError(f"no hold {hold_id} (dockd hold list)")
            if hold["released_at"] is not None:
                raise UsageError(f"hold {hold_id} was released at {hold['released_at']}")
            entry = self._log(
                "hold.released", {"hold": hold_id, "reason": reason, "by": actor}, now
            )
            self.catalog.release_hold(
                hold_id,
                {
                    "released_at": isoformat_utc(now),
                    "released_by": actor,
                    "release_reason": reason,
                    "release_log_seq": entry.seq,
                },
            )
            covered = self.catalog.held_ids(hold_id)
            moved = self._update_retention(covered, "hold.released", entry.seq, actor)
        log.info("hold.released", hold=hold_id, entry=entry.seq)
        return HoldChanged(hold_id, tuple(covered), entry.seq, moved)

    def holds(self) -> tuple[Hold, ...]:
        return tuple(
            Hold(
                hold=int(h["id"]),
                case=h["case_no"],
                recordings=tuple(self.catalog.held_ids(int(h["id"]))),
                reason=h["reason"],
                set_at=h["set_at"],
                set_by=h["set_by"],
                active=h["released_at"] is None,
                released_at=h["released_at"],
                released_by=h["released_by"],
                release_reason=h["release_reason"],
            )
            for h in self.catalog.holds()
        )

    # -- continuity and supervision (R3, R7, R8) --------------------------------------

    def interruptions(self, serial: str | None = None) -> list[Interruption]:
        """Every sequence hole and time gap of the device(s), the ordinary pauses
        included (`Interruption.counts` is False for them): continuity.py."""
        cfg = self.config.retention
        cases: dict[int, set[str]] = {}
        for link in self.catalog.case_links():
            cases.setdefault(int(link["recording_id"]), set()).add(str(link["case_no"]))
        clips = [
            Clip(int(i), str(d), s, q, parse_utc(a), parse_utc(b), frozenset(cases.get(i, ())))
            for i, d, s, q, a, b in self.catalog.clips(serial)
        ]
        return interruptions(clips, cfg.gap_threshold_seconds, cfg.gap_max_seconds)

    def gap_explanations(self) -> dict[str, list[GapExplanation]]:
        """gap id -> its written explanations, oldest first."""
        found: dict[str, list[GapExplanation]] = {}
        for row in self.catalog.gap_explanations():
            found.setdefault(str(row["gap"]), []).append(GapExplanation(**row))
        return found

    def explain_gap(self, gap_id: str, text: str, *, actor: str | None = None) -> GapExplained:
        """Record an officer's written explanation of an interruption (002 Art. 13).

        An ordinary pause (`gap list --all`) may be explained too: whether a gap
        counts can change (case links, a segment length learnt later), its id not.
        """
        before, _ = parse_gap_id(gap_id)
        text = _clean(text, "text")
        rec = self.catalog.recording(before)
        gaps = {g.id: g for g in self.interruptions(rec.device_serial)} if rec else {}
        gap = gaps.get(gap_id.strip())
        if gap is None:
            raise UsageError(f"no interruption {gap_id!r} (dockd gap list shows them)")
        now = self.clock.now()
        with self.catalog.transaction():
            entry = self._log(
                "gap.explained",
                {"gap": gap.id, "device_serial": gap.device_serial, "text": text, "by": actor},
                now,
            )
            self.catalog.insert_gap_explanation(
                {
                    "gap": gap.id,
                    "device_serial": gap.device_serial,
                    "text": text,
                    "by": actor,
                    "at": isoformat_utc(now),
                    "log_seq": entry.seq,
                }
            )
        log.info("gap.explained", gap=gap.id, serial=gap.device_serial, entry=entry.seq)
        return GapExplained(gap.id, entry.seq)

    def spot_check(
        self,
        sample: int,
        *,
        seed: int | None = None,
        ids: list[int] | None = None,
        filters: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> SpotCheck:
        """Draw `sample` recordings (of `ids`, default all live ones) for review; log the draw.

        The draw is reproducible: the same seed over the same population
        gives the same recordings, and the entry names both (002 Art. 22).
        """
        if sample < 1:
            raise UsageError("sample: must be at least 1", field="sample")
        population = sorted(set(ids) if ids is not None else self.catalog.live_recording_ids())
        if not population:
            raise UsageError("no recordings to draw from")
        if seed is None:
            seed = int.from_bytes(os.urandom(4), "big")
        drawn = sorted(random.Random(seed).sample(population, min(sample, len(population))))
        now = self.clock.now()
        with self.catalog.transaction():
            entry = self._log(
                "report.spot_check",
                {
                    "seed": seed,
                    "sample": sample,
                    "population": len(population),
                    "recordings": drawn,
                    "filters": filters or {},
                    "by": actor,
                },
                now,
            )
        log.info("report.spot_check", seed=seed, drawn=len(drawn), entry=entry.seq)
        return SpotCheck(
            seed=seed,
            population=len(population),
            recordings=tuple(r.as_json() for r in self.catalog.recordings_by_id(drawn)),
            log_entry=entry.seq,
        )


def _case_facts(row: dict[str, Any]) -> dict[str, Any]:
    """The fields Case and CaseDetail share, from a catalog case row."""
    return {
        "cause": row["cause"],
        "parties": tuple(row["parties"]),
        "categories": tuple(row["categories"]),
        "state": row["state"],
        "created_at": row["created_at"],
        "closed_at": row["closed_at"],
        "log_seq": int(row["log_seq"]),
    }
