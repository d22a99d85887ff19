"""PyTorch for QGIS: where StackSR installs it, how, and how the plugin finds it.

QGIS does not ship torch. StackSR installs the pinned requirement with pip into a
plugin-owned folder, one per Python version (``<QGIS profile>/stacksr_deps/python3.11``),
and puts that folder first on ``sys.path`` when the plugin loads: torch needs newer
pure-Python helpers (sympy, ...) than a distribution may ship, so the folder must win
over the system's site-packages. numpy and GDAL stay QGIS's own: pip never touches
the system, and :func:`prune` deletes any copy pip pulled into the folder, so they are
never upgraded or shadowed. Pure Python: no qgis or Qt imports here.
"""
from __future__ import annotations

import os
import shutil
import sys

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
SYSTEM_OWNED = ("numpy", "osgeo", "GDAL", "gdal")  # QGIS's own; never in the deps folder


def qgis_python() -> str:
    """The interpreter QGIS embeds (inside QGIS, sys.executable is the QGIS binary)."""
    if os.name == "nt":
        return os.path.join(sys.base_exec_prefix, "python.exe")
    return os.path.join(sys.base_exec_prefix, "bin", f"python{sys.version_info.major}.{sys.version_info.minor}")


def pinned_torch() -> str:
    """The torch requirement pinned in requirements.txt (the single source of the version)."""
    try:
        with open(os.path.join(PLUGIN_DIR, "requirements.txt"), encoding="utf-8") as fh:
            return next(line.strip() for line in fh if line.strip().startswith("torch"))
    except (OSError, StopIteration):
        return "torch"


def deps_dir(base: str | None = None) -> str:
    """The plugin-owned folder for this Python version, under ``base`` (the QGIS profile folder;
    ``STACKSR_DEPS_DIR`` or ``~/.local/share/stacksr`` without one)."""
    base = os.environ.get("STACKSR_DEPS_DIR") or base or os.path.join(os.path.expanduser("~"), ".local", "share", "stacksr")
    return os.path.join(base, "stacksr_deps", f"python{sys.version_info.major}.{sys.version_info.minor}")


def activate(folder: str) -> bool:
    """Put ``folder`` first on sys.path if it exists; True when it is on the path."""
    if not os.path.isdir(folder):
        return False
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return True


def install_command(folder: str, requirement: str | None = None) -> list[str]:
    """The pip command that installs ``requirement`` (default: the pinned torch) into ``folder``."""
    return [qgis_python(), "-m", "pip", "install", "--target", folder, "--no-warn-script-location",
            "--disable-pip-version-check", requirement or pinned_torch()]


def prune(folder: str) -> list[str]:
    """Remove packages QGIS owns (numpy, GDAL) that pip put into ``folder``; returns what was removed."""
    removed = []
    if not os.path.isdir(folder):
        return removed
    for name in sorted(os.listdir(folder)):
        if name.split("-")[0].split(".")[0] in SYSTEM_OWNED or name.startswith("numpy"):
            shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
            removed.append(name)
    return removed


def missing_torch_message(folder: str | None = None) -> str:
    """One message saying how to get PyTorch into QGIS's Python."""
    folder = folder or deps_dir()
    return (f"StackSR needs PyTorch, which QGIS does not ship. In QGIS use Plugins > StackSR > Install PyTorch..., "
            f"or run: \"{qgis_python()}\" -m pip install --target \"{folder}\" {pinned_torch()} "
            f"(a folder StackSR adds to QGIS's Python; numpy and GDAL stay as they are), then restart QGIS.")
