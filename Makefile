# polarff: two commands do everything on a fresh machine.
#   make demo   - set up, then train/evaluate on the embedded NaCl(aq) data and print a report
#   make test   - set up, then run the test suite
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-fast clean data

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m polarff.demo --out demo-out

test: $(STAMP)
	OMP_NUM_THREADS=2 TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m pytest -q -ra --durations=15

test-fast: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m pytest -q -ra -m "not slow"

# Regenerate the embedded default data set (polarff/data/nacl_aq.xyz); ~30 min on 2 cores.
data: $(STAMP)
	$(PY) -m polarff.cli build --ion NaCl --molality 0.5 1.0 2.0 --waters 64 --frames 70 --seed 7 -o build/nacl_unlabelled.xyz
	$(PY) -m polarff.cli label build/nacl_unlabelled.xyz -o polarff/data/nacl_aq.xyz

clean:
	rm -rf $(VENV) demo-out build
