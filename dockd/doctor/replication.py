"""`dockd doctor`'s replication checks: the bucket, the queue's age, the log's anchor.

Apart from the host's checks (__init__.py); each returns one `Check`.
"""

from __future__ import annotations

from pathlib import Path

from dockd.clock import Clock
from dockd.config import Config
from dockd.doctor.check import Check, _fail, _pass
from dockd.errors import ConfigError
from dockd.replicate.bucket import Bucket, BucketError
from dockd.replicate.status import ReplicationStatus


def _queue_status(config: Config) -> ReplicationStatus | None:
    """The replication queue's figures, if the catalog exists (read only)."""
    if not (config.state_dir / "catalog.sqlite").exists():
        return None
    from dockd.clock import SystemClock
    from dockd.service import Service

    with Service(config, SystemClock(), write=False) as service:
        return service.replication_status()


def check_replication(config: Config, clock: Clock) -> Check:
    cfg = config.replicate
    if not cfg.enabled:
        return _pass(
            "replication", "off (replicate.bucket is empty): evidence lives on this disk only"
        )
    if cfg.credentials:
        path = Path(cfg.credentials)
        if not path.is_file():
            return _fail(
                "replication", "error", f"replicate.credentials: {path} does not exist",
                "write the bucket's access key there (README \"Replication\")",
            )  # fmt: skip
        if path.stat().st_mode & 0o077:
            return _fail(
                "replication", "error", f"replicate.credentials: {path} is readable by others",
                f"chmod 0600 {path}",
            )  # fmt: skip
    try:
        Bucket.open(cfg).check_target()
    except ConfigError as exc:
        return _fail(
            "replication", "error", str(exc), "fix the setting it names; dockd will not start"
        )
    except BucketError as exc:
        return _fail(
            "replication", "warning", str(exc),
            "check the network and the endpoint; uploads wait meanwhile, dockings do not",
        )  # fmt: skip
    status = _queue_status(config)
    if status is None:
        return _pass(
            "replication", f"bucket {cfg.bucket}: Object Lock and versioning on; queue empty"
        )
    now = clock.now()
    waiting = status.pending + status.uploading
    if status.behind(now, cfg.alert_after_hours):
        return _fail(
            "replication", "error",
            f"{waiting} upload(s) waiting, the oldest for {status.oldest_age_hours(now):.1f} h "
            f"(replicate.alert_after_hours = {cfg.alert_after_hours}); last error: "
            f"{status.last_error or 'none'}",
            "see `dockd replicate status`; fix what the last error says",
        )  # fmt: skip
    return _pass(
        "replication",
        f"bucket {cfg.bucket}: Object Lock and versioning on; {waiting} waiting, "
        f"{status.verified} verified",
    )


def check_anchor(config: Config) -> Check:
    """Is the log held against anything off this machine?"""
    if config.integrity.trusted_keys:
        return _pass(
            "anchor", "checkpoints must be signed by a pinned key (integrity.trusted_keys)"
        )
    if config.replicate.enabled:
        status = _queue_status(config)
        if status is not None and status.verified_checkpoints:
            return _pass(
                "anchor",
                f"{status.verified_checkpoints} checkpoint(s) locked in bucket "
                f"{config.replicate.bucket}",
            )
    return _fail(
        "anchor", "warning",
        "no key is pinned and no checkpoint is off the box yet: the log is checked only "
        "against itself (root could cut, empty or re-sign it unseen)",
        "pin the public key (the vkey of the log's key.created entry) in "
        "integrity.trusted_keys, and configure "
        "[replicate] so that every checkpoint is locked in the bucket",
    )  # fmt: skip
