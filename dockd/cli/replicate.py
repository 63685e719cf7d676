"""`dockd replicate status|push`: the queue to the bucket, and emptying it by hand."""

from __future__ import annotations

import json
import sys

import click

from dockd.cli.common import out, service_for
from dockd.clock import SystemClock
from dockd.config import Config
from dockd.errors import ConfigError
from dockd.progress import size_text
from dockd.replicate.bucket import Bucket
from dockd.replicate.status import ReplicationStatus
from dockd.runner.replication import Uploader

STATUS_HELP = """\b
Exit codes:
  0  replication is configured; the queue is within replicate.alert_after_hours
  1  the oldest upload has waited longer than replicate.alert_after_hours
  2  usage or configuration error (replication not configured)
"""

PUSH_HELP = """\b
Exit codes:
  0  everything due was uploaded and verified
  2  usage or configuration error (no replication, a bucket that cannot hold evidence)
  4  some uploads failed; they stay queued with their error (dockd replicate status)
"""


def _configured(ctx: click.Context) -> Config:
    config: Config = ctx.obj
    if not config.replicate.enabled:
        raise ConfigError("replicate.bucket: replication is not configured ([replicate] bucket)")
    return config


def status_lines(status: ReplicationStatus, data: dict[str, object]) -> list[str]:
    """The human lines of a replication status (also under `dockd status`)."""
    queue = status.pending + status.uploading
    lines = [
        f"replication to {status.bucket}/{status.prefix}: {queue:,} waiting "
        f"({size_text(status.pending_bytes)}), {status.uploading} uploading, "
        f"{status.verified:,} verified ({size_text(status.verified_bytes)})"
    ]
    age = data.get("oldest_pending_hours")
    if age is not None:
        lines.append(f"oldest waiting: {age} h")
    if status.bytes_per_second:
        lines.append(f"recent rate: {size_text(status.bytes_per_second)}/s")
    if status.last_error:
        lines.append(f"last error ({status.last_error_key}): {status.last_error}")
    lines.append(f"checkpoints in the bucket: {status.verified_checkpoints}")
    return lines


@click.group("replicate")
def replicate_group() -> None:
    """Replication to the agency's S3 bucket with Object Lock (README "Replication")."""


@replicate_group.command("status", epilog=STATUS_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def replicate_status(ctx: click.Context, as_json: bool) -> None:
    """Queue length, oldest waiting upload, recent rate, last error (from the catalog)."""
    config = _configured(ctx)
    with service_for(ctx, write=False) as service:
        status = service.replication_status()
    now = SystemClock().now()
    data = status.as_json(now)
    behind = status.behind(now, config.replicate.alert_after_hours)
    data["behind"] = behind
    if as_json:
        click.echo(json.dumps(data, sort_keys=True))
    else:
        for line in status_lines(status, data):
            out.print(line, markup=False)
        if behind:
            out.print(
                f"ALERT: uploads have waited longer than {config.replicate.alert_after_hours} h "
                "(replicate.alert_after_hours)",
                markup=False,
            )
    sys.exit(1 if behind else 0)


@replicate_group.command("push", epilog=PUSH_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def replicate_push(ctx: click.Context, as_json: bool) -> None:
    """Upload what is due now, in the foreground (the daemon does this by itself)."""
    config = _configured(ctx)
    with service_for(ctx, write=True) as service:
        uploader = Uploader(service, Bucket.open(config.replicate), service.clock)
        done = uploader.drain()
        status = service.replication_status()
    if as_json:
        click.echo(json.dumps({**done.as_json(), "queue": status.pending + status.uploading}))
    else:
        out.print(
            f"uploaded and verified {done.verified}, failed {done.failed}, "
            f"logged {done.logged}, locks extended {done.extended}; "
            f"{status.pending + status.uploading} still queued",
            markup=False,
        )
        if status.last_error and done.failed:
            out.print(f"last error: {status.last_error}", markup=False)
    sys.exit(4 if done.failed else 0)
