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

.PHONY: setup browser demo test test-py313 docs fuzz bench bench-device device-wheels clean

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

# The map page's browser test (tests/cube/explore/test_page.py) needs Debian's Chromium and its driver: installed
# quietly where they are missing and this runs as root with apt-get; elsewhere that test is skipped with one line.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
	  >/dev/null 2>&1 || echo "make test: no Chromium installed (needs root and apt-get): the map page's browser test is skipped"; }

# The suite on Python 3.11 with everything, and beside it (CI has 2 cores; one pytest keeps about one busy)
# test-py313, whose output follows once both are done (one line where it is skipped); either failing fails
# `make test`.
test: setup browser
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
	$(BIN)/python -m benchmarks $(filter-out bench_shard_reads bench_device,$(basename $(notdir $(wildcard benchmarks/bench_*.py))))
	$(SHARD_BENCH_PYTHON) -m benchmarks bench_shard_reads

# bench_device, one shot on a machine with a GPU and/or many cores (8 minutes; benchmarks/bench_device.py). With
# wheels in $(WHEELS) (`make device-wheels` on a machine with network, then carry the checkout with them) it installs
# nothing but those, --no-index, into $(DEVICE_SITE) beside $(DEVICE_PYTHON)'s own packages (its CUDA torch among
# them): for a machine without network that has torch, numpy, pandas, xarray, scipy, matplotlib, psutil, pyarrow, tabulate, tqdm,
# tensorboard, opencv-python-headless and tifffile. Without them it installs like `make setup`, into $(DEVICE_VENV),
# which sees $(DEVICE_PYTHON)'s packages, so that the torch there (a CUDA build) stays; pip installs one where none is.
DEVICE_PYTHON ?= python3
DEVICE_VENV ?= .venv-device
DEVICE_SITE ?= .device-site
WHEELS ?= .whl
BENCH_DEVICE_ARGS ?=
# What the device's Python lacks of what bench_device imports (PEP 562 keeps the rest of cube's dependencies out):
# the cube (zarr), its synthetic GeoTIFFs (rasterio), dask for conversion, the cube's index (geopandas), the cloud
# pass (s2cloudless, which imports sentinelhub at import time), the loader (xbatcher), and their own needs.
DEVICE_WHEELS := zarr numcodecs donfig google-crc32c dask distributed partd locket tblib zict tornado affine cligj \
	click-plugins geopandas shapely pyproj natsort isal s2cloudless lightgbm sentinelhub aenum dataclasses-json \
	marshmallow oauthlib requests-oauthlib tomli tomli-w utm xbatcher
# Pinned instead of `make setup`'s version: rasterio 1.4.4 ships a 36 MB wheel for CPython 3.12 (manylinux_2_28
# only), 1.4.3 a 22 MB one, which keeps the wheels and the tracked files under what travels.
DEVICE_PINNED := rasterio==1.4.3
WHEEL_PYVER ?= 3.12
WHEEL_PLATFORMS := $(foreach n,manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux1,--platform $(n)_x86_64)
# What travels to a lent machine: the tracked files and the wheels, at most 64 MiB together.
CARRY_LIMIT := 67108864

$(DEVICE_VENV)/.installed: pyproject.toml setup.py Makefile
	$(DEVICE_PYTHON) -m venv --system-site-packages --without-pip $(DEVICE_VENV)
	$(DEVICE_PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > \
		"$$($(DEVICE_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/device-python.pth"
	$(DEVICE_PYTHON) -m pip --python $(DEVICE_VENV)/bin/python install --quiet -e ".[torch]"
	touch $@

$(DEVICE_SITE)/.installed: $(wildcard $(WHEELS)/*.whl)
	$(DEVICE_PYTHON) -m pip install --quiet --no-index --no-deps --no-compile --upgrade --target $(DEVICE_SITE) $^
	touch $@

ifneq ($(wildcard $(WHEELS)/*.whl),)
bench-device: $(DEVICE_SITE)/.installed
	PYTHONPATH=$(CURDIR):$(abspath $(DEVICE_SITE)) $(DEVICE_PYTHON) -m benchmarks.bench_device $(BENCH_DEVICE_ARGS)
else
bench-device: $(DEVICE_VENV)/.installed
	$(DEVICE_VENV)/bin/python -m benchmarks.bench_device $(BENCH_DEVICE_ARGS)
endif

# The wheels of DEVICE_WHEELS for CPython $(WHEEL_PYVER) on x86-64 Linux, at the versions `make setup` installed, into
# $(WHEELS); fails where they and the tracked files pass what travels to a lent machine.
device-wheels: setup
	rm -rf $(WHEELS) && mkdir -p $(WHEELS)
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --python-version $(WHEEL_PYVER) \
		--implementation cp $(WHEEL_PLATFORMS) -d $(WHEELS) $$($(BIN)/python -c \
		'import sys, importlib.metadata as m; print(*(f"{n}=={m.version(n)}" for n in sys.argv[1:]))' $(DEVICE_WHEELS)) $(DEVICE_PINNED)
	@wheels=$$(cat $(WHEELS)/*.whl | wc -c); tracked=$$(git ls-files -z | xargs -0 cat | wc -c); \
	echo "device-wheels: $$(ls $(WHEELS)/*.whl | wc -l) wheels, $$wheels bytes; tracked files $$tracked bytes;" \
		"together $$((wheels + tracked)) of $(CARRY_LIMIT)"; \
	[ $$((wheels + tracked)) -le $(CARRY_LIMIT) ] || { echo "device-wheels: over $(CARRY_LIMIT) bytes"; exit 1; }

clean:
	rm -rf $(VENV) $(VENV313) $(DEVICE_VENV) $(DEVICE_SITE) data .pytest_cache docs/_build docs/generated
