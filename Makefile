# The two commands of the README:  make demo  (the main job)  and  make test  (the whole suite).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench setup clean

setup:
	@scripts/bootstrap.sh

demo: setup
	$(PY) -m app demo

test:
	@scripts/bootstrap.sh --browser
	$(PY) -m pytest

bench: setup
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache bench/data
