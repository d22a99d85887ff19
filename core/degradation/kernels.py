"""Kernels for people: error measures against a known kernel, GeoTIFF kernel layers, PNG pictures
and the HTML gallery (the bank file itself and the Gaussian fit are in :mod:`kernel_bank`)."""
from __future__ import annotations

import html
import math
import os

import numpy as np

from ..convention import kernel_center_offset
from ..io.kernel_bank import GaussianFit, KernelBank, as_array, colorize_kernel, fit_gaussian, short_name
from ..io.atomic_files import atomic_output
from ..io.outputs import write_geotiff
from ..io.report import colour_bar, figure, png_base64, png_bytes, write_report
from ..io.stack_io import RasterGrid


def kernel_errors(est: np.ndarray, true: np.ndarray, scale: int) -> dict:
    """Normalised L2 error and Gaussian-parameter errors of an estimated kernel.

    The angle error is only meaningful for anisotropic kernels; it is reported as
    NaN when the true kernel's sigma ratio is below 1.2.
    """
    e, t = as_array(est), as_array(true)
    fe, ft = fit_gaussian(e, scale), fit_gaussian(t, scale)
    dtheta = abs(fe.theta - ft.theta) % math.pi
    dtheta = min(dtheta, math.pi - dtheta)
    return {
        "nl2": float(np.linalg.norm(e - t) / np.linalg.norm(t)),
        "sigma_abs": (abs(fe.sigma1 - ft.sigma1) + abs(fe.sigma2 - ft.sigma2)) / 2,
        "angle_deg": math.degrees(dtheta) if ft.sigma1 / max(ft.sigma2, 1e-9) >= 1.2 else float("nan"),
    }


def kernel_grid(size: int, scale: int, image: RasterGrid | None = None) -> RasterGrid:
    """Raster grid of a kernel layer. On an ``image`` grid (the LR stack's): in its CRS, with the HR
    pixel size (the image's divided by ``scale``), the convention's kernel centre on the image's centre,
    so the kernel shows its real ground footprint over the image it came from. Without one: no CRS,
    units of LR pixels (pixel size 1/scale), the kernel centre at (0, 0)."""
    centre = (size - 1) / 2 + kernel_center_offset(scale) + 0.5  # in pixels from the top-left corner
    if image is None:
        px = 1.0 / scale
        return RasterGrid(size, size, (-centre * px, px, 0.0, centre * px, 0.0, -px), "")
    g = image.scaled(scale).geotransform
    col, row = image.width * scale / 2 - centre, image.height * scale / 2 - centre  # HR px of the kernel's corner
    origin = (g[0] + col * g[1] + row * g[2], g[3] + col * g[4] + row * g[5])
    return RasterGrid(size, size, (origin[0], g[1], g[2], origin[1], g[4], g[5]), image.crs_wkt)


def write_kernel_layer(path: str, kernel: np.ndarray, scale: int, source: str, image: RasterGrid | None = None) -> str:
    """One kernel as a float32 GeoTIFF on :func:`kernel_grid` (over ``image`` when given), tagged with its
    Gaussian fit."""
    k = np.asarray(kernel, dtype=np.float32)
    fit = fit_gaussian(k, scale)
    tags = {"STACKSR_KERNEL_SOURCE": source, "STACKSR_SCALE": str(scale),
            "STACKSR_SIGMA1": f"{fit.sigma1:.4f}", "STACKSR_SIGMA2": f"{fit.sigma2:.4f}",
            "STACKSR_THETA_DEG": f"{math.degrees(fit.theta):.2f}"}
    return write_geotiff(path, k, kernel_grid(k.shape[-1], scale, image), None, tags, band_names=[f"kernel {source}"])


def write_kernel_layers(bank: KernelBank, folder: str, image: RasterGrid | None = None) -> list[str]:
    """One float32 GeoTIFF per kernel in ``folder`` (over ``image``, see :func:`kernel_grid`); returns their paths."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, (k, name) in enumerate(zip(bank.kernels, bank.names)):
        stem = os.path.splitext(os.path.basename(name.split(":")[0]))[0]
        suffix = name.split(":")[1] if ":" in name else ""
        path = os.path.join(folder, f"kernel_{i:03d}_{stem}{('_' + suffix) if suffix else ''}.tif")
        paths.append(write_kernel_layer(path, k, bank.scale, name, image))
    return paths


def gallery_png(bank: KernelBank, zoom: int = 8, columns: int = 8) -> bytes:
    """A mosaic of all kernels (each zoomed, nearest neighbour), as PNG bytes."""
    K, n = bank.size, len(bank.names)
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    cell = K * zoom + 4
    canvas = np.full((rows * cell, cols * cell, 3), 255, dtype=np.uint8)
    for i, k in enumerate(bank.kernels):
        r, c = divmod(i, cols)
        tile = np.kron(colorize_kernel(k, bank.peak), np.ones((zoom, zoom, 1), dtype=np.uint8))
        canvas[r * cell + 2:r * cell + 2 + K * zoom, c * cell + 2:c * cell + 2 + K * zoom] = tile
    return png_bytes(canvas)


def kernel_png_base64(kernel: np.ndarray, zoom: int = 8, peak: float | None = None) -> str:
    """One kernel in the colour ramp (0 to ``peak``, default its maximum), enlarged (nearest neighbour), as base64 PNG."""
    return png_base64(np.kron(colorize_kernel(kernel, peak), np.ones((zoom, zoom, 1), dtype=np.uint8)))


def fit_caption(name: str, fit: GaussianFit) -> str:
    """The image name wrapped whole (as in the Kernel viewer), then the fitted sigmas and angle."""
    return (f"{'<br/>'.join(html.escape(line) for line in short_name(name).split(chr(10)))}<br/>&sigma;<sub>1</sub> {fit.sigma1:.2f}, &sigma;<sub>2</sub> {fit.sigma2:.2f} px, "
            f"&theta; {math.degrees(fit.theta):.0f}&deg;")


def gallery_section(bank: KernelBank) -> str:
    """HTML fragment: every kernel with its image name and fitted sigmas and angle."""
    prior_only = set(bank.meta.get("default_psf_images") or [])
    cards = "".join(figure(kernel_png_base64(k, peak=bank.peak),
                           fit_caption(name, fit) + ("<br/><b>default PSF</b>" if name in prior_only else ""))
                    for k, name, fit in zip(bank.kernels, bank.names, bank.fits()))
    note = (f" {len(prior_only)} images did not register with the others and keep the default PSF (marked)."
            if prior_only else "")
    return (f"<p>Scale x{bank.scale}, {bank.size}x{bank.size} kernels, sigmas in output pixels, angle counter-clockwise "
            f"from east, one colour scale for all. The common part of the blur, which blind estimation cannot "
            f"tell from the scene's own sharpness, is set so that the kernels' mean sigma (per-image mode: "
            f"each kernel's) is the default PSF's; the rest (each kernel's elongation, angle and width relative to the others) is "
            f"estimated.{note} Bank digest {bank.digest()}.</p>"
            f"{colour_bar(0.0, bank.peak, 'kernel weight')}<div>{cards}</div>")


def write_gallery(bank: KernelBank, html_path: str, png_path: str | None = None, title: str = "Estimated kernels") -> str:
    """An HTML report (self-contained) showing each kernel with its fitted sigmas and angle."""
    write_report(html_path, title, [("Kernels", gallery_section(bank))])
    if png_path:
        with atomic_output(png_path, ".png") as tmp, open(tmp, "wb") as fh:
            fh.write(gallery_png(bank))
    return html_path
