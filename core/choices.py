"""User-facing choices that the CLI and the Processing algorithms list without importing torch.

Each is defined here once, in the order the QGIS dialogs show it (saved graphical models and
scripts refer to choices by position), with its default; the core modules that act on them, the
CLI and the algorithms import them from here (a test checks that they offer exactly these).
"""
from __future__ import annotations

SR_METHOD_LABELS = {  # the Super-resolve algorithm's methods
    "piunet+ttf": "PIUNet + test-time finetuning",
    "piunet": "PIUNet (trained model)",
    "ibp": "IBP (classic)",
    "bicubic": "Mean of bicubic (classic)",
    # appended, not inserted: saved models and scripts refer to the methods by position
    "auto": "Automatic (the best for this stack, by validation)",
    "bicubic-ref": "Bicubic of the reference date alone (classic)",
    "blend": "Weighted mean of IBP and PIUNet + test-time finetuning",
}
SR_METHODS = tuple(SR_METHOD_LABELS)
SR_METHOD_DEFAULT = "auto"  # the best method for each stack by held-out validation (CLI `sr`, QGIS Super-resolve)
# what each method runs, from which the jobs and the algorithms decide models, outputs and settings ("auto" may end
# with any method, so it needs what each of them needs)
NETWORK_METHODS = ("piunet", "piunet+ttf", "blend")  # a model file; the uncertainty raster
TTF_METHODS = ("piunet+ttf", "blend")  # the kernel prior; the TTF kernel layer
IBP_METHODS = ("ibp", "blend")  # IBP's iteration count, robust fusion, the kernel bank

CLASSIC_METHOD_LABELS = {"bicubic": "Mean of bicubic", "ibp": "Iterative back-projection (IBP)"}
CLASSIC_METHODS = tuple(CLASSIC_METHOD_LABELS)
CLASSIC_METHOD_DEFAULT = "ibp"  # CLI `classic`, QGIS Super-resolve (classic)

KERNEL_MODE_LABELS = {
    "per-image": "Per image (DIP-FKP, as in the paper)",
    "joint": "Joint over the stack (faster, more accurate)",
}
KERNEL_MODES = tuple(KERNEL_MODE_LABELS)
KERNEL_MODE_DEFAULT = "joint"

DEVICES = ("auto", "cpu", "cuda")  # auto: the GPU when there is one
DEVICE_DEFAULT = "auto"

TTF_FIT_LABELS = {  # what test-time finetuning makes the output explain (ttf.TTFConfig.fit)
    "stack": "every frame, each with its registration and kernel",
    "reference": "the reference frame only (as published)",
}
TTF_FITS = tuple(TTF_FIT_LABELS)
TTF_FIT_DEFAULT = "stack"

# mask values that mark a pixel invalid (Landsat Fmask: 0 clear land, 1 water, 2 cloud shadow, 3 snow, 4 cloud,
# 255 fill): the jobs', the CLI's and the dialogs' default
FMASK_INVALID_VALUES = (2, 3, 4, 255)
