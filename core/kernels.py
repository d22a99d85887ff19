"""Kernel analysis and the kernel bank: Gaussian fit, error measures, files, layers, gallery.

A kernel bank holds the estimated kernels of one stack with their source image
names, scale and size. It is stored as a NumPy ``.npz`` read with
``allow_pickle=False`` (a crafted file cannot run code).
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np
import torch
from osgeo import gdal

from .degradation import check_scale, kernel_center_offset
from .errors import StackSRError
from .outputs import atomic_output, write_geotiff
from .report import figure, write_report
from .stack_io import RasterGrid

BANK_FORMAT = "stacksr-kernel-bank"
BANK_VERSION = 1


@dataclass(frozen=True)
class GaussianFit:
    sigma1: float  # std along the principal axis (HR px)
    sigma2: float  # std across it (HR px), sigma2 <= sigma1
    theta: float  # angle of the principal axis, radians in [0, pi), counter-clockwise from +x
    dy: float  # centroid offset from the convention's centre (HR px, +down)
    dx: float  # centroid offset (HR px, +right)


def fit_gaussian(kernel: np.ndarray | torch.Tensor, scale: int) -> GaussianFit:
    """Second-moment fit of a kernel (same angle convention as gaussian_kernels)."""
    k = np.asarray(kernel.detach().cpu() if torch.is_tensor(kernel) else kernel, dtype=np.float64)
    k = np.clip(k, 0, None)
    k = k / max(k.sum(), 1e-12)
    size = k.shape[0]
    centre = (size - 1) / 2 + kernel_center_offset(scale)
    rows, cols = np.indices(k.shape, dtype=np.float64)
    x, y = cols - centre, -(rows - centre)
    mx, my = (k * x).sum(), (k * y).sum()
    cxx = (k * (x - mx) ** 2).sum()
    cyy = (k * (y - my) ** 2).sum()
    cxy = (k * (x - mx) * (y - my)).sum()
    vals, vecs = np.linalg.eigh(np.array([[cxx, cxy], [cxy, cyy]]))
    v = vecs[:, 1]
    theta = math.atan2(v[1], v[0]) % math.pi
    return GaussianFit(math.sqrt(max(vals[1], 0)), math.sqrt(max(vals[0], 0)), theta, -my, mx)


def kernel_errors(est: np.ndarray | torch.Tensor, true: np.ndarray | torch.Tensor, scale: int) -> dict:
    """Normalised L2 error and Gaussian-parameter errors of an estimated kernel.

    The angle error is only meaningful for anisotropic kernels; it is reported as
    NaN when the true kernel's sigma ratio is below 1.2.
    """
    e = np.asarray(est.detach().cpu() if torch.is_tensor(est) else est, dtype=np.float64)
    t = np.asarray(true.detach().cpu() if torch.is_tensor(true) else true, dtype=np.float64)
    fe, ft = fit_gaussian(e, scale), fit_gaussian(t, scale)
    dtheta = abs(fe.theta - ft.theta) % math.pi
    dtheta = min(dtheta, math.pi - dtheta)
    return {
        "nl2": float(np.linalg.norm(e - t) / np.linalg.norm(t)),
        "sigma_abs": (abs(fe.sigma1 - ft.sigma1) + abs(fe.sigma2 - ft.sigma2)) / 2,
        "angle_deg": math.degrees(dtheta) if ft.sigma1 / max(ft.sigma2, 1e-9) >= 1.2 else float("nan"),
    }


class KernelBankError(StackSRError):
    """A kernel bank file that is missing, not a kernel bank, or of another scale/size/version."""


@dataclass
class KernelBank:
    kernels: np.ndarray  # float32 (T, K, K)
    names: list[str]
    scale: int
    meta: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(self.kernels.shape[-1])

    def fits(self) -> list[GaussianFit]:
        return [fit_gaussian(k, self.scale) for k in self.kernels]

    def digest(self) -> str:
        """Short content hash (kernels + scale) so models can record which bank trained them."""
        h = hashlib.sha256(np.ascontiguousarray(self.kernels, dtype=np.float32).tobytes())
        h.update(str(self.scale).encode())
        return h.hexdigest()[:16]

    def save(self, path: str) -> str:
        meta = {"format": BANK_FORMAT, "version": BANK_VERSION, **self.meta}
        with atomic_output(path, ".npz") as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(
                fh, kernels=self.kernels.astype(np.float32), names=np.array(self.names, dtype=str),
                scale=np.int64(self.scale), meta=np.array(json.dumps(meta)))
        return path

    @staticmethod
    def load(path: str, scale: int | None = None, size: int | None = None) -> "KernelBank":
        if not os.path.exists(path):
            raise KernelBankError(f"kernel bank '{path}' does not exist")
        try:
            with np.load(path, allow_pickle=False) as z:
                kernels = np.asarray(z["kernels"], dtype=np.float32)
                names = [str(n) for n in z["names"]]
                bank_scale = int(z["scale"])
                meta = json.loads(str(z["meta"]))
        except Exception as exc:  # noqa: BLE001 - anything unreadable is "not a kernel bank"
            raise KernelBankError(f"'{path}' is not a StackSR kernel bank ({type(exc).__name__})") from exc
        if meta.get("format") != BANK_FORMAT:
            raise KernelBankError(f"'{path}' is not a StackSR kernel bank")
        if meta.get("version") != BANK_VERSION:
            raise KernelBankError(f"kernel bank '{path}' has format version {meta.get('version')}, expected {BANK_VERSION}")
        if kernels.ndim != 3 or kernels.shape[1] != kernels.shape[2] or len(names) != kernels.shape[0]:
            raise KernelBankError(f"kernel bank '{path}' is malformed")
        if scale is not None and bank_scale != scale:
            raise KernelBankError(f"kernel bank '{path}' is for scale x{bank_scale}, not x{scale}")
        if size is not None and kernels.shape[-1] != size:
            raise KernelBankError(f"kernel bank '{path}' has {kernels.shape[-1]}x{kernels.shape[-1]} kernels, not {size}x{size}")
        return KernelBank(kernels, names, check_scale(bank_scale), meta)


def kernel_grid(size: int, scale: int) -> RasterGrid:
    """Raster grid of a kernel layer: no CRS, units of LR pixels (pixel size 1/scale),
    the convention's kernel centre at (0, 0)."""
    centre = (size - 1) / 2 + kernel_center_offset(scale) + 0.5  # in pixels from the top-left corner
    px = 1.0 / scale
    return RasterGrid(size, size, (-centre * px, px, 0.0, centre * px, 0.0, -px), "")


def write_kernel_layer(path: str, kernel: np.ndarray, scale: int, source: str) -> str:
    """One kernel as a float32 GeoTIFF on :func:`kernel_grid`, tagged with its Gaussian fit."""
    k = np.asarray(kernel, dtype=np.float32)
    fit = fit_gaussian(k, scale)
    tags = {"STACKSR_KERNEL_SOURCE": source, "STACKSR_SCALE": str(scale),
            "STACKSR_SIGMA1": f"{fit.sigma1:.4f}", "STACKSR_SIGMA2": f"{fit.sigma2:.4f}",
            "STACKSR_THETA_DEG": f"{math.degrees(fit.theta):.2f}"}
    return write_geotiff(path, k, kernel_grid(k.shape[-1], scale), None, tags, band_names=[f"kernel {source}"])


def write_kernel_layers(bank: KernelBank, folder: str) -> list[str]:
    """One float32 GeoTIFF per kernel in ``folder``; returns their paths."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, (k, name) in enumerate(zip(bank.kernels, bank.names)):
        stem = os.path.splitext(os.path.basename(name.split(":")[0]))[0]
        suffix = name.split(":")[1] if ":" in name else ""
        path = os.path.join(folder, f"kernel_{i:03d}_{stem}{('_' + suffix) if suffix else ''}.tif")
        paths.append(write_kernel_layer(path, k, bank.scale, name))
    return paths


def colorize_kernel(k: np.ndarray) -> np.ndarray:
    """Kernel -> RGB uint8 with a perceptual dark-blue-to-yellow ramp (viridis-like)."""
    stops = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64)
    v = k / max(float(k.max()), 1e-12)
    pos = v * (len(stops) - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, len(stops) - 2)
    t = (pos - lo)[..., None]
    return ((1 - t) * stops[lo] + t * stops[lo + 1]).astype(np.uint8)


def _png_bytes(rgb: np.ndarray) -> bytes:
    h, w, _ = rgb.shape
    mem = gdal.GetDriverByName("MEM").Create("", w, h, 3, gdal.GDT_Byte)
    for b in range(3):
        mem.GetRasterBand(b + 1).WriteArray(rgb[..., b])
    vsi = f"/vsimem/stacksr_{id(rgb)}.png"
    out = gdal.GetDriverByName("PNG").CreateCopy(vsi, mem)
    out = None
    mem = None
    f = gdal.VSIFOpenL(vsi, "rb")
    gdal.VSIFSeekL(f, 0, 2)
    n = gdal.VSIFTellL(f)
    gdal.VSIFSeekL(f, 0, 0)
    data = gdal.VSIFReadL(1, n, f)
    gdal.VSIFCloseL(f)
    gdal.Unlink(vsi)
    return bytes(data)


def gallery_png(bank: KernelBank, zoom: int = 8, columns: int = 8) -> bytes:
    """A mosaic of all kernels (each zoomed, nearest neighbour), as PNG bytes."""
    K, n = bank.size, len(bank.names)
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    cell = K * zoom + 4
    canvas = np.full((rows * cell, cols * cell, 3), 255, dtype=np.uint8)
    for i, k in enumerate(bank.kernels):
        r, c = divmod(i, cols)
        tile = np.kron(colorize_kernel(k), np.ones((zoom, zoom, 1), dtype=np.uint8))
        canvas[r * cell + 2:r * cell + 2 + K * zoom, c * cell + 2:c * cell + 2 + K * zoom] = tile
    return _png_bytes(canvas)


def kernel_png_base64(kernel: np.ndarray, zoom: int = 8) -> str:
    """One kernel in the colour ramp, enlarged (nearest neighbour), as base64 PNG."""
    return base64.b64encode(_png_bytes(np.kron(colorize_kernel(kernel), np.ones((zoom, zoom, 1), dtype=np.uint8)))).decode()


def fit_caption(name: str, fit: GaussianFit) -> str:
    return (f"{html.escape(name)}<br/>&sigma;<sub>1</sub> {fit.sigma1:.2f}, &sigma;<sub>2</sub> {fit.sigma2:.2f} px, "
            f"&theta; {math.degrees(fit.theta):.0f}&deg;")


def gallery_section(bank: KernelBank) -> str:
    """HTML fragment: every kernel with its image name and fitted sigmas and angle."""
    cards = "".join(figure(kernel_png_base64(k), fit_caption(name, fit))
                    for k, name, fit in zip(bank.kernels, bank.names, bank.fits()))
    return (f"<p>Scale x{bank.scale}, {bank.size}x{bank.size} kernels, sigmas in HR pixels, angle counter-clockwise "
            f"from east. Bank digest {bank.digest()}.</p>{cards}")


def write_gallery(bank: KernelBank, html_path: str, png_path: str | None = None, title: str = "Estimated kernels") -> str:
    """An HTML report (self-contained) showing each kernel with its fitted sigmas and angle."""
    write_report(html_path, title, [("Kernels", gallery_section(bank))])
    if png_path:
        with atomic_output(png_path, ".png") as tmp, open(tmp, "wb") as fh:
            fh.write(gallery_png(bank))
    return html_path
