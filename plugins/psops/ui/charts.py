"""Server-side SVG charts (no JavaScript, no CDN): plain SVG strings with escaped text.

Colours: green at or above target, amber within 10 points below, red further below;
a dark tick or dashed line marks the target.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from html import escape

from psops import formatting

GOOD, NEAR, BAD, NEUTRAL, TARGET = "#2f855a", "#d69e2e", "#c53030", "#718096", "#1a202c"
ON_TIME, LATE, MISSING, OPEN = "#2f855a", "#d69e2e", "#c53030", "#cbd5e0"


def _f(value) -> float | None:
    return None if value is None else float(value)


def colour(utilization, target) -> str:
    u, t = _f(utilization), _f(target)
    if u is None:
        return NEUTRAL
    if t is None:
        return NEUTRAL
    if u >= t:
        return GOOD
    return NEAR if u >= t - 0.10 else BAD


def pct(value, digits: int = 0) -> str:
    return "–" if value is None else f"{float(value) * 100:.{digits}f}%"


def _svg(width: int, height: int, body: list[str], label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" role="img" aria-label="{escape(label)}" '
            f'font-family="system-ui, sans-serif" font-size="12">'
            f'<title>{escape(label)}</title>{"".join(body)}</svg>')


def person_bars(people: list[dict], title: str, scale_max: float = 1.2) -> str:
    """Horizontal bars: each person's utilization over the period, target as a tick."""
    row_h, left, right, top = 22, 210, 90, 28
    plot_w = 460
    width = left + plot_w + right
    height = top + row_h * max(len(people), 1) + 26
    x = lambda v: left + plot_w * min(max(v, 0.0), scale_max) / scale_max  # noqa: E731
    body = []
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        tx = x(tick)
        body.append(f'<line x1="{tx:.1f}" y1="{top - 6}" x2="{tx:.1f}" y2="{height - 22}" '
                    'stroke="#e2e8f0"/>')
        body.append(f'<text x="{tx:.1f}" y="{height - 8}" text-anchor="middle" '
                    f'fill="#4a5568">{int(tick * 100)}%</text>')
    for i, p in enumerate(people):
        y = top + i * row_h
        u, t = _f(p.get("utilization")), _f(p.get("target"))
        label = f'{p["name"]} ({p.get("region") or "?"})'
        body.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" fill="#1a202c">'
                    f'{escape(label[:32])}</text>')
        if u is not None:
            body.append(f'<rect x="{left}" y="{y + 4}" width="{max(x(u) - left, 1):.1f}" '
                        f'height="{row_h - 8}" rx="2" fill="{colour(u, t)}">'
                        f'<title>{escape(p["name"])}: {pct(u, 1)} vs target {pct(t)}</title></rect>')
        if t is not None:
            body.append(f'<line x1="{x(t):.1f}" y1="{y + 1}" x2="{x(t):.1f}" y2="{y + row_h - 1}" '
                        f'stroke="{TARGET}" stroke-width="3"/>')
        body.append(f'<text x="{left + plot_w + 8}" y="{y + 15}" fill="#1a202c">'
                    f'{pct(u)} / {pct(t)}</text>')
    body.insert(0, f'<text x="{left}" y="14" fill="#4a5568">{escape(title)}</text>')
    return _svg(width, height, body, title)


def region_weeks(region: dict, weeks: list[date]) -> str:
    """12 weekly bars of one region's utilization, its (capacity-weighted) target dashed."""
    left, top, plot_w, plot_h = 36, 26, 300, 120
    width, height = left + plot_w + 12, top + plot_h + 34
    scale_max = 1.0
    bar_w = plot_w / max(len(weeks), 1)
    y = lambda v: top + plot_h - plot_h * min(max(v, 0.0), scale_max) / scale_max  # noqa: E731
    body = [f'<text x="0" y="14" font-weight="600" fill="#1a202c">{escape(region["region"])}'
            f'</text><text x="{width - 12}" y="14" text-anchor="end" fill="#4a5568">'
            f'{pct(region["utilization"])} vs target {pct(region["target"])}</text>']
    for tick in (0, 0.5, 1.0):
        body.append(f'<line x1="{left}" y1="{y(tick):.1f}" x2="{left + plot_w}" '
                    f'y2="{y(tick):.1f}" stroke="#e2e8f0"/>')
        body.append(f'<text x="{left - 4}" y="{y(tick) + 4:.1f}" text-anchor="end" '
                    f'fill="#4a5568" font-size="10">{int(tick * 100)}%</text>')
    target_points = []
    for i, point in enumerate(region["series"]):
        bx = left + i * bar_w
        u, t = _f(point["utilization"]), _f(point["target"])
        if u is not None:
            body.append(f'<rect x="{bx + 3:.1f}" y="{y(u):.1f}" width="{bar_w - 6:.1f}" '
                        f'height="{top + plot_h - y(u):.1f}" fill="{colour(u, t)}">'
                        f'<title>week of {point["week"].isoformat()}: {pct(u, 1)} '
                        f'(target {pct(t)})</title></rect>')
        if t is not None:
            target_points.append(f"{bx + bar_w / 2:.1f},{y(t):.1f}")
        if i % 3 == 0:
            body.append(f'<text x="{bx + bar_w / 2:.1f}" y="{top + plot_h + 14}" '
                        f'text-anchor="middle" fill="#4a5568" font-size="10">'
                        f'{point["week"].strftime("%d %b")}</text>')
    if target_points:
        body.append(f'<polyline points="{" ".join(target_points)}" fill="none" '
                    f'stroke="{TARGET}" stroke-width="2" stroke-dasharray="5 3"/>')
    body.append(f'<text x="{left}" y="{height - 2}" fill="#4a5568" font-size="10">'
                f'{region["people"]} people · bars: weekly utilization · dashed: target</text>')
    return _svg(width, height, body, f'Utilization of {region["region"]} by week')


def sparkline(weekly: dict, weeks: list[date], target) -> str:
    """A person's 12 weeks as small bars (the row's detail in the people table)."""
    bar_w, h = 9, 24
    width = bar_w * len(weeks)
    t = _f(target)
    body = []
    for i, w in enumerate(weeks):
        u = _f(weekly.get(w))
        if u is None:
            body.append(f'<rect x="{i * bar_w + 1}" y="{h - 2}" width="{bar_w - 2}" height="2" '
                        f'fill="{OPEN}"/>')
            continue
        bh = max(h * min(u, 1.2) / 1.2, 1)
        body.append(f'<rect x="{i * bar_w + 1}" y="{h - bh:.1f}" width="{bar_w - 2}" '
                    f'height="{bh:.1f}" fill="{colour(u, t)}"><title>{w.isoformat()}: '
                    f'{pct(u)}</title></rect>')
    if t is not None:
        ty = h - h * min(t, 1.2) / 1.2
        body.append(f'<line x1="0" y1="{ty:.1f}" x2="{width}" y2="{ty:.1f}" stroke="{TARGET}" '
                    'stroke-dasharray="3 2"/>')
    return _svg(width, h, body, "weekly utilization")


def compliance_bars(weeks: list[dict]) -> str:
    """Stacked bars per week: timesheets on time, late, missing (still open in grey)."""
    left, top, plot_w, plot_h = 36, 12, 560, 140
    width, height = left + plot_w + 10, top + plot_h + 40
    most = max((w["on_time"] + w["late"] + w["missing"] + w["open"] for w in weeks), default=1) or 1
    bar_w = plot_w / max(len(weeks), 1)
    body = []
    for i, w in enumerate(weeks):
        bx = left + i * bar_w
        base = top + plot_h
        for key, fill in (("on_time", ON_TIME), ("late", LATE), ("missing", MISSING),
                          ("open", OPEN)):
            n = w[key]
            if not n:
                continue
            bh = plot_h * n / most
            base -= bh
            body.append(f'<rect x="{bx + 4:.1f}" y="{base:.1f}" width="{bar_w - 8:.1f}" '
                        f'height="{bh:.1f}" fill="{fill}"><title>week of '
                        f'{w["week"].isoformat()}: {n} {key.replace("_", " ")}</title></rect>')
        body.append(f'<text x="{bx + bar_w / 2:.1f}" y="{top + plot_h + 14}" '
                    f'text-anchor="middle" font-size="10" fill="#4a5568">'
                    f'{w["week"].strftime("%d %b")}</text>')
    lx = left
    for label, fill in (("on time", ON_TIME), ("late", LATE), ("missing", MISSING),
                        ("not yet due", OPEN)):
        body.append(f'<rect x="{lx}" y="{height - 12}" width="10" height="10" fill="{fill}"/>'
                    f'<text x="{lx + 14}" y="{height - 3}" font-size="11">{label}</text>')
        lx += 100
    return _svg(width, height, body, "Timesheets per week: on time, late, missing")


def money(amount: Decimal | float | None) -> str:
    """An amount as the pages show it: "1,234.50", or "–" when there is none."""
    return "–" if amount is None else formatting.money(amount)
