"""Post-processing variants of a trained self-supervised PIUNet on the held-out tiles of
bench_selfsup.py: test-time augmentation (mean over 4 rotations x 2 flips) and IBP iterations
started from the PIUNet output, against IBP in the same run.

Usage: python bench_selfsup_variants.py MODEL.pt
"""
from __future__ import annotations

import statistics
import sys

import torch

from common import DATA_RANGE, l8_stacks, save
from stacksr.core.classic.baselines import ibp
from stacksr.core.learned.inference import predict
from stacksr.core.metrics import cpsnr
from stacksr.core.classic.registration import register_frames
from stacksr.core.learned.model_files import load_model


def tta(net, lr: torch.Tensor) -> torch.Tensor:
    outs = []
    for k in range(4):
        for flip in (False, True):
            f = torch.rot90(lr, k, (1, 2))
            f = f.flip(-1) if flip else f
            o = predict(net, f, torch.ones_like(f, dtype=torch.bool))[0]
            outs.append(torch.rot90(o.flip(-1) if flip else o, -k, (0, 1)))
    return torch.stack(outs).mean(0)


def main() -> None:
    net, _ = load_model(sys.argv[1], 3)
    scores: dict[str, list[float]] = {}
    for name, st in l8_stacks(399)[6:]:
        valid = torch.ones_like(st.lr, dtype=torch.bool)
        shifts = register_frames(st.lr, valid, 0)
        sr = predict(net, st.lr, valid)[0]
        outs = {"IBP": ibp(st.lr, valid, 3, shifts), "PIUNet": sr, "PIUNet, TTA x8": tta(net, st.lr)}
        for n in (3, 10, 20):
            outs[f"PIUNet + {n} IBP iterations"] = ibp(st.lr, valid, 3, shifts, iterations=n, init=sr)
        for k, v in outs.items():
            scores.setdefault(k, []).append(cpsnr(v.numpy(), st.hr.numpy(), max_shift=3, data_range=DATA_RANGE).cpsnr)
        print(name, {k: round(v[-1], 2) for k, v in scores.items()}, flush=True)
    summary = {k: statistics.mean(v) for k, v in scores.items()}
    print("\n| variant | cPSNR on held-out tiles (dB) |\n|---|---|")
    for k, v in summary.items():
        print(f"| {k} | {v:.2f} |")
    save("selfsup_variants", {"model": sys.argv[1], "summary": summary, "per_tile": scores})


if __name__ == "__main__":
    main()
