"""Adapter from core progress/cancel to QgsProcessingFeedback."""
from qgis.core import QgsProcessingFeedback

from ..core.progress import Monitor


class FeedbackMonitor(Monitor):
    """Progress to the dialog's bar; progress texts to its log at most every :data:`TEXT_EVERY` of the
    run (and whenever the stage changes), so 500 training steps give about 20 lines, not 500."""

    TEXT_EVERY = 0.05

    def __init__(self, feedback: QgsProcessingFeedback):
        super().__init__()
        self.feedback = feedback
        self._last_text, self._last_stage = -1.0, ""

    def _emit(self, fraction: float, message: str) -> None:
        self.feedback.setProgress(100.0 * fraction)
        stage = message.split(" ", 1)[0]
        if message and (fraction - self._last_text >= self.TEXT_EVERY or stage != self._last_stage or fraction >= 1.0):
            self._last_text, self._last_stage = fraction, stage
            self.feedback.setProgressText(message)

    def is_cancelled(self) -> bool:
        return self.feedback.isCanceled()

    def info(self, message: str) -> None:
        self.feedback.pushInfo(message)
