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
            "import stacksr.core.learned.ttf, stacksr.core.learned.training, stacksr.core.learned.inference, stacksr.core.learned.model_files\n"
            "import stacksr.core.degradation.fkp, stacksr.core.estimation.kernel_estimation, stacksr.core.classic.registration")
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


LAYERS = ("io", "degradation", "classic", "estimation", "learned", "jobs")  # each may import those before it


def _core_imports():
    """{module: {imported core module, ...}} for every module of core/ (lazy and type-checking imports included),
    module names relative to core ("learned.ttf", "errors"); packages map to their __init__."""
    graph = {}
    core = os.path.join(ROOT, "core")
    for path in glob.glob(os.path.join(core, "**", "*.py"), recursive=True):
        rel = os.path.relpath(path, core)[:-3].replace(os.sep, ".")
        name = rel[:-len(".__init__")] if rel.endswith(".__init__") else rel
        package = name.rsplit(".", 1)[0] if "." in rel and not rel.endswith("__init__") else (
            name if rel.endswith("__init__") and rel != "__init__" else "")
        targets = set()
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                base = package.split(".") if package else []
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                mod = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    full = f"{mod}.{alias.name}" if mod else alias.name
                    if os.path.exists(os.path.join(core, *full.split("."))) or \
                            os.path.exists(os.path.join(core, *full.split(".")) + ".py"):
                        targets.add(full)
                    elif mod:
                        targets.add(mod)
        graph[name] = {t for t in targets if t and t != "__init__"}
    return graph


def test_core_packages_import_only_layers_below_them_and_no_module_imports_in_a_circle():
    """core/ in layers: the shared basics (errors, params, progress, ...) at its top level, then io, degradation,
    classic, estimation, learned, jobs; a package imports only its own layer and those before it, the basics
    import no package. And no two modules import each other, directly or round a circle (training, sampling and
    model files once did)."""
    graph = _core_imports()
    rank = {p: i for i, p in enumerate(LAYERS)}
    for mod, targets in graph.items():
        own = rank.get(mod.split(".")[0], -1)
        for t in targets:
            assert rank.get(t.split(".")[0], -1) <= own, f"core.{mod} imports core.{t}, a layer above it"
    state = {}

    def visit(m, trail):
        state[m] = "open"
        for t in graph.get(m, ()):
            if t not in graph or "." not in t and t in LAYERS:
                continue  # a package's __init__ (only jobs has one with imports: the job functions)
            assert state.get(t) != "open", "import circle: " + " -> ".join(trail + [m, t])
            if t not in state:
                visit(t, trail + [m])
        state[m] = "done"

    for m in graph:
        if m not in state:
            visit(m, [])
