"""Replay of labels, cases, holds and retention from the evidence log (schema 5).

Pure, like `crosscheck`: rows and parsed entries in, problems out. The
entries are replayed in seq order to rebuild what the service must have
written (docs/FORMAT.md "Schema 5" and "Retention"); any catalog value that
differs, and any row no entry explains, is tampering:

- per recording: cause, parties, categories, notes (`recording.tagged`);
  tier, expires_at, keep_until (`recording.ingested`, `retention.updated`,
  `retention.restored`); retention_state, pending_since, deleted_at
  (`retention.pending`, `retention.updated` kept, `retention.restored`,
  `retention.deleted`, which is final);
- cases (`case.created`, `case.closed`, `case.reopened`), case links
  (`case.linked` minus `case.unlinked`), holds and their items (`hold.set`,
  `hold.released`) and gap explanations (`gap.explained`).

One pass over the entries and one over each table: linear in their number.
Tiers are taken from the log, not re-decided by the policy: the log says
what the service decided, and expires_at must follow from that tier, the
recording's logged end and its logged keep_until (policy.expiry).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeGuard, cast

from dockd.clock import isoformat_utc, parse_utc
from dockd.integrity.chain import LogEntry, Problem
from dockd.integrity.crosscheck import differences, show
from dockd.model import DELETED, LIVE, PENDING, Recording
from dockd.retention.policy import TIER_MONTHS, Tier, expiry


@dataclass(slots=True)
class _Labels:
    cause: str | None = None
    parties: set[str] = field(default_factory=set)
    categories: set[str] = field(default_factory=set)
    notes: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class _Retention:
    tier: str | None = None
    # The retention.updated entry that last set the tier (0: the ingest entry's tier).
    tier_seq: int = 0
    keep_until: str | None = None
    state: str = LIVE
    pending_since: str | None = None
    deleted_at: str | None = None
    deleted_seq: int = 0


@dataclass(slots=True)
class _Case:
    seq: int
    created_at: str
    cause: Any
    parties: Any
    categories: Any
    state: str = "open"
    closed_at: str | None = None


@dataclass(slots=True)
class _Hold:
    seq: int
    set_at: str
    case: Any
    recordings: list[int]
    reason: Any
    by: Any
    # (seq, time, by, reason) of its hold.released entry.
    released: tuple[int, str, Any, Any] | None = None


@dataclass
class Replay:
    """What the log says of labels, cases, holds and retention, replayed entry by entry
    (`apply` in seq order); `dockd verify --bucket` replays a dock's log with it too."""

    labels: dict[int, _Labels] = field(default_factory=dict)
    retention: dict[int, _Retention] = field(default_factory=dict)
    cases: dict[str, _Case] = field(default_factory=dict)
    # (case, recording) -> (seq, time) of the case.linked entry that made the link.
    links: dict[tuple[str, int], tuple[int, str]] = field(default_factory=dict)
    holds: dict[int, _Hold] = field(default_factory=dict)
    # seq -> the gap.explained entry's facts, as the row must hold them.
    explanations: dict[int, dict[str, Any]] = field(default_factory=dict)

    def _labels(self, recording: int) -> _Labels:
        found = self.labels.get(recording)
        if found is None:
            found = self.labels[recording] = _Labels()
        return found

    def _retention(self, recording: int) -> _Retention:
        found = self.retention.get(recording)
        if found is None:
            found = self.retention[recording] = _Retention()
        return found

    def apply(self, seq: int, entry: LogEntry) -> None:
        handler = _HANDLERS.get(entry.kind)
        if handler is not None:
            handler(self, seq, entry, entry.data)

    # -- labels ----------------------------------------------------------------

    def tagged(self, seq: int, entry: LogEntry, data: dict[str, Any]) -> None:
        cause = data.get("cause")
        parties = _strs(data.get("parties_added"))
        added = _strs(data.get("categories_added"))
        removed = _strs(data.get("categories_removed"))
        note = data.get("note")
        for recording in _ids(data.get("recordings")):
            labels = self._labels(recording)
            if isinstance(cause, str):
                labels.cause = cause
            labels.parties.update(parties)
            labels.categories.update(added)
            labels.categories.difference_update(removed)
            if isinstance(note, str):
                labels.notes.append(
                    {"text": note, "by": data.get("by"), "at": entry.time, "entry": seq}
                )

    # -- cases -------------------------------------------------------------------

    def case_created(self, seq: int, entry: LogEntry, data: dict[str, Any]) -> None:
        no = data.get("case")
        if isinstance(no, str) and no not in self.cases:
            self.cases[no] = _Case(
                seq, entry.time, data.get("cause"), data.get("parties"), data.get("categories")
            )

    def case_state(self, seq: int, entry: LogEntry, data: dict[str, Any]) -> None:
        case = self.cases.get(str(data.get("case")))
        if case is None:
            return  # no case.created: a row of that case is reported as unlogged
        closed = entry.kind == "case.closed"
        case.state = "closed" if closed else "open"
        case.closed_at = entry.time if closed else None

    def linked(self, seq: int, entry: LogEntry, data: dict[str, Any]) -> None:
        no = str(data.get("case"))
        for recording in _ids(data.get("recordings")):
            self.links[(no, recording)] = (seq, entry.time)

    def unlinked(self, seq: int, entry: LogEntry, data: dict[str, Any]) -> None:
        no = str(data.get("case"))
        for recording in _ids(data.get("recordings")):
            self.links.pop((no, recording), None)

    # -- holds -------------------------------------------------------------------

    def hold_set(self, seq: int, entry: LogEntry, data: dict[str, Any]) -> None:
        hold = data.get("hold")
        if _is_int(hold) and hold not in self.holds:
            self.holds[hold] = _Hold(
                seq,
                entry.time,
                data.get("case"),
                sorted(set(_ids(data.get("recordings")))),
                data.get("reason"),
                data.get("by"),
            )

    def hold_released(self, seq: int, entry: LogEntry, data: dict[str, Any]) -> None:
        hold_id = data.get("hold")
        hold = self.holds.get(hold_id) if _is_int(hold_id) else None
        if hold is not None and hold.released is None:
            hold.released = (seq, entry.time, data.get("by"), data.get("reason"))

    # -- retention ---------------------------------------------------------------

    def updated(self, seq: int, entry: LogEntry, data: dict[str, Any]) -> None:
        tiers = data.get("tiers")
        if isinstance(tiers, dict):
            for tier, ids in tiers.items():
                for recording in _ids(ids):
                    state = self._retention(recording)
                    state.tier, state.tier_seq = tier, seq
        for recording in _ids(data.get("kept")):
            state = self._retention(recording)
            if state.state != DELETED:
                state.state, state.pending_since = LIVE, None

    def pending(self, seq: int, entry: LogEntry, data: dict[str, Any]) -> None:
        for recording in _ids(data.get("recordings")):
            state = self._retention(recording)
            if state.state != DELETED:
                state.state, state.pending_since = PENDING, entry.time

    def deleted(self, seq: int, entry: LogEntry, data: dict[str, Any]) -> None:
        recording = data.get("recording")
        if _is_int(recording):
            state = self._retention(recording)
            if state.state != DELETED:
                state.state, state.deleted_at, state.deleted_seq = DELETED, entry.time, seq

    def restored(self, seq: int, entry: LogEntry, data: dict[str, Any]) -> None:
        recording = data.get("recording")
        if _is_int(recording):
            state = self._retention(recording)
            keep = data.get("keep_until")
            state.keep_until = keep if isinstance(keep, str) else None
            if state.state != DELETED:
                state.state, state.pending_since = LIVE, None

    # -- continuity ----------------------------------------------------------------

    def gap_explained(self, seq: int, entry: LogEntry, data: dict[str, Any]) -> None:
        self.explanations[seq] = {
            "gap": data.get("gap"),
            "device_serial": data.get("device_serial"),
            "text": data.get("text"),
            "by": data.get("by"),
            "at": entry.time,
        }


_HANDLERS = {
    "recording.tagged": Replay.tagged,
    "case.created": Replay.case_created,
    "case.closed": Replay.case_state,
    "case.reopened": Replay.case_state,
    "case.linked": Replay.linked,
    "case.unlinked": Replay.unlinked,
    "hold.set": Replay.hold_set,
    "hold.released": Replay.hold_released,
    "retention.updated": Replay.updated,
    "retention.pending": Replay.pending,
    "retention.deleted": Replay.deleted,
    "retention.restored": Replay.restored,
    "gap.explained": Replay.gap_explained,
}


def check_labels_and_retention(
    recordings: list[Recording],
    cases: list[dict[str, Any]],
    links: list[dict[str, Any]],
    holds: list[dict[str, Any]],
    hold_items: list[dict[str, Any]],
    explanations: list[dict[str, Any]],
    parsed: dict[int, LogEntry],
) -> list[Problem]:
    """Every schema-5 value of the catalog that the log does not give.

    `cases` as `Catalog.cases()` (parties and categories decoded), the other
    tables as their `Catalog` readers return them; `parsed` as
    `crosscheck.parse_entries`.
    """
    replay = Replay()
    for seq in sorted(parsed):
        replay.apply(seq, parsed[seq])
    problems = _check_recordings(recordings, replay, parsed)
    problems += _check_cases(cases, replay)
    problems += _check_links(links, replay)
    problems += _check_holds(holds, hold_items, replay)
    problems += _check_explanations(explanations, replay)
    return problems


# -- recordings ----------------------------------------------------------------------

_NO_LABELS = _Labels()
_NO_RETENTION = _Retention()
_LABELS = ("cause", "parties", "categories", "notes")
_TIER = ("tier", "expires_at", "keep_until")
_STATE = ("retention_state", "pending_since", "deleted_at")


def _check_recordings(
    recordings: list[Recording], replay: Replay, parsed: dict[int, LogEntry]
) -> list[Problem]:
    problems: list[Problem] = []
    for rec in recordings:
        ingest = parsed.get(rec.log_seq)
        if ingest is None or ingest.kind != "recording.ingested":
            continue  # a row no ingest entry explains: reported by check_rows_against_log
        where = f"recording {rec.id}"
        labels = replay.labels.get(rec.id, _NO_LABELS)
        catalog: tuple[Any, ...] = (
            rec.cause, list(rec.parties), list(rec.categories), list(rec.notes),
        )  # fmt: skip
        logged: tuple[Any, ...] = (
            labels.cause,
            sorted(labels.parties),
            sorted(labels.categories),
            labels.notes,
        )
        if catalog != logged:
            problems.append(
                Problem("catalog_label_changed", where, _compare(_LABELS, catalog, logged))
            )

        state = replay.retention.get(rec.id, _NO_RETENTION)
        tier, expires = _logged_expiry(rec, ingest.data, state)
        catalog = (rec.tier, rec.expires_at, rec.keep_until)
        logged = (tier, expires, state.keep_until)
        if catalog != logged:
            problems.append(
                Problem("retention_tier_changed", where, _compare(_TIER, catalog, logged))
            )

        if rec.retention_state == DELETED and state.state != DELETED:
            problems.append(
                Problem(
                    "recording_deleted_unlogged",
                    where,
                    f"the catalog marks it deleted (at {rec.deleted_at}), but no "
                    f"retention.deleted entry deletes it; the log gives {state.state}",
                )
            )
            continue
        if state.state == DELETED and rec.retention_state != DELETED:
            problems.append(
                Problem(
                    "recording_undeleted",
                    where,
                    f"retention.deleted entry {state.deleted_seq} deleted it, but the catalog "
                    f"has it {rec.retention_state}",
                )
            )
            continue
        catalog = (rec.retention_state, rec.pending_since, rec.deleted_at)
        logged = (state.state, state.pending_since, state.deleted_at)
        if catalog != logged:
            problems.append(
                Problem("retention_state_changed", where, _compare(_STATE, catalog, logged))
            )
    return problems


def _logged_expiry(
    rec: Recording, ingest: dict[str, Any], state: _Retention
) -> tuple[str | None, str | None]:
    """The tier and expires_at the log gives the recording.

    The last retention.updated that names it wins; before any, the ingest
    entry's (entries older than schema 5 have none: NULL until the first
    writer logs the tiers).
    """
    if not state.tier_seq:
        if "tier" not in ingest:
            return None, None
        tier, expires = ingest.get("tier"), ingest.get("expires_at")
        return (tier if isinstance(tier, str) else None), (
            expires if isinstance(expires, str) else None
        )
    tier = state.tier
    if tier not in TIER_MONTHS:
        return tier, None  # permanent, or a tier unknown to this code: no expiry
    end = ingest.get("recorded_end", rec.recorded_end)
    try:
        until = expiry(
            cast(Tier, tier),
            parse_utc(str(end)),
            parse_utc(state.keep_until) if state.keep_until else None,
        )
    except ValueError:
        return tier, rec.expires_at  # an unreadable logged time: nothing to compare
    return tier, isoformat_utc(until) if until else None


# -- cases, links, holds, explanations -------------------------------------------------


def _check_cases(cases: list[dict[str, Any]], replay: Replay) -> list[Problem]:
    problems: list[Problem] = []
    logged = dict(replay.cases)
    for row in cases:
        no = str(row["no"])
        where = f"case {no}"
        case = logged.pop(no, None)
        if case is None:
            problems.append(
                Problem(
                    "case_unlogged",
                    where,
                    f"no case.created entry creates it (the row names entry {row.get('log_seq')})",
                )
            )
            continue
        changed = differences(
            {
                "cause": (row.get("cause"), case.cause),
                "parties": (row.get("parties"), case.parties),
                "categories": (row.get("categories"), case.categories),
                "created_at": (row.get("created_at"), case.created_at),
                "log_seq": (row.get("log_seq"), case.seq),
                "state": (row.get("state"), case.state),
                "closed_at": (row.get("closed_at"), case.closed_at),
            }
        )
        if changed:
            problems.append(Problem("case_changed", where, changed))
    for no, case in sorted(logged.items()):
        problems.append(
            Problem(
                "case_missing", f"case {no}", f"created by entry {case.seq}, but not in the catalog"
            )
        )
    return problems


_LINK = ("log_seq", "linked_at")


def _check_links(links: list[dict[str, Any]], replay: Replay) -> list[Problem]:
    problems: list[Problem] = []
    logged = dict(replay.links)
    for row in links:
        no, recording = str(row["case_no"]), row["recording_id"]
        where = f"case {no}, recording {recording}"
        found = logged.pop((no, recording), None) if _is_int(recording) else None
        if found is None:
            problems.append(
                Problem(
                    "case_link_unlogged",
                    where,
                    "linked in the catalog, but no case.linked entry links it "
                    "(or a case.unlinked entry removed it)",
                )
            )
            continue
        catalog = (row.get("log_seq"), row.get("linked_at"))
        if catalog != found:
            problems.append(Problem("case_link_changed", where, _compare(_LINK, catalog, found)))
    for (no, recording), (seq, _) in sorted(logged.items()):
        problems.append(
            Problem(
                "case_link_missing",
                f"case {no}, recording {recording}",
                f"linked by entry {seq} and never unlinked, but the catalog has no such link",
            )
        )
    return problems


def _check_holds(
    holds: list[dict[str, Any]], hold_items: list[dict[str, Any]], replay: Replay
) -> list[Problem]:
    problems: list[Problem] = []
    items: dict[Any, list[Any]] = {}
    for item in hold_items:
        items.setdefault(item["hold_id"], []).append(item["recording_id"])
    logged = dict(replay.holds)
    for row in holds:
        hold_id = row["id"]
        where = f"hold {hold_id}"
        covered = sorted(items.pop(hold_id, []), key=_order)
        hold = logged.pop(hold_id, None)
        if hold is None:
            problems.append(
                Problem(
                    "hold_unlogged",
                    where,
                    f"no hold.set entry sets it (the row names entry {row.get('log_seq')})",
                )
            )
            continue
        released = row.get("released_at") is not None
        if released and hold.released is None:
            problems.append(
                Problem(
                    "hold_released_unlogged",
                    where,
                    f"the catalog has it released at {row.get('released_at')}, but no "
                    "hold.released entry releases it",
                )
            )
        elif hold.released is not None and not released:
            problems.append(
                Problem(
                    "hold_release_missing",
                    where,
                    f"released by entry {hold.released[0]}, but the catalog has it active",
                )
            )
        fields: dict[str, tuple[Any, Any]] = {
            "case": (row.get("case_no"), hold.case),
            "recordings": (covered, hold.recordings),
            "reason": (row.get("reason"), hold.reason),
            "set_at": (row.get("set_at"), hold.set_at),
            "set_by": (row.get("set_by"), hold.by),
            "log_seq": (row.get("log_seq"), hold.seq),
        }
        if released == (hold.released is not None):
            expected_release = hold.released or (None, None, None, None)
            fields |= {
                "release_log_seq": (row.get("release_log_seq"), expected_release[0]),
                "released_at": (row.get("released_at"), expected_release[1]),
                "released_by": (row.get("released_by"), expected_release[2]),
                "release_reason": (row.get("release_reason"), expected_release[3]),
            }
        changed = differences(fields)
        if changed:
            problems.append(Problem("hold_changed", where, changed))
    for hold_id, hold in sorted(logged.items()):
        problems.append(
            Problem(
                "hold_missing",
                f"hold {hold_id}",
                f"set by entry {hold.seq}, but not in the catalog",
            )
        )
    for hold_id in sorted(set(items) - set(replay.holds), key=_order):
        problems.append(
            Problem(
                "hold_unlogged",
                f"hold {hold_id}",
                f"the catalog holds recordings {show(items[hold_id])} under it, but no "
                "hold row or hold.set entry exists",
            )
        )
    return problems


def _check_explanations(explanations: list[dict[str, Any]], replay: Replay) -> list[Problem]:
    problems: list[Problem] = []
    logged = dict(replay.explanations)
    for row in explanations:
        where = f"gap explanation {row['id']}"
        seq = row.get("log_seq")
        found = logged.pop(seq, None) if _is_int(seq) else None
        if found is None:
            problems.append(
                Problem(
                    "gap_explanation_unlogged",
                    where,
                    f"of gap {row.get('gap')}: no gap.explained entry {seq} records it",
                )
            )
            continue
        changed = differences({k: (row.get(k), v) for k, v in found.items()})
        if changed:
            problems.append(Problem("gap_explanation_changed", where, changed))
    for seq, found in sorted(logged.items()):
        problems.append(
            Problem(
                "gap_explanation_missing",
                f"gap {found['gap']}",
                f"explained by entry {seq}, but the catalog has no such explanation",
            )
        )
    return problems


# -- helpers -------------------------------------------------------------------------------


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _order(value: Any) -> tuple[int, int, str]:
    """Sort key for ids read from rows: integers by value, anything else after them."""
    return (0, value, "") if _is_int(value) else (1, 0, str(value))


def _ids(value: Any) -> list[int]:
    return [i for i in value if type(i) is int] if isinstance(value, list) else []


def _strs(value: Any) -> list[str]:
    return [s for s in value if isinstance(s, str)] if isinstance(value, list) else []


def _compare(names: tuple[str, ...], catalog: tuple[Any, ...], logged: tuple[Any, ...]) -> str:
    return differences(dict(zip(names, zip(catalog, logged, strict=True), strict=True)))
