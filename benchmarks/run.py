"""The benchmark harness: named suites over named methods, one results file and one BENCHMARKS.md section per run.

Suites (each module's ``suite(names, opts)``, which returns its rows and its markdown table):
- ``static``, ``realdates``, ``realsensor`` (Deimos-2 x3 and Romania x2), ``selection``, ``selection-realdates``,
  ``selection-static``, ``selection-wide`` and ``selection-single`` (not benchmarks: other Romania x2 dates, other
  truth dates of the Sentinel-2 series at x3, stacks cut from one image of those dates, every remaining Romania
  truth date, the two real selection sets' reference dates alone; for choosing checkpoints and settings): every method as the super-resolution job runs it by default,
  cPSNR against the truth, texture, and ``auto``'s validation and choice (:mod:`quality`);
- ``classic``: the classic methods on the static stacks, with the oracle (:mod:`bench_classic`);
- ``kernels``: kernel estimation against the known kernels, with the plain DIP-FKP reference (:mod:`bench_kernels`);
- ``speed``, ``memory``: IBP and PIUNet through the CLI on large stacks, time per input pixel and peak memory,
  and one IBP tile against its plain reference implementation (:mod:`bench_ibp_scale`; one set of runs
  measures both).

``--methods`` names the quality suites' methods (bicubic-ref, bicubic, ibp, piunet, piunet+ttf, auto; default
all); ``--model`` the network ('base': the shipped model of each scale). Results go to
``benchmarks/results/run_<tag>.json``; ``--record`` appends the run's tables to BENCHMARKS.md, with the date,
the machine, the commit and the command. Never time two torch jobs at once on a 2-core machine.

    PYTHONPATH=.build/pkg .venv/bin/python benchmarks/run.py --suites static,realdates,realsensor --record
    make bench          # every suite, recorded
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time

from common import machine, save

HERE = os.path.dirname(os.path.abspath(__file__))
QUALITY = ("static", "realdates", "realsensor", "selection", "selection-realdates", "selection-static", "selection-wide",
           "selection-single")
SUITES = {**{k: "quality" for k in QUALITY}, "classic": "bench_classic", "kernels": "bench_kernels",
          "speed": "bench_ibp_scale", "memory": "bench_ibp_scale"}
DEFAULT_SUITES = ("static", "realdates", "realsensor", "classic", "kernels", "speed", "memory")
TITLES = {"quality": "Every method on the three kinds of stack, and `auto`", "bench_classic": "Classic methods, "
          "static stacks", "bench_kernels": "Kernel estimation", "bench_ibp_scale": "Speed and memory at scale"}


def commit() -> str:
    try:
        out = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", HERE, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suites", default=",".join(DEFAULT_SUITES), help=f"comma-separated, of {', '.join(SUITES)}")
    ap.add_argument("--methods", default="", help="the quality suites' methods (default: all, with auto)")
    ap.add_argument("--ttf-iterations", type=int, default=None, help="the quality suites' TTF length (default: the job's)")
    ap.add_argument("--model", default="base", help="'base' (the shipped model of each scale), 'none', or a file")
    ap.add_argument("--sizes", type=int, nargs="*", default=[512, 2048], help="speed/memory: stack sides (input px)")
    ap.add_argument("--tag", default=time.strftime("%Y%m%d_%H%M"))
    ap.add_argument("--record", action="store_true", help="append the run's tables to BENCHMARKS.md")
    ap.add_argument("--note", default="", help="a line for BENCHMARKS.md (e.g. what else ran on the machine)")
    opts = ap.parse_args(argv)
    names = [s for s in opts.suites.split(",") if s]
    unknown = [s for s in names if s not in SUITES]
    if unknown:
        ap.error(f"unknown suite(s) {unknown}; choose from {list(SUITES)}")
    sys.path.insert(0, HERE)
    started = time.time()
    results = {}
    for module in dict.fromkeys(SUITES[s] for s in names):  # one call per module with all of its suites
        mine = [s for s in names if SUITES[s] == module]
        t0 = time.perf_counter()
        results[module] = {"suites": mine, **__import__(module).suite(mine, opts),
                           "seconds": round(time.perf_counter() - t0, 1)}
    command = "benchmarks/run.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    head = {"command": command, "commit": commit(), "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(started))}
    path = save(f"run_{opts.tag}", {**head, "results": results})
    lines = [f"## Harness run {opts.tag}: {', '.join(names)}", "",
             f"- **Date / machine:** {time.strftime('%Y-%m-%d')}, {machine()}" + (f"; {opts.note}" if opts.note else ""),
             f"- **Command:** `{command}` at commit {head['commit']}; results `{os.path.relpath(path, HERE)}`", ""]
    for module, res in results.items():
        lines += [f"### {TITLES[module]} ({', '.join(res['suites'])}; {res['seconds']:.0f} s)", "", *res["table"], ""]
    text = "\n".join(lines)
    print("\n" + text)
    if opts.record:
        with open(os.path.join(os.path.dirname(HERE), "BENCHMARKS.md"), "a", encoding="utf-8") as fh:
            fh.write("\n" + text)


if __name__ == "__main__":
    main()
