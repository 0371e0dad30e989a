"""A real registry (Debian's docker-registry, basic auth) on a free loopback port, for the
tests that push as a user would: `build.py ... --push --registry 127.0.0.1:PORT` with the
credentials in BYOC_REGISTRY_USERNAME/PASSWORD, as the Makefile's `images` target does."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from byoc import launcher, localregistry, registry

USER = "AWS"
PASSWORD = localregistry.moto_password("123456789012")


@contextlib.contextmanager
def running(folder: Path) -> Iterator[int]:
    if not Path(localregistry.BINARY).exists():
        message = f"{localregistry.BINARY} missing: `make setup` installs docker-registry"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = localregistry.start(folder, port, {USER: PASSWORD})
    try:
        yield port
    finally:
        localregistry.stop_process(proc.pid)
        with contextlib.suppress(ChildProcessError):
            proc.wait(timeout=10)
        dock = launcher.client()  # the registry-qualified tags the push left behind
        for image in dock.images.list():
            for tag in image.tags:
                if tag.startswith(f"127.0.0.1:{port}/"):
                    dock.api.remove_image(tag, noprune=True)


def push_env(home: Path) -> dict[str, str]:
    """The CLI's environment: registry credentials, a docker config of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYOC_REGISTRY_")}
    env.update(BYOC_REGISTRY_USERNAME=USER, BYOC_REGISTRY_PASSWORD=PASSWORD,
               DOCKER_CONFIG=str(home / "docker"), NO_COLOR="1")
    return env


def manifest(port: int, repository: str, reference: str) -> requests.Response:
    return requests.get(f"http://127.0.0.1:{port}/v2/{repository}/manifests/{reference}",
                        auth=(USER, PASSWORD), headers={"Accept": registry.ACCEPT}, timeout=10)


def repositories(port: int) -> list[str]:
    reply = requests.get(f"http://127.0.0.1:{port}/v2/_catalog", auth=(USER, PASSWORD),
                         timeout=10)
    reply.raise_for_status()
    return reply.json().get("repositories") or []
