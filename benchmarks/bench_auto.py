"""Every method against the truth and against its own held-out validation, on the three kinds of stack, in
one run: what ``--method auto`` would choose, how close it comes to the best method, and whether the
validated gain predicts the true one (issue 30), plus each method's texture in the truth's flattest areas
(issue 26).

Kinds:
- ``static``: the 9 Landsat 8 pan stacks (frames cut from one image, x3, known kernels; flatters IBP);
- ``realdates``: the 10 Sentinel-2 NDVI stacks of real, changing dates (x3, simulated degradation);
- ``realsensor``: real optics on both sides: Sentinel-2 -> Deimos-2 (x3, affine-fit cPSNR) and Sentinel-2
  L2A 20 m -> 10 m of the Romania area held out of pretraining (x2).

Every method runs as the super-resolution job runs it by default: frames that do not register left out, IBP
with robust fusion and its iteration count chosen by held-out pixels, the shipped base model of the scale
(where one ships) with TTF. Validation: :func:`method_choice.choose_method` on the central
:data:`method_choice.VALIDATION_WINDOW` px, as the job does.

    PYTHONPATH=.build/pkg .venv/bin/python benchmarks/bench_auto.py --kinds static,realdates,realsensor
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import (DATA_RANGE, S2_DATA_RANGE, SensorStack, as_the_job_sets_up, deimos_stacks, l8_stacks, romania_x2_stacks,
                    s2_stacks, save)
from stacksr.core.degradation.fkp import default_fkp_path, load_fkp
from stacksr.core.jobs.method_choice import Setup, central_window, choose_method, pick, runners
from stacksr.core.metrics import cpsnr, flat_texture_ratio
from stacksr.core.learned.model_files import base_model_path, load_model
from stacksr.core.learned.ttf_config import TTFConfig


def load_kind(kind: str) -> list[tuple[str, SensorStack]]:
    if kind == "static":
        return [(n, SensorStack(st.hr, st.lr, torch.ones_like(st.lr, dtype=torch.bool), 3, DATA_RANGE, False))
                for n, st in l8_stacks(399)]
    if kind == "realdates":
        return [(n, SensorStack(st.hr, st.lr, st.valid, 3, S2_DATA_RANGE, False)) for n, st in s2_stacks()]
    if kind == "selection":  # not a benchmark: other Romania dates, for choosing among checkpoints
        return romania_x2_stacks(selection=True)
    return deimos_stacks() + romania_x2_stacks()


def stacks_as_the_job_sets_them_up(kinds=("static", "realdates", "realsensor"), min_frames: int = 1):
    """(kind, name, stack, :class:`common.JobSetup`) of every benchmark stack of ``kinds`` that keeps at least
    ``min_frames`` frames."""
    for kind in kinds:
        for name, st in load_kind(kind):
            job = as_the_job_sets_up(st.lr, st.valid, st.scale)
            if job.lr.shape[0] >= min_frames:
                yield kind, name, st, job


def spearman(a: list[float], b: list[float]) -> float:
    def ranks(x):
        order = sorted(range(len(x)), key=x.__getitem__)
        r = [0.0] * len(x)
        for i, j in enumerate(order):
            r[j] = float(i)
        return r
    ra, rb = ranks(a), ranks(b)
    ma, mb = statistics.mean(ra), statistics.mean(rb)
    num = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    den = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return num / den if den else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kinds", default="static,realdates,realsensor")
    ap.add_argument("--model", default="base", help="'base' (the shipped model of each scale), 'none', or a file (x3)")
    ap.add_argument("--tag", default="")
    ap.add_argument("--learned-only", action="store_true",
                    help="score the learned path alone, without validation (a pretraining checkpoint's curve point)")
    args = ap.parse_args()
    rows = []
    for kind in args.kinds.split(","):
        for name, st in load_kind(kind):
            t0 = time.perf_counter()
            s = st.scale
            job = as_the_job_sets_up(st.lr, st.valid, s)
            lr, valid, shifts, psf, weights, iters = job.lr, job.valid, job.shifts, job.psf, job.weights, job.iterations
            model = None if args.model == "none" else base_model_path(s) if args.model == "base" else \
                args.model if torch.load(args.model, weights_only=True)["scale"] == s else base_model_path(s)
            net = load_model(model, s)[0] if model else None
            flow = load_fkp(default_fkp_path(s), s) if net is not None else None
            setup = Setup(s, 0, shifts, psf, iters, True, None, net, flow, TTFConfig())
            truth = {}
            texture = {}
            for m, run in runners(setup).items():
                if args.learned_only and not m.startswith("piunet"):
                    continue
                sr = run(lr, valid)
                truth[m] = cpsnr(sr.numpy(), st.hr.numpy(), max_shift=3, data_range=st.data_range,
                                 fit_gain=st.fit_gain).cpsnr
                texture[m] = flat_texture_ratio(sr.numpy(), st.hr.numpy(), s)
            untuned = None
            if net is not None:  # the learned path without TTF: what TTF gains or loses on each stack
                from stacksr.core.learned.inference import predict

                plain = predict(net, lr, valid, reference=0)[0].numpy()
                untuned = cpsnr(plain, st.hr.numpy(), max_shift=3, data_range=st.data_range, fit_gain=st.fit_gain).cpsnr
                if not args.learned_only:  # auto's candidate too (validated before TTF)
                    truth["piunet"], texture["piunet"] = untuned, flat_texture_ratio(plain, st.hr.numpy(), s)
            if args.learned_only:
                rows.append({"kind": kind, "stack": name, "truth": truth, "texture": texture, "untuned": untuned})
                print(kind, name, truth, texture, flush=True)
                continue
            win = central_window(tuple(lr.shape[-2:]))
            val = choose_method(setup, lr[:, win[0], win[1]], valid[:, win[0], win[1]], psf,
                                None if weights is None else weights[:, win[0], win[1]])
            chosen = pick(val if val.frames_scored else None)
            chosen = "ibp" if chosen == "ibp-bank" else chosen
            row = {"kind": kind, "stack": name, "frames_used": int(lr.shape[0]), "frames": int(st.lr.shape[0]),
                   "scale": s, "truth": truth, "texture": texture, "validation": val.to_dict(), "chosen": chosen,
                   "lowest_heldout_error": val.best.method if val.frames_scored else None, "untuned": untuned,
                   "auto": truth[chosen], "seconds": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            print(kind, name, f"frames {row['frames_used']}/{row['frames']}", {m: round(v, 2) for m, v in truth.items()}, "->", chosen,
                  {m: round(d["gain_db"], 2) if d["gain_db"] is not None else None
                   for m, d in row["validation"]["methods"].items()}, f"{row['seconds']} s", flush=True)
    if args.learned_only:
        for kind in dict.fromkeys(r["kind"] for r in rows):
            rs = [r for r in rows if r["kind"] == kind and r["truth"]]
            if rs:
                m = next(iter(rs[0]["truth"]))
                gains = [r["truth"][m] - r["untuned"] for r in rs if r.get("untuned") is not None]
                print(f"{kind}: {m} {statistics.mean(r['truth'][m] for r in rs):.3f} dB, texture "
                      f"{statistics.mean(r['texture'][m] for r in rs):.2f} ({len(rs)} stacks); TTF gain mean "
                      f"{statistics.mean(gains):+.3f}, worst {min(gains):+.3f} dB")
    else:
        report(rows)
    save(f"auto{args.tag}", {"args": vars(args), "rows": rows})


def group(r: dict) -> str:
    """The table's rows: each kind, the real-sensor one split by data set (Deimos-2 x3, Romania x2)."""
    return r["kind"] if r["kind"] != "realsensor" else "realsensor " + r["stack"].split("_")[0]


def report(rows: list[dict]) -> None:
    rows = [{**r, "kind": group(r)} for r in rows]
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    methods = list(dict.fromkeys(m for r in rows for m in r["truth"]))
    print("\n| kind | " + " | ".join(methods) + " | auto | auto - best | picks best | worst vs 2nd best |")
    print("|---" * (len(methods) + 5) + "|")
    for kind in kinds:
        rs = [r for r in rows if r["kind"] == kind]
        means = {m: statistics.mean(r["truth"][m] for r in rs) if all(m in r["truth"] for r in rs) else float("nan")
                 for m in methods}
        auto = statistics.mean(r["auto"] for r in rs)
        hits = sum(r["auto"] >= max(r["truth"].values()) - 1e-9 for r in rs)
        worst = min(r["auto"] - sorted(r["truth"].values())[-2] for r in rs)
        best = max(v for v in means.values() if v == v)
        print(f"| {kind} | " + " | ".join(f"{means[m]:.2f}" for m in methods)
              + f" | {auto:.2f} | {auto - best:+.2f} | {hits}/{len(rs)} | {worst:+.2f} |")
    pred, true = [], []
    for r in rows:
        base = r["truth"]["bicubic-ref"]
        for m, d in r["validation"]["methods"].items():
            if m != "bicubic-ref" and d["gain_db"] is not None:
                pred.append(d["gain_db"])
                true.append(r["truth"][m] - base)
    print(f"\nvalidated gain vs true gain over the reference date alone: Spearman {spearman(pred, true):.2f} "
          f"({len(pred)} method-stack pairs)")
    pred, true = [], []
    for r in rows:
        for m, d in (r["validation"].get("one_scale_down") or {}).items():
            if m != "bicubic-ref" and d["gain_db"] is not None and m in r["truth"]:
                pred.append(d["gain_db"])
                true.append(r["truth"][m] - r["truth"]["bicubic-ref"])
    if pred:
        print(f"one scale down: validated gain vs true gain, Spearman {spearman(pred, true):.2f} "
              f"({len(pred)} method-stack pairs)")
    for kind in kinds:
        gains = [r["truth"]["piunet+ttf"] - r["untuned"] for r in rows if r["kind"] == kind and r.get("untuned") is not None]
        if gains:
            print(f"TTF gain over the untuned network, {kind}: mean {statistics.mean(gains):+.3f}, worst {min(gains):+.3f} dB")
    print("texture in the truth's flattest areas (output / truth), mean by kind:")
    for kind in kinds:
        rs = [r for r in rows if r["kind"] == kind]
        print(f"  {kind}: " + ", ".join(f"{m} {statistics.mean(r['texture'][m] for r in rs if m in r['texture']):.2f}"
                                        for m in methods if any(m in r["texture"] for r in rs)))


if __name__ == "__main__":
    main()
