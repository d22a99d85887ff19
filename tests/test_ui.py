"""ui/ widgets on a real (offscreen) QGIS: the kernel viewer dock with real estimated kernels."""
import os

import numpy as np
import pytest
from osgeo import gdal

from stacksr.core.job_settings import KernelSettings


@pytest.fixture(scope="module")
def real_bank(tmp_path_factory, sample_images):
    from stacksr.core.jobs.kernel_job import run_estimate_kernels
    from stacksr.core.io.stack_io import ImageSource

    path = str(tmp_path_factory.mktemp("bank") / "landsat7_kernels.npz")
    run_estimate_kernels([ImageSource(p) for p in sample_images], KernelSettings(path, scale=3, mode="joint",
                         iterations=30))
    return path


def test_kernel_viewer_shows_every_kernel_with_its_image_and_fit_and_screenshots_as_a_grid(qgis_app, real_bank,
                                                                                          sample_images, tmp_path):
    from qgis.PyQt.QtWidgets import QLabel

    from stacksr.core.io.kernel_bank import KernelBank
    from stacksr.core.io.kernel_bank import short_name
    from stacksr.ui.kernel_viewer import KernelViewerDock

    dock = KernelViewerDock()
    titled = KernelViewerDock()
    titled.load_bank(real_bank, "kernels of 04:51:07 - 8 images, x3, joint")  # a run's title, not 'OUTPUT_BANK.npz'
    assert titled.summary.text().startswith("<b>kernels of 04:51:07 - 8 images, x3, joint</b>")
    titled.close()
    dock.resize(720, 560)
    dock.load_bank(real_bank)
    assert dock.summary.text().startswith(f"<b>{os.path.basename(real_bank)}</b>")
    dock.show()
    qgis_app.processEvents()
    bank = KernelBank.load(real_bank)
    assert dock.cell_count() == len(sample_images) == len(bank.names)
    captions = [w.text() for w in dock.findChildren(QLabel) if "\u03c3\u2081" in w.text()]
    assert len(captions) == len(bank.names)
    fit = bank.fits()[0]
    assert short_name(bank.names[0]) in captions[0] and f"{fit.sigma1:.2f}" in captions[0]
    # whole names (the acquisition date survives), columns that follow the width
    assert "".join(short_name(bank.names[0]).split("\n")) == os.path.splitext(bank.names[0])[0]
    assert dock.columns() == 4 and dock.cell_columns() == {0, 1, 2, 3}
    dock.resize(330, 560)
    qgis_app.processEvents()
    assert dock.columns() == 2 and dock.cell_columns() == {0, 1} and dock.cell_count() == len(bank.names)
    dock.resize(720, 560)
    qgis_app.processEvents()
    shot = str(tmp_path / "kernel_viewer.png")
    assert dock.grab().save(shot, "PNG")
    ds = gdal.Open(shot)
    assert (ds.RasterXSize, ds.RasterYSize) == (720, 560)
    rgb = np.stack([ds.GetRasterBand(b + 1).ReadAsArray() for b in range(3)], axis=-1).astype(int)
    ds = None
    assert rgb.std() > 20  # not a blank widget
    # the kernels are drawn on one colour scale: the tails at the dark end, the bank's peak pixel at the bright end
    dark = (np.abs(rgb - [68, 1, 84]).sum(axis=-1) < 30).sum()
    bright = (np.abs(rgb - [253, 231, 37]).sum(axis=-1) < 60).sum()
    assert dark > 8 * 15 * 15 and bright >= 8 * 8
    dock.close()


def test_kernel_viewer_explains_a_file_that_is_not_a_kernel_bank(qgis_app, sample_images):
    from stacksr.ui.kernel_viewer import KernelViewerDock

    dock = KernelViewerDock()
    dock.load_bank(sample_images[0])
    assert dock.cell_count() == 0 and "Cannot show kernels" in dock.summary.text()
    dock.close()


def test_install_dialog_runs_pip_into_the_plugin_folder_and_keeps_numpy_out(qgis_app, tmp_path):
    """The real pip, into a throwaway folder, with a small package instead of the torch wheel;
    numpy pulled in by the requirement is removed afterwards (QGIS's own stays in use)."""
    import sys
    import time

    from stacksr.deps import deps_dir
    from stacksr.ui.deps_dialog import InstallDependenciesDialog

    folder = deps_dir(str(tmp_path))
    assert folder.startswith(str(tmp_path)) and folder.endswith(f"python{sys.version_info.major}.{sys.version_info.minor}")
    dialog = InstallDependenciesDialog(folder, "sortedcontainers")
    assert dialog.command[1:5] == ["-m", "pip", "install", "--target"] and dialog.command[5] == folder
    dialog.start()
    deadline = time.time() + 120
    while dialog.succeeded is None and time.time() < deadline:
        qgis_app.processEvents()
        time.sleep(0.05)
    assert dialog.succeeded, dialog.log.toPlainText()
    import os

    assert "sortedcontainers" in os.listdir(folder) and folder in sys.path
    sys.path.remove(folder)
    os.makedirs(os.path.join(folder, "numpy"))
    from stacksr.deps import prune

    assert prune(folder) == ["numpy"] and "sortedcontainers" in os.listdir(folder)
    dialog.close()


@pytest.mark.slow
def test_kernel_viewer_opens_a_bank_with_torch_hidden(sample_bank):
    """The viewer (and the bank file it reads) need no torch: QGIS users without it can look at kernels."""
    import subprocess
    import sys

    from conftest import ROOT

    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from qgis.core import QgsApplication\n"
        "app = QgsApplication([], True); app.initQgis()\n"
        "from stacksr.ui.kernel_viewer import KernelViewerDock\n"
        f"dock = KernelViewerDock(); dock.load_bank({sample_bank!r})\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "print('cells', dock.cell_count())\n"
    )
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, ".build", "pkg"), QT_QPA_PLATFORM="offscreen")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "cells 2" in res.stdout


_DIALOGS = []


def _dialog_wrappers(alg_id: str):
    from processing.gui.AlgorithmDialog import AlgorithmDialog
    from qgis.core import QgsApplication, QgsProject

    alg = QgsApplication.processingRegistry().createAlgorithmById(alg_id)
    assert alg is not None, alg_id
    dialog = AlgorithmDialog(alg)
    from qgis.core import QgsProcessingContext

    _DIALOGS.append(dialog)  # Processing's dialogs and wrappers must outlive the test (deleting them crashes 3.22)
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    return dialog, dialog.mainWidget().wrappers, context


@pytest.mark.parametrize("alg_id", ["stacksr:superresolve", "stacksr:superresolveclassic", "stacksr:estimatekernels",
                                    "stacksr:trainselfsupervised", "stacksr:superresolvechain"])
def test_dialog_offers_the_scale_as_a_choice_list_and_keeps_an_integer_value(qgis_app, alg_id):
    from qgis.PyQt.QtWidgets import QComboBox

    dialog, wrappers, context = _dialog_wrappers(alg_id)
    scale = wrappers["SCALE"]
    assert isinstance(scale.widget, QComboBox)
    assert [scale.widget.itemText(i) for i in range(scale.widget.count())] == ["x2", "x3", "x4"]
    assert scale.parameterValue() == 3  # the default
    scale.setParameterValue(4, context)
    assert scale.parameterValue() == 4 and scale.widget.currentText() == "x4"


@pytest.mark.parametrize("alg_id", ["stacksr:superresolve", "stacksr:superresolveclassic"])
def test_dialog_offers_the_reference_date_among_the_input_images(qgis_app, alg_id, sample_images):
    from qgis.core import QgsProject, QgsRasterLayer

    layers = [QgsRasterLayer(p, os.path.splitext(os.path.basename(p))[0]) for p in sample_images[:3]]
    QgsProject.instance().addMapLayers(layers)
    try:
        dialog, wrappers, context = _dialog_wrappers(alg_id)
        ref = wrappers["REFERENCE"]
        combo = ref.widget
        assert ref.parameterValue() is None and combo.currentText().startswith("Automatic: the clearest")
        wrappers["LAYERS"].setParameterValue([lyr.id() for lyr in layers], context)
        assert [combo.itemText(i) for i in range(1, combo.count())] == [lyr.name() for lyr in layers]
        combo.setCurrentIndex(2)
        assert ref.parameterValue() == 1  # the 0-based index the job takes
        wrappers["LAYERS"].setParameterValue([lyr.id() for lyr in layers[1:]], context)  # the inputs change
        assert combo.count() == 3
    finally:
        QgsProject.instance().removeMapLayers([lyr.id() for lyr in layers])


def test_every_dialog_is_no_wider_than_qgis_own_dialogs_need(qgis_app, processing):
    """At QGIS's default dialog size the labels and combos set the panel's width: long ones pushed the layer pickers'
    buttons behind a scrollbar. Every StackSR dialog (the graphical model's too) now needs no more width than GDAL's
    Warp (reproject), a core dialog that fits."""
    from qgis.core import QgsApplication
    from qgis.PyQt.QtWidgets import QWidget

    def widest(alg_id: str) -> int:
        dialog, _, _ = _dialog_wrappers(alg_id)
        return max(w.minimumSizeHint().width() for w in dialog.mainWidget().findChildren(QWidget))

    line = widest("gdal:warpreproject")
    ids = [a.id() for a in QgsApplication.processingRegistry().providerById("stacksr").algorithms()]
    too_wide = {a: widest(a) for a in ids if widest(a) > line}
    assert len(ids) >= 6 and too_wide == {}, (line, too_wide)


def test_the_reference_list_of_a_multiband_raster_offers_only_the_bands_picked(qgis_app, sample_images, tmp_path):
    """A band subset (here bands 2 and 4 of 4): the list shows those two bands by name, and picking the second entry
    gives index 1 of the stack the job reads (band 4), not band 2."""
    from osgeo import gdal
    from qgis.core import QgsProject, QgsRasterLayer

    path = str(tmp_path / "dates.vrt")
    gdal.BuildVRT(path, sample_images[:4], separate=True)
    layer = QgsRasterLayer(path, "dates")
    QgsProject.instance().addMapLayer(layer)
    try:
        dialog, wrappers, context = _dialog_wrappers("stacksr:superresolve")
        wrappers["MULTIBAND"].setParameterValue(layer.id(), context)
        combo = wrappers["REFERENCE"].widget
        assert combo.count() == 5  # the clearest, then every band
        wrappers["BANDS"].setParameterValue([2, 4], context)
        assert [combo.itemText(i).split(":")[0] for i in range(1, combo.count())] == ["Band 2", "Band 4"]
        combo.setCurrentIndex(2)
        assert wrappers["REFERENCE"].parameterValue() == 1
    finally:
        QgsProject.instance().removeMapLayer(layer.id())


def test_the_steps_connect_each_dialog_offers_the_files_the_earlier_steps_wrote(qgis_app, processing, sample_images,
                                                                                 tmp_path):
    """The kernel bank and the model went to temporary files and the next step offered a plain file picker, so users
    copied /tmp/processing_... paths out of the log. The next step's dialog now offers them, the newest first; empty
    keeps its meaning (estimate first, the shipped model); scripts and qgis_process are untouched."""
    from stacksr.processing_provider import recent_outputs

    recent_outputs._recent.clear()
    _, wrappers, _ = _dialog_wrappers("stacksr:trainselfsupervised")
    assert wrappers["KERNEL_BANK"].parameterValue() is None  # nothing written yet: estimate first
    bank = processing.run("stacksr:estimatekernels", {"LAYERS": sample_images[:3], "SCALE": 3, "ITERATIONS": 5,
                                                      "OUTPUT_BANK": "TEMPORARY_OUTPUT"})["OUTPUT_BANK"]
    for alg_id in ("stacksr:trainselfsupervised", "stacksr:superresolveclassic"):
        _, wrappers, context = _dialog_wrappers(alg_id)
        assert wrappers["KERNEL_BANK"].parameterValue() == os.path.abspath(bank), alg_id
        wrappers["KERNEL_BANK"].setParameterValue("", context)  # the user clears it: the parameter's own meaning
        assert wrappers["KERNEL_BANK"].parameterValue() is None
    model = str(tmp_path / "model.pt")
    processing.run("stacksr:trainselfsupervised", {"LAYERS": sample_images[:3], "KERNEL_BANK": bank, "STEPS": 1,
                                                   "BATCH": 2, "OUTPUT_MODEL": model})
    _, wrappers, context = _dialog_wrappers("stacksr:superresolve")
    assert wrappers["MODEL"].parameterValue() == model
    other = str(tmp_path / "typed.pt")
    wrappers["MODEL"].setParameterValue(other, context)  # a path typed or browsed to
    assert wrappers["MODEL"].parameterValue() == other
