"""One small module per model server, behind one tiny interface, registered here."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ..config import ImageSpec


class Flavor(Protocol):
    name: str
    server_name: str
    apt_packages: tuple[str, ...]
    multi_model: bool

    def context_files(self) -> dict[str, Path]:
        """Extra files for the build context: name in the context -> source path."""

    def runtime_env(self, spec: ImageSpec) -> list[tuple[str, str]]:
        """ENV baked into the image for the runtime (byoc_runtime) to read."""


def flavor_for(name: str) -> Flavor:
    from . import torchserve

    registry = {"torchserve": torchserve.FLAVOR}
    try:
        from . import triton
        registry["triton"] = triton.FLAVOR
    except ImportError:  # pragma: no cover - until the Triton flavor lands
        pass
    if name not in registry:
        raise KeyError(f"no flavor {name!r}; known: {', '.join(sorted(registry))}")
    return registry[name]
