"""Pretrain a shipped base model (models/piunet_base_x{scale}.pt) on the real-series corpus, for hours,
resumably, across sessions.

Self-supervised only (CR -> LR): the LR frames of every series in ``scripts/pretrain_corpus.py`` are the
targets, their degraded copies (random anisotropic Gaussian kernels of the FKP prior's range, one per
frame, then decimation) the inputs; no HR image is seen, and no benchmark's truth.

The run lives in ``--run-dir`` and goes in segments of ``--segment`` steps. Each segment resumes the last
checkpoint exactly (weights, Adam state, step, best validation, the sampler's and torch's random states), so
a run killed at any time (SIGTERM / SIGINT save the checkpoint first) or continued in a later session picks
up where it stopped. After every segment the script appends a line to ``curve.jsonl`` (step, CPU seconds of
training so far, validation loss on a fixed set of 64 patches from every place's held-out rows) and keeps a
snapshot of the weights (``step<N>.pt``) for the benchmarks. ``best.pt`` is the step with the best
validation loss so far. The learning rate drops on a plateau of the validation loss (:func:`scheduled_lr`);
its state is the curve and ``settings.json``, in the run directory.

Usage (1 torch thread while other work runs on the machine, 2 when it has the machine to itself):
    PYTHONPATH=.build/pkg .venv/bin/python scripts/pretrain_base_model.py --scale 3 --hours 2.5 --threads 1
Continue in a later session: the same command (the run directory holds the state).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".build", "pkg"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pretrain_corpus import corpus  # noqa: E402
from stacksr.core.convention import default_kernel_size  # noqa: E402
from stacksr.core.degradation.operators import gaussian_kernels, random_gaussian_params  # noqa: E402
from stacksr.core.learned.model_files import base_model_path, load_model  # noqa: E402
from stacksr.core.learned.piunet import RESIDUALS, PIUNet, PIUNetConfig  # noqa: E402
from stacksr.core.progress import Cancelled, Monitor  # noqa: E402
from stacksr.core.learned.training import TrainConfig, bf16_supported, train_self_supervised  # noqa: E402


class _Stoppable(Monitor):
    """Cancels at the next step on SIGTERM / SIGINT (training then writes its checkpoint)."""

    def __init__(self):
        super().__init__()
        self.stop = False
        signal.signal(signal.SIGTERM, self._ask)
        signal.signal(signal.SIGINT, self._ask)

    def _ask(self, *_):
        self.stop = True

    def is_cancelled(self) -> bool:
        return self.stop


PATIENCE = 4  # segments without a new best validation loss before the learning rate drops
LR_DROP, LR_MIN = 0.3, 1e-5


def scheduled_lr(curve_file: str, lr: float, settings_file: str) -> float:
    """Reduce-on-plateau, kept in the run directory: the rate drops by :data:`LR_DROP` when the last
    :data:`PATIENCE` curve points (all at the current rate) brought no new best validation loss."""
    points = [json.loads(line) for line in open(curve_file)] if os.path.exists(curve_file) else []
    recent = points[-PATIENCE:]
    if len(recent) < PATIENCE or any(p.get("lr", lr) != lr for p in recent) or any(p["best"] for p in recent):
        return lr
    new = max(lr * LR_DROP, LR_MIN)
    if new != lr:
        settings = json.load(open(settings_file))
        settings["lr"] = new
        json.dump(settings, open(settings_file, "w"), indent=1)
        print(f"no new best in {PATIENCE} segments: learning rate {lr:g} -> {new:g}", flush=True)
    return new


def transplant(path: str, scale: int, output: str) -> str:
    """A model file at ``scale`` made from a model of another scale: every weight but the upsampler's first
    convolution, which is scale-specific (one output channel per feature and sub-pixel phase); each of its
    phases starts from the source's centre phase, so the new model begins as the source network followed by a
    nearest-neighbour upsampling of its features (the way ICNR initialises a pixel shuffle)."""
    from stacksr.core.learned.model_files import save_model
    from stacksr.core.learned.training import TrainState

    src, payload = load_model(path)
    cfg = PIUNetConfig(**{**src.config.to_dict(), "scale": scale})
    net = PIUNet(cfg)
    state = src.state_dict()
    s0, C = src.config.scale, src.config.features
    centre = (s0 // 2) * s0 + s0 // 2
    for key in ("upsample.0.weight", "upsample.0.bias"):
        w = state[key].reshape(C, s0 * s0, *state[key].shape[1:])[:, centre]
        state[key] = w[:, None].expand(C, scale * scale, *w.shape[1:]).reshape(C * scale * scale, *w.shape[1:]).clone()
    net.load_state_dict(state)
    save_model(output, net, TrainConfig(scale=scale), payload.get("kernel_bank", ""), TrainState(),
               extra={"transplanted_from": os.path.basename(path), "source_scale": s0})
    return output


def rebase(path: str, residual: str, output: str) -> str:
    """A model file like ``path`` but adding to another global residual: every weight kept, the output channel
    of the final convolution zeroed for an IBP residual, so the new model starts exactly at the IBP estimate and
    only learnt corrections move it away (the uncertainty channel and the trunk are the source's)."""
    from stacksr.core.learned.model_files import save_model
    from stacksr.core.learned.training import TrainState

    src, payload = load_model(path)
    net = PIUNet(PIUNetConfig(**{**src.config.to_dict(), "residual": residual}))
    net.load_state_dict(src.state_dict())
    if residual == "ibp":
        net.start_at_base()
    save_model(output, net, TrainConfig(scale=src.config.scale), payload.get("kernel_bank", ""), TrainState(),
               extra={"rebased_from": os.path.basename(path), "residual": residual})
    return output


def ship(run: str, args, counts: dict, output: str, step: int | None = None, chosen_by: str = "") -> None:
    """The run's best checkpoint (or the snapshot of ``step``, chosen by ``chosen_by``) as a base model file: weights
    and settings only (no optimiser or random states), and in its ``extra`` entry what it was trained on, how, and
    for how long (models/README.md says the same)."""
    source = os.path.join(run, "best.pt" if step is None else f"step{step}.pt")
    payload = torch.load(source, map_location="cpu", weights_only=True)
    for key in ("optimizer", "rng"):  # a snapshot is a resumable checkpoint; a shipped model needs none of this
        payload.pop(key, None)
    points = [json.loads(line) for line in open(os.path.join(run, "curve.jsonl"))]
    best = min(points, key=lambda p: p["val"]) if step is None else next(p for p in points if p["step"] == step)
    init = json.load(open(os.path.join(run, "settings.json")))["init"]
    payload["extra"] = {
        "self_supervised": True,
        "data": "scripts/pretrain_corpus.py: the real series of shared/data/real_series (Sentinel-2 L2A Romania 10 m "
                "and 20 m, west half only; MODIS Sinop and Italy; Landsat Pucallpa; NAIP North Dakota; the four "
                "_marginal series) and shared/data/landsat7_timeseries (bands 3, 4, 5), every band, stacks of "
                f"{args.frames} consecutive dates, each place weighing the same: {counts}. LR frames as targets, "
                "no HR image; nothing of landsat8_pan, sentinel2_timeseries, sensor_pairs or the east half of Romania",
        "kernel_bank": f"{args.kernels} random anisotropic Gaussians of the plausible range at x{args.scale} (seed {args.seed})",
        "command": f"python scripts/pretrain_base_model.py --scale {args.scale} (resumed until the step below)",
        "init": init, "seed": args.seed, "steps": payload["state"]["step"], "cpu_seconds": best["cpu_s"],
        "best_val": best["val"], "curve": points,
        "chosen_by": chosen_by or "the lowest validation loss of the curve",
    }
    payload["extra"]["curve"] = [{k: p[k] for k in ("step", "cpu_s", "val", "lr") if k in p} for p in points]
    torch.save(payload, output)
    print(f"wrote {output}: step {payload['state']['step']}, validation {best['val']}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=int, default=3)
    ap.add_argument("--run-dir", default=None, help="default: pretrain_runs/x<scale> (not in git)")
    ap.add_argument("--hours", type=float, default=2.0, help="wall-clock budget of this invocation")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--segment", type=int, default=500, help="steps between curve points and snapshots")
    ap.add_argument("--init", default="base", help="'base' (the shipped base model of the scale), 'none', or a model file")
    ap.add_argument("--frames", type=int, default=9)
    ap.add_argument("--features", type=int, default=32)
    ap.add_argument("--blocks", type=int, default=8)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=10, help="CR patch (LR targets are scale x patch)")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--kernels", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--residual", default="bilinear", choices=RESIDUALS,
                    help="the network's global residual; 'ibp' from a bilinear init keeps its trunk and starts at IBP")
    ap.add_argument("--ship", default=None, metavar="MODEL",
                    help="train nothing: write the run's best checkpoint here as a shipped base model, documented")
    ap.add_argument("--ship-step", type=int, default=None,
                    help="with --ship: that step's snapshot instead of the lowest validation loss")
    ap.add_argument("--chosen-by", default="", help="with --ship-step: how the step was chosen (recorded in the file)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    run = args.run_dir or os.path.join(ROOT, "pretrain_runs", f"x{args.scale}")
    os.makedirs(run, exist_ok=True)
    settings_file = os.path.join(run, "settings.json")
    if os.path.exists(settings_file):  # a resumed run keeps the settings it started with
        saved = json.load(open(settings_file))
        for k in ("scale", "frames", "features", "blocks", "batch", "patch", "lr", "kernels", "seed", "init"):
            setattr(args, k, saved[k])
        args.residual = saved.get("residual", "bilinear")
    else:
        json.dump(vars(args), open(settings_file, "w"), indent=1)

    s = args.scale
    stacks, counts = corpus(args.frames, args.patch * s, 0.2)
    if args.ship:
        ship(run, args, counts, args.ship, args.ship_step, args.chosen_by)
        return
    g = torch.Generator().manual_seed(args.seed)
    bank = gaussian_kernels(*random_gaussian_params(args.kernels, s, g), default_kernel_size(s), s)
    digest = f"generic-gaussian-{args.kernels}-seed{args.seed}"
    init = None
    if args.init == "base":
        init = base_model_path(s)
    elif args.init != "none":
        init = args.init
    net_cfg = PIUNetConfig(scale=s, features=args.features, blocks=args.blocks)
    best, last, curve_file = (os.path.join(run, n) for n in ("best.pt", "best.pt.last", "curve.jsonl"))
    if os.path.exists(last):  # resuming: the network is the checkpoint's; the init file may be long gone
        net_cfg, init = load_model(last, s)[0].config, f"resumed from {last}"
    elif init:
        init_scale = torch.load(init, map_location="cpu", weights_only=True)["scale"]
        if init_scale != s:  # another scale's model: its trunk, and its centre phase for every sub-pixel phase
            init = transplant(init, s, os.path.join(run, f"init_from_x{init_scale}.pt"))
        net_cfg = load_model(init, s)[0].config
        if net_cfg.residual != args.residual:
            init = rebase(init, args.residual, os.path.join(run, f"init_{args.residual}_residual.pt"))
            net_cfg = load_model(init, s)[0].config
    elif args.residual != net_cfg.residual:
        net_cfg = PIUNetConfig(**{**net_cfg.to_dict(), "residual": args.residual})
    print(f"{len(stacks)} stacks from {len(counts)} places {counts}; network {net_cfg}; init {init}", flush=True)

    mon = _Stoppable()
    t_end = time.time() + args.hours * 3600
    bf16 = bf16_supported(torch.device("cpu"))
    while time.time() < t_end and not mon.stop:
        args.lr = scheduled_lr(curve_file, args.lr, settings_file)
        resume = last if os.path.exists(last) else None
        done = torch.load(last, weights_only=True)["state"]["step"] if resume else 0
        target = (done // args.segment + 1) * args.segment  # curve points on multiples of the segment, even after a stop
        cfg = TrainConfig(scale=s, frames=args.frames, patch=args.patch, batch=args.batch, steps=target,
                          lr=args.lr, val_fraction=0.2, val_every=args.segment, val_samples=64, seed=args.seed, bf16=bf16)
        cpu0 = time.process_time()
        try:
            res = train_self_supervised(stacks, bank, cfg, best, digest, net_cfg, resume=resume,
                                        init=None if resume else init, monitor=mon)
        except Cancelled:
            print("stopped; the checkpoint is saved", flush=True)
            break
        cpu = time.process_time() - cpu0
        prev = [json.loads(line) for line in open(curve_file)] if os.path.exists(curve_file) else []
        cpu_total = (prev[-1]["cpu_s"] if prev else 0.0) + cpu
        best_before = min((p["val"] for p in prev), default=float("inf"))
        new = [h for h in res["history"] if h[0] > (prev[-1]["step"] if prev else 0)]  # every validation of the segment
        for k, (step, train_loss, val) in enumerate(new):
            point = {"step": step, "cpu_s": round(cpu_total, 1), "train": round(train_loss, 5), "val": round(val, 5),
                     "best": val < best_before, "lr": args.lr, "threads": args.threads,
                     "segment_wall_s": res["seconds"], "date": time.strftime("%Y-%m-%d %H:%M")}
            best_before = min(best_before, val)
            with open(curve_file, "a") as f:
                f.write(json.dumps(point) + "\n")
            print(json.dumps(point), flush=True)
        shutil.copyfile(last, os.path.join(run, f"step{res['steps']}.pt"))


if __name__ == "__main__":
    main()
