"""Algorithm: score a super-resolved raster against a reference (cPSNR, PSNR, SSIM)."""
import json

from qgis.core import (
    QgsProcessingOutputNumber, QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterLayer, QgsProcessingParameterString,
)

from ...core import params as P
from ...core.job_settings import ScoreSettings
from ...core.choices import FMASK_INVALID_VALUES
from .base import StackSRAlgorithm


class ScoreAgainstReference(StackSRAlgorithm):
    ICON = "score"
    SR, REFERENCE, REFERENCE_MASK, MAX_SHIFT, DATA_RANGE, OUTPUT_JSON = (
        "SR", "REFERENCE", "REFERENCE_MASK", "MAX_SHIFT", "DATA_RANGE", "OUTPUT_JSON")
    SCORES = {"CPSNR": ("cpsnr", "cPSNR (dB)"), "PSNR": ("psnr", "PSNR (dB)"), "SSIM": ("ssim", "SSIM")}  # output: (job key, label)

    def name(self):
        return "score"

    def displayName(self):  # noqa: N802
        return "Score against a reference (cPSNR)"

    def shortDescription(self):  # noqa: N802 - the toolbox's tooltip
        return "Proba-V cPSNR, PSNR and SSIM of a super-resolved raster against a reference raster."

    def group(self):
        return "Evaluation"

    def groupId(self):  # noqa: N802
        return "evaluation"

    def shortHelpString(self):  # noqa: N802
        return (
            "Compares a super-resolved raster with a high-resolution reference of the same grid.\n\n"
            "cPSNR is the Proba-V challenge metric: the reference is cropped by the maximum shift on every "
            "border, the SR image is tried at every shift up to that maximum, the mean brightness bias over "
            "clear reference pixels is removed, and the best score is kept. PSNR and SSIM are plain scores over "
            "valid pixels. Data range: the full range of the reference's integer type (as Proba-V scores on "
            "[0, 1] images), unless given."
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.SR, "Super-resolved raster"))
        self.addParameter(QgsProcessingParameterRasterLayer(self.REFERENCE, "High-resolution reference raster"))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.REFERENCE_MASK, "Reference quality/cloud mask", optional=True))
        values = QgsProcessingParameterString(
            self.MASK_INVALID_VALUES, "Mask values that mark invalid pixels",
            ",".join(str(v) for v in FMASK_INVALID_VALUES), optional=True)
        shift = self.number(self.MAX_SHIFT, "Maximum shift searched (pixels; also the border crop)", P.MAX_SHIFT)
        data_range = self.number(self.DATA_RANGE, "Data range (empty: the full range of the reference's data type)",
                                 P.DATA_RANGE, legacy=0.0)
        for p in (values, shift, data_range):
            self.add(p, advanced=True)
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_JSON, "Scores (JSON)", "JSON files (*.json)", optional=True, createByDefault=False))
        for name, (_, label) in self.SCORES.items():
            self.addOutput(QgsProcessingOutputNumber(name, label))

    def run_job(self, parameters, context, feedback, monitor):
        from ...core.jobs.score_job import run_score  # torch is imported only when running

        sr = self.parameterAsRasterLayer(parameters, self.SR, context)
        ref = self.parameterAsRasterLayer(parameters, self.REFERENCE, context)
        mask = self.parameterAsRasterLayer(parameters, self.REFERENCE_MASK, context)
        data_range = self.optional_number(parameters, self.DATA_RANGE, context, legacy=0.0)
        scores = run_score(ScoreSettings(
            sr.source(), ref.source(), mask.source() if mask is not None else None,
            invalid_mask_values=self.invalid_mask_values(parameters, context),
            max_shift=self.parameterAsInt(parameters, self.MAX_SHIFT, context),
            data_range=data_range,
        ))
        feedback.pushInfo(f"cPSNR {scores['cpsnr']:.3f} dB (shift {scores['shift']}), PSNR {scores['psnr']:.3f} dB, SSIM {scores['ssim']:.4f}")
        results = {name: scores[key] for name, (key, _) in self.SCORES.items()}
        out_json = self.parameterAsFileOutput(parameters, self.OUTPUT_JSON, context)
        if out_json:
            with open(out_json, "w", encoding="utf-8") as fh:
                json.dump(scores, fh, indent=2)
            results[self.OUTPUT_JSON] = out_json
        return results
