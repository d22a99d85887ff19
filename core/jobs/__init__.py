"""The jobs (read -> compute -> write) that the CLI and the QGIS provider run, one module each.

Each job checks its inputs and settings before any heavy work, writes its outputs atomically
and returns a plain dict summary (JSON-ready).
"""
from __future__ import annotations

from .chain_job import run_chain
from .kernel_job import run_estimate_kernels
from .score_job import run_score
from .sr_job import run_superresolve
from .train_job import run_train_self_supervised, run_train_supervised

__all__ = ["run_chain", "run_estimate_kernels", "run_score", "run_superresolve", "run_train_self_supervised", "run_train_supervised"]
