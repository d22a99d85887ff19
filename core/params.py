"""The numeric settings of every job: default and accepted range, declared once.

The jobs check their arguments here before reading anything (so no out-of-range value reaches
torch or GDAL), the CLI takes its defaults from here, and the Processing algorithms their
defaults, minima and maxima. Torch- and GDAL-free: the CLI's ``--help`` and the QGIS parameter
definitions import it without the engine.

A setting may have a *special* value that means something else than a number (``tile`` 0: the
whole stack at once); None always means "the default" and is returned as the default.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .errors import ParameterError

SEED_MAX = 2**31 - 1


@dataclass(frozen=True)
class Setting:
    """One numeric setting of a job.

    ``minimum``/``maximum`` are inclusive unless ``open_minimum`` (then ``minimum < value``);
    ``special`` maps values accepted outside the range to what they mean (shown in messages)."""

    label: str  # how messages name it
    default: int | float | None
    minimum: int | float
    maximum: int | float | None = None
    integer: bool = True
    open_minimum: bool = False
    special: dict = field(default_factory=dict)
    odd: bool = False

    def describe(self) -> str:
        """The accepted values in words, e.g. 'an integer from 1 to 1000'."""
        kind = "an odd integer" if self.odd else "an integer" if self.integer else "a number"
        lo = f"above {self.minimum:g}" if self.open_minimum else f"from {self.minimum:g}"
        text = f"{kind} {lo}" + (f" to {self.maximum:g}" if self.maximum is not None else "")
        if self.open_minimum and self.maximum is not None:
            text = f"{kind} above {self.minimum:g} and up to {self.maximum:g}"
        for value, meaning in self.special.items():
            text += f", or {value:g} ({meaning})"
        return text

    def check(self, value):
        """``value`` as int/float if accepted (None: the default), else :class:`ParameterError`."""
        if value is None:
            return self.default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ParameterError(f"{self.label} must be {self.describe()}, got '{value}'") from None
        if not math.isfinite(value):
            raise ParameterError(f"{self.label} must be {self.describe()}, got {value}")
        if self.integer:
            if value != int(value):
                raise ParameterError(f"{self.label} must be {self.describe()}, got {value}")
            value = int(value)
        if value in self.special:
            return value
        low_ok = value > self.minimum if self.open_minimum else value >= self.minimum
        if not low_ok or (self.maximum is not None and value > self.maximum) or (self.odd and value % 2 == 0):
            raise ParameterError(f"{self.label} must be {self.describe()}, got {value:g}")
        return value


# super-resolution (run_superresolve)
# None: chosen per stack by held-out validation (baselines.choose_ibp_iterations)
IBP_ITERATIONS = Setting("IBP iterations", None, 1, 1000)
PSF_SIGMA = Setting("IBP PSF sigma (output pixels)", None, 0.0, 20.0, integer=False, open_minimum=True)
# below 32 LR px a tile is mostly the 39-px halo the network needs around it (a 1-px tile on a
# 61-px stack meant 3721 windows of 79 px: an apparent hang)
# 224 rather than 256: 256 is 4-5 % faster but its windows (tile + halo) are larger, and a 500-px raster then has no
# interior tile, so a 2000-px raster took 1.43 x its memory (BENCHMARKS.md, folded attention and trimmed halo)
TILE = Setting("tile size (input pixels)", 224, 32, 100_000, special={0: "the whole stack at once"})
# frames whose registration quality (registration.py) is below this are left out: on real dates they
# hold other land (BENCHMARKS.md: the real-date benchmark, 0.9 vs 0.7/0.8/0.95); 0 keeps every frame
REGISTRATION_QUALITY = Setting("minimum registration quality", 0.9, 0.0, 1.0, integer=False)
# 150 rather than the paper's 50: on the two selection sets +0.18 dB (x3 real dates) and +0.01 (x2 Romania), on the
# benchmarks +0.5 (static), +0.16 (real dates), +0.30 (Romania x2), for 2 to 3 x the TTF time (BENCHMARKS.md)
TTF_ITERATIONS = Setting("TTF iterations", 150, 1, 10_000)
TTF_LR = Setting("TTF learning rate", None, 0.0, 0.9, integer=False, open_minimum=True)
REFERENCE = Setting("reference frame", None, 0, 100_000)
# kernel estimation (run_estimate_kernels); None = the mode's default configuration
KERNEL_ITERATIONS = Setting("kernel estimation iterations", None, 1, 5000)
# the crop goes through the DIP generator's reflect padding (to a multiple of 8 HR px): 8 LR px
# is the smallest that works at every scale
KERNEL_CROP = Setting("kernel estimation crop (input pixels)", None, 8, 100_000, special={0: "the whole image"})
KERNEL_SIZE = Setting("kernel size (output pixels)", None, 3, 63, odd=True)
SEED = Setting("random seed", 0, 0, SEED_MAX)
# training (run_train_*)
STEPS = Setting("training steps", 500, 1, 10_000_000)
# None: TRAIN_LR_SCRATCH for a new network, TRAIN_LR_FINETUNE when fine-tuning a model, a resumed checkpoint's own.
# Fine-tuning a shipped base (trained down to 1e-5) at the from-scratch rate lost 0.13 / 0.15 dB against the base on the
# x3 / x2 selection stacks; a tenth of it lost less on both and gains as much (+0.6 dB) on the larger static stacks
# (BENCHMARKS.md, *fine-tuning on one stack*)
TRAIN_LR = Setting("training learning rate", None, 0.0, 0.1, integer=False, open_minimum=True)
TRAIN_LR_SCRATCH = 3e-4
TRAIN_LR_FINETUNE = 3e-5
PATCH = Setting("training patch size (input pixels / scale)", None, 2, 256, special={0: "automatic"})  # None (0 before): automatic
BATCH = Setting("batch size", 8, 1, 1024)
FRAMES = Setting("frames per sample", 9, 2, 64)
# the whole method in one job (run_chain): the demo's budget, about a minute on 2 cores
CHAIN_STEPS = Setting("fine-tuning steps", 300, 1, 10_000_000)
# training the kernel prior (train-fkp)
FKP_ITERATIONS = Setting("kernel prior training iterations", 4000, 1, 1_000_000)
# scoring (run_score)
MAX_SHIFT = Setting("maximum shift (pixels)", 3, 0, 20)
DATA_RANGE = Setting("data range", None, 0.0, None, integer=False, open_minimum=True)
