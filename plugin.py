"""QGIS plugin object: registers the StackSR Processing provider; in the GUI, adds the kernel
viewer and the PyTorch installer to the Plugins menu.

Nothing touches ``iface`` before ``initGui``, so headless ``qgis_process`` works.
"""
import importlib.util
import os

from qgis.core import Qgis, QgsApplication, QgsProject
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction, QPushButton

from .deps import PLUGIN_DIR, deps_dir
from .processing_provider.provider import StackSRProvider

MENU = "&StackSR"
EDIT_MODEL = "Edit the example model in the Graphical Modeler..."
SHOW_IN_VIEWER = "Show in the Kernel viewer"


class StackSRPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider = None
        self.actions = []
        self.viewer = None

    def initProcessing(self):  # noqa: N802 (QGIS API name)
        if self.provider is None:
            self.provider = StackSRProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802
        self.initProcessing()
        icon = QIcon(os.path.join(PLUGIN_DIR, "icon.svg"))
        for text, slot in (("Kernel viewer", self.show_kernel_viewer), ("Install PyTorch...", self.show_installer),
                           (EDIT_MODEL, self.edit_example_model)):
            action = QAction(icon, text, self.iface.mainWindow())
            action.triggered.connect(slot)
            self.iface.addPluginToMenu(MENU, action)
            self.actions.append(action)
        if importlib.util.find_spec("torch") is None:
            bar = self.iface.messageBar()
            item = bar.createMessage("StackSR", "PyTorch is not installed: the deep-learning algorithms need it.")
            button = QPushButton("Install PyTorch...")
            button.clicked.connect(self.show_installer)
            item.layout().addWidget(button)
            bar.pushWidget(item)

    def show_kernel_viewer(self):
        from .ui.kernel_viewer import KernelViewerDock

        if self.viewer is None:
            self.viewer = KernelViewerDock(self.iface.mainWindow())
            self.viewer.kernel_clicked.connect(self.select_kernel_layer)
            self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.viewer)
            # docked under the Processing Toolbox it got a ~100 px strip: open floating, at a size that shows a bank
            self.viewer.setFloating(True)
            self.viewer.resize(760, 600)
        self.viewer.show()
        self.viewer.raise_()

    def offer_kernel_viewer(self, bank: str, title: str) -> None:
        """A bank just estimated: into the Kernel viewer when it is open, else a message with a button that opens it."""
        if self.viewer is not None and self.viewer.isVisible():
            self.viewer.load_bank(bank, title)
            return
        bar = self.iface.messageBar()
        item = bar.createMessage("StackSR", f"{title[:1].upper()}{title[1:]} estimated.")
        button = QPushButton(SHOW_IN_VIEWER)

        def show():
            self.show_kernel_viewer()
            self.viewer.load_bank(bank, title)
            bar.popWidget(item)

        button.clicked.connect(show)
        item.layout().addWidget(button)
        bar.pushWidget(item, Qgis.MessageLevel.Info, 30)

    def select_kernel_layer(self, image: str, bank: str) -> bool:
        """Make the kernel layer of ``image`` (from ``bank``, when known) the active layer: selected in the
        Layers panel and ready for zooming. The newest such layer wins (reruns of the same images)."""
        from .processing_provider.layer_styles import KERNEL_BANK, KERNEL_IMAGE

        matches = [layer for layer in QgsProject.instance().layerTreeRoot().layerOrder()
                   if layer.customProperty(KERNEL_IMAGE) == image and (not bank or layer.customProperty(KERNEL_BANK) == bank)]
        if not matches:
            self.iface.messageBar().pushInfo("StackSR", f"No kernel layer of {image} is loaded.")
            return False
        self.iface.setActiveLayer(matches[0])
        return True

    def edit_example_model(self):
        """The shipped model lives in the plugin's folder, which the toolbox offers no Edit Model for: open a copy in
        the Modeler, with no file behind it, so that saving asks where (the plugin's own file is never changed)."""
        from processing.modeler.ModelerDialog import ModelerDialog
        from qgis.core import QgsProcessingModelAlgorithm

        from .processing_provider.provider import EXAMPLE_MODEL

        model = QgsProcessingModelAlgorithm()
        model.fromFile(EXAMPLE_MODEL)
        model.setSourceFilePath("")
        dialog = ModelerDialog.create(model)
        dialog.show()
        return dialog

    def show_installer(self):
        from .ui.deps_dialog import InstallDependenciesDialog

        InstallDependenciesDialog(deps_dir(QgsApplication.qgisSettingsDirPath()), parent=self.iface.mainWindow()).exec_()

    def unload(self):
        for action in self.actions:
            self.iface.removePluginMenu(MENU, action)
        self.actions = []
        if self.viewer is not None:
            self.iface.removeDockWidget(self.viewer)
            self.viewer.deleteLater()
            self.viewer = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
