"""The kernel bank file and kernel colouring, without torch (the Kernel viewer reads banks with it).

A kernel bank holds the estimated kernels of one stack with their source image names, scale and
size. It is stored as a NumPy ``.npz`` read with ``allow_pickle=False`` (a crafted file cannot run
code). Kernels may be given as arrays or (CPU or GPU) tensors.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..convention import check_scale, kernel_center_offset
from ..errors import StackSRError
from .safe_files import check_header, read_safely


def as_array(kernel) -> np.ndarray:
    """A kernel as float64 array, from an array or a torch tensor (without importing torch)."""
    if hasattr(kernel, "detach"):
        kernel = kernel.detach().cpu().numpy()
    return np.asarray(kernel, dtype=np.float64)


BANK_FORMAT = "stacksr-kernel-bank"


BANK_VERSION = 1


@dataclass(frozen=True)
class GaussianFit:
    sigma1: float  # std along the principal axis (HR px)
    sigma2: float  # std across it (HR px), sigma2 <= sigma1
    theta: float  # angle of the principal axis, radians in [0, pi), counter-clockwise from +x
    dy: float  # centroid offset from the convention's centre (HR px, +down)
    dx: float  # centroid offset (HR px, +right)


def fit_gaussian(kernel: np.ndarray, scale: int) -> GaussianFit:
    """Second-moment fit of a kernel (same angle convention as gaussian_kernels)."""
    k = as_array(kernel)
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

    @property
    def peak(self) -> float:
        """The largest weight of the bank: the top of its one colour scale."""
        return float(self.kernels.max())

    def save(self, path: str) -> str:
        meta = {"format": BANK_FORMAT, "version": BANK_VERSION, **self.meta}
        from .atomic_files import atomic_output

        with atomic_output(path, ".npz") as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(
                fh, kernels=self.kernels.astype(np.float32), names=np.array(self.names, dtype=str),
                scale=np.int64(self.scale), meta=np.array(json.dumps(meta)))
        return path

    @staticmethod
    def load(path: str, scale: int | None = None, size: int | None = None) -> "KernelBank":
        def read(p: str) -> tuple:
            with np.load(p, allow_pickle=False) as z:
                return (np.asarray(z["kernels"], dtype=np.float32), [str(n) for n in z["names"]], int(z["scale"]),
                        json.loads(str(z["meta"])))

        kernels, names, bank_scale, meta = read_safely(path, "kernel bank", KernelBankError, read)
        if kernels.ndim != 3 or kernels.shape[1] != kernels.shape[2] or len(names) != kernels.shape[0]:
            raise KernelBankError(f"kernel bank '{path}' is malformed")
        header = {**meta, "scale": bank_scale, "size": kernels.shape[-1]} if isinstance(meta, dict) else meta
        check_header(path, "kernel bank", KernelBankError, header, BANK_FORMAT, BANK_VERSION, scale, size)
        return KernelBank(kernels, names, check_scale(bank_scale), meta)


NAME_CHARS = 16  # image names wrap onto lines of this many characters (whole: the acquisition date is in them)


def short_name(name: str, limit: int = NAME_CHARS) -> str:
    """The image name without its raster extension, wrapped onto lines of ``limit`` characters (never cut:
    product names such as LT50350322009240PAC02 carry the acquisition date in their middle)."""
    stem = os.path.splitext(name)[0] if name.lower().endswith((".tif", ".tiff", ".vrt", ".jp2")) else name
    return "\n".join(stem[i:i + limit] for i in range(0, len(stem), limit)) or stem


# a perceptual dark-blue-to-yellow ramp (viridis-like, QGIS's "Viridis" on the map): kernels and their colour bars
RAMP_STOPS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))
# black-purple-orange-white (magma-like, QGIS's "Magma" on the map): the uncertainty, in reports as on the map
UNCERTAINTY_STOPS = ((0, 0, 4), (81, 18, 124), (183, 55, 121), (252, 137, 97), (252, 253, 191))
UNCERTAINTY_PERCENTILE = 98  # the uncertainty is shown from 0 to this percentile of its valid pixels


def colorize(v: np.ndarray, stops=RAMP_STOPS) -> np.ndarray:
    """Values in [0, 1] (clipped) -> RGB uint8 along ``stops`` (:data:`RAMP_STOPS`); ``(..., 3)``."""
    stops = np.array(stops, dtype=np.float64)
    pos = np.clip(v, 0.0, 1.0) * (len(stops) - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, len(stops) - 2)
    t = (pos - lo)[..., None]
    return ((1 - t) * stops[lo] + t * stops[lo + 1]).astype(np.uint8)


def colorize_kernel(k: np.ndarray, peak: float | None = None) -> np.ndarray:
    """Kernel -> RGB uint8 in the ramp from 0 to ``peak`` (default: the kernel's own maximum; give the
    bank's to make the kernels of a bank comparable)."""
    return colorize(k / max(float(k.max() if peak is None else peak), 1e-12))
