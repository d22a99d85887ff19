"""Self-contained HTML run reports: tables, loss curves (inline SVG) and kernel galleries.

One report per run of an algorithm; QGIS shows HTML outputs in its Results Viewer.
Everything is inline (no external files), so a report can be moved or mailed.
"""
from __future__ import annotations

import base64
import html
import math
from typing import Iterable, Mapping, Sequence

import numpy as np

from .kernel_bank import RAMP_STOPS, colorize
from .atomic_files import atomic_output

_STYLE = ("body{font-family:sans-serif;margin:16px} table{border-collapse:collapse;margin:8px 0}"
          "td,th{border:1px solid #bbb;padding:3px 8px;text-align:left;font-size:13px}"
          "figure{display:inline-block;margin:6px;text-align:center;font-size:11px;width:140px;vertical-align:top}"
          "img.k{image-rendering:pixelated;width:120px;height:120px} h3{margin-top:22px}"
          "figure.q{width:auto;vertical-align:top} img.q{image-rendering:pixelated}")
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
    L, R, T, B = 60, 12, 10, 36 + 16 * len(pts)  # the legend goes under the axis, never over the curves
    height += 16 * len(pts)
    sx = lambda x: L + (x - x0) / (x1 - x0) * (width - L - R)  # noqa: E731
    sy = lambda y: height - B - (y - y0) / (y1 - y0) * (height - T - B)  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="11">',
             f'<rect x="{L}" y="{T}" width="{width - L - R}" height="{height - T - B}" fill="none" stroke="#888"/>']
    for frac in (0.0, 0.5, 1.0):
        yv, xv = y0 + frac * (y1 - y0), x0 + frac * (x1 - x0)
        parts.append(f'<text x="{L - 4}" y="{sy(yv) + 4:.1f}" text-anchor="end">{yv:.4g}</text>')
        parts.append(f'<text x="{sx(xv):.1f}" y="{height - B + 14}" text-anchor="middle">{xv:.4g}</text>')
    parts.append(f'<text x="{(L + width - R) / 2}" y="{height - B + 28}" text-anchor="middle">{html.escape(x_label)}</text>')
    parts.append(f'<text x="12" y="{(T + height - B) / 2}" transform="rotate(-90 12 {(T + height - B) / 2})" '
                 f'text-anchor="middle">{html.escape(y_label)}</text>')
    for i, (name, v) in enumerate(pts.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        if len(v) == 1:  # a polyline of one point draws nothing (one validation after a short resumed run)
            parts.append(f'<circle cx="{sx(v[0][0]):.1f}" cy="{sy(v[0][1]):.1f}" r="3" fill="{colour}"/>')
        elif v:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in v)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{path}"/>')
        y = height - B + 44 + 16 * i
        parts.append(f'<line x1="{L}" y1="{y - 4}" x2="{L + 18}" y2="{y - 4}" stroke="{colour}" stroke-width="2"/>'
                     f'<text x="{L + 24}" y="{y}" fill="{colour}">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def png_bytes(rgb: np.ndarray) -> bytes:
    """``(H, W, 3)`` uint8 -> PNG bytes (GDAL's PNG driver, in memory)."""
    from osgeo import gdal

    h, w, _ = rgb.shape
    mem = gdal.GetDriverByName("MEM").Create("", w, h, 3, gdal.GDT_Byte)
    for b in range(3):
        mem.GetRasterBand(b + 1).WriteArray(np.ascontiguousarray(rgb[..., b]))
    vsi = f"/vsimem/stacksr_{id(rgb)}.png"
    png = gdal.GetDriverByName("PNG").CreateCopy(vsi, mem)
    png.FlushCache()
    png = mem = None  # closed; the MEM dataset stayed alive while its bands were used (GDAL 3.6)
    f = gdal.VSIFOpenL(vsi, "rb")
    gdal.VSIFSeekL(f, 0, 2)
    n = gdal.VSIFTellL(f)
    gdal.VSIFSeekL(f, 0, 0)
    data = gdal.VSIFReadL(1, n, f)
    gdal.VSIFCloseL(f)
    gdal.Unlink(vsi)
    return bytes(data)


def png_base64(rgb: np.ndarray) -> str:
    """:func:`png_bytes` as base64, for an inline ``data:`` image."""
    return base64.b64encode(png_bytes(rgb)).decode()


def colour_bar(lo: float, hi: float, label: str, width: int = 220, ramp=RAMP_STOPS) -> str:
    """Inline SVG colour bar of the ramp ``ramp`` (:func:`kernel_bank.colorize`'s), from ``lo`` to ``hi``."""
    stops = "".join(f'<stop offset="{i / (len(ramp) - 1):.2f}" stop-color="rgb{tuple(c)}"/>'
                    for i, c in enumerate(ramp))
    gid = f"ramp{abs(hash((lo, hi, label))) % 10**8}"
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + 80}" height="38" font-size="11">'
            f'<defs><linearGradient id="{gid}">{stops}</linearGradient></defs>'
            f'<rect x="40" y="4" width="{width}" height="12" fill="url(#{gid})" stroke="#888"/>'
            f'<text x="36" y="14" text-anchor="end">{lo:.3g}</text>'
            f'<text x="{width + 44}" y="14">{hi:.3g}</text>'
            f'<text x="{40 + width / 2}" y="32" text-anchor="middle">{html.escape(label)}</text></svg>')


def _display(image: np.ndarray, max_side: int) -> np.ndarray:
    """Every n-th pixel so that the longer side is at most ``max_side`` (a quicklook, not a resampling)."""
    step = max(1, math.ceil(max(image.shape) / max_side))
    return image[::step, ::step]


def stretch(values: np.ndarray) -> tuple[float, float]:
    """The 2 % and 98 % values of the finite pixels (the layers' grey stretch)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, [2, 98])
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0


def quicklook(image: np.ndarray, lo: float, hi: float, caption_html: str, colour: bool = False,
              max_side: int = 300, shown_as: tuple[int, int] | None = None, ramp=RAMP_STOPS) -> str:
    """A figure of ``image`` ``(H, W)`` stretched from ``lo`` to ``hi``: grey, or in the colour ``ramp``;
    nodata (non-finite) pixels white. ``shown_as``: the (height, width) of the raster it is shown
    beside, so that an input frame appears at the same ground size as the result."""
    img = _display(np.asarray(image, dtype=np.float64), max_side)
    v = (img - lo) / (hi - lo if hi > lo else 1.0)
    rgb = colorize(v, ramp) if colour else np.repeat((np.clip(v, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2)
    rgb[~np.isfinite(img)] = 255
    h, w = shown_as if shown_as is not None else image.shape
    zoom = max_side / max(h, w)  # every quicklook of a report on the same on-screen size
    return (f'<figure class="q"><img class="q" src="data:image/png;base64,{png_base64(rgb)}" '
            f'width="{round(w * zoom)}" height="{round(h * zoom)}" alt="quicklook"/>'
            f"<figcaption>{caption_html}</figcaption></figure>")


def figure(png_base64: str, caption_html: str) -> str:
    return f'<figure><img class="k" src="data:image/png;base64,{png_base64}" alt="kernel"/><figcaption>{caption_html}</figcaption></figure>'


def write_report(path: str, title: str, sections: Sequence[tuple[str, str]]) -> str:
    """Write ``sections`` (heading, HTML body) as one page, atomically."""
    from datetime import datetime, timezone

    from .. import __version__

    body = "".join(f"<h3>{html.escape(h)}</h3>{b}" for h, b in sections)
    stamp = f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, StackSR {__version__}"
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h2>{html.escape(title)}</h2>"
            f"<p class='stamp'>{html.escape(stamp)}</p>{body}</body></html>")
    with atomic_output(path, ".html") as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(page)
    return path
