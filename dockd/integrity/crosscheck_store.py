"""Cross-checks of what the dock keeps about its own key and store against the
log: signing keys, fixity audits, exports and discs. Pure, as crosscheck.py
(whose helpers these use): rows and parsed entries in, problems out.
"""

from __future__ import annotations

import re
from typing import Any

from dockd.clock import parse_utc
from dockd.integrity.chain import LogEntry, Problem
from dockd.integrity.crosscheck import _changed, _is_int, json_value, show

# A disc label as archive.plan.disc_label spells it: export, disc number, copy, site.
_LABEL = re.compile(r"E(\d+)D(\d+)C(\d+)_")


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
