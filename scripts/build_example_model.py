"""Writes examples/stacksr_chain.model3: estimate kernels -> train self-supervised -> super-resolve.

Run with ``make example-model`` (real QGIS, offscreen). The model exposes the stack, its
masks and the main budgets as model parameters, so it runs unchanged in the Graphical
Modeler, in batch mode and through qgis_process.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT = os.path.join(ROOT, "examples", "stacksr_chain.model3")


def build():
    from qgis.core import (
        QgsProcessing, QgsProcessingModelAlgorithm, QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource as Src, QgsProcessingModelOutput, QgsProcessingModelParameter,
        QgsProcessingParameterMultipleLayers, QgsProcessingParameterNumber,
    )
    from stacksr.core import params as P

    model = QgsProcessingModelAlgorithm("stacksr_chain", "Estimate kernels, train and super-resolve", "StackSR")
    model.setHelpContent({"ALG_DESC": "Chains the three StackSR algorithms on one time series: DIP-FKP kernel "
                                      "estimation (joint), self-supervised PIUNet training with those kernels, and "
                                      "PIUNet + test-time finetuning super-resolution of the same stack."})
    params = [
        QgsProcessingParameterMultipleLayers("stack", "Time series (one raster per date)", QgsProcessing.TypeRaster),
        QgsProcessingParameterMultipleLayers("masks", "Cloud/quality masks (same order)",
                                             QgsProcessing.TypeRaster, optional=True),
        # labels short enough for QGIS's default dialog width; the details go to the help (the widget's tooltip)
        QgsProcessingParameterNumber("kernel_iterations", "Kernel estimation iterations",
                                     QgsProcessingParameterNumber.Type.Integer, None, optional=True, minValue=1),
        QgsProcessingParameterNumber("train_steps", "Training steps", QgsProcessingParameterNumber.Type.Integer,
                                     500, minValue=1),
        QgsProcessingParameterNumber("ttf_iterations", "TTF iterations", QgsProcessingParameterNumber.Type.Integer,
                                     P.TTF_ITERATIONS.default, minValue=1),
    ]
    params[1].setHelp("One mask raster per image, in the images' order (optional)")
    params[2].setHelp("Empty: the kernel estimation mode's default")
    from qgis.PyQt.QtCore import QPointF, QSizeF

    # boxes wide and tall enough for the two-line labels (QGIS's default 200 x 30 clipped them); inputs in a column
    # on the left, the three steps on a diagonal, each output under its step
    box = QSizeF(260, 50)
    for i, p in enumerate(params):
        mp = QgsProcessingModelParameter(p.name())
        mp.setPosition(QPointF(150, 80 + 80 * i))
        mp.setSize(box)
        model.addModelParameter(p, mp)
    if hasattr(model, "setParameterOrder"):  # the dialog lists the inputs in this order (QGIS 3.26+; else by name)
        model.setParameterOrder([p.name() for p in params])

    def child(alg_id, child_id, sources, outputs, x, y):
        c = QgsProcessingModelChildAlgorithm(alg_id)
        c.setChildId(child_id)
        c.setDescription(c.algorithm().displayName())
        for p in c.algorithm().parameterDefinitions():
            if p.name() in sources:
                c.addParameterSources(p.name(), [sources[p.name()]])
            elif not p.isDestination() and p.defaultValue() is not None:
                c.addParameterSources(p.name(), [Src.fromStaticValue(p.defaultValue())])  # as the Modeler GUI does
        outs = {}
        for name, child_output in outputs.items():  # named as a Modeler user names them: the box shows the name
            o = QgsProcessingModelOutput(name, name)
            o.setChildOutputName(child_output)
            o.setChildId(child_id)
            o.setPosition(QPointF(x + 60, y + 110))
            o.setSize(QSizeF(200, 40))
            outs[name] = o
        c.setModelOutputs(outs)
        c.setPosition(QPointF(x, y))
        c.setSize(box)
        return c

    stack, masks = Src.fromModelParameter("stack"), Src.fromModelParameter("masks")
    kernels = child("stacksr:estimatekernels", "kernels", {
        "LAYERS": stack, "MASKS": masks, "MODE": Src.fromStaticValue(1),
        "ITERATIONS": Src.fromModelParameter("kernel_iterations")}, {"Kernel bank": "OUTPUT_BANK"}, 520, 100)
    train = child("stacksr:trainselfsupervised", "train", {
        "LAYERS": stack, "MASKS": masks, "KERNEL_BANK": Src.fromChildOutput("kernels", "OUTPUT_BANK"),
        "STEPS": Src.fromModelParameter("train_steps")}, {"Trained model": "OUTPUT_MODEL"}, 860, 220)
    sr = child("stacksr:superresolve", "sr", {
        "LAYERS": stack, "MASKS": masks, "MODEL": Src.fromChildOutput("train", "OUTPUT_MODEL"),
        "METHOD": Src.fromStaticValue(0), "TTF_ITERATIONS": Src.fromModelParameter("ttf_iterations")},
        {"Super-resolved raster": "OUTPUT"}, 1200, 340)
    for c in (kernels, train, sr):
        model.addChildAlgorithm(c)
    return model


def main() -> int:
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    sys.path.append("/usr/share/qgis/python/plugins")
    from processing.core.Processing import Processing

    Processing.initialize()
    from stacksr.processing_provider.provider import StackSRProvider

    provider = StackSRProvider()  # keep a reference: the registry does not own Python providers
    QgsApplication.processingRegistry().addProvider(provider)
    model = build()
    ok, errors = model.validate()
    if not ok:
        print("invalid model: " + "; ".join(errors), file=sys.stderr)
        return 1
    os.makedirs(os.path.dirname(OUTPUT), exist_ok=True)
    if not model.toFile(OUTPUT):
        print(f"could not write {OUTPUT}", file=sys.stderr)
        return 1
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
