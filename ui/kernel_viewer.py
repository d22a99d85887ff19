"""Kernel viewer: a dock showing the kernels of a kernel bank as a grid, each with the image it
was estimated from and its fitted Gaussian (sigmas in output pixels, angle from east)."""
from __future__ import annotations

import math
import os

import numpy as np
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QImage, QPixmap
from qgis.PyQt.QtWidgets import (
    QDockWidget, QFileDialog, QFrame, QGridLayout, QHBoxLayout, QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget,
)

from ..core.io.kernel_bank import KernelBank, KernelBankError, colorize_kernel, short_name

ZOOM = 8  # screen pixels per kernel pixel (nearest neighbour: kernels are tiny)
CELL_WIDTH = 150  # screen pixels a kernel cell needs; the columns follow the dock's width


def kernel_pixmap(kernel: np.ndarray, zoom: int = ZOOM, peak: float | None = None) -> QPixmap:
    """The kernel in the gallery's colour ramp (0 to ``peak``: the bank's, so kernels compare), enlarged
    without smoothing."""
    rgb = np.ascontiguousarray(np.kron(colorize_kernel(kernel, peak), np.ones((zoom, zoom, 1), dtype=np.uint8)))
    h, w, _ = rgb.shape
    image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(image.copy())  # copy: the QImage must not outlive the numpy buffer


class _Cell(QFrame):
    """One kernel with its caption; a click reports the kernel's image name."""

    def __init__(self, name: str, on_click):
        super().__init__()
        self.name, self._on_click = name, on_click
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip(f"{name}\nClick: select its kernel layer")

    def mouseReleaseEvent(self, event):  # noqa: N802 - Qt's hook
        if event.button() == Qt.MouseButton.LeftButton:
            self._on_click(self)
        super().mouseReleaseEvent(event)

    def set_selected(self, selected: bool) -> None:
        self.setFrameShape(QFrame.Shape.Box if selected else QFrame.Shape.NoFrame)
        self.setLineWidth(2 if selected else 0)


class KernelViewerDock(QDockWidget):
    """``load_bank(path)`` or ``set_bank(bank, title)`` fills the grid; "Open kernel bank..." asks for a file.
    Clicking a kernel emits ``kernel_clicked(image name, bank path)`` (the plugin selects its layer)."""

    kernel_clicked = pyqtSignal(str, str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__("StackSR kernels", parent)
        self.setObjectName("StackSRKernelViewer")
        self.bank: KernelBank | None = None
        self.bank_path = ""
        self._cells: list[QWidget] = []
        self._arranged = 0  # the number of columns the cells are laid out in
        body = QWidget()
        layout = QVBoxLayout(body)
        top = QHBoxLayout()
        self.summary = QLabel("No kernel bank loaded.")
        self.summary.setWordWrap(True)
        self.open_button = QPushButton("Open kernel bank...")
        self.open_button.clicked.connect(self._ask_for_bank)
        top.addWidget(self.summary, 1)
        top.addWidget(self.open_button)
        layout.addLayout(top)
        self.grid_host = QWidget()
        self.grid = QGridLayout(self.grid_host)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.grid_host)
        layout.addWidget(scroll, 1)
        self.setWidget(body)

    def _ask_for_bank(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a StackSR kernel bank", "", "StackSR kernel bank (*.npz)")
        if path:
            self.load_bank(path)

    def load_bank(self, path: str, title: str = "") -> None:
        """Show the bank at ``path`` under ``title`` (default: the file's name; a run's bank is often a temporary
        file named after the parameter, so the algorithm passes its run's title); an unreadable file shows its
        error instead of raising."""
        try:
            bank = KernelBank.load(path)
        except KernelBankError as exc:
            self._clear()
            self.bank, self.bank_path = None, ""
            self.summary.setText(f"<b>Cannot show kernels:</b> {exc}")
            return
        self.set_bank(bank, title or os.path.basename(path))
        self.bank_path = os.path.abspath(path)

    def set_bank(self, bank: KernelBank, title: str = "") -> None:
        self._clear()
        self.bank, self.bank_path = bank, ""
        mode = bank.meta.get("mode", "?")
        self.summary.setText(f"<b>{title or 'kernel bank'}</b>: {len(bank.names)} kernels, {bank.size}x{bank.size} at "
                             f"x{bank.scale} ({mode}); sigmas in output pixels, angle counter-clockwise from east")
        peak = bank.peak
        for kernel, name, fit in zip(bank.kernels, bank.names, bank.fits()):
            cell = _Cell(name, self._clicked)
            box = QVBoxLayout(cell)
            image = QLabel()
            image.setPixmap(kernel_pixmap(kernel, peak=peak))
            image.setAlignment(Qt.AlignmentFlag.AlignCenter)
            caption = QLabel(f"{short_name(name)}\n\u03c3\u2081 {fit.sigma1:.2f}  \u03c3\u2082 {fit.sigma2:.2f}  "
                             f"\u03b8 {math.degrees(fit.theta):.0f}\u00b0")
            caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
            box.addWidget(image)
            box.addWidget(caption)
            self._cells.append(cell)
        self._arrange()

    def _clicked(self, cell: _Cell) -> None:
        for other in self._cells:
            other.set_selected(other is cell)
        self.kernel_clicked.emit(cell.name, self.bank_path)

    def click(self, index: int) -> None:
        """Act as a click on the ``index``-th kernel (what a test or a keyboard action does)."""
        self._clicked(self._cells[index])

    def columns(self) -> int:
        """As many columns as the dock's width holds (at least one)."""
        return max(1, (self.width() - 30) // CELL_WIDTH)

    def _arrange(self) -> None:
        for cell in self._cells:
            self.grid.removeWidget(cell)
        self._arranged = self.columns()
        for i, cell in enumerate(self._cells):
            self.grid.addWidget(cell, i // self._arranged, i % self._arranged)

    def cell_columns(self) -> set[int]:
        """The grid columns the kernel cells occupy now."""
        return {self.grid.getItemPosition(self.grid.indexOf(cell))[1] for cell in self._cells}

    def resizeEvent(self, event):  # noqa: N802 - Qt's hook: the columns follow the width
        super().resizeEvent(event)
        if self._cells and self._arranged != self.columns():
            self._arrange()

    def cell_count(self) -> int:
        return len(self._cells)

    def _clear(self) -> None:
        self._cells = []
        while self.grid.count():
            item = self.grid.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
