"""The compliance report as rich tables, for a terminal (pure: a report in, tables out).

The CLI prints them; the daemon's API renders them to text (`to_text`) for a
caller who asked for the table and cannot read the state directory itself.
"""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from dockd.clock import isoformat_utc
from dockd.retention.report import NONE_LABEL, TABLE_COUNTS, TOTAL_LABEL, ComplianceReport, cell


def _recorded(report: ComplianceReport) -> str:
    start = isoformat_utc(report.start) if report.start else "the beginning"
    end = isoformat_utc(report.end) if report.end else "now"
    return f"recorded from {start} to {end} (exclusive)"


def render_table(report: ComplianceReport) -> Table:
    table = Table(
        title=(
            f"compliance by {report.by}, {_recorded(report)}, as of {isoformat_utc(report.as_of)}"
        ),
        caption=(
            "late: stored more than 24 h after the recording ended; interruptions: sequence "
            "holes, split recordings resumed late and pauses within a case (not ordinary "
            "pauses between incidents), explained in writing or not; unassigned: no assignment "
            "covered the recording; unlabelled: no cause and no case "
            f"{report.label_after_days:g} days after ingest"
        ),
        show_footer=True,
    )
    table.add_column(report.by, footer=TOTAL_LABEL, overflow="fold")
    headers = {
        "interruptions_explained": "interruptions explained",
        "interruptions_unexplained": "unexplained",
        "on_time": "on time",
    }
    for column in TABLE_COUNTS:
        table.add_column(
            headers.get(column, column), footer=cell(report.total, column), justify="right"
        )
    for g in report.groups:
        table.add_row(g.group, *(cell(g, c) for c in TABLE_COUNTS))
    return table


def render_overdue(report: ComplianceReport) -> Table:
    table = Table(title=f"devices overdue for docking as of {isoformat_utc(report.as_of)}")
    for column in ("serial", "number", "officer", "unit", "last docked", "why"):
        table.add_column(column, overflow="fold")
    for d in report.overdue:
        table.add_row(
            d.serial,
            d.device_number or "-",
            d.officer or NONE_LABEL,
            d.unit or NONE_LABEL,
            isoformat_utc(d.last_docked) if d.last_docked else "never",
            d.why(),
        )
    return table


def to_text(report: ComplianceReport, width: int = 120) -> str:
    """Both tables (or the word that no device is overdue) as plain text."""
    console = Console(file=io.StringIO(), width=width, color_system=None, record=True)
    console.print(render_table(report))
    if report.overdue:
        console.print(render_overdue(report))
    else:
        console.print("no device is overdue for docking")
    return console.export_text()
