"""Command-line interface: the core jobs without QGIS, with a text progress bar.

    python -m stacksr classic --inputs a.tif b.tif c.tif --scale 3 --method ibp --output sr.tif
    python -m stacksr score --sr sr.tif --reference hr.tif

Errors end with exit status 2 and a one-line reason on stderr.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from .core.choices import TTF_FIT_LABELS, TTF_FITS
from .core.progress import Cancelled, Monitor


class BarMonitor(Monitor):
    """Progress bar on stderr; Ctrl-C cancels through KeyboardInterrupt."""

    def __init__(self, stream=sys.stderr, width: int = 30, quiet: bool = False):
        super().__init__()
        self.stream, self.width, self.quiet = stream, width, quiet
        self._last = -1.0
        self._t0 = time.perf_counter()

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
        self.stream.write(f"\r[{bar}] {100 * fraction:5.1f}% {elapsed:6.1f}s {message[:50]:<50}{end}")
        self.stream.flush()

    def info(self, message: str) -> None:
        if not self.quiet:
            self.stream.write(f"\n{message}\n")


def _stack_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("input stack")
    g.add_argument("--inputs", nargs="+", metavar="RASTER", help="one single-band raster per date")
    g.add_argument("--multiband", metavar="RASTER", help="or one multiband raster whose bands are dates")
    g.add_argument("--bands", default="", help="bands of --multiband, e.g. '1,3,5-7' (default: all)")
    g.add_argument("--masks", nargs="+", metavar="RASTER", help="quality/cloud masks, one per image (or one multiband)")
    g.add_argument("--mask-invalid-values", default="2,3,4,255", help="mask values marking invalid pixels (default: fmask)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stacksr", description="StackSR multi-temporal super-resolution")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser("sr", aliases=["classic"], help="super-resolve with mean-of-bicubic, IBP or a trained PIUNet")
    _stack_args(c)
    c.add_argument("--scale", type=int, default=3)
    c.add_argument("--method", choices=["bicubic", "ibp", "piunet", "piunet+ttf"], default="ibp")
    c.add_argument("--ttf-iterations", type=int, default=50)
    c.add_argument("--ttf-per-tile", action="store_true", help="finetune on every tile separately (needs --tile)")
    c.add_argument("--ttf-lr", type=float, default=None, help="TTF learning rate of the network tail (default 1e-4)")
    c.add_argument("--ttf-kernel-lr", type=float, default=None, help="TTF learning rate of the kernel latent (default 2e-2)")
    c.add_argument("--ttf-fit", choices=TTF_FITS, default=TTF_FITS[0],
                   help="what the finetuned output must explain: " + "; ".join(f"{k}: {v}" for k, v in TTF_FIT_LABELS.items()))
    c.add_argument("--kernel-output", default=None, help="write the TTF kernel layer here (piunet+ttf)")
    c.add_argument("--model", default=None, help="trained model (.pt) for the piunet methods (default: the shipped base model)")
    c.add_argument("--tile", type=int, default=0, help="PIUNet tile size in LR pixels (0: whole stack)")
    c.add_argument("--uncertainty", default=None, help="also write PIUNet's uncertainty (std) raster here")
    c.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    c.add_argument("--reference", type=int, default=None, help="0-based reference frame (default: clearest)")
    c.add_argument("--iterations", type=int, default=40)
    c.add_argument("--psf-sigma", type=float, default=None, help="IBP Gaussian sigma in output pixels")
    c.add_argument("--no-register", action="store_true", help="skip sub-pixel registration")
    c.add_argument("--report", default=None, help="HTML report of the run (settings, TTF loss and kernel, consistency)")
    c.add_argument("--output", required=True)

    s = sub.add_parser("score", help="cPSNR / PSNR / SSIM against a reference raster")
    s.add_argument("--sr", required=True)
    s.add_argument("--reference", required=True)
    s.add_argument("--reference-mask", default=None)
    s.add_argument("--mask-invalid-values", default="2,3,4,255")
    s.add_argument("--max-shift", type=int, default=3)
    s.add_argument("--data-range", type=float, default=None)
    k = sub.add_parser("kernels", help="estimate one blur kernel per image (DIP-FKP) into a kernel bank")
    _stack_args(k)
    k.add_argument("--scale", type=int, default=3)
    k.add_argument("--mode", choices=["per-image", "joint"], default="joint")
    k.add_argument("--iterations", type=int, default=None)
    k.add_argument("--crop", type=int, default=None, help="LR crop size used for estimation (0: whole image)")
    k.add_argument("--prior", default=None, help="FKP prior file (default: models/fkp_x<scale>.pt)")
    k.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    k.add_argument("--seed", type=int, default=0)
    k.add_argument("--layers", default=None, help="folder for one GeoTIFF layer per kernel")
    k.add_argument("--report", default=None, help="HTML gallery of the kernels (a PNG mosaic is written beside it)")
    k.add_argument("--output", required=True, help="kernel bank file (.npz)")

    t = sub.add_parser("train", help="train PIUNet self-supervised on the stack with a kernel bank")
    _stack_args(t)
    t.add_argument("--kernel-bank", default=None, help="kernel bank (.npz); default: estimate one first (joint)")
    t.add_argument("--hr", default=None, help="HR reference raster: supervised training instead (no kernel bank)")
    t.add_argument("--scale", type=int, default=3)
    t.add_argument("--steps", type=int, default=500)
    t.add_argument("--patch", type=int, default=0, help="CR patch size (LR targets are scale x larger; 0: auto)")
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--frames", type=int, default=9)
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--resume", default=None, help="checkpoint (<model>.last) to resume from")
    t.add_argument("--init-model", default=None, help="model (.pt) to fine-tune (default: the shipped base model)")
    t.add_argument("--from-scratch", action="store_true", help="train a new network instead of fine-tuning the base model")
    t.add_argument("--report", default=None, help="HTML report of the run (loss curves, settings, kernel bank)")
    t.add_argument("--output", required=True, help="model file (.pt); <output>.last is the resumable checkpoint")

    f = sub.add_parser("train-fkp", help="train the flow-based kernel prior shipped in models/")
    f.add_argument("--scale", type=int, required=True)
    f.add_argument("--iterations", type=int, default=4000)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--output", required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # imported late so that --help works without torch
    from .core import jobs
    from .core.stack_io import StackError, parse_int_list, sources_from_inputs

    monitor = BarMonitor(quiet=args.quiet)
    try:
        invalid = parse_int_list(getattr(args, "mask_invalid_values", ""))
        if args.command in ("sr", "classic"):
            sources = sources_from_inputs(args.inputs, args.multiband, parse_int_list(args.bands), args.masks)
            result = jobs.run_superresolve(
                sources, args.output, scale=args.scale, method=args.method, reference=args.reference,
                iterations=args.iterations, psf_sigma=args.psf_sigma, register=not args.no_register,
                model_path=args.model, tile=args.tile, uncertainty_output=args.uncertainty, device=args.device,
                ttf_iterations=args.ttf_iterations, ttf_per_tile=args.ttf_per_tile,
                ttf_lr=args.ttf_lr, ttf_kernel_lr=args.ttf_kernel_lr, ttf_fit=args.ttf_fit, kernel_output=args.kernel_output,
                invalid_mask_values=invalid, report_html=args.report, monitor=monitor)
        elif args.command == "kernels":
            sources = sources_from_inputs(args.inputs, args.multiband, parse_int_list(args.bands), args.masks)
            result = jobs.run_estimate_kernels(
                sources, args.output, scale=args.scale, mode=args.mode, iterations=args.iterations, crop=args.crop,
                prior_path=args.prior, device=args.device, seed=args.seed, layers_folder=args.layers,
                report_html=args.report, invalid_mask_values=invalid, monitor=monitor)
        elif args.command == "train" and args.hr:
            sources = sources_from_inputs(args.inputs, args.multiband, parse_int_list(args.bands), args.masks)
            result = jobs.run_train_supervised(
                sources, args.hr, args.output, scale=args.scale, steps=args.steps, patch=args.patch, batch=args.batch,
                frames=args.frames, device=args.device, seed=args.seed, resume=args.resume,
                invalid_mask_values=invalid, monitor=monitor)
        elif args.command == "train":
            sources = sources_from_inputs(args.inputs, args.multiband, parse_int_list(args.bands), args.masks)
            result = jobs.run_train_self_supervised(
                [sources], args.kernel_bank, args.output, scale=args.scale, steps=args.steps, patch=args.patch,
                batch=args.batch, frames=args.frames, device=args.device, seed=args.seed, resume=args.resume,
                invalid_mask_values=invalid, report_html=args.report, monitor=monitor,
                from_base=not args.from_scratch, init_model=args.init_model)
        elif args.command == "train-fkp":
            from .core.fkp import save_fkp, train_fkp

            flow, info = train_fkp(args.scale, iterations=args.iterations, seed=args.seed, monitor=monitor)
            info["command"] = f"python -m stacksr train-fkp --scale {args.scale} --iterations {args.iterations} --seed {args.seed}"
            save_fkp(flow, args.output, info)
            result = {"output": args.output, **info}
        else:
            result = jobs.run_score(args.sr, args.reference, args.reference_mask, invalid,
                                    max_shift=args.max_shift, data_range=args.data_range)
    except (StackError, ValueError, OSError, ArithmeticError) as exc:
        print(f"\nstacksr: error: {exc}", file=sys.stderr)
        return 2
    except (Cancelled, KeyboardInterrupt):
        print("\nstacksr: cancelled, no output written", file=sys.stderr)
        return 130
    finally:
        from .core.distributed import shutdown

        shutdown()
    print(json.dumps(result))
    return 0
