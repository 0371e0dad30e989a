"""Model servers, one small module each behind one interface, registered here once.

The registry is the only list of flavors: config (allowed values, runtimes), the CLI
(one build command per flavor), render, verify and the compare report read it. The
run-time twin of each flavor is images/runtime/byoc_runtime/adapters/NAME.py, found by
the same name; its Dockerfile template is images/NAME/Dockerfile.j2.

Adding a flavor: a module here with FLAVOR, its adapter, its template, and one line in
REGISTRY below."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..config import ImageSpec
    from ..model.assemble import Layout
    from ..model.spec import ModelSpec


class Flavor(Protocol):
    name: str  # the command and config name: torchserve
    server_name: str  # for people: TorchServe
    runtimes: tuple[str, ...]  # where the server comes from; the first is the default
    multi_model: bool  # can serve SageMaker's multi-model API (C18-C25)

    def apt_packages(self, spec: ImageSpec) -> tuple[str, ...]:
        """Debian packages the server needs beyond Python and tini."""

    def requirements_file(self) -> Path:
        """The server's pinned pip requirements (images/NAME/requirements.txt)."""

    def template_vars(self, spec: ImageSpec) -> dict:
        """Extra variables for the flavor's Dockerfile template."""

    def assemble(self, spec: ImageSpec, model: ModelSpec, layout: Layout) -> dict:
        """Check the model for this server and lay it out in the build context; returns
        the model stage's template variables. Refusals are ConfigErrors."""

    def runtime_env(self, spec: ImageSpec, model_vars: dict) -> list[tuple[str, str]]:
        """ENV baked into the image for the runtime (byoc_runtime) to read."""


def registry() -> dict[str, Flavor]:
    # Flavor modules import config only for type checking, so config can read this.
    from . import torchserve, triton

    return {flavor.name: flavor for flavor in (torchserve.FLAVOR, triton.FLAVOR)}


def flavor_for(name: str) -> Flavor:
    found = registry()
    if name not in found:
        raise KeyError(f"no flavor {name!r}; known: {', '.join(sorted(found))}")
    return found[name]
