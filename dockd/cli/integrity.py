"""`dockd verify`, `checkpoint`, `proof`, `audit`, `log export`, `key rotate`: the evidence log."""

from __future__ import annotations

import json
import os
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from dockd.cli.common import (
    EXIT_CODES,
    change,
    empty_destination,
    out,
    progress_bar,
    receive,
    run_change,
    wants_bar,
)
from dockd.cli.common import service_for as _service
from dockd.clock import SystemClock
from dockd.config import Config
from dockd.errors import DockdError, UsageError
from dockd.integrity.note import NoteError, VerifierKey
from dockd.progress import NULL_METER
from dockd.replicate.bucket import BucketError, s3_client
from dockd.replicate.central import verify_bucket
from dockd.service import Service, VerifyReport
from dockd.service.results import ConsistencyProof, InclusionProof


def print_verify(report: VerifyReport) -> None:
    out.print(
        f"log entries {report.entries}, recordings {report.recordings}, "
        f"store files {report.objects} ({report.bytes_hashed:,} bytes re-hashed)"
    )
    for sha in report.orphans:
        out.print(
            f"note: store object {sha} is intact but not yet in the catalog "
            "(left by an interrupted docking; the next docking of its camera adopts it)"
        )
    if report.anchor:
        out.print(f"anchored: {report.anchor}", markup=False)
    if report.ok:
        out.print("verify: OK, everything intact")
        return
    out.print(f"verify: {len(report.problems)} problem(s)")
    for p in report.problems:
        out.print(f"  {p.kind}: {p.where}: {p.detail}", markup=False)


@click.command(epilog=EXIT_CODES)
@click.option(
    "--bucket",
    "bucket_url",
    metavar="s3://BUCKET[/PREFIX]",
    default=None,
    help="Check every dock's evidence in this bucket instead (no local state needed; "
    "credentials from boto3's usual sources). With a PREFIX, that dock only.",
)
@click.option(
    "--endpoint",
    default=None,
    help="S3 endpoint for --bucket (default: $AWS_ENDPOINT_URL, else replicate.endpoint).",
)
@click.option(
    "--trusted-key",
    "trusted",
    multiple=True,
    metavar="NAME+ID+KEY",
    help="With --bucket: only checkpoints signed by these keys count (repeatable; default: "
    "integrity.trusted_keys, else the keys each dock's log introduced).",
)
@click.option(
    "--grace-hours",
    type=click.FloatRange(0, 24 * 366),
    default=24.0,
    show_default=True,
    help="With --bucket: a recording's object not in the bucket this long after its "
    "ingest counts as missing (before that: in flight).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def verify(
    ctx: click.Context,
    bucket_url: str | None,
    endpoint: str | None,
    trusted: tuple[str, ...],
    grace_hours: float,
    as_json: bool,
) -> None:
    """Re-walk the hash chain and re-hash every store file; with a bucket configured,
    hold the log against the bucket's latest checkpoint. With --bucket, check the
    bucket instead: every dock's log, checkpoints, objects and locks."""
    if bucket_url is not None:
        verify_bucket_command(
            ctx.obj, bucket_url, endpoint, trusted, timedelta(hours=grace_hours), as_json
        )
        return
    if endpoint is not None or trusted:
        raise UsageError("--endpoint and --trusted-key go with --bucket")
    with (
        _service(ctx, write=False) as service,
        progress_bar(wants_bar(as_json)) as progress,
    ):
        report = service.verify(progress or NULL_METER)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": report.ok,
                    "entries": report.entries,
                    "recordings": report.recordings,
                    "objects": report.objects,
                    "bytes_hashed": report.bytes_hashed,
                    "problems": [p.as_dict() for p in report.problems],
                    "orphans": list(report.orphans),
                    "anchor": report.anchor,
                },
                sort_keys=True,
            )
        )
    else:
        print_verify(report)
    sys.exit(0 if report.ok else 1)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def checkpoint(ctx: click.Context, as_json: bool) -> None:
    """Sign and print a checkpoint of the log (C2SP tlog-checkpoint in a signed note)."""
    result = change(ctx, "checkpoint", {})
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
    else:
        click.echo(result["checkpoint"], nl=False)


@click.group()
def proof() -> None:
    """Inclusion and consistency proofs (RFC 9162) for outside checking."""


@proof.command("inclusion")
@click.argument("recording_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def proof_inclusion(ctx: click.Context, recording_id: int, as_json: bool) -> None:
    """Prove that RECORDING_ID's log entry is in the signed log."""
    _sign_if_grown(ctx.find_root())
    # Through the daemon for anyone with a reading role; here for root.
    data = run_change(ctx.find_root(), "proof.inclusion", {"recording": recording_id})
    _print_proof(data, as_json)


@proof.command("consistency")
@click.argument("old_size", type=int)
@click.argument("new_size", type=int, required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def proof_consistency(
    ctx: click.Context, old_size: int, new_size: int | None, as_json: bool
) -> None:
    """Prove that the log of NEW_SIZE entries (default: now) extends the one of OLD_SIZE."""
    with _service(ctx.find_root(), write=False) as service:
        data = service.consistency(old_size, new_size)
    _print_proof(data, as_json)


def _sign_if_grown(ctx: click.Context) -> None:
    """Have the log's newest entries signed before proving them.

    Writers sign when they finish, but the daemon's changes between two of
    its periodic checkpoints are not signed yet: ask it (or, with no daemon,
    sign here) rather than refuse an export or a proof of them.
    """
    with _service(ctx, write=False) as service:
        grown = service.log_grew()
    if grown:
        change(ctx, "checkpoint", {})


def _print_proof(proof: InclusionProof | ConsistencyProof | dict[str, Any], as_json: bool) -> None:
    data = proof if isinstance(proof, dict) else proof.as_json()
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, sort_keys=True))
        return
    for key, value in data.items():
        if isinstance(value, list):
            out.print(f"{key}:", markup=False)
            for item in value:
                out.print(f"  {item}", markup=False)
        elif isinstance(value, str) and "\n" in value:
            out.print(f"{key}:", markup=False)
            out.print("  " + value.rstrip("\n").replace("\n", "\n  "), markup=False)
        else:
            out.print(f"{key}: {value}", markup=False)


@click.command(epilog=EXIT_CODES)
@click.option(
    "--fraction",
    type=float,
    default=None,
    help="Share of the store to re-hash (default 1/integrity.audit_period_days).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def audit(ctx: click.Context, fraction: float | None, as_json: bool) -> None:
    """Fixity audit: re-hash the longest-unchecked slice of the store (a logged event)."""

    def local(service: Service) -> dict[str, Any]:
        # Only an audit run here can show a bar; the daemon's runs out of sight.
        with progress_bar(wants_bar(as_json)) as progress:
            return service.audit(fraction, progress or NULL_METER).as_json()

    # The daemon answers when the slice is re-hashed: at disk speed, hours for a
    # big store and --fraction 1, not the 30 s a quick request gets.
    report = change(ctx, "audit", {"fraction": fraction}, local, timeout=24 * 3600.0)
    if as_json:
        click.echo(json.dumps(report, sort_keys=True))
    else:
        out.print(
            f"audit: re-hashed {report['checked']} of {report['store_objects']} store objects "
            f"({report['bytes_hashed']:,} bytes), log entry {report['log_entry']}"
        )
        for f in report["failures"]:
            out.print(
                f"  MISMATCH {f['sha256']}: {f['found']} (recordings {f['recordings']})",
                markup=False,
            )
    sys.exit(0 if report["ok"] else 1)


@click.group("log")
def log_group() -> None:
    """The evidence log."""


def _id_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        ids = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of ids") from None
    if not ids or any(i < 1 for i in ids):
        raise click.BadParameter("give recording ids, e.g. --ids 3,7,12")
    return ids


@log_group.command("export")
@click.argument("out", type=click.Path(path_type=Path, file_okay=False))
@click.option("--from", "first", type=int, default=1, show_default=True, help="First entry.")
@click.option("--to", "last", type=int, default=None, help="Last entry (default: the newest).")
@click.option("--case", "case", default=None, help="Only the entries about this case's recordings.")
@click.option(
    "--ids",
    "ids",
    default=None,
    callback=_id_list,
    help="Only the entries about these recordings (comma-separated ids).",
)
@click.pass_context
def log_export(
    ctx: click.Context,
    out: Path,
    first: int,
    last: int | None,
    case: str | None,
    ids: list[int] | None,
) -> None:
    """Write entries, proofs, checkpoint and keys to OUT for offline checking.

    --from/--to export a range of the log (all of it by default). --case or
    --ids export only the entries about those recordings (nothing about
    others), each with its inclusion proof: that proves they are in the log,
    not that they are all it holds about them.
    """
    ranged = any(
        ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
        for name in ("first", "last")
    )
    if case is not None and ids is not None:
        raise click.UsageError("give --case or --ids, not both")
    if (case is not None or ids is not None) and ranged:
        raise click.UsageError("--from/--to export a range; --case and --ids a scope, not both")
    out = empty_destination(out)
    args = {
        "out": str(out),
        "first": first,
        "last": last,
        "case": case,
        "ids": ids or [],
    }
    result = run_change(ctx.find_root(), "log.export", args)
    result["out"] = str(receive(result["out"], out))
    if case is not None or ids is not None:
        about = (
            f"case {result['case']}"
            if result["case"] is not None
            else "recordings " + ", ".join(map(str, result["recordings"]))
        )
        click.echo(
            f"exported the {result['entries']} log entries about {about} (tree size "
            f"{result['tree_size']}) to {result['out']}; they prove inclusion in the log, not "
            "that it holds no others. Anyone can check them there with "
            "`python3 verify.py --key KEY`"
        )
        return
    click.echo(
        f"exported entries {result['from']}..{result['to']} (tree size "
        f"{result['tree_size']}) to {result['out']}; anyone can check it there with "
        "`python3 verify.py --key KEY` (Python 3.8+ and the cryptography package; "
        "KEY from a copy of this dock's public key kept elsewhere)"
    )


@click.group()
def key() -> None:
    """The checkpoint signing key."""


@key.command("rotate")
@click.pass_context
def key_rotate(ctx: click.Context) -> None:
    """Replace the signing key; old checkpoints stay verifiable (a logged event)."""
    result = change(ctx.find_root(), "key.rotate", {})
    click.echo(result["vkey"])


def verify_bucket_command(
    config: Config,
    url: str,
    endpoint: str | None,
    trusted: tuple[str, ...],
    grace: timedelta,
    as_json: bool,
) -> None:
    """`dockd verify --bucket`: what a central site runs nightly across its docks."""
    match = re.fullmatch(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(.*))?", url)
    if match is None:
        raise UsageError(f"--bucket: expected s3://BUCKET[/PREFIX], got {url!r}")
    bucket, prefix = match.group(1), (match.group(2) or "").strip("/") or None
    keys = []
    for text in trusted or config.integrity.trusted_keys:
        try:
            keys.append(VerifierKey.from_text(text))
        except NoteError as exc:
            raise UsageError(f"--trusted-key: {exc}") from None
    endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL") or config.replicate.endpoint
    client = s3_client(endpoint or "", config.replicate.region, config.replicate.credentials)
    try:
        report = verify_bucket(client, bucket, prefix, keys, SystemClock().now(), grace)
    except BucketError as exc:
        raise DockdError(f"verify --bucket: {exc}") from None  # not checked: exit 1
    if as_json:
        click.echo(json.dumps(report.as_json(), sort_keys=True, ensure_ascii=False))
    else:
        for dock in report.docks:
            out.print(
                f"dock {dock.prefix}: log entries {dock.entries} ({dock.unsigned_entries} not "
                f"yet signed), checkpoints {dock.checkpoints}, objects {dock.objects_checked} "
                f"({dock.in_flight} in flight), "
                f"{'OK' if not dock.problems else f'{len(dock.problems)} problem(s)'}",
                markup=False,
            )
            for p in dock.problems:
                out.print(f"  {p.kind}: {p.where}: {p.detail}", markup=False)
        for p in report.bucket_problems:
            out.print(f"{p.kind}: {p.where}: {p.detail}", markup=False)
        out.print(
            f"verify --bucket: {'OK, every dock intact' if report.ok else 'PROBLEMS found'} "
            f"({len(report.docks)} dock(s) in {bucket})",
            markup=False,
        )
    sys.exit(0 if report.ok else 1)
