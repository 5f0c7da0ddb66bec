# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
TORCH ?= torch==2.13.0
# pyenv's shim answers only its global version (3.11 here): take a pyenv-installed 3.13 directly where there is one.
PYENV_ROOT ?= $(HOME)/.pyenv
PY313 ?= $(firstword $(wildcard $(PYENV_ROOT)/versions/3.13*/bin/python3.13) python3.13)
VENV313 ?= .venv313
BIN := $(VENV)/bin
DEMO_DIR ?= data/synthetic
DEMO_CUBE ?= data/cube.zarr

.PHONY: setup demo test test-py313 docs fuzz bench clean

# torch is installed first and pinned (CPU wheel), so that pip never resolves a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[torch,dev,docs]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/crts synth $(DEMO_DIR) --overwrite --preview $(DEMO_DIR)/preview.png
	rm -rf $(DEMO_CUBE) data/train data/train_uncrtaints data/report
	$(BIN)/crts convert $(DEMO_DIR) $(DEMO_CUBE) --workers 1 --report $(DEMO_CUBE).report.json
	$(BIN)/crts stats $(DEMO_CUBE) --by region,split --plot data/coverage.png --truth
	$(BIN)/crts train $(DEMO_CUBE) --out data/train --features 16 --blocks 2 --crop 64 --batch-size 4 \
		--lr 1e-3 --epochs 100 --epochs-decay 0 --max-steps 80 --min-cov 0.05 --checkpoint-every 40
	$(BIN)/crts evaluate $(DEMO_CUBE) --checkpoint data/train/last.pt --split test --min-cov 0.05 --run resnet3d_demo
	$(BIN)/crts train $(DEMO_CUBE) --model uncrtaints --out data/train_uncrtaints --width 16 --n-head 4 \
		--d-model 32 --scale-by 10 --crop 64 --batch-size 4 --lr 1e-2 --epochs 100 --max-steps 80 --min-cov 0.05 \
		--checkpoint-every 40
	$(BIN)/crts evaluate $(DEMO_CUBE) --checkpoint data/train_uncrtaints/last.pt --split test --min-cov 0.05 \
		--run uncrtaints_demo
	$(BIN)/crts evaluate $(DEMO_CUBE) --baseline least_cloudy --split test --min-cov 0.05 --run least_cloudy
	$(BIN)/crts evaluate $(DEMO_CUBE) --baseline mosaic --split test --min-cov 0.05 --run mosaic
	$(BIN)/crts report $(DEMO_CUBE) --out data/report
	@echo
	@echo "demo outputs: GeoTIFF tree $(DEMO_DIR) (preview $(DEMO_DIR)/preview.png), cube $(DEMO_CUBE),"
	@echo "  coverage plot data/coverage.png, training run data/train (log.csv, tensorboard/, last.pt),"
	@echo "  evaluation runs in $(DEMO_CUBE)/runs, report data/report/report.md with figures beside it"

test: setup
	$(BIN)/python -m pytest

# The tests on Python 3.13 without torch, in their own venv with what pip resolves there (a plain install of the
# package and the dev extra): what needs torch is skipped (tests/conftest.py). Not part of `make test`.
$(VENV313)/.installed: pyproject.toml Makefile
	$(PY313) -m venv $(VENV313)
	$(VENV313)/bin/python -m pip install --quiet --upgrade pip
	$(VENV313)/bin/python -m pip install --quiet -e ".[dev]"
	touch $@

test-py313: $(VENV313)/.installed
	$(VENV313)/bin/python -m pytest --ignore tests/test_docs.py

# The fuzz targets with many fresh inputs each (FUZZ_EXAMPLES per target, default 20,000); `make test` runs
# each with a bounded, reproducible count.
fuzz: setup
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -m fuzz tests/fuzz -p no:cacheprovider -q

# The documentation (Sphinx; guides, API from the docstrings, benchmarks page) into docs/_build/html, warnings as
# errors; `make test` builds it too (tests/test_docs.py).
docs: setup
	$(BIN)/python -m sphinx -W --keep-going -b html docs docs/_build/html

bench: setup
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) $(VENV313) data .pytest_cache docs/_build docs/generated
