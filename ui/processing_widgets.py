"""Widgets of the algorithm dialogs: the scale as a choice list ("x2", "x3", "x4") and the reference
date chosen among the images picked as input.

The parameters behind them stay plain integers (the scale; the 0-based reference index, empty for
"the clearest"), so scripts, qgis_process, batch runs and saved graphical models keep passing
numbers; only the standard dialog shows choices. Attached through the parameters' ``widget_wrapper``
metadata, imported by Processing only when a dialog is built.
"""
from __future__ import annotations

import os

from processing.gui.wrappers import DIALOG_STANDARD, WidgetWrapper
from qgis.core import QgsProcessingModelChildParameterSource, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QComboBox, QLineEdit

from ..core.convention import SUPPORTED_SCALES

CLEAREST = "Automatic: the clearest (ties: the most typical)"


def _static(value):
    """A graphical model hands its stored source; the widget shows its static value."""
    if isinstance(value, QgsProcessingModelChildParameterSource):
        return value.staticValue()
    return value


def _as_int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class _NumberFallback:
    """Outside the standard dialog (batch, modeler) the number is typed, as Processing does for numbers."""

    def _line_edit(self) -> QLineEdit:
        edit = QLineEdit()
        edit.textChanged.connect(lambda: self.widgetValueHasChanged.emit(self))
        return edit


class ScaleChoiceWrapper(WidgetWrapper, _NumberFallback):
    """The scale factor as "x2" / "x3" / "x4"; the value is the integer."""

    def createWidget(self):  # noqa: N802 - Processing's API
        if self.dialogType != DIALOG_STANDARD:
            return self._line_edit()
        combo = QComboBox()
        for s in SUPPORTED_SCALES:
            combo.addItem(f"x{s}", s)
        combo.currentIndexChanged.connect(lambda: self.widgetValueHasChanged.emit(self))
        return combo

    def setValue(self, value):  # noqa: N802
        value = _as_int(_static(value))
        if isinstance(self.widget, QComboBox):
            index = self.widget.findData(value)
            if index >= 0:
                self.widget.setCurrentIndex(index)
        else:
            self.widget.setText("" if value is None else str(value))

    def value(self):
        if isinstance(self.widget, QComboBox):
            return self.widget.currentData()
        return _as_int(self.widget.text())


def _input_names(value) -> list[str]:
    """Display names of a multiple-layer parameter's value (layer ids, layers or paths)."""
    names = []
    for item in value if isinstance(value, (list, tuple)) else ([value] if value else []):
        layer = item if isinstance(item, QgsRasterLayer) else QgsProject.instance().mapLayer(str(item))
        names.append(layer.name() if layer is not None else os.path.splitext(os.path.basename(str(item)))[0])
    return names


class ReferenceChoiceWrapper(WidgetWrapper, _NumberFallback):
    """The reference date picked among the images chosen as input (or the bands of the multiband
    raster); the value is the 0-based index in the stack, ``None`` for the clearest image."""

    LAYERS, MULTIBAND, BANDS = "LAYERS", "MULTIBAND", "BANDS"

    def createWidget(self):  # noqa: N802
        self._pending = None
        if self.dialogType != DIALOG_STANDARD:
            return self._line_edit()
        combo = QComboBox()
        combo.addItem(CLEAREST, None)
        combo.currentIndexChanged.connect(lambda: self.widgetValueHasChanged.emit(self))
        return combo

    def postInitialize(self, wrappers):  # noqa: N802 - once every wrapper of the dialog exists
        if not isinstance(self.widget, QComboBox):
            return
        self._inputs = {w.parameterDefinition().name(): w for w in wrappers
                        if w.parameterDefinition().name() in (self.LAYERS, self.MULTIBAND, self.BANDS)}
        for w in self._inputs.values():
            w.widgetValueHasChanged.connect(lambda *_: self.refill())
        self.refill()

    def choices(self) -> list[str]:
        """The names the combo offers after "the clearest", in stack order."""
        layers = self._inputs.get(self.LAYERS)
        names = _input_names(layers.parameterValue()) if layers is not None else []
        if not names and self.MULTIBAND in self._inputs:
            value = self._inputs[self.MULTIBAND].parameterValue()
            layer = value if isinstance(value, QgsRasterLayer) else QgsProject.instance().mapLayer(str(value or ""))
            if layer is None and value:
                layer = QgsRasterLayer(str(value), "multiband")
            if layer is not None and layer.isValid():
                # the stack is the bands picked, in their order: the reference is an index into them
                picked = self._inputs[self.BANDS].parameterValue() if self.BANDS in self._inputs else None
                picked = [int(b) for b in (picked if isinstance(picked, (list, tuple)) else [picked] if picked else [])]
                bands = [b for b in picked if 1 <= b <= layer.bandCount()] or range(1, layer.bandCount() + 1)
                names = [f"Band {b}: {layer.bandName(b)}" for b in bands]
        return names

    def refill(self) -> None:
        combo = self.widget
        keep = combo.currentData() if self._pending is None else self._pending
        combo.blockSignals(True)
        combo.clear()
        combo.addItem(CLEAREST, None)
        for i, name in enumerate(self.choices()):
            combo.addItem(name, i)
        index = combo.findData(keep) if keep is not None else 0
        combo.setCurrentIndex(max(index, 0))
        self._pending = keep if index < 0 else None  # an index beyond today's inputs waits for them
        combo.blockSignals(False)
        self.widgetValueHasChanged.emit(self)

    def setValue(self, value):  # noqa: N802
        value = _as_int(_static(value))
        if isinstance(self.widget, QComboBox):
            index = self.widget.findData(value) if value is not None else 0
            self._pending = value if index < 0 else None
            self.widget.setCurrentIndex(max(index, 0))
        else:
            self.widget.setText("" if value is None else str(value))

    def value(self):
        if isinstance(self.widget, QComboBox):
            return self.widget.currentData() if self._pending is None else self._pending
        return _as_int(self.widget.text())


class EarlierOutputWrapper(WidgetWrapper):
    """A file input the standard dialog fills from the files earlier StackSR runs of this session wrote (the
    kernel bank of step 1 for step 2, the model of step 2 for step 3; newest first), still editable and with a
    file browser; empty keeps the parameter's own meaning. Elsewhere (batch, modeler) a plain file picker. The
    value is the path, or None."""

    def createWidget(self):  # noqa: N802
        from qgis.gui import QgsFileWidget
        from qgis.PyQt.QtWidgets import QHBoxLayout, QToolButton, QWidget

        from ..processing_provider.recent_outputs import recent

        ext = self.parameterDefinition().extension()
        self._filter = f"{ext.upper()} files (*.{ext});;All files (*)" if ext else "All files (*)"
        if self.dialogType != DIALOG_STANDARD:
            picker = QgsFileWidget()
            picker.setFilter(self._filter)
            picker.fileChanged.connect(lambda *_: self.widgetValueHasChanged.emit(self))
            return picker
        self.combo = QComboBox()
        self.combo.setEditable(True)
        # long temporary paths must not widen the dialog beyond QGIS's own size (pickers behind a scrollbar)
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(20)
        self.combo.addItem("")
        for path in recent(self.parameterDefinition().metadata().get("stacksr_recent", "")):
            self.combo.addItem(path)
            self.combo.setItemData(self.combo.count() - 1, path, Qt.ItemDataRole.ToolTipRole)
        label = self.parameterDefinition().help() or self.parameterDefinition().description()  # the whole label
        if "empty: " in label:
            self.combo.lineEdit().setPlaceholderText("empty: " + label.split("empty: ")[-1].rstrip(")"))
        if self.combo.count() > 1:
            self.combo.setCurrentIndex(1)  # the newest: what a user running the steps in order wants
        self.combo.currentIndexChanged.connect(lambda *_: self.widgetValueHasChanged.emit(self))
        self.combo.editTextChanged.connect(lambda *_: self.widgetValueHasChanged.emit(self))
        browse = QToolButton()
        browse.setText("…")
        browse.setToolTip("Select file")
        browse.clicked.connect(self._browse)
        box = QWidget()
        layout = QHBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.combo)
        layout.addWidget(browse)
        return box

    def _browse(self) -> None:
        from qgis.PyQt.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(self.widget, "Select file", os.path.dirname(self.value() or ""),
                                              self._filter)
        if path:
            self.setValue(path)

    def setValue(self, value):  # noqa: N802
        value = _static(value)
        text = "" if value in (None, "") else str(value)
        if self.dialogType != DIALOG_STANDARD:
            self.widget.setFilePath(text)
            return
        index = self.combo.findText(os.path.abspath(text)) if text else 0
        if index >= 0:
            self.combo.setCurrentIndex(index)
        else:
            self.combo.setEditText(text)

    def value(self):
        if self.dialogType != DIALOG_STANDARD:
            return self.widget.filePath() or None
        return self.combo.currentText().strip() or None  # an item's text is its path
