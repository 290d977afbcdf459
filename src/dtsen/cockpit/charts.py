"""A small inline SVG line chart: people read a trend faster from a line than from a table. Server-
rendered, no script, so it works in the api-server's sandboxed iframe and in an email alike."""

from __future__ import annotations

from html import escape


def line_chart(
    points: list[tuple[str, float | None]],
    *,
    label: str,
    percent: bool = False,
    width: int = 560,
    height: int = 170,
) -> str:
    """One series over labelled x positions (e.g. rounds); a None value leaves a gap."""
    left, right, top, bottom = 52, 12, 14, 30
    values = [v for _, v in points if v is not None]
    if not values:
        return f'<p class="muted">{escape(label)}: nothing to plot yet.</p>'
    peak = max(values) or 1.0
    plot_w, plot_h = width - left - right, height - top - bottom
    inset = 28  # room for the first and last x labels
    step = (plot_w - 2 * inset) / max(len(points) - 1, 1)

    def fmt(v: float) -> str:
        return f"{v:.1%}" if percent else f"{v:,.0f}"

    def y(v: float) -> float:
        return top + plot_h - (v / peak) * plot_h

    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(label)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" class="axis"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" class="axis"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" class="tick">{fmt(peak)}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" class="tick">{fmt(0)}</text>',
    ]
    segments: list[list[str]] = [[]]
    marks: list[str] = []
    for i, (name, v) in enumerate(points):
        x = left + inset + i * step
        marks.append(
            f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle" class="tick">{escape(name)}</text>'
        )
        if v is None:  # a gap: the line stops and starts again
            segments.append([])
            continue
        segments[-1].append(f"{x:.1f},{y(v):.1f}")
        marks.append(
            f'<circle cx="{x:.1f}" cy="{y(v):.1f}" r="3.5" class="point"><title>{escape(name)}: {fmt(v)}</title></circle>'
        )
    parts += [f'<polyline points="{" ".join(seg)}" class="line"/>' for seg in segments if seg]
    parts += marks
    parts.append("</svg>")
    return "".join(parts)
