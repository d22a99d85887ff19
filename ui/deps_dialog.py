"""Dialog that installs the pinned PyTorch into StackSR's plugin-owned folder (see deps.py)."""
from __future__ import annotations

import importlib.util

from qgis.PyQt.QtCore import QProcess
from qgis.PyQt.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout

from ..deps import activate, install_command, prune


class InstallDependenciesDialog(QDialog):
    """Shows what will be installed and where, runs pip in a QProcess (QGIS stays responsive) and
    streams its output. ``requirement`` defaults to the pinned torch of requirements.txt."""

    def __init__(self, folder: str, requirement: str | None = None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("StackSR: install PyTorch")
        self.folder = folder
        self.command = install_command(folder, requirement)
        self.succeeded: bool | None = None
        have = importlib.util.find_spec("torch") is not None
        intro = QLabel(
            ("PyTorch is already importable; installing again updates StackSR's own copy.<br/>" if have else "")
            + f"StackSR will run:<br/><code>{' '.join(self.command)}</code><br/>into a folder of its own, "
              "which it adds to QGIS's Python when the plugin loads. numpy and GDAL stay the ones QGIS uses. "
              "Restart QGIS afterwards.")
        intro.setWordWrap(True)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.status = QLabel("")
        self.install_button = QPushButton("Install")
        self.install_button.clicked.connect(self.start)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.install_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for w in (intro, self.log, self.status, buttons):
            layout.addWidget(w)
        self.resize(640, 420)
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        self.process.readyReadStandardOutput.connect(self._read_output)
        self.process.finished.connect(self._finished)
        self.process.errorOccurred.connect(self._failed_to_start)

    def start(self) -> None:
        self.install_button.setEnabled(False)
        self.succeeded = None
        self.status.setText("Installing... (the download is large; this can take minutes)")
        self.process.start(self.command[0], self.command[1:])

    def _read_output(self) -> None:
        self.log.appendPlainText(bytes(self.process.readAllStandardOutput()).decode(errors="replace").rstrip())

    def _finished(self, code: int, _status) -> None:
        self.install_button.setEnabled(True)
        if code == 0:
            removed = prune(self.folder)
            activate(self.folder)
            self.succeeded = True
            self.status.setText("Installed. Restart QGIS to use the StackSR algorithms that need PyTorch."
                                + (f" (Removed {', '.join(removed)}: QGIS's own are used.)" if removed else ""))
        else:
            self.succeeded = False
            self.status.setText(f"pip failed (exit code {code}); see the log above. Is pip installed for "
                                f"{self.command[0]}? On Debian/Ubuntu: sudo apt install python3-pip")

    def _failed_to_start(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.install_button.setEnabled(True)
            self.succeeded = False
            self.status.setText(f"Could not start {self.command[0]}.")
