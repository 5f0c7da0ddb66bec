# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
DEMO_DIR ?= data/synthetic
DEMO_CUBE ?= data/cube.zarr

.PHONY: setup demo test bench clean

# torch is installed first and pinned (CPU wheel), so that pip never resolves a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/crts synth $(DEMO_DIR) --overwrite --preview $(DEMO_DIR)/preview.png
	rm -rf $(DEMO_CUBE)
	$(BIN)/crts convert $(DEMO_DIR) $(DEMO_CUBE) --workers 1 --report $(DEMO_CUBE).report.json
	$(BIN)/crts stats $(DEMO_CUBE) --by region,split --plot data/coverage.png --truth
	@echo "demo outputs: GeoTIFF tree $(DEMO_DIR), preview $(DEMO_DIR)/preview.png, cube $(DEMO_CUBE), coverage plot data/coverage.png"

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) data .pytest_cache
