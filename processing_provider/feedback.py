"""Adapter from core progress/cancel to QgsProcessingFeedback."""
from qgis.core import QgsProcessingFeedback

from ..core.progress import Monitor


class FeedbackMonitor(Monitor):
    def __init__(self, feedback: QgsProcessingFeedback):
        super().__init__()
        self.feedback = feedback

    def _emit(self, fraction: float, message: str) -> None:
        self.feedback.setProgress(100.0 * fraction)
        if message:
            self.feedback.setProgressText(message)

    def is_cancelled(self) -> bool:
        return self.feedback.isCanceled()

    def info(self, message: str) -> None:
        self.feedback.pushInfo(message)
