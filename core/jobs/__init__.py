"""The jobs (read -> compute -> write) that the CLI and the QGIS provider run, one module each.

Each job takes its inputs and one settings object (:mod:`core.job_settings`), checks them before any heavy
work, writes its outputs atomically and returns a plain dict summary (JSON-ready).
"""
from __future__ import annotations

from ..job_settings import ChainSettings, KernelSettings, ScoreSettings, SuperResolveSettings, TrainSettings
from .chain_job import run_chain
from .kernel_job import run_estimate_kernels
from .score_job import run_score
from .sr_job import run_superresolve
from .train_job import run_train_self_supervised, run_train_supervised

__all__ = ["ChainSettings", "KernelSettings", "ScoreSettings", "SuperResolveSettings", "TrainSettings", "run_chain",
           "run_estimate_kernels", "run_score", "run_superresolve", "run_train_self_supervised", "run_train_supervised"]
