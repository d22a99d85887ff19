"""Command-line interface: the core jobs without QGIS, with a text progress bar.

    python -m stacksr classic --inputs a.tif b.tif c.tif --scale 3 --method ibp --output sr.tif
    python -m stacksr score --sr sr.tif --reference hr.tif

Errors end with exit status 2 and a one-line reason on stderr.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time

from .core import params as P
from .core.choices import (CLASSIC_METHOD_DEFAULT, DEVICE_DEFAULT, DEVICES, KERNEL_MODE_DEFAULT, KERNEL_MODES,
                           SR_METHOD_DEFAULT, SR_METHODS, TTF_FIT_DEFAULT, TTF_FIT_LABELS, TTF_FITS)
from .core.errors import StackSRError
from .core.params import Setting
from .core.progress import Cancelled, Monitor


class BarMonitor(Monitor):
    """Progress bar on stderr; Ctrl-C cancels through KeyboardInterrupt."""

    def __init__(self, stream=None, width: int = 30, quiet: bool = False):
        super().__init__()
        self.stream, self.width, self.quiet = stream or sys.stderr, width, quiet
        self._last = -1.0
        self._t0 = time.perf_counter()
        self._line_open = False  # a redrawn bar is on the terminal's current line
        self.cancel_requested = False

    def is_cancelled(self) -> bool:
        return self.cancel_requested

    def end_line(self) -> None:
        """Finish the bar's line so that a message starts on its own."""
        if self._line_open:
            self.stream.write("\n")
            self._line_open = False

    def _emit(self, fraction: float, message: str) -> None:
        # a terminal gets a redrawn bar; a log file gets one line per 10 %
        tty = self.stream.isatty()
        if self.quiet or (fraction - self._last < (0.01 if tty else 0.1) and fraction < 1.0):
            return
        self._last = fraction
        filled = int(round(self.width * fraction))
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.perf_counter() - self._t0
        end = "\n" if fraction >= 1.0 or not tty else ""
        self.stream.write(f"\r[{bar}] {100 * fraction:5.1f}% {elapsed:6.1f}s {message[:72]:<72}{end}")
        self.stream.flush()
        self._line_open = not end

    def info(self, message: str) -> None:
        if not self.quiet:
            self.end_line()
            self.stream.write(f"{message}\n")


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (exit 2), like every other error of the CLI."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message}\n")


def _number(g, flag: str, setting: Setting, text: str, **kw) -> None:
    """A numeric option whose default and range come from core.params (checked by the job)."""
    shown = {None: "automatic"}.get(setting.default, setting.default)
    g.add_argument(flag, type=int if setting.integer else float, default=None,
                   help=f"{text} ({setting.describe()}; default {shown})", **kw)


def _stack_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("input stack")
    g.add_argument("--inputs", nargs="+", metavar="RASTER", help="one single-band raster per date")
    g.add_argument("--multiband", metavar="RASTER", help="or one multiband raster whose bands are dates")
    g.add_argument("--bands", default="", help="bands of --multiband, e.g. '1,3,5-7' (default: all)")
    g.add_argument("--masks", nargs="+", metavar="RASTER", help="quality/cloud masks, one per image (or one multiband)")
    g.add_argument("--mask-invalid-values", default="2,3,4,255", help="mask values marking invalid pixels (default: fmask)")
    g.add_argument("--allow-ungeoreferenced", action="store_true",
                   help="accept rasters without georeferencing (outputs are then in pixel coordinates)")


def _sr_args(c: argparse.ArgumentParser, default_method: str) -> None:
    _stack_args(c)
    c.add_argument("--scale", type=int, default=3)
    c.add_argument("--method", choices=SR_METHODS, default=default_method, help=f"(default {default_method})")
    _number(c, "--ttf-iterations", P.TTF_ITERATIONS, "TTF iterations")
    c.add_argument("--ttf-per-tile", action="store_true", help="finetune on every tile separately (needs --tile)")
    _number(c, "--ttf-lr", P.TTF_LR, "TTF learning rate of the network tail (automatic: 1e-4)")
    _number(c, "--ttf-kernel-lr", P.TTF_LR, "TTF learning rate of the kernel latent (automatic: 2e-2)")
    c.add_argument("--ttf-fit", choices=TTF_FITS, default=TTF_FIT_DEFAULT,
                   help="what the finetuned output must explain: " + "; ".join(f"{k}: {v}" for k, v in TTF_FIT_LABELS.items()))
    c.add_argument("--kernel-output", default=None, help="write the TTF kernel layer here (piunet+ttf)")
    c.add_argument("--model", default=None, help="trained model (.pt) for the piunet methods (default: the shipped base model)")
    _number(c, "--tile", P.TILE, "PIUNet tile size in input pixels")
    c.add_argument("--uncertainty", default=None, help="also write PIUNet's uncertainty (std) raster here")
    c.add_argument("--device", choices=DEVICES, default=DEVICE_DEFAULT)
    _number(c, "--reference", P.REFERENCE, "0-based reference frame (automatic: the clearest; of equally clear ones, the most typical)")
    _number(c, "--iterations", P.IBP_ITERATIONS, "IBP iterations (automatic: chosen per stack by held-out validation)")
    _number(c, "--psf-sigma", P.PSF_SIGMA, "IBP Gaussian sigma in output pixels")
    c.add_argument("--kernel-bank", default=None,
                   help="IBP with each image's estimated kernel from this bank (.npz of the kernels command) instead of a Gaussian")
    c.add_argument("--no-register", action="store_true", help="skip sub-pixel registration (and use every frame)")
    _number(c, "--min-registration-quality", P.REGISTRATION_QUALITY,
            "frames whose registration quality is lower are left out (0: keep all)")
    c.add_argument("--report", default=None, help="HTML report of the run (settings, TTF loss and kernel, consistency)")
    c.add_argument("--output", required=True, help="GeoTIFF to write (.tif)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m stacksr", description="StackSR multi-temporal super-resolution")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    sub = parser.add_subparsers(dest="command", required=True)

    _sr_args(sub.add_parser("sr", help="super-resolve with PIUNet (+ TTF) or a classic method"), SR_METHOD_DEFAULT)
    # its own parser rather than an alias, so that its --help names it
    _sr_args(sub.add_parser("classic", help=f"the same as sr, {CLASSIC_METHOD_DEFAULT} by default"), CLASSIC_METHOD_DEFAULT)

    s = sub.add_parser("score", help="cPSNR / PSNR / SSIM against a reference raster")
    s.add_argument("--sr", required=True)
    s.add_argument("--reference", required=True)
    s.add_argument("--reference-mask", default=None)
    s.add_argument("--mask-invalid-values", default="2,3,4,255")
    _number(s, "--max-shift", P.MAX_SHIFT, "largest shift searched, also the border crop")
    _number(s, "--data-range", P.DATA_RANGE, "data range (automatic: from the reference's data type)")
    k = sub.add_parser("kernels", help="estimate one blur kernel per image (DIP-FKP) into a kernel bank")
    _stack_args(k)
    k.add_argument("--scale", type=int, default=3)
    k.add_argument("--mode", choices=KERNEL_MODES, default=KERNEL_MODE_DEFAULT)
    _number(k, "--iterations", P.KERNEL_ITERATIONS, "estimation iterations (automatic: the mode's)")
    _number(k, "--crop", P.KERNEL_CROP, "crop size used for estimation, in input pixels (automatic: 40)")
    k.add_argument("--prior", default=None, help="FKP prior file (default: models/fkp_x<scale>.pt)")
    k.add_argument("--device", choices=DEVICES, default=DEVICE_DEFAULT)
    _number(k, "--seed", P.SEED, "random seed")
    k.add_argument("--layers", default=None, help="folder for one GeoTIFF layer per kernel")
    k.add_argument("--report", default=None, help="HTML gallery of the kernels (a PNG mosaic is written beside it)")
    k.add_argument("--output", required=True, help="kernel bank file (.npz)")

    t = sub.add_parser("train", help="train PIUNet self-supervised on the stack with a kernel bank")
    _stack_args(t)
    t.add_argument("--kernel-bank", default=None, help="kernel bank (.npz); default: estimate one first (joint)")
    t.add_argument("--hr", default=None, help="HR reference raster: supervised training instead (no kernel bank)")
    t.add_argument("--scale", type=int, default=3)
    _number(t, "--steps", P.STEPS, "training steps")
    _number(t, "--patch", P.PATCH, "training patch size: each target is this size x the scale, in input pixels")
    _number(t, "--batch", P.BATCH, "batch size")
    _number(t, "--frames", P.FRAMES, "frames per sample")
    t.add_argument("--device", choices=DEVICES, default=DEVICE_DEFAULT)
    _number(t, "--seed", P.SEED, "random seed")
    t.add_argument("--resume", default=None, help="checkpoint (<model>.last) to resume from")
    t.add_argument("--init-model", default=None, help="model (.pt) to fine-tune (default: the shipped base model)")
    t.add_argument("--from-scratch", action="store_true", help="train a new network instead of fine-tuning the base model")
    t.add_argument("--report", default=None, help="HTML report of the run (loss curves, settings, kernel bank)")
    t.add_argument("--output", required=True, help="model file (.pt); <output>.last is the resumable checkpoint")

    ch = sub.add_parser("chain", help="the whole method: estimate kernels, fine-tune the base model, super-resolve "
                                             "(PIUNet + TTF or IBP, whichever validates best)")
    _stack_args(ch)
    ch.add_argument("--scale", type=int, default=3)
    _number(ch, "--steps", P.CHAIN_STEPS, "fine-tuning steps")
    ch.add_argument("--device", choices=DEVICES, default=DEVICE_DEFAULT)
    _number(ch, "--seed", P.SEED, "random seed")
    ch.add_argument("--work-folder", required=True, help="where the kernel bank and the model are kept")
    ch.add_argument("--uncertainty", default=None, help="also write PIUNet's uncertainty (std) raster here")
    ch.add_argument("--report", default=None, help="HTML report of the super-resolution")
    ch.add_argument("--output", required=True, help="GeoTIFF to write (.tif)")

    f = sub.add_parser("train-fkp", help="train the flow-based kernel prior shipped in models/")
    f.add_argument("--scale", type=int, required=True)
    _number(f, "--iterations", P.FKP_ITERATIONS, "training iterations")
    _number(f, "--seed", P.SEED, "random seed")
    f.add_argument("--output", required=True)
    return parser


def _json_safe(value):
    """Non-finite floats as null: JSON has no Infinity/NaN (a best validation loss before any validation)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _cancel_on_signals(monitor: "BarMonitor") -> dict:
    """SIGINT (Ctrl-C) and SIGTERM ask the job to stop at its next check, so it can clean up and
    training can save its resumable checkpoint; a second signal stops at once. Returns the
    handlers it replaced (to restore when main() is called from Python)."""
    def handler(signum, frame):  # noqa: ARG001 - signal's signature
        if monitor.cancel_requested:
            raise KeyboardInterrupt
        monitor.cancel_requested = True

    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # imported late so that --help works without torch
    from .core import jobs
    from .core.io.outputs import check_output_path
    from .core.io.stack_sources import parse_int_list, sources_from_inputs

    monitor = BarMonitor(quiet=args.quiet)
    previous = _cancel_on_signals(monitor)
    started = time.time()

    def sources():
        return sources_from_inputs(args.inputs, args.multiband, parse_int_list(args.bands), args.masks,
                                   allow_ungeoreferenced=args.allow_ungeoreferenced)

    try:
        invalid = parse_int_list(getattr(args, "mask_invalid_values", ""))
        if args.command in ("sr", "classic"):
            result = jobs.run_superresolve(
                sources(), args.output, scale=args.scale, method=args.method, reference=args.reference,
                iterations=args.iterations, psf_sigma=args.psf_sigma, kernel_bank=args.kernel_bank,
                register=not args.no_register,
                min_registration_quality=args.min_registration_quality,
                model_path=args.model, tile=args.tile, uncertainty_output=args.uncertainty, device=args.device,
                ttf_iterations=args.ttf_iterations, ttf_per_tile=args.ttf_per_tile,
                ttf_lr=args.ttf_lr, ttf_kernel_lr=args.ttf_kernel_lr, ttf_fit=args.ttf_fit, kernel_output=args.kernel_output,
                invalid_mask_values=invalid, report_html=args.report, monitor=monitor)
        elif args.command == "kernels":
            result = jobs.run_estimate_kernels(
                sources(), args.output, scale=args.scale, mode=args.mode, iterations=args.iterations, crop=args.crop,
                prior_path=args.prior, device=args.device, seed=args.seed, layers_folder=args.layers,
                report_html=args.report, invalid_mask_values=invalid, monitor=monitor)
        elif args.command == "train" and args.hr:
            result = jobs.run_train_supervised(
                sources(), args.hr, args.output, scale=args.scale, steps=args.steps, patch=args.patch, batch=args.batch,
                frames=args.frames, device=args.device, seed=args.seed, resume=args.resume,
                invalid_mask_values=invalid, monitor=monitor)
        elif args.command == "train":
            result = jobs.run_train_self_supervised(
                [sources()], args.kernel_bank, args.output, scale=args.scale, steps=args.steps, patch=args.patch,
                batch=args.batch, frames=args.frames, device=args.device, seed=args.seed, resume=args.resume,
                invalid_mask_values=invalid, report_html=args.report, monitor=monitor,
                from_base=not args.from_scratch, init_model=args.init_model)
        elif args.command == "chain":
            result = jobs.run_chain(
                sources(), args.output, args.work_folder, scale=args.scale, steps=args.steps, device=args.device,
                seed=args.seed, uncertainty_output=args.uncertainty, report_html=args.report,
                invalid_mask_values=invalid, monitor=monitor)
        elif args.command == "train-fkp":
            from .core.degradation.fkp import save_fkp, train_fkp

            check_output_path(args.output, [], (".pt",))
            flow, info = train_fkp(args.scale, iterations=args.iterations, seed=args.seed, monitor=monitor)
            info["command"] = (f"python -m stacksr train-fkp --scale {args.scale} --iterations {info['iterations']} "
                               f"--seed {info['seed']}")
            save_fkp(flow, args.output, info)
            result = {"output": args.output, **info}
        else:
            result = jobs.run_score(args.sr, args.reference, args.reference_mask, invalid,
                                    max_shift=args.max_shift, data_range=args.data_range)
    except (StackSRError, OSError, ArithmeticError) as exc:
        monitor.end_line()
        print(f"stacksr: error: {exc}", file=sys.stderr)
        return 2
    except (Cancelled, KeyboardInterrupt):
        monitor.end_line()
        last = f"{args.output}.last" if args.command == "train" else None
        if last and os.path.exists(last) and os.path.getmtime(last) >= started:
            print(f"stacksr: cancelled; resume with --resume {last}", file=sys.stderr)
        else:
            print("stacksr: cancelled, no output written", file=sys.stderr)
        return 130
    finally:
        from .core.distributed import shutdown

        shutdown()
        for sig, old in previous.items():
            signal.signal(sig, old)
    # one write of the whole line: under torchrun every process prints its summary into the same pipe, and
    # print's separate write of the newline let two summaries run into one line
    sys.stdout.write(json.dumps(_json_safe(result), allow_nan=False) + "\n")
    sys.stdout.flush()
    return 0
