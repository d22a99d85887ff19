"""Train the shipped self-supervised base model (models/piunet_base_x3.pt).

Data: the real Landsat 5/7 surface-reflectance series of ../shared/data/landsat7_timeseries
(105 dates, 61 x 61 px at 30 m, bands 3, 4 and 5, fmask cloud/shadow/snow/fill as invalid),
cut into stacks of ``--frames`` consecutive dates per band, as a user's stacks would be. The
training is self-supervised (CR -> LR, no HR anywhere): the LR frames are the targets, their
degraded copies the inputs. Nothing of the benchmarks' truth is used: no Sentinel-2 data, no
Landsat 8 data.

The kernel bank is generic: random anisotropic Gaussians of the plausible range at this scale
(the family the FKP prior was trained on), since a base model must serve any sensor; fine-tuning
on a user's stack then uses that stack's estimated kernels.

Usage (the command and seed that made the shipped file are in models/README.md):
    PYTHONPATH=.build/pkg .venv/bin/python scripts/train_base_model.py --output models/piunet_base_x3.pt
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".build", "pkg"))

from stacksr.core.convention import default_kernel_size
from stacksr.core.degradation import gaussian_kernels, random_gaussian_params
from stacksr.core.piunet import PIUNetConfig, count_parameters
from stacksr.core.progress import Monitor
from stacksr.core.stack_io import ImageSource, read_stack
from stacksr.core.sampling import StackData
from stacksr.core.training import TrainConfig, bf16_supported, train_self_supervised

SERIES = os.path.join(os.path.dirname(ROOT), "shared", "data", "landsat7_timeseries")


def landsat_stacks(frames: int, bands=("b3", "b4", "b5")) -> list[StackData]:
    scenes = sorted(glob.glob(os.path.join(SERIES, "L*")), key=lambda p: os.path.basename(p)[9:16])  # by year+day
    stacks = []
    for band in bands:
        for i in range(0, len(scenes) - frames + 1, frames):
            chunk = scenes[i:i + frames]
            sources = [ImageSource(os.path.join(d, f"{os.path.basename(d)}_{band}.tif"),
                                   mask_path=os.path.join(d, f"{os.path.basename(d)}_fmask.tif")) for d in chunk]
            st = read_stack(sources)
            if st.valid.mean() < 0.3:
                continue
            stacks.append(StackData(torch.from_numpy(st.data), torch.from_numpy(st.valid), f"{band}:{i}"))
    return stacks


class _Log(Monitor):
    """Prints progress every 30 s."""

    def __init__(self):
        super().__init__()
        self.t0, self.last = time.perf_counter(), 0.0

    def _emit(self, fraction: float, message: str) -> None:
        now = time.perf_counter() - self.t0
        if now - self.last > 30:
            self.last = now
            print(f"{now:7.0f} s  {message}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--output", default=os.path.join(ROOT, "models", "piunet_base_x3.pt"))
    ap.add_argument("--scale", type=int, default=3)
    ap.add_argument("--frames", type=int, default=9)
    ap.add_argument("--features", type=int, default=32)
    ap.add_argument("--blocks", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=10)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--kernels", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    stacks = landsat_stacks(args.frames)
    g = torch.Generator().manual_seed(args.seed)
    s1, s2, th = random_gaussian_params(args.kernels, args.scale, g)
    bank = gaussian_kernels(s1, s2, th, default_kernel_size(args.scale), args.scale)
    cfg = TrainConfig(scale=args.scale, frames=args.frames, patch=args.patch, batch=args.batch, steps=args.steps,
                      lr=args.lr, val_fraction=0.2, val_every=max(args.steps // 30, 1), seed=args.seed,
                      bf16=bf16_supported(torch.device("cpu")))
    net_cfg = PIUNetConfig(scale=args.scale, features=args.features, blocks=args.blocks)
    print(f"{len(stacks)} stacks of {args.frames} dates; network {net_cfg}", flush=True)
    res = train_self_supervised(stacks, bank, cfg, args.output, f"generic-gaussian-{args.kernels}-seed{args.seed}",
                                net_cfg, monitor=_Log())
    print(f"{res['steps']} steps in {res['seconds']} s, best validation {res['best_val']:.4f}", flush=True)
    print("history", res["history"], flush=True)
    # what the model was trained on travels inside the file (models/README.md says the same)
    payload = torch.load(args.output, map_location="cpu", weights_only=True)
    payload["extra"] = {
        "self_supervised": True,
        "data": f"shared/data/landsat7_timeseries: {len(stacks)} stacks of {args.frames} consecutive dates "
                f"(bands b3, b4, b5; 61 x 61 px at 30 m; fmask cloud/shadow/snow/fill invalid); LR frames as "
                f"targets, no HR image, no Sentinel-2 or Landsat 8 data",
        "kernel_bank": f"{args.kernels} random anisotropic Gaussians of the plausible range at x{args.scale} (seed {args.seed})",
        "command": "python scripts/train_base_model.py " + " ".join(sys.argv[1:]),
        "seed": args.seed, "steps": res["steps"], "seconds": res["seconds"], "best_val": res["best_val"],
    }
    torch.save(payload, args.output)


if __name__ == "__main__":
    main()
