"""Cross-checks of catalog rows against the log entries that created them.

Pure: rows and parsed entries in, problems out. A row that no entry
explains, or an entry whose row is gone or differs, is tampering (DESIGN
invariant 3); `Service.verify` runs all of them, and replay.py's replay of
labels, cases, holds and retention.

integrity/columns.py names every column of the catalog: what each logged
one is compared with (here, in crosscheck_store.py and in replay.py), and
why the log cannot vouch for the others.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, TypeGuard

from dockd.clock import parse_utc
from dockd.devices.registry import Assignment, labels_for, logged_names
from dockd.errors import DockdError
from dockd.integrity.chain import LogEntry, Problem, StoredEntry
from dockd.model import Recording

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
    name_officer, name_device = logged_names(data)
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
    recordings: list[Recording], parsed: dict[int, LogEntry]
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
        name_officer, name_device = logged_names(data)
        labels = labels_for(
            by_serial.get(rec.device_serial, []),
            start,
            name_officer=name_officer,
            name_device=name_device,
            flags=data.get("flags") or [],
        )
        facts = {
            "officer": (rec.officer, labels.officer),
            "unit": (rec.unit, labels.unit),
            "device_number": (rec.device_number, labels.device_number),
            "flags": (sorted(rec.flags), list(labels.flags)),
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
