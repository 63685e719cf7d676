"""`dockd report …` and `dockd gap …`: supervision (R8) and interruptions (R3, R7).

`report compliance` and `gap list` only read. `report spot-check` and `gap
explain` are changes: each writes a log entry (`report.spot_check`,
`gap.explained`) through the running daemon, which records the caller as
the actor, or, when none runs, by opening the state directory itself.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from dockd.catalog import RecordingFilter
from dockd.cli.common import change, err, local_actor, out, service_for
from dockd.cli.common import utc_text as _utc
from dockd.clock import FixedClock, parse_utc
from dockd.errors import UsageError
from dockd.pages import html_to_pdf
from dockd.progress import size_text
from dockd.retention.report import (
    GROUP_KEYS,
    gap_listing,
)
from dockd.retention.report_html import LANGS
from dockd.runner.operations import perform

_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _period(start: str | None, end: str | None) -> tuple[str | None, str | None]:
    """--from/--to as UTC strings (a date is its midnight UTC; --to is exclusive)."""
    first, last = _utc(start, "--from"), _utc(end, "--to")
    if first and last and parse_utc(last) <= parse_utc(first):
        raise UsageError(f"--to ({last}) must be after --from ({first})")
    return first, last


@click.group()
def report() -> None:
    """Reports for supervision and appraisal (R8): compliance, spot checks."""


@report.command("compliance")
@click.option("--from", "start", default=None, help="Recorded from (UTC unless an offset).")
@click.option("--to", "end", default=None, help="Recorded before (exclusive).")
@click.option(
    "--by", type=click.Choice(GROUP_KEYS), default="unit", show_default=True, help="Group by."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("table", "json", "csv", "html", "pdf")),
    default=None,
    help="table for people (the default; csv with --out), json or csv for machines, "
    "html or pdf: the page with charts (to --out FILE, else stdout).",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option(
    "--lang", type=click.Choice(LANGS), default="zh", show_default=True, help="html and pdf."
)
@click.option(
    "--as-of",
    default=None,
    help="Judge 'unlabelled' and overdue devices at this instant (default now).",
)
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the CSV: the counts to FILE, the overdue devices to FILE-overdue.csv.",
)
@click.pass_context
def report_compliance(
    ctx: click.Context,
    start: str | None,
    end: str | None,
    by: str,
    fmt: str | None,
    as_json: bool,
    as_of: str | None,
    out_file: Path | None,
    lang: str,
) -> None:
    """Per unit, officer or device: recordings, hours, on time / late (24 h rule),
    interruptions explained or not, unassigned and unlabelled recordings; and the
    devices overdue for docking.

    The period selects recordings by their recording start: --from 2026-11-01
    --to 2026-12-01 is November (UTC). Times without an offset are UTC. An
    interruption counts for the group of the recording after it. Exits 0 (2 on
    a usage error).

    CSV (UTF-8 with a byte-order mark, for Excel) is two tables: the counts,
    each row ending with the period, as_of and label_after_days, and the
    overdue devices. --out FILE writes both (FILE, FILE-overdue.csv); without
    it the counts go to stdout.

    html and pdf are one self-contained file each (inline charts, no script, no
    URL): the table, on time vs late per week, interruptions explained or not,
    recordings and storage by tier, deletions in the next 30/90 days, and the
    overdue devices. The daemon's admin page (/admin on its socket) is the same.
    """
    if fmt is None:
        fmt = "json" if as_json else "csv" if out_file is not None else "table"
    if out_file is not None and (as_json or fmt not in ("csv", "html", "pdf")):
        raise UsageError("--out writes the CSV tables, the html or the pdf; not json or table")
    first, last = _period(start, end)
    moment = _utc(as_of, "--as-of")
    wire = {"table": "text", "pdf": "html"}.get(fmt, fmt)  # a PDF is made here, from the page
    args: dict[str, Any] = {"from": first, "to": last, "by": by, "format": wire, "lang": lang,
                            "width": out.width}  # fmt: skip
    if moment:
        # Judged at another instant than the daemon's now: root, on the files themselves.
        with service_for(ctx, write=False, clock=FixedClock(parse_utc(moment))) as service:
            result = perform(service, "report.compliance", args, local_actor())
    else:
        # Through the daemon when it runs (anyone its roles allow), else here (root).
        result = change(ctx, "report.compliance", args, timeout=3600.0)
    if fmt in ("html", "pdf"):
        html = str(result["html"])
        _write_page(html.encode("utf-8") if fmt == "html" else html_to_pdf(html), out_file, fmt)
    elif fmt == "json":
        click.echo(json.dumps(result["report"], ensure_ascii=False, sort_keys=True))
    elif fmt == "csv" and out_file is not None:
        overdue_file = _overdue_path(out_file)
        for path, text in ((out_file, result["csv"]), (overdue_file, result["overdue_csv"])):
            try:
                path.write_bytes(str(text).encode("utf-8"))
            except OSError as e:
                raise UsageError(f"--out: cannot write {path}: {e.strerror}") from None
        out.print(
            f"wrote {out_file} ({result['groups']} group(s) and TOTAL) and {overdue_file} "
            f"({result['overdue']} overdue device(s))",
            markup=False,
        )
    elif fmt == "csv":
        click.echo(str(result["csv"]).encode("utf-8"), nl=False)  # UTF-8 whatever the locale
        if result["overdue"]:
            # stdout holds one table; say where the other one is rather than drop it.
            err.print(
                f"{result['overdue']} device(s) overdue for docking are not in this CSV: "
                "--out FILE writes them to FILE-overdue.csv",
                markup=False,
                soft_wrap=True,
            )
    else:
        click.echo(str(result["text"]), nl=False)


def _write_page(page: bytes, out_file: Path | None, fmt: str) -> None:
    if out_file is None:
        if fmt == "pdf" and sys.stdout.isatty():
            raise UsageError("--format pdf writes binary: give --out FILE, or redirect stdout")
        sys.stdout.buffer.write(page)
        sys.stdout.flush()
        return
    try:
        out_file.write_bytes(page)
    except OSError as e:
        raise UsageError(f"--out: cannot write {out_file}: {e.strerror}") from None
    out.print(f"wrote {out_file} ({size_text(len(page))})", markup=False)


def _overdue_path(counts: Path) -> Path:
    """report.csv -> report-overdue.csv, next to it."""
    return counts.with_name(f"{counts.stem}-overdue{counts.suffix or '.csv'}")


@report.command("spot-check")
@click.option(
    "--sample", type=click.IntRange(min=1), required=True, help="How many recordings to draw."
)
@click.option("--seed", type=int, default=None, help="Repeat an earlier draw (default random).")
@click.option("--unit", default=None, help="Only this unit's recordings.")
@click.option("--officer", default=None, help="Only this officer's recordings.")
@click.option("--device", default=None, help="Only this device (serial or number).")
@click.option("--from", "start", default=None, help="Recorded from (UTC unless an offset).")
@click.option("--to", "end", default=None, help="Recorded before (exclusive).")
@_JSON
@click.pass_context
def report_spot_check(
    ctx: click.Context,
    sample: int,
    seed: int | None,
    unit: str | None,
    officer: str | None,
    device: str | None,
    start: str | None,
    end: str | None,
    as_json: bool,
) -> None:
    """Draw SAMPLE recordings at random for review (002 Art. 22); the draw is logged.

    The same seed over the same recordings draws the same ones: the log
    entry (report.spot_check) keeps seed, filters, population and the ids.
    Deleted recordings are never drawn.
    """
    first, last = _period(start, end)
    chosen = RecordingFilter(unit=unit, officer=officer, device=device, start=first, end=last)
    args: dict[str, Any] = {"sample": sample, "seed": seed, "filters": chosen.as_json()}
    result = change(
        ctx,
        "report.spot_check",
        args,
        lambda service: perform(service, "report.spot_check", args, local_actor()),
    )
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, sort_keys=True))
        return
    drawn = result["recordings"]
    filters = ", ".join(f"{k}={v}" for k, v in sorted(chosen.as_json().items()))
    out.print(
        f"spot check: drew {len(drawn)} of {result['population']} recording(s)"
        f"{f' ({filters})' if filters else ''} with seed {result['seed']} "
        f"(repeat with --seed {result['seed']}); log entry {result['log_entry']}",
        markup=False,
    )
    table = Table()
    for column in (
        "id", "recorded (UTC)", "serial", "no.", "officer", "unit", "cause", "flags", "sha256",
    ):  # fmt: skip
        table.add_column(column, overflow="fold")
    for r in drawn:
        table.add_row(
            str(r["id"]),
            str(r["recorded_start"]).replace("T", " ").removesuffix("Z"),
            r["device_serial"],
            r.get("device_number") or "-",
            r.get("officer") or "-",
            r.get("unit") or "-",
            r.get("cause") or "-",
            ", ".join(r.get("flags") or []),
            str(r["sha256"])[:16],
        )
    out.print(table)


@click.group()
def gap() -> None:
    """Interruptions in a camera's footage (sequence holes, recordings cut off and
    resumed) and their written explanations (002 Art. 13)."""


_RULES = {
    "sequence_hole": "sequence hole",
    "split_recording": "split recording",
    "case_pause": "case pause",
    "pause": "pause (not counted)",
}


def _rule(g: dict[str, Any]) -> str:
    text = _RULES.get(str(g.get("reason")), str(g.get("reason") or g["kind"]))
    if g.get("segment_seconds"):
        text += f" ({g['segment_seconds']:.0f} s segments)"
    if g.get("cases"):
        text += f" ({', '.join(g['cases'])})"
    return text


@gap.command("list")
@click.option("--device", "serial", default=None, help="Only this device serial.")
@click.option("--unexplained", is_flag=True, help="Only those without a written explanation.")
@click.option(
    "--all", "include_pauses", is_flag=True, help="Also the ordinary pauses (not counted)."
)
@_JSON
@click.pass_context
def gap_list(
    ctx: click.Context, serial: str | None, unexplained: bool, include_pauses: bool, as_json: bool
) -> None:
    """The interruptions to explain (003 Art. 12, 002 Art. 13), with their explanations.

    s<a>-<b>: sequence numbers skipped between recordings a and b of one
    camera: files are missing (always counts). t<a>-<b>: a pause longer than
    retention.gap_threshold_seconds from the end of recording a to the start
    of the next one, b. It counts when a and b are segments of one recording
    (b is a's next file and a ran the length at which this camera splits
    recordings: "split recording") or both are linked to one case and the
    pause is at most retention.gap_max_seconds ("case pause"). Other pauses
    within a docking are breaks between incidents: --all lists them too.
    """
    with service_for(ctx, write=False) as service:
        rows = gap_listing(
            service.interruptions(serial),
            service.gap_explanations(),
            unexplained_only=unexplained,
            include_pauses=include_pauses,
        )
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, sort_keys=True))
        return
    if not rows:
        what = "unexplained interruptions" if unexplained else "interruptions"
        out.print(f"no {what}{' or pauses' if include_pauses else ''}")
        return
    table = Table()
    columns = ("gap", "device", "rule", "from (UTC)", "to (UTC)", "length", "missing")
    for column in (*columns, "explanation"):
        table.add_column(column, overflow="fold")
    for g in rows:
        missing = g["missing_sequence"]
        notes = "\n".join(f"{e['text']} ({e['by'] or '?'}, {e['at']})" for e in g["explanations"])
        table.add_row(
            g["gap"],
            g["device_serial"],
            _rule(g),
            g["from"].replace("T", " ").removesuffix("Z"),
            g["to"].replace("T", " ").removesuffix("Z"),
            f"{g['seconds']:.0f} s",
            f"{missing[0]}-{missing[1]}" if missing else "-",
            notes or ("UNEXPLAINED" if g["counts"] else "-"),
        )
    out.print(table)
    counted = [g for g in rows if g["counts"]]
    left = sum(1 for g in counted if not g["explained"])
    summary = f"{len(counted)} interruption(s), {left} unexplained"
    if include_pauses:
        summary += f"; {len(rows) - len(counted)} ordinary pause(s), not counted"
    out.print(summary, markup=False)


@gap.command("explain")
@click.argument("gap_id")
@click.option("--text", required=True, help="The officer's written explanation.")
@_JSON
@click.pass_context
def gap_explain(ctx: click.Context, gap_id: str, text: str, as_json: bool) -> None:
    """Record a written explanation of interruption GAP_ID (as `dockd gap list` shows it)."""
    args = {"gap": gap_id.strip(), "text": text}
    result = change(
        ctx,
        "gap.explain",
        args,
        lambda service: perform(service, "gap.explain", args, local_actor()),
    )
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, sort_keys=True))
        return
    out.print(f"interruption {result['gap']} explained (log entry {result['log_entry']})")
