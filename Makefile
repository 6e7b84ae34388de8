# The README's two commands: `make demo` (set up, then run the offline demo benchmark)
# and `make test` (set up, then lint, type-check and run the test suite).

VENV ?= .venv
PY := $(VENV)/bin/python
# The torch build that installs offline on this project's machines (x86_64: CUDA build that
# also runs on the CPU; aarch64: CPU build). Override with `make TORCH_SPEC=... setup`.
TORCH_SPEC ?= $(if $(filter aarch64 arm64,$(shell uname -m)),torch==2.9.1 torchvision==0.24.1,torch==2.14.1 torchvision==0.29.1)

.PHONY: setup test demo lint clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch, torchvision" 2>/dev/null || $(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

lint: setup
	$(VENV)/bin/ruff check --no-cache src tests benchmarks
	$(VENV)/bin/ruff format --no-cache --check src tests benchmarks
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest -q -p no:cacheprovider

demo: setup
	$(VENV)/bin/oodlab demo

clean:
	rm -rf $(VENV) .oodlab_cache runs
