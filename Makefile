# fakescope: the two commands a new machine needs are `make quickstart` and `make test`.
#
#   make install                 CPU install into .venv (torch 2.13.0 CPU wheel, then fakescope[dev])
#   make install TORCH_INDEX=https://download.pytorch.org/whl/cu128    GPU install (CUDA wheel of the same torch)
#   make quickstart              install, then synthetic benchmark -> train -> cross-generator report
#   make test                    install, then the layer contract (lint-imports) and the test suite (slow tests
#                                deselected); the web page test runs
#                                in headless Chromium when Debian's chromium and chromium-driver are installed
#                                (.ci/run installs them), and skips with the reason otherwise
#   make test-threads            the model, explanation and verdict tests again under OMP_NUM_THREADS=1 and =2
#                                (their outcome must not hang on the order of float sums; CI runs it after make test)
#   make test-kernels            those tests and the batch-norm folding tests again with torch's, oneDNN's and MKL's
#                                scalar or SSE4 kernels (as a CPU other than the one that wrote the expected values
#                                would round; CI runs it after make test-threads)
#   make test-slow               the slow tests too
#   make mutation-check          break each pretrained converter on purpose (two same-shape blocks swapped, or the
#                                head read in the wrong order) and check the full-depth parity test catches it
#   make install EXTRAS=dev,bench  also OpenCV, for benchmarks/prepare_throughput.py

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
EXTRAS ?= dev
# MTCNN face-detector weights for `fakescope prepare` ship in this wheel. It is installed with --no-deps:
# its metadata pins torch<2.3, which would replace the torch installed first (its code, which needs
# torchvision, is never imported; only the weight files are read).
FACENET_SPEC ?= facenet-pytorch==2.6.0
# Cadene's Xception (pretrainedmodels/models/xception.py), the upstream network the Xception parity tests
# (tests/test_pretrained_parity.py) compare against. Also --no-deps: it requires torchvision, whose CPU-less
# wheel breaks transformers; the tests load that one module file, which imports only torch.
PRETRAINEDMODELS_SPEC ?= pretrainedmodels==0.7.4
# The invisible-watermark package (fakescope.media.watermark) also --no-deps: its metadata asks for opencv-python,
# a second cv2 beside the opencv-python-headless of the dev and watermark extras, and for an unpinned torch.
INVISIBLE_WATERMARK_SPEC ?= invisible-watermark==0.2.0
PYTEST_ARGS ?=
# tests that train or run models: run again with one and with two threads by `make test-threads`
THREAD_TESTS ?= tests/test_explain.py tests/test_golden.py tests/test_verdict.py tests/test_forward_contract.py
# ... and once more with other kernels than this CPU's fastest: `make test-kernels`
KERNEL_TESTS ?= $(THREAD_TESTS) tests/test_folding.py
SCALAR_KERNELS := ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 MKL_ENABLE_INSTRUCTIONS=SSE4_2

.PHONY: install quickstart test test-threads test-kernels test-slow mutation-check clean

install: $(VENV)/.install-stamp

$(VENV)/.install-stamp: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade --quiet pip
	$(PIP) install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PIP) install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	$(PIP) install --quiet --no-deps $(FACENET_SPEC)
	$(PIP) install --quiet --no-deps $(PRETRAINEDMODELS_SPEC)
	$(PIP) install --quiet --no-deps $(INVISIBLE_WATERMARK_SPEC)
	@$(PY) -c "import torch, fakescope; print('fakescope', fakescope.__version__, 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
	touch $@

quickstart: install
	$(VENV)/bin/fakescope quickstart

test: install
	$(VENV)/bin/lint-imports
	$(PY) -m pytest $(PYTEST_ARGS)

test-threads: install
	OMP_NUM_THREADS=1 $(PY) -m pytest $(THREAD_TESTS) $(PYTEST_ARGS)
	OMP_NUM_THREADS=2 $(PY) -m pytest $(THREAD_TESTS) $(PYTEST_ARGS)

test-kernels: install
	$(SCALAR_KERNELS) $(PY) -m pytest $(KERNEL_TESTS) $(PYTEST_ARGS)

mutation-check: install
	$(PY) tests/mutation_check.py

test-slow: install
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -m "slow or not slow" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs data/synth .pytest_cache
