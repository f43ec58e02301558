# make demo   - install, make the demo data, train, test, print the metrics (about 10 minutes on 2 CPU cores: docs/demo.md)
# make test   - install (with test tools) and run the test suite
# make compare - the paper's comparison (every model at one equal budget) on the demo data (timed in docs/comparison.md)
# make docs-figures - regenerate the figures the docs quote from the scripts and compare them with the pages
#                     (SAMPLES=DIR: also cloud_masks.md's real samples; FIGURE=PATH redraws its picture)
# make visdom-assets - visdom's front-end assets from the npm registry: the dashboard works offline
# make test-browser - only the headless-Chromium tests (Debian packages chromium, chromium-driver)
# make install / lint / clean-venv
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VISDOM := visdom==0.2.4

.PHONY: install test test-fast test-browser visdom-assets lint demo compare docs-figures clean-venv

$(STAMP): requirements.txt requirements-dev.txt constraints-build.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.txt -r requirements-dev.txt
	# visdom's sdist needs pkg_resources to build: see constraints-build.txt
	PIP_CONSTRAINT="$(CURDIR)/constraints-build.txt" $(BIN)/python -m pip install -q $(VISDOM)
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-browser: $(STAMP)
	$(BIN)/python -m pytest -q -m browser

visdom-assets: $(STAMP)
	$(BIN)/python -m scripts.visdom_assets

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

demo: $(STAMP)
	$(BIN)/python -m scripts.demo

compare: $(STAMP)
	$(BIN)/python -m scripts.compare --setting light

docs-figures: $(STAMP)
	$(BIN)/python -m scripts.docs_figures $(if $(SAMPLES),--samples $(SAMPLES)) $(if $(FIGURE),--figure $(FIGURE))

clean-venv:
	rm -rf $(VENV)
