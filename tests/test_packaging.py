"""The installable plugin zip: valid metadata, runtime files only, and it works once installed."""
import glob
import importlib.util
import json
import os
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT, enabled_plugin_profile


def _builder():
    spec = importlib.util.spec_from_file_location("build_zip", os.path.join(ROOT, "scripts", "build_zip.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    res = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "build_zip.py"), "--output", str(out)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_zip_holds_the_runtime_files_under_one_folder_and_nothing_else(plugin_zip):
    names = zipfile.ZipFile(plugin_zip).namelist()
    assert all(n.startswith("stacksr/") for n in names)
    for needed in ("metadata.txt", "__init__.py", "plugin.py", "LICENSE", "icon.svg", "icons/train.svg", "core/jobs/__init__.py",
                   "processing_provider/provider.py", "ui/kernel_viewer.py", "models/fkp_x3.pt",
                   "examples/stacksr_chain.model3", "requirements.txt"):
        assert f"stacksr/{needed}" in names, needed
    for banned in ("tests/", "benchmarks/", "sample_data/", "scripts/", ".ci/", "__pycache__", ".pyc", ".venv", ".git/"):
        assert not any(banned in n for n in names), banned
    assert os.path.basename(plugin_zip) == f"stacksr-{_builder().read_metadata()['version']}.zip"


def test_metadata_missing_a_required_field_is_refused(tmp_path):
    bad = tmp_path / "metadata.txt"
    bad.write_text("[general]\nname=StackSR\nversion=0.1.0\n")
    with pytest.raises(ValueError, match="lacks required field"):
        _builder().read_metadata(str(bad))


def test_zip_installed_into_a_throwaway_profile_runs_the_three_algorithms_on_real_landsat(plugin_zip, sample_images, tmp_path):
    """Unzipped where QGIS installs plugins, enabled in the profile, and run by qgis_process with
    no path pointing back at the repository (only torch's site-packages is on PYTHONPATH)."""
    home = tmp_path / "home"
    plugins = enabled_plugin_profile(home) / "python" / "plugins"
    plugins.mkdir(parents=True)
    zipfile.ZipFile(plugin_zip).extractall(plugins)
    import torch

    torch_site = os.path.dirname(os.path.dirname(torch.__file__))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "QGIS_PLUGINPATH")}
    env.update(HOME=str(home), QT_QPA_PLATFORM="offscreen", XDG_RUNTIME_DIR=str(home), PYTHONPATH=torch_site)
    def run(alg, *params):
        res = subprocess.run(["/usr/bin/qgis_process.bin", "run", alg, "--json", *params], capture_output=True,
                             text=True, env=env, timeout=300)
        assert res.returncode == 0, res.stdout + res.stderr
        return json.loads(res.stdout[res.stdout.index("{"):])["results"]

    layers = [f"--LAYERS={p}" for p in sample_images]
    bank = tmp_path / "bank.npz"
    res = run("stacksr:estimatekernels", *layers, "--MODE=1", "--ITERATIONS=5", f"--OUTPUT_BANK={bank}",
              f"--OUTPUT_LAYERS={tmp_path / 'layers'}", f"--OUTPUT_REPORT={tmp_path / 'gallery.html'}")
    assert res["OUTPUT_BANK"] == str(bank) and bank.exists()  # the shipped prior, from the zip, was found
    assert len(glob.glob(str(tmp_path / "layers" / "*.tif"))) == len(sample_images)
    model = tmp_path / "model.pt"
    run("stacksr:trainselfsupervised", *layers, f"--KERNEL_BANK={bank}", "--STEPS=2", "--BATCH=2", f"--OUTPUT_MODEL={model}")
    sr = tmp_path / "sr.tif"
    res = run("stacksr:superresolve", *layers, f"--MODEL={model}", "--METHOD=0", "--TTF_ITERATIONS=2", f"--OUTPUT={sr}")
    assert res["OUTPUT"] == str(sr) and sr.exists()
