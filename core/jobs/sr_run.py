"""What one super-resolution run works with (its checked settings and its decisions), and the frames it uses:
what the super-resolution job's modules share (:mod:`sr_job` fills them, :mod:`sr_choice` decides with them,
:mod:`sr_output` writes with them)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..choices import IBP_METHODS, NETWORK_METHODS, TTF_METHODS
from ..io.windows import StackStats, Subset
from ..learned.model_files import Calibration

if TYPE_CHECKING:
    from ..job_settings import SuperResolveSettings
    from ..classic.registration import Registration
    from ..learned.ttf_config import TTFConfig


@dataclass
class SRRun:
    """What one super-resolution run works with: its checked settings and what it decided from them (the method,
    ``auto``'s choice once validated; the device; IBP's iteration count; the model file; TTF's configuration)."""

    settings: "SuperResolveSettings"
    method: str
    device: torch.device
    iterations: int | None
    model_path: str | None
    ttf: "TTFConfig"
    calibration: Calibration = Calibration()  # what the model file states (model_files.Calibration), once loaded

    @property
    def learned(self) -> bool:
        """Whether the method runs the network ("blend" too: half of it is PIUNet + TTF)."""
        return self.method in NETWORK_METHODS

    @property
    def ttf_used(self) -> bool:
        return self.method in TTF_METHODS

    @property
    def ibp_used(self) -> bool:
        return self.method in IBP_METHODS

    # the settings the run's modules read, under the names they read them by
    scale = property(lambda self: self.settings.scale)
    psf_sigma = property(lambda self: self.settings.psf_sigma)
    kernel_bank = property(lambda self: self.settings.kernel_bank)
    register = property(lambda self: self.settings.register)
    min_quality = property(lambda self: self.settings.min_registration_quality)
    tile = property(lambda self: self.settings.tile)
    ttf_per_tile = property(lambda self: self.settings.ttf_per_tile)


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
