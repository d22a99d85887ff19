"""Builds the installable QGIS plugin zip: ``dist/stacksr-<version>.zip`` with one top folder
``stacksr/`` holding the runtime files only (no tests, benchmarks, sample data or caches).

Usage: ``python scripts/build_zip.py [--output DIR]`` (``make zip``). Exits non-zero with a
one-line reason when metadata.txt misses a field the QGIS plugin repository requires.
"""
from __future__ import annotations

import argparse
import configparser
import os
import re
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGIN = "stacksr"
INCLUDE_FILES = ("metadata.txt", "__init__.py", "__main__.py", "plugin.py", "cli.py", "icon.svg", "LICENSE",
                 "README.md", "requirements.txt", "deps.py")
INCLUDE_DIRS = ("core", "processing_provider", "ui", "models", "examples", "help", "icons")
SKIP = re.compile(r"(__pycache__|\.pyc$|\.pyo$|\.aux\.xml$|~$|\.orig$)")
REQUIRED = ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email", "repository")


def read_metadata(path: str = os.path.join(ROOT, "metadata.txt")) -> dict:
    """The [general] section, checked for the fields the plugin repository requires."""
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str
    if not cp.read(path, encoding="utf-8") or "general" not in cp:
        raise ValueError(f"{path} has no [general] section")
    meta = dict(cp["general"])
    missing = [k for k in REQUIRED if not meta.get(k, "").strip()]
    if missing:
        raise ValueError(f"metadata.txt lacks required field(s): {', '.join(missing)}")
    if not re.fullmatch(r"\d+\.\d+(\.\d+)?", meta["version"]):
        raise ValueError(f"metadata.txt version '{meta['version']}' is not like 1.2.3")
    if not re.fullmatch(r"3\.\d+", meta["qgisMinimumVersion"]):
        raise ValueError(f"metadata.txt qgisMinimumVersion '{meta['qgisMinimumVersion']}' is not like 3.22")
    return meta


def plugin_files() -> list[str]:
    """Paths relative to the repository root that go into the zip."""
    files = [f for f in INCLUDE_FILES if os.path.isfile(os.path.join(ROOT, f))]
    for d in INCLUDE_DIRS:
        for dirpath, dirnames, names in os.walk(os.path.join(ROOT, d)):
            dirnames[:] = sorted(n for n in dirnames if not SKIP.search(n))
            files += [os.path.relpath(os.path.join(dirpath, n), ROOT) for n in sorted(names) if not SKIP.search(n)]
    return files


def build(output_dir: str) -> str:
    meta = read_metadata()
    os.makedirs(output_dir, exist_ok=True)
    target = os.path.join(output_dir, f"{PLUGIN}-{meta['version']}.zip")
    tmp = target + ".part"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in plugin_files():
            zf.write(os.path.join(ROOT, rel), f"{PLUGIN}/{rel}")
    os.replace(tmp, target)  # never leave a half-written zip under the final name
    return target


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", default=os.path.join(ROOT, "dist"), help="folder for the zip (default: dist/)")
    args = ap.parse_args()
    try:
        print(build(args.output))
    except (OSError, ValueError) as exc:
        print(f"build_zip: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
