"""The `dockd` command line (click). Human output by default, --json for machines."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from dockd import logs
from dockd.catalog import Recording, RecordingFilter
from dockd.cli_common import (
    change,
    checkpoint_json,
    daemon_running,
    out,
    progress_bar,
    utc_text,
    wants_bar,
)
from dockd.cli_common import service_for as _service
from dockd.clock import SystemClock
from dockd.config import Config, load_config
from dockd.devices.identity import check_serial
from dockd.devices.profiles import PROFILES, make_profile
from dockd.errors import ConfigError, DockdError
from dockd.ingest.session import SessionReport, run_session
from dockd.labels import EffectiveLabels, effective_labels, shown
from dockd.progress import NULL_METER
from dockd.retention.policy import CATEGORIES, TIERS
from dockd.service import REGISTRY_FLAGS, Service, StateBusyError, VerifyReport

EXIT_CODES = """\b
Exit codes:
  0  success (ingest: everything ingested; verify: all intact)
  1  verify or audit found problems
  2  usage or configuration error
  3  ingest: ingested, but some files are flagged
  4  ingest: something could not be ingested (it stays on the camera)
"""


class DockdGroup(click.Group):
    """Turns every DockdError into one line on stderr and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DockdError as exc:
            click.echo(f"dockd: error: {exc}", err=True)
            sys.exit(exc.exit_code)


@click.group(
    cls=DockdGroup, help=f"dockd: evidence ingest for body-worn-camera docks.\n\n{EXIT_CODES}"
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Configuration file (default /etc/dockd/dockd.toml).",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="State directory (default /var/lib/dockd, or $DOCKD_STATE_DIR).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log progress events to stderr.")
@click.version_option(package_name="dockd")
@click.pass_context
def cli(
    ctx: click.Context, config_path: Path | None, state_dir: Path | None, verbose: bool
) -> None:
    config = load_config(config_path, state_dir)
    logs.configure(
        "info" if verbose else "warning" if config.log.level == "info" else config.log.level,
        config.log.format,
    )
    ctx.obj = config


def _recordings_table(rows: list[Recording], title: str | None = None) -> Table:
    table = Table(title=title)
    for column in (
        "id",
        "recorded (UTC)",
        "device",
        "officer",
        "unit",
        "size",
        "sha256",
        "flags",
        "source",
    ):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(
            str(r.id),
            r.recorded_start.replace("T", " ").removesuffix("Z"),
            r.device_number or r.device_serial,
            r.officer or "-",
            r.unit or "-",
            f"{r.size:,}",
            r.sha256[:12] + "…",
            ",".join(r.flags) or "-",
            r.source_path_text,
        )
    return table


def _print_report(report: SessionReport) -> None:
    recordings = [o.recording for o in report.outcomes]
    out.print(
        _recordings_table(recordings, title=f"session {report.session_id}: device {report.serial}")
    )
    counts = report.counts()
    out.print(", ".join(f"{k} {v}" for k, v in counts.items()))
    for s in report.skipped:
        out.print(f"skipped {s.display!r}: {s.reason}", markup=False)
    for f in report.failed:
        out.print(f"FAILED {f.display!r}: {f.reason} (left on the camera)", markup=False)
    for f in report.wipe_failed:
        out.print(f"not wiped {f.display!r}: {f.reason}", markup=False)


@cli.command(epilog=EXIT_CODES)
@click.argument("source", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--serial", required=True, help="Device serial of the docked camera.")
@click.option(
    "--profile", type=click.Choice(sorted(PROFILES)), default=None, help="Camera profile."
)
@click.option("--officer", default=None, help="Officer the camera is assigned to.")
@click.option("--keep-source", is_flag=True, help="Do not delete camera files after proof.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def ingest(
    ctx: click.Context,
    source: Path,
    serial: str,
    profile: str | None,
    officer: str | None,
    keep_source: bool,
    as_json: bool,
) -> None:
    """Ingest the camera volume mounted at SOURCE as one docking session."""
    config: Config = ctx.obj
    check_serial(serial, "--serial")
    chosen = make_profile(profile or config.profiles.default_profile, config.profiles)
    wipe = config.ingest.wipe_after_verify and not keep_source
    if daemon_running(config):
        raise StateBusyError(
            "the dockd daemon is running and owns the state directory: dock the camera, "
            "or copy its files into the daemon's drop folder (daemon.drop_dir) with a "
            "dockd-import.json naming the serial"
        )
    with (
        _service(ctx, write=True) as service,
        progress_bar(wants_bar(as_json)) as progress,
    ):
        report = run_session(
            service, source, serial, chosen, wipe=wipe, officer=officer, progress=progress
        )
    if as_json:
        click.echo(json.dumps(report.as_json(), ensure_ascii=False, sort_keys=True))
    else:
        _print_report(report)
    sys.exit(report.exit_code)


@cli.command("list")
@click.option("--unit", default=None, help="Unit / squad (中队).")
@click.option("--officer", default=None, help="Officer number.")
@click.option("--device", default=None, help="Device serial or device number.")
@click.option("--from", "start", default=None, help="Recorded at or after (UTC unless given).")
@click.option("--to", "end", default=None, help="Recorded before (exclusive).")
@click.option("--cause", default=None, help="Cause contains this text (own or a case's).")
@click.option("--party", "parties", multiple=True, help="Has this party (own or a case's).")
@click.option(
    "--category", "categories", multiple=True, type=click.Choice(sorted(CATEGORIES)), help="Has it."
)
@click.option("--case", "case_no", default=None, help="Linked to this case.")
@click.option("--tier", type=click.Choice(TIERS), default=None, help="Retention tier.")
@click.option("--flag", "flags", multiple=True, help="Carries this flag (late, …).")
@click.option(
    "--state",
    type=click.Choice(["live", "pending_deletion", "deleted"]),
    default=None,
    help="Retention state (deleted: tombstones).",
)
@click.option("--unlabelled", is_flag=True, help="Neither a cause nor a case.")
@click.option("--limit", type=int, default=None, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def list_(
    ctx: click.Context,
    unit: str | None,
    officer: str | None,
    device: str | None,
    start: str | None,
    end: str | None,
    cause: str | None,
    parties: tuple[str, ...],
    categories: tuple[str, ...],
    case_no: str | None,
    tier: str | None,
    flags: tuple[str, ...],
    state: str | None,
    unlabelled: bool,
    limit: int | None,
    as_json: bool,
) -> None:
    """List recordings, filtered by any of the labels (seed 004 Art. 11), oldest first."""
    chosen = RecordingFilter(
        unit=unit, officer=officer, device=device, start=utc_text(start, "--from"),
        end=utc_text(end, "--to"), cause=cause, parties=parties, categories=categories,
        case=case_no, tier=tier, flags=flags, state=state, unlabelled=unlabelled, limit=limit,
    )  # fmt: skip
    with _service(ctx, write=False) as service:
        rows = service.catalog.search(chosen)
        labels = _labels_of(service, rows)
    if as_json:
        click.echo(
            json.dumps(
                [{**r.as_json(), "labels": labels[r.id].as_json()} for r in rows],
                ensure_ascii=False,
                sort_keys=True,
            )
        )
        return
    table = Table()
    for column in (
        "id", "recorded (UTC)", "serial", "no.", "officer", "unit", "case", "cause", "parties",
        "categories", "tier", "expires", "state", "flags",
    ):  # fmt: skip
        table.add_column(column, overflow="fold")
    for r in rows:
        mine = labels[r.id]
        cells = (
            str(r.id),
            r.recorded_start.replace("T", " ").removesuffix("Z"),
            r.device_serial,
            r.device_number or "-",
            r.officer or "-",
            r.unit or "-",
            ", ".join(mine.cases) or "-",
            shown(mine.causes),
            shown(mine.parties),
            shown(mine.categories),
            r.tier or "-",
            (r.expires_at or "never")[:10],
            r.retention_state,
            ",".join(r.flags) or "-",
        )
        # Labels are people's free text: never rich markup.
        table.add_row(*(Text(cell) for cell in cells))
    out.print(table)
    out.print(f"{len(rows)} recording(s)")


@cli.command()
@click.argument("recording_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def show(ctx: click.Context, recording_id: int, as_json: bool) -> None:
    """Show one recording with its log entry."""
    with _service(ctx, write=False) as service:
        recording = service.recording(recording_id)
        if recording is None:
            raise ConfigError(f"no recording {recording_id}")
        raw = service.log_entry(recording.log_seq)
        mine = _labels_of(service, [recording])[recording.id]
    entry = json.loads(raw) if raw else None
    if as_json:
        click.echo(
            json.dumps(
                {"recording": recording.as_json(), "labels": mine.as_json(), "log_entry": entry},
                ensure_ascii=False,
                sort_keys=True,
            )
        )
        return
    table = Table(show_header=False)
    for key, value in recording.as_json().items():
        table.add_row(
            f"{key} (own)" if key in ("cause", "parties", "categories") else key,
            Text(
                json.dumps(value, ensure_ascii=False)
                if isinstance(value, dict | list)
                else str(value)
            ),
        )
    # The recording's own labels are the rows above; these are what counts (own + cases).
    table.add_row("cases", Text(", ".join(mine.cases) or "-"))
    for key, value in (
        ("effective causes", mine.causes),
        ("effective parties", mine.parties),
        ("effective categories", mine.categories),
    ):
        table.add_row(key, Text(shown(value)))
    out.print(table)
    out.print(f"log entry {recording.log_seq}:")
    out.print_json(data=entry)


def _labels_of(service: Service, rows: list[Recording]) -> dict[int, EffectiveLabels]:
    """Each recording's own labels joined with those of its cases (dockd/labels.py)."""
    cases = service.catalog.case_labels_of([r.id for r in rows])
    return {r.id: effective_labels(r.cause, r.parties, r.categories, cases[r.id]) for r in rows}


def _print_verify(report: VerifyReport) -> None:
    out.print(
        f"log entries {report.entries}, recordings {report.recordings}, "
        f"store files {report.objects} ({report.bytes_hashed:,} bytes re-hashed)"
    )
    for sha in report.orphans:
        out.print(
            f"note: store object {sha} is intact but not yet in the catalog "
            "(left by an interrupted docking; the next docking of its camera adopts it)"
        )
    if report.ok:
        out.print("verify: OK, everything intact")
        return
    out.print(f"verify: {len(report.problems)} problem(s)")
    for p in report.problems:
        out.print(f"  {p.kind}: {p.where}: {p.detail}", markup=False)


@cli.command(epilog=EXIT_CODES)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def verify(ctx: click.Context, as_json: bool) -> None:
    """Re-walk the hash chain and re-hash every store file."""
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
                },
                sort_keys=True,
            )
        )
    else:
        _print_verify(report)
    sys.exit(0 if report.ok else 1)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def checkpoint(ctx: click.Context, as_json: bool) -> None:
    """Sign and print a checkpoint of the log (C2SP tlog-checkpoint in a signed note)."""
    result = change(ctx, "checkpoint", {}, checkpoint_json)
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
    else:
        click.echo(result["checkpoint"], nl=False)


@cli.group()
def proof() -> None:
    """Inclusion and consistency proofs (RFC 9162) for outside checking."""


@proof.command("inclusion")
@click.argument("recording_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def proof_inclusion(ctx: click.Context, recording_id: int, as_json: bool) -> None:
    """Prove that RECORDING_ID's log entry is in the signed log."""
    _sign_if_grown(ctx.find_root())
    with _service(ctx.find_root(), write=False) as service:
        data = service.inclusion(recording_id)
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
        change(ctx, "checkpoint", {}, checkpoint_json)


def _print_proof(data: dict[str, Any], as_json: bool) -> None:
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


@cli.command(epilog=EXIT_CODES)
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


@cli.group("log")
def log_group() -> None:
    """The evidence log."""


@log_group.command("export")
@click.argument("out", type=click.Path(path_type=Path, file_okay=False))
@click.option("--from", "first", type=int, default=1, show_default=True, help="First entry.")
@click.option("--to", "last", type=int, default=None, help="Last entry (default: the newest).")
@click.pass_context
def log_export(ctx: click.Context, out: Path, first: int, last: int | None) -> None:
    """Write entries, proofs, checkpoint and keys to OUT for offline checking."""
    _sign_if_grown(ctx.find_root())
    with _service(ctx.find_root(), write=False) as service:
        result = service.export_log(out, first, last)
    click.echo(
        f"exported entries {result['from']}..{result['to']} (tree size "
        f"{result['tree_size']}) to {result['out']}; anyone can check it there with "
        "`python3 verify.py --key KEY` (Python 3.8+ and the cryptography package; "
        "KEY from a copy of this dock's public key kept elsewhere)"
    )


@cli.group()
def key() -> None:
    """The checkpoint signing key."""


@key.command("rotate")
@click.pass_context
def key_rotate(ctx: click.Context) -> None:
    """Replace the signing key; old checkpoints stay verifiable (a logged event)."""
    result = change(
        ctx.find_root(), "key.rotate", {}, lambda service: {"vkey": service.rotate_key().to_text()}
    )
    click.echo(result["vkey"])


@cli.command()
@click.option("--clips", default=3, show_default=True, help="How many real clips to make.")
@click.pass_context
def demo(ctx: click.Context, clips: int) -> None:
    """Dock a synthetic camera into a temporary state directory and show the result."""
    from dockd.demo import DEMO_SERIAL, build_camera

    config: Config = ctx.obj
    state_dir = (
        Path(tempfile.mkdtemp(prefix="dockd-demo-state-"))
        if ctx.parent and ctx.parent.params.get("state_dir") is None
        else config.state_dir
    )
    config = config.with_state_dir(state_dir)
    camera = Path(tempfile.mkdtemp(prefix="dockd-demo-camera-"))
    clock = SystemClock()
    try:
        out.print(f"building a synthetic camera in {camera} ({clips} clips + 1 corrupt clip) …")
        build_camera(
            camera, clock.now(), config.profiles.camera_timezone, clips=clips, device=DEMO_SERIAL
        )
        profile = make_profile("gat947", config.profiles)
        with Service(config, clock) as service:
            # Handed out the day before, as a dock's registry would have it (R2).
            # The serial is the one the camera writes into its file names (GA/T 947),
            # so that the report, `dockd list` and the names all say DSJ0001.
            service.assign_device(
                DEMO_SERIAL,
                officer="012345",
                unit="一中队",
                device_number="07",
                valid_from=clock.now() - timedelta(days=1),
                reason="demo",
                actor="demo",
            )
            report = run_session(service, camera, DEMO_SERIAL, profile, wipe=True)
            _print_report(report)
            result = service.verify()
            note = service.checkpoint()
        _print_verify(result)
        out.print("signed checkpoint of the evidence log:")
        out.print(note, markup=False, end="")
    finally:
        shutil.rmtree(camera, ignore_errors=True)
    out.print(f"state kept in {state_dir} (try: dockd --state-dir {state_dir} list)")
    flagged = {flag for o in report.flagged for flag in o.recording.flags} - REGISTRY_FLAGS
    as_expected = result.ok and not report.failed and flagged <= {"unreadable_media"}
    sys.exit(0 if as_expected else 1)


from dockd.cli_archive import export, verify_disc_command  # noqa: E402
from dockd.cli_daemon import doctor, run, status  # noqa: E402
from dockd.cli_devices import device  # noqa: E402
from dockd.cli_labels import case, hold, tag  # noqa: E402
from dockd.cli_reports import gap, report  # noqa: E402
from dockd.cli_retention import restore, retention, sweep  # noqa: E402

for _command in (
    run, status, doctor, device, tag, case, hold, retention, sweep, restore, report, gap,
    export, verify_disc_command,
):  # fmt: skip
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="dockd")
