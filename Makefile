# Two entry points: `make demo` and `make test`; both install what they need first.
PYTHON_SYSTEM := /usr/bin/python3
VENV := .venv
PKG := .build/pkg
PY := $(VENV)/bin/python
DEMO_OUT := demo_output

export PYTHONPATH := $(CURDIR)/$(PKG)
export QT_QPA_PLATFORM := offscreen

.PHONY: deps demo test test-fast bench zip example-model help-pages screenshots
deps: $(VENV)/.installed $(PKG)/stacksr

$(VENV)/.installed: requirements.txt scripts/install_system_deps.sh
	bash scripts/install_system_deps.sh
	$(PYTHON_SYSTEM) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	touch $@

# the plugin package is the repository root; expose it under its name `stacksr`
$(PKG)/stacksr:
	mkdir -p $(PKG)
	ln -sfn ../.. $(PKG)/stacksr

SAMPLE := --inputs sample_data/landsat7_b4/*_b4.tif --masks sample_data/landsat7_b4/*_fmask.tif

# the main job on the real Landsat 7 sample: kernels -> self-supervised PIUNet -> SR with the method that validates
# best (auto: the fine-tuned PIUNet + TTF, IBP with the estimated kernels or with the default PSF), plus PIUNet + TTF
# and IBP on the same input to compare
demo: deps
	mkdir -p $(DEMO_OUT)
	$(PY) -m stacksr kernels $(SAMPLE) --scale 3 --mode joint --output $(DEMO_OUT)/kernels.npz \
	  --layers $(DEMO_OUT)/kernels --report $(DEMO_OUT)/kernels.html
	$(PY) -m stacksr train $(SAMPLE) --scale 3 --kernel-bank $(DEMO_OUT)/kernels.npz --steps 300 \
	  --output $(DEMO_OUT)/piunet_x3.pt --report $(DEMO_OUT)/training_report.html
	$(PY) -m stacksr sr $(SAMPLE) --scale 3 --method auto --model $(DEMO_OUT)/piunet_x3.pt \
	  --kernel-bank $(DEMO_OUT)/kernels.npz --output $(DEMO_OUT)/landsat7_b4_auto_x3.tif \
	  --uncertainty $(DEMO_OUT)/landsat7_b4_uncertainty_x3.tif --kernel-output $(DEMO_OUT)/ttf_kernel.tif \
	  --report $(DEMO_OUT)/sr_report.html
	$(PY) -m stacksr sr $(SAMPLE) --scale 3 --method piunet+ttf --model $(DEMO_OUT)/piunet_x3.pt \
	  --output $(DEMO_OUT)/landsat7_b4_piunet_ttf_x3.tif
	$(PY) -m stacksr sr $(SAMPLE) --scale 3 --method ibp --output $(DEMO_OUT)/landsat7_b4_ibp_x3.tif
	@gdalinfo -stats $(DEMO_OUT)/landsat7_b4_auto_x3.tif | grep -E 'Size is|Origin =|Pixel Size|NoData|STATISTICS_(MEAN|MIN|MAX)=|^    ID\["EPSG"' ; rm -f $(DEMO_OUT)/*.aux.xml

test: deps
	$(PY) -m pytest -q

# everything but the tests that start another process (qgis_process, QGIS desktop, CLI, torchrun, zip)
test-fast: deps
	$(PY) -m pytest -q -m "not slow"

# every benchmark suite, its tables appended to BENCHMARKS.md (benchmarks/run.py --help: suites, methods)
bench: deps
	cd benchmarks && ../$(PY) run.py --record

# the installable plugin zip (dist/stacksr-<version>.zip): runtime files only
zip:
	$(PYTHON_SYSTEM) scripts/build_zip.py

# regenerate the shipped Graphical Modeler example (examples/stacksr_chain.model3)
example-model: deps
	$(PY) scripts/build_example_model.py

# regenerate the algorithms' HTML help pages (help/<algorithm>.html)
help-pages: deps
	$(PY) scripts/build_help.py

# the screenshots in docs/ (every dialog, the Kernel viewer, the three reports of `make demo`), under a virtual display
screenshots: demo
	xvfb-run -a $(PY) scripts/screenshots.py $(DEMO_OUT) docs
