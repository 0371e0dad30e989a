#!/usr/bin/env bash
# The local development registry (Debian's docker-registry on 127.0.0.1:5050) that
# `make images` pushes to: start | stop | status.
# BYOC_LOCAL_REGISTRY_PORT and BYOC_LOCAL_REGISTRY_DIR move it; see byoc/localregistry.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m byoc.localregistry "${1:-status}"
