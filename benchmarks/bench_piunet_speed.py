"""PIUNet speed: plain reference vs the shipped implementation, same run, same weights.

Training step: batch 24 x 9 frames x 32 x 32 (forward, backward, Adam step).
TTF-sized step: 1 x 9 x 128 x 128 (forward + backward).
Accuracy: with identical weights, outputs of every variant are compared with the
plain fp32 reference (max abs error relative to the output's std).
"""
from __future__ import annotations

import time

import torch

from common import save
from piunet_reference import ReferencePIUNet
from stacksr.core.learned.piunet import PIUNet, PIUNetConfig


def time_step(model, x, bf16: bool, train: bool, repeats: int = 3) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-4) if train else None
    times = []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            sr, ls = model(x)
        loss = sr.float().abs().mean() + 0.1 * ls.float().mean()
        loss.backward()
        if opt is not None:
            opt.step()
            opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
    return min(times[1:])  # the first call warms up oneDNN


def main() -> None:
    torch.manual_seed(0)
    cfg = PIUNetConfig(scale=3)
    fast = PIUNet(cfg)
    ref = ReferencePIUNet(cfg).load_from(fast)
    check = torch.randn(2, 9, 32, 32)
    with torch.no_grad():
        ref_out = ref(check)[0]
        errs = {"fast fp32": float((fast(check)[0] - ref_out).abs().max() / ref_out.std())}
        with torch.autocast("cpu", dtype=torch.bfloat16):
            errs["fast bf16"] = float((fast(check)[0].float() - ref_out).abs().max() / ref_out.std())
    variants = [("plain reference fp32", ref, False), ("shipped fp32", fast, False), ("shipped bf16 autocast", fast, True)]
    rows = {}
    for name, model, bf16 in variants:
        train_s = time_step(model, torch.randn(24, 9, 32, 32), bf16, True, repeats=2)
        ttf_s = time_step(model, torch.randn(1, 9, 128, 128), bf16, False, repeats=2)
        rows[name] = {"train_step_s": train_s, "samples_per_s": 24 / train_s, "ttf_step_s": ttf_s}
        print(name, rows[name], flush=True)
    base = rows["plain reference fp32"]
    print("\n| implementation | train step b24x9x32x32 (s) | samples/s | speed-up | TTF step 1x9x128x128 (s) | speed-up | max rel. output error |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        err = {"shipped fp32": errs["fast fp32"], "shipped bf16 autocast": errs["fast bf16"]}.get(name, 0.0)
        print(f"| {name} | {r['train_step_s']:.2f} | {r['samples_per_s']:.2f} | {base['train_step_s'] / r['train_step_s']:.2f}x "
              f"| {r['ttf_step_s']:.2f} | {base['ttf_step_s'] / r['ttf_step_s']:.2f}x | {err:.1e} |")
    save("piunet_speed", {"rows": rows, "output_errors": errs})


if __name__ == "__main__":
    main()
