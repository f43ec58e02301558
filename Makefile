# make demo   - install, make the demo data, train, test, print the metrics (CPU: ~10 min)
# make test   - install (with test tools) and run the test suite
# make install / lint / clean-venv
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VISDOM := visdom==0.2.4

.PHONY: install test test-fast lint demo clean-venv

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q 'setuptools<81' wheel
	$(BIN)/python -m pip install -q -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install -q --no-build-isolation $(VISDOM)
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

clean-venv:
	rm -rf $(VENV)
