#!/bin/sh
# pip inside a build, fed by what the host passes as BuildKit secrets and bind
# mounts: the CA bundle, index settings and a local wheelhouse. None of them
# reaches a layer: this script itself is bind-mounted, never copied.
set -eu
if [ -f /run/secrets/cacert ]; then export PIP_CERT=/run/secrets/cacert; fi
if [ -f /run/secrets/pipconf ]; then export PIP_CONFIG_FILE=/run/secrets/pipconf; fi
exec /opt/venv/bin/pip install --disable-pip-version-check --no-compile \
    --find-links /wheelhouse "$@"
