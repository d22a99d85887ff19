"""Screenshots for docs/: every algorithm dialog, the Kernel viewer, the three run reports, the shipped model in the
Modeler, and the map as a run leaves it (layers panel beside it): a result on top of its inputs, the kernel
footprints.

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


def modeler(out: str) -> str:
    """The shipped model in the Graphical Modeler's own scene."""
    from qgis.core import QgsProcessingContext, QgsProcessingModelAlgorithm
    from qgis.gui import QgsModelGraphicsScene
    from qgis.PyQt.QtCore import QRectF
    from qgis.PyQt.QtGui import QColor, QImage, QPainter

    model = QgsProcessingModelAlgorithm()
    model.fromFile(os.path.join(ROOT, "examples", "stacksr_chain.model3"))
    scene = QgsModelGraphicsScene()
    scene.setModel(model)
    scene.createItems(model, QgsProcessingContext())
    rect = scene.itemsBoundingRect().adjusted(-20, -20, 20, 20)
    image = QImage(int(rect.width()), int(rect.height()), QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    scene.render(painter, QRectF(0, 0, rect.width(), rect.height()), rect)
    painter.end()
    path = os.path.join(out, "modeler_stacksr_chain.png")
    image.save(path)
    return path


def map_views(out: str, images: list[str]) -> list[str]:
    """Kernel estimation and super-resolution run as in the toolbox (their layers loaded and styled by the
    plugin's own post-processors), then the layers panel and the map: the stack's extent with the result on top
    of its inputs, and the kernel footprints at the stack's centre."""
    import processing
    from qgis.core import QgsMapRendererParallelJob, QgsMapSettings
    from qgis.gui import QgsLayerTreeView
    from qgis.core import QgsLayerTreeModel
    from qgis.PyQt.QtGui import QColor, QImage, QPainter

    project = QgsProject.instance()
    project.clear()
    inputs = [QgsRasterLayer(p, os.path.splitext(os.path.basename(p))[0]) for p in images]
    project.addMapLayers(inputs)
    tmp = os.path.join(out, ".map_tmp")
    os.makedirs(tmp, exist_ok=True)
    processing.runAndLoadResults("stacksr:estimatekernels", {
        "LAYERS": images, "SCALE": 3, "MODE": 1, "ITERATIONS": 60, "OUTPUT_BANK": os.path.join(tmp, "bank.npz"),
        "OUTPUT_LAYERS": os.path.join(tmp, "kernels")})
    processing.runAndLoadResults("stacksr:superresolve", {
        "LAYERS": images, "SCALE": 3, "OUTPUT": os.path.join(tmp, "sr.tif")})
    root = project.layerTreeRoot()
    model = QgsLayerTreeModel(root)  # kept: the view does not own it
    model.setFlag(QgsLayerTreeModel.Flag.ShowLegend, False)  # the layers' order, compact
    view = QgsLayerTreeView()
    view.setModel(model)
    view.expandAll()
    view.resize(360, 560)
    view.show()
    settle()
    tree = view.grab()
    written = []
    visible = [lyr for lyr in root.layerOrder() if root.findLayer(lyr.id()).isVisible()]
    kernels = root.findGroup("Kernels")
    for name, extent, layers in (
            ("map_result_on_inputs.png", inputs[0].extent(), visible),
            # the results unticked, as a user looking at the kernels would have them
            ("map_kernel_footprints.png", kernels.findLayers()[0].layer().extent(),
             [lyr for lyr in visible if kernels.findLayer(lyr.id()) is not None or lyr in inputs])):
        settings = QgsMapSettings()
        settings.setLayers(layers)
        settings.setDestinationCrs(inputs[0].crs())
        settings.setOutputSize(QSize(560, 560))
        settings.setExtent(extent.buffered(extent.width() * 0.15))
        settings.setBackgroundColor(QColor("white"))
        job = QgsMapRendererParallelJob(settings)
        job.start()
        job.waitForFinished()
        canvas = job.renderedImage()
        image = QImage(tree.width() + canvas.width(), max(tree.height(), canvas.height()), QImage.Format.Format_RGB32)
        image.fill(QColor("white"))
        painter = QPainter(image)
        painter.drawPixmap(0, 0, tree)
        painter.drawImage(tree.width(), 0, canvas)
        painter.end()
        path = os.path.join(out, name)
        image.save(path)
        written.append(path)
    project.clear()
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return written


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
    written = dialogs(out, images) + [viewer(out, os.path.join(demo, "kernels.npz"))] + reports(out, demo) \
        + [modeler(out)] + map_views(out, images)
    for path in written:
        print("wrote", os.path.relpath(path, ROOT))
    os._exit(0)  # QGIS's exit can crash after Processing dialogs; everything is written


if __name__ == "__main__":
    main()
