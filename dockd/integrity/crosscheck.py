"""Cross-checks of catalog rows against the log entries that created them.

Pure: rows and parsed entries in, problems out. A row that no entry
explains, or an entry whose row is gone or differs, is tampering (DESIGN
invariant 3); `Service.verify` runs all of them, and replay.py's replay of
labels, cases, holds and retention.

`LOGGED` and `NOT_LOGGED` below name every column of the catalog: what each
logged one is compared with, and why the log cannot vouch for the others.
tests/integrity/test_catalog_tamper.py fails when the schema has a column in
neither, and edits each `LOGGED` column of a real catalog expecting
`dockd verify` to name the row.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, TypeGuard

from dockd.catalog import Recording
from dockd.clock import parse_utc
from dockd.devices.registry import Assignment, attribute
from dockd.errors import DockdError
from dockd.integrity.chain import LogEntry, Problem, StoredEntry

# "table.column" -> the entry field(s) `dockd verify` compares it with. "time"
# and "seq" are the entry's own; "ingest" is the row's recording.ingested entry.
LOGGED: dict[str, str] = {
    # check_rows_against_log: the row's own ingest entry (recordings.log_seq).
    "recordings.id": "ingest recording",
    "recordings.sha256": "ingest sha256",
    "recordings.size": "ingest size",
    "recordings.source_path": "ingest source_path_b64",
    "recordings.source_path_text": "ingest source_path",
    "recordings.sequence": "ingest sequence (entries written before it was logged: unchecked)",
    "recordings.store_path": "ingest store_path",
    "recordings.device_serial": "ingest device_serial",
    "recordings.profile": "ingest profile",
    "recordings.recorded_start": "ingest recorded_start",
    "recordings.recorded_end": "ingest recorded_end",
    "recordings.time_source": "ingest time_source",
    "recordings.clock_offset_s": "ingest clock_offset_s",
    "recordings.ingested_at": "ingest time",
    "recordings.deadline": "ingest deadline",
    "recordings.late": "ingest flags holds 'late'",
    "recordings.session_id": "ingest session",
    "recordings.log_seq": "ingest seq (a recording.ingested entry naming this id)",
    "recordings.name_officer": "ingest name_officer (before schema 4: officer)",
    "recordings.name_device": "ingest name_device (before schema 4: device_number)",
    # check_labels_against_log: the ingest's values re-attributed by device.assigned.
    "recordings.officer": "ingest name_officer + device.assigned officer",
    "recordings.unit": "ingest unit + device.assigned unit",
    "recordings.device_number": "ingest name_device + device.assigned device_number",
    "recordings.flags": "ingest flags, unassigned_device per device.assigned",
    # replay.py, in log order.
    "recordings.cause": "recording.tagged cause",
    "recordings.parties": "recording.tagged parties_added",
    "recordings.categories": "recording.tagged categories_added, categories_removed",
    "recordings.notes": "recording.tagged note, by, time, seq",
    "recordings.tier": "ingest tier, then retention.updated tiers",
    "recordings.expires_at": "ingest expires_at, then policy.expiry(logged tier, end, keep_until)",
    "recordings.keep_until": "retention.restored keep_until",
    "recordings.retention_state": "retention.pending/updated kept/restored/deleted",
    "recordings.pending_since": "retention.pending time",
    "recordings.deleted_at": "retention.deleted time",
    # check_sessions_against_log: session.started, then session.ended or .interrupted.
    "sessions.id": "session.started session",
    "sessions.device_serial": "session.started device_serial",
    "sessions.profile": "session.started profile",
    "sessions.source": "session.started source",
    "sessions.started_at": "session.started time",
    "sessions.clock_offset_s": "session.started clock_offset_s",
    "sessions.slot": "session.started slot",
    "sessions.health": "session.started health",
    "sessions.state": "session.ended state; 'interrupted' by session.interrupted; else 'running'",
    "sessions.ended_at": "session.ended / session.interrupted time; else NULL",
    "sessions.summary": "session.ended data but session and state; else NULL",
    # check_devices_against_log: dockings (schema 4 on) and assignments.
    "devices.serial": "session.started device_serial, device.assigned serial",
    "devices.vendor_id": "last session.started device.vendor_id",
    "devices.model_id": "last session.started device.model_id",
    "devices.vendor": "last session.started device.vendor",
    "devices.model": "last session.started device.model",
    "devices.profile": "last session.started profile",
    "devices.first_seen": "time of the first session.started or device.assigned naming it",
    "devices.last_docked": "last session.started time",
    "devices.last_slot": "last session.started slot",
    # check_assignments_against_log.
    "assignments.id": "device.assigned assignment",
    "assignments.serial": "device.assigned serial",
    "assignments.officer": "device.assigned officer",
    "assignments.unit": "device.assigned unit",
    "assignments.device_number": "device.assigned device_number",
    "assignments.valid_from": "device.assigned valid_from",
    "assignments.valid_to": "device.assigned valid_to",
    "assignments.created_at": "device.assigned time",
    "assignments.reason": "device.assigned reason",
    "assignments.log_seq": "device.assigned seq",
    # check_keys_against_log.
    "signing_keys.key_id": "key.created / key.rotated key_id",
    "signing_keys.vkey": "key.created / key.rotated vkey",
    "signing_keys.created_at": "key.created / key.rotated time",
    "signing_keys.retired_at": "time of the key.rotated whose old_key_id it is; else NULL",
    "signing_keys.log_seq": "key.created / key.rotated seq",
    # check_fixity_against_log: the log holds each audit's time and failures.
    "fixity.sha256": "ingest sha256; audit.done failures[].sha256 must have a row",
    "fixity.last_checked_at": "audit.done time (no later than a logged failure)",
    "fixity.last_ok": "false iff that audit.done lists it in failures",
    # check_exports_against_log.
    "exports.id": "export.planned export",
    "exports.created_at": "export.planned time",
    "exports.medium": "export.planned medium",
    "exports.capacity": "export.planned capacity",
    "exports.copies": "export.planned copies",
    "exports.selection": "export.planned selection",
    "exports.approved_by": "export.planned approved_by",
    "exports.reason": "export.planned reason",
    "exports.by": "export.planned by",
    "exports.log_seq": "export.planned seq",
    "discs.label": "export.planned discs[].label",
    "discs.export_id": "export of the export.planned naming the label",
    "discs.number": "the logged label (E<export>D<number>C<copy>_<site>)",
    "discs.copy": "the logged label (E<export>D<number>C<copy>_<site>)",
    "discs.image_sha256": "last export.disc_built image_sha256",
    "discs.image_size": "last export.disc_built image_size",
    "discs.built_at": "last export.disc_built time",
    "discs.build_log_seq": "last export.disc_built seq",
    "discs.burned_at": "last ok export.disc_burned time",
    "discs.drive": "last ok export.disc_burned drive",
    "discs.burn_log_seq": "last ok export.disc_burned seq",
    "disc_items.label": "export.planned discs[].label",
    "disc_items.recording_id": "export.planned discs[].recordings",
    # replay.py.
    "cases.no": "case.created case",
    "cases.cause": "case.created cause",
    "cases.parties": "case.created parties",
    "cases.categories": "case.created categories",
    "cases.state": "case.closed / case.reopened",
    "cases.created_at": "case.created time",
    "cases.closed_at": "last case.closed time; NULL once reopened",
    "cases.log_seq": "case.created seq",
    "case_links.case_no": "case.linked case (minus case.unlinked)",
    "case_links.recording_id": "case.linked recordings (minus case.unlinked)",
    "case_links.linked_at": "case.linked time",
    "case_links.log_seq": "case.linked seq",
    "holds.id": "hold.set hold",
    "holds.case_no": "hold.set case",
    "holds.reason": "hold.set reason",
    "holds.set_at": "hold.set time",
    "holds.set_by": "hold.set by",
    "holds.log_seq": "hold.set seq",
    "holds.released_at": "hold.released time",
    "holds.released_by": "hold.released by",
    "holds.release_reason": "hold.released reason",
    "holds.release_log_seq": "hold.released seq",
    "hold_items.hold_id": "hold.set hold",
    "hold_items.recording_id": "hold.set recordings",
    "gap_explanations.gap": "gap.explained gap",
    "gap_explanations.device_serial": "gap.explained device_serial",
    "gap_explanations.text": "gap.explained text",
    "gap_explanations.by": "gap.explained by",
    "gap_explanations.at": "gap.explained time",
    "gap_explanations.log_seq": "gap.explained seq",
}

# "table.column" -> why no entry vouches for it (what checks it instead, if anything).
NOT_LOGGED: dict[str, str] = {
    "recordings.source_mtime_ns": "the camera file's mtime, only used to spot a re-docked file "
    "(a wrong value makes the next docking re-hash it); not in the ingest entry",
    "recordings.media": "ffprobe's metadata of the stored object; not in the entry "
    "(re-probe the object to check it)",
    "gap_explanations.id": "a row number; explanations are matched to their entry by log_seq",
    "disc_items.bag_path": "where the disc holds the file; the disc's own manifest "
    "(dockd verify-disc) checks it, the log does not record it",
    "log.seq": "the log itself: check_chain and the signed checkpoints",
    "log.time": "the log itself: the entry bytes hold it (check_chain)",
    "log.kind": "the log itself: the entry bytes hold it",
    "log.entry": "the log itself: check_chain and the signed checkpoints",
    "log.hash": "the log itself: check_chain",
    "merkle_nodes.level": "recomputed from the entries (Service._check_tree)",
    "merkle_nodes.idx": "recomputed from the entries (Service._check_tree)",
    "merkle_nodes.hash": "recomputed from the entries (Service._check_tree)",
    "checkpoints.id": "a row number; checkpoints are not log entries",
    "checkpoints.size": "checked against its signed note, not the log",
    "checkpoints.root": "checked against its signed note and the recomputed tree",
    "checkpoints.note": "checked by its signature (a key the log introduced, or a pinned one)",
    "checkpoints.key_id": "checked against the key that signed the note",
    "checkpoints.created_at": "when it was signed; the note does not say",
}

_SESSION_ENDS = ("session.ended", "session.interrupted")
_IDENTITY = ("vendor_id", "model_id", "vendor", "model")
# A disc label as archive.plan.disc_label spells it: export, disc number, copy, site.
_LABEL = re.compile(r"E(\d+)D(\d+)C(\d+)_")


def source_path_b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def parse_entries(rows: list[StoredEntry]) -> dict[int, LogEntry]:
    """seq -> entry of every row that parses; the others are reported by check_chain."""
    parsed: dict[int, LogEntry] = {}
    for row in rows:
        try:
            parsed[row.seq] = LogEntry.from_bytes(row.raw)
        except DockdError:
            continue
    return parsed


def logged_keys(parsed: dict[int, LogEntry]) -> dict[str, str]:
    """key_id -> vkey of every signing key the log itself introduced."""
    keys: dict[str, str] = {}
    for entry in parsed.values():
        if entry.kind in ("key.created", "key.rotated"):
            keys[str(entry.data.get("key_id"))] = str(entry.data.get("vkey"))
    return keys


# -- reporting ------------------------------------------------------------------------


def show(value: Any, limit: int = 160) -> str:
    """A value as a problem's detail shows it: JSON, cut at `limit` characters."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def differences(fields: dict[str, tuple[Any, Any]]) -> str:
    """'' when each (catalog, logged) pair agrees, else each field that differs and how."""
    return "; ".join(
        f"{name} is {show(catalog)} in the catalog, the log gives {show(logged)}"
        for name, (catalog, logged) in fields.items()
        if catalog != logged
    )


def _changed(
    kind: str, where: str, source: str, fields: dict[str, tuple[Any, Any]]
) -> list[Problem]:
    """One problem naming every column that differs from what `source` gives, or none."""
    names = [name for name, (catalog, logged) in fields.items() if catalog != logged]
    if not names:
        return []
    detail = f"differs from {source} in {', '.join(names)}: {differences(fields)}"
    return [Problem(kind, where, detail)]


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def json_value(text: Any) -> Any:
    """A JSON column's value, or the text itself when it is not JSON (so that it differs
    from the logged value and is reported, rather than failing the check)."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


# -- recordings -----------------------------------------------------------------------


def check_rows_against_log(
    recordings: list[Recording],
    present: set[int],
    parsed: dict[int, LogEntry],
    *,
    late_flag: str,
) -> list[Problem]:
    """Each recording's facts must equal its `recording.ingested` entry; each entry have its row."""
    problems: list[Problem] = []
    logged: dict[int, list[int]] = {}
    for seq, entry in parsed.items():
        if entry.kind == "recording.ingested" and _is_int(entry.data.get("recording")):
            logged.setdefault(entry.data["recording"], []).append(seq)
    for rec in recordings:
        where = f"recording {rec.id}"
        if rec.log_seq not in present:
            problems.append(
                Problem("catalog_row_unlogged", where, f"its log entry {rec.log_seq} is missing")
            )
            continue
        ingest = parsed.get(rec.log_seq)
        if ingest is None:
            continue  # malformed: reported by check_chain
        if ingest.kind != "recording.ingested":
            problems.append(
                Problem(
                    "catalog_row_changed",
                    where,
                    f"its log_seq {rec.log_seq} is a {ingest.kind} entry, not its ingest",
                )
            )
            continue
        source = f"log entry {rec.log_seq}"
        problems += _changed(
            "catalog_row_changed", where, source, _ingest_facts(rec, ingest, late_flag)
        )
    own_entry = {r.id: r.log_seq for r in recordings}
    for recording_id, seqs in sorted(logged.items()):
        if recording_id not in own_entry:
            problems.append(
                Problem(
                    "catalog_row_missing",
                    f"recording {recording_id}",
                    f"logged in entry {', '.join(map(str, seqs))} but not in the catalog",
                )
            )
            continue
        for seq in seqs:
            if seq != own_entry[recording_id]:
                problems.append(
                    Problem(
                        "log_entry_unmatched",
                        f"log entry {seq}",
                        f"records an ingest of recording {recording_id}, whose row refers "
                        f"to entry {own_entry[recording_id]}",
                    )
                )
    return problems


def _ingest_facts(rec: Recording, entry: LogEntry, late_flag: str) -> dict[str, tuple[Any, Any]]:
    """column -> (catalog value, the value the ingest entry gives it)."""
    data = entry.data
    flags = data.get("flags")
    # Entries from before schema 4 have no name_*: the file's values were the
    # attribution then (migration 4 copied them so).
    name_officer = data["name_officer"] if "name_officer" in data else data.get("officer")
    name_device = data["name_device"] if "name_device" in data else data.get("device_number")
    return {
        "id": (rec.id, data.get("recording")),
        "sha256": (rec.sha256, data.get("sha256")),
        "size": (rec.size, data.get("size")),
        "source_path": (source_path_b64(rec.source_path), data.get("source_path_b64")),
        "source_path_text": (rec.source_path_text, data.get("source_path")),
        "store_path": (rec.store_path, data.get("store_path")),
        "device_serial": (rec.device_serial, data.get("device_serial")),
        "profile": (rec.profile, data.get("profile")),
        "recorded_start": (rec.recorded_start, data.get("recorded_start")),
        "recorded_end": (rec.recorded_end, data.get("recorded_end")),
        "time_source": (rec.time_source, data.get("time_source")),
        "clock_offset_s": (rec.clock_offset_s, data.get("clock_offset_s")),
        "ingested_at": (rec.ingested_at, entry.time),
        "deadline": (rec.deadline, data.get("deadline")),
        "late": (rec.late, isinstance(flags, list) and late_flag in flags),
        "session_id": (rec.session_id, data.get("session")),
        "name_officer": (rec.name_officer, name_officer),
        "name_device": (rec.name_device, name_device),
        # Sequence holes (R3) are found from it; entries from before it was logged
        # vouch for nothing, so those rows compare with themselves.
        "sequence": (rec.sequence, data.get("sequence", rec.sequence)),
    }


def check_labels_against_log(
    recordings: list[Recording], parsed: dict[int, LogEntry], unassigned_flag: str
) -> list[Problem]:
    """Officer, unit, device number and flags of each row must follow from the log.

    They are the ingest entry's values re-attributed by the logged
    assignments; a label changed behind the service's back (R2) shows here.
    """
    history = logged_assignments(parsed)
    by_serial: dict[str, list[Assignment]] = {}
    for item in history:
        by_serial.setdefault(item.serial, []).append(item)
    problems: list[Problem] = []
    for rec in recordings:
        entry = parsed.get(rec.log_seq)
        if entry is None or entry.kind != "recording.ingested":
            continue  # reported by the row cross-check
        data = entry.data
        try:
            start = parse_utc(str(data["recorded_start"]))
        except (KeyError, ValueError):
            continue
        # Entries from before the registry (schema < 4) name the file's officer only.
        who = attribute(
            by_serial.get(rec.device_serial, []),
            start,
            name_officer=data["name_officer"] if "name_officer" in data else data.get("officer"),
            name_device=data["name_device"] if "name_device" in data else data.get("device_number"),
        )
        flags = set(data.get("flags") or []) - {unassigned_flag}
        if not who.assigned:
            flags.add(unassigned_flag)
        facts = {
            "officer": (rec.officer, who.officer),
            "unit": (rec.unit, who.unit),
            "device_number": (rec.device_number, who.device_number),
            "flags": (sorted(rec.flags), sorted(flags)),
        }
        problems += _changed(
            "catalog_label_changed",
            f"recording {rec.id}",
            f"its ingest entry {rec.log_seq} and the device.assigned entries",
            facts,
        )
    return problems


# -- sessions and devices ----------------------------------------------------------------


def check_sessions_against_log(
    sessions: list[dict[str, Any]], parsed: dict[int, LogEntry]
) -> list[Problem]:
    """Each session row must equal its start entry and, once closed, its end entry.

    `session.ended` gives the state, end and summary; `session.interrupted`
    (start-up recovery) the state `interrupted` and the end; a session that
    neither closes is `running`. This also exposes a log cut off at its
    tail, which the chain alone cannot.
    """
    problems: list[Problem] = []
    starts: dict[int, tuple[int, LogEntry]] = {}
    ends: dict[int, tuple[int, LogEntry]] = {}
    for seq in sorted(parsed):
        entry = parsed[seq]
        session = entry.data.get("session")
        if not _is_int(session):
            continue
        if entry.kind == "session.started":
            found = starts
        elif entry.kind in _SESSION_ENDS:
            found = ends
        else:
            continue
        if session in found:
            # A session starts once and ends once: a second entry was inserted.
            problems.append(
                Problem(
                    "log_entry_unmatched",
                    f"log entry {seq}",
                    f"{entry.kind} of session {session}, which entry {found[session][0]} "
                    "already started or closed",
                )
            )
            continue
        found[session] = (seq, entry)
    for row in sessions:
        where = f"session {row['id']}"
        start = starts.pop(row["id"], None)
        end = ends.pop(row["id"], None)
        if start is None:
            problems.append(
                Problem("catalog_row_unlogged", where, "no matching session.started entry")
            )
        else:
            seq, entry = start
            data = entry.data
            facts = {
                "device_serial": (row["device_serial"], data.get("device_serial")),
                "profile": (row["profile"], data.get("profile")),
                "source": (row["source"], data.get("source")),
                "started_at": (row["started_at"], entry.time),
                "clock_offset_s": (row.get("clock_offset_s"), data.get("clock_offset_s")),
                "slot": (row.get("slot"), data.get("slot")),
                "health": (json_value(row.get("health")), data.get("health")),
            }
            problems += _changed("catalog_row_changed", where, f"log entry {seq}", facts)
        if end is None:
            if row["state"] != "running":
                problems.append(
                    Problem(
                        "catalog_row_unlogged",
                        where,
                        f"{row['state']} (closed), but no entry closes it",
                    )
                )
            else:
                facts = {
                    "ended_at": (row.get("ended_at"), None),
                    "summary": (row.get("summary"), None),
                }
                problems += _changed(
                    "catalog_row_changed", where, "a session no entry closed (running)", facts
                )
            continue
        seq, entry = end
        state: Any
        summary: Any
        if entry.kind == "session.interrupted":
            state, summary = "interrupted", None
        else:
            state = entry.data.get("state")
            summary = {k: v for k, v in entry.data.items() if k not in ("session", "state")}
        facts = {
            "state": (row["state"], state),
            "ended_at": (row.get("ended_at"), entry.time),
            "summary": (json_value(row.get("summary")), summary),
        }
        problems += _changed("catalog_row_changed", where, f"log entry {seq}", facts)
    for session, (seq, _) in sorted(starts.items()):
        problems.append(
            Problem(
                "catalog_row_missing",
                f"session {session}",
                f"started in entry {seq} but not in the catalog",
            )
        )
    for session, (seq, entry) in sorted(ends.items()):
        if session not in starts:
            problems.append(
                Problem(
                    "log_entry_unmatched",
                    f"log entry {seq}",
                    f"{entry.kind} of session {session}, which neither the catalog nor a "
                    "session.started entry has",
                )
            )
    return problems


def logged_devices(parsed: dict[int, LogEntry]) -> dict[str, dict[str, Any]]:
    """serial -> the devices row the log's dockings and assignments make.

    Only dockings from schema 4 on count (their session.started entries
    carry `slot`): older catalogs had no devices table, and migration 4
    started it empty.
    """
    devices: dict[str, dict[str, Any]] = {}
    for seq in sorted(parsed):
        entry = parsed[seq]
        data = entry.data
        if entry.kind == "session.started" and "slot" in data:
            serial = data.get("device_serial")
        elif entry.kind == "device.assigned":
            serial = data.get("serial")
        else:
            continue
        if not isinstance(serial, str):
            continue
        device = devices.get(serial)
        if device is None:
            device = devices[serial] = {
                "first_seen": entry.time,
                "profile": None,
                "last_docked": None,
                "last_slot": None,
                **dict.fromkeys(_IDENTITY),
            }
        if entry.kind == "session.started":
            device |= {
                "profile": data.get("profile"),
                "last_docked": entry.time,
                "last_slot": data.get("slot"),
            }
            identity = data.get("device")
            if isinstance(identity, dict):  # docked by the daemon: udev says who it is
                device |= {k: identity.get(k) for k in _IDENTITY}
    return devices


def check_devices_against_log(
    devices: list[dict[str, Any]], parsed: dict[int, LogEntry]
) -> list[Problem]:
    """Each device row must be what its dockings and assignments in the log made it."""
    problems: list[Problem] = []
    logged = logged_devices(parsed)
    for row in devices:
        serial = str(row["serial"])
        where = f"device {serial}"
        expected = logged.pop(serial, None)
        if expected is None:
            problems.append(
                Problem(
                    "catalog_row_unlogged",
                    where,
                    "no session.started or device.assigned entry names it",
                )
            )
            continue
        facts = {name: (row.get(name), value) for name, value in expected.items()}
        problems += _changed(
            "catalog_row_changed", where, "its session.started and device.assigned entries", facts
        )
    for serial in sorted(logged):
        problems.append(
            Problem(
                "catalog_row_missing",
                f"device {serial}",
                "docked or assigned in the log, but not in the catalog",
            )
        )
    return problems


# -- assignments -----------------------------------------------------------------------


def check_assignments_against_log(
    assignments: list[dict[str, Any]], parsed: dict[int, LogEntry]
) -> list[Problem]:
    """Each assignment row (as stored) must equal its `device.assigned` entry, and each
    entry have its row.

    Rows, not `Assignment`s: a tampered time must be reported, not crash the parse.
    """
    logged: dict[int, tuple[int, LogEntry]] = {}
    for seq, entry in parsed.items():
        if entry.kind == "device.assigned" and _is_int(entry.data.get("assignment")):
            logged[entry.data["assignment"]] = (seq, entry)
    problems: list[Problem] = []
    for row in assignments:
        where = f"assignment {row['id']}"
        found = logged.pop(row["id"], None)
        if found is None or found[0] != row["log_seq"]:
            problems.append(
                Problem("catalog_row_unlogged", where, f"no device.assigned entry {row['log_seq']}")
            )
            continue
        seq, entry = found
        data = entry.data
        facts = {
            name: (row.get(name), data.get(name))
            for name in ("serial", "officer", "unit", "device_number", "valid_from", "valid_to")
        }
        facts |= {
            "created_at": (row.get("created_at"), entry.time),
            "reason": (row.get("reason"), data.get("reason")),
        }
        problems += _changed("catalog_row_changed", where, f"log entry {seq}", facts)
    for assignment_id, (seq, _) in sorted(logged.items()):
        problems.append(
            Problem(
                "catalog_row_missing",
                f"assignment {assignment_id}",
                f"logged in entry {seq} but not in the catalog",
            )
        )
    return problems


def logged_assignments(parsed: dict[int, LogEntry]) -> list[Assignment]:
    """The assignment history as the log tells it (independent of the catalog table)."""
    found: list[Assignment] = []
    for seq, entry in sorted(parsed.items()):
        data = entry.data
        if entry.kind != "device.assigned" or not isinstance(data.get("assignment"), int):
            continue
        try:
            found.append(
                Assignment(
                    id=data["assignment"],
                    serial=str(data["serial"]),
                    officer=data.get("officer"),
                    unit=data.get("unit"),
                    device_number=data.get("device_number"),
                    valid_from=parse_utc(str(data["valid_from"])),
                    valid_to=parse_utc(str(data["valid_to"])) if data.get("valid_to") else None,
                    created_at=parse_utc(entry.time),
                    log_seq=seq,
                )
            )
        except (KeyError, ValueError):
            continue  # malformed: the row cross-check reports the assignment
    return found


# -- signing keys and fixity audits --------------------------------------------------------


def check_keys_against_log(
    keys: list[dict[str, Any]], parsed: dict[int, LogEntry]
) -> list[Problem]:
    """Each signing key row must be the key its `key.created`/`key.rotated` entry introduced,
    retired by the rotation that replaced it; each key the log introduced must have its row."""
    introduced: dict[str, tuple[int, LogEntry]] = {}
    retired: dict[str, str] = {}
    for seq in sorted(parsed):
        entry = parsed[seq]
        if entry.kind not in ("key.created", "key.rotated"):
            continue
        introduced.setdefault(str(entry.data.get("key_id")), (seq, entry))
        if entry.kind == "key.rotated":
            retired.setdefault(str(entry.data.get("old_key_id")), entry.time)
    problems: list[Problem] = []
    for row in keys:
        key_id = str(row["key_id"])
        where = f"signing key {key_id}"
        found = introduced.pop(key_id, None)
        if found is None or found[1].data.get("vkey") != row["vkey"]:
            problems.append(
                Problem("signing_key_unlogged", where, "no log entry introduced this key")
            )
            continue
        seq, entry = found
        facts = {
            "created_at": (row.get("created_at"), entry.time),
            "retired_at": (row.get("retired_at"), retired.get(key_id)),
            "log_seq": (row.get("log_seq"), seq),
        }
        problems += _changed("signing_key_changed", where, f"log entry {seq}", facts)
    for key_id, (seq, _) in sorted(introduced.items()):
        problems.append(
            Problem(
                "signing_key_missing",
                f"signing key {key_id}",
                f"introduced by entry {seq}, but not in the catalog",
            )
        )
    return problems


def check_fixity_against_log(
    fixity: list[dict[str, Any]], parsed: dict[int, LogEntry]
) -> list[Problem]:
    """Fixity rows against the `audit.done` entries written in the same transactions.

    An audit's entry has its time (each row it wrote has it as
    last_checked_at), how many objects it checked and which failed. So a
    row must name a logged object, carry the time of an audit, be not ok
    exactly when that audit lists it failed, and an audit cannot have
    written more rows than it checked; an object an audit found failed
    must keep a row checked at that audit or later. A hidden failure (R3)
    shows here even after the file was put back.
    """
    objects: set[Any] = set()
    audits: dict[str, list[tuple[int, set[Any], int]]] = {}
    failed: dict[Any, tuple[int, str]] = {}  # sha -> the last audit that found it failed
    for seq in sorted(parsed):
        entry = parsed[seq]
        if entry.kind == "recording.ingested":
            objects.add(entry.data.get("sha256"))
        elif entry.kind == "audit.done":
            failures = entry.data.get("failures")
            shas = {f.get("sha256") for f in failures or [] if isinstance(f, dict)}
            checked = entry.data.get("checked")
            audits.setdefault(entry.time, []).append(
                (seq, shas, checked if _is_int(checked) else 0)
            )
            for sha in shas:
                failed[sha] = (seq, entry.time)
    problems: list[Problem] = []
    rows = {row["sha256"]: row for row in fixity}
    per_time: dict[Any, int] = {}
    for sha, row in rows.items():
        where = f"fixity of object {sha}"
        when, ok = row.get("last_checked_at"), bool(row.get("last_ok"))
        per_time[when] = per_time.get(when, 0) + 1
        if sha not in objects:
            problems.append(
                Problem("catalog_row_unlogged", where, "no recording.ingested entry names it")
            )
            continue
        at = audits.get(when) if isinstance(when, str) else None
        if not at:
            problems.append(
                Problem(
                    "catalog_row_unlogged",
                    where,
                    f"checked at {show(when)}, but no audit.done entry has that time",
                )
            )
            continue
        if all((sha in shas) == ok for _, shas, _ in at):
            seqs = ", ".join(str(seq) for seq, _, _ in at)
            logged = "failed" if ok else "ok"
            problems.append(
                Problem(
                    "catalog_row_changed",
                    where,
                    f"last_ok is {show(ok)} in the catalog, but audit.done entry {seqs} "
                    f"found it {logged}",
                )
            )
    for sha, (seq, time) in sorted(failed.items(), key=lambda item: str(item[0])):
        kept = rows.get(sha)
        if kept is None:
            problems.append(
                Problem(
                    "catalog_row_missing",
                    f"fixity of object {sha}",
                    f"audit.done entry {seq} found it failed, but the catalog has no fixity row",
                )
            )
        elif not _not_before(kept.get("last_checked_at"), time):
            problems.append(
                Problem(
                    "catalog_row_changed",
                    f"fixity of object {sha}",
                    f"last checked at {show(kept.get('last_checked_at'))}, before audit.done "
                    f"entry {seq} found it failed at {time}",
                )
            )
    for when, count in sorted(per_time.items(), key=lambda item: str(item[0])):
        at = audits.get(when) if isinstance(when, str) else None
        checked = sum(n for _, _, n in at or [])
        if at and count > checked:
            problems.append(
                Problem(
                    "catalog_row_unlogged",
                    f"fixity rows checked at {when}",
                    f"{count} rows, but the audit.done entries of that time checked {checked}",
                )
            )
    return problems


def _not_before(when: Any, then: str) -> bool:
    try:
        return isinstance(when, str) and parse_utc(when) >= parse_utc(then)
    except ValueError:
        return False


# -- exports and discs -------------------------------------------------------------------


def check_exports_against_log(
    exports: list[dict[str, Any]],
    discs: list[dict[str, Any]],
    items: list[dict[str, Any]],
    parsed: dict[int, LogEntry],
) -> list[Problem]:
    """Export and disc rows against `export.*` entries: who approved, which disc holds what.

    `discs` rows carry `recordings` (their disc_items); `items` are all
    disc_items rows. A disc claimed to hold other recordings, an image hash
    or a burn that no entry records, an approval rewritten, or an export or
    disc the log has and the catalog lost, is tampering with the record of
    copies (R6).
    """
    problems: list[Problem] = []
    planned: dict[Any, tuple[int, LogEntry]] = {}
    built: dict[str, tuple[int, LogEntry]] = {}
    burned: dict[str, tuple[int, LogEntry]] = {}
    for seq, entry in sorted(parsed.items()):
        if entry.kind == "export.planned":
            planned[entry.data.get("export")] = (seq, entry)
        elif entry.kind == "export.disc_built":
            built[str(entry.data.get("label"))] = (seq, entry)
        elif entry.kind == "export.disc_burned" and entry.data.get("ok"):
            burned[str(entry.data.get("label"))] = (seq, entry)
    # label -> (export, recordings) as the export.planned entries of the rows give them
    labels: dict[str, tuple[Any, list[int]]] = {}
    for row in exports:
        where = f"export {row['id']}"
        found = planned.pop(row["id"], None)
        if found is None:
            problems.append(Problem("export_unlogged", where, "no export.planned entry"))
            continue
        seq, entry = found
        data = entry.data
        for d in data.get("discs") or []:
            labels[str(d.get("label"))] = (row["id"], sorted(d.get("recordings") or []))
        facts = {
            name: (row.get(name), data.get(name))
            for name in ("approved_by", "reason", "medium", "copies", "capacity", "by")
        }
        facts |= {
            "selection": (json_value(row.get("selection")), data.get("selection")),
            "created_at": (row.get("created_at"), entry.time),
            "log_seq": (row.get("log_seq"), seq),
        }
        problems += _changed("export_changed", where, f"log entry {seq}", facts)
    for export_id, (seq, _) in sorted(planned.items(), key=lambda item: str(item[0])):
        problems.append(
            Problem(
                "export_missing",
                f"export {export_id}",
                f"planned in entry {seq}, but not in the catalog",
            )
        )
    rows = {str(disc["label"]) for disc in discs}
    for label in sorted({str(item["label"]) for item in items} - rows):
        problems.append(
            Problem(
                "disc_unlogged",
                f"disc {label}",
                "the catalog lists recordings on it, but has no such disc",
            )
        )
    for label in sorted(set(labels) - rows):
        problems.append(
            Problem(
                "disc_missing",
                f"disc {label}",
                f"planned by export {labels[label][0]}, but not in the catalog",
            )
        )
    for disc in discs:
        label = str(disc["label"])
        where = f"disc {label}"
        if label not in labels:
            problems.append(Problem("disc_unlogged", where, "no export.planned entry names it"))
            continue
        export_id, recordings = labels[label]
        if sorted(disc["recordings"]) != recordings:
            problems.append(
                Problem(
                    "disc_contents_changed",
                    where,
                    f"the catalog says it holds {sorted(disc['recordings'])}, the log {recordings}",
                )
            )
        # The logged label spells the disc's number and copy.
        spelled = _LABEL.match(label)
        facts = {
            "export_id": (disc.get("export_id"), export_id),
            "number": (disc.get("number"), int(spelled[2]) if spelled else None),
            "copy": (disc.get("copy"), int(spelled[3]) if spelled else None),
        }
        problems += _changed("disc_changed", where, "its export.planned entry and label", facts)
        # Unbuilt, unburned: NULL, as the row was planned.
        made_seq, made = built.get(label) or (None, None)
        facts = {
            "image_sha256": (disc.get("image_sha256"), made and made.data.get("image_sha256")),
            "image_size": (disc.get("image_size"), made and made.data.get("image_size")),
            "built_at": (disc.get("built_at"), made and made.time),
            "build_log_seq": (disc.get("build_log_seq"), made_seq),
        }
        source = f"export.disc_built entry {made_seq}" if made else "no export.disc_built entry"
        problems += _changed("disc_image_changed", where, source, facts)
        burn_seq, burn = burned.get(label) or (None, None)
        facts = {
            "burned_at": (disc.get("burned_at"), burn and burn.time),
            "drive": (disc.get("drive"), burn and burn.data.get("drive")),
            "burn_log_seq": (disc.get("burn_log_seq"), burn_seq),
        }
        source = (
            f"export.disc_burned entry {burn_seq}" if burn else "no ok export.disc_burned entry"
        )
        problems += _changed("disc_burn_unlogged", where, source, facts)
    return problems
