# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
TORCH ?= torch==2.13.0
# pyenv's shim answers only its global version (3.11 here): take a pyenv-installed 3.13 directly where there is one.
PYENV_ROOT ?= $(HOME)/.pyenv
PY313 ?= $(firstword $(wildcard $(PYENV_ROOT)/versions/3.13*/bin/python3.13) python3.13)
PY313_FOUND := $(shell $(PY313) -c 'import sys; print(sys.version_info[:2] == (3, 13))' 2>/dev/null)
VENV313 ?= .venv313
# $(MAKE) copied: a recipe line naming $(MAKE) runs even under `make -n`, and `test`'s line also runs the suite.
SUBMAKE := $(MAKE)
BIN := $(VENV)/bin
DEMO_DIR ?= data/synthetic
DEMO_CUBE ?= data/cube.zarr

.PHONY: setup demo test test-py313 docs fuzz bench clean

# torch is installed first and pinned (CPU wheel), so that pip never resolves a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml setup.py Makefile
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

# The suite on Python 3.11 with everything, and beside it (CI has 2 cores; one pytest keeps about one busy)
# test-py313, whose output follows once both are done (one line where it is skipped); either failing fails
# `make test`.
test: setup
	@log=$$(mktemp); \
	$(SUBMAKE) --no-print-directory test-py313 >$$log 2>&1 & py313=$$!; \
	$(BIN)/python -m pytest; py311_status=$$?; \
	wait $$py313; py313_status=$$?; \
	cat $$log; rm -f $$log; \
	[ $$py311_status -eq 0 ] || echo "make test: the Python 3.11 suite failed (exit status $$py311_status)"; \
	[ $$py313_status -eq 0 ] || echo "make test: test-py313 failed (exit status $$py313_status)"; \
	[ $$py311_status -eq 0 ] && [ $$py313_status -eq 0 ]

# The torch-free suite on Python 3.13, in its own venv with the newest releases pip resolves there (the package
# and the dev extra, upgraded whenever the venv is rebuilt): what needs torch is skipped (tests/conftest.py), and
# the docs and lint checks, which do not depend on the Python that runs them, are left to the 3.11 suite.
$(VENV313)/.installed: pyproject.toml setup.py Makefile
	$(PY313) -m venv $(VENV313)
	$(VENV313)/bin/python -m pip install --quiet --upgrade pip
	$(VENV313)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e ".[dev]"
	touch $@

ifeq ($(PY313_FOUND),True)
test-py313: $(VENV313)/.installed
	$(VENV313)/bin/python -m pytest -p no:cacheprovider --ignore tests/test_docs.py --ignore tests/test_lint.py
# bench_shard_reads (torch-free) measures zarr's own sharded reads: with the newest zarr, on Python 3.13.
SHARD_BENCH := $(VENV313)/.installed
SHARD_BENCH_PYTHON := $(VENV313)/bin/python
else
test-py313:
	@echo "test-py313: skipped, no Python 3.13 found (looked for $(PY313); set PY313=/path/to/python3.13)"
SHARD_BENCH_PYTHON := $(BIN)/python
endif

# The fuzz targets with many fresh inputs each (FUZZ_EXAMPLES per target, default 20,000); `make test` runs
# each with a bounded, reproducible count.
fuzz: setup
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -m fuzz tests/fuzz -p no:cacheprovider -q

# The documentation (Sphinx; guides, API from the docstrings, benchmarks page) into docs/_build/html, warnings as
# errors; `make test` builds it too (tests/test_docs.py).
docs: setup
	$(BIN)/python -m sphinx -W --keep-going -b html docs docs/_build/html

bench: setup $(SHARD_BENCH)
	$(BIN)/python -m benchmarks $(filter-out bench_shard_reads,$(basename $(notdir $(wildcard benchmarks/bench_*.py))))
	$(SHARD_BENCH_PYTHON) -m benchmarks bench_shard_reads

clean:
	rm -rf $(VENV) $(VENV313) data .pytest_cache docs/_build docs/generated
