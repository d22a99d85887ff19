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
from dataclasses import MISSING, fields

from .core import params as P
from .core.choices import CLASSIC_METHOD_DEFAULT, SR_METHOD_DEFAULT
from .core.errors import StackSRError
from .core.job_settings import (ChainSettings, JobSettings, KernelSettings, ScoreSettings, SuperResolveSettings,
                                TrainSettings)
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
    g.add_argument("--allow-ungeoreferenced", action="store_true",
                   help="accept rasters without georeferencing (outputs are then in pixel coordinates)")


def _settings_args(p: argparse.ArgumentParser, cls: type[JobSettings], **defaults) -> None:
    """One option per field of a job's settings class (:mod:`core.job_settings`), under the field's name; the
    class's help, choices and ranges, and ``defaults`` where this command's differ."""
    for f in fields(cls):
        meta = f.metadata
        flag = meta.get("cli", "--" + f.name.replace("_", "-"))
        if flag is None:
            continue
        text = meta.get("help", "")
        default = defaults.get(f.name, f.default)
        named = {"dest": f.name, "metavar": flag.lstrip("-").upper().replace("-", "_")}
        if "setting" in meta:
            _number(p, flag, meta["setting"], text, **named)
        elif "choices" in meta:
            p.add_argument(flag, dest=f.name, choices=meta["choices"], default=default,
                           help=f"{text} (default {default})")
        elif meta.get("flag"):
            p.add_argument(flag, dest=f.name, action="store_false" if default else "store_true", help=text)
        elif meta.get("values"):
            shown = ",".join(map(str, default))
            p.add_argument(flag, default=shown, help=f"{text} (default {shown})", **named)
        elif default is MISSING:
            p.add_argument(flag, required=True, help=text, **named)
        else:
            p.add_argument(flag, type=type(default) if default is not None else None, default=default, help=text,
                           **named)


def _settings_from(cls: type[JobSettings], args: argparse.Namespace):
    """The job's settings object from the parsed options (:func:`_settings_args`)."""
    from .core.io.stack_sources import parse_int_list

    values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
    if "invalid_mask_values" in values:
        values["invalid_mask_values"] = tuple(parse_int_list(values["invalid_mask_values"]))
    return cls(**values)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m stacksr", description="StackSR multi-temporal super-resolution")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    sub = parser.add_subparsers(dest="command", required=True)

    for name, default, text in (("sr", SR_METHOD_DEFAULT, "super-resolve with PIUNet (+ TTF) or a classic method"),
                                # its own parser rather than an alias, so that its --help names it
                                ("classic", CLASSIC_METHOD_DEFAULT, f"the same as sr, {CLASSIC_METHOD_DEFAULT} by default")):
        c = sub.add_parser(name, help=text)
        _stack_args(c)
        _settings_args(c, SuperResolveSettings, method=default)
    _settings_args(sub.add_parser("score", help="cPSNR / PSNR / SSIM against a reference raster"), ScoreSettings)
    k = sub.add_parser("kernels", help="estimate one blur kernel per image (DIP-FKP) into a kernel bank")
    _stack_args(k)
    _settings_args(k, KernelSettings)
    t = sub.add_parser("train", help="train PIUNet self-supervised on the stack with a kernel bank")
    _stack_args(t)
    _settings_args(t, TrainSettings)
    ch = sub.add_parser("chain", help="the whole method: estimate kernels, fine-tune the base model, super-resolve "
                                      "(PIUNet + TTF or IBP, whichever validates best)")
    _stack_args(ch)
    _settings_args(ch, ChainSettings)

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
        if args.command in ("sr", "classic"):
            result = jobs.run_superresolve(sources(), _settings_from(SuperResolveSettings, args), monitor)
        elif args.command == "kernels":
            result = jobs.run_estimate_kernels(sources(), _settings_from(KernelSettings, args), monitor)
        elif args.command == "train" and args.hr:
            result = jobs.run_train_supervised(sources(), _settings_from(TrainSettings, args), monitor)
        elif args.command == "train":
            result = jobs.run_train_self_supervised([sources()], _settings_from(TrainSettings, args), monitor)
        elif args.command == "chain":
            result = jobs.run_chain(sources(), _settings_from(ChainSettings, args), monitor)
        elif args.command == "train-fkp":
            from .core.degradation.fkp import save_fkp, train_fkp

            check_output_path(args.output, [], (".pt",))
            flow, info = train_fkp(args.scale, iterations=args.iterations, seed=args.seed, monitor=monitor)
            info["command"] = (f"python -m stacksr train-fkp --scale {args.scale} --iterations {info['iterations']} "
                               f"--seed {info['seed']}")
            save_fkp(flow, args.output, info)
            result = {"output": args.output, **info}
        else:
            result = jobs.run_score(_settings_from(ScoreSettings, args))
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
