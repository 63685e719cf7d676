"""Bar charts as inline SVG, pure: categories and series in, markup out.

For the compliance report's page and PDF (report_html.py): no script and no
external file, so the page works offline, prints, and WeasyPrint renders it
the same way a browser does. Every bar carries its numbers as data
attributes (data-series, data-category, data-value) and a <title> tooltip,
so that a test (or a reader's tool) can take the figures back out of the
picture and check them against the CSV.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

# Colours people read without a legend: green on time, red late, etc. (and that
# print apart in grey: different lightness).
GREEN, RED, BLUE, ORANGE, GREY, PURPLE = (
    "#2e7d32", "#c62828", "#1565c0", "#ef6c00", "#9e9e9e", "#6a1b9a",
)  # fmt: skip

FONT = "font-family: 'WenQuanYi Micro Hei', 'Noto Sans CJK SC', sans-serif"


@dataclass(frozen=True)
class Series:
    key: str  # stable, for data-series (e.g. "late")
    label: str  # for people, in the page's language
    color: str
    values: tuple[float, ...]  # one per category


def _scale(top: float, whole: bool) -> tuple[float, float]:
    """The axis's end and its tick step: 1, 2 or 5 times a power of ten, about four
    ticks; a step of at least 1 when the values are counts (no "0.5 recordings")."""
    if top <= 0:
        return (4.0, 1.0) if whole else (1.0, 0.25)
    rough = top / 4
    power = 10.0 ** math.floor(math.log10(rough))
    step = next(k * power for k in (1, 2, 5, 10) if k * power >= rough)
    if whole:
        step = max(1.0, float(math.ceil(step)))
    return step * math.ceil(top / step - 1e-9), step


def _legend(series: Sequence[Series], x: float, y: float) -> str:
    parts = []
    for s in series:
        parts.append(
            f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{s.color}"/>'
            f'<text x="{x + 14:.1f}" y="{y:.1f}" font-size="11">{escape(s.label)}</text>'
        )
        x += 24 + 7 * len(s.label) + (6 * sum(ord(c) > 0x2E80 for c in s.label))
    return "".join(parts)


def _bar(s: Series, category: str, value: float, shown: str, x: float, y: float,
         w: float, h: float) -> str:  # fmt: skip
    return (
        f'<rect class="bar" data-series="{escape(s.key)}" data-category="{escape(category)}" '
        f'data-value="{value:g}" x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" '
        f'height="{max(h, 0):.1f}" fill="{s.color}"><title>{escape(category)} · '
        f"{escape(s.label)}: {escape(shown)}</title></rect>"
    )


def bars(
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    chart: str,
    horizontal: bool = False,
    stacked: bool = True,
    shown: Callable[[float], str] = lambda v: f"{v:g}",
    limit: float | None = None,
    limit_label: str = "",
    width: int = 680,
) -> str:
    """A bar chart: one bar (or a stack, or a group) per category.

    Vertical bars suit a time axis (weeks); horizontal bars a list of names
    (units, devices), whose labels need the room. `limit` draws a dashed line
    (e.g. the 24 h docking rule) across the value axis.
    """
    n = len(categories)
    per = [
        sum(s.values[i] for s in series) if stacked else max((s.values[i] for s in series),
                                                               default=0)
        for i in range(n)
    ]  # fmt: skip
    whole = all(float(v).is_integer() for s in series for v in s.values)
    top, step = _scale(max([*per, limit or 0, 0]), whole)
    lanes = 1 if stacked else max(len(series), 1)
    if horizontal:
        label_w, right = 150, 70
        band: float = 14 * lanes + 10
        height = round(34 + band * max(n, 1) + 30)
        plot_w: float = width - label_w - right
        scale = plot_w / top
        body = []
        for i, cat in enumerate(categories):
            y0 = 34 + i * band
            body.append(
                f'<text x="{label_w - 6}" y="{y0 + band / 2 + 4:.1f}" font-size="11" '
                f'text-anchor="end">{escape(cat)}</text>'
            )
            x = float(label_w)
            for lane, s in enumerate(series):
                v = s.values[i]
                w = v * scale
                y = y0 + 5 + (0 if stacked else lane * 14)
                if v:
                    body.append(_bar(s, cat, v, shown(v), x, y, w, 13))
                if stacked:
                    x += w
                elif v:
                    body.append(
                        f'<text x="{x + w + 3:.1f}" y="{y + 10:.1f}" font-size="10">'
                        f"{escape(shown(v))}</text>"
                    )
            if stacked and per[i]:
                body.append(
                    f'<text x="{x + 4:.1f}" y="{y0 + band / 2 + 4:.1f}" font-size="10">'
                    f"{escape(shown(per[i]))}</text>"
                )
        axis_y = round(34 + band * max(n, 1))
        body.append(_axis_h(label_w, axis_y, plot_w, top, step, shown))
        if limit is not None:
            lx = label_w + limit * scale
            body.append(
                f'<line class="limit" x1="{lx:.1f}" y1="28" x2="{lx:.1f}" y2="{axis_y}" '
                f'stroke="{RED}" stroke-dasharray="4 3"/><text x="{lx + 3:.1f}" y="26" '
                f'font-size="10" fill="{RED}">{escape(limit_label)}</text>'
            )
    else:
        left, bottom, plot_h = 56, 40, 170
        height = 30 + plot_h + bottom
        plot_w = width - left - 10
        band = plot_w / max(n, 1)
        scale = plot_h / top
        base = 30 + plot_h
        body = [_axis_v(left, base, plot_w, plot_h, top, step, shown)]
        step = max(1, round(n / 12))  # at most a dozen labels under the axis
        for i, cat in enumerate(categories):
            x0 = left + i * band
            y = float(base)
            w = min(band * 0.7, 40.0) / lanes  # one week alone is a bar, not a wall
            pad = (band - w * lanes) / 2
            for lane, s in enumerate(series):
                v = s.values[i]
                h = v * scale
                x = x0 + pad + (0 if stacked else lane * w)
                if v:
                    body.append(_bar(s, cat, v, shown(v), x, (y - h) if stacked else base - h,
                                     w, h))  # fmt: skip
                if stacked:
                    y -= h
            if i % step == 0:
                body.append(
                    f'<text x="{x0 + band / 2:.1f}" y="{base + 14}" font-size="10" '
                    f'text-anchor="middle">{escape(cat)}</text>'
                )
    legend = _legend(series, 8, 16)
    return (
        f'<svg class="chart" data-chart="{escape(chart)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'style="{FONT}">{legend}{"".join(body)}</svg>'
    )


def _ticks(top: float, step: float) -> list[float]:
    return [k * step for k in range(round(top / step) + 1)]


def _axis_v(left: int, base: int, plot_w: float, plot_h: int, top: float, step: float,
            shown: Callable[[float], str]) -> str:  # fmt: skip
    parts = [f'<line x1="{left}" y1="{base}" x2="{left + plot_w:.1f}" y2="{base}" stroke="#555"/>']
    for t in _ticks(top, step):
        y = base - t / top * plot_h
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w:.1f}" y2="{y:.1f}" '
            f'stroke="#ddd"/><text x="{left - 4}" y="{y + 4:.1f}" font-size="10" '
            f'text-anchor="end">{escape(shown(t))}</text>'
        )
    return "".join(parts)


def _axis_h(
    left: int, y: int, plot_w: float, top: float, step: float, shown: Callable[[float], str]
) -> str:
    parts = [f'<line x1="{left}" y1="{y}" x2="{left + plot_w:.1f}" y2="{y}" stroke="#555"/>']
    for t in _ticks(top, step):
        x = left + t / top * plot_w
        parts.append(
            f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 4}" stroke="#555"/>'
            f'<text x="{x:.1f}" y="{y + 16}" font-size="10" text-anchor="middle">'
            f"{escape(shown(t))}</text>"
        )
    return "".join(parts)
