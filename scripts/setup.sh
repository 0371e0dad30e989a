#!/usr/bin/env bash
# One-time set-up, safe to re-run: changes only what is missing.
#  1. a Docker engine that answers (installs Debian's docker.io and starts dockerd
#     as root only when none answers; never a second dockerd beside a running one)
#  2. the base images the templates name (pulled when possible, else bootstrapped
#     offline with mmdebstrap + docker import under the same name)
#  3. the Python environment (.venv) from the lock file
#  4. a local registry on 127.0.0.1 for `make images` (Debian's docker-registry; its
#     htpasswd accepts moto's ECR password, so it also stands in for ECR in tests)
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '==> %s\n' "$*"; }
# Never fail silently: a failing command names the step it was part of, once, with a TIP.
step="starting"
tip="run it again with 'bash -x scripts/setup.sh' to see each command"
trap 'rc=$?; trap - ERR; printf "ERROR setup: %s failed (exit %s)\nTIP   %s\n" "$step" "$rc" "$tip" >&2; exit "$rc"' ERR
at() { step=$1; tip=$2; }
DOCKER=${BYOC_DOCKER:-docker}
command -v "$DOCKER" >/dev/null 2>&1 || DOCKER=/usr/bin/docker

SUDO=()
if [ "$(id -u)" != 0 ]; then SUDO=(sudo -n); fi  # hosted CI runners: passwordless sudo
apt_install() {
    if [ "${#SUDO[@]}" -gt 0 ] && ! sudo -n true 2>/dev/null; then
        echo "ERROR need root to install $*; install them yourself or run as root" >&2
        exit 1
    fi
    if [ -z "${APT_UPDATED:-}" ]; then "${SUDO[@]}" apt-get update -q >/dev/null; APT_UPDATED=1; fi
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

docker_answers() { "$DOCKER" info >/dev/null 2>&1; }

# The Python environment (.venv) from the lock files; alone with --python-only (`make venv`).
python_env() {
    at "creating the Python environment (.venv from requirements.lock)" \
       "check that PyPI (or your pip index: pip config list) answers, then run make setup again"
    if [ ! -x .venv/bin/python ]; then
        log "creating .venv"
        python3 -m venv .venv
    fi
    if ! cat requirements.lock requirements-tools.lock | cmp -s - .venv/.byoc-lock 2>/dev/null; then
        log "installing Python dependencies from requirements.lock and requirements-tools.lock"
        # The lock pins torch's CPU build (+cpu): from PyTorch's CPU index where it resolves,
        # else from a local find-links wheelhouse (pip's own configuration). Asking an
        # unreachable index makes pip retry for minutes, so only ask one that resolves.
        local extra=()
        if getent hosts download.pytorch.org >/dev/null 2>&1; then
            extra=(--extra-index-url https://download.pytorch.org/whl/cpu)
        fi
        .venv/bin/pip install -q "${extra[@]}" -r requirements.lock
        .venv/bin/pip install -q --require-hashes --no-deps -r requirements-tools.lock
        .venv/bin/pip install -q --no-deps -e .
        cat requirements.lock requirements-tools.lock > .venv/.byoc-lock
    else
        log "Python dependencies up to date"
    fi
}
if [ "${1:-}" = --python-only ]; then
    python_env
    log "setup done (Python environment only)"
    exit 0
fi

# -- 1. Docker engine --------------------------------------------------------------
at "installing or starting the Docker engine" \
   "install Docker yourself (Debian: apt-get install docker.io) and start it, then run make setup again"
if docker_answers; then
    log "Docker engine answers: leaving it as it is"
else
    if ! command -v dockerd >/dev/null 2>&1; then
        log "installing Debian's docker.io"
        apt_install docker.io
    fi
    [ -x "$DOCKER" ] || DOCKER=/usr/bin/docker
    if pgrep -x dockerd >/dev/null 2>&1; then
        log "dockerd is running but not answering yet; waiting for it"
    else
        log "starting dockerd (log: /var/log/byoc-dockerd.log)"
        nohup dockerd >/var/log/byoc-dockerd.log 2>&1 &
    fi
    for _ in $(seq 150); do docker_answers && break; sleep 0.2; done
    docker_answers || { echo "ERROR dockerd did not answer; see /var/log/byoc-dockerd.log" >&2; exit 1; }
fi

# Docker Compose, for the SageMaker SDK's local mode (tests/docker/test_sagemaker_sdk_local.py).
# The SDK takes `docker compose` only when it reports v2, else `docker-compose`.
at "installing docker-compose" \
   "install Docker Compose yourself (Debian: apt-get install docker-compose), then run make setup again"
if command -v docker-compose >/dev/null 2>&1 || "$DOCKER" compose version 2>/dev/null | grep -q 'v2'; then
    log "Docker Compose present"
else
    log "installing Debian's docker-compose (for the SageMaker SDK's local mode)"
    apt_install docker-compose
fi

# -- 2. Python environment ---------------------------------------------------------
python_env

# -- 3. base images ----------------------------------------------------------------
at "listing the base images the templates name" "check images/images.yaml: python build.py render torchserve"
for image in $(.venv/bin/python -m byoc.baseimages); do
    if [[ "$image" == nvcr.io/* ]]; then
        # NGC bases are large (~16 GB) and pulled when you build that runtime; the tests
        # build a labelled stand-in when the real one is absent.
        log "base image $image: not pulled by setup (needed only for --runtime ngc)"
        continue
    fi
    if "$DOCKER" image inspect "$image" >/dev/null 2>&1; then
        log "base image $image present"
    elif timeout 120 "$DOCKER" pull -q "$image" >/dev/null 2>&1; then
        log "pulled base image $image"
    else
        log "cannot pull $image: bootstrapping it offline"
        # bootstrap-base.sh prints its own ERROR and TIP; don't add a second pair.
        scripts/bootstrap-base.sh "$image" || { trap - ERR; exit 1; }
    fi
done
# -- 4. local registry -------------------------------------------------------------
# moto (the ECR API in tests) comes with requirements.lock above. The registry listens on
# 127.0.0.1:${BYOC_LOCAL_REGISTRY_PORT:-5050}; `scripts/local-registry.sh stop` stops it.
at "installing or starting the local registry" \
   "see scripts/local-registry.sh status, or free port ${BYOC_LOCAL_REGISTRY_PORT:-5050}"
if [ ! -x "${BYOC_DOCKER_REGISTRY:-/usr/bin/docker-registry}" ]; then
    log "installing Debian's docker-registry"
    apt_install docker-registry
    # Debian's own service would serve an open registry on :5000; byoc runs its own.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q docker-registry 2>/dev/null; then
        log "disabling Debian's docker-registry service (byoc starts its own on 127.0.0.1)"
        systemctl disable --now -q docker-registry || true
    fi
fi
scripts/local-registry.sh start
log "setup done"
