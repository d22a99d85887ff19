"""A Graphical Modeler model chaining estimate kernels -> train -> super-resolve, run headless."""
import os

from osgeo import gdal


def _chain_model():
    from qgis.core import (
        QgsProcessing, QgsProcessingModelAlgorithm, QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource as Src, QgsProcessingModelOutput, QgsProcessingModelParameter,
        QgsProcessingParameterMultipleLayers,
    )

    model = QgsProcessingModelAlgorithm("stacksr_chain", "StackSR chain")
    model.addModelParameter(QgsProcessingParameterMultipleLayers("stack", "Stack", QgsProcessing.TypeRaster),
                            QgsProcessingModelParameter("stack"))

    def child(alg_id, child_id, sources):
        c = QgsProcessingModelChildAlgorithm(alg_id)
        c.setChildId(child_id)
        for p in c.algorithm().parameterDefinitions():
            if p.name() in sources:
                c.addParameterSources(p.name(), [sources[p.name()]])
            elif not p.isDestination() and p.defaultValue() is not None:
                c.addParameterSources(p.name(), [Src.fromStaticValue(p.defaultValue())])  # as the Modeler GUI does
        return c

    stack = Src.fromModelParameter("stack")
    kernels = child("stacksr:estimatekernels", "kernels", {"LAYERS": stack, "MODE": Src.fromStaticValue(1),
                                                           "ITERATIONS": Src.fromStaticValue(20)})
    train = child("stacksr:trainselfsupervised", "train", {
        "LAYERS": stack, "KERNEL_BANK": Src.fromChildOutput("kernels", "OUTPUT_BANK"),
        "STEPS": Src.fromStaticValue(2), "BATCH": Src.fromStaticValue(2)})
    sr = child("stacksr:superresolve", "sr", {
        "LAYERS": stack, "MODEL": Src.fromChildOutput("train", "OUTPUT_MODEL"), "METHOD": Src.fromStaticValue(0),
        "TTF_ITERATIONS": Src.fromStaticValue(3)})
    out = QgsProcessingModelOutput("sr_output", "Super-resolved")
    out.setChildOutputName("OUTPUT")
    sr.setModelOutputs({"sr_output": out})
    for c in (kernels, train, sr):
        model.addChildAlgorithm(c)
    return model


def test_model_chains_kernel_estimation_training_and_superresolution(qgis_app, sample_images, tmp_path):
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    model = _chain_model()
    ok, errors = model.validate()
    assert ok, errors
    out = str(tmp_path / "chain_sr.tif")
    dest = [p.name() for p in model.destinationParameterDefinitions()]
    assert dest == ["sr:sr_output"]
    res = processing.run(model, {"stack": sample_images, "sr:sr_output": out},
                         context=QgsProcessingContext(), feedback=QgsProcessingFeedback())
    assert res["sr:sr_output"] == out and os.path.exists(out)
    ds = gdal.Open(out)
    assert (ds.RasterXSize, ds.RasterYSize) == (183, 183) and ds.GetMetadataItem("STACKSR_METHOD") == "piunet+ttf"
    ds = None
