"""One settings object per job: every choice a user makes, with its default, its accepted values and its help,
declared once.

The CLI builds its options from these classes and fills them from its arguments, the Processing algorithms and
the chain fill them from their parameters, and each job takes one of them, checks it (:meth:`JobSettings.checked`)
before reading anything and records it whole in its outputs (:meth:`JobSettings.record`). Adding a setting
touches its class here and the places that show it (a QGIS parameter, the job that acts on it); the CLI option
follows from the field. Numeric ranges and defaults come from :mod:`params`, the lists of choices from
:mod:`choices`. Torch- and GDAL-free: the CLI's ``--help`` imports it without the engine.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Sequence

from . import params as P
from .choices import (DEVICE_DEFAULT, DEVICES, FMASK_INVALID_VALUES, KERNEL_MODE_DEFAULT, KERNEL_MODES,
                      SR_METHOD_DEFAULT, SR_METHODS, TTF_FIT_DEFAULT, TTF_FIT_LABELS, TTF_FITS)
from .errors import ParameterError


def number(setting: P.Setting, help: str, **extra):
    """A numeric setting of :mod:`params` (None: its default)."""
    return field(default=None, metadata={"setting": setting, "help": help, **extra})


def choice(options: Sequence[str], default: str, label: str, help: str, **extra):
    """One of ``options``."""
    return field(default=default, metadata={"choices": tuple(options), "label": label, "help": help, **extra})


def path(help: str, required: bool = False, **extra):
    """A file or folder (``output=True``: one the job writes), None when not given unless ``required``."""
    metadata = {"path": True, "help": help, **extra}
    return field(metadata=metadata) if required else field(default=None, metadata=metadata)


def flag(default: bool, help: str, **extra):
    return field(default=default, metadata={"flag": True, "help": help, **extra})


def _invalid_values():
    return field(default=FMASK_INVALID_VALUES, metadata={
        "help": "mask values marking invalid pixels", "cli": "--mask-invalid-values", "values": True})


def _device():
    return choice(DEVICES, DEVICE_DEFAULT, "device", "auto: the GPU when there is one")


@dataclass
class JobSettings:
    """What every job's settings can do."""

    def checked(self):
        """A copy with every numeric setting checked against its range, every choice checked, and those left None
        at their default (:class:`errors.ParameterError` naming the first that is not accepted)."""
        changes = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if "setting" in f.metadata:
                changes[f.name] = f.metadata["setting"].check(value)
            elif "choices" in f.metadata and value is None:
                changes[f.name] = f.default
            elif "choices" in f.metadata and value not in f.metadata["choices"]:
                raise ParameterError(f"{f.metadata['label']} must be one of {f.metadata['choices']}, got '{value}'")
        return replace(self, **changes)

    def record(self) -> dict:
        """Every setting, JSON-ready, for an output's metadata and report; files by their name only (the
        metadata travels with the output, the folders it was made in do not)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("path") and value:
                value = os.path.basename(os.path.normpath(str(value)))
            elif isinstance(value, (tuple, list)):
                value = list(value)
            out[f.name] = value
        return out

    def report_row(self) -> tuple[str, str]:
        """The settings as a report row: every one, ``name=value``, "automatic" where left to the job."""
        return "settings", ", ".join(f"{k}={'automatic' if v is None else v}" for k, v in self.record().items())


@dataclass
class SuperResolveSettings(JobSettings):
    """Super-resolution (:func:`jobs.sr_job.run_superresolve`)."""

    output: str = path("GeoTIFF to write (.tif)", output=True, required=True)
    scale: int = field(default=3, metadata={"help": "super-resolution factor (2, 3 or 4)"})
    method: str = choice(SR_METHODS, SR_METHOD_DEFAULT, "method",
                         "auto: the method that validates best on this stack")
    reference: int | None = number(P.REFERENCE, "0-based reference frame (automatic: the clearest; of equally "
                                   "clear ones, the most typical)")
    iterations: int | None = number(P.IBP_ITERATIONS, "IBP iterations (automatic: chosen per stack by held-out "
                                    "validation)")
    psf_sigma: float | None = number(P.PSF_SIGMA, "IBP Gaussian sigma in output pixels")
    kernel_bank: str | None = path("IBP with each image's estimated kernel from this bank (.npz of the kernels "
                                   "command) instead of a Gaussian")
    register: bool = flag(True, "skip sub-pixel registration (and use every frame)", cli="--no-register")
    min_registration_quality: float | None = number(
        P.REGISTRATION_QUALITY, "frames whose registration quality is lower are left out (0: keep all)")
    model_path: str | None = path("trained model (.pt) for the piunet methods and the blend (default: the shipped base model)",
                                  cli="--model")
    tile: int | None = number(P.TILE, "PIUNet tile size in input pixels")
    uncertainty_output: str | None = path("also write PIUNet's uncertainty (std) raster here", output=True,
                                          cli="--uncertainty")
    ttf_iterations: int | None = number(P.TTF_ITERATIONS, "TTF iterations")
    ttf_per_tile: bool = flag(False, "finetune on every tile separately (needs --tile)")
    ttf_lr: float | None = number(P.TTF_LR, "TTF learning rate of the network tail (automatic: 1e-4)")
    ttf_kernel_lr: float | None = number(P.TTF_LR, "TTF learning rate of the kernel latent (automatic: 2e-2)")
    ttf_fit: str = choice(TTF_FITS, TTF_FIT_DEFAULT, "TTF fit", "what the finetuned output must explain: "
                          + "; ".join(f"{k}: {v}" for k, v in TTF_FIT_LABELS.items()))
    kernel_output: str | None = path("write the TTF kernel layer here (piunet+ttf, blend)", output=True)
    device: str = _device()
    invalid_mask_values: Sequence[int] = _invalid_values()
    report_html: str | None = path("HTML report of the run (settings, TTF loss and kernel, consistency)",
                                   output=True, cli="--report")


@dataclass
class KernelSettings(JobSettings):
    """Kernel estimation (:func:`jobs.kernel_job.run_estimate_kernels`)."""

    output: str = path("kernel bank file (.npz)", output=True, required=True)
    scale: int = field(default=3, metadata={"help": "super-resolution factor (2, 3 or 4)"})
    mode: str = choice(KERNEL_MODES, KERNEL_MODE_DEFAULT, "mode", "per-image as published, or joint over the stack")
    iterations: int | None = number(P.KERNEL_ITERATIONS, "estimation iterations (automatic: the mode's)")
    crop: int | None = number(P.KERNEL_CROP, "crop size used for estimation, in input pixels (automatic: 40)")
    kernel_size: int | None = number(P.KERNEL_SIZE, "kernel size in output pixels (automatic: the scale's)")
    prior_path: str | None = path("FKP prior file (default: models/fkp_x<scale>.pt)", cli="--prior")
    device: str = _device()
    seed: int | None = number(P.SEED, "random seed")
    layers_folder: str | None = path("folder for one GeoTIFF layer per kernel", output=True, cli="--layers")
    report_html: str | None = path("HTML gallery of the kernels (a PNG mosaic is written beside it)", output=True,
                                   cli="--report")
    invalid_mask_values: Sequence[int] = _invalid_values()


@dataclass
class TrainSettings(JobSettings):
    """Training (:func:`jobs.train_job.run_train_self_supervised`, or with ``hr`` the supervised
    :func:`jobs.train_job.run_train_supervised`)."""

    output: str = path("model file (.pt); <output>.last is the resumable checkpoint", output=True, required=True)
    kernel_bank: str | None = path("kernel bank (.npz); default: estimate one first (joint)")
    scale: int = field(default=3, metadata={"help": "super-resolution factor (2, 3 or 4)"})
    steps: int | None = number(P.STEPS, "training steps")
    lr: float | None = number(P.TRAIN_LR, f"learning rate (default: {P.TRAIN_LR_FINETUNE:g} when fine-tuning, "
                                                   f"{P.TRAIN_LR_SCRATCH:g} from scratch, a resumed checkpoint's own)")
    patch: int | None = number(P.PATCH, "training patch size: each target is this size x the scale, in input pixels")
    batch: int | None = number(P.BATCH, "batch size")
    frames: int | None = number(P.FRAMES, "frames per sample")
    device: str = _device()
    seed: int | None = number(P.SEED, "random seed")
    resume: str | None = path("checkpoint (<model>.last) to resume from")
    invalid_mask_values: Sequence[int] = _invalid_values()
    report_html: str | None = path("HTML report of the run (loss curves, settings, kernel bank)", output=True,
                                   cli="--report")
    from_base: bool = flag(True, "train a new network instead of fine-tuning the base model", cli="--from-scratch")
    init_model: str | None = path("model (.pt) to fine-tune (default: the shipped base model)")
    hr: str | None = path("HR reference raster: supervised training instead (no kernel bank)")


@dataclass
class ChainSettings(JobSettings):
    """The whole method in one job (:func:`jobs.chain_job.run_chain`)."""

    output: str = path("GeoTIFF to write (.tif)", output=True, required=True)
    work_folder: str = path("where the kernel bank and the model are kept", required=True)
    scale: int = field(default=3, metadata={"help": "super-resolution factor (2, 3 or 4)"})
    steps: int | None = number(P.CHAIN_STEPS, "fine-tuning steps")
    device: str = _device()
    seed: int | None = number(P.SEED, "random seed")
    uncertainty_output: str | None = path("also write PIUNet's uncertainty (std) raster here", output=True,
                                          cli="--uncertainty")
    report_html: str | None = path("HTML report of the super-resolution", output=True, cli="--report")
    invalid_mask_values: Sequence[int] = _invalid_values()


@dataclass
class ScoreSettings(JobSettings):
    """Scoring (:func:`jobs.score_job.run_score`)."""

    sr_path: str = path("super-resolved raster", cli="--sr", required=True)
    reference_path: str = path("reference (truth) raster", cli="--reference", required=True)
    reference_mask: str | None = path("quality mask of the reference")
    invalid_mask_values: Sequence[int] = _invalid_values()
    max_shift: int | None = number(P.MAX_SHIFT, "largest shift searched, also the border crop")
    data_range: float | None = number(P.DATA_RANGE, "data range (automatic: from the reference's data type)")
    sr_band: int = field(default=1, metadata={"help": "band of the super-resolved raster", "cli": None})
    reference_band: int = field(default=1, metadata={"help": "band of the reference raster", "cli": None})
