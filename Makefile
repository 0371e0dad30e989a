# byoc: the commands users and CI run. `make help` lists them.
PY := .venv/bin/python
PYTEST := $(PY) -m pytest

.PHONY: help setup images test unit lint clean lock

help:
	@echo "make setup   install/start what is missing: Docker engine, base images, .venv"
	@echo "make images  build and verify the example images (cpu variants)"
	@echo "make test    the whole test suite: lint, unit, then Docker-backed contract tests"
	@echo "make unit    fast tests only (no Docker)"
	@echo "make lint    ruff on the code"
	@echo "make clean   remove build contexts and test images"

setup:
	scripts/setup.sh

images: setup
	$(PY) build.py torchserve --variant cpu --test

lint:
	$(PY) -m ruff check byoc handlers images/runtime tests build.py

unit:
	$(PYTEST) tests/unit -q

test: setup lint
	$(PYTEST) tests -q -rs

clean:
	rm -rf build
	-docker images --format '{{.Repository}}:{{.Tag}}' | grep '^byoc-test/' | xargs -r docker rmi -f

lock:
	$(PY) -m pip freeze --exclude-editable | grep -v '^byoc' > requirements.lock.new
	{ sed -n "1,3p" requirements.lock; cat requirements.lock.new; } > requirements.lock.tmp
	mv requirements.lock.tmp requirements.lock; rm -f requirements.lock.new
