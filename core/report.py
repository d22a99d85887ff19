"""Self-contained HTML run reports: tables, loss curves (inline SVG) and kernel galleries.

One report per run of an algorithm; QGIS shows HTML outputs in its Results Viewer.
Everything is inline (no external files), so a report can be moved or mailed.
"""
from __future__ import annotations

import html
import math
from typing import Iterable, Mapping, Sequence

from .outputs import atomic_output

_STYLE = ("body{font-family:sans-serif;margin:16px} table{border-collapse:collapse;margin:8px 0}"
          "td,th{border:1px solid #bbb;padding:3px 8px;text-align:left;font-size:13px}"
          "figure{display:inline-block;margin:6px;text-align:center;font-size:11px;width:140px}"
          "img.k{image-rendering:pixelated;width:120px;height:120px} h3{margin-top:22px}")
_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def table(rows: Iterable[Sequence], header: Sequence[str] | None = None) -> str:
    """An HTML table; cells are escaped, floats shown with 4 significant digits."""
    def cell(v):
        return html.escape(f"{v:.4g}" if isinstance(v, float) else str(v))

    head = "<tr>" + "".join(f"<th>{cell(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table>{head}{body}</table>"


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], x_label: str, y_label: str,
               width: int = 560, height: int = 260) -> str:
    """Inline SVG line chart of named (x, y) series; non-finite points are skipped."""
    pts = {k: [(float(x), float(y)) for x, y in v if math.isfinite(x) and math.isfinite(y)] for k, v in series.items()}
    allp = [p for v in pts.values() for p in v]
    if not allp:
        return "<p>(no data)</p>"
    x0, x1 = min(p[0] for p in allp), max(p[0] for p in allp)
    y0, y1 = min(p[1] for p in allp), max(p[1] for p in allp)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1e-9 + abs(y0) * 1e-3)
    L, R, T, B = 60, 12, 10, 36
    sx = lambda x: L + (x - x0) / (x1 - x0) * (width - L - R)  # noqa: E731
    sy = lambda y: height - B - (y - y0) / (y1 - y0) * (height - T - B)  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="11">',
             f'<rect x="{L}" y="{T}" width="{width - L - R}" height="{height - T - B}" fill="none" stroke="#888"/>']
    for frac in (0.0, 0.5, 1.0):
        yv, xv = y0 + frac * (y1 - y0), x0 + frac * (x1 - x0)
        parts.append(f'<text x="{L - 4}" y="{sy(yv) + 4:.1f}" text-anchor="end">{yv:.4g}</text>')
        parts.append(f'<text x="{sx(xv):.1f}" y="{height - B + 14}" text-anchor="middle">{xv:.4g}</text>')
    parts.append(f'<text x="{(L + width - R) / 2}" y="{height - 4}" text-anchor="middle">{html.escape(x_label)}</text>')
    parts.append(f'<text x="12" y="{(T + height - B) / 2}" transform="rotate(-90 12 {(T + height - B) / 2})" '
                 f'text-anchor="middle">{html.escape(y_label)}</text>')
    for i, (name, v) in enumerate(pts.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        if v:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in v)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{path}"/>')
        parts.append(f'<text x="{L + 8}" y="{T + 14 + 14 * i}" fill="{colour}">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def figure(png_base64: str, caption_html: str) -> str:
    return f'<figure><img class="k" src="data:image/png;base64,{png_base64}" alt="kernel"/><figcaption>{caption_html}</figcaption></figure>'


def write_report(path: str, title: str, sections: Sequence[tuple[str, str]]) -> str:
    """Write ``sections`` (heading, HTML body) as one page, atomically."""
    from datetime import datetime, timezone

    from . import __version__

    body = "".join(f"<h3>{html.escape(h)}</h3>{b}" for h, b in sections)
    stamp = f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, StackSR {__version__}"
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h2>{html.escape(title)}</h2>"
            f"<p class='stamp'>{html.escape(stamp)}</p>{body}</body></html>")
    with atomic_output(path, ".html") as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(page)
    return path
