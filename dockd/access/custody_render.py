"""The renderings of a custody report (access/custody.py): text, CSV, JSON, HTML and PDF.

Values in, text or bytes out; the report is not re-checked here (custody.py
did, when it made it). Every rendering shows the same events in log order.

- text: for a terminal, in Chinese or English;
- CSV: one row per event, UTF-8 with a byte-order mark (Excel), as the
  compliance report's (retention/report.py);
- JSON: `CustodyReport.as_json`, every inclusion path in full;
- HTML: a page for print, from which the PDF is made;
- PDF: WeasyPrint's rendering of the HTML (A4, page numbers; dockd/pages.py,
  the one renderer of every report: fonts, and no URL fetched).
"""

from __future__ import annotations

import csv
import io
import json
from html import escape
from typing import Literal

from dockd.access.custody import CustodyEvent, CustodyReport
from dockd.errors import UsageError
from dockd.pages import FONTS, PAGE_NUMBERS, html_to_pdf

Lang = Literal["zh", "en"]

CSV_COLUMNS = (
    "seq",
    "time",
    "kind",
    "by",
    "recordings",
    "what_en",
    "what_zh",
    "leaf_hash",
    "inclusion_path",
    "in_checkpoint",
)
# Excel reads a CSV without a byte-order mark in the local code page.
CSV_BOM = "\ufeff"
# How much of a leaf hash the PDF and the text show beside the path's length.
HASH_PREFIX = 12

_WORDS: dict[str, tuple[str, str]] = {
    "title": ("证据保管链报告", "Chain of custody"),
    "subject": ("对象", "Subject"),
    "origin": ("证据日志", "Log"),
    "generated": ("生成时间（UTC）", "Generated (UTC)"),
    "checkpoint": ("签名检查点", "Signed checkpoint"),
    "tree_size": ("树大小（条目数）", "Tree size (entries)"),
    "root": ("根哈希", "Root hash"),
    "signed_by": ("签名公钥", "Signed by"),
    "note": ("检查点原文", "Checkpoint note"),
    "how": ("如何核对", "How to check a proof"),
    "events": ("事件", "Events"),
    "seq": ("序号", "Seq"),
    "time": ("时间（UTC）", "Time (UTC)"),
    "by": ("操作人", "By"),
    "recordings": ("录像", "Recordings"),
    "what": ("内容", "What"),
    "proof": ("包含证明", "Proof"),
    "leaf": ("叶哈希", "leaf hash"),
    "unproven": ("尚未纳入签名检查点", "not yet in a signed checkpoint"),
    "none": ("无事件", "no events"),
}

_HOW = {
    "zh": (
        "每个事件的叶哈希是 SHA-256(0x00 ‖ 该日志条目的字节) 的 base64（RFC 9162 §2.1.1），"
        "条目字节见日志导出（dockd log export OUT --from 序号 --to 序号）。"
        "以叶序号“序号 − 1”、上列树大小，按 RFC 9162 §2.1.3.2 将包含路径中的哈希依次合并，"
        "结果须等于上列根哈希。检查点是 C2SP 签名注记，"
        "须用独立来源（案卷中留存的公钥、更早的光盘）的公钥核对其 Ed25519 签名。"
        "日志导出中的 verify.py 无需 dockd 即可完成以上全部核对。"
    ),
    "en": (
        "Each event's leaf hash is the base64 of SHA-256(0x00 ‖ the log entry's bytes) "
        "(RFC 9162 §2.1.1); the entry's bytes are in a log export "
        "(dockd log export OUT --from SEQ --to SEQ). Fold its inclusion path with leaf index "
        "seq − 1 in a tree of the size above (RFC 9162 §2.1.3.2): the result must be the root "
        "hash above. The checkpoint is a C2SP signed note: check its Ed25519 signature with a "
        "key from an independent copy (a court file, an earlier disc). The verify.py of a log "
        "export does all of this without dockd."
    ),
}

_LATER = {
    "zh": (
        "{n} 个事件记录于本检查点之后，尚无包含证明；"
        "签署新的检查点（dockd checkpoint）后重新生成本报告即可补全。"
    ),
    "en": (
        "{n} event(s) were logged after this checkpoint and have no proof yet; sign a new "
        "checkpoint (dockd checkpoint) and make this report again to complete it."
    ),
}


def _check_lang(lang: str) -> Lang:
    if lang not in ("zh", "en"):
        raise UsageError(f"unknown language {lang!r}: zh or en")
    return "zh" if lang == "zh" else "en"


def _w(key: str, lang: Lang) -> str:
    zh, en = _WORDS[key]
    return zh if lang == "zh" else en


def _sep(lang: Lang) -> str:
    return "：" if lang == "zh" else ": "


def _subject(report: CustodyReport, lang: Lang) -> str:
    return report.subject_zh if lang == "zh" else report.subject


def _what(event: CustodyEvent, lang: Lang) -> str:
    return event.what_zh if lang == "zh" else event.what_en


def _recs(event: CustodyEvent) -> str:
    return ", ".join(str(r) for r in event.recordings) or "—"


def _proof(event: CustodyEvent, lang: Lang) -> str:
    """`leafhashpref… · path 4`, or that the event is not yet checkpointed."""
    if not event.in_checkpoint:
        return _w("unproven", lang)
    n = len(event.inclusion_path)
    path = f"路径 {n} 个哈希" if lang == "zh" else f"path of {n}"
    return f"{event.leaf_hash[:HASH_PREFIX]}… · {path}"


def _short_time(time: str) -> str:
    """`2026-11-25 09:00:00` from `2026-11-25T09:00:00.123456Z`."""
    return time.replace("T", " ").removesuffix("Z").split(".", 1)[0]


def _facts(report: CustodyReport, lang: Lang) -> list[tuple[str, str]]:
    return [
        (_w("subject", lang), _subject(report, lang)),
        (_w("origin", lang), report.origin),
        (_w("generated", lang), report.generated_at),
        (_w("tree_size", lang), str(report.tree_size)),
        (_w("root", lang), report.root_hash),
        (_w("signed_by", lang), "\n".join(report.signed_by)),
    ]


# -- text ---------------------------------------------------------------------------


def to_text(report: CustodyReport, lang: str = "zh") -> str:
    """The report for a terminal: the facts, how to check, then one block per event."""
    lg = _check_lang(lang)
    sep = _sep(lg)
    lines = [_w("title", lg), ""]
    for label, value in _facts(report, lg):
        lines.append(f"{label}{sep}{value}".replace("\n", "\n    "))
    lines += ["", f"{_w('how', lg)}{sep}{_HOW[lg]}", ""]
    if report.unproven:
        lines += [_LATER[lg].format(n=len(report.unproven)), ""]
    lines.append(f"{_w('events', lg)} ({len(report.events)})")
    if not report.events:
        lines.append(f"  {_w('none', lg)}")
    for e in report.events:
        who = e.by or "—"
        lines.append(f"#{e.seq}  {e.time}  {_w('by', lg)} {who}  {_w('recordings', lg)} {_recs(e)}")
        lines.append(f"    {e.kind}: {_what(e, lg)}")
        if e.in_checkpoint:
            n = len(e.inclusion_path)
            lines.append(
                f"    {_w('proof', lg)}{sep}{_w('leaf', lg)} {e.leaf_hash}, {_path_words(n, lg)}"
            )
        else:
            lines.append(f"    {_w('proof', lg)}{sep}{_w('unproven', lg)}")
    lines += ["", f"{_w('note', lg)}{sep}", *("    " + ln for ln in report.checkpoint.splitlines())]
    return "\n".join(lines) + "\n"


def _path_words(n: int, lang: Lang) -> str:
    return (
        f"路径 {n} 个哈希"
        if lang == "zh"
        else f"inclusion path of {n} hash{'' if n == 1 else 'es'}"
    )


# -- CSV and JSON -------------------------------------------------------------------


def to_csv(report: CustodyReport) -> bytes:
    """A header row, then one row per event (CSV_COLUMNS); UTF-8 with a BOM, `\\n` line ends.

    `recordings` and `inclusion_path` are space-separated; in_checkpoint is
    true or false (false: the path is empty because there is none yet).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for e in report.events:
        writer.writerow(
            [
                e.seq,
                e.time,
                e.kind,
                e.by or "",
                " ".join(str(r) for r in e.recordings),
                e.what_en,
                e.what_zh,
                e.leaf_hash,
                " ".join(e.inclusion_path),
                "true" if e.in_checkpoint else "false",
            ]
        )
    return (CSV_BOM + buffer.getvalue()).encode("utf-8")


def to_json(report: CustodyReport) -> str:
    return json.dumps(report.as_json(), ensure_ascii=False, indent=2) + "\n"


# -- HTML and PDF -------------------------------------------------------------------

# Fonts by family name only (fontconfig finds them): no @font-face, no URL.

_CSS = """
@page {
  size: A4;
  margin: 16mm 12mm 18mm 12mm;
  @top-left { content: string(doctitle); font-size: 7.5pt; color: #555; }
  @top-right { content: string(subject); font-size: 7.5pt; color: #555; }
  @bottom-center { content: PAGES; font-size: 8pt; color: #333; }
}
html { font-family: FONTS; font-size: 8.5pt; line-height: 1.35; color: #000; }
h1 { font-size: 16pt; margin: 0 0 1mm 0; string-set: doctitle content(text); }
h1 .other { font-size: 10pt; font-weight: normal; color: #555; margin-left: 3mm; }
h2 { font-size: 11pt; margin: 4mm 0 1.5mm 0; }
.subject { string-set: subject content(text); }
table { border-collapse: collapse; width: 100%; }
table.facts th { text-align: left; font-weight: bold; width: 30mm; vertical-align: top;
  padding: 0.6mm 2mm 0.6mm 0; }
table.facts td { padding: 0.6mm 0; overflow-wrap: anywhere; white-space: pre-line; }
p.how { margin: 0 0 2mm 0; text-align: justify; }
p.later { margin: 0 0 2mm 0; font-weight: bold; }
pre.note { font-family: "DejaVu Sans Mono", monospace; font-size: 7pt; background: #f3f3f3;
  padding: 1.5mm; white-space: pre-wrap; overflow-wrap: anywhere; margin: 0; }
table.events { table-layout: fixed; font-size: 7.5pt; }
table.events thead { display: table-header-group; }
table.events th { background: #e4e4e4; border: 0.3pt solid #999; padding: 1mm; text-align: left; }
table.events td { border: 0.3pt solid #bbb; padding: 0.8mm 1mm; vertical-align: top;
  overflow-wrap: anywhere; }
table.events tr { page-break-inside: avoid; }
col.seq { width: 8%; } col.time { width: 13%; } col.by { width: 9%; }
col.recs { width: 8%; } col.what { width: 46%; } col.proof { width: 16%; }
span.kind { color: #666; font-size: 6.5pt; }
td.proof { font-family: "DejaVu Sans Mono", monospace; font-size: 6.5pt; }
td.unproven { color: #a00; font-style: italic; }
"""


def to_html(report: CustodyReport, lang: str = "zh") -> str:
    """A self-contained HTML page of the report (inline CSS, no URL), for print."""
    lg = _check_lang(lang)
    other: Lang = "en" if lg == "zh" else "zh"
    css = _CSS.replace("FONTS", FONTS).replace("PAGES", PAGE_NUMBERS[lg])
    facts = "".join(
        f"<tr><th>{escape(k)}</th><td{' class=subject' if i == 0 else ''}>{escape(v)}</td></tr>"
        for i, (k, v) in enumerate(_facts(report, lg))
    )
    later = (
        f'<p class="later">{escape(_LATER[lg].format(n=len(report.unproven)))}</p>'
        if report.unproven
        else ""
    )
    heads = ("seq", "time", "by", "recordings", "what", "proof")
    cols = "".join(f'<col class="{c}">' for c in ("seq", "time", "by", "recs", "what", "proof"))
    rows = "".join(_row(e, lg) for e in report.events) or (
        f'<tr><td colspan="6">{escape(_w("none", lg))}</td></tr>'
    )
    title = f"{_w('title', lg)} — {_subject(report, lg)}"
    return f"""<!DOCTYPE html>
<html lang="{"zh-Hans" if lg == "zh" else "en"}">
<head>
<meta charset="utf-8">
<title>{escape(title)}</title>
<meta name="generator" content="dockd">
<meta name="dcterms.created" content="{escape(report.generated_at)}">
<style>{css}</style>
</head>
<body>
<h1>{escape(_w("title", lg))} <span class="other">{escape(_w("title", other))}</span></h1>
<h2>{escape(_w("checkpoint", lg))}</h2>
<table class="facts">{facts}</table>
<h2>{escape(_w("how", lg))}</h2>
<p class="how">{escape(_HOW[lg])}</p>
<pre class="note">{escape(report.checkpoint)}</pre>
<h2>{escape(_w("events", lg))} ({len(report.events)})</h2>
{later}
<table class="events">
<colgroup>{cols}</colgroup>
<thead><tr>{"".join(f"<th>{escape(_w(h, lg))}</th>" for h in heads)}</tr></thead>
<tbody>
{rows}
</tbody>
</table>
</body>
</html>
"""


def _row(e: CustodyEvent, lang: Lang) -> str:
    proof_class = "proof" if e.in_checkpoint else "proof unproven"
    return (
        f"<tr><td>{e.seq}</td><td>{escape(_short_time(e.time))}</td>"
        f"<td>{escape(e.by or '—')}</td><td>{escape(_recs(e))}</td>"
        f'<td>{escape(_what(e, lang))}<span class="kind"> · {escape(e.kind)}</span></td>'
        f'<td class="{proof_class}">{escape(_proof(e, lang))}</td></tr>\n'
    )


def to_pdf(report: CustodyReport, lang: str = "zh") -> bytes:
    """The PDF of `to_html(report, lang)` (pages.py: WeasyPrint, no URL allowed)."""
    return html_to_pdf(to_html(report, lang))


FORMATS = ("text", "csv", "json", "html", "pdf")


def render(report: CustodyReport, fmt: str, lang: str = "zh") -> bytes:
    """The report in one of FORMATS, as the bytes of its file."""
    if fmt == "text":
        return to_text(report, lang).encode("utf-8")
    if fmt == "csv":
        return to_csv(report)
    if fmt == "json":
        return to_json(report).encode("utf-8")
    if fmt == "html":
        return to_html(report, lang).encode("utf-8")
    if fmt == "pdf":
        return to_pdf(report, lang)
    raise UsageError(f"format: {fmt!r} is not one of {', '.join(FORMATS)}", field="format")
