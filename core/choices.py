"""User-facing choices that the CLI and the Processing algorithms list without importing torch.

Each is defined here once, default first; the core modules that act on them import them from here.
"""
from __future__ import annotations

TTF_FIT_LABELS = {  # what test-time finetuning makes the output explain (ttf.TTFConfig.fit)
    "stack": "every frame (each moved by its registration, with its own kernel)",
    "reference": "the reference frame only (as published)",
}
TTF_FITS = tuple(TTF_FIT_LABELS)
