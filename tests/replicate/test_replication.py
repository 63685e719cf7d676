"""A dock's evidence replicated to a real radosgw: the queue, the locks, the wipe gate.

Every test docks real MP4s (dated from the real clock: the server checks
requests against its clock, and the locks must lie in its future) into a
real state directory and uploads them with the real uploader to a fresh
bucket of the session's Ceph cluster. Nothing of S3 is mocked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dockd.clock import SystemClock, parse_utc
from dockd.config import Config, IngestConfig
from dockd.devices.profiles import make_profile
from dockd.integrity.chain import LogEntry
from dockd.replicate.bucket import Bucket
from dockd.replicate.keys import checkpoint_key, clean_prefix, object_key
from dockd.runner.replication import Uploader
from dockd.runner.session import run_session
from dockd.service import Service
from dockd.settings import parse
from tests.conftest import put
from tests.replicate.ceph import Ceph, S3User
from tests.replicate.conftest import Relay, credentials_file, new_bucket, replicate_toml

pytestmark = pytest.mark.ceph
SERIAL = "DSJ0001"


def dock_config(tmp_path: Path, user: S3User, bucket: str, **extra: object) -> Config:
    text = replicate_toml(user, bucket, credentials_file(tmp_path, user), **extra)
    config = parse(text)
    return dataclasses.replace(
        config,
        state_dir=tmp_path / "state",
        ingest=IngestConfig(change_retry_delay=0.0, min_free_bytes=0),
    )


def dock_files(tmp_path: Path, user: S3User, bucket: str, **extra: object) -> tuple[Config, Path]:
    """dock_config, and the same as a config file for the CLI (`--config`)."""
    config = dock_config(tmp_path, user, bucket, **extra)
    toml = tmp_path / "dockd.toml"
    replicate = replicate_toml(user, bucket, Path(config.replicate.credentials), **extra)
    toml.write_text(f'state_dir = "{config.state_dir}"\n' + replicate)
    return config, toml


def dock(service: Service, camera: Path, clips: list[Path], wipe: bool = True) -> Any:
    for i, clip in enumerate(clips):
        put(camera, f"DCIM/100MEDIA/clip{i}.mp4", clip)
    return run_session(
        service, camera, SERIAL, make_profile("gat947", service.config.profiles), wipe=wipe
    )


def push(service: Service) -> Any:
    return Uploader(service, Bucket.open(service.config.replicate), service.clock).drain()


def versions(s3: Any, bucket: str, prefix: str) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for v in page.get("Versions", []):
            found.setdefault(v["Key"], []).append(v)
    return found


def logged(service: Service, kind: str) -> list[LogEntry]:
    return [
        entry
        for row in service.catalog.log_rows()
        if (entry := LogEntry.from_bytes(row.raw)).kind == kind
    ]


def test_a_docking_goes_up_locked_logged_and_verifiable(
    ceph: tuple[Ceph, S3User], tmp_path: Path, recent_clips: list[Path]
) -> None:
    _, user = ceph
    bucket = new_bucket(user)
    config = dock_config(tmp_path, user, bucket)
    s3 = user.client()
    with Service(config, SystemClock()) as service:
        report = dock(service, tmp_path / "cam", recent_clips[:3])
        assert report.counts()["wiped"] == 3  # require_before_wipe is off by default
        prefix = service.replication_prefix()
        assert prefix == clean_prefix(service.origin)
        queued = service.replication_status()
        assert queued.pending >= 3 + 1 + 1 + 1  # objects, log, checkpoint, key (and session)
        done = push(service)
        # What was queued, and the checkpoint of the replicate.verified entry with its log.
        assert done.failed == 0 and done.verified == queued.pending + 2
        status = service.replication_status()
        assert (status.pending, status.uploading) == (0, 0)
        assert status.verified_checkpoints >= 1
        recordings = service.recordings()
        held = versions(s3, bucket, prefix)
        for rec in recordings:
            key = object_key(prefix, rec.sha256)
            assert len(held[key]) == 1
            head = s3.head_object(Bucket=bucket, Key=key)
            assert head["ObjectLockMode"] == "COMPLIANCE"
            assert head["Metadata"]["sha256"] == rec.sha256
            assert head["ContentLength"] == rec.size
            assert rec.expires_at is not None
            assert head["ObjectLockRetainUntilDate"] >= parse_utc(rec.expires_at)
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert hashlib.sha256(body).hexdigest() == rec.sha256
        # The log in segments that cover it from entry 1, and the signed checkpoint.
        last = service.catalog.last_checkpoint()
        assert last is not None
        segments = sorted(k for k in held if "/log/" in k)
        entries = b"".join(
            s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in segments
        ).splitlines()
        assert entries[: int(last["size"])] == [
            service.log_entry(seq) for seq in range(1, int(last["size"]) + 1)
        ]
        note = s3.get_object(Bucket=bucket, Key=checkpoint_key(prefix, int(last["size"])))
        assert note["Body"].read().decode() == last["note"]
        assert any("/keys/" in k for k in held) and any("/catalog/session-" in k for k in held)
        # Each verified object is named, with its version, by a replicate.verified entry.
        named = {
            o["key"]: o["version_id"]
            for e in logged(service, "replicate.verified")
            for o in e.data["objects"]
        }
        for rec in recordings:
            key = object_key(prefix, rec.sha256)
            assert named[key] == held[key][0]["VersionId"]
        verified = service.verify()
        assert verified.ok, verified.problems
        assert verified.anchor is not None and "size" in verified.anchor
        # The chain of custody says where the evidence went, which version, until when.
        rec = recordings[0]
        [event] = [e for e in service.custody([rec.id]).events if e.kind == "replicate.verified"]
        assert f"copied to bucket {bucket}" in event.what_en
        assert held[object_key(prefix, rec.sha256)][0]["VersionId"] in event.what_en


def test_a_duplicate_is_uploaded_once(
    ceph: tuple[Ceph, S3User], tmp_path: Path, recent_clips: list[Path]
) -> None:
    _, user = ceph
    bucket = new_bucket(user)
    with Service(dock_config(tmp_path, user, bucket), SystemClock()) as service:
        camera = tmp_path / "cam"
        put(camera, "DCIM/a.mp4", recent_clips[0])
        put(camera, "DCIM/copy-of-a.mp4", recent_clips[0])
        report = run_session(
            service, camera, SERIAL, make_profile("gat947", service.config.profiles), wipe=True
        )
        assert report.counts()["ingested"] == 2
        push(service)
        key = object_key(service.replication_prefix(), report.outcomes[0].recording.sha256)
        rows = [r for r in service.catalog.replication_rows() if r["kind"] == "object"]
        assert [r["key"] for r in rows] == [key]
        assert len(versions(user.client(), bucket, key)[key]) == 1


def test_a_raised_tier_extends_the_lock_and_the_bucket_refuses_to_shorten(
    ceph: tuple[Ceph, S3User], tmp_path: Path, recent_clips: list[Path]
) -> None:
    _, user = ceph
    bucket = new_bucket(user)
    s3 = user.client()
    with Service(dock_config(tmp_path, user, bucket), SystemClock()) as service:
        report = dock(service, tmp_path / "cam", recent_clips[:1])
        push(service)
        rec = report.outcomes[0].recording
        key = object_key(service.replication_prefix(), rec.sha256)
        before = s3.head_object(Bucket=bucket, Key=key)["ObjectLockRetainUntilDate"]
        assert rec.tier == "2y"
        service.tag([rec.id], categories=("evidence",), reason="assault on an officer")
        assert service.recording(rec.id).tier == "permanent"  # type: ignore[union-attr]
        extended = Uploader(service, Bucket.open(service.config.replicate), service.clock).drain()
        assert extended.extended == 1
        after = s3.head_object(Bucket=bucket, Key=key)["ObjectLockRetainUntilDate"]
        assert after > before + timedelta(days=5 * 365)
        entry = logged(service, "replicate.extended")[-1]
        assert entry.data["objects"][0]["key"] == key
        # Nothing dockd or root can do through S3 takes it back.
        version = s3.head_object(Bucket=bucket, Key=key)["VersionId"]
        with pytest.raises(Exception, match="AccessDenied"):
            s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
        with pytest.raises(Exception, match=r"AccessDenied|InvalidArgument|InvalidRequest"):
            s3.put_object_retention(
                Bucket=bucket, Key=key, VersionId=version,
                Retention={"Mode": "COMPLIANCE", "RetainUntilDate": before},
            )  # fmt: skip
        # A second pass has nothing to extend: the lock only moves when retention moves.
        assert service.extend_locks(Bucket.open(service.config.replicate)) == 0


def test_radosgw_killed_mid_multipart_nothing_verified_early_then_completed(
    ceph: tuple[Ceph, S3User], tmp_path: Path
) -> None:
    cluster, user = ceph
    bucket = new_bucket(user)
    camera = tmp_path / "cam"
    # 12 MiB, parts of 5 MiB: a multipart upload. Not a movie: ingested, flagged.
    put(camera, "DCIM/big.mp4", os.urandom(12 << 20))
    with Service(dock_config(tmp_path, user, bucket), SystemClock()) as service:
        run_session(
            service, camera, SERIAL, make_profile("gat947", service.config.profiles), wipe=False
        )
        target = Bucket.open(service.config.replicate)
        original = target.s3.upload_part
        parts: list[int] = []

        def dies_after_the_first_part(**kwargs: object) -> object:
            if parts:
                cluster.kill("client.rgw.a", signal.SIGKILL)
            parts.append(1)
            return original(**kwargs)

        target.s3.upload_part = dies_after_the_first_part
        uploader = Uploader(service, target, service.clock)
        try:
            done = uploader.drain()
        finally:
            cluster.start_rgw()
        assert done.failed >= 1
        big = next(r for r in service.catalog.replication_rows() if r["kind"] == "object")
        assert big["state"] == "pending" and big["version_id"] is None
        # The first try failed mid-multipart. Full-jitter back-off may draw ~0 s, so a
        # second try can run in the same drain while radosgw is still down, and its
        # error (the lookup) replaces the first one's: either names the lost endpoint.
        assert "EndpointConnectionError" in big["last_error"], big["last_error"]
        assert versions(user.client(), bucket, big["key"]) == {}
        # After the restart: the back-off passed, the upload completes and is proven.
        _retry_now(service)
        assert push(service).failed == 0
        big = service.catalog.upload(bucket, big["key"])
        # Tried again (the first try failed mid-upload; a back-off may allow one more
        # before radosgw returned), then verified once.
        assert big is not None and big["state"] == "verified" and big["attempts"] >= 2
        assert len(versions(user.client(), bucket, big["key"])[big["key"]]) == 1


def test_bucket_down_for_the_docking_keeps_the_camera_until_uploaded(
    ceph: tuple[Ceph, S3User], tmp_path: Path, recent_clips: list[Path]
) -> None:
    _, user = ceph
    bucket = new_bucket(user)
    config = dock_config(tmp_path, user, bucket, require_before_wipe=True)
    camera = tmp_path / "cam"
    # The bucket out of reach for the whole docking (its address refuses connections,
    # as a stopped radosgw's does; killing the shared one costs the next test 20 s).
    away = dataclasses.replace(
        config, replicate=dataclasses.replace(config.replicate, endpoint="http://127.0.0.1:9")
    )
    with Service(away, SystemClock()) as service:
        report = dock(service, camera, recent_clips[:2])
        # Ingested and proven on the dock; kept on the camera: the bucket has none.
        assert report.counts()["ingested"] == 2
        assert report.counts()["wiped"] == 0 and report.counts()["waiting_for_upload"] == 2
        assert len(list((camera / "DCIM" / "100MEDIA").iterdir())) == 2
        with pytest.raises(Exception, match="cannot reach"):
            push(service)
    with Service(config, SystemClock()) as service:
        assert push(service).failed == 0
        # Docked again: the files are duplicates, now in the bucket, so cleared.
        again = run_session(
            service, camera, SERIAL, make_profile("gat947", config.profiles), wipe=True
        )
        assert again.counts()["duplicates"] == 2 and again.counts()["wiped"] == 2
        assert list((camera / "DCIM" / "100MEDIA").iterdir()) == []


def test_bad_targets_are_refused_before_anything_is_queued_as_done(
    ceph: tuple[Ceph, S3User], tmp_path: Path, recent_clips: list[Path]
) -> None:
    _, user = ceph
    from dockd.errors import ConfigError

    unlocked = new_bucket(user, lock=False)
    with Service(dock_config(tmp_path, user, unlocked), SystemClock()) as service:
        dock(service, tmp_path / "cam", recent_clips[:1], wipe=False)
        with pytest.raises(ConfigError, match=r"replicate\.bucket: .*Object Lock"):
            push(service)
        assert service.replication_status().verified == 0
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    good = dock_config(wrong, user, new_bucket(user))
    secret = credentials_file(wrong, user, secret="not-the-secret")
    config = dataclasses.replace(
        good, replicate=dataclasses.replace(good.replicate, credentials=str(secret))
    )
    with Service(config, SystemClock()) as service:
        with pytest.raises(ConfigError, match=r"replicate\.credentials"):
            push(service)
        assert service.replication_status().verified == 0


def test_the_local_log_is_held_against_the_bucket(
    ceph: tuple[Ceph, S3User], tmp_path: Path, recent_clips: list[Path]
) -> None:
    """As an attacker with root would: the catalog deleted, every checkpoint deleted,
    the key replaced and a new checkpoint signed. Each passes a verify that checks the
    log only against itself; against the bucket, each is tampering."""
    _, user = ceph
    config = dock_config(tmp_path, user, new_bucket(user))
    state = config.state_dir
    with Service(config, SystemClock()) as service:
        dock(service, tmp_path / "cam", recent_clips[:2])
        push(service)
        assert service.verify().ok
    pristine = tmp_path / "pristine"
    shutil.copytree(state, pristine)

    def restore() -> None:
        shutil.rmtree(state)
        shutil.copytree(pristine, state)

    def problems() -> set[str]:
        with Service(config, SystemClock(), write=False) as reader:
            return {p.kind for p in reader.verify().problems}

    # 1. The whole catalog deleted (dockd starts a new, empty one).
    for name in ("catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm"):
        (state / name).unlink(missing_ok=True)
    unanchored = dataclasses.replace(
        config, replicate=dataclasses.replace(config.replicate, bucket="")
    )
    with Service(unanchored, SystemClock()):
        pass  # dockd restarted on the empty state, offline: nothing of it goes up
    assert "log_shorter_than_bucket" in problems()
    with Service(unanchored, SystemClock(), write=False) as reader:
        assert reader.verify().ok  # what the issue found: alone, it passes

    # 2. Every checkpoint deleted (as root with the file: triggers dropped).
    restore()
    import sqlite3

    db = sqlite3.connect(state / "catalog.sqlite")
    for (name,) in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'checkpoints'"
    ).fetchall():
        db.execute(f"DROP TRIGGER {name}")
    db.execute("DELETE FROM checkpoints")
    db.commit()
    db.close()
    assert "checkpoint_missing_locally" in problems()

    # 3. The signing key replaced, and a new checkpoint signed with it.
    restore()
    (state / "keys" / "checkpoint.key").unlink()
    with Service(unanchored, SystemClock()) as service:
        service.checkpoint()
    with Service(unanchored, SystemClock(), write=False) as reader:
        assert reader.verify().ok  # alone, it passes
    assert "signing_key_replaced" in problems()


def test_sigkill_at_random_points_of_the_queue_loses_nothing(
    ceph: tuple[Ceph, S3User], tmp_path: Path, recent_clips: list[Path]
) -> None:
    """`dockd replicate push` SIGKILLed again and again at random instants: after the
    last run every object is verified once, with one version in the bucket."""
    import random
    import subprocess
    import sys

    _, user = ceph
    bucket = new_bucket(user)
    # 2 MiB/s: a push takes seconds, so that the kills land inside its uploads.
    config, toml = dock_files(tmp_path, user, bucket, bandwidth_limit=2 << 20)
    camera = tmp_path / "cam"
    for i, clip in enumerate(recent_clips):
        put(camera, f"DCIM/{i}.mp4", clip)
    put(camera, "DCIM/big.mp4", os.urandom(11 << 20))  # a multipart upload too
    with Service(config, SystemClock()) as service:
        run_session(service, camera, SERIAL, make_profile("gat947", config.profiles), wipe=False)
    argv = [sys.executable, "-m", "dockd", "--config", str(toml), "replicate", "push"]
    env = {k: v for k, v in os.environ.items() if k != "DOCKD_STATE_DIR"}
    rng = random.Random(16)
    kills = 0
    for _ in range(8):
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.5, 4.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
    assert kills >= 3, "the pushes finished before they could be killed"
    final = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stdout + final.stderr
    with Service(config, SystemClock(), write=False) as reader:
        rows = reader.catalog.replication_rows()
        recordings = reader.recordings()
    assert rows and all(r["state"] == "verified" for r in rows)
    s3 = user.client()
    held = versions(s3, bucket, "")
    assert {r["key"] for r in rows} <= set(held)
    for row in rows:
        assert [v["VersionId"] for v in held[row["key"]]] == [row["version_id"]], row["key"]
    for rec in recordings:
        assert any(r["ref"] == rec.sha256 and r["state"] == "verified" for r in rows)


def test_status_and_doctor_say_when_uploads_wait_too_long(
    ceph: tuple[Ceph, S3User], tmp_path: Path, recent_clips: list[Path]
) -> None:
    from dockd.clock import FixedClock
    from dockd.doctor import replication as doctor_replication

    _, user = ceph
    config = dock_config(tmp_path, user, new_bucket(user), alert_after_hours=2)
    with Service(config, SystemClock()) as service:
        dock(service, tmp_path / "cam", recent_clips[:1], wipe=False)
        status = service.replication_status()
    now = datetime.now(UTC)
    assert status.pending > 0 and not status.behind(now, 2)
    assert doctor_replication.check_replication(config, FixedClock(now)).ok
    later = FixedClock(now + timedelta(hours=3))
    assert status.behind(later.now(), 2)
    check = doctor_replication.check_replication(config, later)
    assert (check.ok, check.severity) == (False, "error")
    assert "replicate.alert_after_hours" in check.detail
    anchor = doctor_replication.check_anchor(config)
    assert not anchor.ok  # nothing in the bucket yet, no pinned key
    with Service(config, SystemClock()) as service:
        push(service)
    assert doctor_replication.check_anchor(config).ok
    assert doctor_replication.check_replication(config, later).ok


def test_uploads_in_the_daemon_never_hold_up_a_docking(
    ceph: tuple[Ceph, S3User], tmp_path: Path, recent_clips: list[Path]
) -> None:
    """The uploader's threads with the bucket gone: a docking completes meanwhile,
    the errors are queued with back-off, and the queue drains once it returns."""
    cluster, user = ceph
    bucket = new_bucket(user)
    relay = Relay(cluster.rgw_port)
    config = dock_config(tmp_path, user, bucket, workers=2)
    config = dataclasses.replace(
        config, replicate=dataclasses.replace(config.replicate, endpoint=relay.endpoint)
    )
    with Service(config, SystemClock()) as service:
        uploader = Uploader(service, Bucket.open(config.replicate), service.clock)
        uploader.start()
        try:
            dock(service, tmp_path / "cam1", recent_clips[:1])
            _wait(lambda: service.replication_status().pending == 0, 60, "first docking up")
            relay.cut()  # the bucket gone: refused, and what was open reset
            started = time.monotonic()
            report = dock(service, tmp_path / "cam2", recent_clips[1:3])
            assert report.counts()["ingested"] == 2 and report.counts()["wiped"] == 2
            assert time.monotonic() - started < 60
            _wait(lambda: service.replication_status().last_error is not None, 90, "an error")
            relay.mend()
            _retry_now(service)
            uploader.wake()
            _wait(
                lambda: (
                    service.replication_status().pending == 0
                    and service.replication_status().uploading == 0
                ),
                180,
                "the queue drained after the bucket came back",
            )
        finally:
            uploader.stop()
        assert all(r["state"] == "verified" for r in service.catalog.replication_rows())


def _retry_now(service: Service) -> None:
    """Skip the back-off (as time passing would)."""
    with service.catalog.transaction():
        service.catalog.db.execute("UPDATE replication SET next_try = NULL")


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_status_json_through_the_cli(
    ceph: tuple[Ceph, S3User], tmp_path: Path, recent_clips: list[Path]
) -> None:
    from click.testing import CliRunner

    from dockd.cli.main import cli

    _, user = ceph
    bucket = new_bucket(user)
    config, toml = dock_files(tmp_path, user, bucket)
    with Service(config, SystemClock()) as service:
        dock(service, tmp_path / "cam", recent_clips[:2], wipe=False)
    runner = CliRunner()
    before = runner.invoke(cli, ["--config", str(toml), "replicate", "status", "--json"])
    assert before.exit_code == 0, before.output
    data = json.loads(before.output)
    assert data["queue"] >= 4 and data["verified"] == 0 and data["behind"] is False
    pushed = runner.invoke(cli, ["--config", str(toml), "replicate", "push", "--json"])
    assert pushed.exit_code == 0, pushed.output
    assert json.loads(pushed.output)["verified"] == data["queue"] + 2
    after = json.loads(
        runner.invoke(cli, ["--config", str(toml), "replicate", "status", "--json"]).output
    )
    assert after["queue"] == 0 and after["verified"] == data["queue"] + 2
    assert after["bytes_per_second"] and after["verified_checkpoints"] >= 1
    human = runner.invoke(cli, ["--config", str(toml), "replicate", "status"])
    assert f"replication to {bucket}/" in human.output and "0 waiting" in human.output
    unset = runner.invoke(cli, ["replicate", "status"])
    assert unset.exit_code == 2 and "replicate.bucket" in unset.output


def test_central_verification_of_what_the_uploader_sent(
    ceph: tuple[Ceph, S3User], tmp_path: Path, recent_clips: list[Path], monkeypatch: Any
) -> None:
    """`dockd verify --bucket` on the bucket as the real uploader filled it: intact; then
    an object overwritten by a new version, a log segment hidden, a checkpoint edited."""
    from click.testing import CliRunner

    from dockd.cli.main import cli

    _, user = ceph
    bucket = new_bucket(user)
    with Service(dock_config(tmp_path, user, bucket), SystemClock()) as service:
        report = dock(service, tmp_path / "cam", recent_clips[:2])
        push(service)
        prefix = service.replication_prefix()
        sha = report.outcomes[0].recording.sha256
        last = service.catalog.last_checkpoint()
    assert last is not None
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", user.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", user.secret_key)
    runner = CliRunner()
    argv = ["verify", "--bucket", f"s3://{bucket}", "--endpoint", user.endpoint, "--json"]

    def kinds() -> set[str]:
        result = runner.invoke(cli, argv)
        data = json.loads(result.output)
        assert result.exit_code == (0 if data["ok"] else 1)
        assert [d["prefix"] for d in data["docks"]] == [prefix]
        return {p["kind"] for d in data["docks"] for p in d["problems"]}

    assert kinds() == set()
    s3 = user.client()
    key = object_key(prefix, sha)
    s3.put_object(Bucket=bucket, Key=key, Body=b"not the footage", Metadata={"sha256": sha})
    assert "bucket_object_overwritten" in kinds()
    segment = sorted(
        v["Key"] for v in s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/log/")["Contents"]
    )[0]
    s3.delete_object(Bucket=bucket, Key=segment)  # a delete marker: allowed, and seen
    assert {"bucket_object_deleted", "bucket_log_segment_missing"} <= kinds()
    edited = str(last["note"]).replace(f"\n{last['size']}\n", f"\n{int(last['size']) + 1}\n")
    s3.put_object(Bucket=bucket, Key=checkpoint_key(prefix, int(last["size"])), Body=edited)
    assert "bucket_checkpoint_untrusted" in kinds()
    human = runner.invoke(cli, argv[:-1])
    assert human.exit_code == 1 and "PROBLEMS found" in human.output


def test_a_clock_the_server_rejects_is_refused_naming_it(
    ceph: tuple[Ceph, S3User], tmp_path: Path
) -> None:
    """This machine's clock two hours ahead (libfaketime on the dockd process only):
    the server refuses its signatures, and dockd says which setting to look at."""
    import subprocess
    import sys

    from tests.volumes import REPO

    _, user = ceph
    _, toml = dock_files(tmp_path, user, new_bucket(user))
    env = {
        **{k: v for k, v in os.environ.items() if k != "DOCKD_STATE_DIR"},
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "PYTHONPATH": str(REPO / "tests" / "faketime"),
    }
    argv = [sys.executable, "-m", "dockd", "--config", str(toml), "replicate", "push"]
    skewed = subprocess.run(
        ["faketime", "-f", "+2h", *argv], env=env, capture_output=True, text=True, timeout=120
    )
    assert skewed.returncode == 2, skewed.stdout + skewed.stderr
    assert "replicate.endpoint: the server rejects this machine's clock" in skewed.stderr
    right = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert right.returncode == 0, right.stdout + right.stderr


def test_an_object_deleted_by_the_sweep_before_its_upload_is_skipped(
    ceph: tuple[Ceph, S3User], tmp_path: Path, recent_clips: list[Path]
) -> None:
    """A 6-month recording that never reached the bucket and was then deleted by the
    retention sweep: nothing left to send, so the row says so instead of retrying."""
    from dockd.clock import FixedClock
    from dockd.config import RetentionConfig

    _, user = ceph
    config = dataclasses.replace(
        dock_config(tmp_path, user, new_bucket(user)),
        retention=RetentionConfig(preset="minimum", grace_days=0),
    )
    with Service(config, SystemClock()) as service:
        dock(service, tmp_path / "cam", recent_clips[:1])
    later = FixedClock(datetime.now(UTC) + timedelta(days=250))
    with Service(config, later) as service:
        service.sweep()
        service.sweep()
        assert all(r.deleted for r in service.recordings())
        done = push(service)
        assert done.failed == 0
        rows = {r["kind"]: r for r in service.catalog.replication_rows()}
        assert rows["object"]["state"] == "skipped"
        assert "retention sweep" in rows["object"]["last_error"]
        assert rows["checkpoint"]["state"] == "verified"
        status = service.replication_status()
        assert (status.pending, status.uploading, status.last_error) == (0, 0, None)
