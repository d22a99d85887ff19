"""Shared fixtures: real QGIS application, real sample rasters, simulated stacks."""
from __future__ import annotations

import glob
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_DIR = os.path.join(ROOT, "sample_data", "landsat7_b4")
L8_CROP = os.path.join(ROOT, "tests", "data", "l8_pan_crop.tif")
QGIS_PROCESS = os.path.join(ROOT, "scripts", "qgis_process")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def enabled_plugin_profile(home):
    """A throwaway QGIS profile under ``home`` (a pathlib folder) with the StackSR plugin enabled;
    returns the profile folder."""
    profile = home / ".local/share/QGIS/QGIS3/profiles/default"
    (profile / "QGIS").mkdir(parents=True)
    (profile / "QGIS" / "QGIS3.ini").write_text("[PythonPlugins]\nstacksr=true\n")
    return profile


# modules whose every test runs another process (qgis_process, the QGIS desktop, the CLI, the zip install)
SLOW_MODULES = {"test_qgis_process", "test_packaging", "test_desktop", "test_cli"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__.rsplit(".", 1)[-1] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def sample_images() -> list[str]:
    return sorted(glob.glob(os.path.join(SAMPLE_DIR, "*_b4.tif")))


@pytest.fixture(scope="session")
def sample_masks(sample_images) -> list[str]:
    return [p.replace("_b4.tif", "_fmask.tif") for p in sample_images]


@pytest.fixture(scope="session")
def l8_hr():
    """The real Landsat 8 panchromatic crop (180x180, 15 m, uint16) as float32 tensor."""
    import torch

    from stacksr.core.io.whole_reads import read_raster

    arr, _, _, _ = read_raster(L8_CROP)
    return torch.from_numpy(arr.astype(np.float32))


@pytest.fixture(scope="session")
def l8_stack(l8_hr):
    import torch

    from stacksr.core.degradation.simulate import simulate_stack

    return simulate_stack(l8_hr, 3, 9, torch.Generator().manual_seed(7), max_shift=1.0, noise_sigma=10.0)


@pytest.fixture(scope="session")
def qgis_app():
    """One real QgsApplication with Processing and the StackSR provider, for the whole session."""
    from qgis.core import QgsApplication

    app = QgsApplication([], True)  # GUI-enabled (offscreen): the ui/ widgets are tested too
    app.initQgis()
    sys.path.append("/usr/share/qgis/python/plugins")
    from processing.core.Processing import Processing

    Processing.initialize()
    from stacksr.processing_provider.provider import StackSRProvider

    provider = StackSRProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    yield app
    QgsApplication.processingRegistry().removeProvider(provider)


@pytest.fixture(scope="session")
def processing(qgis_app):
    """QGIS's processing module, with the StackSR provider registered."""
    import processing as proc

    return proc


@pytest.fixture(scope="session")
def sample_bank(tmp_path_factory) -> str:
    """A small real kernel bank file (two anisotropic Gaussians at x3)."""
    import torch

    from stacksr.core.degradation.operators import gaussian_kernels
    from stacksr.core.io.kernel_bank import KernelBank

    ks = gaussian_kernels(torch.tensor([1.3, 1.8]), torch.tensor([1.1, 1.2]), torch.tensor([0.2, 1.4]), 15, 3)
    return KernelBank(ks.numpy(), ["a", "b"], 3).save(str(tmp_path_factory.mktemp("bank") / "bank.npz"))
