"""`verify_bucket` against a real radosgw: a dock's real state (ffmpeg footage ingested
by a Service, tagged, checkpointed) put into the bucket in the uploader's layout, then
changed as someone with write access to the bucket could: a new version over a key, a
delete marker, a segment never uploaded, an edited checkpoint, a short lock."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dockd.clock import FixedClock, isoformat_utc, parse_utc
from dockd.config import Config, IngestConfig, IntegrityConfig, RetentionConfig
from dockd.devices.profiles import make_profile
from dockd.integrity.checkpoint import Checkpoint
from dockd.integrity.keys import load_key
from dockd.integrity.note import VerifierKey, open_note, sign
from dockd.model import Recording
from dockd.replicate.bucket import MIN_PART, Bucket
from dockd.replicate.central import BucketReport, verify_bucket
from dockd.replicate.keys import checkpoint_key, log_segment_key, object_key, retain_until
from dockd.runner.session import run_session
from dockd.service import Service
from tests.conftest import put
from tests.replicate.ceph import Ceph, S3User


@dataclass(frozen=True)
class Dock:
    """What one dock put into the bucket."""

    prefix: str
    origin: str
    state: Path
    entries: int
    # Sizes of the checkpoints uploaded, oldest first.
    checkpoints: tuple[int, ...]
    key: VerifierKey
    recordings: tuple[Recording, ...]
    # sha256 -> version id of its object.
    objects: dict[str, str]
    # The dock's clock when it was done (later than the real one after a sweep).
    now: datetime

    def object_key(self, sha: str) -> str:
        return object_key(self.prefix, sha)

    def by_tier(self, tier: str) -> Recording:
        """A recording of `tier` whose object no other recording shares."""
        shared = {
            r.sha256
            for r in self.recordings
            if sum(x.sha256 == r.sha256 for x in self.recordings) > 1
        }
        return next(r for r in self.recordings if r.tier == tier and r.sha256 not in shared)


def _bucket(user: S3User) -> tuple[Any, str]:
    s3 = user.client()
    name = f"central-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return s3, name


def _put(s3: Any, bucket: str, key: str, data: bytes, until: datetime) -> str:
    """As the uploader writes log segments, checkpoints and keys: locked, SHA-256 in metadata."""
    answer = s3.put_object(
        Bucket=bucket, Key=key, Body=data,
        ContentMD5=base64.b64encode(hashlib.md5(data).digest()).decode(),
        Metadata={"sha256": hashlib.sha256(data).hexdigest()},
        ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until,
    )  # fmt: skip
    return str(answer["VersionId"])


def _dock(
    root: Path,
    clips: list[Path],
    s3: Any,
    bucket: str,
    now: datetime,
    *,
    origin: str = "dockd/1a2b3c4d",
    prefix: str | None = None,
    short_lock: bool = False,
    skip_segment: int | None = None,
    sweep: bool = False,
) -> Dock:
    """A real dock: a docking of four files (one twice, at two paths: one object for
    two recordings), one tagged as evidence (permanent), every object uploaded, locked
    as its retention wants and logged as verified, checkpoints, and an entry after the
    last checkpoint (not signed yet). Log segments end where checkpoints do.

    `short_lock`: one 2y recording's object is locked a day short of its expiry;
    `skip_segment`: that log segment (0-based) is never uploaded; `sweep`: routine
    footage kept 6 months, and the dock's clock then moved on until the retention
    sweep deleted it."""
    prefix = prefix or origin
    config = dataclasses.replace(
        Config(),
        state_dir=root / "state",
        ingest=IngestConfig(change_retry_delay=0.0, min_free_bytes=0),
        integrity=IntegrityConfig(origin=origin),
        retention=RetentionConfig(preset="minimum" if sweep else "daily_enforcement"),
    )
    profile = make_profile("gat947", config.profiles)
    remote = Bucket(s3, bucket)
    clock = FixedClock(now)
    with Service(config, clock) as svc:
        cam = root / "cam1"
        for i, clip in enumerate(clips[:3]):
            put(cam, f"DCIM/{i}.mp4", clip)
        put(cam, "DCIM/again/0.mp4", clips[0])
        assert run_session(svc, cam, "CAM1", profile, wipe=False).exit_code == 0
        first = svc.recordings()
        shas = [r.sha256 for r in first]
        singles = [r for r in first if shas.count(r.sha256) == 1]
        svc.tag([singles[0].id], categories=("evidence",))
        svc.checkpoint()
        recordings = svc.recordings()
        short = singles[1] if short_lock else None
        versions = {}
        logged = []
        for sha in sorted({r.sha256 for r in recordings}):
            sharing = [r for r in recordings if r.sha256 == sha]
            until = max(
                retain_until(r.tier, parse_utc(r.expires_at) if r.expires_at else None, now)
                for r in sharing
            )
            if short is not None and sha == short.sha256:
                until -= timedelta(days=1)
            up = remote.upload(
                object_key(prefix, sha), svc.store.object_path(sha), sha, sharing[0].size,
                until, MIN_PART,
            )  # fmt: skip
            assert remote.proven(up)
            versions[sha] = up.version_id
            logged.append(
                {"key": up.key, "version_id": up.version_id, "sha256": sha, "size": up.size,
                 "retain_until": isoformat_utc(until)}
            )  # fmt: skip
        # What the uploader logs once it proved them (its service method is not ours).
        with svc.catalog.transaction():
            svc._log("replicate.verified", {"bucket": bucket, "objects": logged})
        svc.checkpoint()
        if sweep:
            clock.advance(timedelta(days=200))  # past 6 months (and the days of margin)
            assert svc.sweep().marked
            clock.advance(timedelta(days=config.retention.grace_days + 1))
            assert svc.sweep().deleted
        svc.tag([singles[0].id], note="looked at")  # after the last checkpoint uploaded
        sizes = [int(c["size"]) for c in svc.catalog.checkpoints()]
        notes = {int(c["size"]): str(c["note"]) for c in svc.catalog.checkpoints()}
        entries = [row.raw for row in svc.catalog.log_rows()]
        (vkey,) = svc.trusted_keys()
        recordings = svc.recordings()
    locked = retain_until("permanent", None, now)  # as the uploader locks them
    # Segments end where checkpoints do, as the uploader cuts them; the tail after the
    # last checkpoint goes up too (an uploader may send the log before signing it).
    ends = [*sizes, len(entries)]
    start = 1
    for i, end in enumerate(ends):
        data = b"".join(e + b"\n" for e in entries[start - 1 : end])
        if i != skip_segment:
            _put(s3, bucket, log_segment_key(prefix, start, end), data, locked)
        start = end + 1
    for size in sizes:
        _put(s3, bucket, checkpoint_key(prefix, size), notes[size].encode(), locked)
    key_name = f"{prefix}/keys/{vkey.key_id:08x}.txt"
    _put(s3, bucket, key_name, (vkey.to_text() + "\n").encode(), locked)
    return Dock(
        prefix, origin, root / "state", len(entries), tuple(sizes), vkey, tuple(recordings),
        versions, clock.now(),
    )  # fmt: skip


def _kinds(report: BucketReport) -> set[str]:
    return {p.kind for p in report.problems}


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def s3_bucket(ceph: tuple[Ceph, S3User]) -> tuple[Any, str]:
    return _bucket(ceph[1])


def test_a_clean_dock_verifies_and_is_counted(
    s3_bucket: tuple[Any, str], tmp_path: Path, recent_clips: list[Path], now_utc: datetime
) -> None:
    s3, bucket = s3_bucket
    dock = _dock(tmp_path, recent_clips, s3, bucket, now_utc)
    report = verify_bucket(s3, bucket, dock.prefix, [], _now())
    assert report.problems == (), report.as_json()
    (found,) = report.docks
    assert found.prefix == dock.prefix
    assert found.entries == dock.entries
    # One at the docking's end, one after the tag, one after the upload was logged.
    assert found.checkpoints == len(dock.checkpoints) == 3
    assert found.signed == dock.checkpoints[-1]
    assert found.unsigned_entries == 1  # the note after the last checkpoint
    # Four recordings, one object shared by two of them.
    assert len(dock.recordings) == 4 and found.objects_checked == 3
    assert {r.tier for r in dock.recordings} == {"2y", "permanent"}
    # Found by itself too, and pinning the dock's own key changes nothing.
    assert verify_bucket(s3, bucket, None, [dock.key], _now()).as_json()["docks"] == [
        found.as_json()
    ]
    assert json.loads(json.dumps(report.as_json()))["ok"] is True


def test_an_object_overwritten_by_a_new_version_is_reported(
    s3_bucket: tuple[Any, str], tmp_path: Path, recent_clips: list[Path], now_utc: datetime
) -> None:
    s3, bucket = s3_bucket
    dock = _dock(tmp_path, recent_clips, s3, bucket, now_utc)
    rec = dock.by_tier("2y")
    # Same length, same claimed SHA-256: only the version history and the lock give it away.
    s3.put_object(
        Bucket=bucket, Key=dock.object_key(rec.sha256), Body=b"\0" * rec.size,
        Metadata={"sha256": rec.sha256},
    )  # fmt: skip
    report = verify_bucket(s3, bucket, dock.prefix, [], _now())
    assert _kinds(report) == {
        "bucket_object_overwritten",
        "bucket_replicated_version_replaced",
        "bucket_object_unlocked",
    }
    overwritten = next(p for p in report.problems if p.kind == "bucket_object_overwritten")
    assert overwritten.where == dock.object_key(rec.sha256)
    assert dock.objects[rec.sha256] in overwritten.detail


def test_an_object_hidden_by_a_delete_marker_is_reported(
    s3_bucket: tuple[Any, str], tmp_path: Path, recent_clips: list[Path], now_utc: datetime
) -> None:
    s3, bucket = s3_bucket
    dock = _dock(tmp_path, recent_clips, s3, bucket, now_utc)
    rec = dock.by_tier("2y")
    s3.delete_object(Bucket=bucket, Key=dock.object_key(rec.sha256))  # locked: a marker only
    report = verify_bucket(s3, bucket, dock.prefix, [], _now())
    assert _kinds(report) == {
        "bucket_object_deleted",
        "bucket_object_missing",
        "bucket_replicated_version_replaced",
    }
    assert {p.where for p in report.problems} == {dock.object_key(rec.sha256)}


def test_a_missing_log_segment_is_reported(
    s3_bucket: tuple[Any, str], tmp_path: Path, recent_clips: list[Path], now_utc: datetime
) -> None:
    s3, bucket = s3_bucket
    # The segment between the last two checkpoints (segments end at checkpoints).
    dock = _dock(tmp_path, recent_clips, s3, bucket, now_utc, skip_segment=2)
    first, second = dock.checkpoints[-2:]
    report = verify_bucket(s3, bucket, dock.prefix, [], _now())
    assert _kinds(report) == {
        "bucket_log_segment_missing",
        "log_entry_missing",  # the chain, walked over the gap
        "log_chain_broken",
        "bucket_checkpoint_ahead_of_log",  # the second checkpoint signs the lost entries
    }, report.as_json()
    missing = next(p for p in report.problems if p.kind == "bucket_log_segment_missing")
    assert missing.where == f"{dock.prefix}: log entries {first + 1}..{second}"
    ahead = next(p for p in report.problems if p.kind == "bucket_checkpoint_ahead_of_log")
    assert ahead.where == checkpoint_key(dock.prefix, second)
    (found,) = report.docks
    assert found.entries == dock.entries - (second - first)


@pytest.mark.parametrize("edit", ["root", "signature", "resigned"])
def test_an_edited_checkpoint_is_reported(
    s3_bucket: tuple[Any, str],
    tmp_path: Path,
    recent_clips: list[Path],
    now_utc: datetime,
    edit: str,
) -> None:
    s3, bucket = s3_bucket
    dock = _dock(tmp_path, recent_clips, s3, bucket, now_utc)
    first, second = dock.checkpoints[-2:]
    key = checkpoint_key(dock.prefix, second)
    note = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    body = Checkpoint.from_text(open_note(note, [dock.key]).text)
    forged = Checkpoint(body.origin, body.size, hashlib.sha256(b"another history").digest())
    if edit == "root":  # the text changed under the signature
        note = note.replace(body.to_text(), forged.to_text())
    elif edit == "signature":  # one bit of the signature
        text, _, line = note.rstrip("\n").rpartition("\n")
        name, blob = line.rsplit(" ", 1)
        raw = bytearray(base64.b64decode(blob))
        raw[-1] ^= 1
        note = f"{text}\n{name} {base64.b64encode(bytes(raw)).decode()}\n"
    else:  # whoever holds the dock's key signs another root
        private = load_key(dock.state / "keys" / "checkpoint.key")
        note = sign(forged.to_text(), dock.origin, private)
    s3.put_object(Bucket=bucket, Key=key, Body=note.encode())
    report = verify_bucket(s3, bucket, dock.prefix, [], _now())
    (found,) = report.docks
    if edit == "resigned":
        assert _kinds(report) == {
            "bucket_object_overwritten",
            "bucket_object_unlocked",
            "bucket_checkpoint_root_mismatch",
            "bucket_checkpoint_not_consistent",
        }
        assert found.signed == second
    else:
        assert _kinds(report) == {
            "bucket_object_overwritten",
            "bucket_object_unlocked",
            "bucket_checkpoint_untrusted",
        }
        # Only the first checkpoint still vouches for the log.
        assert found.signed == first and found.unsigned_entries == dock.entries - first
    assert {p.where for p in report.problems} == {key}


def test_an_object_locked_shorter_than_its_tier_is_reported(
    s3_bucket: tuple[Any, str], tmp_path: Path, recent_clips: list[Path], now_utc: datetime
) -> None:
    s3, bucket = s3_bucket
    dock = _dock(tmp_path, recent_clips, s3, bucket, now_utc, short_lock=True)
    report = verify_bucket(s3, bucket, dock.prefix, [], _now())
    assert _kinds(report) == {"bucket_object_lock_short"}
    (problem,) = report.problems
    short = [
        r for r in dock.recordings if r.tier == "2y" and dock.object_key(r.sha256) == problem.where
    ]
    assert short and short[0].expires_at is not None
    assert f"needs {short[0].expires_at}" in problem.detail


def test_footage_the_sweep_deleted_may_be_gone(
    s3_bucket: tuple[Any, str], tmp_path: Path, recent_clips: list[Path], now_utc: datetime
) -> None:
    """Locked until its expiry, then deleted by the dock's sweep: the object may stay
    or go (a lifecycle rule's delete marker); one still used must not."""
    s3, bucket = s3_bucket
    dock = _dock(tmp_path, recent_clips, s3, bucket, now_utc, sweep=True)
    deleted = [r for r in dock.recordings if r.deleted]
    kept = [r for r in dock.recordings if not r.deleted]
    assert len(deleted) == 3 and [r.tier for r in kept] == ["permanent"]
    s3.delete_object(Bucket=bucket, Key=dock.object_key(deleted[0].sha256))
    report = verify_bucket(s3, bucket, dock.prefix, [], dock.now)
    assert report.problems == (), report.as_json()
    # The permanent one, and the deleted one still there (its lock no longer matters).
    assert report.docks[0].objects_checked == 2
    s3.delete_object(Bucket=bucket, Key=dock.object_key(kept[0].sha256))
    report = verify_bucket(s3, bucket, dock.prefix, [], dock.now)
    assert _kinds(report) == {
        "bucket_object_deleted",
        "bucket_object_missing",
        "bucket_replicated_version_replaced",
    }
    assert {p.where for p in report.problems} == {dock.object_key(kept[0].sha256)}


def test_two_docks_in_one_bucket_are_both_found(
    s3_bucket: tuple[Any, str], tmp_path: Path, recent_clips: list[Path], now_utc: datetime
) -> None:
    s3, bucket = s3_bucket
    a = _dock(tmp_path / "a", recent_clips, s3, bucket, now_utc, origin="dockd/aaaa",
              prefix="east/log/dockd/aaaa")  # fmt: skip
    b = _dock(tmp_path / "b", recent_clips, s3, bucket, now_utc, origin="dockd/bbbb")
    report = verify_bucket(s3, bucket, None, [], _now())
    assert report.problems == (), report.as_json()
    assert [d.prefix for d in report.docks] == sorted([a.prefix, b.prefix])
    assert [d.entries for d in report.docks] == [
        d.entries for d in sorted([a, b], key=lambda d: d.prefix)
    ]
    # The same footage at two docks: each dock's objects are its own.
    assert all(d.objects_checked == 3 for d in report.docks)


def test_a_bucket_without_docks_says_so(ceph: tuple[Ceph, S3User]) -> None:
    s3, bucket = _bucket(ceph[1])
    s3.put_object(Bucket=bucket, Key="dockd/x/objects/sha256/ab/cd", Body=b"x")
    report = verify_bucket(s3, bucket, None, [], _now())
    assert _kinds(report) == {"bucket_no_dock"} and report.docks == ()
    assert _kinds(verify_bucket(s3, bucket, "dockd/x", [], _now())) == {"bucket_dock_empty"}


def test_checkpoints_signed_by_another_key_than_the_trusted_are_untrusted(
    s3_bucket: tuple[Any, str], tmp_path: Path, recent_clips: list[Path], now_utc: datetime
) -> None:
    s3, bucket = s3_bucket
    dock = _dock(tmp_path, recent_clips, s3, bucket, now_utc)
    stranger = VerifierKey.of(dock.origin, Ed25519PrivateKey.generate())
    report = verify_bucket(s3, bucket, dock.prefix, [stranger], _now())
    assert _kinds(report) == {"bucket_checkpoint_untrusted"}
    assert len(report.problems) == len(dock.checkpoints)
    (found,) = report.docks
    assert found.signed == 0 and found.unsigned_entries == dock.entries
