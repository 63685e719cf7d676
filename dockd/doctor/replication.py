"""`dockd doctor`'s replication checks: the bucket, the queue's age, the log's anchor.

Apart from the host's checks (__init__.py); each returns one `Check`.
"""

from __future__ import annotations

from pathlib import Path

from dockd.clock import Clock
from dockd.config import Config
from dockd.doctor.check import Check, _fail, _pass
from dockd.doctor.unit import unit_settings
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


_DROP_IN = "/usr/share/doc/dockd/dockd-replicate.conf.example"


def _allowed(entries: list[str], address: str) -> bool:
    import ipaddress

    ip = ipaddress.ip_address(address)
    for entry in " ".join(entries).split():
        if entry == "any" or (entry == "localhost" and ip.is_loopback):
            return True
        if entry == "link-local" and ip.is_link_local:
            return True
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def check_unit_network(config: Config, root: Path) -> Check:
    """The shipped unit allows no IP: with a bucket, a drop-in must let the endpoint in."""
    import socket
    from urllib.parse import urlsplit

    name = "replication.unit"
    cfg = config.replicate
    if not cfg.enabled:
        return _pass(name, "replication off: the unit needs no network")
    settings = unit_settings(root)
    if settings is None:
        return _pass(name, "no dockd.service installed here (not run by systemd)")
    families = " ".join(settings.get("RestrictAddressFamilies", []))
    fix = f"install {_DROP_IN} as /etc/systemd/system/dockd.service.d/replicate.conf"
    if families and "AF_INET" not in families:
        return _fail(
            name, "error", "dockd.service allows no IP sockets (RestrictAddressFamilies): "
            "uploads cannot reach the bucket", fix + ", then systemctl daemon-reload",
        )  # fmt: skip
    if "any" not in " ".join(settings.get("IPAddressDeny", [])):
        return _pass(name, "dockd.service may open IP sockets")
    host = urlsplit(cfg.endpoint).hostname if cfg.endpoint else f"s3.{cfg.region}.amazonaws.com"
    try:
        addresses = sorted({str(a[4][0]) for a in socket.getaddrinfo(host, None)})
    except OSError as exc:
        return _fail(
            name, "warning", f"cannot resolve {host}: {exc}", "check DNS and replicate.endpoint"
        )
    refused = [a for a in addresses if not _allowed(settings.get("IPAddressAllow", []), a)]
    if refused:
        return _fail(
            name, "error",
            f"dockd.service denies {', '.join(refused)} ({host}, replicate.endpoint): "
            "IPAddressDeny=any without an IPAddressAllow for it",
            f"{fix} with IPAddressAllow={' '.join(refused)}, then systemctl daemon-reload",
        )  # fmt: skip
    return _pass(name, f"dockd.service lets dockd reach {host} ({', '.join(addresses)})")
