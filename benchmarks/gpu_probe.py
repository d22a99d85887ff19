"""How far PIUNet gets with GPU-scale compute on bench_learned's benchmarks (run on demand, on a GPU).

The question it answers: is the learned path's gap to IBP on stacks cut from one image (issue 11)
a matter of compute - the full published network (42 features, 16 TEFA blocks) trained for many
more steps than 2 CPU cores allow - or of the method? Two runs on the stacks of a benchmark (the 9
static Landsat 8 pan stacks, or ``--bench realdates`` at dump time: the 10 Sentinel-2 real-date stacks,
scored on the frames the job keeps):

- self-supervised (what a user would run, no HR): trained on the 9 LR stacks with their estimated
  kernel bank (bench_learned's cached joint DIP-FKP bank), scored on the same 9 stacks;
- supervised upper bound: the same network trained with the HR truths, 2-fold (trained on one half
  of the stacks, scored on the other).

The stacks are read from a tensor file made on the CPU machine (``--dump``: the GPU machine has no
GDAL, which the network, TTF and this script do not need), each run stops after ``--seconds`` (the
best-on-validation checkpoint is kept; ``--marks`` keeps copies for a learning curve), ``--ttf``
also scores after the default TTF, and the scores, the models and the log go to ``--out``.

    python benchmarks/gpu_probe.py --dump .build/gpu_data.pt [--bench realdates]    # here (CPU, GDAL)
    python benchmarks/gpu_probe.py --data .build/gpu_data.pt --out DIR --ttf        # there (GPU)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time

import torch

from stacksr.core.degradation.fkp import default_fkp_path, load_fkp
from stacksr.core.learned.inference import predict
from stacksr.core.learned.ttf import test_time_finetune
from stacksr.core.learned.ttf_config import TTFConfig
from stacksr.core.metrics import cpsnr
from stacksr.core.learned.piunet import PIUNetConfig
from stacksr.core.progress import Cancelled, Monitor
from stacksr.core.learned.model_files import load_model
from stacksr.core.learned.sampling import StackData
from stacksr.core.learned.training import TrainConfig, bf16_supported, train_self_supervised, train_supervised


class Deadline(Monitor):
    """Cancels training after ``seconds``, prints progress every 20 s and copies the best checkpoint so
    far (``output``) to ``<output>.<t>s`` at each of the ``marks`` (seconds): the learning curve."""

    def __init__(self, seconds: float, output: str = "", marks: tuple[float, ...] = ()):
        super().__init__()
        self.t0, self.seconds, self.last = time.perf_counter(), seconds, 0.0
        self.output, self.marks = output, sorted(marks)

    def is_cancelled(self) -> bool:
        return time.perf_counter() - self.t0 > self.seconds

    def _emit(self, fraction: float, message: str) -> None:
        now = time.perf_counter() - self.t0
        while self.marks and now >= self.marks[0] and os.path.exists(self.output):
            shutil.copy(self.output, f"{self.output}.{self.marks.pop(0):.0f}s")
        if now - self.last > 20:
            self.last = now
            print(f"{now:6.0f} s  {message}", flush=True)


def dump(path: str, bench: str) -> None:
    """The benchmark's stacks (every frame: what training sees) and, for scoring, the frames the job keeps
    by default (registration quality, as bench_learned)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_learned import load_bench
    from common import RESULTS

    from stacksr.core.params import REGISTRATION_QUALITY
    from stacksr.core.classic.registration import register_stack

    stacks, data_range = load_bench(bench)
    kept = []
    for _, _, lr, valid, _ in stacks:
        used = register_stack(lr, valid, 0).kept(REGISTRATION_QUALITY.default)
        used[0] = True
        kept.append(used)
    torch.save({"names": [s[0] for s in stacks], "hr": [s[1] for s in stacks], "lr": [s[2] for s in stacks],
                "valid": [s[3] for s in stacks], "used": kept, "data_range": data_range,
                "bank": torch.load(os.path.join(RESULTS, f"bank_{bench}.pt"), weights_only=True)}, path)
    print("wrote", path)


def train(kind: str, data: dict, idx: list[int], out: str, args, device: torch.device, seconds: float) -> dict:
    stacks = [StackData(data["lr"][i], data["valid"][i], data["names"][i]) for i in idx]
    cfg = TrainConfig(scale=3, frames=9, patch=args.patch, batch=args.batch, steps=args.steps, lr=args.lr,
                      val_every=args.val_every, bf16=bf16_supported(device))
    net_cfg = PIUNetConfig(scale=3, features=args.features, blocks=args.blocks)
    mon = Deadline(seconds, out, tuple(float(m) for m in args.marks.split(",") if m) if kind == "self-supervised" else ())
    t = time.perf_counter()
    try:
        if kind == "self-supervised":
            res = train_self_supervised(stacks, data["bank"], cfg, out, "estimated", net_cfg, device=device, monitor=mon)
        else:
            res = train_supervised(stacks, [data["hr"][i] for i in idx], cfg, out, net_cfg, device=device, monitor=mon)
    except Cancelled:
        res = {"steps": "stopped at the deadline"}
    return {"seconds": round(time.perf_counter() - t, 1), "steps": res.get("steps"), "best_val": res.get("best_val")}


def score(path: str, data: dict, idx: list[int], device: torch.device, ttf: bool = False) -> dict[str, float]:
    """cPSNR per stack of the model at ``path``; ``ttf``: after the default TTF (stack fit, guarded)."""
    net, _ = load_model(path, 3, device)
    flow = load_fkp(default_fkp_path(3), 3) if ttf else None
    out = {}
    for i in idx:
        used = data["used"][i] if "used" in data else slice(None)  # the frames the job keeps by default
        lr, valid = data["lr"][i][used], data["valid"][i][used]
        tuned = test_time_finetune(net, flow, lr, valid, 0, TTFConfig(), device=device)[0] if ttf else net
        sr, _ = predict(tuned, lr, valid, device=device)
        out[data["names"][i]] = cpsnr(sr.numpy(), data["hr"][i].numpy(), max_shift=3, data_range=data["data_range"]).cpsnr
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", help="write the benchmark's stacks to this file (on the CPU machine) and stop")
    ap.add_argument("--bench", choices=["static", "realdates"], default="static", help="with --dump: which benchmark")
    ap.add_argument("--data", default=".build/gpu_data.pt")
    ap.add_argument("--out", default="/tmp/gpu_probe")
    ap.add_argument("--features", type=int, default=42)
    ap.add_argument("--blocks", type=int, default=16)
    ap.add_argument("--steps", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--patch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--val-every", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=150, help="time limit of the self-supervised run")
    ap.add_argument("--sup-seconds", type=float, default=100, help="time limit of each supervised fold (0: skip)")
    ap.add_argument("--marks", default="", help="comma-separated seconds at which the self-supervised run's best "
                    "checkpoint is copied and later scored (the learning curve)")
    ap.add_argument("--model", help="skip training: score this self-supervised model")
    ap.add_argument("--ttf", action="store_true", help="also score the self-supervised model after TTF")
    args = ap.parse_args()
    if args.dump:
        return dump(args.dump, args.bench)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    os.makedirs(args.out, exist_ok=True)
    data = torch.load(args.data, weights_only=True)
    n = len(data["names"])
    report = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "args": vars(args)}
    path = args.model or os.path.join(args.out, "selfsup.pt")
    training = {} if args.model else train("self-supervised", data, list(range(n)), path, args, device, args.seconds)
    report["self-supervised"] = {"training": training, "cpsnr": score(path, data, list(range(n)), device)}
    print(json.dumps(report["self-supervised"]), flush=True)
    for mark in (m for m in args.marks.split(",") if m):
        if os.path.exists(f"{path}.{float(mark):.0f}s"):
            scores = score(f"{path}.{float(mark):.0f}s", data, list(range(n)), device)
            report[f"self-supervised at {mark} s"] = statistics.mean(scores.values())
            print(mark, "s:", report[f"self-supervised at {mark} s"], flush=True)
    if args.ttf:
        t = time.perf_counter()
        report["self-supervised + TTF"] = score(path, data, list(range(n)), device, ttf=True)
        report["self-supervised + TTF mean"] = statistics.mean(report["self-supervised + TTF"].values())
        report["TTF seconds"] = round(time.perf_counter() - t, 1)
        print("TTF:", report["self-supervised + TTF mean"], flush=True)
    report["self-supervised"]["mean"] = statistics.mean(report["self-supervised"]["cpsnr"].values())
    with open(os.path.join(args.out, "gpu_probe.json"), "w") as f:
        json.dump(report, f, indent=1)
    if not args.sup_seconds:
        return
    half = n // 2
    sup = {}
    for fold, (tr, te) in enumerate([(range(half, n), range(half)), (range(half), range(half, n))]):
        path = os.path.join(args.out, f"supervised{fold}.pt")
        training = train("supervised", data, list(tr), path, args, device, args.sup_seconds)
        sup.update(score(path, data, list(te), device))
        report[f"supervised fold {fold}"] = training
    report["supervised"] = sup
    report["supervised mean"] = statistics.mean(sup.values())
    print(json.dumps(report, indent=1), flush=True)
    with open(os.path.join(args.out, "gpu_probe.json"), "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
