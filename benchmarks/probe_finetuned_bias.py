"""Probe (issue 30): does a model the Train job fine-tunes from a shipped base keep the base's one-scale-down
bias, and does it beat the base? For each selection stack (never a benchmark): the stack written as GeoTIFFs, the Train job as the chain runs
it (kernels estimated jointly, CHAIN_STEPS steps from the base model), then the learned path's true gain over IBP less
its gain one scale down (as ``model_bias.py`` measures the shipped models), with the fine-tuned model and with the base.

    cd benchmarks && PYTHONPATH=../.build/pkg ../.venv/bin/python probe_finetuned_bias.py [kind] [count] [tag] [lr]

``lr``: the fine-tuning's learning rate (default: the Train job's). The base's row of a stack is taken from an earlier
probe file of the same kind when one has it (the base does not change).
"""
from __future__ import annotations

import glob
import json
import math
import os
import statistics
import sys
import tempfile

import numpy as np
import torch
from osgeo import gdal

from common import RESULTS, as_the_job_sets_up, save, spread
from quality import load_kind
from stacksr.core.degradation.fkp import default_fkp_path, load_fkp
from stacksr.core.io.stack_sources import sources_from_inputs
from stacksr.core.job_settings import TrainSettings
from stacksr.core.jobs.method_choice import Setup, central_window, choose_method, runners
from stacksr.core.jobs.train_job import run_train_self_supervised
from stacksr.core.learned.model_files import base_model_path, load_model
from stacksr.core.learned.ttf_config import TTFConfig
from stacksr.core.metrics import cpsnr
from stacksr.core.params import CHAIN_STEPS


def write_stack(lr: torch.Tensor, valid: torch.Tensor, folder: str) -> list[str]:
    paths = []
    drv = gdal.GetDriverByName("GTiff")
    for t in range(lr.shape[0]):
        p = os.path.join(folder, f"frame_{t:02d}.tif")
        ds = drv.Create(p, lr.shape[2], lr.shape[1], 1, gdal.GDT_Float32)
        ds.SetGeoTransform((500000.0, 20.0, 0.0, 5000000.0, 0.0, -20.0))  # any grid: the job reads georeferenced frames
        band = ds.GetRasterBand(1)
        band.SetNoDataValue(-9999.0)
        band.WriteArray(np.where(valid[t].numpy(), lr[t].numpy(), -9999.0).astype(np.float32))
        band, ds = None, None
        paths.append(p)
    return paths


def bias_of(net, st, job) -> tuple[float, float, float]:
    """(bias, true gain over IBP, one-scale-down gain over IBP) of PIUNet + TTF with ``net`` on one stack."""
    s = st.scale
    setup = Setup(s, 0, job.shifts, job.psf, job.iterations, True, None, net, load_fkp(default_fkp_path(s), s), TTFConfig())
    run = runners(setup)
    truth = {m: cpsnr(run[m](job.lr, job.valid).numpy(), st.hr.numpy(), max_shift=3, data_range=st.data_range).cpsnr
             for m in ("ibp", "piunet+ttf")}
    win = central_window(tuple(job.lr.shape[-2:]))
    val = choose_method(setup, job.lr[:, win[0], win[1]], job.valid[:, win[0], win[1]], job.psf,
                        None if job.weights is None else job.weights[:, win[0], win[1]])
    osd = 20 * math.log10(val.coarse_score("ibp").rmse / val.coarse_score("piunet+ttf").rmse)
    true = truth["piunet+ttf"] - truth["ibp"]
    return true - osd, true, osd


def stored_base_rows(kind: str) -> dict[str, list[float]]:
    """The base's (bias, true gain, one-scale-down gain) per stack from earlier probe files of ``kind``."""
    out = {}
    for f in sorted(glob.glob(os.path.join(RESULTS, "probe_finetuned_bias_*.json"))):
        with open(f) as fh:
            d = json.load(fh)
        if d.get("kind", "selection") == kind:
            out.update({r["stack"]: r["base"] for r in d["rows"]})
    return out


def main(kind: str, count: int, tag: str, lr: float | None = None) -> None:
    rows = []
    stored = stored_base_rows(kind)
    stacks = load_kind(kind)
    for name, st in (stacks[i] for i in spread(list(range(len(stacks))), count)):
        job = as_the_job_sets_up(st.lr, st.valid, st.scale)
        with tempfile.TemporaryDirectory() as tmp:
            paths = write_stack(st.lr, st.valid, tmp)
            out = os.path.join(tmp, "model.pt")
            res = run_train_self_supervised([sources_from_inputs(paths)], TrainSettings(out, scale=st.scale, lr=lr,
                                                                                         steps=CHAIN_STEPS.default))
            tuned = load_model(out, st.scale)[0]
            base = stored.get(name) or bias_of(load_model(base_model_path(st.scale), st.scale)[0], st, job)
            row = {"stack": name, "frames_used": int(job.lr.shape[0]), "finetuned": bias_of(tuned, st, job),
                   "base": list(base), "best_step": res.get("best_step"),
                   "validation": [[h[0], h[2]] for h in res["history"]]}
        rows.append(row)
        print(name, {k: [round(v, 2) for v in row[k]] for k in ("finetuned", "base")}, "best step", row["best_step"],
              flush=True)
    for k in ("finetuned", "base"):
        print(k, "median bias", round(statistics.median(r[k][0] for r in rows), 2),
              "mean true gain over IBP", round(statistics.mean(r[k][1] for r in rows), 2))
    better = [r["finetuned"][1] - r["base"][1] for r in rows]
    print("fine-tuned - base true gain: mean", round(statistics.mean(better), 3), "better on",
          sum(b > 0 for b in better), "of", len(rows))
    print(save(f"probe_finetuned_bias_{tag}", {"kind": kind, "rows": rows, "steps": CHAIN_STEPS.default, "lr": lr}))


if __name__ == "__main__":
    args = sys.argv[1:] + ["selection", "10", "selection"][len(sys.argv) - 1:]
    main(args[0], int(args[1]), args[2], float(args[3]) if len(args) > 3 else None)
