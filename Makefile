# The two commands of the README: `make demo` and `make test`.
PYTHON := .venv/bin/python
WORKDIR ?= run/demo

.PHONY: bootstrap demo test docs bench clean

bootstrap:
	@scripts/bootstrap.sh

demo: bootstrap
	.venv/bin/dirac-calibration-demo --workdir $(WORKDIR)

test: bootstrap
	$(PYTHON) -m pytest tests

docs: bootstrap
	.venv/bin/sphinx-build -W --keep-going -b html docs docs/_build/html

bench: bootstrap
	$(PYTHON) bench/rpc.py

clean:
	rm -rf run
