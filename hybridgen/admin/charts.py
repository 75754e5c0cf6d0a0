"""Line charts as inline SVG, drawn on the server: no chart library, no script, nothing from a CDN.

The page's Content-Security-Policy forbids inline style and script, so the SVG carries presentation
attributes only (fill, stroke, font-size), which the policy does not govern. Every text that goes
into it (series labels such as a model name, days, titles) is escaped here, attributes included:
a model name is configuration a user typed, and a chart must not be a way into the page.

A point is a <circle class="point"> with data-series / data-day / data-value and a <title> that the
browser shows on hover; a point that raised an alert is drawn larger, ringed in red, with class
"point alert".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from typing import Callable, Sequence

from markupsafe import Markup

# Okabe-Ito: told apart by people with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
ALERT = "#D62728"
WIDTH, PLOT_HEIGHT = 520, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 14, 32, 30
LEGEND_ROW = 18


def e(value: object) -> str:
    """Text or attribute value, escaped (quotes too)."""
    return escape(str(value), quote=True)


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[tuple[str, float]]
    """(day, value), any order; days not in the chart's axis are left out."""
    alert_days: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Guide:
    """A horizontal reference line, e.g. a threshold."""

    label: str
    value: float


def percent(value: float) -> str:
    return f"{value * 100:.0f}%" if abs(value * 100 - round(value * 100)) < 0.05 else f"{value * 100:.1f}%"


def number(value: float) -> str:
    """1.375 -> 1.38, 8.0 -> 8, 1234.5 -> 1234 (two decimals at most; whole numbers from 100)."""
    return f"{value:.0f}" if value >= 100 else (f"{value:.2f}".rstrip("0").rstrip(".") or "0")


def nice_max(value: float) -> float:
    """A round axis top at or above `value` (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    scale = 10.0 ** math.floor(math.log10(value))
    return next(step * scale for step in (1, 2, 2.5, 5, 10) if value <= step * scale * (1 + 1e-9))


def tick_count(top: float) -> int:
    """Grid intervals that give round labels: 2.5 and 5 split in 5 (0.5, 1), 1 and 2 in 4 (0.25, 0.5)."""
    leading = round(top / 10.0 ** math.floor(math.log10(top)), 3) if top > 0 else 1
    return 5 if leading in (2.5, 5) else 4


def line_chart(chart_id: str, title: str, days: Sequence[str], series: Sequence[Series], *,
               guides: Sequence[Guide] = (), y_max: float | None = None,
               fmt: Callable[[float], str] = number) -> Markup:
    """One SVG line chart: a line and points per series over `days` (the x axis, oldest first),
    guides as dashed red lines, and a legend below."""
    values = [v for s in series for _, v in s.points] + [g.value for g in guides]
    top = y_max if y_max is not None else nice_max(max(values, default=0.0) * 1.1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, PLOT_HEIGHT - TOP - BOTTOM
    height = PLOT_HEIGHT + LEGEND_ROW * len(series) + 6
    index = {day: n for n, day in enumerate(days)}

    def x(day: str) -> float:
        return LEFT + (plot_w * index[day] / (len(days) - 1) if len(days) > 1 else plot_w / 2)

    def y(value: float) -> float:
        return TOP + plot_h * (1 - min(max(value, 0.0), top) / top)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" id="{e(chart_id)}" class="metrics-chart" role="img" '
           f'viewBox="0 0 {WIDTH} {height}" width="100%" font-family="sans-serif" font-size="12" '
           f'aria-label="{e(title)}">',
           f'<title>{e(title)}</title>',
           f'<text x="{LEFT}" y="18" font-size="15" font-weight="bold" fill="#1d273b">{e(title)}</text>']
    ticks = tick_count(top)
    for n in range(ticks + 1):  # horizontal grid and y labels
        value = top * n / ticks
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                   f'stroke="#e6e7e9" stroke-width="1"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end" fill="#626976">'
                   f'{e(fmt(value))}</text>')
    step = max(1, -(-len(days) // 7))  # at most ~7 day labels, the last day always, none crowding it
    for n, day in enumerate(days):
        if n == len(days) - 1 or (n % step == 0 and len(days) - 1 - n >= step / 2):
            out.append(f'<text x="{x(day):.1f}" y="{PLOT_HEIGHT - BOTTOM + 16}" text-anchor="middle" '
                       f'fill="#626976">{e(day[5:])}</text>')
    out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" stroke="#9aa0ac"/>')
    for g in guides:
        out.append(f'<line class="guide" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(g.value):.1f}" y2="{y(g.value):.1f}" '
                   f'stroke="{ALERT}" stroke-width="1.5" stroke-dasharray="6 4"><title>{e(g.label)}</title></line>')
        out.append(f'<text x="{LEFT + 4}" y="{y(g.value) - 4:.1f}" fill="{ALERT}">{e(g.label)}</text>')
    if not any(s.points for s in series):
        out.append(f'<text class="no-data" x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" text-anchor="middle" '
                   f'fill="#626976">no finished items in this period</text>')
    for n, s in enumerate(series):
        color = PALETTE[n % len(PALETTE)]
        points = sorted((d, v) for d, v in s.points if d in index)
        if len(points) > 1:
            path = " ".join(f"{x(d):.1f},{y(v):.1f}" for d, v in points)
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for d, v in points:
            alert = d in s.alert_days
            ring = f' stroke="{ALERT}" stroke-width="3"' if alert else ' stroke="#ffffff" stroke-width="1"'
            out.append(f'<circle class="point{" alert" if alert else ""}" cx="{x(d):.1f}" cy="{y(v):.1f}" '
                       f'r="{6 if alert else 3.5}" fill="{color}"{ring} data-series="{e(s.label)}" data-day="{e(d)}" '
                       f'data-value="{e(v)}"><title>{e(s.label)} on {e(d)}: {e(fmt(v))}'
                       f'{" (alert)" if alert else ""}</title></circle>')
        legend_y = PLOT_HEIGHT + LEGEND_ROW * n + 8
        out.append(f'<rect x="{LEFT}" y="{legend_y}" width="12" height="12" fill="{color}"/>')
        out.append(f'<text class="legend" x="{LEFT + 18}" y="{legend_y + 10}" fill="#1d273b">{e(s.label)}</text>')
    out.append("</svg>")
    return Markup("".join(out))
