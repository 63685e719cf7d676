"""The compliance report as a page with charts (HTML) and its PDF, pure.

Values in (the report, retention/report.py; its charts, charts.py), markup
out: one self-contained file, inline CSS and SVG (svg.py), no script and no
URL, so that it opens offline, is mailed as one attachment, and prints.
The PDF is WeasyPrint's rendering of the same HTML (dockd/pages.py, as the
custody report). The admin page of the daemon's API (`/admin`) is this page.

The table holds the CSV's figures (the same `cell` of each count); each
chart's bars carry their figures as data attributes, and a bar chart of
weeks says how many recordings lie before its first week, so that what the
pictures show adds up to the table's TOTAL.
"""

from __future__ import annotations

from html import escape

from dockd.clock import isoformat_utc
from dockd.errors import UsageError
from dockd.pages import FONTS, PAGE_NUMBERS, html_to_pdf
from dockd.progress import size_text
from dockd.retention.charts import ReportCharts
from dockd.retention.report import TABLE_COUNTS, ComplianceReport, cell
from dockd.retention.svg import BLUE, GREEN, GREY, ORANGE, PURPLE, RED, Series, bars

LANGS = ("zh", "en")

_WORDS: dict[str, tuple[str, str]] = {
    "title": ("执法记录仪数据合规报告", "Body-worn camera compliance report"),
    "period": ("录制时间范围", "Recorded"),
    "from_start": ("最早", "the beginning"),
    "to_now": ("现在", "now"),
    "by": ("分组", "Grouped by"),
    "as_of": ("统计时刻（UTC）", "As of (UTC)"),
    "unit": ("单位", "unit"),
    "officer": ("警员", "officer"),
    "device": ("设备", "device"),
    "table": ("统计表", "Counts"),
    "group": ("分组", "Group"),
    "recordings": ("录像数", "Recordings"),
    "hours": ("时长（小时）", "Hours"),
    "on_time": ("按时", "On time"),
    "late": ("超时（>24 小时）", "Late (>24 h)"),
    "interruptions_explained": ("中断·已说明", "Interruptions explained"),
    "interruptions_unexplained": ("中断·未说明", "Interruptions unexplained"),
    "unassigned": ("未分配设备", "Unassigned device"),
    "unlabelled": ("未标注", "Unlabelled"),
    "weekly": ("每周按时与超时上传（按录制开始周）", "On time vs late, per week of recording"),
    "earlier": ("更早的周：按时 {a}，超时 {b}（仅计入统计表）",
                "Earlier weeks: {a} on time, {b} late (in the table only)"),
    "gaps": ("中断情况：已说明与未说明", "Interruptions: explained vs unexplained"),
    "explained": ("已说明", "explained"),
    "unexplained": ("未说明", "unexplained"),
    "kept": ("保存期限与存储", "Retention tiers and storage"),
    "tiers": ("按保存期限的录像", "Recordings by retention tier"),
    "live": ("保存中", "kept"),
    "deleted": ("已删除", "deleted"),
    "storage": ("每周末存储用量（本期录像）",
                "Storage used at each week's end (this period's recordings)"),
    "deletions": ("即将到期删除的录像", "Retention deletions coming up"),
    "within": ("{d} 天内", "within {d} days"),
    "deletions_none": ("未来 90 天内没有到期删除的录像。",
                       "Nothing is due for deletion in the next 90 days."),
    "overdue": ("逾期未接入的设备", "Devices overdue for docking"),
    "overdue_none": ("没有逾期未接入的设备。", "No device is overdue for docking."),
    "hours_since": ("距上次接入（小时）", "hours since last docking"),
    "rule": ("24 小时", "24 h"),
    "serial": ("设备序列号", "Serial"),
    "number": ("设备编号", "Number"),
    "last_docked": ("上次接入（UTC）", "Last docked (UTC)"),
    "officer_h": ("警员", "Officer"),
    "unit_h": ("单位", "Unit"),
    "never": ("从未", "never"),
    "why": ("原因", "Why"),
    "nothing": ("本期没有录像。", "No recordings in this period."),
    "tier_6m": ("6 个月", "6 months"),
    "tier_2y": ("2 年", "2 years"),
    "tier_permanent": ("永久", "permanent"),
}  # fmt: skip

_CSS = """
@page { size: A4; margin: 14mm 12mm 16mm 12mm;
  @bottom-center { content: PAGES; font-size: 8pt; color: #333; } }
html { font-family: FONTS; font-size: 9pt; line-height: 1.35; color: #000; }
body { max-width: 190mm; margin: 0 auto; }
h1 { font-size: 16pt; margin: 0 0 2mm 0; }
h1 .other { font-size: 10pt; font-weight: normal; color: #555; margin-left: 3mm; }
h2 { font-size: 11.5pt; margin: 5mm 0 1.5mm 0; break-after: avoid; }
table { border-collapse: collapse; margin: 1mm 0 2mm 0; }
th, td { border: 0.3mm solid #999; padding: 0.8mm 1.6mm; text-align: right; }
th:first-child, td:first-child, .facts th, .facts td { text-align: left; }
thead th { background: #eee; }
tr.total td { font-weight: bold; border-top: 0.6mm solid #000; }
td.bad { color: #b71c1c; font-weight: bold; }
.facts th { background: none; border: none; color: #444; font-weight: normal; padding-left: 0; }
.facts td { border: none; }
figure { margin: 1mm 0 3mm 0; break-inside: avoid; }
figcaption { font-size: 8.5pt; color: #333; margin-bottom: 1mm; }
.note { color: #555; font-size: 8pt; }
svg.chart { display: block; max-width: 100%; height: auto; }
"""


def _w(key: str, lang: str) -> str:
    zh, en = _WORDS[key]
    return zh if lang == "zh" else en


def _tier(tier: str, lang: str) -> str:
    key = f"tier_{tier}"
    return _w(key, lang) if key in _WORDS else tier


def _count(v: float) -> str:
    return f"{v:.0f}" if v == int(v) else f"{v:.1f}"


def _figure(title: str, svg: str, note: str = "", attrs: str = "") -> str:
    extra = f'<p class="note">{escape(note)}</p>' if note else ""
    return f"<figure{attrs}><figcaption>{escape(title)}</figcaption>{svg}{extra}</figure>"


def _table(report: ComplianceReport, lang: str) -> str:
    heads = "".join(f"<th>{escape(_w(c, lang))}</th>" for c in TABLE_COUNTS)
    rows = []
    for g in (*report.groups, report.total):
        total = g is report.total
        tds = []
        for c in TABLE_COUNTS:
            value = cell(g, c)
            bad = c in ("late", "interruptions_unexplained", "unlabelled") and value not in (
                "0",
                "",
            )
            tds.append(f'<td data-column="{c}"{" class=bad" if bad else ""}>{escape(value)}</td>')
        rows.append(
            f'<tr{" class=total" if total else ""} data-group="{escape(g.group)}">'
            f"<td>{escape(g.group)}</td>{''.join(tds)}</tr>"
        )
    return (
        f'<table class="counts"><thead><tr><th>{escape(_w("group", lang))}</th>{heads}</tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _weekly(charts: ReportCharts, lang: str) -> str:
    weeks = [w.strftime("%m-%d") for w in charts.weeks]
    parts = []
    for g in charts.late_by_week:
        svg = bars(
            weeks,
            [Series("on_time", _w("on_time", lang), GREEN, tuple(map(float, g.on_time))),
             Series("late", _w("late", lang), RED, tuple(map(float, g.late)))],
            chart=f"weekly:{g.group}", shown=_count,
        )  # fmt: skip
        note = ""
        if g.earlier_on_time or g.earlier_late:
            note = _w("earlier", lang).format(a=g.earlier_on_time, b=g.earlier_late)
        # What lies before the first bar, as figures too: bars + these = the table's.
        attrs = f' data-earlier-on-time="{g.earlier_on_time}" data-earlier-late="{g.earlier_late}"'
        parts.append(_figure(g.group, svg, note, attrs))
    return "".join(parts)


def _gaps(report: ComplianceReport, lang: str) -> str:
    groups = report.groups
    return bars(
        [g.group for g in groups],
        [Series("explained", _w("explained", lang), BLUE,
                tuple(float(g.interruptions_explained) for g in groups)),
         Series("unexplained", _w("unexplained", lang), ORANGE,
                tuple(float(g.interruptions_unexplained) for g in groups))],
        chart="interruptions", horizontal=True, shown=_count,
    )  # fmt: skip


def _tiers(charts: ReportCharts, lang: str) -> str:
    names = [_tier(t.tier, lang) for t in charts.tiers]
    counts = bars(
        names,
        [Series("live", _w("live", lang), BLUE, tuple(float(t.live) for t in charts.tiers)),
         Series("deleted", _w("deleted", lang), GREY,
                tuple(float(t.deleted) for t in charts.tiers))],
        chart="tiers", horizontal=True, stacked=False, shown=_count,
    )  # fmt: skip
    palette = (GREEN, BLUE, PURPLE, GREY)
    storage = bars(
        [w.strftime("%m-%d") for w in charts.weeks],
        [
            Series(f"storage:{tier}", _tier(tier, lang), palette[min(i, 3)], tuple(map(float, v)))
            for i, (tier, v) in enumerate(charts.storage)
        ],
        chart="storage",
        shown=size_text,
    )
    return (
        f"<h2>{escape(_w('kept', lang))}</h2>"
        f"{_figure(_w('tiers', lang), counts)}{_figure(_w('storage', lang), storage)}"
    )


def _deletions(charts: ReportCharts, lang: str) -> str:
    if not any(d.recordings for d in charts.deletions):
        return f"<p>{escape(_w('deletions_none', lang))}</p>"
    tiers = sorted({t for d in charts.deletions for t, _, _ in d.by_tier})
    series = []
    for d, color in zip(charts.deletions, (RED, ORANGE), strict=False):
        found = {t: n for t, n, _ in d.by_tier}
        label = f"{_w('within', lang).format(d=d.days)} ({d.recordings}, {size_text(d.bytes)})"
        series.append(Series(f"days:{d.days}", label, color,
                             tuple(float(found.get(t, 0)) for t in tiers)))  # fmt: skip
    return bars(
        [_tier(t, lang) for t in tiers], series, chart="deletions", horizontal=True,
        stacked=False, shown=_count,
    )  # fmt: skip


def _overdue(report: ComplianceReport, lang: str, limit_hours: float) -> str:
    if not report.overdue:
        return f"<p>{escape(_w('overdue_none', lang))}</p>"
    devices = report.overdue
    svg = bars(
        [d.serial for d in devices],
        [Series("hours_since", _w("hours_since", lang), RED,
                tuple(float(d.hours_since or 0) for d in devices))],
        chart="overdue", horizontal=True, shown=_count, limit=limit_hours,
        limit_label=_w("rule", lang) if limit_hours == 24 else f"{limit_hours:g} h",
    )  # fmt: skip
    rows = "".join(
        f'<tr data-serial="{escape(d.serial)}"><td>{escape(d.serial)}</td>'
        f"<td>{escape(d.device_number or '—')}</td><td>{escape(d.officer or '—')}</td>"
        f"<td>{escape(d.unit or '—')}</td>"
        f"<td>{escape(isoformat_utc(d.last_docked) if d.last_docked else _w('never', lang))}</td>"
        f"<td>{escape(d.why())}</td></tr>"
        for d in devices
    )
    heads = "".join(
        f"<th>{escape(_w(k, lang))}</th>"
        for k in ("serial", "number", "officer_h", "unit_h", "last_docked", "why")
    )
    return (
        f'{svg}<table class="overdue"><thead><tr>{heads}</tr></thead><tbody>{rows}</tbody></table>'
    )


def to_html(
    report: ComplianceReport, charts: ReportCharts, lang: str = "zh", limit_hours: float = 24.0
) -> str:
    """The report as one self-contained page (inline CSS and SVG, no script, no URL)."""
    if lang not in LANGS:
        raise UsageError(f"lang: {lang!r} is not one of {', '.join(LANGS)}", field="lang")
    other = "en" if lang == "zh" else "zh"
    start = isoformat_utc(report.start) if report.start else _w("from_start", lang)
    end = isoformat_utc(report.end) if report.end else _w("to_now", lang)
    facts = (
        (_w("period", lang), f"{start} – {end}"),
        (_w("by", lang), _w(report.by, lang)),
        (_w("as_of", lang), isoformat_utc(report.as_of)),
    )
    fact_rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts)
    if report.groups:
        body = (
            f"<h2>{escape(_w('weekly', lang))}</h2>{_weekly(charts, lang)}"
            f"<h2>{escape(_w('gaps', lang))}</h2>{_figure('', _gaps(report, lang))}"
            f"{_tiers(charts, lang)}"
        )
    else:
        body = f"<p>{escape(_w('nothing', lang))}</p>"
    css = _CSS.replace("FONTS", FONTS).replace("PAGES", PAGE_NUMBERS[lang])
    return f"""<!DOCTYPE html>
<html lang="{"zh-CN" if lang == "zh" else "en"}">
<head>
<meta charset="utf-8">
<title>{escape(_w("title", lang))} {escape(isoformat_utc(report.as_of))}</title>
<style>{css}</style>
</head>
<body>
<h1>{escape(_w("title", lang))} <span class="other">{escape(_w("title", other))}</span></h1>
<table class="facts">{fact_rows}</table>
<h2>{escape(_w("table", lang))}</h2>
{_table(report, lang)}
{body}
<h2>{escape(_w("deletions", lang))}</h2>
{_deletions(charts, lang)}
<h2>{escape(_w("overdue", lang))}</h2>
{_overdue(report, lang, limit_hours)}
</body>
</html>
"""


def to_pdf(
    report: ComplianceReport, charts: ReportCharts, lang: str = "zh", limit_hours: float = 24.0
) -> bytes:
    """The PDF of `to_html` (pages.py: WeasyPrint, no URL allowed)."""
    return html_to_pdf(to_html(report, charts, lang, limit_hours))
