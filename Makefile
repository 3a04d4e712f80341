# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export GRADIO_ANALYTICS_ENABLED := False
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install system-deps test test-fast demo clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[train,app,dev]'
	touch $@

install: $(VENV)/.installed

# Headless Chromium for the browser test (Debian package; playwright drives it, downloads nothing).
system-deps:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

test: install system-deps
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m "not slow"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# Until training lands, the demo synthesises a phantom data set and validates it.
DEMO_DIR ?= demo-run
demo: install
	rm -rf $(DEMO_DIR)
	$(VENV)/bin/mrnet-train synth $(DEMO_DIR)/data --train 100 --valid 30 --seed 0
	$(VENV)/bin/mrnet-train check $(DEMO_DIR)/data
