"""The quality suites of the benchmark harness (``benchmarks/run.py``): every method against the truth and against
its own held-out validation, on the three kinds of stack, in one run: what ``--method auto`` would choose, how close it comes to the best method, and whether the
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

    PYTHONPATH=.build/pkg .venv/bin/python benchmarks/run.py --suites static,realdates,realsensor
"""
from __future__ import annotations

import itertools
import statistics
import time
from dataclasses import replace

import torch

from common import (DATA_RANGE, S2_DATA_RANGE, SensorStack, as_the_job_sets_up, deimos_stacks, l8_stacks, romania_x2_stacks,
                    s2_stacks, s2_static_stacks)
from stacksr.core.degradation.fkp import default_fkp_path, load_fkp
from stacksr.core.jobs.method_choice import Setup, central_window, choose_method, pick, runners
from stacksr.core.metrics import cpsnr, flat_texture_ratio
from stacksr.core.learned.model_files import base_model_path, calibration, load_model
from stacksr.core.learned.ttf_config import TTFConfig


def load_kind(kind: str) -> list[tuple[str, SensorStack]]:
    if kind == "static":
        return [(n, SensorStack(st.hr, st.lr, torch.ones_like(st.lr, dtype=torch.bool), 3, DATA_RANGE, False))
                for n, st in l8_stacks(399)]
    if kind == "realdates":
        return [(n, SensorStack(st.hr, st.lr, st.valid, 3, S2_DATA_RANGE, False)) for n, st in s2_stacks()]
    if kind == "selection":  # not a benchmark: other Romania dates, for choosing among checkpoints
        return romania_x2_stacks(selection=True)
    if kind == "selection-realdates":  # not a benchmark: other truth dates of the Sentinel-2 series, for settings
        return [(n, SensorStack(st.hr, st.lr, st.valid, 3, S2_DATA_RANGE, False)) for n, st in s2_stacks(selection=True)]
    if kind == "selection-static":  # not a benchmark: frames of one image, the Sentinel-2 selection dates
        return [(n, SensorStack(st.hr, st.lr, torch.ones_like(st.lr, dtype=torch.bool), 3, S2_DATA_RANGE, False))
                for n, st in s2_static_stacks()]
    if kind == "selection-wide":  # not a benchmark: every other Romania truth date, for rules that need more stacks
        chosen = {n for n, _ in romania_x2_stacks(selection=True)}
        return [(n, st) for n, st in romania_x2_stacks(count=None, selection=True) if n not in chosen]
    if kind == "selection-single":  # not a benchmark: the two real selection sets' stacks, their reference date alone
        return [(f"{n}_alone", replace(st, lr=st.lr[:1], valid=st.valid[:1]))
                for n, st in load_kind("selection") + load_kind("selection-realdates")]
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


def evaluate(kinds: list[str], methods: list[str] | None = None, model: str = "base",
             ttf: TTFConfig = TTFConfig()) -> list[dict]:
    """One row per stack of ``kinds``: every method's cPSNR against the truth and texture; with ``auto`` among
    ``methods`` (None: all) also the validation of every candidate and auto's choice. ``model``: 'base' (the
    shipped model of each scale), 'none', or a file (used where its scale matches)."""
    rows = []
    with_auto = methods is None or "auto" in methods
    for kind in kinds:
        for name, st in load_kind(kind):
            t0 = time.perf_counter()
            s = st.scale
            job = as_the_job_sets_up(st.lr, st.valid, s)
            lr, valid, shifts, psf, weights, iters = job.lr, job.valid, job.shifts, job.psf, job.weights, job.iterations
            path = None if model == "none" else base_model_path(s) if model == "base" else \
                model if torch.load(model, weights_only=True)["scale"] == s else base_model_path(s)
            net, payload = load_model(path, s) if path else (None, {})
            flow = load_fkp(default_fkp_path(s), s) if net is not None else None
            setup = Setup(s, 0, shifts, psf, iters, True, None, net, flow, ttf,
                          calibration=calibration(payload))
            truth, texture = {}, {}

            def score(m, sr):
                truth[m] = cpsnr(sr, st.hr.numpy(), max_shift=3, data_range=st.data_range, fit_gain=st.fit_gain).cpsnr
                texture[m] = flat_texture_ratio(sr, st.hr.numpy(), s)

            for m, run in runners(setup).items():
                if with_auto or m in methods:
                    score(m, run(lr, valid).numpy())
            untuned = None
            if net is not None and (with_auto or "piunet" in methods or "piunet+ttf" in methods):
                from stacksr.core.learned.inference import predict

                score("piunet", predict(net, lr, valid, reference=0)[0].numpy())  # what TTF gains or loses
                untuned = truth["piunet"]
            row = {"kind": kind, "stack": name, "frames_used": int(lr.shape[0]), "frames": int(st.lr.shape[0]),
                   "scale": s, "truth": truth, "texture": texture, "untuned": untuned}
            if with_auto:
                win = central_window(tuple(lr.shape[-2:]))
                val = choose_method(setup, lr[:, win[0], win[1]], valid[:, win[0], win[1]], psf,
                                    None if weights is None else weights[:, win[0], win[1]])
                chosen = pick(val)
                chosen = "ibp" if chosen == "ibp-bank" else chosen
                row.update(validation=val.to_dict(), chosen=chosen, auto=truth[chosen],
                           lowest_heldout_error=val.best.method if val.frames_scored else None)
            row["seconds"] = round(time.perf_counter() - t0, 1)
            rows.append(row)
            print(kind, name, f"frames {row['frames_used']}/{row['frames']}",
                  {m: round(v, 2) for m, v in truth.items()}, "->", row.get("chosen"), f"{row['seconds']} s", flush=True)
    return rows


def suite(names: list[str], opts) -> dict:
    """The harness's quality suites (``benchmarks/run.py``): ``names`` among static, realdates, realsensor and
    selection."""
    methods = opts.methods.split(",") if opts.methods else None
    ttf = TTFConfig() if opts.ttf_iterations is None else TTFConfig(iterations=opts.ttf_iterations)
    rows = evaluate(names, methods, opts.model, ttf)
    return {"rows": rows, "table": report(rows)}


NEAR_TIE_DB = 0.05  # "picks best" is exact; the line under the table also counts choices this close to the best


def group(r: dict) -> str:
    """The table's rows: each kind, the real-sensor one split by data set (Deimos-2 x3, Romania x2)."""
    return r["kind"] if r["kind"] != "realsensor" else "realsensor " + r["stack"].split("_")[0]


def report(rows: list[dict]) -> list[str]:
    """The markdown table of a quality run (cPSNR dB by kind and method; with auto: how it chose) and the lines
    under it (rank correlation of the validated and true gains, TTF's gain, texture)."""
    rows = [{**r, "kind": group(r)} for r in rows]
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    methods = list(dict.fromkeys(m for r in rows for m in r["truth"]))
    auto = all("auto" in r for r in rows)
    extra = ["auto", "auto - best", "picks best", "worst vs 2nd best"] if auto else []
    out = ["| kind | " + " | ".join(methods + extra) + " |", "|---" * (len(methods) + len(extra) + 1) + "|"]
    for kind in kinds:
        rs = [r for r in rows if r["kind"] == kind]
        means = {m: statistics.mean(r["truth"][m] for r in rs) if all(m in r["truth"] for r in rs) else float("nan")
                 for m in methods}
        line = f"| {kind} ({len(rs)}) | " + " | ".join(f"{means[m]:.2f}" for m in methods)
        if auto:
            a = statistics.mean(r["auto"] for r in rs)
            hits = sum(r["auto"] >= max(r["truth"].values()) - 1e-9 for r in rs)
            worst = min(r["auto"] - sorted(r["truth"].values())[-2] for r in rs if len(r["truth"]) > 1)
            best = max(v for v in means.values() if v == v)
            line += f" | {a:.2f} | {a - best:+.2f} | {hits}/{len(rs)} | {worst:+.2f}"
        out.append(line + " |")
    out.append("")
    if auto:
        bench = [r for r in rows if not r["kind"].startswith("selection")]
        near = sum(r["auto"] >= max(r["truth"].values()) - NEAR_TIE_DB for r in bench)
        out.append(f"- `auto` within {NEAR_TIE_DB} dB of the best method on {near} of {len(bench)} benchmark stacks")
        for (key, label), (which, subset) in itertools.product(
                (("methods", "held-out"), ("one_scale_down", "one scale down")),
                (("benchmark", bench), ("selection", [r for r in rows if r["kind"].startswith("selection")]))):
            pred, true = [], []
            for r in subset:
                for m, d in (r["validation"].get(key) or {}).items():
                    if m != "bicubic-ref" and d["gain_db"] is not None and m in r["truth"]:
                        pred.append(d["gain_db"])
                        true.append(r["truth"][m] - r["truth"]["bicubic-ref"])
            if pred:
                out.append(f"- validated gain ({label}) vs true gain over the reference date alone, {which} stacks: "
                           f"Spearman {spearman(pred, true):.2f} ({len(pred)} method-stack pairs)")
    for kind in kinds:
        gains = [r["truth"]["piunet+ttf"] - r["untuned"] for r in rows
                 if r["kind"] == kind and r.get("untuned") is not None and "piunet+ttf" in r["truth"]]
        if gains:
            out.append(f"- TTF gain over the untuned network, {kind}: mean {statistics.mean(gains):+.3f}, "
                       f"worst {min(gains):+.3f} dB")
    for kind in kinds:
        rs = [r for r in rows if r["kind"] == kind]
        out.append(f"- texture in the truth's flattest areas (output / truth), {kind}: " + ", ".join(
            f"{m} {statistics.mean(r['texture'][m] for r in rs if m in r['texture']):.2f}"
            for m in methods if any(m in r["texture"] for r in rs)))
    return out
