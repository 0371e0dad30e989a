#!/usr/bin/env bash
# The numbers in BENCHMARKS.md ("Server comparison"): the machine's facts, then
# `build.py compare` twice back to back, so the report shows the run-to-run spread.
#
#   bench/compare.sh [compare options...]      e.g. bench/compare.sh --body png
#
# Each run goes to build/compare/runN/ (compare.md, compare.json, compare.png). The first
# run builds the images (seconds when BuildKit's cache is warm); the second reuses them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-build/compare}

echo "## machine"
echo "nproc: $(nproc)"
echo "cpu: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "memory: $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
echo "docker: $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo unknown)"
echo "kernel: $(uname -r)"

for run in 1 2; do
    echo "## run $run"
    extra=()
    [ "$run" -gt 1 ] && extra=(--no-build)
    "$PY" build.py compare "$@" "${extra[@]}" --out "$OUT/run$run"
done
