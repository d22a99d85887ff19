"""The checked settings of one super-resolution run, and the frames it uses: what the super-resolution job's
modules share (:mod:`sr_job` fills them, :mod:`sr_choice` decides with them, :mod:`sr_output` writes with them)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..io.windows import StackStats, Subset

if TYPE_CHECKING:
    from ..classic.registration import Registration
    from ..learned.ttf_config import TTFConfig


@dataclass
class SRSettings:
    """The checked settings of one super-resolution run."""

    method: str
    scale: int
    device: torch.device
    iterations: int | None
    psf_sigma: float | None
    kernel_bank: str | None
    register: bool
    min_quality: float
    model_path: str | None
    tile: int
    ttf: "TTFConfig"
    ttf_per_tile: bool

    @property
    def learned(self) -> bool:
        return self.method.startswith("piunet")


@dataclass
class SelectedFrames:
    """The frames a run uses (a source of :mod:`windows` with their statistics; the reference at
    ``ref``), their shifts and kernels, the window it registers, calibrates and reports on, and the
    registration of every frame read (None without registration)."""

    source: Subset
    stats: StackStats
    ref: int
    reference_name: str
    shifts: torch.Tensor | None
    kernels: torch.Tensor | None
    registration: "Registration | None"
    used: torch.Tensor
    window: tuple[slice, slice]
