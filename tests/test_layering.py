"""Architecture rules: core/ imports no QGIS or Qt; metadata is consistent."""
import ast
import configparser
import glob
import os

from conftest import ROOT


def test_core_never_imports_qgis_or_qt():
    for path in glob.glob(os.path.join(ROOT, "core", "**", "*.py"), recursive=True):
        tree = ast.parse(open(path, encoding="utf-8").read())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for n in names:
                assert not n.split(".")[0] in {"qgis", "PyQt5", "PyQt6", "processing"}, f"{path} imports {n}"


def test_the_network_prior_and_ttf_code_import_without_gdal():
    """Training, TTF and inference run where GDAL is missing (a GPU machine with only PyTorch)."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['osgeo'] = None\n"
            "import stacksr.core.ttf, stacksr.core.training, stacksr.core.inference, stacksr.core.model_files\n"
            "import stacksr.core.fkp, stacksr.core.kernel_estimation, stacksr.core.registration")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-1500:]


def test_metadata_declares_processing_provider_and_version():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "metadata.txt"))
    general = cfg["general"]
    assert general["hasProcessingProvider"] == "yes"
    from stacksr.core import __version__

    assert general["version"] == __version__
    for key in ("name", "qgisMinimumVersion", "description", "about", "author", "email", "repository"):
        assert general.get(key)
    # the optional links led a user nowhere (example.org): left out until the project has a public home
    assert "homepage" not in general and "tracker" not in general


def test_the_cli_and_the_algorithms_offer_exactly_cores_choices_and_defaults(qgis_app):
    """One source of choices and defaults (core.choices, core.params): the front ends only import them."""
    from qgis.core import QgsApplication

    from stacksr import cli
    from stacksr.core import choices as C
    from stacksr.core import params as P

    def option(command, flag):
        sub = next(a for a in cli.build_parser()._actions if a.dest == "command").choices[command]
        return next(a for a in sub._actions if flag in a.option_strings)

    assert tuple(option("sr", "--method").choices) == C.SR_METHODS and option("sr", "--method").default == C.SR_METHOD_DEFAULT
    assert option("classic", "--method").default == C.CLASSIC_METHOD_DEFAULT
    assert tuple(option("kernels", "--mode").choices) == C.KERNEL_MODES
    assert option("kernels", "--mode").default == C.KERNEL_MODE_DEFAULT
    assert tuple(option("sr", "--ttf-fit").choices) == C.TTF_FITS and option("sr", "--ttf-fit").default == C.TTF_FIT_DEFAULT
    for command in ("sr", "kernels", "train"):
        assert tuple(option(command, "--device").choices) == C.DEVICES and option(command, "--device").default == C.DEVICE_DEFAULT
    # numeric options leave their default to the job, which takes it from core.params
    for command, flag in (("sr", "--iterations"), ("sr", "--tile"), ("train", "--steps"), ("kernels", "--crop")):
        assert option(command, flag).default is None

    reg = QgsApplication.processingRegistry()

    def enum(alg, name):
        p = reg.algorithmById(f"stacksr:{alg}").parameterDefinition(name)
        return p.options(), p.defaultValue()

    assert enum("superresolve", "METHOD") == (list(C.SR_METHOD_LABELS.values()), C.SR_METHODS.index(C.SR_METHOD_DEFAULT))
    assert enum("superresolveclassic", "METHOD") == (list(C.CLASSIC_METHOD_LABELS.values()),
                                                     C.CLASSIC_METHODS.index(C.CLASSIC_METHOD_DEFAULT))
    assert enum("estimatekernels", "MODE") == (list(C.KERNEL_MODE_LABELS.values()), C.KERNEL_MODES.index(C.KERNEL_MODE_DEFAULT))
    assert enum("superresolve", "TTF_FIT") == (list(C.TTF_FIT_LABELS.values()), C.TTF_FITS.index(C.TTF_FIT_DEFAULT))
    assert enum("trainselfsupervised", "DEVICE") == (list(C.DEVICES), C.DEVICES.index(C.DEVICE_DEFAULT))
    for alg, name, setting in (("trainselfsupervised", "STEPS", P.STEPS), ("trainselfsupervised", "BATCH", P.BATCH),
                               ("trainselfsupervised", "FRAMES", P.FRAMES), ("superresolve", "TILE", P.TILE),
                               ("superresolve", "TTF_ITERATIONS", P.TTF_ITERATIONS),
                               ("superresolveclassic", "ITERATIONS", P.IBP_ITERATIONS), ("score", "MAX_SHIFT", P.MAX_SHIFT)):
        assert reg.algorithmById(f"stacksr:{alg}").parameterDefinition(name).defaultValue() == setting.default, name
