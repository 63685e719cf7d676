"""`dockd export …` and `dockd verify-disc`: archival discs (R5) a clerk can check for years."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from dockd.archive.check import verify_disc
from dockd.archive.iso import burn, find_burners, sha256_of_drive
from dockd.archive.plan import DiscPlan, pack, parse_medium
from dockd.cli.common import err, local_actor, out, progress_bar, service_for, wants_bar
from dockd.errors import UsageError
from dockd.progress import NULL_METER
from dockd.retention.policy import TIERS
from dockd.service import Service


def _selection(
    tier: str, cases: tuple[str, ...], not_exported: bool, media: str, copies: int
) -> dict[str, Any]:
    return {
        "tier": None if tier == "any" else tier,
        "cases": list(cases),
        "not_exported": not_exported,
        "media": media,
        "copies": copies,
    }


def _plan(service: Service, selection: dict[str, Any]) -> DiscPlan:
    items = service.export_items(
        tier=selection["tier"],
        cases=tuple(selection["cases"]),
        not_exported=selection["not_exported"],
    )
    return pack(items, parse_medium(selection["media"]), selection["copies"])


def _print_plan(plan: DiscPlan) -> None:
    table = Table(
        title=f"{plan.per_copy} disc(s) × {plan.copies} cop{'y' if plan.copies == 1 else 'ies'} "
        f"on {plan.medium.name} ({plan.medium.usable:,} usable bytes each)"
    )
    for column in ("disc", "copy", "recordings", "used", "fill"):
        table.add_column(column)
    for d in plan.discs:
        table.add_row(
            str(d.number), str(d.copy), str(len(d.recordings)), f"{d.used:,}",
            f"{d.used / plan.medium.usable:.0%}",
        )  # fmt: skip
    out.print(table)


_SELECT = [
    click.option("--media", required=True, help="dvd, bd25, bd50, bd100, or a size (700M, 4.7G)."),
    click.option(
        "--tier",
        type=click.Choice([*TIERS, "any"]),
        default="permanent",
        show_default=True,
        help="Which recordings (R5: the long-term ones).",
    ),
    click.option("--case", "cases", multiple=True, help="Only recordings of this case."),
    click.option("--not-exported", is_flag=True, help="Only recordings on no disc yet."),
    click.option("--copies", type=int, default=1, show_default=True, help="Identical disc sets."),
]


def _selected(f: Any) -> Any:
    for option in reversed(_SELECT):
        f = option(f)
    return f


@click.group()
def export() -> None:
    """Archival discs: plan, build ISO images (BagIt inside), burn, list."""


@export.command("plan")
@_selected
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def export_plan(
    ctx: click.Context,
    media: str,
    tier: str,
    cases: tuple[str, ...],
    not_exported: bool,
    copies: int,
    as_json: bool,
) -> None:
    """Which recordings go on which disc (stable: the same selection, the same discs)."""
    selection = _selection(tier, cases, not_exported, media, copies)
    with service_for(ctx.find_root(), write=False) as service:
        plan = _plan(service, selection)
    if as_json:
        click.echo(json.dumps({"selection": selection, **plan.as_json()}, sort_keys=True))
    else:
        _print_plan(plan)


BUILD_EXIT = """\b
Exit codes:
  0  every disc image built (or already built and intact)
  2  usage error (empty selection, a file larger than the medium, …)
  4  another dockd process holds the state directory (stop the daemon first)
"""


@export.command("build", epilog=BUILD_EXIT)
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="A plan saved by `export plan --json` (instead of the selection options).",
)
@click.option("--media", default=None, help="dvd, bd25, bd50, bd100, or a size (700M, 4.7G).")
@click.option(
    "--tier",
    type=click.Choice([*TIERS, "any"]),
    default="permanent",
    show_default=True,
    help="Which recordings (R5: the long-term ones).",
)
@click.option("--case", "cases", multiple=True, help="Only recordings of this case.")
@click.option("--not-exported", is_flag=True, help="Only recordings on no disc yet.")
@click.option("--copies", type=int, default=1, show_default=True, help="Identical disc sets.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--approved-by", required=True, help="The supervisor who approved this copy (R6).")
@click.option("--reason", required=True, help="Why the discs are made.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def export_build(
    ctx: click.Context,
    plan_file: Path | None,
    media: str | None,
    tier: str,
    cases: tuple[str, ...],
    not_exported: bool,
    copies: int,
    out_dir: Path,
    approved_by: str,
    reason: str,
    as_json: bool,
) -> None:
    """Record an approved export and build one ISO image per disc in OUT.

    The discs are those of a saved plan (--plan), or of the selection
    options. A saved plan must still be what its selection gives now: if
    the catalog changed since, plan again.
    """
    saved: dict[str, Any] | None = None
    if plan_file is not None:
        try:
            saved = json.loads(plan_file.read_text(encoding="utf-8"))
            selection = dict(saved["selection"])
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(
                f"{plan_file}: not a plan from `dockd export plan --json`: {exc}"
            ) from None
    elif media is None:
        raise UsageError("give --media (and the selection), or --plan FILE")
    else:
        selection = _selection(tier, cases, not_exported, media, copies)
    with service_for(ctx.find_root(), write=True) as service:
        plan = _plan(service, selection)
        if saved is not None and saved.get("discs") != plan.as_json()["discs"]:
            raise UsageError(
                f"{plan_file}: the catalog changed since this plan was made "
                "(recordings added, deleted or exported); run `dockd export plan` again"
            )
        created = service.create_export(
            plan, selection, approved_by=approved_by, reason=reason, actor=local_actor()
        )
        results = _build(service, int(created["export"]), out_dir, as_json)
    _report_build(int(created["export"]), results, as_json)


@export.command("resume", epilog=BUILD_EXIT)
@click.argument("export_id", type=int)
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def export_resume(ctx: click.Context, export_id: int, out_dir: Path, as_json: bool) -> None:
    """Build what an interrupted `export build` left unbuilt (built images are re-checked)."""
    with service_for(ctx.find_root(), write=True) as service:
        results = _build(service, export_id, out_dir, as_json)
    _report_build(export_id, results, as_json)


def _build(service: Service, export_id: int, out_dir: Path, quiet: bool) -> list[dict[str, Any]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    discs = service.discs(export_id)
    if not discs:
        raise UsageError(f"no export {export_id} (dockd export list)")
    sizes = {
        d["label"]: sum(r.size for r in service.catalog.recordings_by_id(d["recordings"]))
        for d in discs
    }
    results = []
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=err, transient=True, disable=quiet) as progress:
        for d in discs:
            task = progress.add_task(d["label"], total=sizes[d["label"]])

            def advance(n: int, task: TaskID = task) -> None:
                progress.advance(task, n)

            results.append(service.build_disc(d["label"], out_dir, advance))
    return results


def _report_build(export_id: int, results: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"export": export_id, "discs": results}, sort_keys=True))
        return
    for r in results:
        state = "built" if r["built"] else "already built, intact"
        out.print(f"{r['label']}: {state}: {r['image']} sha256 {r['sha256']}", markup=False)


@export.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def export_list(ctx: click.Context, as_json: bool) -> None:
    """Every export, its approval, and its discs (image hash, burned or not)."""
    with service_for(ctx.find_root(), write=False) as service:
        rows = service.exports()
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, sort_keys=True))
        return
    table = Table()
    for column in ("disc", "export", "recordings", "image sha256", "built", "burned"):
        table.add_column(column, overflow="fold")
    for e in rows:
        for d in e["discs"]:
            table.add_row(
                d["label"], f"{e['id']} ({e['approved_by']}: {e['reason']})",
                str(len(d["recordings"])), (d["image_sha256"] or "-")[:16],
                d["built_at"] or "-",
                f"{d['burned_at']} on {d['drive']}" if d["burned_at"] else "-",
            )  # fmt: skip
    out.print(table)


@export.command("burn")
@click.argument("label")
@click.option("--images", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--drive", default=None, help="The burner (default: the only one found).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def export_burn(
    ctx: click.Context, label: str, images: Path, drive: str | None, as_json: bool
) -> None:
    """Burn disc LABEL's image, read the disc back and compare; recorded and logged."""
    if drive is None:
        burners = find_burners()
        if len(burners) != 1:
            raise UsageError(
                "no burner found: the images are ready to burn elsewhere"
                if not burners
                else f"several burners ({', '.join(burners)}): choose one with --drive"
            )
        drive = burners[0]
    with service_for(ctx.find_root(), write=True) as service:
        result = service.burn_disc(
            label, images, drive, burn=burn, read_back=sha256_of_drive, actor=local_actor()
        )
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
    else:
        out.print(
            f"{label}: burned on {drive}, read back: {'identical' if result['ok'] else 'DIFFERS'}",
            markup=False,
        )
    sys.exit(0 if result["ok"] else 1)


VERIFY_EXIT = """\b
Exit codes:
  0  the disc is intact, its proofs hold, and it holds what the catalog says
  1  problems (each listed)
  2  usage error
"""


@click.command("verify-disc", epilog=VERIFY_EXIT)
@click.argument("path", type=click.Path(path_type=Path, exists=True))
@click.option("--no-catalog", is_flag=True, help="Check the disc alone (no state directory).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def verify_disc_command(ctx: click.Context, path: Path, no_catalog: bool, as_json: bool) -> None:
    """Check a disc image (read with xorriso, no mount) or a mounted disc or folder."""
    catalog: list[dict[str, str]] = []
    with progress_bar(wants_bar(as_json)) as bar:
        progress = bar or NULL_METER
        if no_catalog:
            report = verify_disc(path, None, progress=progress)
        else:
            # Beside its catalog: this dock's keys, not the disc's own keys.txt, are trusted.
            with service_for(ctx.find_root(), write=False) as service:
                keys = [k.to_text() for k in service.trusted_keys()] or None
                report = verify_disc(path, keys, progress=progress)
                catalog = service.check_disc_against_catalog(report, path, progress)
    problems = [p.as_json() for p in report.problems] + catalog
    ok = not problems
    if as_json:
        click.echo(json.dumps({**report.as_json(), "problems": problems, "ok": ok}, sort_keys=True))
    else:
        out.print(f"disc {report.label}: {len(report.recordings)} recording(s)", markup=False)
        for p in problems:
            out.print(f"  {p['kind']}: {p['where']}: {p['detail']}", markup=False)
        out.print("verify-disc: OK" if ok else f"verify-disc: {len(problems)} problem(s)")
    sys.exit(0 if ok else 1)
