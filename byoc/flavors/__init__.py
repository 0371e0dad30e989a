"""One small module per model server, behind one tiny interface, registered here."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ..config import ImageSpec


class Flavor(Protocol):
    name: str
    server_name: str
    multi_model: bool  # can serve SageMaker's multi-model API (C18-C25)

    def apt_packages(self, spec: ImageSpec) -> tuple[str, ...]:
        """Debian packages the server needs beyond Python and tini."""

    def context_files(self) -> dict[str, Path]:
        """Extra files for the build context: name in the context -> source path.
        Files ending in .j2 among them are rendered with the spec, suffix dropped."""

    def template_vars(self, spec: ImageSpec) -> dict:
        """Extra variables for the flavor's Dockerfile template."""

    def runtime_env(self, spec: ImageSpec) -> list[tuple[str, str]]:
        """ENV baked into the image for the runtime (byoc_runtime) to read."""


def flavor_for(name: str) -> Flavor:
    from . import torchserve, triton

    registry = {"torchserve": torchserve.FLAVOR, "triton": triton.FLAVOR}
    if name not in registry:
        raise KeyError(f"no flavor {name!r}; known: {', '.join(sorted(registry))}")
    return registry[name]
