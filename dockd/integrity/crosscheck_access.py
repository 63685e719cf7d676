"""Access rows against the log (R6): requests, decisions, uses, confidential marks.

Pure: the catalog's rows as stored and the parsed log in, problems out.
Replaying the `access.*` and `recording.confidential` entries gives what the
catalog must hold:

- every request row has its `access.requested` entry with the same facts,
  and every such entry its row (access_request_unlogged / _missing /
  _changed);
- a decided row has its `access.approved` or `access.refused` entry, by the
  same person, with the same note and end; a row that says approved with no
  entry behind it is a forged approval (access_decision_unlogged); a decision
  the log has and the row lost is access_decision_missing;
- every use (view, copy) row has its `access.viewed` / `access.copied` entry,
  and the other way round;
- each recording's confidential mark is the last one the log gave it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dockd.integrity.chain import LogEntry, Problem
from dockd.integrity.crosscheck import _changed, json_value
from dockd.model import Recording

_DECISIONS = {"access.approved": "approved", "access.refused": "refused"}
_USES = {"access.viewed": "viewed", "access.copied": "copied"}


def check_access_against_log(
    requests: list[dict[str, Any]],
    uses: list[dict[str, Any]],
    recordings: Iterable[Recording],
    parsed: dict[int, LogEntry],
) -> list[Problem]:
    problems: list[Problem] = []
    asked: dict[Any, tuple[int, LogEntry]] = {}
    decided: dict[Any, tuple[int, LogEntry]] = {}
    used: dict[Any, LogEntry] = {}
    marks: dict[int, Any] = {}
    for seq, entry in sorted(parsed.items()):
        data = entry.data
        if entry.kind == "access.requested":
            asked[data.get("request")] = (seq, entry)
        elif entry.kind in _DECISIONS:
            decided[data.get("request")] = (seq, entry)
        elif entry.kind in _USES:
            used[seq] = entry
        elif entry.kind == "recording.confidential":
            for rid in data.get("recordings") or []:
                marks[rid] = data.get("level")
    for row in requests:
        problems += _check_request(row, asked.pop(row["id"], None), decided.pop(row["id"], None))
    for request_id, (seq, _) in sorted(asked.items(), key=lambda item: str(item[0])):
        problems.append(
            Problem(
                "access_request_missing",
                f"request {request_id}",
                f"asked for in log entry {seq}, but not in the catalog",
            )
        )
    for request_id, (seq, entry) in sorted(decided.items(), key=lambda item: str(item[0])):
        problems.append(
            Problem(
                "access_decision_missing",
                f"request {request_id}",
                f"{_DECISIONS[entry.kind]} in log entry {seq}, but the catalog has no such request",
            )
        )
    for row in uses:
        where = f"access use {row['id']}"
        use = used.pop(row["log_seq"], None)
        if use is None:
            problems.append(
                Problem("access_use_unlogged", where, f"no access entry {row['log_seq']}")
            )
            continue
        detail = json_value(row["detail"])
        facts = {
            "request": (row["request_id"], use.data.get("request")),
            "kind": (row["kind"], _USES[use.kind]),
            "recordings": (json_value(row["recordings"]), use.data.get("recordings")),
            "by": (row["by"], use.data.get("by")),
            "at": (row["at"], use.time),
        }
        logged = (
            {"folder": use.data.get("folder")}
            if use.kind == "access.viewed"
            else {"package_sha256": use.data.get("package_sha256"), "out": use.data.get("out")}
        )
        facts["detail"] = (detail, logged)
        problems += _changed("access_use_changed", where, f"log entry {row['log_seq']}", facts)
    for seq, entry in sorted(used.items()):
        problems.append(
            Problem(
                "access_use_missing",
                f"log entry {seq}",
                f"{entry.kind} of request {entry.data.get('request')} is not in the catalog",
            )
        )
    for recording in recordings:
        level = marks.get(recording.id)
        if recording.confidential != level:
            problems.append(
                Problem(
                    "confidential_changed",
                    f"recording {recording.id}",
                    f"marked {recording.confidential!r} in the catalog; the log gives {level!r}",
                )
            )
    return problems


def _check_request(
    row: dict[str, Any],
    asked: tuple[int, LogEntry] | None,
    decided: tuple[int, LogEntry] | None,
) -> list[Problem]:
    where = f"request {row['id']}"
    if asked is None:
        return [Problem("access_request_unlogged", where, "no access.requested entry")]
    seq, entry = asked
    data = entry.data
    facts = {
        "kind": (row["kind"], data.get("action")),
        "recordings": (json_value(row["recordings"]), data.get("recordings")),
        "case_no": (row["case_no"], data.get("case")),
        "reason": (row["reason"], data.get("reason")),
        "for_party": (row["for_party"], data.get("for_party")),
        "until": (row["until"], data.get("until")),
        "requested_by": (row["requested_by"], data.get("by")),
        "requested_uid": (row["requested_uid"], data.get("uid")),
        "requested_at": (row["requested_at"], entry.time),
        "log_seq": (row["log_seq"], seq),
    }
    problems = _changed("access_request_changed", where, f"log entry {seq}", facts)
    if decided is None:
        if row["state"] != "pending" or row["decided_by"] is not None:
            problems.append(
                Problem(
                    "access_decision_unlogged",
                    where,
                    f"the catalog says {row['state']} by {row['decided_by']!r}, "
                    "but no access.approved or access.refused entry records it",
                )
            )
        return problems
    dseq, dentry = decided
    d = dentry.data
    approved = dentry.kind == "access.approved"
    facts = {
        "state": (row["state"], _DECISIONS[dentry.kind]),
        "decided_by": (row["decided_by"], d.get("by")),
        "decided_uid": (row["decided_uid"], d.get("uid")),
        "decided_at": (row["decided_at"], dentry.time),
        "decision_note": (row["decision_note"], d.get("note" if approved else "reason")),
        "expires_at": (row["expires_at"], d.get("until") if approved else None),
        "decision_log_seq": (row["decision_log_seq"], dseq),
    }
    return problems + _changed("access_decision_changed", where, f"log entry {dseq}", facts)
