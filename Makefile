# Set-up is two commands on a fresh machine: `make demo` and `make test`.
# Each creates the virtual environment in .venv when it is missing and installs
# what it needs; `make bench` runs the benchmarks and writes JSON to bench-results/.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP_DEMO := $(VENV)/.stamp-demo
STAMP_TEST := $(VENV)/.stamp-test

.PHONY: demo test bench sbom system-deps clean help

help:
	@echo "make demo   - create .venv, install neurolace, run the simulated session"
	@echo "make test   - install test extras and system packages, run the whole test suite"
	@echo "make bench  - run the benchmarks (tables printed, JSON in bench-results/)"
	@echo "make sbom   - write a CycloneDX SBOM of the installed dependencies to sbom.cdx.json"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP_DEMO): pyproject.toml | $(PY)
	$(PIP) install --quiet -e .
	touch $@

$(STAMP_TEST): pyproject.toml | $(PY)
	$(PIP) install --quiet -e ".[all]"
	touch $@ $(STAMP_DEMO)

demo: $(STAMP_DEMO)
	$(VENV)/bin/neurolace demo

system-deps:
	bash scripts/install-system-deps.sh

test: $(STAMP_TEST) system-deps
	$(PY) -m pytest

bench: $(STAMP_TEST)
	$(PY) -m benchmarks

# the SBOM lists what `make test` installs (every extra), so it covers what users run
SBOM ?= sbom.cdx.json
sbom: $(STAMP_TEST)
	$(VENV)/bin/cyclonedx-py environment --of JSON --output-reproducible -o $(SBOM) $(PY)
	@echo "wrote $(SBOM)"

clean:
	rm -rf $(VENV) bench-results .pytest_cache
