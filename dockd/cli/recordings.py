"""`dockd ingest`, `list`, `show`: footage in, and what the catalog holds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.table import Table
from rich.text import Text

from dockd.catalog import Recording, RecordingFilter
from dockd.cli.common import (
    EXIT_CODES,
    daemon_running,
    out,
    progress_bar,
    utc_text,
    wants_bar,
)
from dockd.cli.common import service_for as _service
from dockd.config import Config
from dockd.devices.identity import check_serial
from dockd.devices.profiles import PROFILES, make_profile
from dockd.errors import UsageError
from dockd.labels import EffectiveLabels, effective_labels, shown
from dockd.retention.policy import CATEGORIES, TIERS
from dockd.runner.session import SessionReport, run_session
from dockd.service import Service, StateBusyError


def _recordings_table(rows: list[Recording], title: str | None = None) -> Table:
    table = Table(title=title)
    for column in (
        "id",
        "recorded (UTC)",
        "serial",
        "no.",
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
            r.device_serial,
            r.device_number or "-",
            r.officer or "-",
            r.unit or "-",
            f"{r.size:,}",
            r.sha256[:12] + "…",
            ",".join(r.flags) or "-",
            r.source_path_text,
        )
    return table


def print_report(report: SessionReport) -> None:
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
    for o in report.held:
        out.print(
            f"kept on the camera {o.found.display!r}: waiting for upload "
            "(replicate.require_before_wipe); dock it again once `dockd replicate status` "
            "shows it verified",
            markup=False,
        )


@click.command(epilog=EXIT_CODES)
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
        print_report(report)
    sys.exit(report.exit_code)


@click.command("list")
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


@click.command()
@click.argument("recording_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def show(ctx: click.Context, recording_id: int, as_json: bool) -> None:
    """Show one recording with its log entry."""
    with _service(ctx, write=False) as service:
        recording = service.recording(recording_id)
        if recording is None:
            raise UsageError(f"no recording {recording_id}")
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
