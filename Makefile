# The two commands of the README:  make demo  (the main job)  and  make test  (the whole suite).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench setup clean package

setup:
	@scripts/bootstrap.sh

demo: setup
	$(PY) -m app demo

# One worker a core (pytest-xdist), a test file's tests on one worker: their module fixtures are built once.
test:
	@scripts/bootstrap.sh --browser
	$(PY) -m pytest --numprocesses auto --dist loadfile

bench:
	@scripts/bootstrap.sh --bench
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .venv-deploy dist demo-output .pytest_cache bench/data

# The Lambda zip of a stage from the runtime dependencies only (zappa package from .venv would pack the test tools).
STAGE ?= dev
OUT ?= dist/tiler-$(STAGE).zip
package:
	python3 scripts/package.py $(STAGE) $(OUT)
