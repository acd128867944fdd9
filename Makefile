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

# Regenerate the embedded default data set (polarff/data/nacl_aq.xyz): NaCl(aq), 64 waters, 1/2/3 ion pairs,
# 70 frames each, seed 7; then GFN2-xTB + D4 labels (resumable). ~8 s/frame on 2 idle cores.
data: $(STAMP)
	$(PY) -m polarff.cli build --ion NaCl --pairs 1 2 3 --waters 64 --frames 70 --seed 7 -o build/nacl_unlabelled.xyz
	OMP_NUM_THREADS=2 $(PY) -m polarff.cli label build/nacl_unlabelled.xyz -o polarff/data/nacl_aq.xyz

clean:
	rm -rf $(VENV) demo-out build
