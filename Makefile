# Talking Head Studio — setup, tests and the everyday commands.
#
#   make setup      system packages (apt, only the missing ones) + .venv with everything
#   make test       import-boundary contracts (lint-imports) + the test suite, headless
#   make demo       the scripted demo (studio demo)
#   make run        the desktop application
#   make bench      the core benchmarks (studio bench core)
#   make clean      build outputs and caches;  make distclean  also removes .venv
#
# `make setup` is idempotent: it redoes the Python part only when pyproject.toml, this Makefile
# or installer/setup-system.sh changed since the last successful run (stamp file in .venv).

SHELL := /bin/bash
.DEFAULT_GOAL := setup

PYTHON ?= python3
VENV := .venv
VENV_BIN := $(VENV)/bin
VENV_PYTHON := $(VENV_BIN)/python
SETUP_STAMP := $(VENV)/.studio-setup-complete

# torch goes in first so that the project's `torch>=…` requirement is already satisfied by this
# build and pip never pulls a CUDA build on its own. mediapipe goes in with --no-deps: its declared
# requirements pull jax; what it really needs is listed in pyproject.toml's dependencies.
TORCH_VERSION := 2.13.0
MEDIAPIPE_VERSION := 0.10.21

.PHONY: setup test demo run bench clean distclean

setup: $(SETUP_STAMP)

$(SETUP_STAMP): pyproject.toml Makefile installer/setup-system.sh
	bash installer/setup-system.sh
	@if [ ! -x "$(VENV_PYTHON)" ]; then \
		echo "creating $(VENV) with $(PYTHON)"; \
		$(PYTHON) -m venv $(VENV); \
	fi
	$(VENV_PYTHON) -m pip install --upgrade pip
	$(VENV_PYTHON) -m pip install "torch==$(TORCH_VERSION)"
	$(VENV_PYTHON) -m pip install --no-deps "mediapipe==$(MEDIAPIPE_VERSION)"
	$(VENV_PYTHON) -m pip install -e '.[dev]'
	touch $@

test: setup
	$(VENV_BIN)/lint-imports
	QT_QPA_PLATFORM=offscreen $(VENV_PYTHON) -m pytest -q

demo: setup
	$(VENV_BIN)/studio demo

run: setup
	$(VENV_BIN)/studio

bench: setup
	$(VENV_BIN)/studio bench core

clean:
	rm -rf build dist out .pytest_cache .benchmarks .hypothesis .import_linter_cache
	find . -path ./$(VENV) -prune -o \( -name __pycache__ -o -name '*.egg-info' \) -type d -print0 \
		| xargs -0 rm -rf

distclean: clean
	rm -rf $(VENV)
