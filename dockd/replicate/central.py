"""`dockd verify --bucket`: every dock's evidence checked from the S3 bucket alone.

A central site holds no dock's state, only the bucket the docks upload to
(layout in keys.py). From it alone this re-walks each dock's log (segments,
hash chain), opens its checkpoints with the trusted keys, recomputes their
roots and the consistency between them, replays retention from the log, and
checks by HEAD that every recording's object is there with its size and
SHA-256 and is locked in COMPLIANCE mode for as long as its retention needs
(lock_needs.py).
Only the log, the checkpoints and the keys are downloaded.

The bucket is versioned with Object Lock: a locked version can be neither
deleted nor shortened, but anyone who may write can PUT a new version over a
key or hide it under a delete marker. So each key's history is listed once
and any key with a second version or a delete marker is reported; every
other check reads what a reader sees now, the latest version.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from dockd.clock import isoformat_utc, parse_utc
from dockd.integrity.chain import LogEntry, Problem, StoredEntry, check_chain
from dockd.integrity.checkpoint import Checkpoint, CheckpointError
from dockd.integrity.crosscheck import logged_keys, parse_entries
from dockd.integrity.merkle import (
    build_nodes,
    consistency_proof,
    leaf_hash,
    root_hash,
    verify_consistency,
)
from dockd.integrity.note import NoteError, VerifierKey, open_note

# The one replay of retention, holds and cases (replay.py): the bucket must keep what
# the dock's own `dockd verify` replays, not what a second reading of the log says.
from dockd.replicate.bucket import BucketError, error_code
from dockd.replicate.keys import checkpoint_key, object_key
from dockd.replicate.lock_needs import Need, needs_of

# The sections of a dock's prefix: a key under it in none of them (a nested
# dock's, say) is not this dock's.
SECTIONS = frozenset({"log", "checkpoints", "keys", "objects", "catalog"})
_SEGMENT = re.compile(r"log/(\d{12})-(\d{12})\.jsonl")
_CHECKPOINT = re.compile(r"checkpoints/\d{12}\.txt")
_KEY_FILE = re.compile(r"keys/([0-9a-f]{8})\.txt")
# A dock is a prefix with log segments or checkpoints (greedy: a prefix may hold `log/`).
_DOCK = re.compile(r"(.+)/(?:log|checkpoints)/[^/]+")
_REPLICATED = ("replicate.verified", "replicate.extended")
# A recording's object may follow its ingest entry by this long (a dock uploads
# the log first, and may be offline for a while) before it counts as missing.
DEFAULT_GRACE = timedelta(hours=24)


@dataclass(frozen=True)
class DockReport:
    prefix: str
    entries: int
    checkpoints: int
    # Size of the newest checkpoint that opened with a trusted key (0: none).
    signed: int
    objects_checked: int
    problems: tuple[Problem, ...]
    # Objects of recordings ingested within the grace, not in the bucket yet: in flight.
    in_flight: int = 0

    @property
    def unsigned_entries(self) -> int:
        """Entries after the newest trusted checkpoint: fine (not signed yet), unvouched."""
        return max(0, self.entries - self.signed)

    def as_json(self) -> dict[str, Any]:
        fields = {k: v for k, v in vars(self).items() if k != "problems"}
        problems = [p.as_dict() for p in self.problems]
        return {**fields, "unsigned_entries": self.unsigned_entries, "problems": problems}


@dataclass(frozen=True)
class BucketReport:
    bucket: str
    checked_at: str
    docks: tuple[DockReport, ...]
    # Of the bucket as a whole (no dock in it).
    bucket_problems: tuple[Problem, ...] = ()

    @property
    def problems(self) -> tuple[Problem, ...]:
        return self.bucket_problems + tuple(p for dock in self.docks for p in dock.problems)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "checked_at": self.checked_at,
            "ok": self.ok,
            "docks": [d.as_json() for d in self.docks],
            "problems": [p.as_dict() for p in self.problems],
        }


@dataclass(frozen=True)
class Version:
    id: str
    latest: bool
    marker: bool  # a delete marker, not content


# key -> its versions and delete markers, as list_object_versions gives them.
Listing = dict[str, list[Version]]


def verify_bucket(
    client: Any,
    bucket: str,
    prefix: str | None,
    trusted_keys: Sequence[VerifierKey],
    now: datetime,
    grace: timedelta = DEFAULT_GRACE,
) -> BucketReport:
    """Check the dock under `prefix`, or with None every dock in `bucket`.

    `trusted_keys`, when given, are the only keys checkpoints may be signed by (as
    integrity.trusted_keys pins them on a dock); else those the log introduced.
    `client` is a boto3 S3 client. Raises BucketError if the bucket cannot be listed.
    """
    if prefix is not None:
        docks = {prefix.strip("/"): list_versions(client, bucket, prefix.strip("/") + "/")}
    else:
        everything = list_versions(client, bucket, "")
        docks = {p: everything for p in find_docks(everything)}
    reports = tuple(
        verify_dock(client, bucket, p, listing, trusted_keys, now, grace)
        for p, listing in sorted(docks.items())
    )
    none = () if docks else (Problem("bucket_no_dock", bucket, "no log or checkpoint key"),)
    return BucketReport(bucket, isoformat_utc(now), reports, none)


def find_docks(keys: Iterable[str]) -> list[str]:
    """Every dock prefix among the key names: those with log/ or checkpoints/ keys."""
    return sorted({m.group(1) for key in keys if (m := _DOCK.fullmatch(key))})


def list_versions(client: Any, bucket: str, prefix: str) -> Listing:
    """Every version and delete marker under `prefix`, all pages."""
    listing: Listing = {}
    try:
        pages = client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for marker, kind in ((False, "Versions"), (True, "DeleteMarkers")):
                for item in page.get(kind, []):
                    version = Version(str(item["VersionId"]), bool(item["IsLatest"]), marker)
                    listing.setdefault(str(item["Key"]), []).append(version)
    except Exception as exc:
        code = error_code(exc)
        raise BucketError(f"{bucket}/{prefix}: cannot list the bucket ({code})") from None
    return listing


class _Dock:
    """One dock's keys (its sections only), reads of their latest versions, its problems."""

    def __init__(
        self, client: Any, bucket: str, prefix: str, listing: Listing, now: datetime
    ) -> None:
        self.s3, self.bucket, self.prefix, self.now = client, bucket, prefix, now
        self.versions = {
            key: versions
            for key, versions in listing.items()
            if key.startswith(prefix + "/") and self.name(key).split("/", 1)[0] in SECTIONS
        }
        self.problems: list[Problem] = []

    def add(self, kind: str, where: str, detail: str) -> None:
        self.problems.append(Problem(kind, where, detail))

    def where(self, place: str) -> str:
        return f"{self.prefix}: {place}"

    def name(self, key: str) -> str:
        return key[len(self.prefix) + 1 :]

    def latest(self, key: str) -> str | None:
        """The latest version id of `key`; None when absent or under a delete marker."""
        found = [v.id for v in self.versions.get(key, []) if v.latest and not v.marker]
        return found[0] if found else None

    def section(self, pattern: re.Pattern[str]) -> list[tuple[str, re.Match[str]]]:
        """(key, match) of every key a reader sees whose name after the prefix matches."""
        matches = ((key, pattern.fullmatch(self.name(key))) for key in sorted(self.versions))
        return [(key, m) for key, m in matches if m and self.latest(key) is not None]

    def get(self, key: str) -> bytes | None:
        """The latest version's bytes; None (and a problem) when it cannot be read.

        Log segments, checkpoints and keys are the proof of all else: each must be
        locked (the dock locks them for ever) and match its SHA-256 metadata.
        """
        try:
            answer = self.s3.get_object(Bucket=self.bucket, Key=key, VersionId=self.latest(key))
            data = bytes(answer["Body"].read())
        except Exception as exc:
            self.add("bucket_read_failed", key, f"GET: {error_code(exc)}")
            return None
        claimed = answer.get("Metadata", {}).get("sha256")
        if claimed is not None and claimed != hashlib.sha256(data).hexdigest():
            self.add("bucket_object_hash", key, f"its bytes do not hash to {claimed}")
        mode, until = answer.get("ObjectLockMode"), answer.get("ObjectLockRetainUntilDate")
        if mode != "COMPLIANCE" or until is None or until < self.now:
            self.add("bucket_object_unlocked", key, f"lock {mode} until {until}")
        return data

    def head(self, key: str) -> dict[str, Any] | None:
        try:
            answer = self.s3.head_object(Bucket=self.bucket, Key=key, VersionId=self.latest(key))
            return cast(dict[str, Any], answer)
        except Exception as exc:
            self.add("bucket_read_failed", key, f"HEAD: {error_code(exc)}")
            return None


def verify_dock(
    client: Any,
    bucket: str,
    prefix: str,
    listing: Listing,
    trusted_keys: Sequence[VerifierKey],
    now: datetime,
    grace: timedelta = DEFAULT_GRACE,
) -> DockReport:
    """Every check of the dock under `prefix`; `listing` holds (at least) its keys."""
    dock = _Dock(client, bucket, prefix, listing, now)
    rows = _read_log(dock)
    for p in check_chain(rows):
        dock.add(p.kind, dock.where(p.where), p.detail)
    parsed = parse_entries(rows)
    checkpoints, signed = _checkpoints(dock, rows, _keys(dock, parsed, trusted_keys))
    needs, malformed = needs_of(parsed, now)
    for seq in malformed:
        dock.add("bucket_ingest_malformed", dock.where(f"log entry {seq}"), "no id or hash")
    proved = _proved(dock, parsed)
    checked, in_flight = _objects(dock, needs, proved, grace)
    # An object that only deleted, expired recordings use may go (a lifecycle rule once
    # its lock ends): neither its delete marker nor its proven version is missed.
    gone = {object_key(prefix, sha) for sha, need in needs.items() if need.may_be_absent}
    _history(dock, gone)
    _replicated(dock, {key: p for key, p in proved.items() if key not in gone})
    if not rows and not checkpoints:
        dock.add("bucket_dock_empty", prefix, "no log segment or checkpoint")
    return DockReport(
        prefix, len(rows), checkpoints, signed, checked, tuple(dock.problems), in_flight
    )


def _history(dock: _Dock, gone: set[str]) -> None:
    """Every key written more than once, or hidden: the dock writes each key once."""
    for key, versions in sorted(dock.versions.items()):
        contents = [v.id for v in versions if not v.marker]
        if len(contents) > 1:
            dock.add("bucket_object_overwritten", key, f"{len(contents)} versions: {contents}")
        if key not in gone and any(v.latest and v.marker for v in versions):
            dock.add("bucket_object_deleted", key, f"a delete marker hides versions {contents}")


# -- the log ------------------------------------------------------------------------------


def _read_log(dock: _Dock) -> list[StoredEntry]:
    """The entries of every segment, by their place in the log (a gap stays a gap)."""
    by_place: dict[int, bytes] = {}
    expected = 1
    for key, match in dock.section(_SEGMENT):
        first, last = int(match.group(1)), int(match.group(2))
        if not 1 <= first <= last:
            dock.add("bucket_log_segment_malformed", key, "not a range of entries")
            continue
        if first > expected:
            where = dock.where(f"log entries {expected}..{first - 1}")
            dock.add("bucket_log_segment_missing", where, f"no segment holds them; next: {key}")
        elif first < expected:
            dock.add("bucket_log_segment_overlap", key, f"entries before {expected} again")
        data = dock.get(key)
        if data is not None:
            _place_lines(dock, key, first, last, data, by_place)
        expected = max(expected, last + 1)
    return [
        StoredEntry(seq, raw, hashlib.sha256(raw).hexdigest())
        for seq, raw in sorted(by_place.items())
    ]


def _place_lines(
    dock: _Dock, key: str, first: int, last: int, data: bytes, by_place: dict[int, bytes]
) -> None:
    ended = data.endswith(b"\n")
    lines = data.split(b"\n") if data else []
    if ended:
        lines.pop()
    if len(lines) != last - first + 1 or not ended:
        detail = f"{len(lines)} lines for entries {first}..{last}, final newline: {ended}"
        dock.add("bucket_log_segment_malformed", key, detail)
    # Placed by position: an entry moved or edited is then found by the chain check
    # (its seq, its prev), and a line too many is not taken at all.
    for seq, raw in zip(range(first, last + 1), lines, strict=False):
        if seq not in by_place:
            by_place[seq] = raw
        elif by_place[seq] != raw:
            dock.add("bucket_log_segment_overlap", key, f"entry {seq} differs")


def _contiguous(rows: list[StoredEntry]) -> list[bytes]:
    """Entries 1..n up to the first gap: the only ones a Merkle root can be computed from."""
    raws: list[bytes] = []
    for row in rows:  # in seq order
        if row.seq != len(raws) + 1:
            break
        raws.append(row.raw)
    return raws


# -- keys and checkpoints ---------------------------------------------------------------


def _keys(
    dock: _Dock, parsed: dict[int, LogEntry], trusted_keys: Sequence[VerifierKey]
) -> list[VerifierKey]:
    """The keys checkpoints are opened with; the key files are checked against the log.

    Trust comes from the pins, else from the log (key.created, key.rotated), never
    from a key file: a file the log does not introduce is reported, not trusted.
    """
    logged = logged_keys(parsed)
    files: set[str] = set()
    for key, match in dock.section(_KEY_FILE):
        data = dock.get(key)
        if data is None:
            continue
        key_id = match.group(1)
        files.add(key_id)
        try:
            text = data.decode("utf-8").strip()
            found = VerifierKey.from_text(text)
        except (UnicodeDecodeError, NoteError) as exc:
            dock.add("bucket_key_malformed", key, str(exc))
            continue
        if f"{found.key_id:08x}" != key_id:
            dock.add("bucket_key_malformed", key, f"holds key {found.key_id:08x}")
        elif key_id not in logged:
            dock.add("bucket_key_unlogged", key, "no key.created or key.rotated entry has it")
        elif logged[key_id] != text:
            dock.add("bucket_key_changed", key, f"the log has {logged[key_id]}")
    for key_id in sorted(logged.keys() - files):
        dock.add("bucket_key_missing", f"{dock.prefix}/keys/{key_id}.txt", "the log has it")
    if trusted_keys:
        return list(trusted_keys)
    trusted: list[VerifierKey] = []
    for key_id, text in sorted(logged.items()):
        try:
            trusted.append(VerifierKey.from_text(text))
        except NoteError as exc:
            dock.add("bucket_key_malformed", dock.where(f"logged key {key_id}"), str(exc))
    return trusted


def _checkpoints(dock: _Dock, rows: list[StoredEntry], keys: list[VerifierKey]) -> tuple[int, int]:
    """Open, name-check and recompute every checkpoint; (how many, newest trusted size)."""
    raws = _contiguous(rows)
    nodes = build_nodes(leaf_hash(raw) for raw in raws)

    def read(level: int, index: int) -> bytes:
        return nodes[(level, index)]

    opened: list[Checkpoint] = []
    listed = dock.section(_CHECKPOINT)
    for key, _ in listed:
        body = _open_checkpoint(dock, key, keys)
        if body is None:
            continue
        if checkpoint_key(dock.prefix, body.size) != key:
            dock.add("bucket_checkpoint_misnamed", key, f"it signs size {body.size}")
        if opened and body.origin != opened[0].origin:
            dock.add("bucket_checkpoint_origin", key, f"{body.origin!r}, not {opened[0].origin!r}")
        if body.size > len(raws):
            detail = f"signs {body.size} entries, the bucket has {len(raws)} without a gap"
            dock.add("bucket_checkpoint_ahead_of_log", key, detail)
        elif body.root != root_hash(read, body.size):
            detail = f"the first {body.size} entries do not hash to its root"
            dock.add("bucket_checkpoint_root_mismatch", key, detail)
        opened.append(body)
    _consistency(dock, sorted(opened, key=lambda c: c.size), read, len(raws))
    return len(listed), max((body.size for body in opened), default=0)


def _open_checkpoint(dock: _Dock, key: str, keys: list[VerifierKey]) -> Checkpoint | None:
    data = dock.get(key)
    if data is None:
        return None
    try:
        text = open_note(data.decode("utf-8"), keys).text
    except (UnicodeDecodeError, NoteError) as exc:
        dock.add("bucket_checkpoint_untrusted", key, str(exc))
        return None
    try:
        return Checkpoint.from_text(text)
    except CheckpointError as exc:
        dock.add("bucket_checkpoint_malformed", key, str(exc))
        return None


def _consistency(
    dock: _Dock, opened: list[Checkpoint], read: Callable[[int, int], bytes], size: int
) -> None:
    """Each signed root an append-only extension of the one before (RFC 9162 §2.1.4):
    two trusted roots that are not is a fork, two histories signed by one key."""
    for old, new in itertools.pairwise(opened):
        if new.size > size:
            break  # no entries to prove it from (reported as ahead of the log)
        proof = consistency_proof(read, old.size, new.size)
        if not verify_consistency(old.size, new.size, old.root, new.root, proof):
            key = checkpoint_key(dock.prefix, new.size)
            detail = f"not an extension of the signed size {old.size}"
            dock.add("bucket_checkpoint_not_consistent", key, detail)


# -- objects: what the bucket must hold, replayed from the log ---------------------------


def _objects(
    dock: _Dock, needs: dict[str, Need], proved: dict[str, _Proved], grace: timedelta
) -> tuple[int, int]:
    """HEAD each needed object: present, its size, SHA-256 and lock. (How many were
    checked, how many are in flight: ingested within `grace`, not proven yet.)"""
    checked = in_flight = 0
    for sha, need in sorted(needs.items()):
        key = object_key(dock.prefix, sha)
        logged = proved.get(key)
        if logged is not None and logged.until is not None:
            need.want(logged.until, f"log entry {logged.seq} says the dock locked it so")
        if dock.latest(key) is not None:
            head = dock.head(key)
            if head is not None:
                checked += 1
                _check_head(dock, key, sha, need, head)
        elif need.may_be_absent:
            continue
        elif logged is None and need.ingested and dock.now - need.ingested < grace:
            in_flight += 1  # the log goes up before the evidence: still being uploaded
        elif logged is None:
            # Never proven: the log went up before it (an upload retried later), or lost.
            since = f"ingested {isoformat_utc(need.ingested)}" if need.ingested else "ingested"
            dock.add(
                "bucket_object_not_replicated",
                key,
                f"of recordings {need.recordings}, {since}: not in the bucket after {grace}",
            )
        else:
            dock.add("bucket_object_missing", key, f"proven by log entry {logged.seq}")
    return checked, in_flight


def _check_head(dock: _Dock, key: str, sha: str, need: Need, head: dict[str, Any]) -> None:
    if head.get("ContentLength") != need.size:
        dock.add("bucket_object_size", key, f"{head.get('ContentLength')} bytes, not {need.size}")
    if head.get("Metadata", {}).get("sha256") != sha:
        dock.add("bucket_object_hash", key, f"metadata {head.get('Metadata')}")
    if need.until is None:
        return
    mode, until = head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate")
    if mode != "COMPLIANCE" or until is None:
        dock.add("bucket_object_unlocked", key, f"lock {mode}; needed ({need.why})")
    elif until < need.until:
        needed = f"needs {isoformat_utc(need.until)} ({need.why})"
        dock.add("bucket_object_lock_short", key, f"locked until {isoformat_utc(until)}, {needed}")


# -- what the dock logged it uploaded ------------------------------------------------------


@dataclass(frozen=True)
class _Proved:
    seq: int  # the last replicate.* entry that names the key
    version: str
    until: datetime | None  # the latest retain-until logged for it


def _proved(dock: _Dock, parsed: dict[int, LogEntry]) -> dict[str, _Proved]:
    """key -> what replicate.verified / .extended entries about this bucket say of it."""
    proved: dict[str, _Proved] = {}
    for seq, entry in sorted(parsed.items()):
        if entry.kind not in _REPLICATED or entry.data.get("bucket") != dock.bucket:
            continue
        for item in entry.data.get("objects") or []:
            key = item.get("key") if isinstance(item, dict) else None
            if not isinstance(key, str):
                continue
            try:
                until: datetime | None = parse_utc(str(item.get("retain_until")))
            except ValueError:
                until = None
            before = proved.get(key)
            if before is not None and before.until is not None:
                until = max(until, before.until) if until else before.until
            proved[key] = _Proved(seq, str(item.get("version_id")), until)
    return proved


def _replicated(dock: _Dock, proved: dict[str, _Proved]) -> None:
    """Each key the dock logged it proved still shows that version (a second version is
    also reported as overwritten)."""
    for key, logged in sorted(proved.items()):
        if not key.startswith(dock.prefix + "/"):
            continue  # under another prefix (the dock's was changed): not listed here
        ids = [v.id for v in dock.versions.get(key, []) if not v.marker]
        said = f"log entry {logged.seq} proved version {logged.version}"
        if logged.version not in ids:
            dock.add("bucket_replicated_version_missing", key, f"{said}; the bucket has {ids}")
        elif dock.latest(key) != logged.version:
            latest = dock.latest(key) or "a delete marker"
            dock.add("bucket_replicated_version_replaced", key, f"{said}, the latest is {latest}")
