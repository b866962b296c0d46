# echo pseudo-labels: two commands do everything on a fresh machine.
#   make book   -> install, run every notebook on the demo profile (papermill), build the Jupyter Book
#   make test   -> install, run the test suite (unit tests + papermill smoke run on the ci profile + book build)
# Change profile values without editing a file (validated like the profile; use a new run directory):
#   make book SET="registration.alpha=0 data.n_patients=8" RUN_DIR=runs/alpha0
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PARAMS ?= notebooks/params/demo.yaml
RUN_DIR ?=
SET ?=
STAMP := $(VENV)/.installed
# OpenMP threads spin only briefly (GOMP_SPINCOUNT busy-wait rounds, tens of microseconds) before they sleep.
# Unbounded spinning starved the notebook kernel's other work on a loaded 2-core machine (10-17x slower small torch
# ops); no spinning at all (OMP_WAIT_POLICY=PASSIVE, used before) made the registration training 1.3-1.7x slower
# on a quiet one (300 demo iterations, 2 threads: 35.8 / 27.8 s wall passive, 21.3 / 22.3 s at 20000, 21.1 / 18.5 s
# at libgomp's default; load 0.7-1.4).
export GOMP_SPINCOUNT ?= 20000

.PHONY: all install book notebooks html test test-fast lab bench clean distclean lock

all: book

# Idempotent install: redone only when pyproject.toml or the lock file change.
$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: nnunetv2 2.8.1 needs torch 2.14.1 + torchvision 0.29.1 (see README, "Why torch 2.14.1").
	# --no-compile, then compileall on every core: pip byte-compiles the ~19,500 .py files of the environment one
	# after the other (torch's 2,352 alone took 12.9 s of one core here). The .pyc files must be written here: with
	# PYTHONDONTWRITEBYTECODE set (as on the CI machine) Python would otherwise recompile every module at every
	# import, in every kernel and job (pytest took 16 min 33 s so, against 10-11 min). A few files that need a newer Python
	# (torch's py312_intrinsics.py) do not compile, as with pip, and compileall then exits 1: that is ignored.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile -c requirements.lock -e ".[dev,elastix]"
	$(PY) -m compileall -q -j 0 "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
		>/dev/null 2>&1 || true
	@touch $(STAMP)

install: $(STAMP)

notebooks: install
	$(PY) -m echo_utils.run --params $(PARAMS) $(if $(RUN_DIR),--run-dir $(RUN_DIR),) $(foreach s,$(SET),--set '$(s)')

html: install
	$(PY) -m echo_utils.book

book: notebooks html
	@echo "book: $(CURDIR)/_build/html/index.html"

test: install
	$(VENV)/bin/pytest

test-fast: install
	$(VENV)/bin/pytest -m "not slow"

bench: install
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

lab: install
	$(VENV)/bin/jupyter lab notebooks/

# Regenerate the exact pins from the current environment (after changing pyproject.toml).
lock: install
	# pip never lists argparse (it counts it as stdlib), but batchgenerators' unittest2 installs it from PyPI: pin it too.
	{ $(PY) -m pip freeze --exclude-editable | grep -v '^-e '; \
	  $(PY) -m pip show argparse 2>/dev/null | sed -n 's/^Version: /argparse==/p'; } | sort -f > requirements.lock

clean:
	rm -rf _build book/notebooks book/_static/plotly.min.js book/_static/mathjax .pytest_cache

distclean: clean
	rm -rf $(VENV) runs
