"""Image quality metrics: Proba-V cPSNR, PSNR and SSIM.

cPSNR follows the Proba-V challenge: the reference is cropped by ``max_shift``
pixels on each border, the SR image is cropped at every offset ``(u, v)`` in
``0..2*max_shift`` (shifts of -max_shift..+max_shift), the mean brightness bias
over clear reference pixels is removed, and the best (lowest) corrected MSE
gives ``cPSNR = 10 log10(data_range^2 / cMSE)``. The paper's numbers use images
scaled to [0, 1] (``data_range=1``); for integer rasters :func:`default_data_range`
gives the full range of the reference's data type, which is the same thing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class CPSNRResult:
    cpsnr: float
    cmse: float
    shift: tuple[int, int]  # (dy, dx) of the SR crop relative to the centred one
    bias: float


def default_data_range(dtype: np.dtype | str, reference: np.ndarray | None = None) -> float:
    """Full range of an integer data type; for floats, the reference's max (or 1)."""
    dt = np.dtype(dtype)
    if np.issubdtype(dt, np.integer):
        info = np.iinfo(dt)
        return float(info.max - info.min) if info.min < 0 else float(info.max)
    if reference is not None and np.isfinite(reference).any():
        return float(max(np.nanmax(np.abs(reference)), 1e-12))
    return 1.0


def _as64(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def cpsnr(
    sr: np.ndarray,
    hr: np.ndarray,
    hr_valid: np.ndarray | None = None,
    max_shift: int = 3,
    data_range: float = 1.0,
    fit_gain: bool = False,
) -> CPSNRResult:
    """Proba-V clear PSNR of ``sr`` against ``hr`` (both ``(H, W)``, same size). ``fit_gain``: a gain is
    fitted along with the bias at every shift (affine-fit cPSNR, for an HR image of another sensor, whose
    spectral response and calibration differ; ``bias`` is then the fitted offset)."""
    sr_t, hr_t = _as64(sr), _as64(hr)
    if sr_t.shape != hr_t.shape:
        raise ValueError(f"SR size {tuple(sr_t.shape)} differs from reference size {tuple(hr_t.shape)}")
    H, W = hr_t.shape
    c = int(max_shift)
    if H <= 2 * c or W <= 2 * c:
        raise ValueError(f"images of {H}x{W} pixels are too small for a {c}-pixel crop")
    valid = torch.isfinite(hr_t) & torch.isfinite(sr_t)
    if hr_valid is not None:
        valid &= torch.as_tensor(np.asarray(hr_valid, dtype=bool))
    ref = torch.nan_to_num(hr_t[c:H - c, c:W - c])
    mref = valid[c:H - c, c:W - c].double()
    n = mref.sum()
    if n == 0:
        raise ValueError("the reference has no clear pixel inside the crop")
    sr_clean = torch.nan_to_num(sr_t)
    best: CPSNRResult | None = None
    for u in range(2 * c + 1):
        for v in range(2 * c + 1):
            cand = sr_clean[u:u + H - 2 * c, v:v + W - 2 * c]
            m = mref * valid[u:u + H - 2 * c, v:v + W - 2 * c]
            nm = m.sum()
            if nm == 0:
                continue
            if fit_gain:
                mc, mr = (cand * m).sum() / nm, (ref * m).sum() / nm
                vc = (((cand - mc) * m) ** 2).sum()
                gain = ((cand - mc) * (ref - mr) * m).sum() / vc if vc > 0 else torch.zeros(())
                cand = mr + gain * (cand - mc)
            diff = (ref - cand) * m
            bias = diff.sum() / nm
            cmse = float((((ref - cand - bias) * m) ** 2).sum() / nm)
            if best is None or cmse < best.cmse:
                best = CPSNRResult(0.0, cmse, (u - c, v - c), float(bias))
    assert best is not None
    value = 10.0 * math.log10(data_range ** 2 / max(best.cmse, 1e-30))
    return CPSNRResult(value, best.cmse, best.shift, best.bias)


def psnr(x: np.ndarray, ref: np.ndarray, valid: np.ndarray | None = None, data_range: float = 1.0) -> float:
    """Plain PSNR over (optionally masked) pixels, no crop, shift or bias correction."""
    a, b = _as64(x), _as64(ref)
    m = torch.isfinite(a) & torch.isfinite(b)
    if valid is not None:
        m &= torch.as_tensor(np.asarray(valid, dtype=bool))
    if not bool(m.any()):
        raise ValueError("no valid pixel to compare")
    mse = float(((a - b)[m] ** 2).mean())
    return 10.0 * math.log10(data_range ** 2 / max(mse, 1e-30))


def ssim(
    x: np.ndarray, ref: np.ndarray, valid: np.ndarray | None = None,
    data_range: float = 1.0, window: int = 11, sigma: float = 1.5,
) -> float:
    """Mean SSIM (Wang et al. 2004; Gaussian window, K1=0.01, K2=0.03).

    Averaged over the windows that lie inside the image and whose centre pixel is
    valid; invalid pixels are replaced by the reference so they do not spread.
    """
    a, b = _as64(x), _as64(ref)
    m = torch.isfinite(a) & torch.isfinite(b)
    if valid is not None:
        m &= torch.as_tensor(np.asarray(valid, dtype=bool))
    if min(a.shape) < window:
        raise ValueError(f"SSIM needs images of at least {window}x{window} pixels")
    b = torch.nan_to_num(b)
    a = torch.where(m, a, b)[None, None]
    b = b[None, None]
    ax = torch.arange(window, dtype=torch.float64) - (window - 1) / 2
    g = torch.exp(-0.5 * (ax / sigma) ** 2)
    g = g / g.sum()
    w = torch.outer(g, g)[None, None]

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    h = window // 2
    centre_ok = m[h:m.shape[0] - h, h:m.shape[1] - h]
    if not bool(centre_ok.any()):
        raise ValueError("no valid pixel to compare")
    return float(s[0, 0][centre_ok].mean())


def grid_energy(image: np.ndarray, scale: int, width: int = 1) -> float:
    """Share of an image's spectral energy on the stride-``scale`` frequencies.

    A network that upsamples by ``scale`` (pixel shuffle) and is not fully trained leaves a
    pattern repeating every ``scale`` HR pixels; its energy sits on the spectral rows and
    columns at ``m / scale`` cycles per pixel (``m = 1 .. scale-1``). This is the energy on
    those lines (``width`` bins either side, for the Hann window's spread) over all energy but
    the mean. Natural images put little there; compare with the truth's value
    (:func:`grid_texture_ratio`). ``image``: ``(H, W)``, non-finite pixels are filled by the mean.
    """
    a = _as64(image)
    H, W = (a.shape[0] // scale) * scale, (a.shape[1] // scale) * scale
    if min(H, W) < 4 * scale:
        raise ValueError(f"images of {a.shape[1]}x{a.shape[0]} pixels are too small for a grid-texture measure")
    a = a[:H, :W]
    ok = torch.isfinite(a)
    a = torch.where(ok, a, a[ok].mean() if bool(ok.any()) else torch.zeros((), dtype=a.dtype))
    a = a - a.mean()
    win = torch.outer(torch.hann_window(H, periodic=False, dtype=a.dtype), torch.hann_window(W, periodic=False, dtype=a.dtype))
    power = torch.fft.fft2(a * win).abs() ** 2
    power[0, 0] = 0.0
    on = torch.zeros(H, W, dtype=torch.bool)
    for m in range(1, scale):
        for d in range(-width, width + 1):
            on[(m * H // scale + d) % H, :] = True
            on[:, (m * W // scale + d) % W] = True
    total = float(power.sum())
    return float(power[on].sum()) / total if total > 0 else 0.0


def grid_texture_ratio(sr: np.ndarray, truth: np.ndarray, scale: int) -> float:
    """:func:`grid_energy` of an SR image over the truth's: 1 = as much stride-``scale`` energy as
    the truth, above 1 = a grid texture the truth does not have (below 1: smoother than the truth)."""
    ref = grid_energy(truth, scale)
    return grid_energy(sr, scale) / ref if ref > 0 else float("inf")


FLAT_SHARE = 0.25  # the truth's flattest quarter (by local standard deviation) is where invented texture shows


def flat_texture_ratio(sr: np.ndarray, truth: np.ndarray, scale: int, share: float = FLAT_SHARE) -> float:
    """High-frequency energy of ``sr`` over the truth's, in the truth's flattest areas (both ``(H, W)``).

    A network can invent texture the inputs do not show (a maze in flat fields) without a stride-``scale``
    grid (:func:`grid_texture_ratio` does not see it). Detail is what a Gaussian of sigma ``scale`` / 2 HR px
    removes; flat areas are the ``share`` of pixels (away from the edges) where the truth's local standard
    deviation over ``2 * scale + 1`` px is lowest. ``sr`` is first scaled by the gain that fits it to the
    truth (least squares), so another sensor's calibration does not count as texture. 1: as much detail as
    the truth there; above 1: texture the truth does not have; below 1: smoother."""
    a, b = _as64(sr), _as64(truth)
    if a.shape != b.shape:
        raise ValueError(f"SR size {tuple(a.shape)} differs from truth size {tuple(b.shape)}")
    ok = torch.isfinite(a) & torch.isfinite(b)
    a = torch.where(ok, a, a[ok].mean())
    b = torch.where(ok, b, b[ok].mean())
    da, db = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    gain = float((da * db).sum() / (da * da).sum().clamp(min=1e-30))
    a = a * gain
    sigma = scale / 2.0
    r = max(int(math.ceil(3 * sigma)), 1)
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()

    def blur(img: torch.Tensor) -> torch.Tensor:
        t = torch.nn.functional.pad(img[None, None], (r, r, r, r), mode="reflect")
        t = torch.nn.functional.conv2d(t, g.view(1, 1, 1, -1))
        return torch.nn.functional.conv2d(t, g.view(1, 1, -1, 1))[0, 0]

    hf_a, hf_b = a - blur(a), b - blur(b)
    k = 2 * scale + 1
    pad = k // 2
    bp = torch.nn.functional.pad(b[None, None], (pad,) * 4, mode="reflect")
    mean = torch.nn.functional.avg_pool2d(bp, k, stride=1)[0, 0]
    sq = torch.nn.functional.avg_pool2d(bp ** 2, k, stride=1)[0, 0]
    local_std = (sq - mean ** 2).clamp(min=0).sqrt()
    inner = torch.zeros_like(ok)
    e = r + pad
    inner[e:-e, e:-e] = True
    sel = ok & inner
    if int(sel.sum()) < 16:
        raise ValueError("images too small for a flat-area texture measure")
    cut = torch.quantile(local_std[sel], share)
    flat = sel & (local_std <= cut)
    ref = float((hf_b[flat] ** 2).mean())
    return float((hf_a[flat] ** 2).mean()) / ref if ref > 0 else float("inf")


def border_and_interior_psnr(sr: np.ndarray, truth: np.ndarray, band: int, data_range: float = 1.0) -> tuple[float, float]:
    """PSNR (dB) of the outer ``band`` pixels of the raster and of the rest, after removing the
    brightness bias over the whole image (no shift search: for outputs on the truth's grid).
    Border artefacts (lines along the edges) show as a border PSNR below the interior's."""
    sr, truth = np.asarray(sr, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    ok = np.isfinite(sr) & np.isfinite(truth)
    diff = np.where(ok, sr - truth, 0.0)
    diff -= diff[ok].mean()
    border = np.ones(sr.shape, dtype=bool)
    border[band:-band, band:-band] = False

    def region(mask: np.ndarray) -> float:
        sel = mask & ok
        return 10 * math.log10(data_range ** 2 / max(float((diff[sel] ** 2).mean()), 1e-30))

    return region(border), region(~border)
