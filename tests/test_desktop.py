"""The plugin in the real QGIS desktop application (under Xvfb): menu, kernel viewer, results on
the map, and the missing-PyTorch message bar. Each test starts `qgis` with a throwaway profile
that enables the plugin and a startup script that records what it sees, then exits."""
import glob
import json
import os
import shutil
import subprocess

import pytest

from conftest import ROOT, enabled_plugin_profile

pytestmark = pytest.mark.skipif(shutil.which("xvfb-run") is None,
                                reason="xvfb-run missing (make test installs it: scripts/install_system_deps.sh)")

SCRIPT = r'''
import json, os, traceback
from qgis.utils import plugins, iface
from qgis.core import QgsApplication, QgsProject
out = {}
try:
    p = plugins.get("stacksr")
    out["loaded"] = p is not None
    out["menu_actions"] = [a.text() for a in p.actions]
    bar_item = iface.messageBar().currentItem()
    out["message_bar"] = bar_item.text() if bar_item is not None else ""
    # the example model opens in the Modeler from the menu, as a copy with no file behind it
    action = [a for a in p.actions if a.text().startswith("Edit the example model")][0]
    action.trigger()
    from processing.modeler.ModelerDialog import ModelerDialog
    QgsApplication.processEvents()
    designer = ModelerDialog.dlgs[-1]
    out["modeler"] = [designer.isVisible(), len(designer.model().childAlgorithms()), designer.model().sourceFilePath()]
    designer.close()
    if os.environ.get("STACKSR_TEST_RUN"):
        import processing
        params = json.loads(os.environ["STACKSR_TEST_RUN"])
        res = processing.runAndLoadResults("stacksr:estimatekernels", params)
        # the viewer does not cover the map by itself: the message bar offers it
        out["viewer_uninvited"] = p.viewer is not None and p.viewer.isVisible()
        from qgis.PyQt.QtWidgets import QPushButton
        offer = [b for b in iface.messageBar().currentItem().findChildren(QPushButton)
                 if b.text() == "Show in the Kernel viewer"]
        out["viewer_offered"] = len(offer)
        offer[0].click()
        group = QgsProject.instance().layerTreeRoot().findGroup("Kernels")
        out["kernel_layers_in_group"] = len(group.findLayers()) if group else 0
        QgsApplication.processEvents()
        out["kernel_legends_shown"] = sum(n.isExpanded() for n in group.findLayers()) if group else 0
        out["kernel_nodes"] = [(n.name(), n.isExpanded(), n.isVisible()) for n in group.findLayers()] if group else []
        out["kernel_run_groups"] = [g.name() for g in group.children()] if group else []
        # the viewer opened on the new bank by itself
        out["viewer_cells"] = p.viewer.cell_count() if p.viewer is not None and p.viewer.isVisible() else 0
        # at its default size: a screenshot, and where each kernel cell lies in it (checked by the test)
        from qgis.PyQt.QtCore import QPoint
        QgsApplication.processEvents()
        p.viewer.grab().save(os.environ["STACKSR_TEST_VIEWER"])
        out["viewer_size"] = [p.viewer.width(), p.viewer.height()]
        out["viewer_cell_rects"] = []
        for cell in p.viewer._cells:
            image = cell.findChildren(__import__("qgis.PyQt.QtWidgets", fromlist=["QLabel"]).QLabel)[0]
            top_left = image.mapTo(p.viewer, QPoint(0, 0))
            out["viewer_cell_rects"].append([top_left.x(), top_left.y(), image.width(), image.height(),
                                             not image.visibleRegion().isEmpty()])
        # clicking a kernel selects its layer
        p.viewer.click(2)
        active = iface.activeLayer()
        out["clicked_selects"] = [p.viewer.bank.names[2], active.customProperty("stacksr/kernel_image") if active else None]
        canvas = iface.mapCanvas()
        canvas.setExtent(group.findLayers()[0].layer().extent())
        canvas.refreshAllLayers()
        canvas.waitWhileRendering()
        canvas.saveAsImage(os.environ["STACKSR_TEST_SHOT"])
        from qgis.core import QgsRasterLayer
        image = QgsRasterLayer(params["LAYERS"][0], "image")
        out["kernels_in_stack_crs_and_extent"] = all(
            n.layer().crs() == image.crs() and image.extent().contains(n.layer().extent()) for n in group.findLayers())
        # super-resolve, then the one-click chain, each with a kernel layer active: their results must land
        # in the StackSR group, under names that tell them apart
        iface.setActiveLayer(group.findLayers()[0].layer())
        processing.runAndLoadResults("stacksr:superresolve", json.loads(os.environ["STACKSR_TEST_SR"]))
        iface.setActiveLayer(group.findLayers()[0].layer())
        chain = json.loads(os.environ["STACKSR_TEST_CHAIN"])
        processing.runAndLoadResults("stacksr:superresolvechain", chain)
        results = QgsProject.instance().layerTreeRoot().findGroup("StackSR")
        out["stacksr_group"] = [n.layer().name() for n in results.findLayers()] if results else []
        out["kernels_group_after_chain"] = len(group.findLayers())
except Exception:
    out["error"] = traceback.format_exc()
with open(os.environ["STACKSR_TEST_OUT"], "w") as fh:
    json.dump(out, fh)
os._exit(0)
'''


def _run_desktop(tmp_path, with_torch: bool, run_params: dict | None = None) -> dict:
    home = tmp_path / "home"
    enabled_plugin_profile(home)
    script = tmp_path / "startup.py"
    script.write_text(SCRIPT)
    pkg = os.path.join(ROOT, ".build", "pkg")
    path = [pkg]
    if with_torch:
        import torch

        path.append(os.path.dirname(os.path.dirname(torch.__file__)))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "QT_QPA_PLATFORM", "VIRTUAL_ENV")}
    env.update(HOME=str(home), XDG_RUNTIME_DIR=str(home), QGIS_PLUGINPATH=pkg, PYTHONPATH=os.pathsep.join(path),
               STACKSR_TEST_OUT=str(tmp_path / "seen.json"), STACKSR_TEST_SHOT=str(tmp_path / "canvas.png"),
               STACKSR_TEST_VIEWER=str(tmp_path / "viewer.png"))
    if run_params:
        env["STACKSR_TEST_RUN"] = json.dumps(run_params)
        env["STACKSR_TEST_SR"] = json.dumps({"LAYERS": run_params["LAYERS"][:3], "SCALE": 3, "METHOD": 0, "TTF_ITERATIONS": 3,
                                             "OUTPUT": str(tmp_path / "sr.tif"),
                                             "OUTPUT_UNCERTAINTY": str(tmp_path / "sr_std.tif"),
                                             "OUTPUT_KERNEL": str(tmp_path / "sr_kernel.tif")})
        env["STACKSR_TEST_CHAIN"] = json.dumps({"LAYERS": run_params["LAYERS"][:3], "SCALE": 3, "STEPS": 2,
                                                "WORK_FOLDER": str(tmp_path / "work"), "OUTPUT": str(tmp_path / "chain.tif")})
    res = subprocess.run(["xvfb-run", "-a", "/usr/bin/qgis", "--nologo", "--noversioncheck", "--code", str(script)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert (tmp_path / "seen.json").exists(), res.stdout[-2000:] + res.stderr[-2000:]
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert "error" not in seen, seen["error"]
    return seen


def test_desktop_qgis_shows_menu_kernel_layers_viewer_and_map(tmp_path, sample_images):
    params = {"LAYERS": sample_images[:4], "SCALE": 3, "MODE": 1, "ITERATIONS": 10,
              "OUTPUT_BANK": str(tmp_path / "bank.npz"), "OUTPUT_LAYERS": str(tmp_path / "kernels")}
    seen = _run_desktop(tmp_path, with_torch=True, run_params=params)
    assert seen["loaded"] and seen["menu_actions"] == ["Kernel viewer", "Install PyTorch...",
                                                       "Edit the example model in the Graphical Modeler..."]
    assert seen["modeler"] == [True, 3, ""]
    assert "PyTorch" not in seen["message_bar"]
    from osgeo import gdal

    assert seen["kernel_layers_in_group"] == 4 and seen["viewer_cells"] == 4
    assert not seen["viewer_uninvited"] and seen["viewer_offered"] == 1 and seen["kernel_legends_shown"] == 1, seen["kernel_nodes"]
    # in the desktop too (its layers panel inserts new layers at its insertion point): the run's kernels in image
    # order, only the first shown and with a legend
    assert [n[0][:10] for n in seen["kernel_nodes"]] == [f"kernel_00{i}" for i in range(4)], seen["kernel_nodes"]
    assert [n[2] for n in seen["kernel_nodes"]] == [True, False, False, False]
    assert len(seen["kernel_run_groups"]) == 1 and "4 images, x3" in seen["kernel_run_groups"][0]
    # every kernel cell lies whole inside the viewer at its default size, and its picture is drawn there
    shot = gdal.Open(str(tmp_path / "viewer.png")).ReadAsArray().astype(float)
    width, height = seen["viewer_size"]
    assert shot.shape[1:] == (height, width)
    for x, y, w, h, visible in seen["viewer_cell_rects"]:
        assert visible and 0 <= x and x + w <= width and 0 <= y and y + h <= height, (x, y, w, h, width, height)
        assert shot[:, y:y + h, x:x + w].std() > 20  # the colour-mapped kernel, not an empty frame
    assert seen["clicked_selects"][0] == seen["clicked_selects"][1]
    ds = gdal.Open(str(tmp_path / "canvas.png"))
    rgb = ds.ReadAsArray()
    ds = None
    assert rgb.std() > 10  # the kernel layer is drawn on the map canvas
    assert len(glob.glob(str(tmp_path / "kernels" / "*.tif"))) == 4
    assert seen["kernels_in_stack_crs_and_extent"]
    # the chain's result in the StackSR group, named after date, method and scale; none went into "Kernels"
    names = seen["stacksr_group"]
    assert len(names) == 4 and len(set(names)) == 4, names  # SR, uncertainty and TTF kernel; then the chain's SR
    # the chain's method is auto's choice (PIUNet + TTF, IBP, their blend or the reference alone): its name says
    # which, numbered if it repeats one
    assert sum(n.endswith("piunet+ttf x3") for n in names) == 1
    assert any(n.endswith(("piunet+ttf x3 (2)", "ibp x3", "blend x3", "bicubic-ref x3")) for n in names), names
    assert any(n.endswith("uncertainty") for n in names) and any(n.endswith("TTF kernel") for n in names)
    assert seen["kernels_group_after_chain"] == 4


def test_desktop_qgis_without_torch_offers_the_installer_in_the_message_bar(tmp_path):
    seen = _run_desktop(tmp_path, with_torch=False)
    assert seen["loaded"] and "PyTorch is not installed" in seen["message_bar"]
