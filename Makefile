# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export GRADIO_ANALYTICS_ENABLED := False
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install system-deps test test-fast demo models screenshot clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[train,app,node,dev]'
	touch $@

install: $(VENV)/.installed

# Debian packages the tests use as real peers: headless Chromium for the browser test (playwright
# drives it, downloads nothing); dcmtk (storescu, storescp, dsrdump, echoscu) and Orthanc for the
# DICOM node's tests. The tests start their own Orthanc on free loopback ports, so a Debian
# `orthanc` service, where the package starts one, does not get in their way.
SYSTEM_COMMANDS := chromium:chromium storescu:dcmtk Orthanc:orthanc
system-deps:
	@missing=""; for pair in $(SYSTEM_COMMANDS); do \
	  command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; done; \
	[ -z "$$missing" ] || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; }

test: install system-deps
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m "not slow"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# The main job end to end on embedded defaults: a phantom data set, the nine baselines, FGSM
# retraining, fusion, export and report (preset demo, tiny backbone), then predictions on held-out exams.
DEMO_DIR ?= demo-run
DEMO_DATA := --train 160 --valid 40 --slices 17-20
demo: install
	rm -rf $(DEMO_DIR)
	$(VENV)/bin/mrnet-train synth $(DEMO_DIR)/data $(DEMO_DATA) --seed 1
	$(VENV)/bin/mrnet-train pipeline $(DEMO_DIR)/data --preset demo --out $(DEMO_DIR)/run --jobs 2
	$(VENV)/bin/mrnet-predict $(DEMO_DIR)/data --split valid --ids 0160,0161,0162 --models $(DEMO_DIR)/run/bundle
	@echo "report: $(DEMO_DIR)/run/advtrain/report.md   bundle: $(DEMO_DIR)/run/bundle"

# Rebuild the shipped demo bundle (models/demo) with the project's own pipeline, deterministically.
MODELS_DIR ?= build/models-run
models: install
	rm -rf $(MODELS_DIR)
	$(VENV)/bin/mrnet-train synth $(MODELS_DIR)/data $(DEMO_DATA) --seed 0
	$(VENV)/bin/mrnet-train pipeline $(MODELS_DIR)/data --preset demo --out $(MODELS_DIR)/run --jobs 2 --quiet
	rm -rf models/demo
	cp -r $(MODELS_DIR)/run/bundle models/demo
	cp $(MODELS_DIR)/run/advtrain/report.md models/demo/REPORT.md
	cp $(MODELS_DIR)/run/advtrain/*.png models/demo/

# The README's screenshot of the web demo (headless Chromium).
screenshot: install system-deps
	$(PY) docs/make_demo_screenshot.py
