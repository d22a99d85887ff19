"""IBP's robust fusion (the job's default): each date's LR pixels weighted by their agreement with the
reference date (`core/agreement.py`), against plain IBP, on both kinds of stack; the frames the job keeps,
the default PSF and the iteration count chosen as the job does (held-out validation), in the same run.

    cd benchmarks && ../.venv/bin/python bench_robust_fusion.py
"""
from __future__ import annotations

import statistics


from common import both_benchmarks, kept_frames, save
from stacksr.core.classic import agreement
from stacksr.core.classic.agreement import agreement_weights
from stacksr.core.classic.baselines import choose_ibp_iterations, ibp
from stacksr.core.metrics import cpsnr


def main() -> None:
    benches = both_benchmarks()
    out = {"constants": {"sigma": agreement.SIGMA, "smooth": agreement.SMOOTH, "c": agreement.C,
                         "reweights": agreement.REWEIGHTS}}
    for bench, (stacks, data_range) in benches.items():
        rows = []
        for name, hr, lr, valid in stacks:
            f, v, s = kept_frames(lr, valid)
            row = {"stack": name}
            for label, w in (("plain", None), ("robust fusion", agreement_weights(f, v, 0, s, float(f[0][v[0]].mean()))[0])):
                n, _ = choose_ibp_iterations(f, v, 3, s, weights=w)
                row[label] = cpsnr(ibp(f, v, 3, s, iterations=n, weights=w).numpy(), hr.numpy(), data_range=data_range).cpsnr
                row[f"{label} iterations"] = n
            rows.append(row)
            print(bench, name, {k: round(x, 3) if isinstance(x, float) else x for k, x in row.items() if k != "stack"}, flush=True)
        gains = [r["robust fusion"] - r["plain"] for r in rows]
        summary = {"plain": statistics.mean(r["plain"] for r in rows), "robust fusion": statistics.mean(r["robust fusion"] for r in rows),
                   "gain mean": statistics.mean(gains), "gain worst": min(gains), "gain best": max(gains)}
        print(bench, {k: round(x, 3) for k, x in summary.items()}, flush=True)
        out[bench] = {"summary": summary, "stacks": rows}
    save("robust_fusion", out)


if __name__ == "__main__":
    main()
