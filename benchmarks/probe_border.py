"""Border band (9 output px) vs interior PSNR of IBP, on both benchmarks, two ways.

1. As the issue measures it: the raster's outer band against the rest. On the real-date crops
   this mixes content with artefacts: the reference date upsampled alone (bicubic, which cannot
   make border lines) has its own gap there.
2. Paired, on the same pixels: IBP is run again on the stack cropped by ``CROP`` LR px on every
   side (same frames, shifts and iteration count), so the pixels of the cropped output's outer band
   lie in the interior of the whole run. The PSNR of those pixels in the whole run minus theirs in
   the cropped run is what being at the border costs, content held fixed.

3. ``--against-mean-bicubic`` (issue 30, item 6): IBP as the job runs it (robust fusion, its validated count)
   and the registered mean of bicubic of the same frames; for each, the outer ``--band`` px against the rest;
   IBP's excess = its gap minus mean-bicubic's (the line: 0.3 dB at most).

    cd benchmarks && ../.venv/bin/python probe_border.py [--iterations N] [--against-mean-bicubic [--band 6]]
"""
import statistics

import numpy as np
import torch

from common import both_benchmarks, kept_frames, save
from stacksr.core.classic.agreement import agreement_weights
from stacksr.core.classic.baselines import choose_ibp_iterations, ibp, mean_bicubic
from stacksr.core.degradation.operators import upsample_bicubic
from stacksr.core.metrics import border_and_interior_psnr
from stacksr.core.io.stack_ops import temporal_fill

BAND = 9  # output px (3 LR px at x3)
CROP = 3  # LR px cut from every side for the paired run: its outer band is BAND px wide


def psnr(diff: np.ndarray, data_range: float) -> float:
    return 10 * np.log10(data_range ** 2 / max(float((diff ** 2).mean()), 1e-30))


def paired(whole: torch.Tensor, cropped: torch.Tensor, hr: torch.Tensor, data_range: float) -> tuple[float, float]:
    """PSNR of the cropped run's outer band, in the whole run and in the cropped run (each with its
    brightness bias over the cropped extent removed)."""
    c = CROP * 3
    truth = hr[c:-c, c:-c].double().numpy()
    band = np.ones(truth.shape, dtype=bool)
    band[BAND:-BAND, BAND:-BAND] = False
    out = []
    for sr in (whole[c:-c, c:-c], cropped):
        diff = sr.double().numpy() - truth
        diff -= diff.mean()
        out.append(psnr(diff[band], data_range))
    return out[0], out[1]


def against_mean_bicubic(band: int) -> None:
    summary = {}
    for bench, (stacks, data_range) in both_benchmarks().items():
        rows = []
        for name, hr, lr, valid in stacks:
            f, v, s = kept_frames(lr, valid)
            means = torch.stack([x[m].mean() if m.any() else x.mean() for x, m in zip(f, v)])
            w = agreement_weights(f, v, 0, s, float(means[0]))[0] if f.shape[0] > 1 else None
            n = choose_ibp_iterations(f, v, 3, s, None, means, w)[0]
            row = {"stack": name, "iterations": n}
            for label, sr in (("ibp", ibp(f, v, 3, s, iterations=n, frame_means=means, weights=w)),
                              ("mean_bicubic", mean_bicubic(f, v, 3, s, means))):
                border, interior = border_and_interior_psnr(sr.numpy(), hr.numpy(), band, data_range)
                row[label] = {"border": border, "interior": interior, "gap": interior - border}
            row["excess"] = row["ibp"]["gap"] - row["mean_bicubic"]["gap"]
            rows.append(row)
            print(bench, name, n, f"ibp gap {row['ibp']['gap']:.2f}, mean-bicubic gap {row['mean_bicubic']['gap']:.2f}, "
                  f"excess {row['excess']:+.2f}", flush=True)
        summary[bench] = {"mean_ibp_gap": statistics.mean(r["ibp"]["gap"] for r in rows),
                          "mean_mean_bicubic_gap": statistics.mean(r["mean_bicubic"]["gap"] for r in rows),
                          "mean_excess": statistics.mean(r["excess"] for r in rows),
                          "worst_excess": max(r["excess"] for r in rows), "stacks": rows}
        print(bench, {k: round(x, 2) for k, x in summary[bench].items() if k != "stacks"}, flush=True)
    save(f"border_vs_mean_bicubic_{band}px", {"band": band, **summary})


def main() -> None:
    import argparse
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--iterations", type=int, default=None, help="a fixed IBP count (default: chosen per stack, as the job)")
    ap.add_argument("--against-mean-bicubic", action="store_true")
    ap.add_argument("--band", type=int, default=6)
    args = ap.parse_args()
    if args.against_mean_bicubic:
        return against_mean_bicubic(args.band)
    benches = both_benchmarks()
    summary = {}
    for bench, (stacks, data_range) in benches.items():
        rows = []
        for name, hr, lr, valid in stacks:
            f, v, s = kept_frames(lr, valid)
            n = args.iterations or choose_ibp_iterations(f, v, 3, s)[0]
            whole = ibp(f, v, 3, s, iterations=n)
            cropped = ibp(f[:, CROP:-CROP, CROP:-CROP], v[:, CROP:-CROP, CROP:-CROP], 3, s, iterations=n)
            bicubic = upsample_bicubic(temporal_fill(lr[:1], valid[:1]), 3)[0]
            ib, ii = border_and_interior_psnr(whole.numpy(), hr.numpy(), BAND, data_range)
            bb, bi = border_and_interior_psnr(bicubic.numpy(), hr.numpy(), BAND, data_range)
            inside, at_border = paired(whole, cropped, hr, data_range)
            rows.append({"stack": name, "iterations": n, "ibp_border": ib, "ibp_interior": ii, "bicubic_border": bb,
                         "bicubic_interior": bi, "same_pixels_inside": inside, "same_pixels_at_border": at_border})
            print(bench, name, {k: round(x, 2) if isinstance(x, float) else x for k, x in rows[-1].items() if k != "stack"}, flush=True)
        mean = {k: statistics.mean(r[k] for r in rows) for k in rows[0] if k not in ("stack", "iterations")}
        mean["ibp_gap"] = mean["ibp_interior"] - mean["ibp_border"]
        mean["bicubic_gap"] = mean["bicubic_interior"] - mean["bicubic_border"]
        mean["paired_gap"] = mean["same_pixels_inside"] - mean["same_pixels_at_border"]
        mean["paired_gap_worst_stack"] = max(r["same_pixels_inside"] - r["same_pixels_at_border"] for r in rows)
        summary[bench] = {"mean": mean, "stacks": rows}
        print(bench, {k: round(x, 2) for k, x in mean.items()}, flush=True)
    save("border" if args.iterations is None else f"border_{args.iterations}it", {"band": BAND, "iterations": args.iterations or "chosen", "crop_lr_px": CROP, **summary})


if __name__ == "__main__":
    main()
