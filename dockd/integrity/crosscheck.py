"""Cross-checks of catalog rows against the log entries that created them.

Pure: rows and parsed entries in, problems out. A row that no entry
explains, or an entry whose row is gone or differs, is tampering (DESIGN
invariant 3); `Service.verify` runs all of them.
"""

from __future__ import annotations

import base64
from typing import Any

from dockd.catalog import Recording
from dockd.clock import isoformat_utc, parse_utc
from dockd.devices.registry import Assignment, attribute
from dockd.errors import DockdError
from dockd.integrity.chain import LogEntry, Problem, StoredEntry


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


def check_rows_against_log(
    recordings: list[Recording], present: set[int], parsed: dict[int, LogEntry]
) -> list[Problem]:
    problems: list[Problem] = []
    logged: dict[int, list[int]] = {}
    for seq, entry in parsed.items():
        if entry.kind == "recording.ingested" and isinstance(entry.data.get("recording"), int):
            logged.setdefault(entry.data["recording"], []).append(seq)
    for rec in recordings:
        where = f"recording {rec.id}"
        if rec.log_seq not in present:
            problems.append(
                Problem("catalog_row_unlogged", where, f"its log entry {rec.log_seq} is missing")
            )
            continue
        if rec.log_seq not in parsed:
            continue  # malformed: reported by check_chain
        data = parsed[rec.log_seq].data
        facts = {
            "recording": rec.id,
            "sha256": rec.sha256,
            "size": rec.size,
            "source_path_b64": source_path_b64(rec.source_path),
            "store_path": rec.store_path,
            "device_serial": rec.device_serial,
            "recorded_start": rec.recorded_start,
            "recorded_end": rec.recorded_end,
        }
        changed = sorted(k for k, v in facts.items() if data.get(k) != v)
        if changed:
            problems.append(
                Problem(
                    "catalog_row_changed",
                    where,
                    f"differs from log entry {rec.log_seq} in {', '.join(changed)}",
                )
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


def check_sessions_against_log(
    sessions: list[dict[str, Any]], parsed: dict[int, LogEntry]
) -> list[Problem]:
    """Each session row must be matched by its start entry and, once closed, its end entry.

    This also exposes a log cut off at its tail, which the chain alone cannot.
    """
    started: dict[int, str] = {}
    closed: set[int] = set()
    for entry in parsed.values():
        session = entry.data.get("session")
        if entry.kind == "session.started" and isinstance(session, int):
            started[session] = str(entry.data.get("device_serial"))
        elif entry.kind in ("session.ended", "session.interrupted") and isinstance(session, int):
            closed.add(session)
    problems: list[Problem] = []
    for row in sessions:
        where = f"session {row['id']}"
        if started.get(row["id"]) != row["device_serial"]:
            problems.append(
                Problem("catalog_row_unlogged", where, "no matching session.started entry")
            )
        if row["state"] != "running" and row["id"] not in closed:
            problems.append(
                Problem("catalog_row_unlogged", where, "closed, but no entry closes it")
            )
    return problems


def check_assignments_against_log(
    assignments: list[Assignment], parsed: dict[int, LogEntry]
) -> list[Problem]:
    """Each assignment row must equal its `device.assigned` entry, and each entry have its row."""
    logged: dict[int, tuple[int, dict[str, Any]]] = {}
    for seq, entry in parsed.items():
        if entry.kind == "device.assigned" and isinstance(entry.data.get("assignment"), int):
            logged[entry.data["assignment"]] = (seq, entry.data)
    problems: list[Problem] = []
    for row in assignments:
        where = f"assignment {row.id}"
        found = logged.pop(row.id, None)
        if found is None or found[0] != row.log_seq:
            problems.append(
                Problem("catalog_row_unlogged", where, f"no device.assigned entry {row.log_seq}")
            )
            continue
        seq, data = found
        facts = {
            "serial": row.serial,
            "officer": row.officer,
            "unit": row.unit,
            "device_number": row.device_number,
            "valid_from": isoformat_utc(row.valid_from),
            "valid_to": isoformat_utc(row.valid_to) if row.valid_to else None,
        }
        changed = sorted(k for k, v in facts.items() if data.get(k) != v)
        if changed:
            problems.append(
                Problem(
                    "catalog_row_changed",
                    where,
                    f"differs from log entry {seq} in {', '.join(changed)}",
                )
            )
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
        expected = {
            "officer": who.officer,
            "unit": who.unit,
            "device_number": who.device_number,
            "flags": sorted(flags),
        }
        actual = {
            "officer": rec.officer,
            "unit": rec.unit,
            "device_number": rec.device_number,
            "flags": sorted(rec.flags),
        }
        changed = sorted(k for k in expected if expected[k] != actual[k])
        if changed:
            problems.append(
                Problem(
                    "catalog_label_changed",
                    f"recording {rec.id}",
                    f"{', '.join(changed)} differ from what the log's ingest and "
                    "assignment entries give",
                )
            )
    return problems


def check_exports_against_log(
    exports: list[dict[str, Any]], discs: list[dict[str, Any]], parsed: dict[int, LogEntry]
) -> list[Problem]:
    """Export and disc rows against `export.*` entries: who approved, which disc holds what.

    `discs` rows carry `recordings` (their disc_items). A disc claimed to
    hold other recordings, an image hash or a burn that no entry records,
    or an approval rewritten, is tampering with the record of copies (R6).
    """
    problems: list[Problem] = []
    planned: dict[int, dict[str, Any]] = {}
    built: dict[str, dict[str, Any]] = {}
    burned: dict[str, tuple[int, dict[str, Any]]] = {}
    for seq, entry in sorted(parsed.items()):
        if entry.kind == "export.planned":
            planned[int(entry.data.get("export", 0))] = {**entry.data, "_seq": seq}
        elif entry.kind == "export.disc_built":
            built[str(entry.data.get("label"))] = {**entry.data, "_seq": seq}
        elif entry.kind == "export.disc_burned" and entry.data.get("ok"):
            burned[str(entry.data.get("label"))] = (seq, entry.data)
    labels: dict[str, list[int]] = {}
    for row in exports:
        where = f"export {row['id']}"
        logged = planned.get(int(row["id"]))
        if logged is None:
            problems.append(Problem("export_unlogged", where, "no export.planned entry"))
            continue
        for d in logged.get("discs") or []:
            labels[str(d.get("label"))] = sorted(d.get("recordings") or [])
        changed = [
            k
            for k in ("approved_by", "reason", "medium", "copies", "capacity")
            if logged.get(k) != row.get(k)
        ]
        if changed or row.get("log_seq") != logged["_seq"]:
            problems.append(
                Problem("export_changed", where, f"differs from its entry in {', '.join(changed)}")
            )
    for disc in discs:
        where = f"disc {disc['label']}"
        if disc["label"] not in labels:
            problems.append(Problem("disc_unlogged", where, "no export.planned entry names it"))
            continue
        if sorted(disc["recordings"]) != labels[disc["label"]]:
            problems.append(
                Problem(
                    "disc_contents_changed",
                    where,
                    f"the catalog says it holds {sorted(disc['recordings'])}, "
                    f"the log {labels[disc['label']]}",
                )
            )
        made = built.get(disc["label"])
        if (disc.get("image_sha256") or None) != (made or {}).get("image_sha256"):
            problems.append(
                Problem(
                    "disc_image_changed",
                    where,
                    f"image SHA-256 {disc.get('image_sha256')} in the catalog, "
                    f"{(made or {}).get('image_sha256')} in the log",
                )
            )
        burn = burned.get(disc["label"])
        if (disc.get("burn_log_seq") or None) != (burn[0] if burn else None):
            problems.append(
                Problem("disc_burn_unlogged", where, "the burn record differs from the log")
            )
    return problems
