"""The offline base-image bootstrap, for real: on every run, so CI never depends on the
base images a machine happens to hold (the path `make setup` takes on a fresh machine)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bootstrap_base_imports_a_debian_that_installs_from_its_mirror(docker_engine):
    name = f"byoc-test/bootstrap-base:{os.getpid()}"
    try:
        done = subprocess.run(["bash", str(REPO / "scripts" / "bootstrap-base.sh"),
                               "debian:bookworm-slim", "--as", name],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"imported {name}" in done.stdout
        # The template's own name is left alone: --as imports under the throwaway name only.
        image = docker_engine.images.get(name)
        assert "bootstrapped offline by byoc" in (image.attrs.get("Comment") or "")
        script = ("set -e; apt-get update -q >/dev/null; "
                  "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "
                  "python3 >/dev/null; apt-get --version | head -1; python3 --version")
        output = docker_engine.containers.run(name, ["sh", "-c", script], remove=True)
        lines = output.decode().splitlines()
        assert lines[0].startswith("apt "), lines
        assert lines[1].startswith("Python 3.11"), lines
    finally:
        subprocess.run(["docker", "image", "rm", "-f", name], capture_output=True)
