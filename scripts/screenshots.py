"""Screenshots for docs/: every algorithm dialog, the Kernel viewer and the three run reports.

Run by `make screenshots` after `make demo` (it shows the demo's real outputs): QGIS's Python with a
virtual display (xvfb-run), the plugin from this checkout, the sample images loaded as layers.

    xvfb-run -a python3 scripts/screenshots.py demo_output docs
"""
from __future__ import annotations

import glob
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, ".build", "pkg"), "/usr/share/qgis/python/plugins"]

from qgis.core import QgsApplication, QgsProject, QgsRasterLayer  # noqa: E402
from qgis.PyQt.QtCore import QEventLoop, QSize, QTimer, QUrl  # noqa: E402

ALGORITHMS = ("superresolvechain", "estimatekernels", "trainselfsupervised", "superresolve", "superresolveclassic",
              "score", "stacksr_chain")
REPORTS = {"kernels.html": "report_kernels.png", "training_report.html": "report_training.png",
           "sr_report.html": "report_superresolution.png"}


def settle(ms: int = 300) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec_()


def dialogs(out: str, images: list[str]) -> list[str]:
    from processing.gui.AlgorithmDialog import AlgorithmDialog

    layers = [QgsRasterLayer(p, os.path.splitext(os.path.basename(p))[0]) for p in images]
    QgsProject.instance().addMapLayers(layers)
    written, keep = [], []
    for name in ALGORITHMS:
        alg = QgsApplication.processingRegistry().createAlgorithmById(f"stacksr:{name}")
        dialog = AlgorithmDialog(alg)
        keep.append(dialog)  # Processing's dialogs must outlive their wrappers (deleting them crashes 3.22)
        wrappers = dialog.mainWidget().wrappers
        if "LAYERS" in wrappers:  # as a user would have it: the images picked
            from qgis.core import QgsProcessingContext

            context = QgsProcessingContext()
            context.setProject(QgsProject.instance())
            wrappers["LAYERS"].setParameterValue([lyr.id() for lyr in layers], context)
        dialog.resize(QSize(980, 760))
        dialog.show()
        settle()
        path = os.path.join(out, f"dialog_{name}.png")
        dialog.grab().save(path)
        dialog.hide()
        written.append(path)
    return written


def viewer(out: str, bank: str) -> str:
    from stacksr.ui.kernel_viewer import KernelViewerDock

    dock = KernelViewerDock()
    dock.resize(760, 600)  # the size the plugin opens it at
    dock.load_bank(bank)
    dock.show()
    settle()
    path = os.path.join(out, "kernel_viewer.png")
    dock.grab().save(path)
    return path


def reports(out: str, demo: str) -> list[str]:
    from qgis.PyQt.QtGui import QImage, QPainter
    from qgis.PyQt.QtWebKitWidgets import QWebPage

    written = []
    for html_name, png_name in REPORTS.items():
        page = QWebPage()
        page.setViewportSize(QSize(1000, 800))
        loop = QEventLoop()
        page.mainFrame().loadFinished.connect(loop.quit)
        page.mainFrame().load(QUrl.fromLocalFile(os.path.abspath(os.path.join(demo, html_name))))
        loop.exec_()
        size = page.mainFrame().contentsSize()
        page.setViewportSize(QSize(1000, min(size.height(), 2400)))
        image = QImage(page.viewportSize(), QImage.Format.Format_RGB32)
        painter = QPainter(image)
        page.mainFrame().render(painter)
        painter.end()
        path = os.path.join(out, png_name)
        image.save(path)
        written.append(path)
    return written


def main() -> None:
    demo, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    app = QgsApplication([], True)
    app.initQgis()
    from processing.core.Processing import Processing

    from stacksr.processing_provider.provider import StackSRProvider

    Processing.initialize()
    provider = StackSRProvider()  # kept: the registry does not own a Python provider
    QgsApplication.processingRegistry().addProvider(provider)
    images = sorted(glob.glob(os.path.join(ROOT, "sample_data", "landsat7_b4", "*_b4.tif")))
    written = dialogs(out, images) + [viewer(out, os.path.join(demo, "kernels.npz"))] + reports(out, demo)
    for path in written:
        print("wrote", os.path.relpath(path, ROOT))
    os._exit(0)  # QGIS's exit can crash after Processing dialogs; everything is written


if __name__ == "__main__":
    main()
